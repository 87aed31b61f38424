"""Search spaces, the Arch value type, genomes, mutation/crossover and feature encodings."""

from __future__ import annotations

import dataclasses
import json
import random
from collections import Counter

import pytest

from nasflow.cli import main
from nasflow.space.hat import Arch, ArchError, SearchSpace, get_space

# A released llmas TFS-Eval architecture (wmt14ende, seed 123, first train line).
ARCH_INFO = [
    "encoder-embed-dim-subtransformer: 512",
    "encoder-layer-num-subtransformer: 6",
    "encoder-ffn-embed-dim-all-subtransformer: [1024, 1024, 2048, 2048, 2048, 1024]",
    "encoder-self-attention-heads-all-subtransformer: [4, 4, 4, 8, 4, 4]",
    "decoder-embed-dim-subtransformer: 640",
    "decoder-layer-num-subtransformer: 1",
    "decoder-ffn-embed-dim-all-subtransformer: [3072]",
    "decoder-self-attention-heads-all-subtransformer: [8]",
    "decoder-ende-attention-heads-all-subtransformer: [4]",
    "decoder-arbitrary-ende-attn-all-subtransformer: [2]",
]


@pytest.fixture
def arch() -> Arch:
    return Arch.from_arch_info(ARCH_INFO)


def test_hat_spaces_have_the_reference_dimensions():
    wmt, iwslt = get_space("hat-wmt"), get_space("hat-iwslt")
    assert wmt.super_dims() == {
        "embed_dim": 640, "ffn_dim": 3072, "heads": 8, "qkv_dim": 512,
        "encoder_layers": 6, "decoder_layers": 6,
    }  # fmt: skip
    assert wmt.ffn_choices == (3072, 2048, 1024) and wmt.head_choices == (8, 4)
    assert wmt.decoder_layer_choices == (6, 5, 4, 3, 2, 1) and wmt.encoder_layer_choices == (6,)
    assert wmt.share_embeddings and wmt.measure_len == 30
    assert iwslt.super_ffn_dim == 2048 and iwslt.super_heads == 4 and iwslt.head_choices == (4, 2)
    assert not iwslt.share_embeddings and iwslt.measure_len == 23
    demo = get_space("demo")
    assert len(demo.gene_choices()) == 2 + 2 * 3 + 2 + 4 * 3
    assert demo.qkv_dim % max(demo.head_choices) == 0


def test_unknown_space_is_named():
    with pytest.raises(ArchError, match="unknown search space 'nope'"):
        get_space("nope")


def test_arch_is_immutable_hashable_and_has_a_stable_id(arch):
    with pytest.raises(dataclasses.FrozenInstanceError):
        arch.encoder_embed_dim = 640  # type: ignore[misc]
    same = Arch.from_arch_info(list(reversed(ARCH_INFO)))
    assert same == arch and hash(same) == hash(arch) and len({arch, same}) == 1
    assert arch.id == same.id and len(arch.id) == 12
    # Pinned: ids name cached results on disk, so they must never change silently.
    assert arch.id == "90138e0b50d1"
    assert arch.replace(decoder_embed_dim=512).id != arch.id
    assert Arch(**{**arch.to_dict(), "space": "hat-iwslt"}).id != arch.id


def test_json_round_trip(arch):
    assert Arch.from_json(arch.to_json()) == arch
    assert Arch.from_dict(json.loads(json.dumps(arch.to_dict()))) == arch
    assert arch.to_dict()["encoder_ffn_embed_dim"] == [1024, 1024, 2048, 2048, 2048, 1024]


def test_arch_info_and_hat_yml_round_trip(arch):
    assert arch.to_arch_info() == ARCH_INFO
    assert Arch.from_arch_info(arch.to_arch_info()) == arch
    yml = arch.to_hat_yml()
    assert "decoder-arbitrary-ende-attn-all-subtransformer: [2]" in yml
    assert Arch.from_hat_yml(yml) == arch
    hat_style = (
        "encoder-embed-dim-subtransformer: 512\n"
        "decoder-embed-dim-subtransformer: 512\n\n"
        "encoder-ffn-embed-dim-all-subtransformer: [3072, 3072, 3072, 3072, 3072, 3072]\n"
        "decoder-ffn-embed-dim-all-subtransformer: [3072, 3072, 3072]\n\n"
        "encoder-layer-num-subtransformer: 6\n"
        "decoder-layer-num-subtransformer: 3\n\n"
        "encoder-self-attention-heads-all-subtransformer: [8, 8, 8, 8, 8, 4]\n"
        "decoder-self-attention-heads-all-subtransformer: [4, 8, 8]\n"
        "decoder-ende-attention-heads-all-subtransformer: [8, 8, 8]\n\n"
        "decoder-arbitrary-ende-attn-all-subtransformer: [1, -1, 1]\n"
    )
    parsed = Arch.from_hat_yml(hat_style)
    assert parsed.decoder_layer_num == 3 and parsed.decoder_arbitrary_ende_attn == (1, -1, 1)
    get_space("hat-wmt").validate(parsed)


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (ARCH_INFO[:-1], "missing HAT key.*decoder-arbitrary-ende-attn"),
        ([*ARCH_INFO, "decoder-foo: 1"], "unknown HAT key.*decoder-foo"),
        ([ARCH_INFO[0].replace("512", "big"), *ARCH_INFO[1:]], "not an integer or list"),
        (["no colon here", *ARCH_INFO], "without 'key: value'"),
        ([ARCH_INFO[0], ARCH_INFO[1].replace("6", "5"), *ARCH_INFO[2:]], "has 6 entries but"),
    ],
)
def test_bad_arch_info_is_reported(lines, message):
    with pytest.raises(ArchError, match=message):
        Arch.from_arch_info(lines)


def test_bad_arch_values_are_reported(arch):
    with pytest.raises(ArchError, match="decoder_arbitrary_ende_attn values must be in"):
        arch.replace(decoder_arbitrary_ende_attn=(3,))
    with pytest.raises(ArchError, match="encoder_embed_dim must be a positive integer"):
        arch.replace(encoder_embed_dim=0)
    with pytest.raises(ArchError, match="unknown architecture key"):
        Arch.from_dict({**arch.to_dict(), "extra": 1})
    with pytest.raises(ArchError, match="invalid architecture JSON"):
        Arch.from_json("{not json")


def test_validity_checks_against_a_space(arch):
    wmt, demo = get_space("hat-wmt"), get_space("demo")
    assert wmt.is_valid(arch)
    problems = demo.violations(arch)
    assert any("encoder_embed_dim [512] not in [160, 128]" in p for p in problems)
    assert any("space is 'hat-wmt'" in p for p in problems)
    with pytest.raises(ArchError, match="not in space 'demo'"):
        demo.validate(arch)
    shallow = arch.replace(encoder_layer_num=2, encoder_ffn_embed_dim=(1024, 1024),
                           encoder_self_attention_heads=(4, 4))  # fmt: skip
    assert any("attends 3 encoder layers" in p for p in wmt.violations(shallow))


def test_largest_and_smallest_are_in_the_space():
    for name in ("hat-wmt", "hat-iwslt", "demo"):
        space = get_space(name)
        big, small = space.largest(), space.smallest()
        assert space.is_valid(big) and space.is_valid(small)
        assert big.encoder_embed_dim == space.super_embed_dim
        assert small.decoder_layer_num == min(space.decoder_layer_choices)


def test_seeded_sampling_is_reproducible_and_valid():
    space = get_space("hat-wmt")
    first = [space.sample(random.Random(7)) for _ in range(3)]
    again = [space.sample(random.Random(7)) for _ in range(3)]
    assert first == again
    rng = random.Random(0)
    samples = [space.sample(rng) for _ in range(3000)]
    assert all(space.is_valid(a) for a in samples)
    # HAT samples each gene uniformly: every decoder depth about 1/6 of the time.
    counts = Counter(a.decoder_layer_num for a in samples)
    assert set(counts) == set(space.decoder_layer_choices)
    assert all(abs(c / 3000 - 1 / 6) < 0.03 for c in counts.values())


def test_sample_unique_gives_distinct_archs_and_reports_exhaustion():
    archs = get_space("demo").sample_unique(50, seed=3)
    assert len({a.id for a in archs}) == 50
    assert archs == get_space("demo").sample_unique(50, seed=3)
    tiny = SearchSpace(
        name="demo", embed_choices=(160,), encoder_layer_choices=(3,), decoder_layer_choices=(1,),
        ffn_choices=(512,), head_choices=(4,), qkv_dim=128, share_embeddings=True,
        measure_len=20, latency_feature_scale=(1.0,) * 10, arbitrary_choices=(-1,),
    )  # fmt: skip
    with pytest.raises(ArchError, match="found only 1 distinct"):
        tiny.sample_unique(2, seed=0, max_tries=50)


def test_genome_round_trip_and_dormant_slots(arch):
    space = get_space("hat-wmt")
    genome = space.encode(arch)
    assert len(genome) == 40 and space.decode(genome) == arch
    # Dormant decoder slots (layers 2..6) hold values that come back when the depth grows.
    decoder_layers_gene = 2 + 6 + 6 + 1
    assert genome[decoder_layers_gene] == 1
    grown = list(genome)
    grown[decoder_layers_gene] = 3
    deeper = space.decode(grown)
    assert deeper.decoder_layer_num == 3
    ffn_start = decoder_layers_gene + 1
    assert deeper.decoder_ffn_embed_dim == tuple(genome[ffn_start : ffn_start + 3])
    with pytest.raises(ArchError, match="has 40 genes, got 39"):
        space.decode(genome[:-1])


def test_mutation_and_crossover_follow_hat_semantics(arch):
    space = get_space("hat-wmt")
    rng = random.Random(1)
    genome = space.encode(arch, rng=rng)
    assert space.mutate(genome, 0.0, rng) == genome
    choices = space.gene_choices()
    for _ in range(50):
        mutated = space.mutate(genome, 1.0, rng)
        assert all(g in c for g, c in zip(mutated, choices, strict=True))
        space.decode(mutated)
    changed = [sum(a != b for a, b in zip(genome, space.mutate(genome, 0.3, rng), strict=True))
               for _ in range(200)]  # fmt: skip
    assert 0 < sum(changed) / 200 < 0.3 * 40  # redraws may repeat the same value
    other = space.sample_genome(rng)
    for _ in range(20):
        child = space.crossover(genome, other, rng)
        assert all(c in (a, b) for c, a, b in zip(child, genome, other, strict=True))
    assert space.crossover(genome, genome, rng) == genome
    with pytest.raises(ValueError, match="mutation probability"):
        space.mutate(genome, 1.5, rng)


def test_distill_features_match_the_llmas_encoding(arch):
    features = get_space("hat-wmt").distill_features(arch)
    enc_ffn = (1024 * 3 + 2048 * 3) / 6
    enc_heads = (4 * 5 + 8) / 6
    expected = [512 / 640, 6 / 6, enc_ffn / 3072, enc_heads / 8, 640 / 640, 1 / 6,
                3072 / 3072, 8 / 8, 4 / 8, (1 + 2) / 3]  # fmt: skip
    assert features == pytest.approx(expected)


def test_latency_features_match_hat(arch):
    features = get_space("hat-wmt").latency_features(arch)
    enc_ffn = (1024 * 3 + 2048 * 3) / 6
    enc_heads = (4 * 5 + 8) / 6
    raw = [512, 6, enc_ffn, enc_heads, 640, 1, 3072, 8, 4, 3]  # arbitrary 2 -> 3 layers
    scale = [640, 6, 2048, 6, 640, 6, 2048, 6, 6, 2]
    assert features == pytest.approx([r / s for r, s in zip(raw, scale, strict=True)])


def test_cli_sample_writes_distinct_seeded_archs(tmp_path, capsys):
    out = tmp_path / "archs.jsonl"
    assert (
        main(["space", "sample", "--space", "demo", "--n", "12", "--seed", "5", "--out", str(out)])
        == 0
    )
    records = [json.loads(line) for line in out.read_text().splitlines()]
    archs = [Arch.from_dict(r["arch"]) for r in records]
    assert len(records) == 12 and len({r["id"] for r in records}) == 12
    assert all(r["id"] == a.id and a.space == "demo" for r, a in zip(records, archs, strict=True))
    again = tmp_path / "again.jsonl"
    main(["space", "sample", "--space", "demo", "--n", "12", "--seed", "5", "--out", str(again)])
    assert again.read_bytes() == out.read_bytes()
    assert "wrote 12 architectures" in capsys.readouterr().out


def test_cli_show_prints_super_dims_and_choices(capsys):
    assert main(["space", "show", "--space", "hat-wmt"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["super_dims"]["embed_dim"] == 640 and shown["qkv_dim"] == 512
    assert shown["decoder_layers"] == [6, 5, 4, 3, 2, 1] and shown["name"] == "hat-wmt"

"""The elastic SuperTransformer: subnets vs extraction, gradients, decoding, checkpoints."""

from __future__ import annotations

import random

import pytest
import torch

from nasflow.efficiency.counts import count_params
from nasflow.model import EOS, PAD, ModelConfig, SuperTransformer, beam_search, greedy_decode
from nasflow.model.checkpoint import CheckpointError, load_model, save_model
from nasflow.space.hat import SearchSpace, get_space

VOCAB = 60


def _batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded sources ending in EOS, their lengths, and teacher-forced decoder input."""
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([9, 6, 3, 9])
    src = torch.full((4, 9), PAD)
    for row, n in enumerate(lengths.tolist()):
        src[row, : n - 1] = torch.randint(4, VOCAB, (n - 1,), generator=gen)
        src[row, n - 1] = EOS
    prev = torch.randint(4, VOCAB, (4, 7), generator=gen)
    prev[:, 0] = EOS
    return src, lengths, prev


def _separate_space() -> SearchSpace:
    """A tiny space with IWSLT-style separate embeddings (not in the registry)."""
    demo = get_space("demo")
    return SearchSpace(
        name="demo",
        embed_choices=(48, 32),
        encoder_layer_choices=(3,),
        decoder_layer_choices=(3, 2, 1),
        ffn_choices=(64, 48),
        head_choices=(4, 2),
        qkv_dim=32,
        share_embeddings=False,
        measure_len=demo.measure_len,
        latency_feature_scale=demo.latency_feature_scale,
    )


@pytest.fixture(scope="module")
def supernet() -> SuperTransformer:
    torch.manual_seed(0)
    return SuperTransformer(get_space("demo"), VOCAB, ModelConfig(dropout=0.1)).eval()


def _archs(space: SearchSpace, n: int = 4) -> list:
    rng = random.Random(7)
    return [space.largest(), space.smallest()] + [space.sample(rng) for _ in range(n)]


@pytest.mark.parametrize("shared", [True, False])
def test_extract_matches_subnet_in_supernet(shared: bool) -> None:
    space = get_space("demo") if shared else _separate_space()
    torch.manual_seed(1)
    model = SuperTransformer(space, VOCAB).eval()
    src, _, prev = _batch()
    for arch in _archs(space):
        model.set_arch(arch)
        dense = model.extract(arch).eval()
        assert dense.layout == arch and not dense.is_supernet
        torch.testing.assert_close(dense(src, prev), model(src, prev), atol=1e-5, rtol=1e-5)


def test_dense_model_has_exactly_the_arch_parameters() -> None:
    space = get_space("demo")
    model = SuperTransformer(space, VOCAB)
    for arch in _archs(space):
        dense = model.extract(arch)
        embedding = VOCAB * max(arch.encoder_embed_dim, arch.decoder_embed_dim)
        total = sum(p.numel() for p in dense.parameters())
        assert total == count_params(arch) + embedding


def test_gradients_reach_only_the_active_slices() -> None:
    space = get_space("demo")
    torch.manual_seed(2)
    model = SuperTransformer(space, VOCAB).train()
    arch = space.smallest().replace(decoder_arbitrary_ende_attn=(-1,))
    model.set_arch(arch)
    src, _, prev = _batch()
    model(src, prev).sum().backward()
    d_enc, d_dec, ffn = arch.encoder_embed_dim, arch.decoder_embed_dim, 256
    emb = model.embed_tokens.weight.grad
    assert emb is not None and emb[:, : max(d_enc, d_dec)].abs().sum() > 0
    assert emb[:, max(d_enc, d_dec) :].abs().sum() == 0
    layer = model.encoder_layers[0]
    assert layer.ffn.fc1.weight.grad[:ffn, :d_enc].abs().sum() > 0
    assert layer.ffn.fc1.weight.grad[ffn:].abs().sum() == 0
    assert layer.ffn.fc1.weight.grad[:, d_enc:].abs().sum() == 0
    assert layer.self_attn_layer_norm.weight.grad[d_enc:].abs().sum() == 0
    assert layer.self_attn.out_proj.weight.grad[d_enc:].abs().sum() == 0
    for inactive in model.decoder_layers[arch.decoder_layer_num :]:
        assert all(p.grad is None for p in inactive.parameters())


def test_arbitrary_encoder_decoder_attention_changes_the_output(supernet) -> None:
    src, _, prev = _batch()
    base = get_space("demo").largest()
    outputs = []
    for value in (-1, 1, 2):
        supernet.set_arch(base.replace(decoder_arbitrary_ende_attn=(value,) * 3))
        outputs.append(supernet(src, prev))
    assert not torch.allclose(outputs[0], outputs[1])
    assert not torch.allclose(outputs[1], outputs[2])


def test_padding_does_not_change_a_sentence(supernet) -> None:
    src, lengths, prev = _batch()
    supernet.set_arch(get_space("demo").largest())
    batched = supernet(src, prev)[2]
    alone = supernet(src[2:3, : lengths[2]], prev[2:3])[0]
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=1e-5)


def test_dropout_is_scaled_by_the_sampled_width() -> None:
    model = SuperTransformer(get_space("demo"), VOCAB, ModelConfig(dropout=0.3))
    assert model._dropout(160) == pytest.approx(0.3)
    assert model._dropout(128) == pytest.approx(0.3 * 128 / 160)


def test_cached_decoding_equals_full_decoding(supernet) -> None:
    src, lengths, prev = _batch()
    for arch in _archs(get_space("demo"), 2):
        supernet.set_arch(arch)
        full = supernet(src, prev)
        encoder_out = supernet.encode(src)
        cache = supernet.start_cache(encoder_out)
        steps = [supernet.decode(prev[:, t : t + 1], encoder_out, cache) for t in range(7)]
        torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)
        cached = greedy_decode(supernet, src, lengths, max_len_a=1, max_len_b=4)
        uncached = greedy_decode(supernet, src, lengths, max_len_a=1, max_len_b=4, use_cache=False)
        assert cached == uncached


def _peaked_model() -> SuperTransformer:
    """A random model whose output layer is scaled up, so decoding produces long outputs."""
    torch.manual_seed(3)
    model = SuperTransformer(get_space("demo"), VOCAB).eval()
    with torch.no_grad():
        model.embed_tokens.weight.mul_(6.0)
        model.embed_tokens.weight[EOS].mul_(0.1)
    return model


def test_beam_one_equals_greedy() -> None:
    model = _peaked_model()
    src, lengths, _ = _batch()
    for arch in _archs(get_space("demo"), 2):
        model.set_arch(arch)
        greedy = greedy_decode(model, src, lengths, max_len_a=1.0, max_len_b=3)
        beams = beam_search(model, src, lengths, beam=1, max_len_a=1.0, max_len_b=3)
        assert [hyps[0].tokens for hyps in beams] == greedy
        assert any(len(tokens) > 1 for tokens in greedy)


def test_beam_search_hypotheses_are_sorted_and_bounded() -> None:
    model = _peaked_model()
    src, lengths, _ = _batch()
    results = beam_search(model, src, lengths, beam=4, lenpen=0.6, max_len_a=0.5, max_len_b=2)
    assert len(results) == 4
    for hyps, n in zip(results, lengths.tolist(), strict=True):
        assert 1 <= len(hyps) <= 4
        assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)
        for hyp in hyps:
            assert len(hyp.tokens) + 1 <= int(n * 0.5) + 2
            assert PAD not in hyp.tokens and EOS not in hyp.tokens
            assert hyp.score == pytest.approx(hyp.log_prob / (len(hyp.tokens) + 1) ** 0.6)
    # A larger beam finds a hypothesis at least as good (by model score) as beam 1.
    wide = beam_search(model, src, lengths, beam=8, lenpen=1.0, max_len_a=0.5, max_len_b=2)
    narrow = beam_search(model, src, lengths, beam=1, lenpen=1.0, max_len_a=0.5, max_len_b=2)
    for w, nar in zip(wide, narrow, strict=True):
        assert w[0].score >= nar[0].score - 1e-6


def test_batched_beam_search_equals_one_sentence_at_a_time() -> None:
    model = _peaked_model()
    src, lengths, _ = _batch()
    together = beam_search(model, src, lengths, beam=3, max_len_a=1.0, max_len_b=2)
    for row in range(4):
        n = int(lengths[row])
        alone = beam_search(
            model,
            src[row : row + 1, :n],
            lengths[row : row + 1],
            beam=3,
            max_len_a=1.0,
            max_len_b=2,
        )[0]
        assert [h.tokens for h in alone] == [h.tokens for h in together[row]]


def test_checkpoint_round_trip(tmp_path, supernet) -> None:
    arch = get_space("demo").smallest()
    supernet.set_arch(arch)
    src, _, prev = _batch()
    path = tmp_path / "model.pt"
    save_model(path, supernet, {"updates": 3})
    loaded, meta = load_model(path)
    assert meta == {"updates": 3} and loaded.is_supernet and loaded.arch == arch
    torch.testing.assert_close(loaded(src, prev), supernet(src, prev))
    dense = supernet.extract(arch)
    save_model(tmp_path / "dense.pt", dense)
    again, _ = load_model(tmp_path / "dense.pt")
    assert again.layout == arch
    torch.testing.assert_close(again(src, prev), supernet(src, prev), atol=1e-5, rtol=1e-5)


def test_checkpoint_errors_name_the_file(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model")
    with pytest.raises(CheckpointError, match=r"bad\.pt"):
        load_model(bad)


def test_dense_model_refuses_another_arch() -> None:
    space = get_space("demo")
    dense = SuperTransformer(space, VOCAB, layout=space.smallest())
    with pytest.raises(ValueError, match="cannot run"):
        dense.set_arch(space.largest())


@pytest.mark.parametrize("shared", [True, False])
def test_subnet_gradients_equal_the_dense_model_gradients(shared: bool) -> None:
    space = get_space("demo") if shared else _separate_space()
    torch.manual_seed(4)
    model = SuperTransformer(space, VOCAB, ModelConfig(dropout=0.0, attention_dropout=0.0))
    src, _, prev = _batch()
    for arch in _archs(space, 2):
        model.zero_grad(set_to_none=True)
        model.set_arch(arch)
        dense = model.extract(arch)
        model(src, prev).square().mean().backward()
        dense(src, prev).square().mean().backward()
        grads = {name: p.grad for name, p in model.named_parameters()}
        for name, param in dense.named_parameters():
            block = grads[name][tuple(slice(0, n) for n in param.shape)]
            torch.testing.assert_close(block, param.grad, atol=1e-6, rtol=1e-4, msg=name)

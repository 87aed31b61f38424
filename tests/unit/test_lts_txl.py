"""LTS's Transformer-XL backbone: the model (relative attention, rel shift, recurrence memory,
tied and adaptive output layers), its closed-form decoder parameters, `build_decoder`, spaces
with a `backbone` key and the proxy check on a tiny synthetic corpus."""

from __future__ import annotations

import math
import re

import pytest
import torch
import torch.nn.functional as F

from nasflow.core.errors import ConfigError
from nasflow.data.ptb import LMCorpus
from nasflow.lts import proxy_check as pc
from nasflow.lts.model import GPTDecoder, backbone_of, build_decoder
from nasflow.lts.txl_model import TXLDecoder, rel_shift, sinusoid
from nasflow.space.gpt import SPACES, GPTArch, LTSSpace, get_space
from nasflow.space.gpt_params import (
    decoder_params,
    total_params,
    txl_embedding_params,
    txl_layer_params,
)

HETERO = GPTArch(3, 64, (128, 256, 192), (2, 4, 8))
SHAPES = [
    GPTArch.uniform(1, 32, 64, 1),
    GPTArch.uniform(2, 48, 96, 4),
    HETERO,
    GPTArch(4, 96, (128, 384, 192, 256), (2, 4, 8, 3)),
]


def tiny(arch: GPTArch = HETERO, **opts: object) -> TXLDecoder:
    torch.manual_seed(0)
    return TXLDecoder(arch, 100, 64, 0.0, **opts).eval()  # type: ignore[arg-type]


# ---- decoder parameters -------------------------------------------------------------------------
def test_txl_layer_count_by_hand() -> None:
    # d = 64, f = 128: QKV 3d^2 = 12,288; r_net d^2 = 4,096; o_net d^2 = 4,096; u, v 2d = 128;
    # FFN 2df + f + d = 16,384 + 128 + 64 = 16,576; two LayerNorms 4d = 256: 37,440.
    assert txl_layer_params(64, 128) == 37_440
    arch = GPTArch.uniform(2, 64, 128, 4)
    assert decoder_params(arch, "transformer-xl") == 2 * 37_440  # no final LayerNorm
    assert decoder_params(arch) == decoder_params(arch, "gpt2") != 2 * 37_440


@pytest.mark.parametrize("arch", SHAPES, ids=lambda a: a.describe())
@pytest.mark.parametrize(
    "opts",
    [
        {},
        {"pre_lnorm": True},
        {"softmax": "adaptive"},
        {"softmax": "adaptive", "cutoffs": [20, 60]},
        {"softmax": "adaptive", "cutoffs": [20, 60], "div_val": 2},
    ],
    ids=["tied", "pre-norm", "adaptive", "clusters", "div_val"],
)
def test_closed_forms_equal_the_model(arch: GPTArch, opts: dict) -> None:
    model = TXLDecoder(arch, 100, 64, **opts)
    assert model.decoder_param_count() == decoder_params(arch, "transformer-xl")
    rest = model.total_param_count() - model.decoder_param_count()
    assert rest == txl_embedding_params(arch.d_model, 100, **opts_of(opts))
    if opts.get("softmax", "tied") == "tied":
        assert model.total_param_count() == total_params(arch, 100, 64, "transformer-xl")


def opts_of(opts: dict) -> dict:
    return {k: v for k, v in opts.items() if k in ("softmax", "cutoffs", "div_val")}


# ---- attention ----------------------------------------------------------------------------------
def test_rel_shift_by_hand() -> None:
    qlen, klen = 3, 5  # memory of 2
    scores = torch.arange(qlen * klen, dtype=torch.float32).view(1, 1, qlen, klen)
    shifted = rel_shift(scores)[0, 0]
    for i in range(qlen):
        for j in range(klen):
            if j <= i + klen - qlen:  # keys query i may see: distance klen - qlen + i - j
                r = klen - 1 - (klen - qlen + i - j)  # column of that distance
                assert shifted[i, j] == scores[0, 0, i, r]
    # the last query sees every key: distances 4, 3, 2, 1, 0 are columns 0..4 in order
    assert shifted[-1].tolist() == scores[0, 0, -1].tolist()
    # the original's trick (pad a zero column, view as (klen + 1, qlen), drop a row) agrees
    original = F.pad(scores, (1, 0)).view(1, 1, klen + 1, qlen)[:, :, 1:].reshape_as(scores)[0, 0]
    visible = torch.arange(klen)[None, :] <= torch.arange(qlen)[:, None] + klen - qlen
    assert torch.equal(shifted[visible], original[visible])


def test_sinusoid_matches_the_formula() -> None:
    d = 6
    inv_freq = 1.0 / (10000 ** (torch.arange(0.0, d, 2.0) / d))
    enc = sinusoid(torch.tensor([0.0, 3.0]), inv_freq, d)
    assert enc.shape == (2, d)
    assert torch.allclose(enc[1, :3], torch.sin(3.0 * inv_freq))
    assert torch.allclose(enc[1, 3:], torch.cos(3.0 * inv_freq))
    odd = 1.0 / (10000 ** (torch.arange(0.0, 5, 2.0) / 5))
    assert sinusoid(torch.tensor([1.0]), odd, 5).shape == (1, 5)  # an odd width is cut


# ---- memory -------------------------------------------------------------------------------------
@pytest.mark.parametrize("pre_lnorm", [False, True])
def test_segments_with_memory_equal_the_whole_sequence(pre_lnorm: bool) -> None:
    model = tiny(mem_len=32, pre_lnorm=pre_lnorm)
    tokens = torch.randint(0, 100, (2, 11), generator=torch.Generator().manual_seed(1))
    whole, _ = model(tokens)
    first, mems = model(tokens[:, :6])
    second, _ = model(tokens[:, 6:], mems)
    assert torch.allclose(torch.cat((first, second), 1), whole, atol=1e-5)
    outs, mems = [], None
    for t in range(tokens.shape[1]):  # one token at a time, the memory as the only context
        out, mems = model(tokens[:, t : t + 1], mems)
        outs.append(out)
    assert torch.allclose(torch.cat(outs, 1), whole, atol=1e-5)


def test_memory_is_detached_bounded_and_carries_context() -> None:
    model = tiny(mem_len=4)
    model.train()
    a = torch.randint(0, 100, (2, 6), generator=torch.Generator().manual_seed(2))
    b = torch.randint(0, 100, (2, 5), generator=torch.Generator().manual_seed(3))
    _, mems = model(a)
    assert len(mems) == HETERO.n_layer
    assert all(m.shape == (2, 4, 64) and not m.requires_grad for m in mems)
    assert torch.equal(mems[0], model.word_emb(a)[:, -4:] * model.emb_scale)  # layer 0's input
    model.eval()
    with torch.no_grad():
        _, mems = model(a)
        out, _ = model(b, mems)
        other, _ = model(b, model(a.flip(1))[1])
        alone, _ = model(b)
    assert not torch.allclose(out, other)  # segment 2 depends on segment 1 through the memory
    assert not torch.allclose(out, alone)
    none = tiny(mem_len=0)
    _, empty = none(a)
    assert all(m.shape == (2, 0, 64) for m in empty)
    assert torch.allclose(none(b, empty)[0], none(b)[0])


def test_loss_and_gradients_stop_at_the_memory() -> None:
    model = tiny(mem_len=8)
    model.train()
    x = torch.randint(0, 100, (2, 9), generator=torch.Generator().manual_seed(4))
    loss, mems = model.loss(x[:, :4], x[:, 1:5])
    value = float(loss.detach())
    assert value > 0 and math.isfinite(value)
    loss.backward()  # frees segment 1's graph
    second, _ = model.loss(x[:, 4:-1], x[:, 5:], mems)
    second.backward()  # a memory attached to segment 1's graph would fail here
    assert all(p.grad is not None for p in model.layers.parameters())


# ---- output layers ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "opts",
    [
        {"softmax": "adaptive"},
        {"softmax": "adaptive", "cutoffs": [10, 40]},
        {"softmax": "adaptive", "cutoffs": [10, 40], "div_val": 4},
    ],
)
def test_adaptive_log_probs_normalise(opts: dict) -> None:
    model = tiny(**opts)
    assert model.output == "log_probs"
    out, _ = model(torch.randint(0, 100, (2, 5)))
    assert out.shape == (2, 5, 100)
    assert torch.allclose(out.exp().sum(-1), torch.ones(2, 5), atol=1e-5)
    if "cutoffs" in opts:  # tied: cluster i's output weights are the input embedding's
        assert model.crit is not None and model.crit.n_clusters == 2
        assert model.crit.cluster_weight.shape == (2, 64)


def test_tied_head_shares_the_embedding() -> None:
    model = tiny()
    assert model.output == "logits"
    out, _ = model(torch.randint(0, 100, (1, 4)))
    assert out.shape == (1, 4, 100)
    hidden, _ = model.hidden(torch.zeros((1, 1), dtype=torch.long))
    logits = hidden @ model.word_emb.emb_layers[0].weight.t()
    assert torch.allclose(model.head(hidden), logits)


@pytest.mark.parametrize(
    ("opts", "message"),
    [
        ({"softmax": "full"}, "softmax must be one of tied, adaptive"),
        ({"softmax": "adaptive", "cutoffs": [50, 20]}, "cutoffs must be increasing"),
        ({"softmax": "adaptive", "cutoffs": [100]}, "cutoffs must be increasing"),
        ({"softmax": "adaptive", "div_val": 0}, "div_val must be an integer >= 1"),
        ({"softmax": "adaptive", "cutoffs": [10, 20], "div_val": 64}, "without width"),
        ({"cutoffs": [10]}, "cutoffs and div_val need softmax: adaptive"),
        ({"mem_len": -1}, "mem_len must be an integer >= 0"),
    ],
)
def test_option_errors_name_the_key(opts: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        TXLDecoder(HETERO, 100, **opts)


# ---- build_decoder ------------------------------------------------------------------------------
def test_build_decoder_for_each_backbone() -> None:
    torch.manual_seed(5)
    direct = GPTDecoder(HETERO, 100, 32, 0.0)
    torch.manual_seed(5)
    built = build_decoder(HETERO, "gpt2", 100, 32, 0.0)
    assert isinstance(built, GPTDecoder) and backbone_of(built) == "gpt2"
    for a, b in zip(direct.state_dict().values(), built.state_dict().values(), strict=True):
        assert torch.equal(a, b)  # the same weights from the same seed
    txl = build_decoder(HETERO, "transformer-xl", 100, 32, 0.0, mem_len=7, softmax="adaptive")
    assert isinstance(txl, TXLDecoder) and backbone_of(txl) == "transformer-xl"
    assert (txl.mem_len, txl.softmax, txl.n_positions) == (7, "adaptive", 32)
    with pytest.raises(ConfigError, match="backbone must be one of gpt2, transformer-xl"):
        build_decoder(HETERO, "lstm", 100)
    with pytest.raises(ConfigError, match="backbone gpt2 has no option"):
        build_decoder(HETERO, "gpt2", 100, mem_len=4)
    with pytest.raises(ConfigError, match="backbone transformer-xl has no option"):
        build_decoder(HETERO, "transformer-xl", 100, tgt_len=4)


# ---- spaces -------------------------------------------------------------------------------------
def test_space_backbone_roundtrip_fingerprint_and_bounds() -> None:
    demo = get_space("lts-demo")
    assert demo.backbone == "gpt2" and demo.to_mapping()["backbone"] == "gpt2"
    assert demo.fingerprint == "ac0a84dc4a68"  # the fingerprint from before the backbone key
    txl = LTSSpace.from_mapping(
        {"base": "lts-demo", "name": "demo-txl", "backbone": "transformer-xl"}
    )
    assert LTSSpace.from_mapping(txl.to_mapping()) == txl
    assert (
        txl.fingerprint
        != LTSSpace.from_mapping({**txl.to_mapping(), "backbone": "gpt2"}).fingerprint
    )
    assert LTSSpace.from_mapping({**txl.to_mapping(), "backbone": "gpt2"}).fingerprint == (
        LTSSpace.from_mapping({"base": "lts-demo", "name": "demo-txl"}).fingerprint
    )
    low, high = txl.decoder_param_range()
    assert (low, high) != demo.decoder_param_range()
    arch = txl.sample_unique(1, seed=0)[0]
    params = decoder_params(arch, "transformer-xl")
    bounded = LTSSpace.from_mapping(
        {**txl.to_mapping(), "constraints": {"decoder_params": [params, params]}}
    )
    assert bounded.is_valid(arch)  # the bounds count the Transformer-XL decoder
    gpt_bounded = LTSSpace.from_mapping(
        {**bounded.to_mapping(), "name": "g", "backbone": "gpt2", "constraints": {}}
    )
    assert gpt_bounded.is_valid(arch)
    with pytest.raises(ConfigError, match=r"space 'x': backbone must be one of"):
        LTSSpace.from_mapping({"base": "lts-demo", "name": "x", "backbone": "gpt3"})


def test_registered_paper_spaces() -> None:
    paper, txl = SPACES["lts-paper"], SPACES["lts-paper-txl"]
    assert paper.backbone == "gpt2" and paper.fingerprint == "4a8801b80019"
    assert txl.backbone == "transformer-xl" and txl.fingerprint != paper.fingerprint
    assert txl.d_inner_choices == paper.d_inner_choices and txl.inner_ratio == paper.inner_ratio


# ---- proxy check --------------------------------------------------------------------------------
def synthetic_corpus() -> LMCorpus:
    """A 12-word language: word i is followed by (i + 5) mod 12, 40 lines of 60 words."""
    generator = torch.Generator().manual_seed(0)
    start = torch.randint(0, 12, (40,), generator=generator)
    streams = [(s + 5 * torch.arange(60)) % 12 for s in start]
    ids = torch.cat(streams).long()
    return LMCorpus([f"w{i}" for i in range(12)], ids[:1800], ids[1800:], ids[:0])


def test_proxy_check_trains_txl_segment_by_segment(monkeypatch: pytest.MonkeyPatch) -> None:
    space = LTSSpace.from_mapping(
        {"base": "lts-demo", "name": "demo-txl", "backbone": "transformer-xl", "n_layer": 2}
    )
    seen: list[int] = []
    real = TXLDecoder.loss

    def spy(self: TXLDecoder, inputs: torch.Tensor, targets: torch.Tensor, mems=None):  # type: ignore[no-untyped-def]
        seen.append(0 if mems is None else mems[0].shape[1])
        return real(self, inputs, targets, mems)

    monkeypatch.setattr(TXLDecoder, "loss", spy)
    settings = {"k": 2, "steps": 12, "batch": 4, "seq_len": 8, "lr": 3e-3, "seed": 1}
    result = pc.proxy_check(synthetic_corpus(), space, **settings)
    # 56 windows of 8 tokens per stream: no wrap-around in 12 steps; the memory carries over
    assert seen[:3] == [0, 8, 8] and len(seen) == 2 * 12
    assert result["space"]["backbone"] == "transformer-xl"
    for row in result["rows"]:
        arch = GPTArch.from_dict(row["arch"])
        assert row["decoder_params"] == decoder_params(arch, "transformer-xl")
        assert row["total_params"] == total_params(arch, 12, 8, "transformer-xl")
        assert math.isfinite(row["valid_nll"]) and row["valid_tokens_scored"] > 0
    gpt = pc.proxy_check(synthetic_corpus(), {**space.to_mapping(), "backbone": "gpt2"}, **settings)
    assert gpt["fingerprint"] != result["fingerprint"]

"""LTS decoder: GPTArch, spaces and constraints, the decoder-parameter proxy, the model, the CLI."""

from __future__ import annotations

import itertools
import json
import random
import re

import pytest
import torch

from nasflow.cli import main
from nasflow.core.errors import ConfigError
from nasflow.lts.model import GPTDecoder
from nasflow.space.gpt import SPACES, ArchError, GPTArch, LTSSpace, get_space, resolve_space
from nasflow.space.gpt_params import decoder_params, layer_params, total_params

BASELINE = GPTArch.uniform(12, 1024, 4096, 16)


# ---- GPTArch ----------------------------------------------------------------------------------
def test_arch_json_roundtrip_id_and_broadcast() -> None:
    arch = GPTArch(3, 128, (256, 384, 512), (2, 4, 8))
    assert GPTArch.from_json(arch.to_json()) == arch
    assert GPTArch.from_dict(arch.to_dict()).id == arch.id
    assert len(arch.id) == 12
    same = GPTArch.from_dict({"n_layer": 2, "d_model": 64, "d_inner": 128, "n_head": 4})
    assert same == GPTArch(2, 64, [128, 128], [4, 4])
    assert same.is_homogeneous and not arch.is_homogeneous
    assert arch.describe() == "L3 d128 f[256,384,512] h[2,4,8]"
    assert BASELINE.describe() == "L12 d1024 f4096 h16"
    assert arch.replace(d_model=256).d_model == 256
    assert arch.head_dims() == (64, 32, 16)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"n_layer": 0, "d_model": 64, "d_inner": 128, "n_head": 2}, "n_layer"),
        ({"n_layer": 2, "d_model": 64, "d_inner": [128], "n_head": 2}, "d_inner has 1 values"),
        ({"n_layer": 2, "d_model": 64, "d_inner": 128, "n_head": [2, 3]}, "n_head values [3]"),
        ({"n_layer": 2, "d_model": 64, "d_inner": [128, -1], "n_head": 2}, "d_inner must hold"),
        ({"n_layer": 2, "d_model": 64, "d_inner": 128}, "missing architecture key(s): n_head"),
        ({"n_layer": 2, "d_model": 64, "d_inner": 1, "n_head": 1, "vocab": 9}, "unknown"),
    ],
)
def test_arch_errors_name_the_field(data: dict, message: str) -> None:
    with pytest.raises(ArchError, match=re.escape(message)):
        GPTArch.from_dict(data)


# ---- decoder parameters -----------------------------------------------------------------------
def test_decoder_params_gpt2_baseline_by_hand() -> None:
    # GPT-2 baseline, d = 1024, f = 4096, 12 layers:
    #   attention  4*d*d + 4*d        = 4,194,304 + 4,096         = 4,198,400
    #   FFN        2*d*f + f + d      = 8,388,608 + 4,096 + 1,024 = 8,393,728
    #   LayerNorms 2 x (weight + bias) = 4*d                      =     4,096
    #   one layer                                                  = 12,596,224
    #   12 layers = 151,154,688; + final LayerNorm 2*d = 2,048     = 151,156,736
    assert layer_params(1024, 4096) == 12_596_224
    assert decoder_params(BASELINE) == 151_156_736
    # + GPT-2 token embedding 50257 x 1024 (tied head) + 1024 x 1024 positions = the "204M" model
    assert total_params(BASELINE) == 151_156_736 + 50_257 * 1024 + 1024 * 1024 == 203_668_480
    # reference-lts.md: 9 layers, d_model 896, d_inner 704 -> about 40.34M
    assert decoder_params(GPTArch.uniform(9, 896, 704, 8)) == 40_336_192


def _modules_count(model: GPTDecoder) -> tuple[int, int]:
    decoder = sum(p.numel() for m in [*model.blocks, model.ln_f] for p in m.parameters())
    return decoder, sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", sorted(SPACES))
def test_closed_form_equals_instantiated_model(name: str) -> None:
    """Full-size archs of every space, built on the meta device (shapes only, no memory)."""
    space = get_space(name)
    rng = random.Random(7)
    archs = [space.sample(rng) for _ in range(4)]
    if name == "text-prediction":
        archs.append(BASELINE)
    for arch in archs:
        with torch.device("meta"):
            model = GPTDecoder(arch, vocab_size=50257, n_positions=1024)
        decoder, total = _modules_count(model)
        assert decoder == decoder_params(arch) == model.decoder_param_count(), arch.describe()
        assert total == total_params(arch, 50257, 1024) == model.total_param_count()


def test_closed_form_equals_real_cpu_model_heterogeneous() -> None:
    arch = GPTArch(3, 96, (192, 320, 256), (2, 3, 4))
    model = GPTDecoder(arch, vocab_size=37, n_positions=16)
    assert _modules_count(model) == (decoder_params(arch), total_params(arch, 37, 16))
    assert model.lm_head.weight is model.wte.weight  # tied head adds nothing


# ---- spaces -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(SPACES))
def test_sampling_is_valid_and_seeded(name: str) -> None:
    space = get_space(name)
    rng = random.Random(3)
    archs = [space.sample(rng) for _ in range(150)]
    assert all(space.violations(a) == [] for a in archs)
    assert space.sample_unique(5, seed=11) == space.sample_unique(5, seed=11)
    for arch in archs:
        assert all(arch.d_model % h == 0 for h in arch.n_head)
        if space.inner_ratio is not None:
            ratios = [f / arch.d_model for f in arch.d_inner]
            if space.inner_ratio_strict:
                assert min(ratios) > space.inner_ratio
            else:
                assert min(ratios) >= space.inner_ratio
        if not space.per_layer:
            assert arch.is_homogeneous
    if space.per_layer:  # heterogeneous layers do get sampled
        assert any(not a.is_homogeneous for a in archs)


def test_text_prediction_constraints() -> None:
    space = get_space("text-prediction")
    assert space.is_valid(BASELINE)
    rng = random.Random(0)
    params = [decoder_params(space.sample(rng)) for _ in range(100)]
    assert min(params) >= 120_000_000 and max(params) <= 180_000_000
    # d_inner / d_model >= 2: exactly 2 passes, below fails (and takes the rule's name)
    assert space.is_valid(GPTArch.uniform(12, 1024, 2048, 16)) is False  # too few params
    low_ratio = GPTArch.uniform(18, 1024, 1984, 16)
    assert space.violation(low_ratio).startswith("inner_ratio")
    exact = GPTArch.uniform(16, 1024, 2048, 16)
    assert 120e6 <= decoder_params(exact) <= 180e6 and space.is_valid(exact)
    small = GPTArch.uniform(6, 512, 1024, 8)
    assert space.violations(small) == [
        "decoder_params: 12,617,728 outside [120,000,000, 180,000,000]"
    ]
    mixed = GPTArch(12, 1024, (4096,) * 11 + (4160,), 16)
    assert space.violation(mixed).startswith("homogeneous")
    with pytest.raises(ArchError, match=r"not in space 'text-prediction'.*decoder_params"):
        space.validate(small)


def test_lts_paper_strict_ratio_rule() -> None:
    space = get_space("lts-paper")
    at_limit = GPTArch(2, 640, (1088, 1152), (8, 4))  # 1088 = 1.7 x 640 exactly: not > 1.7
    assert space.violation(at_limit).startswith("inner_ratio: d_inner [1088]")
    assert space.is_valid(at_limit.replace(d_inner=[1152, 1152]))
    assert space.violation(GPTArch(2, 640, 2048, 5 * 1)).startswith("n_head: [5]")


def test_infeasible_bounds_are_refused_with_the_achievable_range() -> None:
    with pytest.raises(ConfigError, match=r"infeasible.*\[500,000,000, -\].*achievable"):
        LTSSpace.from_mapping(
            {
                "base": "lts-demo",
                "name": "too-big",
                "constraints": {"decoder_params": ["500M", None]},
            }
        )
    with pytest.raises(ConfigError, match=r"min_decoder_params .* > max_decoder_params"):
        LTSSpace.from_mapping(
            {"base": "lts-demo", "name": "x", "constraints": {"decoder_params": [2000, 1000]}}
        )
    with pytest.raises(ConfigError, match="holds no architecture"):
        LTSSpace.from_mapping(
            {"name": "x", "n_layer": 2, "d_model": 64, "d_inner": 64, "n_head": 2,
             "constraints": {"inner_ratio": 2.0}}
        )  # fmt: skip


def test_space_from_mapping_roundtrip_and_errors() -> None:
    for space in SPACES.values():
        assert LTSSpace.from_mapping(space.to_mapping()) == space
    custom = resolve_space(
        {
            "name": "small-tp",
            "n_layer": {"min": 2, "max": 4},
            "d_model": {"min": 64, "max": 256, "step": 64},
            "d_inner": {"min": 128, "max": 1024, "step": 64},
            "n_head": [2, 4],
            "per_layer": False,
            "constraints": {"decoder_params": ["0.2M", 1.5e6], "inner_ratio": 2},
        }
    )
    assert custom.d_model_choices == (64, 128, 192, 256)
    assert (custom.min_decoder_params, custom.max_decoder_params) == (200_000, 1_500_000)
    assert custom.fingerprint != get_space("lts-demo").fingerprint
    assert all(custom.is_valid(a) for a in custom.sample_unique(10, seed=1))
    with pytest.raises(ConfigError, match="unknown key"):
        LTSSpace.from_mapping({"name": "x", "layers": 3})
    with pytest.raises(ConfigError, match="unknown constraint"):
        LTSSpace.from_mapping({"base": "lts-demo", "constraints": {"max_latency": 3}})
    with pytest.raises(ConfigError, match="parameter count"):
        LTSSpace.from_mapping({"base": "lts-demo", "constraints": {"decoder_params": ["x", 1]}})
    with pytest.raises(ConfigError, match="unknown LTS space 'nope'"):
        get_space("nope")


@pytest.mark.parametrize("name", sorted(SPACES))
def test_mutation_and_crossover_children_are_valid(name: str) -> None:
    space = get_space(name)
    rng = random.Random(5)
    parents = space.sample_unique(10, seed=2)
    for parent in parents:
        assert space.mutate(parent, 0.0, rng) == parent
        child = space.mutate(parent, 0.5, rng)
        assert space.is_valid(child)
    for a, b in itertools.pairwise(parents):
        child = space.crossover(a, b, rng)
        assert space.is_valid(child)
        genes = {a.n_layer, b.n_layer}
        assert child.n_layer in genes and child.d_model in {a.d_model, b.d_model}
    assert space.crossover(parents[0], parents[0], rng) == parents[0]
    assert space.arch_from_dict(parents[0].to_dict()) == parents[0]


# ---- model ------------------------------------------------------------------------------------
def _model(seed: int = 0, dropout: float = 0.1) -> GPTDecoder:
    torch.manual_seed(seed)
    arch = GPTArch(3, 64, (128, 256, 192), (2, 4, 1))  # per-layer d_inner and n_head
    return GPTDecoder(arch, vocab_size=41, n_positions=24, dropout=dropout)


def test_kv_cache_matches_full_forward() -> None:
    model = _model().eval()  # dropout configured but inactive in eval mode
    tokens = torch.randint(0, 41, (2, 12), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full, present = model(tokens)
        assert full.shape == (2, 12, 41)
        assert [kv[0].shape for kv in present] == [
            (2, 2, 12, 32),
            (2, 4, 12, 16),
            (2, 1, 12, 64),
        ]
        past, steps = None, []
        for t in range(12):
            logits, past = model(tokens[:, t : t + 1], past)
            steps.append(logits)
        torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)
        # a prompt of 5 tokens, then a chunk of 4 and single steps
        prompt, past = model(tokens[:, :5])
        chunk, past = model(tokens[:, 5:9], past)
        rest = [model(tokens[:, t : t + 1], past)[0] for t in (9,)]
        joined = torch.cat([prompt, chunk, *rest], 1)
        torch.testing.assert_close(joined, full[:, :10], atol=1e-5, rtol=1e-5)
        for a, b in zip(past, present, strict=True):
            torch.testing.assert_close(a[0], b[0][:, :, :9])


def test_model_is_causal_trains_and_checks_lengths() -> None:
    model = _model(dropout=0.0).eval()
    tokens = torch.randint(0, 41, (1, 10))
    changed = tokens.clone()
    changed[0, 7] = (tokens[0, 7] + 1) % 41
    with torch.no_grad():
        a, _ = model(tokens)
        b, _ = model(changed)
    torch.testing.assert_close(a[:, :7], b[:, :7])  # the future does not leak
    assert not torch.allclose(a[:, 7:], b[:, 7:])
    with pytest.raises(ValueError, match="exceeds n_positions 24"):
        model(torch.zeros(1, 25, dtype=torch.long))
    train = _model(dropout=0.2).train()
    x = torch.randint(0, 41, (2, 8))
    r1, _ = train(x)
    r2, _ = train(x)
    assert not torch.allclose(r1, r2)  # dropout is active in training
    r1.logsumexp(-1).mean().backward()
    assert all(p.grad is not None for p in train.parameters())


def test_exported_decoder_step_generalises_over_past_length() -> None:
    """Export-friendly: `torch.export` with a dynamic past length gives one graph that runs at
    other past lengths (no data-dependent control flow, no shapes baked in)."""
    model = _model().eval()
    tokens = torch.randint(0, 41, (1, 9))

    class Step(torch.nn.Module):
        def __init__(self, inner: GPTDecoder) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, token: torch.Tensor, past: list) -> tuple:
            return self.inner(token, past)

    with torch.no_grad():
        _, past3 = model(tokens[:, :3])
        dim = torch.export.Dim("past", min=1, max=20)
        shapes = {"token": None, "past": [({2: dim}, {2: dim}) for _ in range(3)]}
        program = torch.export.export(Step(model), (tokens[:, 3:4], past3), dynamic_shapes=shapes)
        _, past7 = model(tokens[:, :7])
        expected, _ = model(tokens[:, 7:8], past7)
        got, present = program.module()(tokens[:, 7:8], past7)
    torch.testing.assert_close(got, expected)
    assert present[0][0].shape[2] == 8


# ---- CLI --------------------------------------------------------------------------------------
def test_params_cli(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lts", "params", "--n-layer", "12", "--d-model", "1024", "--d-inner", "4096",
                 "--n-head", "16"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "decoder parameters: 151,156,736 (151.16M)" in out
    assert "total parameters:   203,668,480" in out
    argv = ["lts", "params", "--n-layer", "3", "--d-model", "64", "--d-inner", "128,256,192"]
    assert main([*argv, "--n-head", "2,4,1", "--vocab", "41", "--n-positions", "24", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    arch = GPTArch(3, 64, (128, 256, 192), (2, 4, 1))
    assert summary["decoder_params"] == decoder_params(arch)
    assert summary["total_params"] == total_params(arch, 41, 24) == _model().total_param_count()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--d-inner", "128,256"], "--d-inner has 2 values but --n-layer is 3"),
        (["--d-inner", "128", "--n-head", "2,4"], "--n-head has 2 values but --n-layer is 3"),
        (["--d-inner", "12x8"], "--d-inner expects an integer or a comma list"),
        (["--d-inner", "128", "--n-head", "3"], "n_head values [3] do not divide d_model 64"),
        (["--d-inner", "0"], "--d-inner values must be positive"),
    ],
)
def test_params_cli_errors(capsys: pytest.CaptureFixture[str], extra: list, message: str) -> None:
    assert main(["lts", "params", "--n-layer", "3", "--d-model", "64", *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nasflow: error: ") and message in err and err.count("\n") == 1

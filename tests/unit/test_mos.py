"""Mixture-of-Supernets: one expert is HAT, router shapes, extraction, gradients, checkpoints,
training and resumption, settings."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nasflow.core.errors import ConfigError
from nasflow.data import load_split
from nasflow.data.prepare import load_vocab_size
from nasflow.evaluate import validation_loss
from nasflow.model import (
    EOS,
    KINDS,
    PAD,
    MixtureConfig,
    MixtureSupernet,
    ModelConfig,
    SuperTransformer,
    build_supernet,
)
from nasflow.model.checkpoint import load_model, model_from_payload, model_payload, save_model
from nasflow.predictors import SupernetPredictor
from nasflow.space.hat import get_space
from nasflow.train.loop import Trainer
from nasflow.train.settings import TrainSettings

VOCAB = 60
SPACE = get_space("demo")
MOS_KINDS = ("layer-mos", "neuron-mos")
QUIET = ModelConfig(dropout=0.0, attention_dropout=0.0, activation_dropout=0.0)


def _batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded sources ending in EOS, decoder inputs and targets (a few short sentences)."""
    gen = torch.Generator().manual_seed(seed)
    src = torch.full((3, 7), PAD)
    for row, n in enumerate((7, 4, 2)):
        src[row, : n - 1] = torch.randint(4, VOCAB, (n - 1,), generator=gen)
        src[row, n - 1] = EOS
    target = torch.randint(4, VOCAB, (3, 6), generator=gen)
    target[:, -1] = EOS
    prev = torch.cat([torch.full((3, 1), EOS), target[:, :-1]], dim=1)
    return src, prev, target


def _archs() -> list:
    return [SPACE.largest(), SPACE.smallest(), *SPACE.sample_unique(3, seed=11)]


def _mos(
    kind: str, experts: int = 2, seed: int = 0, config: ModelConfig = QUIET
) -> MixtureSupernet:
    torch.manual_seed(seed)
    return MixtureSupernet(SPACE, VOCAB, config, MixtureConfig(kind, experts))


@pytest.mark.parametrize("kind", MOS_KINDS)
def test_one_expert_is_the_hat_supernet(kind: str) -> None:
    torch.manual_seed(3)
    hat = SuperTransformer(SPACE, VOCAB, ModelConfig(dropout=0.1)).eval()
    mos = _mos(kind, experts=1, seed=9, config=ModelConfig(dropout=0.1)).eval()
    result = mos.load_state_dict(hat.state_dict(), strict=False)
    assert not result.unexpected_keys
    extras = ("fc1_weights", "fc1_biases", "fc2_weights", "fc2_biases", "router")
    assert result.missing_keys and all(
        ".ffn." in key and any(part in key for part in extras) for key in result.missing_keys
    )
    src, prev, _ = _batch()
    for arch in _archs():
        hat.set_arch(arch)
        mos.set_arch(arch)
        torch.testing.assert_close(mos(src, prev), hat(src, prev), rtol=0, atol=0)
    assert mos.kind == kind and hat.kind == "hat" and mos.is_supernet


@pytest.mark.parametrize("kind", MOS_KINDS)
def test_router_outputs_are_distributions_of_the_subnet_shape(kind: str) -> None:
    mos = _mos(kind, experts=3)
    archs = _archs()
    for arch in archs:
        weights = mos.mixture_weights(arch)
        assert len(weights) == arch.encoder_layer_num + arch.decoder_layer_num
        ffn_dims = arch.encoder_ffn_embed_dim + arch.decoder_ffn_embed_dim
        dims = [arch.encoder_embed_dim] * arch.encoder_layer_num
        dims += [arch.decoder_embed_dim] * arch.decoder_layer_num
        for (fc1, fc2), ffn, d in zip(weights, ffn_dims, dims, strict=True):
            expected = ((3,), (3,)) if kind == "layer-mos" else ((ffn, 3), (d, 3))
            assert (tuple(fc1.shape), tuple(fc2.shape)) == expected
            for probs in (fc1, fc2):
                assert bool((probs >= 0).all())
                torch.testing.assert_close(probs.sum(-1), torch.ones(probs.shape[:-1]))
    first = mos.mixture_weights(archs[0])[0][0]
    second = mos.mixture_weights(archs[1])[0][0]
    rows = min(first.shape[0], second.shape[0]) if kind == "neuron-mos" else None
    assert not torch.allclose(first[:rows], second[:rows])


@pytest.mark.parametrize("kind", MOS_KINDS)
def test_extracted_dense_model_equals_the_mixture(kind: str) -> None:
    mos = _mos(kind, experts=2, config=ModelConfig(dropout=0.3)).eval()
    with torch.no_grad():  # break the symmetry of zero biases so they are tested too
        for name, param in mos.named_parameters():
            if "ffn" in name and name.endswith(("bias", "biases")):
                param.normal_(0.0, 0.1)
    src, prev, _ = _batch(1)
    for arch in _archs():
        mos.set_arch(arch)
        dense = mos.extract(arch).eval()
        assert type(dense) is SuperTransformer and dense.layout == arch
        assert dense.kind == "hat" and not dense.is_supernet
        torch.testing.assert_close(dense(src, prev), mos(src, prev), atol=1e-5, rtol=1e-5)
    assert not mos.training  # extraction leaves the supernet's mode alone


def test_extraction_ignores_router_dropout() -> None:
    mos = _mos("neuron-mos").train()
    arch = SPACE.smallest()
    first, second = mos.extract(arch), mos.extract(arch)
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert mos.training


@pytest.mark.parametrize("kind", MOS_KINDS)
def test_spos_step_trains_every_expert_and_the_router(kind: str) -> None:
    mos = _mos(kind, experts=3, config=ModelConfig(dropout=0.1)).train()
    optimizer = torch.optim.AdamW(mos.parameters(), lr=1e-3)
    before = {name: p.detach().clone() for name, p in mos.named_parameters()}
    mos.set_arch(SPACE.sample(random.Random(4)))
    src, prev, target = _batch(2)
    logits = mos(src, prev)
    F.cross_entropy(logits.reshape(-1, VOCAB), target.reshape(-1)).backward()
    for index, layer in enumerate(mos.encoder_layers):
        ffn = layer.ffn
        for extras in (ffn.fc1_weights, ffn.fc2_weights, ffn.fc1_biases, ffn.fc2_biases):
            assert extras.grad is not None
            for expert in range(extras.shape[0]):
                assert extras.grad[expert].abs().sum() > 0, (index, expert)
        routers = [ffn.router] if kind == "layer-mos" else [ffn.fc1_router, ffn.fc2_router]
        for router in routers:
            for param in router.parameters():
                assert param.grad is not None and param.grad.abs().sum() > 0, index
    optimizer.step()
    changed = [n for n, p in mos.named_parameters() if not torch.equal(p, before[n])]
    assert any("router" in name for name in changed)
    assert any("fc1_weights" in name for name in changed)


@pytest.mark.parametrize("kind", MOS_KINDS)
def test_checkpoint_round_trip(tmp_path: Path, kind: str) -> None:
    mos = _mos(kind, config=ModelConfig(dropout=0.1)).eval()
    arch = SPACE.sample(random.Random(8))
    mos.set_arch(arch)
    path = tmp_path / "mos.pt"
    save_model(path, mos, {"updates": 2})
    loaded, meta = load_model(path)
    assert type(loaded) is MixtureSupernet and loaded.kind == kind and meta == {"updates": 2}
    assert loaded.mixture == mos.mixture and loaded.arch == arch
    src, prev, _ = _batch(3)
    torch.testing.assert_close(loaded(src, prev), mos(src, prev), rtol=0, atol=0)


def test_router_input_follows_the_model_and_the_arch() -> None:
    mos = _mos("neuron-mos").eval()
    arch = SPACE.smallest()
    mos.set_arch(arch)
    inputs = [layer.ffn.router_input for layer in mos.encoder_layers]
    expected = torch.tensor(SPACE.latency_features(arch))
    assert all(torch.equal(x, expected) for x in inputs)
    assert "router_input" not in "".join(mos.state_dict())  # recomputed, never saved
    src, prev, _ = _batch(4)
    single = mos(src, prev)
    mos.to(torch.float64)  # `.to()` moves the buffers like any other tensor
    assert mos.encoder_layers[0].ffn.router_input.dtype == torch.float64
    mos.set_arch(arch)
    assert mos.decoder_layers[0].ffn.router_input.dtype == torch.float64
    torch.testing.assert_close(mos(src, prev).float(), single, atol=1e-4, rtol=1e-4)


def test_payload_without_mixture_is_hat() -> None:
    torch.manual_seed(0)
    hat = SuperTransformer(SPACE, VOCAB).eval()
    payload = model_payload(hat)
    assert "mixture" not in payload  # HAT files are as before
    loaded = model_from_payload(payload)
    assert type(loaded) is SuperTransformer and loaded.kind == "hat"
    assert "mixture" in model_payload(_mos("layer-mos"))


def test_build_supernet_and_mixture_config() -> None:
    assert type(build_supernet(SPACE, VOCAB, QUIET, None)) is SuperTransformer
    assert type(build_supernet(SPACE, VOCAB, QUIET, MixtureConfig())) is SuperTransformer
    mos = build_supernet(SPACE, VOCAB, QUIET, MixtureConfig("neuron-mos", 2))
    assert isinstance(mos, MixtureSupernet) and mos.kind == "neuron-mos"
    config = MixtureConfig("layer-mos", 4, 16, 0.0)
    assert MixtureConfig.from_mapping(config.to_dict()) == config
    assert KINDS == ("hat", "layer-mos", "neuron-mos")
    for values, key in (
        ({"kind": "moe"}, "supernet.kind"),
        ({"experts": 0}, "supernet.experts"),
        ({"experts": 1.5}, "supernet.experts"),
        ({"router_hidden": 0}, "supernet.router_hidden"),
        ({"router_dropout": 1.0}, "supernet.router_dropout"),
        ({"gate": 1}, "gate"),
    ):
        with pytest.raises(ConfigError, match=key):
            MixtureConfig.from_mapping(values)
    with pytest.raises(ValueError, match="mixture kind"):
        MixtureSupernet(SPACE, VOCAB, QUIET, MixtureConfig("hat"))


def test_train_settings_mixture_keys() -> None:
    hat = TrainSettings(mode="spos", max_updates=10, warmup_updates=2)
    assert hat.mixture() == MixtureConfig("hat")
    relevant = hat.result_relevant()
    assert not {"kind", "experts", "router_hidden", "router_dropout"} & set(relevant)
    mos = TrainSettings(mode="sandwich", kind="neuron-mos", experts=3, warmup_updates=0)
    assert mos.mixture() == MixtureConfig("neuron-mos", 3)
    assert mos.result_relevant()["kind"] == "neuron-mos"
    assert mos.result_relevant()["experts"] == 3
    with pytest.raises(ConfigError, match=r"supernet\.kind"):
        TrainSettings(mode="spos", kind="mos", warmup_updates=0)
    with pytest.raises(ConfigError, match=r"supernet\.experts"):
        TrainSettings(mode="spos", kind="layer-mos", experts=0, warmup_updates=0)
    with pytest.raises(ConfigError, match=r"supernet\.kind.*from-scratch"):
        TrainSettings(mode="fixed", kind="layer-mos", warmup_updates=0)
    config = {"supernet": {"kind": "layer-mos", "compare": ["hat"], "experts": 2}}
    settings = TrainSettings.from_config(config, "supernet")
    assert settings.mode == "spos" and settings.kind == "layer-mos"


TRAIN = dict(
    mode="spos",
    kind="neuron-mos",
    experts=2,
    router_hidden=16,
    seed=5,
    max_updates=4,
    max_tokens=200,
    update_freq=1,
    lr=3e-3,
    warmup_updates=1,
    save_interval_updates=2,
    valid_interval_updates=0,
    log_interval_updates=1,
    valid_sentences=8,
    device="cpu",
    max_positions=64,
)


def _trainer(data: Path, state: Path) -> Trainer:
    config = ModelConfig(dropout=0.1, attention_dropout=0.1, max_positions=64)
    settings = TrainSettings(**TRAIN)
    return Trainer(data, settings, space="demo", model_config=config, state_dir=state,
                   progress=False)  # fmt: skip


def test_mixture_training_resumes_bit_identically(tiny_data: Path, tmp_path: Path) -> None:
    straight = _trainer(tiny_data, tmp_path / "a").run(tmp_path / "a.pt")
    assert straight.finished and straight.updates == 4
    # "Killed" after 3 updates: the last saved state is at update 2, update 3 is redone.
    stopped = _trainer(tiny_data, tmp_path / "b").run(tmp_path / "b.pt", stop_after=3)
    assert not stopped.finished and not (tmp_path / "b.pt").exists()
    assert _trainer(tiny_data, tmp_path / "b").run(tmp_path / "b.pt").finished
    a, meta = load_model(tmp_path / "a.pt")
    b, _ = load_model(tmp_path / "b.pt")
    assert type(a) is MixtureSupernet and a.kind == "neuron-mos" and meta["kind"] == "neuron-mos"
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key
    torch.manual_seed(5)
    initial = MixtureSupernet(SPACE, a.vocab_size, a.config, a.mixture).state_dict()
    assert not torch.equal(sa["encoder_layers.0.ffn.fc1_weights"],
                           initial["encoder_layers.0.ffn.fc1_weights"])  # fmt: skip


def test_supernet_predictor_names_the_kind(tiny_data: Path) -> None:
    torch.manual_seed(0)
    vocab = load_vocab_size(tiny_data)
    model = MixtureSupernet(SPACE, vocab, QUIET, MixtureConfig("neuron-mos", 2)).eval()
    predictor = SupernetPredictor(model, tiny_data, metric="loss", max_tokens=128)
    assert predictor.name == "Neuron-wise MoS (loss)"
    arch = SPACE.smallest()
    scores = predictor.predict([arch])
    split = load_split(tiny_data, "valid")
    dense = validation_loss(model.extract(arch), split).loss_bits
    np.testing.assert_allclose(scores, [-dense], atol=1e-4)

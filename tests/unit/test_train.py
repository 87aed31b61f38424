"""The training loop: learning, SPOS/sandwich sampling, exact resumption, refused stale state."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from nasflow.core.state import TrainStateError
from nasflow.model import ModelConfig
from nasflow.model.checkpoint import load_model
from nasflow.space.hat import get_space
from nasflow.train.loop import Trainer, subnets_for_update
from nasflow.train.settings import TrainSettings

MODEL = ModelConfig(dropout=0.1, attention_dropout=0.1, max_positions=64)
SPACE = get_space("demo")


def _settings(**changes) -> TrainSettings:
    values = dict(
        mode="fixed",
        seed=3,
        max_updates=24,
        max_tokens=300,
        update_freq=2,
        lr=3e-3,
        warmup_updates=6,
        save_interval_updates=5,
        valid_interval_updates=8,
        log_interval_updates=4,
        valid_sentences=20,
        clip_norm=1.0,
        device="cpu",
        max_positions=64,
    )
    values.update(changes)
    return TrainSettings(**values)


def _trainer(data: Path, state: Path, settings: TrainSettings) -> Trainer:
    arch = SPACE.smallest() if settings.mode == "fixed" else None
    return Trainer(
        data,
        settings,
        space="demo",
        model_config=MODEL,
        state_dir=state,
        arch=arch,
        progress=False,
    )


def _weights(path: Path) -> dict[str, torch.Tensor]:
    model, _ = load_model(path)
    return model.state_dict()


def _curve(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    return [{k: v for k, v in row.items() if k not in ("wps", "wall_s")} for row in rows]


def test_fixed_arch_training_learns_and_writes_outputs(tiny_data: Path, tmp_path: Path) -> None:
    result = _trainer(tiny_data, tmp_path / "state", _settings()).run(
        tmp_path / "model.pt", tmp_path / "curve.csv"
    )
    assert result.finished and result.updates == 24
    rows = _curve(tmp_path / "curve.csv")
    assert [int(r["update"]) for r in rows] == [4, 8, 12, 16, 20, 24]
    losses = [float(r["train_loss"]) for r in rows]
    assert losses[-1] < losses[0] - 1.0
    valid = [float(r["valid_loss"]) for r in rows if r["valid_loss"]]
    assert len(valid) == 3 and valid[-1] < valid[0]
    model, meta = load_model(tmp_path / "model.pt")
    assert model.layout == SPACE.smallest() and meta["updates"] == 24
    assert meta["valid"]["valid_loss"] == pytest.approx(valid[-1], abs=1e-3)


@pytest.mark.parametrize("mode", ["fixed", "spos", "sandwich"])
def test_killed_run_resumes_to_the_same_result(tiny_data: Path, tmp_path: Path, mode: str) -> None:
    settings = _settings(mode=mode, max_updates=14)
    straight = _trainer(tiny_data, tmp_path / "a", settings).run(
        tmp_path / "a.pt", tmp_path / "a.csv"
    )
    # "Killed" after 12 updates: the last saved state is at update 10, updates 11-12 are lost.
    stopped = _trainer(tiny_data, tmp_path / "b", settings).run(
        tmp_path / "b.pt", tmp_path / "b.csv", stop_after=12
    )
    assert not stopped.finished and not (tmp_path / "b.pt").exists()
    resumed = _trainer(tiny_data, tmp_path / "b", settings).run(
        tmp_path / "b.pt", tmp_path / "b.csv"
    )
    assert resumed.finished and resumed.updates == straight.updates
    a, b = _weights(tmp_path / "a.pt"), _weights(tmp_path / "b.pt")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert _curve(tmp_path / "a.csv") == _curve(tmp_path / "b.csv")


def test_state_from_other_inputs_is_refused(tiny_data: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    _trainer(tiny_data, state, _settings(max_updates=5, warmup_updates=2)).run(stop_after=5)
    with pytest.raises(TrainStateError, match=r"settings\.lr: 0\.003 -> 0\.001"):
        _trainer(tiny_data, state, _settings(max_updates=5, warmup_updates=2, lr=1e-3)).run()
    # Cadence settings do not change results, so they may differ.
    _trainer(
        tiny_data, state, _settings(max_updates=5, warmup_updates=2, log_interval_updates=1)
    ).run()
    fresh = _trainer(tiny_data, state, _settings(max_updates=5, warmup_updates=2, lr=1e-3))
    fresh.state.clear()
    assert fresh.run().finished


def test_spos_and_sandwich_subnets() -> None:
    spos = _settings(mode="spos")
    first = [subnets_for_update(SPACE, spos, update, None) for update in range(20)]
    again = [subnets_for_update(SPACE, spos, update, None) for update in range(20)]
    assert first == again and all(len(s) == 1 for s in first)
    assert len({s[0] for s in first}) > 10
    other_seed = [
        subnets_for_update(SPACE, _settings(mode="spos", seed=4), u, None) for u in range(20)
    ]
    assert other_seed != first
    sandwich = subnets_for_update(SPACE, _settings(mode="sandwich", sandwich_random=2), 0, None)
    assert sandwich[:2] == [SPACE.largest(), SPACE.smallest()] and len(sandwich) == 4


def test_supernet_training_improves_largest_and_smallest(tiny_data: Path, tmp_path: Path) -> None:
    settings = _settings(mode="sandwich", max_updates=16, valid_interval_updates=4)
    result = _trainer(tiny_data, tmp_path / "s", settings).run(
        tmp_path / "s.pt", tmp_path / "s.csv"
    )
    rows = [r for r in _curve(tmp_path / "s.csv") if r["valid_loss"]]
    assert float(rows[-1]["valid_loss"]) < float(rows[0]["valid_loss"])
    assert float(rows[-1]["valid_loss_smallest"]) < float(rows[0]["valid_loss_smallest"])
    model, meta = load_model(tmp_path / "s.pt")
    assert model.is_supernet and meta["mode"] == "sandwich"
    assert set(result.valid) == {"valid_loss", "valid_loss_smallest"}


def test_checkpoint_averaging(tiny_data: Path, tmp_path: Path) -> None:
    settings = _settings(max_updates=15, average_last=3)
    trainer = _trainer(tiny_data, tmp_path / "state", settings)
    trainer.run(tmp_path / "avg.pt")
    snapshots = sorted((tmp_path / "state" / "snapshots").glob("*.pt"))
    assert [p.name for p in snapshots] == [
        "update00000005.pt",
        "update00000010.pt",
        "update00000015.pt",
    ]
    states = [torch.load(p, weights_only=True) for p in snapshots]
    averaged = _weights(tmp_path / "avg.pt")
    for key, value in averaged.items():
        expected = sum(s[key].double() for s in states) / 3
        torch.testing.assert_close(value.double(), expected)


def test_settings_from_config_and_errors() -> None:
    config = {"seed": 9, "model": {"max_positions": 128}, "supernet": {"sampling": "sandwich"}}
    settings = TrainSettings.from_config(config, "supernet")
    assert settings.mode == "sandwich" and settings.seed == 9 and settings.max_positions == 128
    assert TrainSettings.from_config({"train": {"lr": 0.1}}, "train").mode == "fixed"
    with pytest.raises(Exception, match="warmup_updates"):
        TrainSettings(max_updates=10, warmup_updates=10)
    with pytest.raises(Exception, match="unknown training setting"):
        TrainSettings.from_mapping({"learning_rate": 1})

"""The load-robust latency protocol: the statistic, the bounded re-measurement, interleaved
rounds, and one protocol for the latency dataset and the final models' measurement."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

import nasflow.efficiency.latency_dataset as dataset_module
from nasflow.cli import main
from nasflow.core.errors import ConfigError
from nasflow.core.state import TrainStateError
from nasflow.efficiency.latency import Parts, time_parts, trimmed_stats
from nasflow.efficiency.latency_dataset import (
    ROWS_FILE,
    DatasetSettings,
    collect_latency_dataset,
    meta_path,
    sample_archs,
)
from nasflow.efficiency.robust import (
    RobustSettings,
    measure_until_stable,
    pinned,
    robust_estimate,
    runs_per_round,
)

QUIET = [[10.0, 10.1], [10.05, 10.2], [10.1, 10.0], [10.02, 10.3], [10.04, 10.06]]


def test_a_disturbed_round_is_ignored() -> None:
    disturbed = [*QUIET[:2], [20.0, 21.0], *QUIET[2:]]
    quiet = robust_estimate(QUIET)
    estimate = robust_estimate(disturbed)
    assert estimate.stable and quiet.stable
    assert estimate.value == pytest.approx(quiet.value, rel=0.005)
    assert 10.0 <= estimate.value <= 10.1
    pooled = [x for r in disturbed for x in r]
    assert trimmed_stats(pooled)[0] > 11.0  # HAT's trimmed mean follows the disturbance


def test_runs_timed_in_steps_keep_the_undisturbed_steps() -> None:
    """Every sentence has one preempted step (a different one): the per-step quantiles sum to
    the undisturbed sentence, which the sentences' own times never show."""
    runs = [[1.0, 1.0, 1.0, 1.0] for _ in range(8)]
    for i, run in enumerate(runs):
        run[i % 4] = 5.0
    estimate = robust_estimate([runs[:4], runs[4:]], quantile=0.2)
    assert estimate.value == pytest.approx(4.0) and estimate.stable
    assert robust_estimate([[sum(r) for r in runs]]).value == pytest.approx(8.0)
    with pytest.raises(ValueError, match="different numbers of components"):
        robust_estimate([[[1.0, 2.0]], [[1.0]]])


def test_disagreeing_halves_are_unstable_and_the_spread_is_relative() -> None:
    rounds = [[10.0], [13.0], [10.2], [13.0], [13.1], [13.0]]  # the odd rounds all disturbed
    estimate = robust_estimate(rounds, quantile=0.0, tolerance=0.05)
    assert estimate.value == 10.0 and estimate.round_values == (10.0, 13.0, 10.2, 13.0, 13.1, 13.0)
    assert estimate.spread == pytest.approx(0.3) and not estimate.stable  # 10 vs 13
    assert robust_estimate(rounds, tolerance=0.31).stable
    assert robust_estimate([[10.0, 12.0]]).spread == 0.0  # one round: nothing to compare
    with pytest.raises(ValueError, match="no latency samples"):
        robust_estimate([[], []])


def test_unstable_series_is_remeasured_a_bounded_number_of_times() -> None:
    calls = []

    def always_noisy() -> list[float]:
        calls.append(1)
        return [10.0] if len(calls) % 2 else [15.0, 16.0]

    settings = RobustSettings(rounds=4, tolerance=0.05, max_retries=2)
    outcome = measure_until_stable(always_noisy, settings)
    assert outcome.retries == 2 and len(calls) == 4 * 3 and len(outcome.rounds) == 12
    assert not outcome.estimate.stable

    calls.clear()

    def calms_down() -> list[float]:
        calls.append(1)
        return [10.0] if len(calls) > 4 or len(calls) == 1 else [15.0]

    outcome = measure_until_stable(calms_down, settings)
    assert outcome.retries == 1 and len(calls) == 8 and outcome.estimate.stable
    assert outcome.estimate.value == pytest.approx(10.0)  # every round is kept

    calls.clear()
    steady = measure_until_stable(lambda: calls.append(1) or [5.0, 5.1], settings)
    assert steady.retries == 0 and len(calls) == 4


def test_settings_are_checked_and_named() -> None:
    assert runs_per_round(10, 5) == 2 and runs_per_round(10, 3) == 4 and runs_per_round(1, 5) == 1
    with pytest.raises(ConfigError, match=r"latency\.robust: quantile must be in \[0, 1\]"):
        RobustSettings(quantile=1.5)
    with pytest.raises(ConfigError, match=r"latency\.robust: unknown key"):
        RobustSettings.from_mapping({"round": 3})
    with pytest.raises(ConfigError, match=r"latency\.protocol: unknown protocol 'fast'"):
        DatasetSettings(space="demo", protocol="fast")
    settings = DatasetSettings(space="demo", protocol="robust", robust={"rounds": 3})
    assert settings.robust == RobustSettings(rounds=3)


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no sched_setaffinity")
def test_pinning_uses_the_last_cores_and_restores() -> None:
    before = os.sched_getaffinity(0)
    with pinned(1, True) as cores:
        assert cores == [max(before)] and os.sched_getaffinity(0) == {max(before)}
    assert os.sched_getaffinity(0) == before
    with pinned(1, False) as cores:
        assert cores is None and os.sched_getaffinity(0) == before


def test_rounds_interleave_the_parts_and_the_reference() -> None:
    order: list[str] = []

    def part(name: str) -> Parts:
        return Parts(lambda: order.append(name + "e"), lambda: order.append(name + "d"), CPU)

    settings = RobustSettings(rounds=3, tolerance=10.0)  # always stable: no retries
    timings = time_parts(
        part("a"), warmup=1, runs=5, protocol="robust", robust=settings, reference=part("r")
    )
    warm = ["ae", "ad", "re", "rd"]
    one_round = ["ae", "ae", "ad", "ad", "re", "re", "rd", "rd"]  # ceil(5 / 3) = 2 runs each
    assert order == warm + one_round * 3
    assert timings.runs == 6 and timings.reference_ms is not None and timings.reference_ms > 0
    assert timings.protocol["name"] == "robust" and timings.protocol["retries"] == 0
    assert timings.protocol["rounds_measured"] == 3 and timings.protocol["runs_per_round"] == 2

    order.clear()
    hat = time_parts(part("a"), warmup=1, runs=3)
    assert order == ["ae"] * 4 + ["ad"] * 4 and hat.protocol == {"name": "hat", "trim": 0.1}


CPU = torch.device("cpu")
TINY = {
    "space": "demo",
    "size": 4,
    "backend": "torch",
    "vocab_size": 40,
    "length": 4,
    "beam": 2,
    "warmup": 0,
    "runs": 2,
    "protocol": "robust",
    "robust": {"rounds": 2, "max_retries": 1},
}


class Killed(RuntimeError):
    pass


def test_robust_dataset_records_the_protocol_and_resumes(tmp_path: Path, monkeypatch) -> None:
    settings = DatasetSettings(**TINY)
    measured: list[str] = []
    real = dataset_module.measure_with

    def counting(model, *args, **kwargs):
        measured.append(model.arch.id)
        return real(model, *args, **kwargs)

    monkeypatch.setattr(dataset_module, "measure_with", counting)

    def kill_after_two(done: int, total: int) -> None:
        if done == 2:
            raise Killed

    state = tmp_path / "state"
    with pytest.raises(Killed):
        collect_latency_dataset(settings, tmp_path / "d.csv", state, progress=kill_after_two)
    frame = collect_latency_dataset(settings, tmp_path / "d.csv", state)
    assert len(measured) == 4 and len(set(measured)) == 4  # the first two were not re-measured
    assert list(frame["arch_id"]) == [a.id for a in sample_archs(settings)]

    rows = [json.loads(line) for line in (state / ROWS_FILE).read_text().splitlines()]
    for row in rows:
        protocol = row["protocol"]
        assert protocol["name"] == "robust" and protocol["rounds"] == 2
        assert protocol["retries"] == row["retries"] <= 1
        assert protocol["rounds_measured"] == 2 * (1 + row["retries"])
        assert isinstance(protocol["stable"], bool)
    written = pd.read_csv(tmp_path / "d.csv")
    assert set(written["protocol"]) == {"robust"}
    meta = json.loads(meta_path(tmp_path / "d.csv").read_text())
    assert meta["settings"]["protocol"] == "robust" and meta["settings"]["robust"]["rounds"] == 2
    assert meta["protocol"]["name"] == "robust" and meta["protocol"]["quantile"] == 0.0
    assert meta["retries"] == sum(row["retries"] for row in rows)

    hat = DatasetSettings(**{**TINY, "protocol": "hat"})
    with pytest.raises(TrainStateError, match="protocol"):
        collect_latency_dataset(hat, tmp_path / "d.csv", state)
    assert "protocol" not in hat.fingerprint_inputs()  # HAT states from before still resume


def test_robust_drift_correction_times_the_reference_in_the_rounds(tmp_path: Path) -> None:
    settings = DatasetSettings(**{**TINY, "size": 3, "drift_correction": True})
    frame = collect_latency_dataset(settings, tmp_path / "d.csv", tmp_path / "state")
    rows = [json.loads(line) for line in (tmp_path / "state" / ROWS_FILE).read_text().splitlines()]
    assert len(frame) == 3 and all(row["reference_ms"] > 0 for row in rows)


def _config(tmp_path: Path) -> Path:
    config = {
        "experiment": "lat",
        "space": "demo",
        "threads": 1,
        "data": {"corpus": "multi30k", "source_lang": "en", "target_lang": "de", "vocab_size": 100},
        "latency": {
            "targets": {"cpu1": {"device": "cpu", "backend": "torch", "threads": 1}},
            "dataset_size": 3,
            "length": 4,
            "beam": 2,
            "warmup": 0,
            "runs": 3,
            "protocol": "robust",
            "robust": {"rounds": 3, "quantile": 0.1, "pin": True},
        },
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_measure_uses_the_protocol_of_the_targets_dataset(tmp_path: Path, monkeypatch) -> None:
    """`nasflow latency measure` (the measure_final rule) builds the dataset's settings object."""
    config = str(_config(tmp_path))
    seen: list[DatasetSettings] = []
    real = dataset_module.measure_with

    def recording(model, settings, *args, **kwargs):
        seen.append(settings)
        return real(model, settings, *args, **kwargs)

    monkeypatch.setattr(dataset_module, "measure_with", recording)
    out = tmp_path / "lat" / "dataset.csv"
    dataset = ["latency", "dataset", "--config", config, "--target", "cpu1", "--out", str(out)]
    assert main(dataset) == 0
    result = tmp_path / "final.json"
    measure = ["latency", "measure", "--config", config, "--target", "cpu1", "--out", str(result)]
    assert main(measure) == 0
    assert len(seen) == 4
    dataset_settings, final_settings = seen[0], seen[-1]
    assert final_settings == dataset_settings  # the same settings object, size and all
    meta = json.loads(meta_path(out).read_text())
    record = json.loads(result.read_text())
    protocol = record["protocol"]
    assert protocol["name"] == "robust" and protocol["quantile"] == 0.1 and protocol["rounds"] == 3
    for key in ("name", "warmup", "runs", "rounds", "quantile", "tolerance", "max_retries", "pin"):
        assert protocol[key] == meta["protocol"][key]
    if hasattr(os, "sched_setaffinity"):
        assert protocol["pinned_cores"] == [max(os.sched_getaffinity(0))]
    assert record["runs"] == 3 * (1 + protocol["retries"]) and record["total_ms"] > 0

    assert main([*measure, "--protocol", "hat"]) == 0
    assert json.loads(result.read_text())["protocol"]["name"] == "hat"


def test_measure_scales_like_a_drift_corrected_dataset(tmp_path: Path) -> None:
    """With drift_correction the final model is scaled to the dataset's typical reference."""
    config_path = _config(tmp_path)
    config = yaml.safe_load(config_path.read_text())
    config["latency"]["drift_correction"] = True
    config_path.write_text(yaml.safe_dump(config))
    out = tmp_path / "lat" / "dataset.csv"
    dataset = ["latency", "dataset", "--config", str(config_path), "--target", "cpu1"]
    assert main([*dataset, "--out", str(out)]) == 0
    meta = json.loads(meta_path(out).read_text())
    rows = [json.loads(line) for line in (tmp_path / "lat" / "state" / ROWS_FILE).open()]
    typical = sorted(row["reference_ms"] for row in rows)[1]
    assert meta["reference_typical_ms"] == pytest.approx(typical)

    result = tmp_path / "final.json"
    measure = ["latency", "measure", "--config", str(config_path), "--target", "cpu1"]
    assert main([*measure, "--out", str(result), "--dataset-meta", str(meta_path(out))]) == 0
    record = json.loads(result.read_text())
    assert record["drift_factor"] == pytest.approx(typical / record["reference_ms"])
    assert record["total_ms"] == pytest.approx(record["raw_total_ms"] * record["drift_factor"])
    assert record["encoder_ms"] + record["decoder_ms"] == pytest.approx(record["total_ms"])

    assert main([*measure, "--out", str(result)]) == 0  # no meta: measured, not scaled
    assert json.loads(result.read_text())["drift_factor"] is None
    assert main([*measure, "--out", str(result), "--dataset-meta", str(tmp_path / "no.json")]) == 2

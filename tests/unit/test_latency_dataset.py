"""The latency dataset: sampled from the widened space, resumable, guarded, bad input named."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

import nasflow.efficiency.latency as latency_module
from nasflow.cli import main
from nasflow.core.errors import ConfigError
from nasflow.core.state import TrainStateError
from nasflow.efficiency.latency_dataset import (
    DATASET_COLUMNS,
    PROTOCOL_COLUMNS,
    ROWS_FILE,
    TIMING_COLUMNS,
    DatasetSettings,
    collect_latency_dataset,
    drift_corrected,
    meta_path,
    sample_archs,
)
from nasflow.predictors.latency import LatencyPredictor
from nasflow.space.hat import LATENCY_FEATURE_NAMES, Arch, get_space

TINY = {
    "space": "demo",
    "size": 5,
    "backend": "torch",
    "vocab_size": 40,
    "length": 4,
    "beam": 2,
    "warmup": 0,
    "runs": 1,
}


class Killed(RuntimeError):
    pass


def _counting_measure(monkeypatch) -> list[str]:
    measured: list[str] = []
    real = latency_module.measure

    def counting(model, *args, **kwargs):
        measured.append(model.arch.id)
        return real(model, *args, **kwargs)

    monkeypatch.setattr(latency_module, "measure", counting)
    return measured


def test_dataset_rows_features_and_meta(tmp_path: Path) -> None:
    settings = DatasetSettings(**TINY)
    frame = collect_latency_dataset(settings, tmp_path / "d.csv", tmp_path / "state")
    written = pd.read_csv(tmp_path / "d.csv")
    assert list(written.columns) == [*DATASET_COLUMNS, *PROTOCOL_COLUMNS] and len(written) == 5
    assert set(written["protocol"]) == {"hat"} and set(written["retries"]) == {0}
    space = get_space("demo")
    for _, row in written.iterrows():
        arch = Arch.from_json(row["arch"])
        assert arch.id == row["arch_id"]
        features = [row[name] for name in LATENCY_FEATURE_NAMES]
        assert features == pytest.approx(space.latency_raw_features(arch), rel=1e-5)
        assert row["total_ms"] == pytest.approx(row["encoder_ms"] + row["decoder_ms"], rel=1e-4)
        assert row["encoder_ms"] > 0 and row["decoder_ms"] > 0
    assert list(frame["arch_id"]) == [a.id for a in sample_archs(settings)]
    meta = json.loads(meta_path(tmp_path / "d.csv").read_text())
    assert meta["settings"]["backend"] == "torch" and meta["rows"] == 5
    assert meta["protocol"] == {"name": "hat", "warmup": 0, "runs": 1}
    assert meta["environment"]["threads"] >= 1 and meta["environment"]["device_name"]


def test_wide_sampling_reaches_beyond_the_search_space() -> None:
    space = get_space("demo")
    archs = sample_archs(DatasetSettings(**{**TINY, "size": 60}))
    assert len({a.id for a in archs}) == 60
    assert any(not space.is_valid(a) for a in archs)  # FFN 128 or one head: widened choices
    narrow = sample_archs(DatasetSettings(**{**TINY, "size": 60, "sampling": "search"}))
    assert all(space.is_valid(a) for a in narrow)


def test_killed_run_resumes_without_remeasuring(tmp_path: Path, monkeypatch) -> None:
    settings = DatasetSettings(**TINY)
    measured = _counting_measure(monkeypatch)
    state = tmp_path / "state"

    def kill_after_three(done: int, total: int) -> None:
        if done == 3:
            raise Killed

    with pytest.raises(Killed):
        collect_latency_dataset(settings, tmp_path / "d.csv", state, progress=kill_after_three)
    assert not (tmp_path / "d.csv").exists()  # nothing half-written where the output goes
    assert len(measured) == 3
    with open(state / ROWS_FILE, "a") as rows:
        rows.write('{"arch_id": "trunc')  # a kill in the middle of a row
    frame = collect_latency_dataset(settings, tmp_path / "d.csv", state)
    assert len(measured) == 5 and len(set(measured)) == 5  # only the two missing ones
    assert list(frame["arch_id"]) == [a.id for a in sample_archs(settings)]

    collect_latency_dataset(settings, tmp_path / "again.csv", state)
    assert len(measured) == 5  # a finished state measures nothing


def test_passes_take_the_median_in_shuffled_orders(tmp_path: Path, monkeypatch) -> None:
    settings = DatasetSettings(**{**TINY, "passes": 3})
    measured = _counting_measure(monkeypatch)
    frame = collect_latency_dataset(settings, tmp_path / "d.csv", tmp_path / "state")
    assert len(measured) == 15 and len(frame) == 5
    assert measured[5:10] != measured[:5]  # the second pass runs in another order
    rows = [json.loads(line) for line in (tmp_path / "state" / ROWS_FILE).read_text().splitlines()]
    for _, merged in frame.iterrows():
        mine = [r for r in rows if r["arch_id"] == merged["arch_id"]]
        assert sorted(r["pass"] for r in mine) == [0, 1, 2]
        median = sorted(r["decoder_ms"] for r in mine)[1]
        assert merged["decoder_ms"] == pytest.approx(median, rel=1e-5)


def test_drift_correction_scales_by_the_reference_of_the_moment() -> None:
    rows = [
        {"reference_ms": 2.0, **{name: 10.0 for name in TIMING_COLUMNS}},
        {"reference_ms": 4.0, **{name: 30.0 for name in TIMING_COLUMNS}},  # a slow spell
        {"reference_ms": 3.0, **{name: 15.0 for name in TIMING_COLUMNS}},
    ]
    corrected = drift_corrected(rows)  # the typical reference is 3.0
    assert [row["total_ms"] for row in corrected] == pytest.approx([15.0, 22.5, 15.0])
    assert corrected[1]["reference_ms"] == 4.0


def test_dataset_with_drift_correction(tmp_path: Path) -> None:
    for backend in ("torch", "onnxruntime"):
        settings = DatasetSettings(
            **{**TINY, "size": 3, "backend": backend, "drift_correction": True}
        )
        state = tmp_path / backend
        frame = collect_latency_dataset(settings, tmp_path / f"{backend}.csv", state)
        rows = [json.loads(line) for line in (state / ROWS_FILE).read_text().splitlines()]
        assert all(row["reference_ms"] > 0 for row in rows)
        typical = sorted(row["reference_ms"] for row in rows)[1]
        for row, (_, merged) in zip(rows, frame.iterrows(), strict=True):
            factor = typical / row["reference_ms"]
            assert merged["decoder_ms"] == pytest.approx(row["decoder_ms"] * factor, rel=1e-4)


def test_changed_settings_are_refused_until_fresh(tmp_path: Path) -> None:
    settings = DatasetSettings(**TINY)
    collect_latency_dataset(settings, tmp_path / "d.csv", tmp_path / "state")
    changed = DatasetSettings(**{**TINY, "runs": 2})
    with pytest.raises(TrainStateError, match=r"latency_dataset.runs: 1 -> 2"):
        collect_latency_dataset(changed, tmp_path / "d.csv", tmp_path / "state")
    frame = collect_latency_dataset(changed, tmp_path / "d.csv", tmp_path / "state", fresh=True)
    assert len(frame) == 5


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"backend": "tvm"}, "unknown latency backend 'tvm'"),
        ({"sampling": "huge"}, "latency sampling must be one of"),
        ({"size": 0}, "size must be >= 1"),
        ({"passes": 0}, "passes must be >= 1"),
        ({"device": "tpu"}, "device must be cpu or cuda"),
        ({"space": "nope"}, "nope"),
    ],
)
def test_bad_settings_are_named(change, message) -> None:
    with pytest.raises((ConfigError, ValueError), match=message):
        DatasetSettings(**{**TINY, **change})


def _config(tmp_path: Path, **latency) -> Path:
    config = {
        "experiment": "lat",
        "space": "demo",
        "threads": 1,
        "data": {"corpus": "multi30k", "source_lang": "en", "target_lang": "de", "vocab_size": 100},
        "latency": {
            "targets": {"cpu1": {"device": "cpu", "backend": "onnxruntime", "threads": 1}},
            "dataset_size": 3,
            "length": 4,
            "beam": 2,
            "warmup": 0,
            "runs": 2,
            **latency,
        },
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_dataset_and_measure_commands(tmp_path: Path, capsys) -> None:
    config = str(_config(tmp_path))
    out = tmp_path / "lat" / "dataset.csv"
    args = ["latency", "dataset", "--config", config, "--target", "cpu1", "--out", str(out)]
    assert main(args) == 0
    assert len(pd.read_csv(out)) == 3 and (tmp_path / "lat" / "state" / ROWS_FILE).is_file()
    err = capsys.readouterr().err
    assert "3 architectures on cpu/onnxruntime (1 threads, hat protocol, 0 re-measurements)" in err

    result = tmp_path / "one.json"
    args = [
        "latency",
        "measure",
        "--config",
        config,
        "--target",
        "cpu1",
        "--arch",
        "smallest",
        "--backend",
        "torch",
        "--out",
        str(result),
    ]
    assert main(args) == 0
    record = json.loads(result.read_text())
    assert record["backend"] == "torch" and record["arch_id"] == get_space("demo").smallest().id
    assert record["environment"]["threads"] == 1 and record["runs"] == 2
    assert record["protocol"] == {"name": "hat", "warmup": 0, "runs": 2, "trim": 0.1}

    predictor = tmp_path / "predictor"
    train = ["latency", "train-predictor", "--dataset", str(out), "--space", "demo", "--out",
             str(predictor), "--steps", "20", "--hidden-dim", "8"]  # fmt: skip
    assert main(train) == 0
    smallest = get_space("demo").smallest()
    assert main([*args, "--predictor", str(predictor / "model.pt")]) == 0
    record = json.loads(result.read_text())
    expected = LatencyPredictor.from_file(predictor / "model.pt").predict_ms([smallest])[0]
    assert record["predicted_ms"] == pytest.approx(expected)  # an untrained MLP: any value
    assert record["predicted_target"] == "total_ms" and record["total_ms"] > 0
    assert "(predicted " in capsys.readouterr().err

    assert main([*args[:5], "gpu9", "--out", str(result)]) == 2
    assert "latency.targets has no target 'gpu9' (known: ['cpu1'])" in capsys.readouterr().err


def test_bad_target_config_is_named(tmp_path: Path, capsys) -> None:
    config = _config(
        tmp_path, targets={"cpu": {"device": "cpu", "backend": "tflite", "threads": 1}}
    )
    args = ["latency", "dataset", "--config", str(config), "--out", str(tmp_path / "d.csv")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "latency.targets.cpu.backend" in err and "tflite" in err

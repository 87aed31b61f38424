"""HAT latency predictor: dataset checks, training on a known synthetic latency, files, CLI."""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from nasflow.cli import build_parser
from nasflow.core.errors import ConfigError, DataError
from nasflow.efficiency.latency_dataset import DATASET_COLUMNS, dataset_row
from nasflow.predictors.latency import (
    LatencyMLP,
    LatencyPredictor,
    PredictorSettings,
    read_latency_dataset,
    split_indices,
    train_latency_predictor,
)
from nasflow.space.hat import LATENCY_FEATURE_NAMES, Arch, ArchError, get_space

HEADER = [
    "arch_id",
    "arch",
    *LATENCY_FEATURE_NAMES,
    "encoder_ms",
    "decoder_ms",
    "total_ms",
    "encoder_std_ms",
    "decoder_std_ms",
]
SMALL = {"hidden_dim": 32, "hidden_layers": 1, "steps": 50}  # plumbing tests: fast, not accurate


def synthetic_latency(raw: list[float]) -> tuple[float, float]:
    """A smooth known latency (ms) of the raw features: encoder and decoder part."""
    e, le, fe, he, d, ld, fd, hs, hc, attended = raw
    encoder = 0.05 * le * (e / 128) * (1 + fe / 512 + 0.1 * he)
    decoder = 0.4 * ld * (d / 128) * (1 + fd / 512 + 0.1 * (hs + hc) + 0.2 * attended)
    return encoder, decoder


def sample_archs(n: int, space_name: str = "demo") -> list[Arch]:
    space = get_space(space_name).widened()
    archs: dict[str, Arch] = {}
    seed = 0
    while len(archs) < n:
        arch = space.sample(random.Random(seed))
        archs.setdefault(arch.id, arch)
        seed += 1
    return list(archs.values())


def write_dataset(path: Path, archs: list[Arch], latency=synthetic_latency) -> Path:
    space = get_space(archs[0].space)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for arch in archs:
            raw = space.latency_raw_features(arch)
            encoder, decoder = latency(raw)
            row = [arch.id, arch.to_json(), *raw, encoder, decoder, encoder + decoder, 0.01, 0.1]
            writer.writerow(row)
    return path


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("latency") / "latency.csv", sample_archs(300))


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory) -> tuple[Path, dict]:
    """A small MLP trained well enough to learn the synthetic latency."""
    out = tmp_path_factory.mktemp("predictor")
    settings = PredictorSettings(hidden_dim=64, hidden_layers=2, steps=1500, lr=1e-3)
    return out, train_latency_predictor(dataset, "demo", settings, out)


def test_header_is_the_dataset_writers():
    assert tuple(HEADER) == DATASET_COLUMNS


# ---- learning -----------------------------------------------------------------------------------


def test_learns_a_known_smooth_latency(trained):
    _, report = trained
    assert report["test"]["rel_mae"] < 0.10
    assert report["valid"]["rel_mae"] < 0.10
    assert report["test"]["kendall"] > 0.8
    assert report["train_loss"]["final_batch_mse"] < report["train_loss"]["first_batch_mse"]


def test_eval_json_and_files(trained, dataset):
    out, report = trained
    assert {p.name for p in out.iterdir()} >= {
        "model.pt",
        "eval.json",
        "predicted_vs_measured.png",
        "predictions.csv",
    }
    assert json.loads((out / "eval.json").read_text()) == json.loads(json.dumps(report))
    for split in ("valid", "test"):
        assert set(report[split]) == {
            "n",
            "rmse_ms",
            "mae_ms",
            "rel_mae",
            "max_rel_error",
            "kendall",
        }
        assert report[split]["max_rel_error"] >= report[split]["rel_mae"]
    assert report["train"]["n"] + report["valid"]["n"] + report["test"]["n"] == 300
    assert (report["valid"]["n"], report["test"]["n"]) == (30, 30)
    assert report["settings"]["steps"] == 1500
    assert report["train_seconds"] > 0
    assert report["target_scale_ms"] == pytest.approx(
        pd.read_csv(dataset)["total_ms"]
        .to_numpy()[split_indices(300, PredictorSettings())["train"]]
        .max()
    )
    assert (out / "predicted_vs_measured.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_model_file_contents(trained, dataset):
    out, _ = trained
    payload = torch.load(out / "model.pt", weights_only=True)
    assert payload["space"] == "demo"
    assert payload["target"] == "total_ms"
    assert payload["n_train"] == 240
    assert payload["feature_scale"] == list(get_space("demo").latency_feature_scale)
    assert payload["settings"]["hidden_dim"] == 64
    assert payload["dataset_sha256"] == hashlib.sha256(dataset.read_bytes()).hexdigest()


def test_loaded_predictor_reproduces_the_training_predictions(trained, dataset):
    out, report = trained
    predictor = LatencyPredictor.from_file(out / "model.pt")
    assert (predictor.space_name, predictor.target) == ("demo", "total_ms")
    table = pd.read_csv(out / "predictions.csv")
    archs = {a.id: a for a in map(Arch.from_json, pd.read_csv(dataset)["arch"])}
    got = predictor.predict_ms([archs[i] for i in table["arch_id"]])
    np.testing.assert_allclose(got, table["predicted_ms"], rtol=1e-5)
    test = table[table["split"] == "test"]
    rel = np.mean(np.abs(test["predicted_ms"] - test["measured_ms"]) / test["measured_ms"])
    assert rel == pytest.approx(report["test"]["rel_mae"])
    assert predictor.predict_ms([]).shape == (0,)


def test_features_are_the_spaces_latency_features(trained):
    out, _ = trained
    predictor = LatencyPredictor.from_file(out / "model.pt")
    archs = sample_archs(5)
    space = get_space("demo")
    direct = predictor.predict_features(np.array([space.latency_features(a) for a in archs]))
    np.testing.assert_allclose(predictor.predict_ms(archs), direct, rtol=1e-6)


def test_same_seed_same_predictions_other_seed_differs(dataset, tmp_path):
    archs = sample_archs(10)
    first, second, other = (
        train_latency_predictor(dataset, "demo", PredictorSettings(**SMALL, seed=s), tmp_path / d)
        for s, d in ((3, "a"), (3, "b"), (4, "c"))
    )
    preds = [LatencyPredictor.from_file(tmp_path / d / "model.pt").predict_ms(archs) for d in "abc"]
    np.testing.assert_array_equal(preds[0], preds[1])
    assert first["test"] == second["test"]
    assert not np.array_equal(preds[0], preds[2])
    assert other["test"]["n"] == first["test"]["n"]


def test_training_leaves_the_global_torch_rng_alone(dataset, tmp_path):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train_latency_predictor(dataset, "demo", PredictorSettings(**SMALL), tmp_path)
    assert torch.equal(torch.rand(3), expected)


def test_other_targets_and_a_dataframe(dataset, tmp_path):
    frame = read_latency_dataset(dataset, "demo")
    report = train_latency_predictor(
        frame, "demo", PredictorSettings(**SMALL, target="encoder_ms"), tmp_path
    )
    assert report["target"] == "encoder_ms"
    assert report["target_scale_ms"] <= frame["encoder_ms"].max()
    assert LatencyPredictor.from_file(tmp_path / "model.pt").target == "encoder_ms"


def test_mlp_shape_is_hats_net():
    model = LatencyMLP(hidden_dim=400, hidden_layers=3)
    shapes = [tuple(p.shape) for p in model.parameters()]
    assert shapes == [(400, 10), (400,), *[(400, 400), (400,)] * 3, (1, 400), (1,)]
    assert model(torch.zeros(7, 10)).shape == (7,)


# ---- dataset errors -----------------------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"nope\.csv: latency dataset not found"):
        read_latency_dataset(tmp_path / "nope.csv", "demo")


def test_missing_columns_are_named(dataset, tmp_path):
    path = tmp_path / "cut.csv"
    pd.read_csv(dataset).drop(columns=["decoder_ms", "encoder_heads_mean"]).to_csv(
        path, index=False
    )
    with pytest.raises(
        DataError, match=r"cut\.csv: missing column\(s\): encoder_heads_mean, decoder_ms"
    ):
        read_latency_dataset(path, "demo")


def test_empty_dataset(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text(",".join(HEADER) + "\n")
    with pytest.raises(DataError, match=r"empty\.csv: empty dataset"):
        read_latency_dataset(path, "demo")
    (tmp_path / "blank.csv").write_text("")
    with pytest.raises(DataError, match=r"blank\.csv"):
        read_latency_dataset(tmp_path / "blank.csv", "demo")


@pytest.mark.parametrize("value", ["nan", "-1.0", "0", "inf", "fast"])
def test_bad_latency_names_the_line_and_arch(dataset, tmp_path, value):
    frame = pd.read_csv(dataset, dtype=str)
    frame.loc[4, "decoder_ms"] = value
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    arch_id = frame.loc[4, "arch_id"]
    with pytest.raises(
        DataError, match=rf"bad\.csv: line 6 \(arch_id {arch_id}\): latency decoder_ms"
    ):
        read_latency_dataset(path, "demo")


def test_reads_what_the_dataset_writer_writes(tmp_path):
    """`collect_latency_dataset` rows, rounded to 6 significant digits as it writes them."""
    space = get_space("demo").widened()
    rows = []
    for arch in sample_archs(40):
        encoder, decoder = synthetic_latency(space.latency_raw_features(arch))
        timing = {"encoder_ms": encoder, "decoder_ms": decoder, "total_ms": encoder + decoder}
        timing |= {"encoder_std_ms": 0.0, "decoder_std_ms": 0.1}
        rows.append(dataset_row(arch, space, timing))
    path = tmp_path / "written.csv"
    frame = pd.DataFrame(rows, columns=list(DATASET_COLUMNS))
    frame.to_csv(path, index=False, float_format="%.6g")
    read = read_latency_dataset(path, "demo")
    features = list(LATENCY_FEATURE_NAMES)
    assert not np.array_equal(read[features].to_numpy(), frame[features].to_numpy())  # rounded
    np.testing.assert_allclose(read[features].to_numpy(), frame[features].to_numpy(), rtol=1e-5)


def test_space_mismatch(tmp_path):
    path = write_dataset(tmp_path / "wmt.csv", sample_archs(5, "hat-wmt"))
    with pytest.raises(
        DataError,
        match=r"space mismatch: file .*wmt\.csv holds architectures of space 'hat-wmt', "
        r"expected 'demo'",
    ):
        read_latency_dataset(path, "demo")
    assert len(read_latency_dataset(path, "hat-wmt")) == 5


def test_widened_architectures_are_accepted(dataset):
    space = get_space("demo")
    archs = [Arch.from_json(t) for t in read_latency_dataset(dataset, "demo")["arch"]]
    assert any(not space.is_valid(a) for a in archs)  # smaller FFN/head choices of widened()


def test_inconsistent_rows(dataset, tmp_path):
    frame = pd.read_csv(dataset, dtype=str)
    frame.loc[2, "arch_id"] = "000000000000"
    frame.to_csv(tmp_path / "id.csv", index=False)
    with pytest.raises(DataError, match=r"line 4 .*arch_id does not match"):
        read_latency_dataset(tmp_path / "id.csv", "demo")
    frame = pd.read_csv(dataset, dtype=str)
    frame.loc[2, "encoder_embed_dim"] = "999"
    frame.to_csv(tmp_path / "feat.csv", index=False)
    with pytest.raises(DataError, match=r"line 4 .*feature columns do not match"):
        read_latency_dataset(tmp_path / "feat.csv", "demo")
    frame = pd.read_csv(dataset, dtype=str)
    frame.loc[0, "arch"] = "{not json"
    frame.to_csv(tmp_path / "json.csv", index=False)
    with pytest.raises(DataError, match=r"json\.csv: line 2 .*invalid architecture JSON"):
        read_latency_dataset(tmp_path / "json.csv", "demo")


def test_too_few_rows(tmp_path):
    path = write_dataset(tmp_path / "two.csv", sample_archs(2))
    with pytest.raises(DataError, match="at least 3 rows"):
        train_latency_predictor(path, "demo", PredictorSettings(**SMALL), tmp_path / "out")
    assert not (tmp_path / "out" / "model.pt").exists()
    three = write_dataset(tmp_path / "three.csv", sample_archs(3))
    report = train_latency_predictor(three, "demo", PredictorSettings(**SMALL), tmp_path / "out")
    assert (report["train"]["n"], report["valid"]["n"], report["test"]["n"]) == (1, 1, 1)
    assert report["test"]["kendall"] is None


# ---- settings -----------------------------------------------------------------------------------


def test_settings_defaults_and_round_trip():
    settings = PredictorSettings()
    assert (settings.hidden_dim, settings.hidden_layers, settings.steps) == (400, 3, 5000)
    assert settings.lr == 1e-5  # HAT's
    assert (settings.batch_size, settings.split, settings.seed) == (128, (0.8, 0.1, 0.1), 1)
    assert settings.target == "total_ms"
    assert PredictorSettings.from_mapping(settings.to_dict()) == settings
    assert PredictorSettings.from_mapping(None) == settings
    assert PredictorSettings.from_mapping({"split": [0.6, 0.2, 0.2]}).split == (0.6, 0.2, 0.2)


def test_unknown_settings_are_named():
    with pytest.raises(ConfigError, match=r"unknown latency predictor setting.*: epochs, lat_norm"):
        PredictorSettings.from_mapping({"lat_norm": 200, "epochs": 3, "lr": 1e-5})


@pytest.mark.parametrize(
    ("changes", "pattern"),
    [
        ({"steps": 0}, "steps"),
        ({"hidden_dim": 2.5}, "hidden_dim"),
        ({"lr": 0}, "lr"),
        ({"split": (0.9, 0.1, 0.0)}, "split"),
        ({"split": (0.5, 0.2, 0.2)}, "split"),
        ({"target": "median_ms"}, "target 'median_ms'"),
    ],
)
def test_bad_settings(changes, pattern):
    with pytest.raises(ConfigError, match=pattern):
        PredictorSettings.from_mapping(changes)


# ---- loading and prediction errors --------------------------------------------------------------


def test_space_mismatch_on_prediction(trained):
    out, _ = trained
    predictor = LatencyPredictor.from_file(out / "model.pt")
    arch = get_space("hat-wmt").largest()
    with pytest.raises(
        ArchError,
        match=rf"trained on space 'demo' cannot predict architecture {arch.id} of space 'hat-wmt'",
    ):
        predictor.predict_ms([get_space("demo").largest(), arch])


def test_bad_model_files(tmp_path, trained):
    with pytest.raises(DataError, match=r"missing\.pt: latency predictor model file not found"):
        LatencyPredictor.from_file(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(DataError, match=r"junk\.pt: cannot read latency predictor"):
        LatencyPredictor.from_file(tmp_path / "junk.pt")
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(DataError, match=r"other\.pt: not a valid latency predictor"):
        LatencyPredictor.from_file(tmp_path / "other.pt")
    payload = torch.load(trained[0] / "model.pt", weights_only=True)
    payload["settings"]["hidden_dim"] = 8
    torch.save(payload, tmp_path / "shape.pt")
    with pytest.raises(DataError, match=r"shape\.pt: not a valid latency predictor"):
        LatencyPredictor.from_file(tmp_path / "shape.pt")


# ---- CLI ----------------------------------------------------------------------------------------


class _LatencyParser:
    """`nasflow latency ...` as the console script parses it."""

    def parse_args(self, argv: list[str]) -> argparse.Namespace:
        return build_parser().parse_args(["latency", *argv])


def _parser() -> _LatencyParser:
    return _LatencyParser()


def test_cli_trains_and_prints_a_summary(dataset, tmp_path, capsys):
    threads = torch.get_num_threads()
    args = _parser().parse_args(
        [
            "train-predictor",
            "--dataset", str(dataset), "--space", "demo", "--out", str(tmp_path),
            "--settings-json", '{"hidden_dim": 16, "steps": 400, "lr": 0.5}',
            "--steps", "30", "--hidden-layers", "1", "--lr", "0.001",
        ]
    )  # fmt: skip
    try:
        assert args.func(args) == 0
    finally:
        torch.set_num_threads(threads)
    line = capsys.readouterr().out.strip()
    assert "test relative MAE" in line and "Kendall" in line and "\n" not in line
    settings = json.loads((tmp_path / "eval.json").read_text())["settings"]
    assert (settings["hidden_dim"], settings["steps"], settings["lr"]) == (16, 30, 0.001)
    assert settings["hidden_layers"] == 1


@pytest.mark.parametrize(
    ("extra", "error", "pattern"),
    [
        (["--settings-json", "{oops"], ConfigError, "--settings-json: invalid JSON"),
        (["--settings-json", "[1]"], ConfigError, "expected a JSON object"),
        (["--settings-json", '{"epochs": 1}'], ConfigError, "epochs"),
        (["--threads", "0"], ConfigError, "--threads"),
        (["--space", "hat-wmt"], DataError, "space mismatch"),
    ],
)
def test_cli_errors(dataset, tmp_path, extra, error, pattern):
    base = ["train-predictor", "--dataset", str(dataset), "--space", "demo"]
    args = _parser().parse_args([*base, "--out", str(tmp_path), *extra])
    with pytest.raises(error, match=pattern):
        args.func(args)


def test_config_schema_defaults_are_the_predictor_defaults():
    from nasflow.config.resolve import load_schema

    schema = load_schema()["properties"]["latency"]["properties"]["predictor"]["properties"]
    defaults = {key: sub["default"] for key, sub in schema.items()}
    assert defaults == PredictorSettings().to_dict()

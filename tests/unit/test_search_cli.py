"""`nasflow search run` end to end on the toy task (tiny supernet, distill MLP, latency model) and
`nasflow search tables` on run folders."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from nasflow.cli import main
from nasflow.core.errors import DataError
from nasflow.data.prepare import load_vocab_size
from nasflow.efficiency.counts import count_params
from nasflow.model import SuperTransformer
from nasflow.model.checkpoint import save_model
from nasflow.predictors.distilled import DistilledPredictor, DistillSettings, train_distill_mlp
from nasflow.predictors.latency import MODEL_FORMAT, LatencyMLP, LatencyPredictor
from nasflow.predictors.supernet import SupernetPredictor
from nasflow.report.search_tables import write_tables
from nasflow.search import PredictorSchedule
from nasflow.space.hat import Arch, get_space

pytestmark = pytest.mark.usefixtures("one_thread")

SPACE = get_space("demo")
CAL = {"iterations": 2, "default": "supernet-calibrated"}
PARAMS_LIMIT = 1.05  # about the median non-embedding size of the demo space (M)
METHODS = {
    "hat": {"iterations": 4, "default": "supernet"},
    "hsnas": {
        "iterations": 4,
        "default": "supernet",
        "segments": [{"predictor": "distill", "start": 1, "end": 2}],
    },
    "distill-only": {"iterations": 3, "default": "distill"},
}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, tiny_data: Path) -> dict[str, Path]:
    """An untrained demo supernet, a tiny distill MLP and a latency model increasing in size."""
    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    save_model(root / "supernet.pt", SuperTransformer(SPACE, load_vocab_size(tiny_data)).eval())
    archs = SPACE.sample_unique(24, seed=3)
    labels = [10 + 20 * float(np.mean(SPACE.distill_features(a))) for a in archs]
    settings = {"hidden_dim": 8, "hidden_layers": 1, "steps": 5, "batch_size": 8}
    for name, seed in (("distill.pt", 1), ("distill2.pt", 2)):
        mlp = train_distill_mlp(archs, labels, DistillSettings(**settings, seed=seed))
        mlp.save(root / name)
    model = LatencyMLP(8, 1)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.abs_()  # positive weights: latency grows with every feature
    torch.save(
        {
            "format": MODEL_FORMAT,
            "state_dict": model.state_dict(),
            "settings": {"hidden_dim": 8, "hidden_layers": 1},
            "space": "demo",
            "feature_scale": list(SPACE.latency_feature_scale),
            "target_scale": 10.0,
            "target": "total_ms",
        },
        root / "latency.pt",
    )
    return {
        "supernet": root / "supernet.pt",
        "distill": root / "distill.pt",
        "distill2": root / "distill2.pt",
        "latency": root / "latency.pt",
    }


def make_config(latency_limit: float = 1e6, **search: Any) -> str:
    config = {
        "experiment": "search",
        "space": "demo",
        "threads": 1,
        "model": {"max_positions": 64},
        "train": {"device": "cpu", "max_tokens": 400},
        "evaluate": {"valid_sentences": 8},
        "search": {
            "population": 8,
            "parents": 2,
            "mutations": 3,
            "crossovers": 3,
            "constraints": {
                "params-1m": {"params_m": PARAMS_LIMIT},
                "latency": {"latency_ms": latency_limit},
            },
            "methods": METHODS,
            **search,
        },
    }
    return json.dumps(config)


def search_args(config: str, method: str, constraint: str, out: Path, data: Path, *extra: str):
    return [
        "search", "run", "--config-json", config, "--method", method, "--constraint", constraint,
        "--seed", "3", "--data", str(data), "--out", str(out / "run"),
        "--state-dir", str(out / "state"), *extra,
    ]  # fmt: skip


def test_hsnas_run_outputs_and_resume(
    tiny_data: Path, models: dict[str, Path], tmp_path: Path, capsys, monkeypatch
) -> None:
    argv = search_args(
        make_config(), "hsnas", "params-1m", tmp_path, tiny_data,
        "--supernet", str(models["supernet"]), "--distill", str(models["distill"]),
        "--latency-predictor", str(models["latency"]),
    )  # fmt: skip
    assert main(argv) == 0
    progress = [line for line in capsys.readouterr().err.splitlines() if "iteration" in line]
    assert len(progress) == 4 and "[distill]" in progress[0] and "[supernet]" in progress[3]
    assert all("(8 scored, reference protocol" in line for line in progress)
    run = tmp_path / "run"
    names = ("history.csv", "best.json", "timing.json", "parents.json", "best_arch.json")
    assert all((run / name).is_file() for name in names)
    history = pd.read_csv(run / "history.csv")
    assert history["predictor"].tolist() == ["distill", "distill", "supernet", "supernet"]
    assert history["protocol"].tolist() == ["reference"] * 4 and history["scored"].eq(8).all()
    best = json.loads((run / "best.json").read_text())
    arch = Arch.from_json((run / "best_arch.json").read_text())
    assert arch.id == best["arch_id"] and best["predictor"] == "supernet"
    assert best["method"] == "hsnas" and best["constraint"] == "params-1m" and best["seed"] == 3
    assert best["constraint_limits"] == {"params_m": PARAMS_LIMIT}
    assert best["schedule"] == PredictorSchedule.from_mapping(METHODS["hsnas"]).to_dict()
    assert best["params_m"] == pytest.approx(count_params(arch) / 1e6)
    assert best["params_m"] <= PARAMS_LIMIT and best["params_m"] < best["params_total_m"]
    assert best["gflops"] > 0 and best["latency_target"] == "cpu"
    expected_ms = LatencyPredictor.from_file(models["latency"]).predict_ms([arch])[0]
    assert best["predicted_latency_ms"] == pytest.approx(expected_ms)
    timing = json.loads((run / "timing.json").read_text())
    # The default protocol is HAT's: every member of the population of 8 scored each iteration.
    assert timing["scored"] == {"distill": 16, "supernet": 16}
    assert timing["protocol"] == best["protocol"] == "reference"

    # A complete state: the rerun loads the models but asks no predictor anything.
    def refuse(self, archs):
        raise AssertionError("predictor called on a complete state")

    monkeypatch.setattr(SupernetPredictor, "predict", refuse)
    monkeypatch.setattr(DistilledPredictor, "predict", refuse)
    assert main(argv) == 0
    assert "resumed after iteration 4" in capsys.readouterr().err
    assert json.loads((run / "best.json").read_text()) == best
    # Another distill checkpoint: the state is refused.
    other = [models["distill2"] if a == str(models["distill"]) else a for a in argv]
    assert main([str(a) for a in other]) == 2
    err = capsys.readouterr().err
    assert "different inputs" in err and "sha256" in err and "--fresh" in err
    # The cached protocol: the state of the reference one is refused, not resumed.
    cached = search_args(
        make_config(protocol="cached"), "hsnas", "params-1m", tmp_path, tiny_data,
        *argv[argv.index("--supernet"):],
    )  # fmt: skip
    assert main(cached) == 2
    assert "protocol: 'reference' -> 'cached'" in capsys.readouterr().err

    # The run's own files feed the tables once the final model's files exist.
    final = run / "final"
    final.mkdir()
    score = {"arch_id": arch.id, "test": {"bleu": 20.0}, "valid": {"bleu": 21.0}}
    (final / "score.json").write_text(json.dumps(score))
    latency = {"arch_id": arch.id, "total_ms": 5.0, "encoder_std_ms": 0.3, "decoder_std_ms": 0.4}
    (final / "latency.json").write_text(json.dumps(latency))
    write_tables([run], tmp_path / "tables")
    row = pd.read_csv(tmp_path / "tables" / "results.csv").iloc[0]
    assert row["method"] == "hsnas" and row["latency_std_ms"] == pytest.approx(0.5)
    assert row["scored_distill"] == timing["scored"]["distill"] and row["protocol"] == "reference"
    assert "`reference` scoring protocol" in (tmp_path / "tables" / "table3.md").read_text()


def test_fast_protocol_run_records_its_subset_and_resumes(
    tiny_data: Path, models: dict[str, Path], tmp_path: Path, capsys, monkeypatch
) -> None:
    config = make_config(protocol="fast", valid_subset={"sample": 5, "fractions": [0.25, 0.5]})
    argv = search_args(
        config, "hat", "params-1m", tmp_path, tiny_data, "--supernet", str(models["supernet"])
    )
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "fast protocol" in err and "supernet: validation subset" in err
    run = tmp_path / "run"
    best = json.loads((run / "best.json").read_text())
    timing = json.loads((run / "timing.json").read_text())
    assert best["protocol"] == timing["protocol"] == "fast"
    check = timing["valid_subset"]["supernet"]
    assert [row["fraction"] for row in check["tried"]] == [0.25, 0.5]
    assert len(check["sample_ids"]) == 5 and check["full_sentences"] == 8
    assert best["valid_subset"]["supernet"]["chosen_fraction"] == check["chosen_fraction"]
    assert timing["subset_seconds"] <= timing["search_seconds"]
    assert set(pd.read_csv(run / "history.csv")["protocol"]) == {"fast"}

    # A complete state: the rerun asks the supernet nothing, check included.
    def refuse(self, *args):
        raise AssertionError("supernet called on a complete state")

    monkeypatch.setattr(SupernetPredictor, "predict", refuse)
    monkeypatch.setattr(SupernetPredictor, "subset_scores", refuse)
    assert main(argv) == 0
    assert "resumed after iteration 4" in capsys.readouterr().err
    assert json.loads((run / "best.json").read_text()) == best


def test_latency_constraint_with_distill_only(
    tiny_data: Path, models: dict[str, Path], tmp_path: Path
) -> None:
    predictor = LatencyPredictor.from_file(models["latency"])
    limit = float(np.median(predictor.predict_ms(SPACE.sample_unique(100, seed=1))))
    argv = search_args(
        make_config(limit), "distill-only", "latency", tmp_path, tiny_data,
        "--distill", str(models["distill"]), "--latency-predictor", str(models["latency"]),
        "--supernet", str(tmp_path / "unused.pt"),  # not used by this schedule
    )  # fmt: skip
    assert main(argv) == 0
    best = json.loads((tmp_path / "run" / "best.json").read_text())
    assert best["predictor"] == "distill" and best["predicted_latency_ms"] <= limit
    history = pd.read_csv(tmp_path / "run" / "history.csv")
    assert history["predictor"].tolist() == ["distill"] * 3
    scored = pd.read_csv(tmp_path / "run" / "scored.csv")
    assert set(scored["iteration"]) == {1, 2, 3} and set(scored["predictor"]) == {"distill"}
    archs = [Arch.from_json(text) for text in scored["arch"]]
    assert scored["predicted_latency_ms"].to_numpy() == pytest.approx(predictor.predict_ms(archs))
    assert (scored["predicted_latency_ms"] <= limit).all()


@pytest.mark.parametrize(
    ("method", "constraint", "extra", "search", "message"),
    [
        ("nope", "params-1m", (), {}, "search.methods.nope does not exist (known: hat, hsnas"),
        ("hat", "nope", (), {}, "search.constraints.nope does not exist (known: params-1m"),
        ("hsnas", "params-1m", (), {}, "1..2 with the distill predictor: pass --distill"),
        ("hat", "latency", (), {}, "limits latency_ms: pass --latency-predictor"),
        ("hat", "params-1m", (), {"population": 9}, "search.population (9) must equal"),
        ("hat", "params-1m", (), {"constraints": {"params-1m": {"gb": 1}}},
         "search.constraints.params-1m"),
        ("distill-only", "params-1m", (), {}, "pass --distill"),
        ("hat", "params-1m", (), {"protocol": "quick"}, "search.protocol"),
        ("hat", "params-1m", (), {"protocol": "fast", "valid_subset": {"sample": 2}},
         "search.valid_subset"),
        ("hat", "params-1m", ("--calibration", "x"),
         {"protocol": "fast", "methods": {**METHODS, "hat": CAL}},
         "uses supernet-calibrated, which search.protocol fast cannot"),
        ("hat", "params-1m", ("--distill", "x.pt"), {"methods": {"hat": {"default": "llm"}}},
         "search.methods.hat"),
    ],
)  # fmt: skip
def test_config_errors_come_before_any_file(
    tmp_path: Path, capsys, method: str, constraint: str, extra, search, message: str
) -> None:
    missing = tmp_path / "missing"
    argv = search_args(
        make_config(**search), method, constraint, tmp_path, missing,
        "--supernet", str(missing / "supernet.pt"), *extra,
    )  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "not found" not in err and "Traceback" not in err
    assert not (tmp_path / "run").exists() and not (tmp_path / "state").exists()


def test_missing_model_file_is_named(tiny_data: Path, tmp_path: Path, capsys) -> None:
    missing = tmp_path / "supernet.pt"
    argv = search_args(make_config(), "hat", "params-1m", tmp_path, tiny_data)
    assert main([*argv, "--supernet", str(missing)]) == 2
    assert f"--supernet {missing}: file not found" in capsys.readouterr().err


# ---- tables -------------------------------------------------------------------------------------

HSNAS = {"predictor": "distill", "start": 1, "end": 15}


def write_run(
    root: Path,
    method: str,
    constraint: str,
    seed: int,
    *,
    seconds: float,
    bleu: float,
    segments: tuple[dict[str, Any], ...] = (),
    final: bool = True,
    protocol: str | None = "reference",
    iterations: int = 30,
    limits: dict[str, float] | None = None,
) -> Path:
    folder = root / method / constraint / f"seed{seed}"
    (folder / "final").mkdir(parents=True)
    schedule = {"iterations": iterations, "default": "supernet", "segments": list(segments)}
    arch = SPACE.smallest()
    best = {
        "arch_id": arch.id, "arch": arch.to_dict(), "score": -3.0, "predictor": "supernet",
        "method": method, "constraint": constraint, "seed": seed, "schedule": schedule,
        "gflops": 1.5, "params_m": 0.8, "params_total_m": 1.2, "predicted_latency_ms": 90.0,
        "constraint_limits": limits or {"latency_ms": 100.0},
    }  # fmt: skip
    (folder / "best.json").write_text(json.dumps(best))
    scorers = {"supernet": seconds * 0.9}
    if segments:
        scorers["distill"] = 0.01
    timing = {
        "search_seconds": seconds,
        "predictor_seconds": scorers,
        "scored": dict.fromkeys(scorers, 10),
    }
    if protocol is not None:  # None: a run written before the protocol was recorded
        timing["protocol"] = best["protocol"] = protocol
        (folder / "best.json").write_text(json.dumps(best))
    (folder / "timing.json").write_text(json.dumps(timing))
    distill = {i for s in segments for i in range(s["start"], s["end"] + 1)}
    rows = [
        {"iteration": i, "predictor": "distill" if i in distill else "supernet",
         "best_score": 25 + i / 10 if i in distill else -4 + i / 30}
        for i in range(1, iterations + 1)
    ]  # fmt: skip
    pd.DataFrame(rows).to_csv(folder / "history.csv", index=False)
    if final:
        score = {"arch_id": arch.id, "test": {"bleu": bleu, "tokenized_bleu": bleu + 1}}
        (folder / "final" / "score.json").write_text(json.dumps({**score, "valid": {"bleu": 30}}))
        latency = {"arch_id": arch.id, "total_ms": 95.0, "encoder_std_ms": 3, "decoder_std_ms": 4}
        (folder / "final" / "latency.json").write_text(json.dumps(latency))
    return folder


@pytest.fixture
def run_dirs(tmp_path: Path) -> list[Path]:
    root = tmp_path / "runs"
    late = {"predictor": "distill", "start": 16, "end": 30}
    return [
        write_run(root, "hat", "lat-100", 1, seconds=100, bleu=27.0),
        write_run(root, "hat", "lat-100", 2, seconds=120, bleu=28.0),
        write_run(root, "hsnas", "lat-100", 1, seconds=50, bleu=27.5, segments=(HSNAS,)),
        write_run(root, "hsnas", "lat-100", 2, seconds=66, bleu=27.5, segments=(HSNAS,)),
        write_run(root, "hsnas-16-30", "lat-100", 1, seconds=55, bleu=26.0, segments=(late,)),
        write_run(root, "hat-15", "lat-200", 1, seconds=40, bleu=26.5),
        write_run(root, "hat", "lat-200", 1, seconds=80, bleu=29.0),
    ]


def test_tables(run_dirs: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "tables"
    argv = ["search", "tables", "--runs", *map(str, run_dirs), "--out", str(out)]
    assert main(argv) == 0
    results = pd.read_csv(out / "results.csv")
    assert len(results) == 7 and results["predictor_seconds_distill"].isna().sum() == 4
    expected = {"test_bleu", "test_tokenized_bleu", "valid_bleu", "latency_ms", "latency_std_ms"}
    expected |= {"predicted_latency_ms", "gflops", "search_hours", "scored_supernet"}
    assert expected <= set(results.columns)
    assert results["latency_std_ms"].iloc[0] == pytest.approx(5.0)

    assert results["protocol"].eq("reference").all()

    table3 = pd.read_csv(out / "table3.csv")
    assert table3["method"].tolist() == ["hat", "hsnas", "hsnas-16-30", "hat-15"]
    assert table3["protocol"].eq("reference").all()
    hat = table3.iloc[0]
    assert hat["lat-100 BLEU"] == pytest.approx(27.5)
    assert hat["lat-100 BLEU std"] == pytest.approx(np.std([27, 28], ddof=1))
    assert pd.isna(hat["lat-200 BLEU std"]) and hat["lat-200 BLEU"] == 29.0
    assert hat["lat-100 search hours"] == pytest.approx(110 / 3600)
    for label in ("latency (ms)", "GFLOPs", "size (M params)", "seeds"):
        assert f"lat-200 {label}" in table3.columns
    assert pd.isna(table3.iloc[3]["lat-100 BLEU"]) and table3.iloc[3]["lat-100 seeds"] == 0
    markdown = (out / "table3.md").read_text()
    assert "27.50 ± 0.71" in markdown and "| hat-15" in markdown
    for name in ("table3", "table5", "table16"):
        text = (out / f"{name}.md").read_text()
        assert "Search hours: `reference` scoring protocol (HAT's" in text and "mixed" not in text

    table5 = pd.read_csv(out / "table5.csv")
    assert table5["method"].tolist() == ["hat", "hsnas", "hsnas-16-30"]
    assert pd.isna(table5["start"].iloc[0]) and table5["start"].tolist()[1:] == [1, 16]
    assert table5["end"].tolist()[1:] == [15, 30] and "lat-100 size (M params)" not in table5

    table16 = pd.read_csv(out / "table16.csv")
    assert table16["method"].tolist() == ["hat", "hat-15", "hsnas"]  # no distilled-hat run
    assert table16["paper"].tolist() == ["HAT", "HAT (num-iter.=15)", "HS-NAS"]
    assert table16["schedule"].tolist()[0] == "supernet x30"
    assert table16["schedule"].tolist()[2] == "distill 1..15, else supernet (30 iterations)"

    summary = json.loads((out / "summary.json").read_text())
    ratio = summary["search_time_ratio"]
    assert ratio["lat-100"]["1"] == {"hat": 1.0, "hsnas": 0.5, "hsnas-16-30": 0.55}
    assert ratio["lat-100"]["2"]["hsnas"] == pytest.approx(0.55)
    assert summary["search_time_ratio_mean"]["lat-100"]["hsnas"] == pytest.approx(0.525)
    assert ratio["lat-200"]["1"]["hat-15"] == 0.5
    assert summary["mixed_protocols"] is False and summary["protocols"]["hsnas"] == "reference"
    png = (out / "convergence.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000


def test_tables_options(run_dirs: list[Path], tmp_path: Path, capsys) -> None:
    out = tmp_path / "tables"
    argv = ["search", "tables", "--runs", *map(str, run_dirs), "--out", str(out),
            "--hsnas-methods", "hsnas-16-30", "absent", "--bleu", "tokenized"]  # fmt: skip
    assert main(argv) == 0
    assert "absent" in capsys.readouterr().err
    table5 = pd.read_csv(out / "table5.csv")
    assert table5["method"].tolist() == ["hat", "hsnas-16-30"]
    assert table5["lat-100 BLEU"].iloc[0] == pytest.approx(28.5)  # tokenised BLEU


def test_tables_with_distilled_hat_and_mixed_protocols(tmp_path: Path, capsys) -> None:
    root = tmp_path / "runs"
    mlp = {"predictor": "supernet-mlp", "start": 1, "end": 15}
    runs = [
        write_run(root, "hat", "lat-100", 1, seconds=100, bleu=27.0),
        write_run(root, "hsnas", "lat-100", 1, seconds=56, bleu=27.5, segments=(HSNAS,)),
        write_run(root, "distilled-hat", "lat-100", 1, seconds=58, bleu=27.1, segments=(mlp,)),
        write_run(
            root, "hat-15", "lat-100", 1, seconds=40, bleu=26, iterations=15, protocol="cached"
        ),
        write_run(root, "hat-15", "lat-100", 2, seconds=45, bleu=26, iterations=15, protocol=None),
    ]
    out = tmp_path / "tables"
    assert main(["search", "tables", "--runs", *map(str, runs), "--out", str(out)]) == 0
    assert "mix scoring protocols" in capsys.readouterr().err
    table16 = pd.read_csv(out / "table16.csv")
    assert table16["method"].tolist() == ["hat", "hat-15", "distilled-hat", "hsnas"]
    rows = table16.set_index("method")
    assert rows.loc["distilled-hat", "paper"] == "Distilled HAT (num-iter.=15)"
    assert (
        rows.loc["distilled-hat", "schedule"] == "supernet-mlp 1..15, else supernet (30 iterations)"
    )
    assert rows.loc["hat-15", "paper"] == "HAT (num-iter.=15)"
    assert rows.loc["hat-15", "schedule"] == "supernet x15"
    # A run without a recorded protocol predates it: it used the score cache.
    assert table16["protocol"].tolist() == ["reference", "cached", "reference", "reference"]
    for name in ("table3", "table16"):
        text = (out / f"{name}.md").read_text()
        assert "**mixed scoring protocols** (`cached`, `reference`" in text
    # Table 5 shows only HAT and HS-NAS, both of the reference protocol.
    assert "Search hours: `reference` scoring protocol" in (out / "table5.md").read_text()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mixed_protocols"] is True and summary["protocols"]["hat-15"] == "cached"


def test_flops_constraints_and_search_seeds_get_tables_12_and_13(tmp_path: Path) -> None:
    root, flops = tmp_path / "runs", {"gflops": 3.0}
    runs = [
        write_run(root, "hat", "lat-100", 1, seconds=100, bleu=27.0),
        write_run(root, "hat", "gflops-3.0", 1, seconds=90, bleu=26.0, limits=flops),
        *(
            write_run(root, "hsnas", constraint, seed, seconds=50, bleu=b, segments=(HSNAS,),
                      limits=limits)
            for constraint, limits in (("lat-100", None), ("gflops-3.0", flops))
            for seed, b in ((1, 27.0), (2, 28.0), (3, 29.0))
        ),
    ]  # fmt: skip
    out = tmp_path / "tables"
    assert main(["search", "tables", "--runs", *map(str, runs), "--out", str(out)]) == 0
    table3 = pd.read_csv(out / "table3.csv")  # latency budgets only
    assert "lat-100 BLEU" in table3 and not any(c.startswith("gflops") for c in table3)
    table13 = pd.read_csv(out / "table13.csv")  # GFLOPs-only constraints
    assert table13["method"].tolist() == ["hat", "hsnas"]
    assert not any(c.startswith("lat-100") for c in table13)
    assert table13["gflops-3.0 BLEU"].tolist() == [26.0, 28.0]
    assert table13["gflops-3.0 seeds"].tolist() == [1, 3]
    table12 = pd.read_csv(out / "table12.csv")  # one row per seed, then mean ± std
    assert table12["method"].tolist() == [
        "hsnas (seed 1)", "hsnas (seed 2)", "hsnas (seed 3)", "hsnas (mean ± std)"
    ]  # fmt: skip
    assert table12["lat-100 BLEU"].tolist() == [27.0, 28.0, 29.0, 28.0]
    assert table12["lat-100 BLEU std"].iloc[3] == pytest.approx(1.0)
    assert "28.00 ± 1.00" in (out / "table12.md").read_text()
    assert "gflops-3.0" in (out / "table13.md").read_text()


def test_tables_missing_or_mismatched_final_files(run_dirs: list[Path], tmp_path: Path, capsys):
    latency = run_dirs[2] / "final" / "latency.json"
    latency.unlink()
    argv = ["search", "tables", "--runs", *map(str, run_dirs), "--out", str(tmp_path / "t")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"{latency}: file not found" in err and "nasflow latency measure" in err
    shutil.copy(run_dirs[0] / "final" / "latency.json", latency)
    score = run_dirs[0] / "final" / "score.json"
    score.write_text(json.dumps({"arch_id": "other", "test": {"bleu": 1.0}}))
    with pytest.raises(DataError, match="is for architecture other"):
        write_tables(run_dirs, tmp_path / "t")
    with pytest.raises(DataError, match="both are method hat"):
        write_tables([run_dirs[1], run_dirs[1]], tmp_path / "t")


def test_distilled_hat_scores_with_an_mlp_trained_on_supernet_scores(
    tiny_data: Path, models: dict[str, Path], tmp_path: Path, capsys
) -> None:
    dataset = tmp_path / "supernet.csv"
    # score-supernet reads no `search` section (a --config-json key it does not read is refused).
    config = json.dumps({k: v for k, v in json.loads(make_config()).items() if k != "search"})
    scores = ["distill", "score-supernet", "--config-json", config, "--n", "12"]
    scores += ["--supernet", str(models["supernet"]), "--data", str(tiny_data)]
    assert main([*scores, "--out", str(dataset)]) == 0
    frame = pd.read_csv(dataset)
    assert len(frame) == 12 and frame["prediction"].notna().all()
    assert not dataset.with_suffix(".partial.jsonl").exists()
    mlp = tmp_path / "supernet_mlp.pt"
    train = ["distill", "train", "--dataset", str(dataset), "--out", str(mlp)]
    assert main([*train, "--settings-json", '{"steps": 5, "hidden_dim": 8}']) == 0
    # Distilled HAT as the paper ran it (scaled down): the MLP first, then the supernet.
    segments = [{"predictor": "supernet-mlp", "start": 1, "end": 2}]
    distilled = {"iterations": 3, "default": "supernet", "segments": segments}
    config = make_config(methods={**METHODS, "distilled-hat": distilled})
    argv = search_args(config, "distilled-hat", "params-1m", tmp_path, tiny_data)
    assert main([*argv, "--supernet-mlp", str(mlp), "--supernet", str(models["supernet"])]) == 0
    history = pd.read_csv(tmp_path / "run" / "history.csv")
    assert history["predictor"].tolist() == ["supernet-mlp", "supernet-mlp", "supernet"]
    timing = json.loads((tmp_path / "run" / "timing.json").read_text())
    assert timing["scored"] == {"supernet-mlp": 16, "supernet": 8}
    # Without the MLP the method is refused before anything loads.
    capsys.readouterr()
    assert main(search_args(config, "distilled-hat", "params-1m", tmp_path / "x", tiny_data)) == 2
    assert "pass --supernet-mlp MLP.pt" in capsys.readouterr().err

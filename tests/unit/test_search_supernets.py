"""Searches over supernet kinds and the demonstration-calibrated supernet: `nasflow search run`
with a method's own `supernet` kind and with `supernet-calibrated`, and Table 15 from run
folders."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from tests.unit.conftest import build_tiny_tfs_eval

from nasflow.cli import main
from nasflow.data.prepare import load_vocab_size
from nasflow.model import SuperTransformer
from nasflow.model.checkpoint import save_model
from nasflow.model.mos import MixtureConfig, MixtureSupernet
from nasflow.predictors.supernet import SupernetPredictor
from nasflow.report.search_tables import write_tables
from nasflow.space.hat import Arch, get_space
from nasflow.tfs.format import read_tfs_eval

pytestmark = pytest.mark.usefixtures("one_thread")

SPACE = get_space("demo")
METHODS = {
    "hat": {"iterations": 2, "default": "supernet"},
    "calibrated": {"iterations": 2, "default": "supernet-calibrated"},
    "mos": {"iterations": 2, "default": "supernet", "supernet": "neuron-mos"},
}


@pytest.fixture(scope="module")
def supernets(tmp_path_factory: pytest.TempPathFactory, tiny_data: Path) -> dict[str, Path]:
    """Untrained demo supernets: HAT's and a neuron-wise MoS."""
    root = tmp_path_factory.mktemp("supernets")
    vocab = load_vocab_size(tiny_data)
    torch.manual_seed(0)
    save_model(root / "hat.pt", SuperTransformer(SPACE, vocab).eval())
    mixture = MixtureConfig(kind="neuron-mos", experts=2, router_hidden=8)
    save_model(root / "mos.pt", MixtureSupernet(SPACE, vocab, mixture=mixture).eval())
    return {"hat": root / "hat.pt", "neuron-mos": root / "mos.pt"}


def config_json() -> str:
    return json.dumps(
        {
            "experiment": "search",
            "space": "demo",
            "threads": 1,
            "model": {"max_positions": 64},
            "train": {"device": "cpu", "max_tokens": 400},
            "evaluate": {"valid_sentences": 8},
            "search": {
                "population": 6,
                "parents": 2,
                "mutations": 2,
                "crossovers": 2,
                "protocol": "cached",
                "constraints": {"any": {"params_m": 100.0}},
                "methods": METHODS,
                "run": list(METHODS),
            },
        }
    )


def run(method: str, out: Path, data: Path, *extra: str) -> list[str]:
    return [
        "search", "run", "--config-json", config_json(), "--method", method,
        "--constraint", "any", "--seed", "5", "--data", str(data),
        "--out", str(out / method), "--state-dir", str(out / f"state-{method}"), *extra,
    ]  # fmt: skip


def test_supernet_calibrated_ranks_as_the_supernet_with_bleu_scale_scores(
    tiny_data: Path, supernets: dict[str, Path], tmp_path: Path
) -> None:
    tfs_eval = build_tiny_tfs_eval(tmp_path / "set")
    supernet = ("--supernet", str(supernets["hat"]))
    assert main(run("hat", tmp_path, tiny_data, *supernet)) == 0
    calibration = ("--calibration", str(tfs_eval), "--calibration-seed", "2")
    assert main(run("calibrated", tmp_path, tiny_data, *supernet, *calibration)) == 0
    plain = json.loads((tmp_path / "hat" / "best.json").read_text())
    calibrated = json.loads((tmp_path / "calibrated" / "best.json").read_text())
    # Monotone: the same winner; its score is the supernet's mapped by the seed's fit.
    assert calibrated["arch_id"] == plain["arch_id"]
    assert calibrated["predictor"] == "supernet-calibrated"
    assert calibrated["supernet_kind"] == plain["supernet_kind"] == "hat"
    table = read_tfs_eval(tfs_eval, seeds=[2])
    train = table[table["split"] == "train"]
    predictor = SupernetPredictor.from_file(
        supernets["hat"], tiny_data, device="cpu", valid_sentences=8, max_tokens=400
    )
    x = predictor.predict(list(train["arch"]))
    a, b = np.polyfit(x, train["gold"].to_numpy(dtype=float), 1)
    assert a > 0
    assert calibrated["score"] == pytest.approx(a * plain["score"] + b, rel=1e-4)
    history = pd.read_csv(tmp_path / "calibrated" / "history.csv")
    assert history["predictor"].tolist() == ["supernet-calibrated"] * 2


def test_supernet_calibrated_needs_its_demonstrations(
    tiny_data: Path, supernets: dict[str, Path], tmp_path: Path, capsys
) -> None:
    argv = run("calibrated", tmp_path, tiny_data, "--supernet", str(supernets["hat"]))
    assert main(argv) == 2
    assert "pass --calibration TFS_EVAL_DIR" in capsys.readouterr().err
    assert not (tmp_path / "calibrated").exists()


def test_a_method_searches_with_the_supernet_kind_it_names(
    tiny_data: Path, supernets: dict[str, Path], tmp_path: Path, capsys
) -> None:
    assert main(run("mos", tmp_path, tiny_data, "--supernet", str(supernets["hat"]))) == 2
    err = capsys.readouterr().err
    assert "is a hat supernet" in err and "search.methods.mos.supernet names neuron-mos" in err
    assert main(run("mos", tmp_path, tiny_data, "--supernet", str(supernets["neuron-mos"]))) == 0
    best = json.loads((tmp_path / "mos" / "best.json").read_text())
    assert best["supernet_kind"] == "neuron-mos" and best["predictor"] == "supernet"
    # The schedule recorded is the predictor schedule alone (the kind is its own field).
    assert best["schedule"] == {"iterations": 2, "default": "supernet", "segments": []}


def write_run(root: Path, method: str, kind: str | None, segments: list[dict[str, Any]]) -> Path:
    """A finished run folder (search outputs and the final model's score and latency)."""
    folder = root / method / "budget" / "seed1"
    (folder / "final").mkdir(parents=True)
    arch: Arch = SPACE.smallest()
    best = {
        "arch_id": arch.id, "score": -3.0, "predictor": "supernet", "method": method,
        "constraint": "budget", "seed": 1, "gflops": 1.5, "params_m": 0.8,
        "params_total_m": 1.2, "constraint_limits": {"latency_ms": 100.0}, "protocol": "cached",
        "schedule": {"iterations": 4, "default": "supernet", "segments": segments},
    }  # fmt: skip
    if kind is not None:
        best["supernet_kind"] = kind
    (folder / "best.json").write_text(json.dumps(best))
    timing = {"search_seconds": 10.0, "protocol": "cached"}
    (folder / "timing.json").write_text(json.dumps(timing))
    rows = [{"iteration": i, "predictor": "supernet", "best_score": -3} for i in (1, 2)]
    pd.DataFrame(rows).to_csv(folder / "history.csv", index=False)
    score = {"arch_id": arch.id, "test": {"bleu": 20.0}, "valid": {"bleu": 21.0}}
    (folder / "final" / "score.json").write_text(json.dumps(score))
    latency = {"arch_id": arch.id, "total_ms": 5.0}
    (folder / "final" / "latency.json").write_text(json.dumps(latency))
    return folder


def test_table15_lists_the_searches_over_the_neuron_wise_mos_supernet(tmp_path: Path) -> None:
    distill = [{"predictor": "distill", "start": 1, "end": 2}]
    runs = [
        write_run(tmp_path, "hat", None, []),  # older run: no kind recorded, so HAT's
        write_run(tmp_path, "hsnas-neuron-mos", "neuron-mos", distill),
        write_run(tmp_path, "neuron-mos", "neuron-mos", []),
        write_run(tmp_path, "layer", "layer-mos", []),
    ]
    write_tables(runs, tmp_path / "tables")
    table = pd.read_csv(tmp_path / "tables" / "table15.csv")
    assert table["method"].tolist() == ["neuron-mos", "hsnas-neuron-mos"]
    assert table["paper"].tolist() == [
        "Neuron-wise MoS",
        "HS-NAS (LLM-Distill-PP, Neuron-wise MoS, 1, 2)",
    ]
    results = pd.read_csv(tmp_path / "tables" / "results.csv")
    assert dict(zip(results["method"], results["supernet_kind"], strict=True)) == {
        "hat": "hat", "hsnas-neuron-mos": "neuron-mos", "neuron-mos": "neuron-mos",
        "layer": "layer-mos",
    }  # fmt: skip
    assert "Neuron-wise MoS" in (tmp_path / "tables" / "table15.md").read_text()

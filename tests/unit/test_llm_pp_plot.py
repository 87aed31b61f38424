"""`nasflow llm-pp evaluate --plot`: TFS BLEU against LLM-PP / LLM-Distill-PP predictions."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from nasflow.cli import main
from nasflow.core.errors import DataError
from nasflow.predictors.base import Predictor
from nasflow.predictors.llm import PER_ARCH_COLUMNS, per_arch_predictions
from nasflow.report.plots import plot_llm_pp_vs_tfs
from nasflow.space.hat import get_space
from nasflow.tfs.format import read_tfs_eval

ARCHS = get_space("demo").sample_unique(9, seed=5)  # the same as conftest.TINY_ARCHS


def _distill_model(tfs_eval: Path, tmp_path: Path, seed: int) -> str:
    dataset, model = tmp_path / f"d{seed}.csv", tmp_path / f"m{seed}.pt"
    argv = ["distill", "dataset", "--tfs-eval", str(tfs_eval), "--task", "demo"]
    argv += ["--seed", str(seed), "--n", "30", "--demonstrations", "3"]
    assert main([*argv, "--cache", str(tmp_path / "c.sqlite"), "--out", str(dataset)]) == 0
    argv = ["distill", "train", "--dataset", str(dataset), "--name", "LLM-Distill-PP test"]
    argv += ["--settings-json", '{"steps": 50}', "--tfs-eval", str(tfs_eval)]
    assert main([*argv, "--task", "demo", "--seed", str(seed), "--out", str(model)]) == 0
    return str(model)


def test_evaluate_plots_every_table_row_against_tfs_bleu(
    tfs_eval: Path, tmp_path: Path, capsys
) -> None:
    files = []
    for variant in ("full", "demos"):
        out = tmp_path / f"{variant}.jsonl"
        argv = ["llm-pp", "predict", "--tfs-eval", str(tfs_eval), "--variant", variant]
        argv += ["--demonstrations", "3", "--cache", str(tmp_path / "c.sqlite")]
        assert main([*argv, "--out", str(out)]) == 0
        files.append(str(out))
    models = [_distill_model(tfs_eval, tmp_path, seed) for seed in (1, 2)]
    plot, table = tmp_path / "plots" / "llm_pp_vs_tfs.png", tmp_path / "t1.csv"
    argv = ["llm-pp", "evaluate", "--tfs-eval", str(tfs_eval), "--predictions", *files]
    argv += ["--distill-models", *models, "--out", str(table), "--plot", str(plot)]
    assert main(argv) == 0

    # Two LLM-PP rows and the distilled MLP, each over the distinct test archs of both seeds.
    rows = set(pd.read_csv(table)["predictor"])
    assert rows == {
        "LLM-PP offline stand-in (no LLM) k=3",
        "LLM-PP offline stand-in (no LLM) [demos] k=3",
        "LLM-Distill-PP test",
    }
    frame = read_tfs_eval(tfs_eval)
    n_test = frame.loc[frame["split"] == "test", "arch_id"].nunique()
    assert n_test > 6  # the two seeds' test splits differ, so some archs are tested once
    assert f"{3 * n_test} (predictor, architecture) points -> {plot}" in capsys.readouterr().err
    with Image.open(plot) as image:
        assert image.format == "PNG" and image.width > 0 and image.height > 0
        assert len(image.convert("RGB").getcolors(maxcolors=1 << 20)) > 50
    assert [p.name for p in plot.parent.iterdir()] == ["llm_pp_vs_tfs.png"]  # no temp file


class _FakeModels(Predictor):
    """Per-seed predictions `value[arch] + seed` (the `arch` column holds plain names here)."""

    name = "MLP"
    bleu_scale = True

    def __init__(self, seed: int | None = None) -> None:
        self.seed = seed

    def for_seed(self, seed: int) -> _FakeModels:
        return _FakeModels(seed)

    def predict(self, archs: Sequence) -> np.ndarray:
        assert self.seed is not None
        return np.array([{"a": 1.0, "b": 2.0, "c": 3.0}[a] + self.seed for a in archs])


def _table() -> pd.DataFrame:
    rows = [  # (seed, split, arch); gold BLEU is per architecture
        (1, "train", "c"),
        (1, "test", "a"),
        (1, "test", "b"),
        (2, "train", "a"),
        (2, "test", "b"),
        (2, "test", "c"),
    ]
    gold = {"a": 20.0, "b": 22.0, "c": 24.0}
    return pd.DataFrame(
        [
            {"task": "demo", "seed": s, "split": split, "arch_id": a, "arch": a, "gold": gold[a]}
            for s, split, a in rows
        ]
    )


def _record(seed: int, arch_id: str, prediction: float | None, task: str = "demo") -> dict:
    return {"predictor": "P", "seed": seed, "task": task, "arch_id": arch_id,
            "prediction": prediction}  # fmt: skip


def test_per_arch_predictions_average_over_the_seeds_that_test_each_arch() -> None:
    records = [
        _record(1, "a", 19.0),
        _record(1, "b", 21.0),
        _record(2, "b", 23.5),
        _record(2, "c", None),  # failed to parse: left out
        _record(2, "a", 99.0),  # a is a demonstration (train) of seed 2: not scored
        _record(1, "a", 50.0, task="other"),
    ]
    points = per_arch_predictions(_table(), "demo", records, [_FakeModels()])
    assert list(points.columns) == list(PER_ARCH_COLUMNS)
    assert points.to_dict("records") == [
        {"predictor": "P", "arch_id": "a", "gold": 20.0, "predicted": 19.0, "n_seeds": 1},
        {"predictor": "P", "arch_id": "b", "gold": 22.0, "predicted": 22.25, "n_seeds": 2},
        {"predictor": "MLP", "arch_id": "a", "gold": 20.0, "predicted": 2.0, "n_seeds": 1},
        {"predictor": "MLP", "arch_id": "b", "gold": 22.0, "predicted": 3.5, "n_seeds": 2},
        {"predictor": "MLP", "arch_id": "c", "gold": 24.0, "predicted": 5.0, "n_seeds": 1},
    ]
    assert per_arch_predictions(_table(), "other", records).empty


def test_plot_refuses_a_task_without_predictions(tmp_path: Path) -> None:
    records = [_record(1, "a", 19.0), _record(1, "b", 21.0)]
    points = per_arch_predictions(_table(), "demo", records).assign(task="demo")
    out = tmp_path / "plot.png"
    with pytest.raises(DataError, match="no predictions to plot for task 'wmt14ende'"):
        plot_llm_pp_vs_tfs(points, out, ["demo", "wmt14ende"])
    assert not out.exists()
    plot_llm_pp_vs_tfs(points, out, ["demo"])
    with Image.open(out) as image:
        assert image.width > 0 and image.height > 0

"""Predictor quality on the released llmas TFS-Eval sets, cross-checked independently."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from nasflow.cli import main
from nasflow.predictors.quality import PAPER_ORDER, RESULT_COLUMNS
from nasflow.tfs.format import STORED_PREDICTORS, TASK_VOCAB_SIZES, read_tfs_eval

SEEDS = (123, 456, 789)
pytestmark = pytest.mark.shared


@pytest.fixture
def results(tfs_dir: Path, tmp_path: Path, capsys) -> pd.DataFrame:
    out, md, png = tmp_path / "quality.csv", tmp_path / "quality.md", tmp_path / "tfs.png"
    argv = ["predictors", "evaluate", "--tfs-eval", str(tfs_dir), "--task", "all"]
    assert main([*argv, "--out", str(out), "--markdown", str(md), "--plot", str(png)]) == 0
    assert "| predictor" in capsys.readouterr().out
    assert "scratch.valid_BLEU" in md.read_text()
    assert png.read_bytes().startswith(b"\x89PNG")
    return pd.read_csv(out)


def _raw_test_split(tfs_dir: Path, seed: int, task: str) -> list[dict]:
    with gzip.open(tfs_dir / str(seed) / task / "test.jsonl.gz", "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def test_reads_all_rows(tfs_dir: Path):
    table = read_tfs_eval(tfs_dir)
    assert len(table) == 270
    assert list(table.columns[-4:]) == list(STORED_PREDICTORS)
    assert table.groupby(["seed", "task", "split"]).size().to_dict() == {
        (s, t, split): n
        for s in SEEDS
        for t in TASK_VOCAB_SIZES
        for split, n in (("test", 20), ("train", 10))
    }
    assert table.groupby("task")["arch_id"].nunique().to_dict() == dict.fromkeys(
        TASK_VOCAB_SIZES, 30
    )
    assert not table[list(STORED_PREDICTORS)].isna().any().any()


def test_all_tasks_table_shape_and_order(results: pd.DataFrame):
    assert list(results.columns) == list(RESULT_COLUMNS)
    tasks = [*TASK_VOCAB_SIZES, "Average"]
    assert list(zip(results.predictor, results.task, strict=True)) == [
        (p, t) for p in PAPER_ORDER for t in tasks
    ]
    assert (results["n_seeds"] == 3).all()
    assert results["kendall"].between(-1, 1).all()
    rank_only = results.predictor.isin(["#Params", "#FLOPs"])
    assert results.loc[rank_only, ["mae", "mae_std"]].isna().all().all()
    assert results.loc[~rank_only, ["mae", "mae_std"]].notna().all().all()


def test_cells_match_independent_computation(tfs_dir: Path, results: pd.DataFrame):
    def cell(predictor: str, task: str, column: str) -> float:
        rows = results[(results.predictor == predictor) & (results.task == task)]
        return float(rows[column].iloc[0])

    hat_mae = []
    for seed in SEEDS:
        records = _raw_test_split(tfs_dir, seed, "wmt14ende")
        gold = np.array([r["scratch"]["valid_BLEU"] for r in records])
        hat_mae.append(np.abs(gold - [r["HAT"]["valid_BLEU"] for r in records]).mean())
    assert cell("HAT", "wmt14ende", "mae") == pytest.approx(np.mean(hat_mae), abs=5e-5)
    assert cell("HAT", "wmt14ende", "mae_std") == pytest.approx(np.std(hat_mae), abs=5e-5)

    # #Params from the file's own counts (ours equal them; checked on read)
    per_seed = {task: [] for task in TASK_VOCAB_SIZES}
    for task in TASK_VOCAB_SIZES:
        for seed in SEEDS:
            scratch = [r["scratch"] for r in _raw_test_split(tfs_dir, seed, task)]
            gold = [s["valid_BLEU"] for s in scratch]
            size = [
                s["num_parameters_without_embedding_weights"] + s["num_embedding_parameters"]
                for s in scratch
            ]
            per_seed[task].append(stats.kendalltau(gold, size).statistic)
    tau = np.array(per_seed["wmt19ende"])
    assert cell("#Params", "wmt19ende", "kendall") == pytest.approx(tau.mean(), abs=5e-5)
    assert cell("#Params", "wmt19ende", "kendall_std") == pytest.approx(tau.std(), abs=5e-5)
    average = np.mean([per_seed[t] for t in TASK_VOCAB_SIZES], axis=0)
    assert cell("#Params", "Average", "kendall") == pytest.approx(average.mean(), abs=5e-5)
    assert cell("#Params", "Average", "kendall_std") == pytest.approx(average.std(), abs=5e-5)

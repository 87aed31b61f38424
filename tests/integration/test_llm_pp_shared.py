"""LLM-PP with the offline stand-in on the released TFS-Eval sets: predictions, cache, table."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nasflow.cli import main
from nasflow.core.io import read_lines
from nasflow.core.metrics import kendall, mae

pytestmark = pytest.mark.shared


def test_offline_llm_pp_predicts_caches_and_tabulates(
    tfs_dir: Path, mirror: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("NASFLOW_MIRROR", str(mirror))
    out, cache = tmp_path / "pred.jsonl", tmp_path / "cache.sqlite"
    args = ["llm-pp", "predict", "--tfs-eval", str(tfs_dir), "--task", "wmt14ende",
            "--cache", str(cache), "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 3 * 20 and not any(r["failed"] for r in records)
    assert {r["predictor"] for r in records} == {"LLM-PP offline stand-in (no LLM)"}
    usage = json.loads(out.with_suffix(".usage.json").read_text())
    assert usage["requests"] == 60 and usage["cache_hits"] == 0

    assert main(args) == 0  # a rerun asks nothing
    usage = json.loads(out.with_suffix(".usage.json").read_text())
    assert usage["requests"] == 0 and usage["cache_hits"] == 60

    prompts = [row[0] for row in sqlite3.connect(cache).execute("SELECT prompt FROM replies")]
    assert all(p.count("\nBLEU: ") == 10 and p.endswith("BLEU:") for p in prompts)
    # Task examples: no WMT training corpus in the mirror, so the WMT'14 development set
    # newstest2013 ("dev fallback"), never the test set newstest2014.
    assert all("Example 5:\nInput: " in p for p in prompts)
    dev = set(read_lines(mirror / "newstest/en-de.newstest2013.en.gz"))
    test = set(read_lines(mirror / "newstest/en-de.newstest2014.en.gz")) - dev
    inputs = {
        line[len("Input: ") :]
        for p in prompts
        for line in p.splitlines()
        if line.startswith("Input: ")
    }
    assert inputs and inputs <= dev and not inputs & test
    assert {r["task_examples"]["origin"] for r in records} == {"dev fallback"}
    assert {r["task_examples"]["split"] for r in records} == {"newstest2013"}

    table = tmp_path / "table.csv"
    evaluate = ["llm-pp", "evaluate", "--tfs-eval", str(tfs_dir), "--task", "wmt14ende",
                "--predictions", str(out), "--baselines", "--out", str(table)]  # fmt: skip
    assert main(evaluate) == 0
    results = pd.read_csv(table).set_index("predictor")
    row = results.loc["LLM-PP offline stand-in (no LLM)"]
    assert row["n_seeds"] == 3 and "HAT" in results.index
    # cross-check one seed by hand
    seed = [r for r in records if r["seed"] == 123]
    gold = np.array([r["gold"] for r in seed])
    pred = np.array([r["prediction"] for r in seed])
    assert 0 < mae(gold, pred) < 2 and -1 <= kendall(gold, pred) <= 1
    assert "LLM-PP offline stand-in (no LLM)" in capsys.readouterr().out


def test_bad_predictions_file_is_named(tfs_dir: Path, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"predictor": "x", "seed": 123}\n')
    args = ["llm-pp", "evaluate", "--tfs-eval", str(tfs_dir), "--predictions", str(bad),
            "--out", str(tmp_path / "t.csv")]  # fmt: skip
    assert main(args) == 2
    assert "bad.jsonl:1: missing arch_id, prediction, task" in capsys.readouterr().err

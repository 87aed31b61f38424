"""The LTS chain from config: `nasflow lts search` through the measurement cache, and the case
study against the baseline."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from nasflow.cli import main

LTS = {
    "space": "lts-demo",
    "measure": {"threads": 1, "prompt_tokens": 8, "new_tokens": 3, "warmup": 1, "runs": 3,
                "vocab_size": 100, "n_positions": 64},
    "search": {"population": 6, "parents": 2, "mutations": 2, "crossovers": 2, "iterations": 2},
    "baseline": {"n_layer": 2, "d_model": 64, "d_inner": 128, "n_head": 2},
    "selection": {"margin": 10.0, "limit": 2, "heads": [2, 4]},
}  # fmt: skip


def _config(**changes) -> str:
    lts = {**LTS, **changes}
    data = {"corpus": "multi30k", "source_lang": "en", "target_lang": "de"}
    return json.dumps({"experiment": "t", "space": "demo", "data": data, "lts": lts})


def _cached_rows(cache: Path) -> int:
    with sqlite3.connect(cache) as db:
        return db.execute("SELECT COUNT(*) FROM measurements").fetchone()[0]


def test_search_then_case_study_measure_each_arch_once(tmp_path: Path, capsys) -> None:
    out, cache = tmp_path / "search", tmp_path / "cache.sqlite"
    argv = ["lts", "search", "--config-json", _config(), "--out-dir", str(out)]
    argv += ["--state-dir", str(tmp_path / "state"), "--cache", str(cache)]
    assert main(argv) == 0
    frontier = pd.read_csv(out / "frontier.csv")
    seen = pd.read_csv(out / "all.csv")
    assert len(frontier) >= 1 and frontier["arch_id"].isin(seen["arch_id"]).all()
    for column in ("decoder_params", "latency_ms", "memory_mb", "p95_ms_per_char"):
        assert (seen[column] > 0).all()
    assert (out / "frontier_evolution.png").stat().st_size > 5_000
    measured = _cached_rows(cache)
    assert measured == len(seen)
    # Search again from scratch (fresh state): every measurement comes from the cache.
    assert main([*argv, "--fresh"]) == 0
    timing = json.loads((out / "timing.json").read_text())
    assert timing["measured"] == 0 and timing["cache_hits"] == len(seen)
    frontier_csv = str(out / "frontier.csv")
    case = ["lts", "case-study", "--config-json", _config(), "--frontier", frontier_csv]
    table = tmp_path / "case.csv"
    assert main([*case, "--cache", str(cache), "--out", str(table)]) == 0
    rows = pd.read_csv(table)
    assert rows["role"].iloc[0] == "baseline"
    assert rows["p95_per_char_vs_baseline"].iloc[0] == pytest.approx(1.0)
    assert 1 <= (rows["role"] == "candidate").sum() <= 2
    assert (rows["decoder_params_m"].iloc[1:] > rows["decoder_params_m"].iloc[0]).all()
    capsys.readouterr()


def test_bad_measure_settings_name_the_key(tmp_path: Path, capsys) -> None:
    config = _config(measure={"new_tokens": 1})
    argv = ["lts", "search", "--config-json", config, "--out-dir", str(tmp_path / "o")]
    assert main([*argv, "--cache", str(tmp_path / "c.sqlite")]) == 2
    assert "lts.measure.new_tokens" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()

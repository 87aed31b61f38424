"""The LTS chain from config: the text set, `nasflow lts search` through the measurement cache,
and the case study against the baseline."""

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
                "vocab_size": 400, "n_positions": 64},
    "search": {"population": 6, "parents": 2, "mutations": 2, "crossovers": 2, "iterations": 2},
    "baseline": {"n_layer": 2, "d_model": 64, "d_inner": 128, "n_head": 2},
    "selection": {"margin": 10.0, "limit": 2, "heads": [2, 4]},
}  # fmt: skip


def _corpus(folder: Path) -> Path:
    """A tiny plain-text corpus in PTB layout (no valid file: its last 5% of lines are held out)."""
    words = ("the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran")
    lines = [" ".join(words[(i * j) % 9] for j in range(3 + i % 9)) for i in range(200)]
    folder.mkdir()
    (folder / "ptb.train.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def _config(corpus: Path | None = None, **changes) -> str:
    lts = {**LTS, "text": {"corpus": None if corpus is None else str(corpus), "vocab_size": 290}}
    lts.update(changes)
    # Only sections the lts commands read: a --config-json key they do not read is refused.
    return json.dumps({"experiment": "t", "space": "demo", "lts": lts})


def _cached_rows(cache: Path) -> int:
    with sqlite3.connect(cache) as db:
        return db.execute("SELECT COUNT(*) FROM measurements").fetchone()[0]


def test_search_then_case_study_measure_each_arch_once(tmp_path: Path, capsys) -> None:
    out, cache = tmp_path / "search", tmp_path / "cache.sqlite"
    config = _config(_corpus(tmp_path / "corpus"))
    # The text set once (as rule lts_text does); the search below builds its own from the
    # config's corpus, the case study reads this one: the same tokenizer, the same cache key.
    text = tmp_path / "text"
    assert main(["lts", "text", "--config-json", config, "--out", str(text)]) == 0
    info = json.loads((text / "text.json").read_text())
    assert info["vocab_size"] == 290 and info["heldout_source"].startswith("last 10 of 200")
    assert info["chars_per_token"] == pytest.approx(info["heldout_chars"] / info["heldout_tokens"])
    assert info["chars_per_token"] > 1.5 and info["lines_altered_by_decoding"] == 0
    argv = ["lts", "search", "--config-json", config, "--out", str(out)]
    argv += ["--state-dir", str(tmp_path / "state"), "--cache", str(cache)]
    assert main(argv) == 0
    frontier = pd.read_csv(out / "frontier.csv")
    seen = pd.read_csv(out / "all.csv")
    assert len(frontier) >= 1 and frontier["arch_id"].isin(seen["arch_id"]).all()
    for column in ("decoder_params", "latency_ms", "memory_mb", "p95_ms_per_char"):
        assert (seen[column] > 0).all()
    assert (seen["chars_per_token"] == info["chars_per_token"]).all()
    assert seen["p95_ms_per_char"].to_numpy() == pytest.approx(
        (seen["p95_latency_char_ms_per_token"] / info["chars_per_token"]).to_numpy()
    )
    assert (out / "frontier_evolution.png").stat().st_size > 5_000
    measured = _cached_rows(cache)
    assert measured == len(seen)
    # Search again from scratch (fresh state): every measurement comes from the cache.
    assert main([*argv, "--fresh"]) == 0
    timing = json.loads((out / "timing.json").read_text())
    assert timing["measured"] == 0 and timing["cache_hits"] == len(seen)
    frontier_csv = str(out / "frontier.csv")
    case = ["lts", "case-study", "--config-json", config, "--frontier", frontier_csv]
    table, markdown = tmp_path / "case.csv", tmp_path / "case.md"
    case += ["--cache", str(cache), "--text", str(text), "--markdown", str(markdown)]
    before = _cached_rows(cache)
    assert main([*case, "--out", str(table)]) == 0
    rows = pd.read_csv(table)
    assert rows["role"].iloc[0] == "baseline"
    assert rows["p95_latency_char_vs_baseline"].iloc[0] == pytest.approx(1.0)
    ratio = rows["p95_latency_char_ms_per_token"] / rows["p95_latency_char_ms_per_token"].iloc[0]
    assert rows["p95_latency_char_vs_baseline"].to_numpy() == pytest.approx(ratio, rel=1e-3)
    # the case study measured only what the search had not (same text set, same cache key)
    assert _cached_rows(cache) - before == len({*rows["arch_id"]} - {*seen["arch_id"]})
    md = markdown.read_text()
    header = md.splitlines()[0]
    assert "P95 latency_char (ms/token)" in header and "P95 latency (ms/char)" in header
    assert f"latency_char / {info['chars_per_token']:.3f} characters per token" in md
    assert "over 3 held-out prompts of 2-8 tokens" in md
    assert 1 <= (rows["role"] == "candidate").sum() <= 2
    assert (rows["decoder_params_m"].iloc[1:] > rows["decoder_params_m"].iloc[0]).all()
    capsys.readouterr()


def test_no_text_corpus_fails_before_any_work(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("NASFLOW_MIRROR", raising=False)
    out, cache = tmp_path / "o", tmp_path / "c.sqlite"
    argv = ["lts", "search", "--config-json", _config(), "--out", str(out)]
    assert main([*argv, "--cache", str(cache)]) == 2
    assert "config key lts.text.corpus" in capsys.readouterr().err
    assert not out.exists() and not cache.exists()


def test_bad_measure_settings_name_the_key(tmp_path: Path, capsys) -> None:
    config = _config(measure={"new_tokens": 1})
    argv = ["lts", "search", "--config-json", config, "--out", str(tmp_path / "o")]
    assert main([*argv, "--cache", str(tmp_path / "c.sqlite")]) == 2
    assert "lts.measure.new_tokens" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()

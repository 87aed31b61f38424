"""Search run folders (`nasflow search tables`): one results row, iteration history and predictor
schedule per run.

A run folder `.../{method}/{constraint}/seed{S}` holds the outputs of `nasflow search run`
(`best.json`, `timing.json`, `history.csv`) and of the searched architecture trained from scratch:
`final/score.json` (`nasflow arch score`) and `final/latency.json` (`nasflow latency measure
--out`). The measured latency is encoder + decoder, its std the two stds added in quadrature.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from nasflow.core.errors import DataError

LEGACY_PROTOCOL = "cached"
"""The protocol of a run whose outputs do not name one: before `search.protocol` existed every
search used the per-run score cache."""
RESULT_COLUMNS = (
    "method",
    "constraint",
    "seed",
    "arch_id",
    "test_bleu",
    "test_tokenized_bleu",
    "valid_bleu",
    "latency_ms",
    "latency_std_ms",
    "predicted_latency_ms",
    "gflops",
    "params_m",
    "params_total_m",
    "predicted_score",
    "score_predictor",
    "supernet_kind",
    "protocol",
    "search_seconds",
    "search_hours",
)
SEARCH_HINT = "written by nasflow search run"
SCORE_HINT = "write it with nasflow arch score for the final model"
LATENCY_HINT = "write it with nasflow latency measure --out for the final model"


@dataclass
class Run:
    """One search run: its results row, iteration history and predictor schedule."""

    row: dict[str, Any]
    history: pd.DataFrame
    schedule: dict[str, Any]
    limits: dict[str, Any]


# ---- reading ------------------------------------------------------------------------------------


def _read_json(path: Path, hint: str) -> dict[str, Any]:
    if not path.is_file():
        raise DataError(f"{path}: file not found ({hint})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"{path}: unreadable JSON ({error})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object")
    return data


def _read_history(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"{path}: file not found ({SEARCH_HINT})")
    try:
        history = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: unreadable CSV ({error})") from None
    missing = [c for c in ("iteration", "predictor", "best_score") if c not in history.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}")
    return history


def _number(data: Mapping[str, Any], *keys: str) -> float:
    """A nested number, NaN when absent."""
    value: Any = data
    for key in keys:
        if not isinstance(value, Mapping) or key not in value:
            return math.nan
        value = value[key]
    return float(value) if isinstance(value, int | float) and value is not None else math.nan


def _identity(folder: Path, best: Mapping[str, Any]) -> tuple[str, str, int]:
    """Method, constraint and seed from best.json, else from the folder names."""
    method = best.get("method", folder.parent.parent.name)
    constraint = best.get("constraint", folder.parent.name)
    if "seed" in best:
        return str(method), str(constraint), int(best["seed"])
    match = re.fullmatch(r"seed(\d+)", folder.name)
    if match is None:
        raise DataError(f"{folder}: no seed in best.json and the folder is not named seed<S>")
    return str(method), str(constraint), int(match.group(1))


def _uses_supernet(best: Mapping[str, Any]) -> bool:
    """Whether a run's recorded schedule scores any iteration with a supernet."""
    schedule = best.get("schedule") or {}
    names = {schedule.get("default"), *(s.get("predictor") for s in schedule.get("segments", []))}
    return bool(names & {"supernet", "supernet-calibrated"})


def read_run(folder: str | Path) -> Run:
    """A run folder's results row; DataError naming any missing or mismatched file."""
    folder = Path(folder)
    best_path = folder / "best.json"
    best = _read_json(best_path, SEARCH_HINT)
    timing = _read_json(folder / "timing.json", SEARCH_HINT)
    history = _read_history(folder / "history.csv")
    score_path, latency_path = folder / "final" / "score.json", folder / "final" / "latency.json"
    score = _read_json(score_path, SCORE_HINT)
    latency = _read_json(latency_path, LATENCY_HINT)
    arch_id = best.get("arch_id")
    for path, data in ((score_path, score), (latency_path, latency)):
        if data.get("arch_id") is not None and data["arch_id"] != arch_id:
            raise DataError(
                f"{path}: is for architecture {data['arch_id']}, but {best_path} names {arch_id}"
            )
    if "total_ms" not in latency:
        raise DataError(f"{latency_path}: no total_ms ({LATENCY_HINT})")
    method, constraint, seed = _identity(folder, best)
    std = math.hypot(_number(latency, "encoder_std_ms"), _number(latency, "decoder_std_ms"))
    seconds = _number(timing, "search_seconds")
    row: dict[str, Any] = {
        "method": method,
        "constraint": constraint,
        "seed": seed,
        "arch_id": arch_id,
        "test_bleu": _number(score, "test", "bleu"),
        "test_tokenized_bleu": _number(score, "test", "tokenized_bleu"),
        "valid_bleu": _number(score, "valid", "bleu"),
        "latency_ms": _number(latency, "total_ms"),
        "latency_std_ms": std,
        "predicted_latency_ms": _number(best, "predicted_latency_ms"),
        "gflops": _number(best, "gflops"),
        "params_m": _number(best, "params_m"),
        "params_total_m": _number(best, "params_total_m"),
        "predicted_score": _number(best, "score"),
        "score_predictor": best.get("predictor"),
        # Runs before supernet kinds existed used the HAT supernet when they used one.
        "supernet_kind": best.get("supernet_kind", "hat" if _uses_supernet(best) else None),
        "protocol": str(timing.get("protocol") or best.get("protocol") or LEGACY_PROTOCOL),
        "search_seconds": seconds,
        "search_hours": seconds / 3600.0,
    }
    for name, value in sorted((timing.get("predictor_seconds") or {}).items()):
        row[f"predictor_seconds_{name}"] = float(value)
    for name, value in sorted((timing.get("scored") or {}).items()):
        row[f"scored_{name}"] = int(value)
    row["run_dir"] = str(folder)
    return Run(
        row, history, dict(best.get("schedule") or {}), dict(best.get("constraint_limits") or {})
    )


def read_runs(folders: Sequence[str | Path]) -> list[Run]:
    """Every run folder, refusing two folders of the same method, constraint and seed."""
    runs = [read_run(folder) for folder in folders]
    seen: dict[tuple[str, str, int], str] = {}
    for run in runs:
        key = (run.row["method"], run.row["constraint"], run.row["seed"])
        if key in seen:
            raise DataError(
                f"{run.row['run_dir']} and {seen[key]}: both are method {key[0]}, "
                f"constraint {key[1]}, seed {key[2]}"
            )
        seen[key] = run.row["run_dir"]
    return runs


def results_frame(runs: Sequence[Run]) -> pd.DataFrame:
    """One row per run (`RESULT_COLUMNS`, then predictor seconds and scored counts, run_dir)."""
    frame = pd.DataFrame([run.row for run in runs])
    extra = sorted(c for c in frame.columns if c.startswith(("predictor_seconds_", "scored_")))
    return frame[[*RESULT_COLUMNS, *extra, "run_dir"]]

"""Zero-cost scores of every distinct architecture of a TFS-Eval set, per task, as a CSV.

The CSV has the columns `task,arch_id,grad-norm,snip,synflow,seconds` (raw proxy values, higher
= predicted better; `seconds` is the time of all three for that architecture). A JSON sidecar
describes the run and, per task, the batch (`ScoringBatch.info`), vocabulary and timing.
`read_scores` turns the CSV back into three rank-only `StoredPredictor`s per task.
"""

from __future__ import annotations

import csv
import logging
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nasflow import __version__
from nasflow.core.errors import DataError
from nasflow.core.io import write_json_atomic, write_text_atomic
from nasflow.model.supertransformer import ModelConfig
from nasflow.predictors.baselines import StoredPredictor
from nasflow.tfs.format import read_tfs_eval, read_tfs_eval_info, unique_archs
from nasflow.zero_cost.batches import ScoringBatch
from nasflow.zero_cost.predictor import SYNFLOW_TOKEN, score_archs
from nasflow.zero_cost.proxies import NAMES

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

COLUMNS: tuple[str, ...] = ("task", "arch_id", *NAMES, "seconds")
"""Columns of the scores CSV."""


def score_tfs_eval(
    root: str | Path,
    tasks: Sequence[str] | None,
    batch_for: Callable[[str], ScoringBatch],
    *,
    model_config: ModelConfig | None = None,
    seed: int = 1,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Scores (`COLUMNS`) of every distinct architecture of each task (default: all), on the
    batch `batch_for(task)`, and the sidecar describing them."""
    import pandas as pd
    import torch

    model_config = model_config or ModelConfig()
    info = read_tfs_eval_info(root)
    table = read_tfs_eval(root, tasks=tasks)
    names = list(tasks) if tasks is not None else list(table["task"].unique())
    frames, described = [], {}
    for task in names:
        started = time.perf_counter()
        scoring = batch_for(task)
        archs = list(unique_archs(table, task)["arch"])
        vocab = info.tasks[task].vocab_size
        frame = score_archs(
            archs,
            space=info.space,
            vocab_size=vocab,
            batch=scoring.batch,
            model_config=model_config,
            seed=seed,
        )
        frames.append(frame.assign(task=task)[list(COLUMNS)])
        seconds = time.perf_counter() - started
        described[task] = {
            "vocab_size": vocab,
            "archs": len(archs),
            "seconds": round(seconds, 3),
            "seconds_per_arch": round(float(frame["seconds"].mean()), 3),
            "batch": scoring.info,
        }
        logger.info(
            "zero-cost %s: %d architectures in %.1f s (%.2f s per architecture)",
            task, len(archs), seconds, frame["seconds"].mean(),
        )  # fmt: skip
    sidecar = {
        "nasflow_version": __version__,
        "tfs_eval": str(root),
        "space": info.space,
        "seed": seed,
        "model": model_config.to_dict(),
        "proxies": list(NAMES),
        "loss": "cross-entropy, no label smoothing, mean over non-pad target tokens, eval mode",
        "synflow_input": f"every source and previous-output position = token id {SYNFLOW_TOKEN}",
        "threads": torch.get_num_threads(),
        "tasks": described,
    }
    return pd.concat(frames, ignore_index=True), sidecar


def write_scores(
    frame: pd.DataFrame,
    sidecar: dict[str, Any],
    out: str | Path,
    json_path: str | Path | None = None,
) -> Path:
    """Write the CSV and its sidecar (default `<out>.json`) atomically; return the sidecar path."""
    out = Path(out)
    json_path = Path(json_path) if json_path is not None else out.with_name(out.name + ".json")
    out.parent.mkdir(parents=True, exist_ok=True)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    frame = frame[list(COLUMNS)].assign(seconds=frame["seconds"].round(4))
    write_text_atomic(out, frame.to_csv(index=False))
    write_json_atomic(json_path, sidecar)
    return json_path


def _value(text: str, where: str, column: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise DataError(f"{where}: column {column!r}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise DataError(f"{where}: column {column!r}: {text!r} is not finite")
    return value


def read_scores(path: str | Path) -> dict[str, list[StoredPredictor]]:
    """Per task, the rank-only predictors `grad-norm`, `snip`, `synflow` keyed by arch_id."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    values: dict[str, dict[str, dict[str, float]]] = {}
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, [])
            missing = [c for c in ("task", "arch_id", *NAMES) if c not in header]
            if missing:
                raise DataError(f"{path}:1: missing column(s) {', '.join(missing)}")
            for row in reader:
                where = f"{path}:{reader.line_num}"
                if len(row) != len(header):
                    raise DataError(f"{where}: {len(row)} fields, the header has {len(header)}")
                record = dict(zip(header, row, strict=True))
                task, arch_id = record["task"], record["arch_id"]
                per_task = values.setdefault(task, {n: {} for n in NAMES})
                if arch_id in per_task[NAMES[0]]:
                    raise DataError(f"{where}: architecture {arch_id} of {task} listed twice")
                for name in NAMES:
                    per_task[name][arch_id] = _value(record[name], where, name)
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not valid UTF-8 ({error.reason})") from None
    except csv.Error as error:
        raise DataError(f"{path}: malformed CSV ({error})") from None
    if not values:
        raise DataError(f"{path}: holds no scores")
    return {
        task: [StoredPredictor(n, scores[n], bleu_scale=False) for n in NAMES]
        for task, scores in values.items()
    }

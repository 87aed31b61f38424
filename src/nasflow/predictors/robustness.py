"""LLM-PP robustness (the paper's A.8.4): how much repeated samples of one prompt disagree.

Each architecture of a TFS-Eval test split is asked for several times (`nasflow llm-pp predict
--samples 3`; every sample is its own request under its own cache key, so sample 0 is the reply
of the ordinary one-sample run). Per architecture, the spread is the standard deviation of its
sample values (population std, ddof=0, the convention of `nasflow.core.metrics`); the figure is the
mean of that spread over the architectures (every (split seed, test architecture) prompt), per
task and LLM setup. The offline stand-in is deterministic: its spread is 0 by construction, and
the table says so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from nasflow.core.errors import DataError
from nasflow.predictors.llm import OFFLINE_SETUP
from nasflow.predictors.quality import AVERAGE_TASK

OFFLINE_NOTE = "offline stand-in: deterministic, std 0 by construction"
ROBUSTNESS_COLUMNS = (
    "setup",
    "predictor",
    "task",
    "samples",
    "architectures",
    "excluded",
    "mean_std",
    "max_std",
    "note",
)


def sample_values(record: Mapping[str, Any], source: str = "predictions") -> list[float | None]:
    """The per-sample values of one prediction record (a clear error for files that lack them)."""
    values = record.get("sample_values")
    if values is None:
        raise DataError(
            f"{source}: the record of {record.get('predictor')!r} (seed {record.get('seed')}, "
            f"arch {record.get('arch_id')}) has no sample_values; rerun `nasflow llm-pp predict` "
            "(replies come from the cache)"
        )
    return [None if v is None else float(v) for v in values]


def robustness_table(
    records: Sequence[Mapping[str, Any]], samples: int | None = None
) -> pd.DataFrame:
    """Columns `ROBUSTNESS_COLUMNS`: per (setup, task), the mean over architectures of the std
    of their `samples` sample values (and the largest std). Architectures with a failed sample
    are left out and counted in `excluded`. With 2+ tasks, an `Average` row per setup averages
    the tasks' figures. `samples` None: the number every record holds (all must agree)."""
    if not records:
        raise DataError("no prediction records")
    counts = {len(sample_values(r)) for r in records}
    if samples is None:
        if len(counts) != 1:
            raise DataError(f"records hold different numbers of samples: {sorted(counts)}")
        samples = counts.pop()
    if samples < 2:
        raise DataError(
            f"robustness needs at least 2 samples per architecture, the records hold {samples} "
            "(predict with --samples 3)"
        )
    groups: dict[tuple[str, str, str], list[list[float | None]]] = {}
    for record in records:
        values = sample_values(record)
        if len(values) != samples:
            raise DataError(
                f"{record['predictor']!r} seed {record['seed']} arch {record['arch_id']}: "
                f"{len(values)} samples, expected {samples}"
            )
        key = (str(record["setup"]), str(record["predictor"]), str(record["task"]))
        groups.setdefault(key, []).append(values)
    rows = []
    for (setup, predictor, task), per_arch in groups.items():
        complete = [v for v in per_arch if None not in v]
        stds = [float(np.std(np.asarray(v, dtype=float))) for v in complete]
        rows.append(
            {
                "setup": setup,
                "predictor": predictor,
                "task": task,
                "samples": samples,
                "architectures": len(complete),
                "excluded": len(per_arch) - len(complete),
                "mean_std": float(np.mean(stds)) if stds else math.nan,
                "max_std": float(np.max(stds)) if stds else math.nan,
                "note": OFFLINE_NOTE if setup == OFFLINE_SETUP else "",
            }
        )
    table = pd.DataFrame(rows, columns=list(ROBUSTNESS_COLUMNS))
    averages = []
    for (setup, predictor), rows_of in table.groupby(["setup", "predictor"], sort=False):
        if len(rows_of) > 1:
            averages.append(
                {
                    "setup": setup,
                    "predictor": predictor,
                    "task": AVERAGE_TASK,
                    "samples": samples,
                    "architectures": int(rows_of["architectures"].sum()),
                    "excluded": int(rows_of["excluded"].sum()),
                    "mean_std": float(rows_of["mean_std"].mean()),
                    "max_std": float(rows_of["max_std"].max()),
                    "note": rows_of["note"].iloc[0],
                }
            )
    if averages:
        table = pd.concat([table, pd.DataFrame(averages)], ignore_index=True)
        order = {task: i for i, task in enumerate(dict.fromkeys(table["task"]))}
        order[AVERAGE_TASK] = len(order)
        table = table.sort_values(
            ["setup", "task"], key=lambda c: c.map(order) if c.name == "task" else c, kind="stable"
        ).reset_index(drop=True)
    return table

"""Quality of performance predictors on TFS-Eval: MAE and Kendall's tau, mean ± std over seeds.

For each task, seed and predictor, the predictor scores that seed's `test` architectures and is
compared with the gold from-scratch valid BLEU. The `Average` task averages each seed's metric
over the tasks first, then summarises over seeds (population std, see `nasflow.core.metrics`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from nasflow.core.errors import DataError
from nasflow.core.metrics import kendall, mae, summarize_over_seeds
from nasflow.predictors.base import Predictor, check_scores
from nasflow.predictors.baselines import FlopsPredictor, ParamsPredictor, StoredPredictor
from nasflow.predictors.calibration import SUFFIXES
from nasflow.tfs.format import COLUMNS, STORED_PREDICTORS

PAPER_ORDER: tuple[str, ...] = (*STORED_PREDICTORS, "#Params", "#FLOPs")
"""The rows of the released sets' default table (`default_predictors`), in the paper's order.
Calibrated and zero-cost rows, when added, are placed by `_ordered`."""
SUPERNET_PREFIXES: tuple[str, ...] = ("Supernet", "Layer-wise MoS", "Neuron-wise MoS")
"""Name prefixes of supernet-based predictors (e.g. this workflow's `Supernet (loss)`)."""
ZERO_COST_PREDICTORS: tuple[str, ...] = ("grad-norm", "snip", "synflow")
"""Rows of the zero-cost proxies (`nasflow zero-cost score`), rank only."""
RESULT_COLUMNS: tuple[str, ...] = (
    "predictor",
    "task",
    "mae",
    "mae_std",
    "kendall",
    "kendall_std",
    "n_seeds",
)
AVERAGE_TASK = "Average"
METRICS = ("mae", "kendall")

PredictorsForTask = Mapping[str, Sequence[Predictor]] | Callable[[str], Sequence[Predictor]]
SeedMetrics = dict[int, dict[str, float]]


def default_predictors(table: pd.DataFrame, task: str) -> list[Predictor]:
    """The stored predictors of `table` (the released supernets first), then #Params and
    #FLOPs with the task's vocabulary."""
    rows = table[table["task"] == task]
    if rows.empty:
        known = ", ".join(map(str, table["task"].unique()))
        raise DataError(f"the TFS-Eval table has no task {task!r}; it has: {known}")
    stored_names = [c for c in table.columns[len(COLUMNS) :] if rows[c].notna().any()]
    rank_only = set(table.attrs.get("rank_only", ()))
    stored: list[Predictor] = [
        StoredPredictor.from_table(table, name, task, bleu_scale=name not in rank_only)
        for name in _ordered(stored_names)
    ]
    vocab = int(rows["vocab_size"].iloc[0])
    return [*stored, ParamsPredictor(vocab), FlopsPredictor(vocab)]


def supernet_bases(predictors: Sequence[Predictor]) -> list[Predictor]:
    """The supernet-based predictors among a task's `predictors` (the ones to calibrate):
    `STORED_PREDICTORS` and names starting with `SUPERNET_PREFIXES`, calibrated ones left out."""
    return [
        p
        for p in predictors
        if (p.name in STORED_PREDICTORS or p.name.startswith(SUPERNET_PREFIXES))
        and _calibrated_base(p.name) is None
    ]


def per_seed_metrics(table: pd.DataFrame, task: str, predictor: Predictor) -> SeedMetrics:
    """`{seed: {"mae": ..., "kendall": ...}}` on each seed's test split (MAE NaN if rank-only)."""
    test = table[(table["task"] == task) & (table["split"] == "test")]
    if test.empty:
        raise DataError(f"the TFS-Eval table has no test rows for task {task!r}")
    results: SeedMetrics = {}
    for seed, rows in test.groupby("seed", sort=True):
        archs = list(rows["arch"])
        gold = rows["gold"].to_numpy(dtype=float)
        scores = check_scores(predictor, archs, predictor.for_seed(int(seed)).predict(archs))
        results[int(seed)] = {
            "mae": mae(gold, scores) if predictor.bleu_scale else math.nan,
            "kendall": kendall(gold, scores),
        }
    return results


def evaluate_predictors(
    table: pd.DataFrame,
    tasks: Sequence[str],
    predictors_for_task: PredictorsForTask,
) -> pd.DataFrame:
    """Columns `RESULT_COLUMNS`: one row per (predictor, task), plus `Average` for 2+ tasks.

    `predictors_for_task` maps a task to its predictors (a mapping or a callable). Rows follow
    the paper's layout for known predictor names (`_ordered`; others after, in first-seen order),
    tasks in the given order, then `Average` (only for predictors evaluated on every task; seeds
    common to all tasks).
    """
    tasks = list(tasks)
    if not tasks:
        raise ValueError("evaluate_predictors: no tasks given")
    results: dict[str, dict[str, SeedMetrics]] = {}
    bleu_scale: dict[str, bool] = {}
    for task in tasks:
        predictors = (
            predictors_for_task(task)
            if callable(predictors_for_task)
            else predictors_for_task[task]
        )
        for predictor in predictors:
            by_task = results.setdefault(predictor.name, {})
            if task in by_task:
                raise ValueError(f"predictor name {predictor.name!r} used twice for task {task}")
            by_task[task] = per_seed_metrics(table, task, predictor)
            bleu_scale[predictor.name] = bleu_scale.get(predictor.name, True) and (
                predictor.bleu_scale
            )
    if len(tasks) > 1:
        for by_task in results.values():
            average = _average_over_tasks(by_task, tasks)
            if average:
                by_task[AVERAGE_TASK] = average
    rows = [
        _summary_row(name, task, results[name][task], bleu_scale[name])
        for name in _ordered(results)
        for task in [*tasks, AVERAGE_TASK]
        if task in results[name]
    ]
    return pd.DataFrame(rows, columns=list(RESULT_COLUMNS))


def _average_over_tasks(by_task: Mapping[str, SeedMetrics], tasks: Sequence[str]) -> SeedMetrics:
    """Per seed, each metric averaged over `tasks` (empty if a task or all common seeds lack)."""
    if any(task not in by_task for task in tasks):
        return {}
    seeds = sorted(set.intersection(*(set(by_task[t]) for t in tasks)))
    return {
        seed: {m: float(np.mean([by_task[t][seed][m] for t in tasks])) for m in METRICS}
        for seed in seeds
    }


def _summary_row(name: str, task: str, per_seed: SeedMetrics, bleu_scale: bool) -> dict:
    kendall_mean, kendall_std, n = summarize_over_seeds(
        {s: v["kendall"] for s, v in per_seed.items()}
    )
    mae_mean, mae_std = math.nan, math.nan
    if bleu_scale:
        mae_mean, mae_std, _ = summarize_over_seeds({s: v["mae"] for s, v in per_seed.items()})
    return {
        "predictor": name,
        "task": task,
        "mae": mae_mean,
        "mae_std": mae_std,
        "kendall": kendall_mean,
        "kendall_std": kendall_std,
        "n_seeds": n,
    }


def _calibrated_base(name: str) -> tuple[str, int] | None:
    """(base name, mode index) of a calibrated predictor's name, else None."""
    for index, suffix in enumerate(SUFFIXES.values()):
        if name.endswith(suffix):
            return name[: -len(suffix)], index
    return None


def _ordered(names: Sequence[str] | Mapping[str, object]) -> list[str]:
    """The paper's layout: the released supernet predictors (`STORED_PREDICTORS`), other
    supernet predictors (`SUPERNET_PREFIXES`, e.g. this workflow's `Supernet (loss)`), the
    calibrated rows (in their bases' order, affine before shift), #Params and #FLOPs, the
    zero-cost proxies (`ZERO_COST_PREDICTORS`), then the rest (LLM-PP, LLM-Distill-PP) in
    first-seen order."""
    names = list(names)
    calibrated = {n: base for n in names if (base := _calibrated_base(n)) is not None}
    plain = [n for n in names if n not in calibrated]
    stored = [n for n in STORED_PREDICTORS if n in plain]
    supernets = [n for n in plain if n.startswith(SUPERNET_PREFIXES) and n not in stored]
    bases = list(
        dict.fromkeys([*STORED_PREDICTORS, *supernets, *(b for b, _ in calibrated.values())])
    )
    calibrations = sorted(
        calibrated, key=lambda n: (bases.index(calibrated[n][0]), calibrated[n][1])
    )
    counts = [n for n in ("#Params", "#FLOPs") if n in plain]
    zero_cost = [n for n in ZERO_COST_PREDICTORS if n in plain]
    first = [*stored, *supernets, *calibrations, *counts, *zero_cost]
    return first + [n for n in names if n not in first]

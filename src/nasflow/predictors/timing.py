"""Table 11: the time each predictor takes for 10 architectures, beside its quality.

The timed architectures are the first `TIMED_ARCHS` test architectures of a task in split-seed
order: the first split seed's test split, continued into the next seeds' when it holds fewer
(the released sets hold 20 per seed, so there all 10 come from the first seed). Each
(seed, architecture) is one prediction, as each seed has its own LLM-PP prompts and its own
distilled MLP.

How each kind is timed:
- measured in the job (`time_predictor`): the wall time of `predict()` on the architectures of
  each seed, after loading the predictor and one warm-up prediction (neither is timed), summed
  over the seeds involved. This is how the supernet and the distilled MLP are timed.
- recorded (`recorded_latency`): LLM-PP's replies carry the request latency the reply cache
  recorded when each was first asked for; the time is the sum over the architectures' replies
  (every sample and parse retry), i.e. the requests one after another. A reply served from the
  cache shows its original request's latency, not the (near-zero) lookup.
- not timed: predictions stored in a file (the released supernet blocks), timed by nobody.

Quality is `nasflow.predictors.quality.evaluate_predictors`, the code of Table 1.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from nasflow.core.errors import DataError
from nasflow.predictors.base import Predictor
from nasflow.predictors.quality import AVERAGE_TASK, evaluate_predictors
from nasflow.space.hat import Arch

TIMED_ARCHS = 10
MEASURED = "measured in the job (load and one warm-up prediction excluded)"
RECORDED = "sum of recorded LLM request latencies"
NOT_TIMED = "not timed"
NOT_RECORDED = "not recorded"

TABLE11_COLUMNS = (
    "predictor",
    "kind",
    "task",
    "time_s",
    "timed_archs",
    "timing",
    "mae",
    "mae_std",
    "kendall",
    "kendall_std",
    "n_seeds",
)

TimedPair = tuple[int, Arch]
"""(split seed, test architecture): one timed prediction."""


@dataclass(frozen=True)
class Timing:
    """Seconds to predict `archs` architectures (None: not timed), how, and what it means."""

    seconds: float | None
    archs: int
    how: str
    note: str = ""


@dataclass(frozen=True)
class Entry:
    """One row of Table 11 for one task: a predictor (for its quality) and its timing."""

    kind: str
    predictor: Predictor
    timing: Timing


def timing_pairs(table: pd.DataFrame, task: str, n: int = TIMED_ARCHS) -> list[TimedPair]:
    """The first `n` (seed, architecture) pairs of `task`'s test splits, seeds ascending, each
    seed's architectures in file order."""
    test = table[(table["task"] == task) & (table["split"] == "test")]
    if test.empty:
        raise DataError(f"the TFS-Eval table has no test rows for task {task!r}")
    pairs = [(int(seed), arch) for seed, arch in zip(test["seed"], test["arch"], strict=True)]
    pairs.sort(key=lambda pair: pair[0])  # stable: file order within a seed
    return pairs[:n]


def _by_seed(pairs: Sequence[TimedPair]) -> dict[int, list[Arch]]:
    groups: dict[int, list[Arch]] = {}
    for seed, arch in pairs:
        groups.setdefault(seed, []).append(arch)
    return groups


def time_predictor(
    load: Callable[[int], Predictor],
    pairs: Sequence[TimedPair],
    note: str = "",
    clock: Callable[[], float] = time.perf_counter,
) -> Timing:
    """Wall time of predicting `pairs`: per seed, `load(seed)` and, the first time a predictor
    object is seen, one warm-up prediction of its first architecture (both untimed), then one
    timed `predict()` of the seed's architectures; summed over the seeds."""
    if not pairs:
        raise ValueError("time_predictor: no architectures to time")
    total = 0.0
    warmed: set[int] = set()
    for seed, archs in _by_seed(pairs).items():
        predictor = load(seed)
        if id(predictor) not in warmed:  # lazy initialisation, caches: not timed
            predictor.predict(archs[:1])
            warmed.add(id(predictor))
        start = clock()
        scores = predictor.predict(archs)
        total += clock() - start
        if len(scores) != len(archs):
            raise ValueError(f"{predictor.name}: {len(scores)} scores for {len(archs)} archs")
    return Timing(total, len(pairs), MEASURED, note)


def recorded_latency(
    records: Sequence[Mapping], task: str, pairs: Sequence[TimedPair], name: str
) -> Timing:
    """LLM-PP's time for `pairs` from the request latencies its prediction records carry."""
    found = {
        (int(r["seed"]), str(r["arch_id"])): r
        for r in records
        if r["predictor"] == name and r["task"] == task
    }
    chosen = []
    for seed, arch in pairs:
        if (seed, arch.id) not in found:
            raise DataError(f"{name}: no prediction for {task} seed {seed} arch {arch.id}")
        chosen.append(found[(seed, arch.id)])
    if any("latencies_s" not in r for r in chosen):
        return Timing(
            None,
            len(pairs),
            NOT_RECORDED,
            "the predictions were written before request latencies were recorded; delete the "
            "predictions file and rerun `nasflow llm-pp predict` (replies come from the cache)",
        )
    latencies = [value for r in chosen for value in r["latencies_s"]]
    missing = sum(value is None for value in latencies)
    if missing:
        return Timing(
            None, len(pairs), NOT_RECORDED, f"the cache has no latency for {missing} replies"
        )
    cached = sum(int(r.get("cache_hits", 0)) for r in chosen)
    note = f"{len(latencies)} replies, one request after another"
    if cached:
        note += (
            f"; {cached} of them were served from the reply cache and show the latency "
            "recorded when they were first requested"
        )
    return Timing(float(sum(latencies)), len(pairs), RECORDED, note)


def not_timed(pairs: Sequence[TimedPair], note: str) -> Timing:
    """A predictor nobody timed (e.g. predictions stored in a released file)."""
    return Timing(None, len(pairs), NOT_TIMED, note)


def table11(
    table: pd.DataFrame,
    tasks: Sequence[str],
    entries_for_task: Callable[[str], Sequence[Entry]],
) -> pd.DataFrame:
    """Columns `TABLE11_COLUMNS`: one row per (predictor, task), plus `Average` for 2+ tasks.

    Quality is `evaluate_predictors` on the predictors of the entries (mean ± std over seeds);
    the `Average` row's time is the mean of the tasks' times (empty unless every task is timed).
    """
    tasks = list(tasks)
    entries = {task: list(entries_for_task(task)) for task in tasks}
    quality = evaluate_predictors(table, tasks, lambda task: [e.predictor for e in entries[task]])
    by_key = {(e.predictor.name, task): e for task in tasks for e in entries[task]}
    rows = []
    for row in quality.to_dict("records"):
        name, task = row["predictor"], row["task"]
        if task == AVERAGE_TASK:
            per_task = [by_key[(name, t)] for t in tasks]
            seconds = [e.timing.seconds for e in per_task]
            entry = per_task[0]
            time_s = math.nan if None in seconds else float(np.mean(seconds))
            hows = {e.timing.how for e in per_task}
            how = hows.pop() if len(hows) == 1 else "mixed"
        else:
            entry = by_key[(name, task)]
            time_s = math.nan if entry.timing.seconds is None else entry.timing.seconds
            how = entry.timing.how
        rows.append(
            {
                **row,
                "kind": entry.kind,
                "time_s": time_s,
                "timed_archs": entry.timing.archs,
                "timing": how,
            }
        )
    return pd.DataFrame(rows, columns=list(TABLE11_COLUMNS))

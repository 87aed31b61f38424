"""LTS's training-free evolutionary Pareto search, with a persistent measurement cache, seeded and
resumable.

The search is generic: it evolves any architecture type through a `ParetoSpace` and scores it
through an `Evaluator` (e.g. decoder parameters in closed form plus latency and peak memory
measured on the device). Per the LTS paper (reference §5):

- The initial population is `population` distinct valid architectures sampled from the space.
- Iteration `i` (1..`iterations`) evaluates the population's architectures not evaluated before
  (through the `MeasurementCache`, so nothing is ever measured twice, even across searches), then
  recomputes the Pareto frontier over **every architecture evaluated so far**. Unless it is the
  last iteration, it then selects `parents` from the frontier and breeds `mutations` mutants (a
  parent drawn uniformly, each gene redrawn with `mutation_prob`) and `crossovers` children (two
  distinct parents, uniform per gene); every child must satisfy the space's constraints
  (`is_valid`, checked *before* any measurement) and be unseen (neither evaluated before nor
  already bred in this iteration). The next population is parents + children.
- Parent selection: when the frontier holds more than `parents` points they are ranked by how
  often each was a parent before (fewer first, the paper's "favouring ones used less often"),
  then by crowding distance within the frontier (isolated points and the extremes first), then
  by a seeded random tie-break. When it holds fewer, the next non-dominated ranks fill the rest
  (the rank that overflows is subsampled the same way).

Differences from the public code, all deliberate (reference §7): constraints are checked before
measuring; rejection sampling is bounded (`max_resample_tries`, with an error naming whether
candidates were invalid or already seen); one `random.Random(seed)` drives every draw and the
state is saved after every iteration, so a killed search resumed ends exactly as an uninterrupted
one with a deterministic evaluator (timings aside; the measurements of a killed iteration are not
lost, they come back from the cache).
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from nasflow.config.sections import ParetoSettings
from nasflow.core.errors import ConfigError, NasflowError
from nasflow.core.io import atomic_path, connect_sqlite, write_json_atomic
from nasflow.core.state import SearchStateError, fingerprint, rng_from_json, rng_to_json
from nasflow.lts.screen import CostSurrogate, Screen
from nasflow.search.evolution import Evolution
from nasflow.search.pareto import (
    Objective,
    crowding_distance,
    dominated_by,
    hypervolume,
    hypervolume_gains,
    loss_matrix,
    non_dominated_sort,
    pareto_front,
    parse_objectives,
)

__all__ = [
    "HISTORY_COLUMNS",
    "LTS_OBJECTIVES",
    "Architecture",
    "Candidate",
    "Evaluator",
    "MeasurementCache",
    "Objective",
    "ParetoResult",
    "ParetoSearchError",
    "ParetoSettings",
    "ParetoSpace",
    "SearchStateError",
    "frontier_hypervolume",
    "run_pareto_search",
    "write_outputs",
]

#: LTS's objectives: maximise the decoder-parameter proxy, minimise latency and peak memory.
LTS_OBJECTIVES = (
    Objective("decoder_params", "max"),
    Objective("latency_ms", "min"),
    Objective("memory_mb", "min"),
)

HISTORY_COLUMNS = (
    "iteration",
    "frontier_size",
    "seen",
    "new",
    "measured",
    "cache_hits",
    "screened_out",
    "seconds",
)

#: Column names of the output tables that a metric may not take.
RESERVED_COLUMNS = frozenset({"arch_id", "arch", "first_seen", "on_frontier", "measured"})
#: Prefix of a surrogate's prediction stored beside a measured or screened-out candidate.
PREDICTED = "predicted_"

Progress = Callable[[dict[str, Any]], None]


class ParetoSearchError(NasflowError):
    """The Pareto search cannot go on (infeasible constraints, exhausted space, bad metrics)."""


# ---- protocols ----------------------------------------------------------------------------------


@runtime_checkable
class Architecture(Protocol):
    """An architecture value: a stable string `id` (equal archs, equal ids) and a JSON dict."""

    @property
    def id(self) -> str: ...

    def to_dict(self) -> dict[str, Any]: ...


@runtime_checkable
class ParetoSpace(Protocol):
    """What the search needs from a search space (all randomness from the `rng` passed in).

    - `name`: identifies the space in the resume fingerprint.
    - `sample(rng)`: a random architecture (may be invalid; the search checks `is_valid`).
    - `mutate(arch, prob, rng)`: a copy with each gene redrawn with probability `prob`.
    - `crossover(a, b, rng)`: a child taking each gene from `a` or `b` (uniform).
    - `is_valid(arch)`: every constraint holds (parameter bounds, d_inner rules, ...); cheap,
      called before any measurement.
    - `arch_from_dict(d)`: inverse of `arch.to_dict()` (for the resume state).
    """

    @property
    def name(self) -> str: ...

    def sample(self, rng: random.Random) -> Architecture: ...

    def mutate(self, arch: Any, prob: float, rng: random.Random) -> Architecture: ...

    def crossover(self, a: Any, b: Any, rng: random.Random) -> Architecture: ...

    def is_valid(self, arch: Any) -> bool: ...

    def arch_from_dict(self, data: Mapping[str, Any]) -> Architecture: ...


@runtime_checkable
class Evaluator(Protocol):
    """Scores architectures: one metrics mapping per architecture, in order.

    Each mapping must hold every objective's name with a finite number; other keys (e.g.
    `prompt_ms`, `token_ms`, `p95_ms_per_char`, `total_params`) are stored alongside and written
    to the output CSVs. An optional `name` attribute enters the resume fingerprint.
    """

    def evaluate(self, archs: Sequence[Any]) -> Sequence[Mapping[str, Any]]: ...


# ---- settings -----------------------------------------------------------------------------------


def _json_normal(value: Any) -> Any:
    """`value` as it reads back from JSON (tuples become lists)."""
    return json.loads(json.dumps(value, sort_keys=True))


# ---- measurement cache --------------------------------------------------------------------------


class MeasurementCache:
    """Persistent metrics per (arch id, device key, protocol key), in one SQLite file.

    `device` names the target (e.g. `"cpu-2t-ort1.18"`); `protocol` identifies how the metrics
    were obtained (a string, or a JSON-able mapping hashed with the state fingerprint: sequence
    length, thread count, repeats, objectives...). Rows of another device or protocol are never
    returned, so changing the measurement protocol never mixes numbers. Every `put` commits at
    once (a killed process loses nothing already returned), the first value stored for a key
    wins, and SQLite's file locking makes concurrent processes safe. `":memory:"` gives a
    throw-away cache.
    """

    _CHUNK = 500  # ids per SELECT (SQLite's bound-variable limit)

    def __init__(
        self, path: str | Path, device: str, protocol: str | Mapping[str, Any] = ""
    ) -> None:
        if not isinstance(device, str) or not device:
            raise ConfigError(f"the measurement cache needs a device key string, got {device!r}")
        self.path = str(path)
        self.device = device
        self.protocol = protocol if isinstance(protocol, str) else fingerprint(dict(protocol))
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # A damaged file is refused with a one-line message and left as it is (it holds hours of
        # measurements), never recreated.
        self._db = connect_sqlite(
            self.path,
            "measurement cache",
            setup=[
                "CREATE TABLE IF NOT EXISTS measurements ("
                " arch_id TEXT NOT NULL, device TEXT NOT NULL, protocol TEXT NOT NULL,"
                " metrics TEXT NOT NULL, created REAL NOT NULL,"
                " PRIMARY KEY (arch_id, device, protocol))"
            ],
            timeout=60.0,
        )

    def get_many(self, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Cached metrics of those of `ids` measured on this device under this protocol."""
        wanted = list(dict.fromkeys(ids))
        out: dict[str, dict[str, Any]] = {}
        for start in range(0, len(wanted), self._CHUNK):
            chunk = wanted[start : start + self._CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT arch_id, metrics FROM measurements WHERE device = ? AND protocol = ? "
                f"AND arch_id IN ({marks})",
                (self.device, self.protocol, *chunk),
            ).fetchall()
            out.update((arch_id, json.loads(text)) for arch_id, text in rows)
        return out

    def get(self, arch_id: str) -> dict[str, Any] | None:
        return self.get_many([arch_id]).get(arch_id)

    def put(self, arch_id: str, metrics: Mapping[str, Any]) -> None:
        """Store one architecture's metrics (kept if the key already holds some)."""
        self.put_many([(arch_id, metrics)])

    def put_many(self, items: Iterable[tuple[str, Mapping[str, Any]]]) -> None:
        """Store several in one transaction (committed before returning)."""
        now = time.time()
        rows = [
            (arch_id, self.device, self.protocol, json.dumps(dict(metrics), sort_keys=True), now)
            for arch_id, metrics in items
        ]
        with self._db:
            self._db.executemany(
                "INSERT OR IGNORE INTO measurements (arch_id, device, protocol, metrics, created)"
                " VALUES (?, ?, ?, ?, ?)",
                rows,
            )

    def __len__(self) -> int:
        (count,) = self._db.execute(
            "SELECT COUNT(*) FROM measurements WHERE device = ? AND protocol = ?",
            (self.device, self.protocol),
        ).fetchone()
        return int(count)

    def __bool__(self) -> bool:  # an empty cache is still a cache (`cache or default` pitfall)
        return True

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> MeasurementCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---- result -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """An evaluated architecture, its metrics and the iteration that first evaluated it."""

    arch: Any
    metrics: dict[str, Any]
    first_seen: int

    @property
    def id(self) -> str:
        return str(self.arch.id)

    def row(self) -> dict[str, Any]:
        """A flat row: `arch_id`, every metric, `first_seen`, `arch` (compact JSON)."""
        return {
            "arch_id": self.id,
            **self.metrics,
            "first_seen": self.first_seen,
            "arch": json.dumps(self.arch.to_dict(), sort_keys=True, separators=(",", ":")),
        }


@dataclass
class ParetoResult:
    """The outcome of `run_pareto_search`.

    Attributes:
        objectives: the objectives, in the order given.
        candidates: every evaluated architecture, in the order first evaluated.
        frontier: the final Pareto frontier over all of them, sorted by the first objective
            (ascending) then id.
        history: one row per iteration: `HISTORY_COLUMNS` plus `frontier` (the frontier's arch
            ids after that iteration, in evaluation order). `new` counts the architectures
            evaluated for the first time in the iteration, `measured` those of them sent to the
            evaluator and `cache_hits` those found in the cache (`new = measured + cache_hits`;
            after a resume the split may differ from an uninterrupted run, `new` never does).
        timing: `wall_seconds` (initial sampling plus every completed iteration, including
            measuring; no state writes or callbacks), `initial_seconds`, `evaluator_seconds`
            (inside `Evaluator.evaluate`), `measured`, `cache_hits`, `evaluated`. After a resume
            these sum the completed iterations of every session.
        resumed_from: iterations already done in a saved state when this call began.
        screened: with screening (`nasflow.lts.screen`), the candidates screened out (never
            measured): their exact objectives and `predicted_*` values.
        screen: with screening, its settings, the surrogate's leave-one-out error per objective
            and its error on candidates it had not seen (`held_out_error`).
    """

    objectives: tuple[Objective, ...]
    candidates: list[Candidate]
    frontier: list[Candidate]
    history: list[dict[str, Any]]
    timing: dict[str, Any]
    resumed_from: int = 0
    screened: list[Candidate] = field(default_factory=list)
    screen: dict[str, Any] | None = None

    def frontier_ids(self, iteration: int | None = None) -> list[str]:
        """The frontier's arch ids after `iteration` (default: the last)."""
        if iteration is None:
            return [c.id for c in self.frontier]
        for row in self.history:
            if row["iteration"] == iteration:
                return list(row["frontier"])
        raise KeyError(f"no iteration {iteration} in the search history")


# ---- the search ---------------------------------------------------------------------------------


def run_pareto_search(
    space: ParetoSpace,
    evaluator: Evaluator,
    objectives: Sequence[Objective] | Mapping[str, str],
    settings: ParetoSettings,
    cache: MeasurementCache,
    state_dir: str | Path | None = None,
    progress: Progress | None = None,
    *,
    fresh: bool = False,
    fingerprint_extra: Mapping[str, Any] | None = None,
    screen: Screen | None = None,
) -> ParetoResult:
    """Run (or resume) the evolutionary Pareto search.

    Args:
        space: the search space (see `ParetoSpace`).
        evaluator: measures architectures the cache does not hold (see `Evaluator`).
        objectives: `Objective`s or `{name: "max"|"min"}`.
        settings: hyperparameters and seed.
        cache: where measurements are looked up and stored (its device and protocol keys also
            enter the resume fingerprint).
        state_dir: when given, the state is saved there after the initial sampling and after
            every iteration, and a saved state of the same inputs is resumed; a state of other
            inputs is an error (`SearchStateError`) telling to delete it or pass `fresh`.
        progress: called with each iteration's history row after its state is saved.
        fresh: discard a saved state instead of resuming it.
        fingerprint_extra: JSON-able values the state must also match (e.g. the space's config
            and constraints, which `space.name` alone may not tell apart).
        screen: measure only the candidates that could enter the frontier
            (`nasflow.lts.screen`; None or disabled: every candidate is measured, as LTS).

    A space and an evaluator that both name a decoder `backbone` must name the same one (a
    Transformer-XL space measured as GPT-2 would be silently wrong): `ConfigError` otherwise.
    """
    space_backbone = getattr(space, "backbone", None)
    measured_backbone = getattr(evaluator, "backbone", None)
    if None not in (space_backbone, measured_backbone) and space_backbone != measured_backbone:
        raise ConfigError(
            f"space {space.name!r} has backbone {space_backbone}, but the evaluator measures "
            f"{measured_backbone} decoders (LTSEvaluator(..., backbone=space.backbone))"
        )
    search = _ParetoSearch(
        space, evaluator, parse_objectives(objectives), settings, cache, fingerprint_extra
    )
    if screen is not None and screen.settings.enabled:
        search.enable_screen(screen)
    return search.run(None if state_dir is None else Path(state_dir), progress, fresh)


class _ParetoSearch(Evolution):
    """LTS's selection: parents from the Pareto frontier of every architecture evaluated."""

    clock = "wall_seconds"

    def __init__(
        self,
        space: ParetoSpace,
        evaluator: Evaluator,
        objectives: tuple[Objective, ...],
        settings: ParetoSettings,
        cache: MeasurementCache,
        fingerprint_extra: Mapping[str, Any] | None,
    ) -> None:
        super().__init__(space, settings, fingerprint_extra)
        self.evaluator = evaluator
        self.objectives = objectives
        self.cache = cache
        self.evaluated: dict[str, Candidate] = {}
        self.usage: dict[str, int] = {}
        self.taken: set[str] = set()  # ids bred in the current phase group
        self.frontier: tuple[list[str], list[dict[str, Any]], list[int]] = ([], [], [])
        self.timing = {
            "wall_seconds": 0.0,
            "initial_seconds": 0.0,
            "evaluator_seconds": 0.0,
            "measured": 0,
            "cache_hits": 0,
            "evaluated": 0,
        }
        self.screen_with: Screen | None = None
        self.screened: dict[str, Candidate] = {}  # never measured: exact + predicted values
        self.predictions: dict[str, dict[str, float]] = {}  # made just before measuring
        self.surrogate: CostSurrogate | None = None

    def enable_screen(self, screen: Screen) -> None:
        """Measure only the candidates that could enter the frontier (`nasflow.lts.screen`)."""
        names = {o.name for o in self.objectives}
        predicted = set(screen.settings.measured)
        if not predicted <= names:
            raise ConfigError(
                f"the screen predicts {sorted(predicted - names)}, which are not objectives"
            )
        self.screen_with = screen
        self.timing["screened_out"] = 0

    # ---- selection ------------------------------------------------------------------------------
    def sample(self) -> Any:
        return self.space.sample(self.rng)

    def evaluate(self, iteration: int) -> dict[str, Any]:
        """Evaluate the new and update the frontier."""
        new = list({a.id: a for a in self.population if a.id not in self.evaluated}.values())
        if self.screen_with is None:
            metrics, measured, hits = self.measure(new)
            out = 0
        else:
            metrics, measured, hits, out = self.measure_screened(new, iteration)
            new = [a for a in new if a.id in metrics]
        for arch in new:
            self.evaluated[arch.id] = Candidate(arch, metrics[arch.id], iteration)
            self.screened.pop(arch.id, None)
        ids = list(self.evaluated)
        points = [c.metrics for c in self.evaluated.values()]
        front = pareto_front(points, self.objectives)
        self.frontier = (ids, points, front)
        if self.screened:
            # Parents come from the measured and the screened-out candidates (at their
            # predictions): with only the few measured ones, the same parents would breed the
            # same children again. The frontier reported stays the measured one.
            guesses = [self.as_predicted(c.metrics) for c in self.screened.values()]
            every = points + guesses
            self.frontier = (ids + list(self.screened), every, pareto_front(every, self.objectives))
        self.timing["evaluated"] += len(new)
        return {
            "iteration": iteration,
            "frontier_size": len(front),
            "seen": len(self.evaluated),
            "new": len(new),
            "measured": measured,
            "cache_hits": hits,
            "screened_out": out,
            "seconds": 0.0,
            "frontier": [ids[k] for k in front],
        }

    def select(self) -> list[Any]:
        self.taken = set()
        return self.select_parents(*self.frontier)

    # ---- measuring ------------------------------------------------------------------------------
    def measure(self, archs: Sequence[Any]) -> tuple[dict[str, dict[str, Any]], int, int]:
        """Metrics of `archs` (cache first, the rest in evaluator batches written through)."""
        out = self.cached(archs)
        hits = len(out)
        todo = [a for a in archs if a.id not in out]
        batch = self.settings.eval_batch
        for begin in range(0, len(todo), batch):
            out.update(self.evaluate_batch(todo[begin : begin + batch]))
        self.timing["measured"] += len(todo)
        self.timing["cache_hits"] += hits
        return out, len(todo), hits

    def cached(self, archs: Sequence[Any]) -> dict[str, dict[str, Any]]:
        """The metrics of those of `archs` the measurement cache holds, checked."""
        found = self.cache.get_many([a.id for a in archs])
        return {
            key: self.check(key, value, "the measurement cache") for key, value in found.items()
        }

    def evaluate_batch(self, batch: Sequence[Any]) -> dict[str, dict[str, Any]]:
        """Measure `batch` with the evaluator (timed), check and cache the metrics."""
        start = time.perf_counter()
        raw = list(self.evaluator.evaluate(list(batch)))
        self.timing["evaluator_seconds"] += time.perf_counter() - start
        if len(raw) != len(batch):
            raise ParetoSearchError(
                f"the evaluator returned {len(raw)} metric sets for {len(batch)} architectures"
            )
        values = [self.check(a.id, m, "the evaluator") for a, m in zip(batch, raw, strict=True)]
        self.cache.put_many(zip([a.id for a in batch], values, strict=True))
        return dict(zip([a.id for a in batch], values, strict=True))

    def measure_screened(
        self, archs: Sequence[Any], iteration: int
    ) -> tuple[dict[str, dict[str, Any]], int, int, int]:
        """`measure` with screening (`nasflow.lts.screen`): cached ones first; then, batch by
        batch, the surrogate fit on everything measured so far screens out the candidates whose
        optimistic point a measured one dominates and, with a `budget`, orders the others by
        the hypervolume their optimistic point would add, measuring at most `budget` per
        iteration after the warm-up. Returns (metrics of the measured and cached, measured,
        cache hits, screened out)."""
        screen = self.screen_with
        assert screen is not None
        out = self.cached(archs)
        hits = len(out)
        todo = [a for a in archs if a.id not in out]
        known = [(c.arch, c.metrics) for c in self.evaluated.values()]
        known += [(a, out[a.id]) for a in archs if a.id in out]
        measured = screened_measured = skipped = 0
        budget = screen.settings.budget
        batch_size = self.settings.eval_batch
        while todo:
            warm = screen.settings.initial - len(known)
            predicted: dict[str, dict[str, float]] = {}
            if warm > 0:
                batch = todo[: min(batch_size, warm)]
            else:
                gains, values = self.surrogate_decisions(todo, known, screen)
                room = None if budget is None else max(0, budget - screened_measured)
                order = sorted(
                    (k for k, gain in enumerate(gains) if gain is not None),
                    key=lambda k: (-float(gains[k] or 0.0), k),
                )
                chosen = order[: batch_size if room is None else min(batch_size, room)]
                last_round = room is not None and room <= batch_size
                later = [] if last_round else order[len(chosen) :]
                going_on = {*chosen, *later}
                for k, arch in enumerate(todo):
                    predicted[arch.id] = {
                        n: v for n, v in values[k].items() if n.startswith(PREDICTED)
                    }
                    if k in going_on:
                        continue
                    reason = "dominated" if gains[k] is None else "budget"
                    record = {**values[k], "screened_because": reason}
                    self.screened[arch.id] = Candidate(arch, record, iteration)
                    skipped += 1
                batch = [todo[k] for k in chosen]
                todo = [todo[k] for k in later]
                if not batch:
                    break
                screened_measured += len(batch)
            results = self.evaluate_batch(batch)
            for arch in batch:
                out[arch.id] = results[arch.id]
                known.append((arch, results[arch.id]))
                if arch.id in predicted:
                    self.predictions[arch.id] = predicted[arch.id]
            measured += len(batch)
            if warm > 0:
                todo = todo[len(batch) :]
        self.timing["measured"] += measured
        self.timing["cache_hits"] += hits
        self.timing["screened_out"] += skipped
        return out, measured, hits, skipped

    def surrogate_decisions(
        self, todo: Sequence[Any], known: Sequence[tuple[Any, Mapping[str, Any]]], screen: Screen
    ) -> tuple[list[float | None], list[dict[str, float]]]:
        """For each of `todo`: None when its optimistic point is dominated by a known (measured)
        point, else the hypervolume that point would add (`hypervolume_gains`); and its exact
        and `predicted_*` values."""
        features = np.array([screen.features(a) for a, _ in known])
        self.surrogate = CostSurrogate(screen.settings).fit(features, [m for _, m in known])
        rows = np.array([screen.features(a) for a in todo])
        optimistic = self.surrogate.optimistic(rows)
        predicted = self.surrogate.predict(rows)
        exact = [screen.exact(a) for a in todo]
        points = [
            {**exact[k], **{name: float(v[k]) for name, v in optimistic.items()}}
            for k in range(len(todo))
        ]
        dominated = dominated_by([m for _, m in known], points, self.objectives)
        gains = hypervolume_gains([m for _, m in known], points, self.objectives)
        values = [
            {**exact[k], **{f"{PREDICTED}{n}": float(v[k]) for n, v in predicted.items()}}
            for k in range(len(todo))
        ]
        return [None if d else float(g) for d, g in zip(dominated, gains, strict=True)], values

    def screen_summary(self) -> dict[str, Any] | None:
        """The screen's settings, leave-one-out error and error on unseen candidates."""
        if self.screen_with is None:
            return None
        held_out = {}
        for name in self.screen_with.settings.measured:
            errors = [
                abs(p[f"{PREDICTED}{name}"] - self.evaluated[i].metrics[name])
                / abs(self.evaluated[i].metrics[name])
                for i, p in self.predictions.items()
                if i in self.evaluated and self.evaluated[i].metrics[name]
            ]
            held_out[name] = {
                "relative_mae": float(np.mean(errors)) if errors else None,
                "relative_max": float(np.max(errors)) if errors else None,
                "points": len(errors),
            }
        surrogate = self.surrogate
        return {
            "settings": self.screen_with.settings.to_dict(),
            "measured": len(self.evaluated),
            "screened_out": len(self.screened),
            "fit_points": None if surrogate is None else surrogate.points,
            "leave_one_out_error": None if surrogate is None else dict(surrogate.error),
            "held_out_error": held_out,
        }

    def check(self, arch_id: str, metrics: Any, source: str) -> dict[str, Any]:
        if not isinstance(metrics, Mapping):
            raise ParetoSearchError(
                f"{source} gave {type(metrics).__name__} for architecture {arch_id}, "
                "expected a mapping of metric names to numbers"
            )
        out = {str(k): (v.item() if isinstance(v, np.generic) else v) for k, v in metrics.items()}
        clash = sorted(RESERVED_COLUMNS & set(out))
        if clash:
            raise ParetoSearchError(
                f"{source} gave metric(s) named {', '.join(clash)} for architecture {arch_id}; "
                f"these names are reserved for the output tables"
            )
        for objective in self.objectives:
            value = out.get(objective.name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
            ):
                hint = (
                    " (a cache of another protocol? give the cache a new protocol key)"
                    if source == "the measurement cache"
                    else ""
                )
                raise ParetoSearchError(
                    f"{source} gave no finite number for objective {objective.name!r} of "
                    f"architecture {arch_id}: {value!r}{hint}"
                )
        return out

    # ---- selection and breeding -----------------------------------------------------------------
    def select_parents(
        self, ids: list[str], points: list[dict[str, Any]], front: list[int]
    ) -> list[Any]:
        need = self.settings.parents
        ranks = [front] if len(front) >= need else non_dominated_sort(points, self.objectives, need)
        chosen: list[int] = []
        for rank in ranks:
            room = need - len(chosen)
            if room <= 0:
                break
            if len(rank) <= room:
                chosen.extend(rank)
                continue
            crowding = crowding_distance([points[k] for k in rank], self.objectives)
            ties = [self.rng.random() for _ in rank]
            order = sorted(
                range(len(rank)),
                key=lambda j: (self.usage.get(ids[rank[j]], 0), -crowding[j], ties[j]),
            )
            chosen.extend(rank[j] for j in order[:room])
        chosen.sort()  # evaluation order: deterministic, independent of the ranking above
        for k in chosen:
            self.usage[ids[k]] = self.usage.get(ids[k], 0) + 1
        return [
            (self.evaluated[ids[k]] if ids[k] in self.evaluated else self.screened[ids[k]]).arch
            for k in chosen
        ]

    def as_predicted(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """A screened-out candidate's objectives: exact ones as they are, measured ones at their
        predictions."""
        return {
            o.name: values[o.name] if o.name in values else values[f"{PREDICTED}{o.name}"]
            for o in self.objectives
        }

    def screen(self, batch: list[Any]) -> Iterator[str | None]:
        """None for a valid architecture unseen and not yet bred in this phase group (it is
        then taken), else `invalid` or `duplicate`."""
        for arch in batch:
            if not self.space.is_valid(arch):
                yield "invalid"
            elif arch.id in self.evaluated or arch.id in self.taken:
                yield "duplicate"
            else:
                self.taken.add(arch.id)
                yield None

    def rejections(self) -> _Rejections:
        return _Rejections()

    def exhausted(self, rejections: _Rejections, phase: str) -> ParetoSearchError:
        invalid, duplicate = rejections.invalid, rejections.duplicate
        run = invalid + duplicate
        if invalid >= duplicate:
            advice = (
                "the space's constraints look infeasible or very tight: relax them (e.g. the "
                "parameter bounds) or raise search.max_resample_tries"
            )
        else:
            advice = (
                "the space looks exhausted around the parents: enlarge the space, lower "
                "search.iterations or search.population, raise search.mutation_prob, or raise "
                "search.max_resample_tries"
            )
        return ParetoSearchError(
            f"{phase}: {run} candidates in a row were rejected in search space "
            f"{self.space.name!r} (search.max_resample_tries = {self.settings.max_resample_tries}"
            f"): {invalid} violated the constraints and {duplicate} were already seen "
            f"({len(self.evaluated)} architectures evaluated so far); {advice}."
        )

    # ---- state ----------------------------------------------------------------------------------
    def inputs(self) -> dict[str, Any]:
        """What a saved state must match (the resample bound and batch size may change)."""
        settings = self.settings.to_dict()
        settings.pop("max_resample_tries")
        settings.pop("eval_batch")
        return {
            "space": self.space.name,
            "settings": settings,
            "objectives": [o.to_dict() for o in self.objectives],
            "evaluator": getattr(self.evaluator, "name", type(self.evaluator).__name__),
            "device": self.cache.device,
            "protocol": self.cache.protocol,
            "extra": self.fingerprint_extra,
            **({} if self.screen_with is None else {"screen": self.screen_with.settings.to_dict()}),
        }

    def state(self) -> dict[str, Any]:
        return {
            "iteration": self.done,
            "population": [a.to_dict() for a in self.population],
            "evaluated": [
                {"arch": c.arch.to_dict(), "metrics": c.metrics, "first_seen": c.first_seen}
                for c in self.evaluated.values()
            ],
            "usage": self.usage,
            "rng": rng_to_json(self.rng),
            "history": self.history,
            "timing": self.timing,
            "screened": [
                {"arch": c.arch.to_dict(), "metrics": c.metrics, "first_seen": c.first_seen}
                for c in self.screened.values()
            ],
            "predictions": self.predictions,
        }

    def restore(self, state: dict[str, Any]) -> None:
        try:
            self.done = int(state["iteration"])
            self.population = [self.arch(d) for d in state["population"]]
            for record in state["evaluated"]:
                arch = self.arch(record["arch"])
                self.evaluated[arch.id] = Candidate(
                    arch, dict(record["metrics"]), int(record["first_seen"])
                )
            self.usage = {str(k): int(v) for k, v in state["usage"].items()}
            self.rng = rng_from_json(state["rng"])
            self.history = [dict(row) for row in state["history"]]
            self.timing.update(state["timing"])
            for record in state.get("screened", []):
                arch = self.arch(record["arch"])
                self.screened[arch.id] = Candidate(
                    arch, dict(record["metrics"]), int(record["first_seen"])
                )
            self.predictions = {k: dict(v) for k, v in state.get("predictions", {}).items()}
        except (KeyError, TypeError, ValueError) as error:
            raise SearchStateError(
                f"the saved Pareto-search state is incomplete ({type(error).__name__}: {error});"
                " delete the state folder (or pass --fresh) to start over"
            ) from None

    def arch(self, data: Mapping[str, Any]) -> Any:
        arch = self.space.arch_from_dict(data)
        if _json_normal(arch.to_dict()) != _json_normal(data):
            raise SearchStateError(
                f"the saved architecture {data!r} does not round-trip through space "
                f"{self.space.name!r}; delete the state folder (or pass --fresh) to start over"
            )
        return arch

    # ---- result ---------------------------------------------------------------------------------
    def result(self, resumed_from: int) -> ParetoResult:
        candidates = list(self.evaluated.values())
        final = set(self.history[-1]["frontier"])
        first = self.objectives[0].name
        frontier = sorted(
            (c for c in candidates if c.id in final), key=lambda c: (c.metrics[first], c.id)
        )
        return ParetoResult(
            objectives=self.objectives,
            candidates=candidates,
            frontier=frontier,
            history=[dict(row) for row in self.history],
            timing=json.loads(json.dumps(self.timing)),
            resumed_from=resumed_from,
            screened=list(self.screened.values()),
            screen=self.screen_summary(),
        )


@dataclass
class _Rejections:
    """The current run of consecutive rejected candidates, by reason."""

    invalid: int = 0
    duplicate: int = 0

    @property
    def run(self) -> int:
        return self.invalid + self.duplicate

    def reset(self) -> None:
        self.invalid = self.duplicate = 0

    def add(self, reason: str) -> None:
        setattr(self, reason, getattr(self, reason) + 1)


# ---- outputs ------------------------------------------------------------------------------------


def result_frames(result: ParetoResult) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`(frontier, all)` tables: `arch_id`, objectives, other metrics (sorted), `first_seen`,
    `arch`; `all` adds `on_frontier` (bool) and keeps evaluation order."""
    names = [o.name for o in result.objectives]
    extras = sorted({k for c in result.candidates for k in c.metrics} - set(names))
    columns = ["arch_id", *names, *extras, "first_seen", "arch"]
    final = {c.id for c in result.frontier}
    every = pd.DataFrame([c.row() for c in result.candidates], columns=columns)
    every.insert(len(columns) - 1, "on_frontier", every["arch_id"].isin(final))
    frontier = pd.DataFrame([c.row() for c in result.frontier], columns=columns)
    return frontier, every


def write_outputs(result: ParetoResult, out_dir: str | Path) -> dict[str, Path]:
    """Write the search's tables atomically under `out_dir`; returns the paths by file name.

    - `frontier.csv`: the final frontier (sorted by the first objective): `arch_id`, every
      objective, every other metric (sorted by name), `first_seen` (iteration), `arch` (JSON).
    - `all.csv`: every evaluated architecture, same columns plus `on_frontier`, in evaluation
      order.
    - `history.csv`: `HISTORY_COLUMNS`, one row per iteration.
    - `frontiers.json`: `{"objectives": [...], "iterations": {"1": [arch ids], ...}}`, the
      frontier after each iteration (for the evolution plots).
    - `timing.json`: `ParetoResult.timing` plus `wall_hours`, `iterations`, `frontier_size` and
      `hypervolume` (`frontier_hypervolume`: the frontier's, normalised by the measured
      candidates' range, with those bounds as `hypervolume_bounds`).
    - with screening, `screened.csv` (the candidates screened out: `arch_id`, exact objectives,
      `predicted_*`, `first_seen`, `arch`) and `screen.json` (`ParetoResult.screen`).
    Files of an earlier screened run in `out_dir` are removed when this one is not screened.
    """
    out = Path(out_dir)
    names = ("frontier.csv", "all.csv", "history.csv", "frontiers.json", "timing.json")
    paths = {name: out / name for name in names}
    screened_names = ("screened.csv", "screen.json")
    if result.screen is None:
        for name in screened_names:
            (out / name).unlink(missing_ok=True)
    else:
        paths.update({name: out / name for name in screened_names})
        rows = [c.row() for c in result.screened]
        columns = ["arch_id", *sorted({k for c in result.screened for k in c.metrics})]
        screened = pd.DataFrame(rows, columns=[*columns, "first_seen", "arch"])
        with atomic_path(paths["screened.csv"]) as tmp:
            screened.to_csv(tmp, index=False)
        write_json_atomic(paths["screen.json"], result.screen)
    frontier, every = result_frames(result)
    history = pd.DataFrame(result.history, columns=list(HISTORY_COLUMNS))
    for name, frame in (
        ("frontier.csv", frontier),
        ("all.csv", every),
        ("history.csv", history),
    ):
        with atomic_path(paths[name]) as tmp:
            frame.to_csv(tmp, index=False)
    write_json_atomic(
        paths["frontiers.json"],
        {
            "objectives": [o.to_dict() for o in result.objectives],
            "iterations": {str(row["iteration"]): row["frontier"] for row in result.history},
        },
    )
    timing = {
        **result.timing,
        "wall_hours": result.timing["wall_seconds"] / 3600.0,
        "iterations": len(result.history),
        "frontier_size": len(result.frontier),
        **frontier_hypervolume(result),
    }
    write_json_atomic(paths["timing.json"], timing)
    return paths


def frontier_hypervolume(
    result: ParetoResult, bounds: Mapping[str, Sequence[float]] | None = None
) -> dict[str, Any]:
    """`{"hypervolume": ..., "hypervolume_bounds": {"ideal": [...], "nadir": [...]}}` of the
    final frontier (`nasflow.search.pareto.hypervolume`). Default bounds: per objective, the
    best and worst value over every measured candidate; pass the same `bounds` to compare two
    searches."""
    if not result.candidates:
        return {"hypervolume": None, "hypervolume_bounds": None}
    if bounds is None:
        losses = loss_matrix([c.metrics for c in result.candidates], result.objectives)
        signs = np.array([-1.0 if o.maximise else 1.0 for o in result.objectives])
        bounds = {
            "ideal": (losses.min(axis=0) * signs).tolist(),
            "nadir": (losses.max(axis=0) * signs).tolist(),
        }
    ideal, nadir = list(bounds["ideal"]), list(bounds["nadir"])
    if any(a == b for a, b in zip(ideal, nadir, strict=True)):
        return {"hypervolume": None, "hypervolume_bounds": {"ideal": ideal, "nadir": nadir}}
    points = [c.metrics for c in result.frontier]
    value = hypervolume(points, result.objectives, ideal, nadir)
    return {"hypervolume": value, "hypervolume_bounds": {"ideal": ideal, "nadir": nadir}}

"""Pareto dominance, frontiers, non-dominated ranks and crowding distance over named objectives.

Points are mappings `{objective name: value}` (extra keys are ignored) or rows of an array whose
columns follow the objectives' order. Each `Objective` is maximised or minimised; internally every
point is turned into a *loss* vector (maximised values negated) so that smaller is better.

Definitions (the usual ones):
- `a` dominates `b` when `a` is no worse than `b` on every objective and strictly better on at
  least one. Equal points therefore do not dominate each other.
- The Pareto front is the set of points no other point dominates. Equal non-dominated points are
  all kept (none dominates the other), so a front may hold several points with the same values;
  callers that want one per value must deduplicate themselves.
- NaN is refused (it is neither better nor worse than anything); +/-inf compare as usual.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from nasflow.core.errors import ConfigError

Direction = Literal["max", "min"]
Point = Mapping[str, Any] | Sequence[float] | np.ndarray
# Bound on the boolean work array of one comparison block (elements), to keep memory small when
# a front is taken over tens of thousands of points (e.g. a brute-force random sample).
_BLOCK_ELEMENTS = 4_000_000


@dataclass(frozen=True)
class Objective:
    """One objective: a metric name and whether it is maximised or minimised."""

    name: str
    direction: Direction

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"an objective name must be a non-empty string, got {self.name!r}")
        if self.direction not in ("max", "min"):
            raise ConfigError(
                f"objective {self.name!r}: direction must be 'max' or 'min', got {self.direction!r}"
            )

    @property
    def maximise(self) -> bool:
        return self.direction == "max"

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "direction": self.direction}


def parse_objectives(spec: Any) -> tuple[Objective, ...]:
    """Objectives from config: `{name: direction}`, `[{name:, direction:}]` or `Objective`s.

    Names must be unique and there must be at least one.
    """
    items: list[Objective] = []
    if isinstance(spec, Mapping):
        items = [Objective(str(name), direction) for name, direction in spec.items()]
    elif isinstance(spec, Iterable) and not isinstance(spec, str | bytes):
        for entry in spec:
            if isinstance(entry, Objective):
                items.append(entry)
            elif isinstance(entry, Mapping) and set(entry) == {"name", "direction"}:
                items.append(Objective(entry["name"], entry["direction"]))
            else:
                raise ConfigError(
                    f"an objective must be {{name: ..., direction: max|min}}, got {entry!r}"
                )
    else:
        raise ConfigError(f"objectives must be a mapping or a list, got {spec!r}")
    if not items:
        raise ConfigError("at least one objective is required")
    names = [o.name for o in items]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ConfigError(f"objective name(s) given twice: {', '.join(duplicated)}")
    return tuple(items)


def loss_matrix(
    points: Sequence[Point] | np.ndarray, objectives: Sequence[Objective]
) -> np.ndarray:
    """An `(n, k)` float array, smaller is better (maximised objectives negated); no NaN."""
    objectives = list(objectives)
    if not objectives:
        raise ValueError("at least one objective is required")
    if isinstance(points, np.ndarray):
        matrix = np.array(points, dtype=float, copy=True)
        if matrix.ndim != 2 or matrix.shape[1] != len(objectives):
            raise ValueError(
                f"a point array must have shape (n, {len(objectives)}), got {matrix.shape}"
            )
    else:
        matrix = np.empty((len(points), len(objectives)), dtype=float)
        for row, point in enumerate(points):
            matrix[row] = _values(point, objectives, row)
    bad = np.argwhere(np.isnan(matrix))
    if bad.size:
        row, col = (int(v) for v in bad[0])
        raise ValueError(f"point {row}: objective {objectives[col].name!r} is NaN")
    signs = np.array([-1.0 if o.maximise else 1.0 for o in objectives])
    return matrix * signs


def dominates(a: Point, b: Point, objectives: Sequence[Objective]) -> bool:
    """Whether `a` is no worse than `b` on every objective and strictly better on one."""
    la, lb = loss_matrix([a, b], objectives)
    return bool(np.all(la <= lb) and np.any(la < lb))


def dominated_mask(losses: np.ndarray) -> np.ndarray:
    """`mask[j]` is True when some row of `losses` dominates row `j` (loss form, smaller wins)."""
    n, k = losses.shape
    out = np.zeros(n, dtype=bool)
    if n < 2:
        return out
    block = max(1, _BLOCK_ELEMENTS // max(1, n * k))
    for start in range(0, n, block):
        part = losses[start : start + block]
        # no_worse[j, i]: row i is <= part[j] everywhere; better[j, i]: strictly < somewhere.
        no_worse = np.all(losses[None, :, :] <= part[:, None, :], axis=2)
        better = np.any(losses[None, :, :] < part[:, None, :], axis=2)
        out[start : start + block] = np.any(no_worse & better, axis=1)
    return out


def dominated_by(
    known: Sequence[Point] | np.ndarray,
    candidates: Sequence[Point] | np.ndarray,
    objectives: Sequence[Objective],
) -> list[bool]:
    """For each candidate, whether some `known` point dominates it (`dominates`, vectorised)."""
    losses = loss_matrix(known, objectives)
    out = []
    for row in loss_matrix(candidates, objectives):
        no_worse = np.all(losses <= row, axis=1)
        out.append(bool(np.any(no_worse & np.any(losses < row, axis=1))))
    return out


def pareto_front(
    points: Sequence[Point] | np.ndarray, objectives: Sequence[Objective]
) -> list[int]:
    """Indices (ascending) of the non-dominated points; equal non-dominated points all kept."""
    losses = loss_matrix(points, objectives)
    return [int(i) for i in np.flatnonzero(~dominated_mask(losses))]


def non_dominated_sort(
    points: Sequence[Point] | np.ndarray,
    objectives: Sequence[Objective],
    limit: int | None = None,
) -> list[list[int]]:
    """NSGA-style ranks: front 0 is the Pareto front, front 1 the front of the rest, and so on.

    Each front lists indices in ascending order. With `limit`, sorting stops as soon as the
    fronts found hold at least `limit` points (the last may overshoot it); without it every
    point is ranked (quadratic per front, so avoid it on long dominance chains).
    """
    losses = loss_matrix(points, objectives)
    remaining = np.arange(len(losses))
    fronts: list[list[int]] = []
    taken = 0
    while remaining.size and (limit is None or taken < limit):
        mask = dominated_mask(losses[remaining])
        front = remaining[~mask]
        fronts.append([int(i) for i in front])
        taken += front.size
        remaining = remaining[mask]
    return fronts


def crowding_distance(
    points: Sequence[Point] | np.ndarray, objectives: Sequence[Objective]
) -> np.ndarray:
    """NSGA-II crowding distance of each point within the given set (larger = more isolated).

    Per objective the points are sorted (stable); the two extremes get +inf and every other
    point adds the gap between its neighbours divided by the objective's range (objectives with
    zero range add nothing). Sets of one or two points are all +inf.
    """
    losses = loss_matrix(points, objectives)
    n, k = losses.shape
    distance = np.zeros(n, dtype=float)
    if n <= 2:
        distance[:] = np.inf
        return distance
    for col in range(k):
        values = losses[:, col]
        order = np.argsort(values, kind="stable")
        distance[order[0]] = distance[order[-1]] = np.inf
        span = values[order[-1]] - values[order[0]]
        if not np.isfinite(span) or span <= 0:
            continue
        gaps = (values[order[2:]] - values[order[:-2]]) / span
        distance[order[1:-1]] += gaps
    return distance


def _values(point: Point, objectives: Sequence[Objective], row: int) -> list[float]:
    if isinstance(point, Mapping):
        missing = [o.name for o in objectives if o.name not in point]
        if missing:
            raise ValueError(f"point {row} has no value for objective(s) {', '.join(missing)}")
        raw = [point[o.name] for o in objectives]
    else:
        raw = list(point)
        if len(raw) != len(objectives):
            raise ValueError(f"point {row} has {len(raw)} values for {len(objectives)} objectives")
    out: list[float] = []
    for objective, value in zip(objectives, raw, strict=True):
        if isinstance(value, bool) or not isinstance(value, int | float | np.number):
            raise ValueError(
                f"point {row}: objective {objective.name!r} must be a number, got {value!r}"
            )
        out.append(float(value))
    return out


def hypervolume(
    points: Sequence[Point] | np.ndarray,
    objectives: Sequence[Objective],
    ideal: Sequence[float],
    nadir: Sequence[float],
) -> float:
    """The normalised hypervolume of `points`: each objective mapped linearly to [0, 1] from its
    `ideal` (best, 0) to its `nadir` (worst, 1) value, in the objectives' own units and
    directions; the volume the points dominate inside the unit box, reference point (1, ..., 1)
    (so 1.0 is the ideal point alone; points beyond the nadir add nothing). Computed by
    `moocore.hypervolume` (exact)."""
    import moocore

    losses = loss_matrix(points, objectives)
    low = loss_matrix(np.asarray([ideal], dtype=float), objectives)[0]
    high = loss_matrix(np.asarray([nadir], dtype=float), objectives)[0]
    span = high - low
    if np.any(span <= 0):
        raise ValueError(f"each nadir value must be worse than its ideal value: {ideal} vs {nadir}")
    scaled = (losses - low) / span
    scaled = scaled[np.all(scaled < 1.0, axis=1)]
    if not len(scaled):
        return 0.0
    return float(moocore.hypervolume(scaled, ref=np.ones(len(span))))


def hypervolume_gains(
    known: Sequence[Point] | np.ndarray,
    candidates: Sequence[Point] | np.ndarray,
    objectives: Sequence[Objective],
) -> np.ndarray:
    """The hypervolume each candidate alone would add to the `known` points': every objective
    scaled by the known points' range (ideal 0, nadir 1), reference point 2 on every axis (so a
    new extreme still counts). Zero for a candidate the known points dominate."""
    import moocore

    losses = loss_matrix(known, objectives)
    low, high = losses.min(axis=0), losses.max(axis=0)
    span = np.where(high > low, high - low, 1.0)
    front = (losses[~dominated_mask(losses)] - low) / span
    ref = np.full(len(span), 2.0)
    base = float(moocore.hypervolume(front, ref=ref))
    scaled = (loss_matrix(candidates, objectives) - low) / span
    gains = np.zeros(len(scaled))
    for k, point in enumerate(scaled):
        if np.all(point < ref):
            union = np.vstack([front, point[None, :]])
            gains[k] = max(0.0, float(moocore.hypervolume(union, ref=ref)) - base)
    return gains

"""Suggestion thresholds tuned so that the candidate's trigger rate equals the baseline's.

`tune_thresholds(records, target_rate, stops=..., tolerance, target_saving)`:

- for every stop value in the grid `stops`, the trigger threshold is chosen by an exact search
  over the sorted distinct p1 values of the positions eligible at that stop (first token starts
  a word, something left after the cut and back-off): the trigger rate is a step function of the
  trigger that changes only at those values, so the threshold whose rate is closest to
  `target_rate` is one of them (ties broken toward the higher threshold; with no eligible
  position the trigger is 1.0);
- among the stop values whose rate is within `tolerance` of the target, the one whose saving rate
  is closest to `target_saving` is picked (or, when it is None, the highest ASC - AEC); saving
  rates within `saving_tolerance` (relative to `target_saving`) of it count as equally close, so
  a near-flat saving curve does not force a long suggestion for a negligible saving; remaining
  ties go to the higher ASC - AEC, then to the earlier grid entry;
- every grid row (stop, trigger, rate, ASC, AEC, saving rate, within tolerance) is kept in the
  result; no stop value within tolerance is a `ConfigError` naming
  `text_prediction.suggest.stops` with the closest rate reached, unless `unmatched="closest"`
  (`text_prediction.suggest.unmatched`): then the row whose rate is closest is used and the
  result says `matched: false` (the tables print it). Tiny models, whose first-token
  probabilities differ from the baseline's, can make the rate unreachable at every stop.

The search is exact and uses no randomness: the same records and settings give the same result.
`validate_thresholds` checks the configured values before any training.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from nasflow.core.checks import is_number
from nasflow.core.errors import ConfigError
from nasflow.text_prediction.metrics import SuggestionMetrics, score_table
from nasflow.text_prediction.suggest import SuggestionRecords

__all__ = ["TuningResult", "TuningRow", "tune_thresholds", "validate_thresholds"]

KEY = "config key text_prediction.suggest"


@dataclass(frozen=True)
class TuningRow:
    """One stop value of the grid with its rate-matched trigger."""

    stop: float
    trigger: float
    trigger_rate: float
    asc: float
    aec: float
    saving_rate: float
    shown: int
    within_tolerance: bool


@dataclass(frozen=True)
class TuningResult:
    """The chosen thresholds, their metrics and every grid row."""

    trigger: float
    stop: float
    metrics: SuggestionMetrics
    target_rate: float
    target_saving: float | None
    tolerance: float
    rows: tuple[TuningRow, ...]
    matched: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "trigger": self.trigger,
            "stop": self.stop,
            "metrics": self.metrics.to_dict(),
            "target_rate": self.target_rate,
            "target_saving": self.target_saving,
            "tolerance": self.tolerance,
            "matched": self.matched,
            "rows": [asdict(row) for row in self.rows],
        }

    def table(self) -> pd.DataFrame:
        """The grid, one row per stop value."""
        return pd.DataFrame(
            [asdict(row) for row in self.rows], columns=list(TuningRow.__annotations__)
        )


UNMATCHED = ("error", "closest")


def validate_thresholds(
    trigger: Any, stop: Any, stops: Any, tolerance: Any, unmatched: Any = "error"
) -> None:
    """`ConfigError` naming `text_prediction.suggest.<key>` unless trigger is in (0, 1], stop
    <= 0, stops a non-empty list of numbers <= 0, tolerance in (0, 0.5] and unmatched one of
    `UNMATCHED`."""
    if not (is_number(trigger) and 0 < trigger <= 1):
        raise ConfigError(f"{KEY}.trigger must be a number in (0, 1], got {trigger!r}")
    if not (is_number(stop) and stop <= 0):
        raise ConfigError(f"{KEY}.stop must be a log-probability <= 0, got {stop!r}")
    _check_grid(stops, tolerance)
    _check_unmatched(unmatched)


def _check_unmatched(unmatched: Any) -> None:
    if unmatched not in UNMATCHED:
        choices = ", ".join(UNMATCHED)
        raise ConfigError(f"{KEY}.unmatched must be one of {choices}, got {unmatched!r}")


def _check_grid(stops: Any, tolerance: Any) -> None:
    if (
        not isinstance(stops, list | tuple)
        or not stops
        or not all(is_number(s) and s <= 0 for s in stops)
    ):
        raise ConfigError(
            f"{KEY}.stops must be a non-empty list of log-probabilities <= 0, got {stops!r}"
        )
    if not (is_number(tolerance) and 0 < tolerance <= 0.5):
        raise ConfigError(f"{KEY}.tolerance must be a number in (0, 0.5], got {tolerance!r}")


def _matched_trigger(p1: np.ndarray, positions: int, target: float) -> float:
    """The trigger among the distinct `p1` values whose rate is closest to `target` (ties:
    the higher threshold)."""
    if p1.size == 0:
        return 1.0
    values, counts = np.unique(-p1, return_counts=True)  # thresholds high to low
    rates = np.cumsum(counts) / positions
    return float(-values[int(np.argmin(np.abs(rates - target)))])


def tune_thresholds(
    records: SuggestionRecords,
    target_rate: float,
    *,
    stops: Sequence[float],
    tolerance: float = 0.005,
    target_saving: float | None = None,
    saving_tolerance: float = 0.0,
    unmatched: str = "error",
) -> TuningResult:
    """Thresholds whose trigger rate matches `target_rate` (see the module docstring)."""
    _check_grid(list(stops), tolerance)
    _check_unmatched(unmatched)
    if not (is_number(target_rate) and 0 <= target_rate <= 1):
        raise ConfigError(f"{KEY}: the target trigger rate must be in [0, 1], got {target_rate!r}")
    if target_saving is not None and not (is_number(target_saving) and 0 <= target_saving <= 1):
        raise ConfigError(f"{KEY}: the target saving rate must be in [0, 1], got {target_saving!r}")
    if not (is_number(saving_tolerance) and saving_tolerance >= 0):
        raise ConfigError(f"{KEY}.saving_tolerance must be a number >= 0, got {saving_tolerance!r}")
    table = score_table(records)
    rows, scored = [], []
    for stop in stops:
        trigger = _matched_trigger(table.p1[table.eligible(stop)], table.positions, target_rate)
        m = table.score(trigger, stop)
        within = abs(m.trigger_rate - target_rate) <= tolerance
        rows.append(
            TuningRow(
                m.stop, m.trigger, m.trigger_rate, m.asc, m.aec, m.saving_rate, m.shown, within
            )
        )
        scored.append(m)
    candidates = [i for i, row in enumerate(rows) if row.within_tolerance]
    matched = bool(candidates)
    if not matched:
        best = min(range(len(rows)), key=lambda i: abs(rows[i].trigger_rate - target_rate))
        if unmatched == "error":
            raise ConfigError(
                f"{KEY}.stops: no stop value reaches the target trigger rate {target_rate:.4f} "
                f"within {tolerance}; the closest rate is {rows[best].trigger_rate:.4f} (stop "
                f"{rows[best].stop}); widen the stops grid or the tolerance, or set "
                f"{KEY}.unmatched: closest to report the closest"
            )
        # Every row at the closest rate stays a candidate (the preference below picks one).
        gap = abs(rows[best].trigger_rate - target_rate)
        candidates = [i for i, r in enumerate(rows) if abs(r.trigger_rate - target_rate) == gap]

    def preference(i: int) -> tuple[float, float, int]:
        if target_saving is None:
            return 0.0, -(rows[i].asc - rows[i].aec), i
        gap = abs(rows[i].saving_rate - target_saving) - saving_tolerance * target_saving
        return max(0.0, gap), -(rows[i].asc - rows[i].aec), i

    chosen = min(candidates, key=preference)
    return TuningResult(
        trigger=rows[chosen].trigger,
        stop=rows[chosen].stop,
        metrics=scored[chosen],
        target_rate=float(target_rate),
        target_saving=None if target_saving is None else float(target_saving),
        tolerance=float(tolerance),
        rows=tuple(rows),
        matched=matched,
    )

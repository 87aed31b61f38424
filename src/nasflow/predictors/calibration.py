"""Demonstration-calibrated predictors: `gold ≈ a · prediction + b`, fitted per split seed.

Supernets rank architectures well but underestimate from-scratch BLEU by a roughly constant
offset. LLM-PP already pays for k demonstrations per split seed (the first k `train` rows of the
seed and task); a calibrated predictor fits a map from its base predictor's scores to the gold
BLEU of those demonstrations and applies it to the seed's test architectures.

Modes: `affine` (least-squares a and b) and `shift` (a = 1, b = mean(gold − prediction); only for
BLEU-scale bases). Every fit has a > 0, so calibration never changes a ranking (Kendall's tau
equals the base's). When the least-squares slope is not positive, or undefined (fewer than two
demonstrations, or constant predictions), `affine` falls back to:

- `shift` for a BLEU-scale base;
- `moments` for a rank-only base: a = std(gold) / std(prediction), b matching the means (the
  spread of the gold BLEU is kept, so a > 0 whenever both spreads are);
- `mean` for a rank-only base where either spread is zero: a = 1, b = mean(gold − prediction).

A calibrated predictor's scores are BLEU estimates (`bleu_scale`), even when its base only ranks
(e.g. `Supernet (loss)`, a negated loss).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from nasflow.core.errors import DataError
from nasflow.predictors.base import Predictor, check_scores
from nasflow.space.hat import Arch

if TYPE_CHECKING:
    import pandas as pd

MODES: tuple[str, ...] = ("affine", "shift")
SUFFIXES: dict[str, str] = {"affine": " + calibration", "shift": " + shift calibration"}
"""What each mode appends to its base predictor's name."""


@dataclass(frozen=True)
class Calibration:
    """`a · score + b` with a > 0. `mode` is the mode asked for; `fallback` names the fit used
    instead of it (`shift`, `moments` or `mean`), None when the mode's own fit was used."""

    a: float
    b: float
    mode: str
    fallback: str | None = None

    def apply(self, scores: Sequence[float] | np.ndarray) -> np.ndarray:
        return self.a * np.asarray(scores, dtype=float) + self.b


def fit_calibration(
    predictions: Sequence[float] | np.ndarray,
    gold: Sequence[float] | np.ndarray,
    mode: str,
    *,
    bleu_scale: bool,
) -> Calibration:
    """The calibration of `mode` mapping `predictions` to `gold` (see the module docstring for
    the fallbacks). Raises ValueError for an unknown mode, `shift` of a rank-only base, no
    demonstrations, or mismatched or non-finite values."""
    if mode not in MODES:
        raise ValueError(f"calibration mode {mode!r}: expected one of {', '.join(MODES)}")
    if mode == "shift" and not bleu_scale:
        raise ValueError("shift calibration needs BLEU-scale predictions; use affine")
    p, g = np.asarray(predictions, dtype=float), np.asarray(gold, dtype=float)
    if p.ndim != 1 or p.shape != g.shape:
        raise ValueError(f"calibration: predictions of shape {p.shape}, gold {g.shape}")
    if p.size == 0:
        raise ValueError("calibration needs at least one demonstration")
    if not (np.isfinite(p).all() and np.isfinite(g).all()):
        raise ValueError("calibration: NaN or infinite predictions or gold values")
    shift = float(np.mean(g - p))
    if mode == "shift":
        return Calibration(1.0, shift, mode)
    constant = bool(np.all(p == p[0]))
    if p.size >= 2 and not constant:
        dp = p - p.mean()
        a = float(np.dot(dp, g - g.mean()) / np.dot(dp, dp))
        if a > 0:
            return Calibration(a, float(g.mean() - a * p.mean()), mode)
    if bleu_scale:
        return Calibration(1.0, shift, mode, "shift")
    spread_p, spread_g = float(np.std(p)), float(np.std(g))
    if constant or spread_p == 0 or spread_g == 0:
        return Calibration(1.0, shift, mode, "mean")
    a = spread_g / spread_p
    return Calibration(a, float(g.mean() - a * p.mean()), mode, "moments")


class CalibratedPredictor(Predictor):
    """`base` calibrated per split seed on the first `demonstrations` train architectures of
    that seed and `task` in `table` (a `read_tfs_eval` table; None: every train row).

    Scores exist only per seed: `for_seed(seed).predict(archs)`. `fits` holds each seed's
    `Calibration` once fitted.
    """

    bleu_scale = True

    def __init__(
        self,
        base: Predictor,
        table: pd.DataFrame,
        task: str,
        mode: str = "affine",
        demonstrations: int | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"calibration mode {mode!r}: expected one of {', '.join(MODES)}")
        if mode == "shift" and not base.bleu_scale:
            raise ValueError(f"{base.name!r} is rank-only: shift calibration needs BLEU scores")
        if demonstrations is not None and demonstrations < 1:
            raise ValueError(f"calibration demonstrations must be >= 1, got {demonstrations}")
        self.base, self.task, self.mode, self.demonstrations = base, task, mode, demonstrations
        self.name = base.name + SUFFIXES[mode]
        self._train = table[(table["task"] == task) & (table["split"] == "train")]
        self.fits: dict[int, Calibration] = {}

    def fit(self, seed: int) -> Calibration:
        """The calibration of `seed` (fitted on first use)."""
        if seed not in self.fits:
            demos = self._train[self._train["seed"] == seed]
            if self.demonstrations is not None:
                demos = demos.head(self.demonstrations)
            if demos.empty:
                raise DataError(
                    f"{self.name}: TFS-Eval seed {seed} task {self.task} has no train "
                    "architectures to calibrate on"
                )
            archs = list(demos["arch"])
            base = self.base.for_seed(seed)
            scores = check_scores(base, archs, base.predict(archs))
            gold = demos["gold"].to_numpy(dtype=float)
            self.fits[seed] = fit_calibration(
                scores, gold, self.mode, bleu_scale=self.base.bleu_scale
            )
        return self.fits[seed]

    def for_seed(self, seed: int) -> Predictor:
        return _Calibrated(self.name, self.base.for_seed(seed), self.fit(seed))

    def predict(self, archs: Sequence[Arch]) -> np.ndarray:
        raise ValueError(
            f"{self.name}: calibration is fitted per split seed; call for_seed(seed) first"
        )


class _Calibrated(Predictor):
    """One seed's fitted calibration applied to that seed's base predictor."""

    bleu_scale = True

    def __init__(self, name: str, base: Predictor, calibration: Calibration) -> None:
        self.name, self.base, self.calibration = name, base, calibration

    def predict(self, archs: Sequence[Arch]) -> np.ndarray:
        return self.calibration.apply(check_scores(self.base, archs, self.base.predict(archs)))


def calibrated_predictors(
    table: pd.DataFrame,
    task: str,
    bases: Sequence[Predictor],
    demonstrations: int | None = None,
) -> list[Predictor]:
    """Per base, its affine calibration, then its shift calibration when it is BLEU-scale."""
    return [
        CalibratedPredictor(base, table, task, mode, demonstrations)
        for base in bases
        for mode in MODES
        if mode == "affine" or base.bleu_scale
    ]

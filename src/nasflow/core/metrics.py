"""Predictor quality metrics: MAE, Kendall's tau and their summary over seeds.

Conventions follow the llmas evaluation scripts: Kendall's tau is scipy's tau-b, and the spread
over seeds is the *population* standard deviation (`np.std`, ddof=0), not the sample one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats

ArrayLike = Sequence[float] | np.ndarray


def _pair(gold: ArrayLike, pred: ArrayLike, minimum: int, metric: str) -> tuple[np.ndarray, ...]:
    """Both inputs as 1-D float arrays of equal length >= `minimum`, all values finite."""
    g = np.asarray(gold, dtype=float).ravel()
    p = np.asarray(pred, dtype=float).ravel()
    if g.shape != p.shape:
        raise ValueError(f"{metric}: gold has {g.size} values but pred has {p.size}")
    if g.size < minimum:
        raise ValueError(f"{metric}: needs at least {minimum} points, got {g.size}")
    if not (np.isfinite(g).all() and np.isfinite(p).all()):
        raise ValueError(f"{metric}: gold and pred must be finite (no NaN or inf)")
    return g, p


def mae(gold: ArrayLike, pred: ArrayLike) -> float:
    """Mean absolute error between gold values and predictions on the same scale."""
    g, p = _pair(gold, pred, 1, "mae")
    return float(np.mean(np.abs(g - p)))


def kendall(gold: ArrayLike, pred: ArrayLike) -> float:
    """Kendall's tau-b between gold values and predicted scores (only their ranks matter).

    NaN when either side is constant (tau is undefined then).
    """
    g, p = _pair(gold, pred, 2, "kendall")
    if np.all(g == g[0]) or np.all(p == p[0]):
        return float("nan")
    return float(stats.kendalltau(g, p).statistic)


def summarize_over_seeds(per_seed: Mapping[int, float]) -> tuple[float, float, int]:
    """`(mean, std, n)` of one metric over seeds.

    `std` is the population standard deviation (ddof=0, numpy's default), as the llmas scripts
    report it with `np.std`; with a single seed it is 0.
    """
    if not per_seed:
        raise ValueError("summarize_over_seeds: no seeds given")
    values = np.asarray(list(per_seed.values()), dtype=float)
    return float(np.mean(values)), float(np.std(values)), int(values.size)

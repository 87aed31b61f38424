"""MAE, Kendall's tau-b and the summary over seeds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nasflow.core.metrics import kendall, mae, summarize_over_seeds


def test_mae_hand_checked():
    assert mae([20, 22, 21], [19, 23, 22]) == pytest.approx(1.0)
    assert mae(np.array([22.0, 21.0, 24.0]), [23.0, 22.0, 22.0]) == pytest.approx(4 / 3)


def test_kendall_perfect_and_reversed():
    assert kendall([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert kendall([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)


def test_kendall_is_tau_b_with_ties():
    # one concordant, one discordant, one pair tied in pred: (1 - 1) / sqrt(3 * 2)
    assert kendall([22, 21, 24], [23, 22, 22]) == pytest.approx(0.0)
    # two concordant, one tied in pred: 2 / sqrt(3 * 2)
    assert kendall([41, 43, 42], [41.5, 42.5, 42.5]) == pytest.approx(2 / math.sqrt(6))


def test_kendall_constant_input_is_nan():
    assert math.isnan(kendall([1, 2, 3], [5, 5, 5]))


@pytest.mark.parametrize("metric", [mae, kendall])
def test_length_mismatch(metric):
    with pytest.raises(ValueError, match="gold has 3 values but pred has 2"):
        metric([1, 2, 3], [1, 2])


def test_too_few_points():
    with pytest.raises(ValueError, match="kendall: needs at least 2 points, got 1"):
        kendall([1.0], [2.0])
    with pytest.raises(ValueError, match="mae: needs at least 1 points, got 0"):
        mae([], [])


def test_non_finite_rejected():
    with pytest.raises(ValueError, match="finite"):
        mae([1.0, float("nan")], [1.0, 2.0])


def test_summarize_uses_population_std():
    mean, std, n = summarize_over_seeds({123: 1.0, 456: 3.0})
    assert (mean, std, n) == (pytest.approx(2.0), pytest.approx(1.0), 2)  # sample std: 1.414
    assert summarize_over_seeds({1: 0.5}) == (0.5, 0.0, 1)


def test_summarize_empty():
    with pytest.raises(ValueError, match="no seeds"):
        summarize_over_seeds({})

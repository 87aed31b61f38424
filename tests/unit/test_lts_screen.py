"""Screening in the LTS search: the surrogate, the screened search's guarantees (every frontier
architecture measured, resume gives the same frontier), the hypervolume. A synthetic evaluator
whose latency and memory follow the architecture (no device measurement)."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nasflow.core.errors import ConfigError
from nasflow.lts.screen import CostSurrogate, ScreenSettings, cost_features, gpt_screen
from nasflow.lts.search import (
    LTS_OBJECTIVES,
    MeasurementCache,
    ParetoSettings,
    frontier_hypervolume,
    run_pareto_search,
    write_outputs,
)
from nasflow.search.pareto import Objective, hypervolume, pareto_front
from nasflow.space.gpt import GPTArch, get_space
from nasflow.space.gpt_params import decoder_params

SPACE = get_space("lts-demo")
SETTINGS = ParetoSettings(
    population=20, parents=5, mutations=8, crossovers=7, iterations=6, seed=4, eval_batch=4
)
SCREEN = ScreenSettings(enabled=True, initial=10, margin=2.0)


class CostEvaluator:
    """Latency and memory as smooth functions of the architecture plus a small deterministic
    wiggle per architecture (what a real device adds); counts what it measured."""

    name = "cost-evaluator"

    def __init__(self, fail_after: int | None = None) -> None:
        self.measured: list[str] = []
        self.fail_after = fail_after

    def evaluate(self, archs: Sequence[GPTArch]) -> list[dict[str, float]]:
        out = []
        for arch in archs:
            if self.fail_after is not None and len(self.measured) >= self.fail_after:
                raise KeyboardInterrupt("killed")
            params = decoder_params(arch)
            wiggle = 1.0 + 0.01 * (int(arch.id[:4], 16) % 7 - 3)
            latency = (0.2 + 2e-6 * params + 0.05 * arch.n_layer + 1e-3 * sum(arch.n_head)) * wiggle
            memory = (1.0 + 4e-3 * arch.n_layer * arch.d_model + 1e-3 * sum(arch.d_inner)) * wiggle
            self.measured.append(arch.id)
            out.append({"decoder_params": params, "latency_ms": latency, "memory_mb": memory})
        return out


def search(evaluator: CostEvaluator, screen: ScreenSettings | None, state: Path | None = None):
    with MeasurementCache(":memory:", "toy-device") as cache:
        return run_pareto_search(
            SPACE,
            evaluator,
            LTS_OBJECTIVES,
            SETTINGS,
            cache,
            state,
            screen=None if screen is None else gpt_screen(screen),
        )


def test_surrogate_fits_cost_shaped_data_and_reports_its_error() -> None:
    archs = [SPACE.sample(random.Random(k)) for k in range(40)]
    evaluator = CostEvaluator()
    metrics = evaluator.evaluate(archs)
    features = np.array([cost_features(a, decoder_params(a)) for a in archs])
    surrogate = CostSurrogate(SCREEN).fit(features[:30], metrics[:30])
    predicted = surrogate.predict(features[30:])
    for name in ("latency_ms", "memory_mb"):
        truth = np.array([m[name] for m in metrics[30:]])
        relative = np.abs(predicted[name] - truth) / truth
        assert relative.mean() < 0.05  # the features explain the costs up to the wiggle
        assert SCREEN.min_error <= surrogate.error[name] < 0.1
        optimistic = surrogate.optimistic(features[30:])[name]
        assert np.all(optimistic <= np.maximum(predicted[name], 0))
    assert surrogate.points == 30


def test_screened_search_measures_less_and_every_frontier_point_is_measured() -> None:
    full_eval, screened_eval = CostEvaluator(), CostEvaluator()
    full = search(full_eval, None)
    screened = search(screened_eval, SCREEN)
    assert len(screened_eval.measured) < len(full_eval.measured)
    assert screened.timing["screened_out"] > 0
    measured = set(screened_eval.measured)
    assert {c.id for c in screened.frontier} <= measured
    assert {c.id for c in screened.candidates} == measured
    assert not {c.id for c in screened.screened} & measured
    # the frontier is the Pareto front of the measured candidates
    points = [c.metrics for c in screened.candidates]
    front = {screened.candidates[k].id for k in pareto_front(points, LTS_OBJECTIVES)}
    assert front == {c.id for c in screened.frontier}
    # with the same bounds, the screened frontier keeps (nearly) all of the full one's volume
    bounds = frontier_hypervolume(full)["hypervolume_bounds"]
    ratio = (
        frontier_hypervolume(screened, bounds)["hypervolume"]
        / frontier_hypervolume(full, bounds)["hypervolume"]
    )
    assert ratio > 0.95
    summary = screened.screen
    assert summary is not None and summary["screened_out"] == len(screened.screened)
    held_out = summary["held_out_error"]["latency_ms"]
    assert held_out["points"] > 0 and held_out["relative_mae"] < 0.1


def test_screened_search_resumes_to_the_same_frontier(tmp_path: Path) -> None:
    whole = search(CostEvaluator(), SCREEN)
    with pytest.raises(KeyboardInterrupt):
        search(CostEvaluator(fail_after=25), SCREEN, tmp_path / "state")
    resumed = search(CostEvaluator(), SCREEN, tmp_path / "state")
    assert resumed.resumed_from > 0
    assert [c.id for c in resumed.frontier] == [c.id for c in whole.frontier]
    assert {c.id for c in resumed.screened} == {c.id for c in whole.screened}


def test_screen_settings_enter_the_resume_fingerprint(tmp_path: Path) -> None:
    from nasflow.core.state import SearchStateError

    search(CostEvaluator(), SCREEN, tmp_path / "state")
    with pytest.raises(SearchStateError):
        search(
            CostEvaluator(),
            ScreenSettings(enabled=True, initial=10, margin=1.0),
            tmp_path / "state",
        )


def test_screened_outputs(tmp_path: Path) -> None:
    result = search(CostEvaluator(), SCREEN)
    paths = write_outputs(result, tmp_path)
    screened = pd.read_csv(paths["screened.csv"])
    assert len(screened) == len(result.screened)
    assert {"arch_id", "decoder_params", "predicted_latency_ms", "predicted_memory_mb"} <= set(
        screened.columns
    )
    info = json.loads(paths["screen.json"].read_text())
    assert info["settings"]["margin"] == 2.0
    timing = json.loads(paths["timing.json"].read_text())
    assert 0 < timing["hypervolume"] <= 1
    history = pd.read_csv(paths["history.csv"])
    assert history["screened_out"].sum() == timing["screened_out"]
    # a later unscreened run in the same folder leaves no stale screening files
    write_outputs(search(CostEvaluator(), None), tmp_path)
    assert not (tmp_path / "screened.csv").exists() and not (tmp_path / "screen.json").exists()


def test_screen_settings_errors() -> None:
    with pytest.raises(ConfigError, match=r"lts\.screen\.initial must be an integer >= 8"):
        ScreenSettings(enabled=True, initial=3)
    with pytest.raises(ConfigError, match=r"unknown lts\.screen setting\(s\): limit"):
        ScreenSettings.from_mapping({"limit": 3})
    with pytest.raises(ConfigError, match=r"lts\.screen\.margin must be a number >= 0"):
        ScreenSettings(margin=-1)


def test_hypervolume_by_hand_and_against_a_grid() -> None:
    two = (Objective("p", "max"), Objective("l", "min"))
    value = hypervolume([{"p": 10, "l": 1}, {"p": 5, "l": 0.5}], two, [10, 0], [0, 2])
    assert value == pytest.approx(0.625)
    assert hypervolume([{"p": -1, "l": 3}], two, [10, 0], [0, 2]) == 0.0  # beyond the nadir
    rng = np.random.default_rng(1)
    points = rng.random((6, 3))
    mins = tuple(Objective(n, "min") for n in "abc")
    grid = np.stack(np.meshgrid(*[np.linspace(0.0025, 0.9975, 200)] * 3), -1).reshape(-1, 3)
    covered = np.zeros(len(grid), dtype=bool)
    for p in points:
        covered |= np.all(grid >= p, axis=1)
    exact = hypervolume(points, mins, [0, 0, 0], [1, 1, 1])
    assert exact == pytest.approx(covered.mean(), abs=0.01)


def test_budget_caps_measurements_per_iteration_and_says_why() -> None:
    budget = ScreenSettings(enabled=True, initial=10, margin=2.0, budget=3)
    evaluator = CostEvaluator()
    result = search(evaluator, budget)
    after_warmup = [row["measured"] for row in result.history[1:]]
    assert after_warmup and max(after_warmup) <= 3
    assert result.history[0]["measured"] <= 10 + 3  # the warm-up, then the budget
    reasons = {c.metrics["screened_because"] for c in result.screened}
    assert "budget" in reasons and reasons <= {"budget", "dominated"}
    assert {c.id for c in result.frontier} <= set(evaluator.measured)
    # parents may be screened-out candidates (at their predictions): the search still breeds
    # new children every iteration instead of exhausting the few measured parents
    assert all(row["new"] > 0 for row in result.history)

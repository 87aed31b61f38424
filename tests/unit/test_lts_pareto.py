"""LTS Pareto search: dominance and fronts, the evolutionary search, the measurement cache,
resume, outputs, plots and the case-study selection helpers (toy space, no model code)."""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from nasflow.core.errors import ConfigError
from nasflow.lts.search import (
    HISTORY_COLUMNS,
    Architecture,
    Evaluator,
    MeasurementCache,
    ParetoResult,
    ParetoSearchError,
    ParetoSettings,
    ParetoSpace,
    SearchStateError,
    run_pareto_search,
    write_outputs,
)
from nasflow.lts.select import head_variants, select_candidates
from nasflow.report.lts_plots import plot_outputs, plot_result
from nasflow.search import pareto
from nasflow.search.pareto import (
    Objective,
    crowding_distance,
    dominates,
    non_dominated_sort,
    pareto_front,
    parse_objectives,
)

MIN2 = (Objective("a", "min"), Objective("b", "min"))
LTS3 = (
    Objective("decoder_params", "max"),
    Objective("latency_ms", "min"),
    Objective("memory_mb", "min"),
)
SETTINGS = ParetoSettings(
    population=14, parents=6, mutations=4, crossovers=4, iterations=8, seed=3, eval_batch=5
)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# ---- a toy space and evaluator ------------------------------------------------------------------


@dataclass(frozen=True)
class ToyArch:
    genes: tuple[int, ...]

    @property
    def id(self) -> str:
        return "t" + "-".join(map(str, self.genes))

    def to_dict(self) -> dict[str, Any]:
        return {"genes": list(self.genes)}


def default_valid(arch: ToyArch) -> bool:
    return sum(arch.genes) <= 20 and arch.genes[2] != 3


class ToySpace:
    """Four genes in `range(size)`; `valid` is the constraint. Records parents per iteration."""

    def __init__(
        self, size: int = 8, valid: Callable[[ToyArch], bool] = default_valid, name: str = "toy"
    ):
        self.size = size
        self.valid = valid
        self.name = name
        self.rejected = 0
        self.iteration = 1
        self.parents: dict[int, set[str]] = {}

    def sample(self, rng: random.Random) -> ToyArch:
        return ToyArch(tuple(rng.randrange(self.size) for _ in range(4)))

    def mutate(self, arch: ToyArch, prob: float, rng: random.Random) -> ToyArch:
        self.parents.setdefault(self.iteration, set()).add(arch.id)
        return ToyArch(
            tuple(rng.randrange(self.size) if rng.random() < prob else g for g in arch.genes)
        )

    def crossover(self, a: ToyArch, b: ToyArch, rng: random.Random) -> ToyArch:
        assert a != b, "crossover got the same parent twice"
        self.parents.setdefault(self.iteration, set()).update((a.id, b.id))
        return ToyArch(
            tuple(x if rng.random() < 0.5 else y for x, y in zip(a.genes, b.genes, strict=True))
        )

    def is_valid(self, arch: ToyArch) -> bool:
        ok = self.valid(arch)
        self.rejected += not ok
        return ok

    def arch_from_dict(self, data: Mapping[str, Any]) -> ToyArch:
        return ToyArch(tuple(int(g) for g in data["genes"]))


def toy_metrics(arch: ToyArch) -> dict[str, float]:
    a, b, c, d = arch.genes
    return {
        "decoder_params": float(10 * a + 7 * b + 3 * c + 5 * d + 1),
        # both grow with the genes at other rates than the parameters (so some genes are
        # cheaper than others and many architectures are dominated), plus interactions
        "latency_ms": a + 2.0 * b + 3.0 * c + 0.5 * d + (a * b + c) % 3,
        "memory_mb": 2.0 * a + 0.5 * b + c + 3.0 * d + (b * d) % 2,
        "total_params": float(10 * a + 7 * b + 3 * c + 5 * d + 100),
    }


class ToyEvaluator:
    name = "toy-evaluator"

    def __init__(self, fail_on_call: int | None = None, valid=default_valid):
        self.fail_on_call = fail_on_call
        self.valid = valid
        self.calls: list[list[str]] = []

    def evaluate(self, archs: Sequence[ToyArch]) -> list[dict[str, float]]:
        if self.fail_on_call is not None and len(self.calls) + 1 >= self.fail_on_call:
            raise RuntimeError("evaluator killed")
        for arch in archs:
            assert self.valid(arch), f"invalid {arch.id} was sent to the evaluator"
        self.calls.append([a.id for a in archs])
        return [toy_metrics(a) for a in archs]

    @property
    def measured(self) -> list[str]:
        return [i for call in self.calls for i in call]


def cache_at(path: Path | str = ":memory:", device: str = "toy-cpu") -> MeasurementCache:
    return MeasurementCache(path, device, {"seq_len": 8, "repeats": 3})


def search(
    space=None, evaluator=None, cache=None, settings=SETTINGS, on_row=None, **kwargs
) -> tuple[ParetoResult, ToySpace, ToyEvaluator]:
    space = ToySpace() if space is None else space
    evaluator = ToyEvaluator() if evaluator is None else evaluator
    cache = cache_at() if cache is None else cache

    def advance(row: dict[str, Any]) -> None:
        space.iteration = row["iteration"] + 1
        if on_row is not None:
            on_row(row)

    result = run_pareto_search(space, evaluator, LTS3, settings, cache, progress=advance, **kwargs)
    return result, space, evaluator


def naive_front(points: Sequence[Mapping[str, float]], objectives) -> list[int]:
    def better(p, q):
        no_worse = all(
            (p[o.name] >= q[o.name]) if o.maximise else (p[o.name] <= q[o.name]) for o in objectives
        )
        strictly = any(
            (p[o.name] > q[o.name]) if o.maximise else (p[o.name] < q[o.name]) for o in objectives
        )
        return no_worse and strictly

    return [j for j, q in enumerate(points) if not any(better(p, q) for p in points)]


def comparable(result: ParetoResult) -> list[tuple]:
    return [
        (r["iteration"], r["frontier_size"], r["seen"], r["new"], tuple(r["frontier"]))
        for r in result.history
    ]


# ---- dominance and fronts -----------------------------------------------------------------------


def test_dominates_respects_directions() -> None:
    assert dominates({"a": 1, "b": 1}, {"a": 2, "b": 1}, MIN2)
    assert not dominates({"a": 2, "b": 1}, {"a": 1, "b": 1}, MIN2)
    assert not dominates({"a": 1, "b": 1}, {"a": 1, "b": 1}, MIN2)  # equal: no dominance
    assert not dominates({"a": 1, "b": 3}, {"a": 2, "b": 1}, MIN2)  # trade-off
    mixed = (Objective("a", "max"), Objective("b", "min"))
    assert dominates({"a": 2, "b": 1}, {"a": 1, "b": 1}, mixed)
    assert not dominates({"a": 1, "b": 1}, {"a": 2, "b": 1}, mixed)
    assert dominates([5, 0], [4, 0], mixed)  # sequences in objective order


def test_front_on_hand_made_points_two_objectives() -> None:
    points = [
        {"a": 1, "b": 5},  # 0 front
        {"a": 2, "b": 3},  # 1 front
        {"a": 3, "b": 3},  # 2 dominated by 1
        {"a": 4, "b": 1},  # 3 front
        {"a": 2, "b": 3},  # 4 equal to 1: kept
        {"a": 5, "b": 5},  # 5 dominated
        {"a": 4, "b": 2},  # 6 dominated by 3
        {"a": 0, "b": 9},  # 7 front (best a)
    ]
    assert pareto_front(points, MIN2) == [0, 1, 3, 4, 7]
    flipped = (Objective("a", "max"), Objective("b", "max"))
    assert pareto_front(points, flipped) == [5, 7]
    assert pareto_front(points, (Objective("a", "max"), Objective("b", "min"))) == [3, 5]


def test_front_three_objectives_and_duplicates() -> None:
    points = [
        {"decoder_params": 100, "latency_ms": 10, "memory_mb": 5},  # 0 front
        {"decoder_params": 100, "latency_ms": 10, "memory_mb": 6},  # 1 dominated by 0
        {"decoder_params": 90, "latency_ms": 9, "memory_mb": 7},  # 2 front (faster)
        {"decoder_params": 80, "latency_ms": 9, "memory_mb": 4},  # 3 front (smaller memory)
        {"decoder_params": 80, "latency_ms": 9, "memory_mb": 4},  # 4 equal to 3: kept
        {"decoder_params": 79, "latency_ms": 9, "memory_mb": 4},  # 5 dominated by 3
        {"decoder_params": 120, "latency_ms": 30, "memory_mb": 30},  # 6 front (largest)
    ]
    assert pareto_front(points, LTS3) == [0, 2, 3, 4, 6]
    assert pareto_front([], LTS3) == []
    assert pareto_front([points[1]], LTS3) == [0]


@pytest.mark.parametrize("k", [2, 3])
def test_front_matches_brute_force_on_random_ties(k: int) -> None:
    rng = np.random.default_rng(k)
    objectives = [Objective(f"o{j}", "max" if j % 2 else "min") for j in range(k)]
    for _ in range(30):
        values = rng.integers(0, 5, size=(40, k))  # small range: many ties and equal points
        points = [{f"o{j}": int(v) for j, v in enumerate(row)} for row in values]
        front = pareto_front(points, objectives)
        assert front == naive_front(points, objectives)
        assert pareto_front(values.astype(float), objectives) == front  # array input


def test_front_blocking_gives_the_same_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(size=(700, 3))
    whole = pareto_front(values, LTS3)
    monkeypatch.setattr(pareto, "_BLOCK_ELEMENTS", 50)
    assert pareto_front(values, LTS3) == whole


def test_front_refuses_nan_and_missing_values() -> None:
    with pytest.raises(ValueError, match="'b' is NaN"):
        pareto_front([{"a": 1, "b": float("nan")}], MIN2)
    with pytest.raises(ValueError, match="no value for objective"):
        pareto_front([{"a": 1}], MIN2)
    # infinities compare as usual
    assert pareto_front([{"a": 1, "b": float("inf")}, {"a": 1, "b": 2}], MIN2) == [1]


def test_non_dominated_sort_ranks() -> None:
    rng = np.random.default_rng(5)
    values = rng.integers(0, 6, size=(60, 3)).astype(float)
    fronts = non_dominated_sort(values, LTS3)
    assert sorted(itertools.chain.from_iterable(fronts)) == list(range(60))
    assert fronts[0] == pareto_front(values, LTS3)
    for rank, front in enumerate(fronts[1:], start=1):
        earlier = [i for f in fronts[:rank] for i in f]
        for j in front:  # every later point is dominated by one of the previous front
            assert any(dominates(values[i], values[j], LTS3) for i in fronts[rank - 1])
        rest = values[earlier + front]
        assert set(pareto_front(rest, LTS3)) >= set(range(len(fronts[0])))
    limited = non_dominated_sort(values, LTS3, limit=len(fronts[0]) + 1)
    assert limited == fronts[:2]


def test_crowding_distance() -> None:
    points = [{"a": 0, "b": 4}, {"a": 1, "b": 2}, {"a": 3, "b": 1}, {"a": 4, "b": 0}]
    distance = crowding_distance(points, MIN2)
    assert np.isinf(distance[0]) and np.isinf(distance[3])
    assert distance[1] == pytest.approx(3 / 4 + 3 / 4)
    assert distance[2] == pytest.approx(3 / 4 + 2 / 4)
    assert np.isinf(crowding_distance(points[:2], MIN2)).all()


def test_parse_objectives() -> None:
    assert parse_objectives({"a": "min", "b": "max"}) == (
        Objective("a", "min"),
        Objective("b", "max"),
    )
    assert parse_objectives([{"name": "a", "direction": "max"}]) == (Objective("a", "max"),)
    with pytest.raises(ConfigError, match="'max' or 'min'"):
        parse_objectives({"a": "up"})
    with pytest.raises(ConfigError, match="given twice"):
        parse_objectives([Objective("a", "min"), Objective("a", "max")])
    with pytest.raises(ConfigError, match="at least one"):
        parse_objectives({})


# ---- the search ---------------------------------------------------------------------------------


def test_toy_classes_satisfy_the_protocols() -> None:
    assert isinstance(ToyArch((1, 2, 3, 4)), Architecture)
    assert isinstance(ToySpace(), ParetoSpace)
    assert isinstance(ToyEvaluator(), Evaluator)


def test_search_frontier_equals_brute_force_over_seen() -> None:
    result, _, _ = search()
    assert len(result.history) == SETTINGS.iterations
    points = [c.metrics for c in result.candidates]
    expected = {result.candidates[j].id for j in naive_front(points, LTS3)}
    assert {c.id for c in result.frontier} == expected
    params = [c.metrics["decoder_params"] for c in result.frontier]
    assert params == sorted(params)
    for row in result.history:  # every iteration's frontier is over everything seen by then
        seen = [c for c in result.candidates if c.first_seen <= row["iteration"]]
        assert row["seen"] == len(seen)
        want = {seen[j].id for j in naive_front([c.metrics for c in seen], LTS3)}
        assert set(row["frontier"]) == want
        assert row["frontier_size"] == len(want)
    assert result.frontier_ids(SETTINGS.iterations) == result.history[-1]["frontier"]


def test_children_valid_unseen_and_nothing_measured_twice() -> None:
    result, space, evaluator = search()
    measured = evaluator.measured
    assert len(measured) == len(set(measured)) == len(result.candidates)
    assert all(len(call) <= SETTINGS.eval_batch for call in evaluator.calls)
    assert all(default_valid(c.arch) for c in result.candidates)
    assert space.rejected > 0  # the constraint did reject candidates (never measured)
    news = [row["new"] for row in result.history]
    children = SETTINGS.mutations + SETTINGS.crossovers
    assert news == [SETTINGS.population] + [children] * (SETTINGS.iterations - 1)
    assert [r["measured"] for r in result.history] == news
    assert all(r["cache_hits"] == 0 for r in result.history)
    assert result.timing["measured"] == len(measured)
    assert result.timing["evaluated"] == len(result.candidates)
    extras = result.candidates[0].metrics
    assert extras["total_params"] == toy_metrics(result.candidates[0].arch)["total_params"]


FEW_PARENTS = SETTINGS  # the frontier soon outgrows 6 parents: they are subsampled from it
MANY_PARENTS = ParetoSettings(  # the frontier holds fewer than 16: later ranks fill the rest
    population=24, parents=16, mutations=4, crossovers=4, iterations=5, seed=2
)


@pytest.mark.parametrize("settings", [FEW_PARENTS, MANY_PARENTS], ids=["few", "many"])
def test_parents_come_from_the_best_ranks(tmp_path: Path, settings: ParetoSettings) -> None:
    parents: dict[int, list[str]] = {}

    def read_parents(row: dict[str, Any]) -> None:  # the state's next population starts with them
        state = json.loads((tmp_path / "search_state.json").read_text())
        archs = state["population"][: settings.parents]
        parents[row["iteration"]] = ["t" + "-".join(map(str, a["genes"])) for a in archs]

    result, space, _ = search(settings=settings, state_dir=tmp_path, on_row=read_parents)
    sizes = []
    usage: dict[str, int] = {}
    for row in result.history[:-1]:
        iteration = row["iteration"]
        chosen = parents[iteration]
        assert len(set(chosen)) == len(chosen) == settings.parents
        frontier = set(row["frontier"])
        sizes.append(len(frontier))
        if len(frontier) >= settings.parents:
            assert set(chosen) <= frontier, iteration
            # the frontier points used less often as parents before are preferred
            left_out = [usage.get(i, 0) for i in frontier - set(chosen)]
            if left_out:
                assert max(usage.get(i, 0) for i in chosen) <= min(left_out)
        else:
            assert frontier <= set(chosen), iteration
            seen = [c for c in result.candidates if c.first_seen <= iteration]
            ranks = non_dominated_sort([c.metrics for c in seen], LTS3, limit=settings.parents)
            assert set(chosen) <= {seen[j].id for rank in ranks for j in rank}
        assert space.parents[iteration] <= set(chosen)  # only parents are mutated or crossed
        for i in chosen:
            usage[i] = usage.get(i, 0) + 1
    if settings is FEW_PARENTS:
        assert max(sizes) > settings.parents
    else:
        assert min(sizes) < settings.parents


def test_search_is_seeded() -> None:
    first, _, _ = search()
    again, _, _ = search()
    assert comparable(first) == comparable(again)
    other, _, _ = search(settings=ParetoSettings(**{**SETTINGS.to_dict(), "seed": 4}))
    assert [c.id for c in other.candidates] != [c.id for c in first.candidates]


def test_constraints_are_enforced_before_measuring() -> None:
    def small(arch: ToyArch) -> bool:
        return arch.genes[0] <= 2 and arch.genes[1] != arch.genes[2]

    space = ToySpace(valid=small)
    result, _, evaluator = search(space=space, evaluator=ToyEvaluator(valid=small))
    assert all(small(c.arch) for c in result.candidates)
    assert space.rejected > 0
    assert len(evaluator.measured) == len(result.candidates)


def test_infeasible_constraints_and_exhausted_space_are_reported() -> None:
    tries = ParetoSettings(**{**SETTINGS.to_dict(), "max_resample_tries": 50})
    with pytest.raises(ParetoSearchError, match=r"initial population: 50 .* 50 violated"):
        search(space=ToySpace(valid=lambda a: False), settings=tries)
    tiny = ToySpace(size=2, valid=lambda a: True)  # 16 archs: 12 + 8 children cannot be unseen
    with pytest.raises(
        ParetoSearchError,
        match=r"iteration 1 (mutation|crossover): 50 .* 50 were already seen.*exhausted",
    ):
        search(space=tiny, evaluator=ToyEvaluator(valid=lambda a: True), settings=tries)


def test_evaluator_output_is_checked() -> None:
    class Missing(ToyEvaluator):
        def evaluate(self, archs):
            return [{"decoder_params": 1.0, "latency_ms": 1.0} for _ in archs]

    class Short(ToyEvaluator):
        def evaluate(self, archs):
            return [toy_metrics(a) for a in archs][:-1]

    with pytest.raises(ParetoSearchError, match="'memory_mb'"):
        search(evaluator=Missing())

    class Clash(ToyEvaluator):
        def evaluate(self, archs):
            return [{**toy_metrics(a), "arch": "x"} for a in archs]

    with pytest.raises(ParetoSearchError, match="metric sets for"):
        search(evaluator=Short())
    with pytest.raises(ParetoSearchError, match=r"named arch .*reserved"):
        search(evaluator=Clash())


def test_settings_validation() -> None:
    assert ParetoSettings().to_dict()["population"] == 100
    with pytest.raises(ConfigError, match=r"population \(10\) must equal"):
        ParetoSettings(population=10)
    with pytest.raises(ConfigError, match="mutation_prob"):
        ParetoSettings(mutation_prob=1.5)
    with pytest.raises(ConfigError, match=r"search\.iterations"):
        ParetoSettings(iterations=0)
    with pytest.raises(ConfigError, match=r"parents must be >= 2"):
        ParetoSettings(population=2, parents=1, mutations=0, crossovers=1)
    with pytest.raises(ConfigError, match=r"unknown search setting.*popsize"):
        ParetoSettings.from_mapping({"popsize": 3})


# ---- measurement cache --------------------------------------------------------------------------


def test_measurement_cache_roundtrip_and_keys(tmp_path: Path) -> None:
    path = tmp_path / "cache" / "m.sqlite"
    with cache_at(path) as cache:
        cache.put("x", {"latency_ms": 1.5})
        cache.put("x", {"latency_ms": 9.0})  # first value wins
        cache.put_many([("y", {"latency_ms": 2.0}), ("z", {"latency_ms": 3.0})])
        assert cache.get_many(["x", "y", "missing"]) == {
            "x": {"latency_ms": 1.5},
            "y": {"latency_ms": 2.0},
        }
        assert len(cache) == 3
    with cache_at(path) as cache:  # persisted
        assert cache.get("z") == {"latency_ms": 3.0}
        assert len(cache.get_many([f"id{i}" for i in range(1200)] + ["x"])) == 1
    with cache_at(path, device="other") as other:
        assert other.get_many(["x", "y"]) == {}
    with MeasurementCache(path, "toy-cpu", "another-protocol") as other:
        assert other.get("x") is None
    with pytest.raises(ConfigError, match="device key"):
        MeasurementCache(path, "")


def test_second_run_with_the_same_cache_measures_nothing(tmp_path: Path) -> None:
    path = tmp_path / "measure.sqlite"
    first, _, evaluator = search(cache=cache_at(path))
    assert evaluator.measured
    again, _, evaluator2 = search(cache=cache_at(path))
    assert evaluator2.calls == []
    assert comparable(again) == comparable(first)
    assert [r["cache_hits"] for r in again.history] == [r["new"] for r in again.history]
    assert again.timing["measured"] == 0
    _, _, evaluator3 = search(cache=cache_at(path, device="phone"))  # another device: measured
    assert len(evaluator3.measured) == len(first.candidates)


# ---- resume -------------------------------------------------------------------------------------


# With eval_batch 5, iteration 1 (12 new) makes calls 1-3 and each later one (8 new) two calls.
@pytest.mark.parametrize(("fail_on_call", "done_before"), [(1, 0), (4, 1), (9, 3)])
def test_killed_search_resumes_to_the_same_result(
    tmp_path: Path, fail_on_call: int, done_before: int
) -> None:
    reference, _, _ = search()
    state = tmp_path / "state"
    cache_path = tmp_path / "cache.sqlite"
    killed = ToyEvaluator(fail_on_call=fail_on_call)
    with pytest.raises(RuntimeError, match="killed"):
        search(evaluator=killed, cache=cache_at(cache_path), state_dir=state)
    assert (state / "search_state.json").is_file()
    resumed_eval = ToyEvaluator()
    resumed, _, _ = search(evaluator=resumed_eval, cache=cache_at(cache_path), state_dir=state)
    assert comparable(resumed) == comparable(reference)
    assert [(c.id, c.first_seen) for c in resumed.candidates] == [
        (c.id, c.first_seen) for c in reference.candidates
    ]
    assert [c.id for c in resumed.frontier] == [c.id for c in reference.frontier]
    both = killed.measured + resumed_eval.measured
    assert len(both) == len(set(both)) == len(reference.candidates)  # nothing measured twice
    assert resumed.resumed_from == done_before
    # a finished state resumes to the same result without evaluating anything
    done_eval = ToyEvaluator()
    done, _, _ = search(evaluator=done_eval, cache=cache_at(cache_path), state_dir=state)
    assert done_eval.calls == [] and done.resumed_from == SETTINGS.iterations
    assert comparable(done) == comparable(reference)


def test_state_of_other_inputs_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "state"
    search(state_dir=state)
    other = ParetoSettings(**{**SETTINGS.to_dict(), "seed": 9})
    with pytest.raises(SearchStateError, match=r"settings\.seed: 3 -> 9.*Delete the folder"):
        search(settings=other, state_dir=state)
    with pytest.raises(SearchStateError, match="device: 'toy-cpu' -> 'phone'"):
        search(cache=cache_at(device="phone"), state_dir=state)
    with pytest.raises(SearchStateError, match="space: 'toy' -> 'toy2'"):
        search(space=ToySpace(name="toy2"), state_dir=state)
    fresh, _, evaluator = search(settings=other, state_dir=state, fresh=True)
    assert fresh.resumed_from == 0 and evaluator.calls
    # max_resample_tries and eval_batch may change between runs
    relaxed = ParetoSettings(**{**other.to_dict(), "max_resample_tries": 77, "eval_batch": 2})
    again, _, evaluator = search(settings=relaxed, state_dir=state)
    assert again.resumed_from == SETTINGS.iterations and evaluator.calls == []


# ---- outputs and plots --------------------------------------------------------------------------


def test_outputs_and_plots(tmp_path: Path) -> None:
    result, _, _ = search()
    paths = write_outputs(result, tmp_path / "out")
    frontier = pd.read_csv(paths["frontier.csv"])
    every = pd.read_csv(paths["all.csv"])
    history = pd.read_csv(paths["history.csv"])
    assert list(frontier["arch_id"]) == [c.id for c in result.frontier]
    assert list(frontier.columns) == [
        "arch_id",
        "decoder_params",
        "latency_ms",
        "memory_mb",
        "total_params",
        "first_seen",
        "arch",
    ]
    assert json.loads(frontier["arch"][0]) == result.frontier[0].arch.to_dict()
    assert len(every) == len(result.candidates)
    assert set(every.loc[every["on_frontier"], "arch_id"]) == set(frontier["arch_id"])
    assert list(history.columns) == list(HISTORY_COLUMNS)
    assert list(history["iteration"]) == list(range(1, SETTINGS.iterations + 1))
    fronts = json.loads(paths["frontiers.json"].read_text())
    assert fronts["iterations"]["1"] == result.history[0]["frontier"]
    timing = json.loads(paths["timing.json"].read_text())
    assert timing["measured"] == len(result.candidates)
    assert {"wall_seconds", "evaluator_seconds", "wall_hours"} <= set(timing)

    png = plot_outputs(tmp_path / "out")
    assert png == tmp_path / "out" / "frontier_evolution.png"
    assert png.read_bytes()[:8] == PNG_MAGIC
    other = plot_result(result, tmp_path / "r.png", iterations=[1, SETTINGS.iterations])
    assert other.read_bytes()[:8] == PNG_MAGIC


# ---- case-study selection -----------------------------------------------------------------------


def test_select_candidates() -> None:
    rows = [
        {"arch_id": "base", "decoder_params": 100.0, "latency_ms": 9.0},  # equal: excluded
        {"arch_id": "a", "decoder_params": 104.0, "latency_ms": 7.0},
        {"arch_id": "b", "decoder_params": 110.0, "latency_ms": 5.0},  # upper bound: included
        {"arch_id": "c", "decoder_params": 110.5, "latency_ms": 1.0},  # above the margin
        {"arch_id": "d", "decoder_params": 95.0, "latency_ms": 2.0},  # below the baseline
        {"arch_id": "e", "decoder_params": 101.0, "latency_ms": 5.0},  # ties b on latency
    ]
    picked = select_candidates(rows, 100.0, margin=0.1)
    assert [r["arch_id"] for r in picked] == ["b", "e", "a"]
    assert [r["arch_id"] for r in select_candidates(pd.DataFrame(rows), 100, limit=1)] == ["b"]
    assert [r["arch_id"] for r in select_candidates(rows, 100, margin=0.05)] == ["e", "a"]
    with pytest.raises(ConfigError, match="margin"):
        select_candidates(rows, 100, margin=-0.1)


def test_head_variants() -> None:
    @dataclass(frozen=True)
    class Arch:
        d_model: int
        heads: tuple[int, ...]

        @property
        def id(self) -> str:
            return f"{self.d_model}-{self.heads}"

    def set_heads(arch: Arch, n: int) -> Arch:
        if arch.d_model % n:
            raise ValueError("d_model not divisible")
        return Arch(arch.d_model, (n,) * len(arch.heads))

    arch = Arch(64, (4, 8))
    variants = head_variants(arch, set_heads)
    assert variants == [(8, Arch(64, (8, 8))), (16, Arch(64, (16, 16)))]
    assert head_variants(Arch(64, (8, 8)), set_heads) == [(16, Arch(64, (16, 16)))]
    assert head_variants(Arch(40, (4,)), set_heads, (8, 16)) == [(8, Arch(40, (8,)))]
    only_small = head_variants(arch, set_heads, is_valid=lambda a: a.heads[0] <= 8)
    assert [n for n, _ in only_small] == [8]

"""Evolutionary search: predictor schedules, HAT's loop, scoring protocols (HAT's re-scoring,
the score cache), constraints, resume."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nasflow.config.resolve import load_schema, validate_config
from nasflow.core.errors import ConfigError
from nasflow.efficiency.counts import count_params
from nasflow.predictors.base import Predictor
from nasflow.search import (
    HISTORY_COLUMNS,
    PROTOCOLS,
    SCORED_COLUMNS,
    EvolutionSettings,
    PredictorSchedule,
    SearchError,
    SearchResult,
    SearchStateError,
    run_search,
    write_outputs,
)
from nasflow.search.constraints import Constraint, ParamsConstraint
from nasflow.space.hat import Arch, get_space

SPACE = get_space("demo")
VOCAB = 8000
SETTINGS = EvolutionSettings(
    population=12, parents=4, mutations=4, crossovers=4, iterations=6, seed=7
)
# The median parameter count of the demo space (~1.05 M): the constraint rejects about half.
PARAMS_LIMIT = 1.05


class Recorder(Predictor):
    """A linear function of LLM-Distill-PP's features that records every `predict` batch."""

    def __init__(self, name: str, weights: Sequence[float], fail_on_call: int | None = None):
        self.name = name
        self.weights = np.asarray(weights, dtype=float)
        self.fail_on_call = fail_on_call
        self.calls: list[list[Arch]] = []

    def predict(self, archs: Sequence[Arch]) -> np.ndarray:
        if self.fail_on_call is not None and len(self.calls) + 1 >= self.fail_on_call:
            raise RuntimeError(f"{self.name} killed")
        self.calls.append(list(archs))
        return np.array([self.weights @ SPACE.distill_features(a) for a in archs])


def make_predictors(**fail: int) -> dict[str, Recorder]:
    return {
        "distill": Recorder("LLM-Distill-PP", np.linspace(1, 2, 10), fail.get("distill")),
        "supernet": Recorder("HAT", [3, 0, 2, 1, -1, 2, 1, 0, 1, -2], fail.get("supernet")),
    }


def params_constraint(limit: float = PARAMS_LIMIT) -> ParamsConstraint:
    return ParamsConstraint(limit, vocab_size=VOCAB)


def search(
    schedule: PredictorSchedule | None = None,
    settings: EvolutionSettings = SETTINGS,
    predictors: dict[str, Recorder] | None = None,
    **kwargs,
) -> SearchResult:
    return run_search(
        SPACE,
        predictors if predictors is not None else make_predictors(),
        schedule or PredictorSchedule.hsnas(settings.iterations, 1, 3),
        [params_constraint()],
        settings,
        **kwargs,
    )


def outcome(result: SearchResult) -> dict:
    """Everything but timings, for equality between runs."""
    return {
        "best": (result.best.arch.id, result.best.score, result.best.genome),
        "predictor": result.predictor,
        "parents": [(p.arch.id, p.score, p.genome) for p in result.parents],
        "population": result.population,
        "history": [{k: v for k, v in row.items() if k != "seconds"} for row in result.history],
        "scored": result.timing["scored"],
    }


# ---- schedule -----------------------------------------------------------------------------------


def test_paper_notation_hsnas_1_15_on_30_iterations():
    schedule = PredictorSchedule.hsnas(30, 1, 15)
    assert [schedule.predictor_for(i) for i in range(1, 16)] == ["distill"] * 15
    assert [schedule.predictor_for(i) for i in range(16, 31)] == ["supernet"] * 15
    assert schedule.names() == ["distill", "supernet"]
    # llmas' 0-based flags 0..14 are the same schedule; start -1 is plain HAT.
    assert PredictorSchedule.from_llmas_flags(30, 0, 14) == schedule
    assert PredictorSchedule.from_llmas_flags(30, -1, -1) == PredictorSchedule.single(30)
    assert PredictorSchedule.single(30).sequence() == ["supernet"] * 30
    with pytest.raises(ValueError, match=r"1\.\.30"):
        schedule.predictor_for(31)
    with pytest.raises(ValueError, match=r"1\.\.30"):
        schedule.predictor_for(0)


def test_schedule_from_mapping_round_trips():
    mapping = {
        "iterations": 30,
        "default": "supernet",
        "segments": [
            {"predictor": "distill", "start": 16, "end": 20},
            {"predictor": "llm", "start": 1, "end": 15},
        ],
    }
    schedule = PredictorSchedule.from_mapping(mapping, known={"supernet", "distill", "llm"})
    assert schedule.sequence() == ["llm"] * 15 + ["distill"] * 5 + ["supernet"] * 10
    assert PredictorSchedule.from_mapping(schedule.to_dict()) == schedule
    without_count = {k: v for k, v in mapping.items() if k != "iterations"}
    assert PredictorSchedule.from_mapping(without_count, iterations=30) == schedule


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        (
            {
                "segments": [
                    {"predictor": "d", "start": 1, "end": 10},
                    {"predictor": "d", "start": 10, "end": 12},
                ]
            },
            "overlaps",
        ),
        ({"segments": [{"predictor": "d", "start": 1, "end": 31}]}, r"segments\[0\]\.end"),
        ({"segments": [{"predictor": "d", "start": 0, "end": 3}]}, r"segments\[0\]\.start"),
        ({"segments": [{"predictor": "d", "start": 5, "end": 3}]}, "start .5. is after end .3."),
        ({"segments": [{"predictor": "d", "start": 1}]}, r"segments\[0\]: missing key\(s\) end"),
        ({"segments": [{"predictor": "", "start": 1, "end": 2}]}, r"segments\[0\]\.predictor"),
        ({"segments": {"predictor": "d"}}, "schedule.segments must be a list"),
        ({"iterations": 0}, "schedule.iterations"),
        ({"iterations": "30"}, "schedule.iterations"),
        ({"default": None}, "schedule.default"),
        ({"bogus": 1}, "unknown schedule key.*bogus"),
    ],
)
def test_bad_schedules_name_the_key(mapping, message):
    with pytest.raises(ConfigError, match=message):
        PredictorSchedule.from_mapping({"iterations": 30, "default": "supernet", **mapping})


def test_schedule_names_and_iterations_are_checked():
    mapping = {"default": "supernet", "segments": [{"predictor": "gpt", "start": 1, "end": 3}]}
    with pytest.raises(ConfigError, match=r"segments\[0\]\.predictor: unknown predictor 'gpt'"):
        PredictorSchedule.from_mapping(mapping, iterations=6, known={"supernet", "distill"})
    with pytest.raises(ConfigError, match=r"schedule\.default: unknown predictor"):
        PredictorSchedule.from_mapping(mapping, iterations=6, known={"gpt"})
    with pytest.raises(ConfigError, match=r"schedule.iterations \(30\) differs .* \(6\)"):
        PredictorSchedule.from_mapping({**mapping, "iterations": 30}, iterations=6)
    with pytest.raises(ConfigError, match=r"schedule\.iterations is missing"):
        PredictorSchedule.from_mapping(mapping)
    with pytest.raises(ConfigError, match=r"schedule\.default is missing"):
        PredictorSchedule.from_mapping({"iterations": 6})


def test_default_methods_are_table16s_as_the_paper_ran_them():
    """Distilled HAT (num-iter.=15): the supernet-distilled MLP for iterations 1-15, then the
    supernet for 16-30 (HS-NAS's shape, not the MLP for all 30); hat-15: HAT with 15."""
    data = {"corpus": "multi30k", "source_lang": "en", "target_lang": "de"}
    config = validate_config({"experiment": "x", "space": "demo", "data": data})
    methods = config["search"]["methods"]
    assert methods == load_schema()["properties"]["search"]["properties"]["methods"]["default"]
    distilled = PredictorSchedule.from_mapping(methods["distilled-hat"])
    assert [distilled.predictor_for(i) for i in range(1, 16)] == ["supernet-mlp"] * 15
    assert [distilled.predictor_for(i) for i in range(16, 31)] == ["supernet"] * 15
    assert distilled.names() == ["supernet-mlp", "supernet"]
    hsnas = PredictorSchedule.from_mapping(methods["hsnas"])
    assert [p.replace("distill", "supernet-mlp") for p in hsnas.sequence()] == distilled.sequence()
    assert PredictorSchedule.from_mapping(methods["hat-15"]) == PredictorSchedule.single(15)
    assert PredictorSchedule.from_mapping(methods["hat"]) == PredictorSchedule.single(30)
    assert config["search"]["protocol"] == "reference"  # HAT's, faithful by default


# ---- settings -----------------------------------------------------------------------------------


def test_settings_defaults_are_hats():
    s = EvolutionSettings()
    assert (s.population, s.parents, s.mutations, s.crossovers) == (125, 25, 50, 50)
    assert (s.mutation_prob, s.iterations) == (0.3, 30)
    assert EvolutionSettings.from_mapping(SETTINGS.to_dict()) == SETTINGS


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"population": 13}, r"search.population \(13\) must equal"),
        ({"parents": 1, "mutations": 7}, "search.parents must be >= 2 for crossover"),
        ({"mutation_prob": 1.5}, "search.mutation_prob"),
        ({"mutation_prob": True}, "search.mutation_prob"),
        ({"iterations": 0}, "search.iterations"),
        ({"max_resample_tries": 0}, "search.max_resample_tries"),
        ({"seed": "1"}, "search.seed"),
        ({"parent_size": 4}, r"unknown search setting\(s\): parent_size"),
    ],
)
def test_bad_settings_name_the_field(values, message):
    with pytest.raises(ConfigError, match=message):
        EvolutionSettings.from_mapping({**SETTINGS.to_dict(), **values})


def test_one_parent_is_fine_without_crossover():
    settings = EvolutionSettings(population=5, parents=1, mutations=4, crossovers=0, iterations=2)
    result = search(schedule=PredictorSchedule.single(2), settings=settings)
    assert len(result.parents) == 1 and len(result.population) == 5


def test_run_search_checks_schedule_against_settings_and_predictors():
    with pytest.raises(ConfigError, match="schedule has 30 iterations"):
        search(schedule=PredictorSchedule.hsnas(30, 1, 15))
    with pytest.raises(ConfigError, match="'distill'"):
        search(predictors={"supernet": make_predictors()["supernet"]})


# ---- the loop -----------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_each_iteration_uses_only_its_scheduled_predictor(protocol: str):
    predictors = make_predictors()
    iteration = [1]
    batches: list[tuple[int, str, int]] = []
    for name, predictor in predictors.items():
        original = predictor.predict

        def spy(archs, name=name, original=original):
            batches.append((iteration[0], name, len(archs)))
            return original(archs)

        predictor.predict = spy

    def progress(row):
        iteration[0] = row["iteration"] + 1

    schedule = PredictorSchedule.hsnas(6, 2, 4)
    result = search(schedule=schedule, predictors=predictors, progress=progress, protocol=protocol)
    assert [row["predictor"] for row in result.history] == schedule.sequence()
    assert [row["iteration"] for row in result.history] == list(range(1, 7))
    assert {row["protocol"] for row in result.history} == {protocol}
    for it, name, size in batches:
        assert name == schedule.predictor_for(it)
        assert size == result.history[it - 1]["scored"]
    # At most one batch per iteration, and one whenever something was scored.
    assert len({it for it, _, _ in batches}) == len(batches)
    assert {it for it, _, _ in batches} == {r["iteration"] for r in result.history if r["scored"]}
    assert result.predictor == "supernet" and result.protocol == protocol
    assert result.timing["scored"] == {
        name: sum(len(c) for c in p.calls) for name, p in predictors.items()
    }


def test_reference_protocol_scores_every_member_every_iteration():
    """HAT: population x iterations scorings, elites (and duplicates) re-scored each time."""
    predictors = make_predictors()
    result = search(predictors=predictors, protocol="reference")
    calls = [call for p in predictors.values() for call in p.calls]
    assert [len(call) for call in predictors["distill"].calls] == [SETTINGS.population] * 3
    assert [len(call) for call in predictors["supernet"].calls] == [SETTINGS.population] * 3
    assert sum(len(call) for call in calls) == SETTINGS.population * SETTINGS.iterations
    assert result.timing["scored"] == {"distill": 12 * 3, "supernet": 12 * 3}
    assert [row["scored"] for row in result.history] == [SETTINGS.population] * 6
    # The elites of iteration 5 (its top `parents`) are scored again, first, in iteration 6.
    before, last = predictors["supernet"].calls[-2:]
    weights = predictors["supernet"].weights
    scores = np.array([weights @ SPACE.distill_features(a) for a in before])
    elites = [before[k].id for k in np.argsort(-scores, kind="stable")[: SETTINGS.parents]]
    assert [a.id for a in last[: SETTINGS.parents]] == elites


def test_cached_protocol_never_sends_an_arch_twice_to_a_predictor():
    predictors = make_predictors()
    result = search(
        schedule=PredictorSchedule.single(6, "distill"), predictors=predictors, protocol="cached"
    )
    ids = [a.id for call in predictors["distill"].calls for a in call]
    assert len(ids) == len(set(ids)) and len(ids) > SETTINGS.population
    assert predictors["supernet"].calls == []
    # Elites survive every iteration, so fewer scorings than HAT's population x iterations.
    assert len(ids) == result.timing["scored"]["distill"] < SETTINGS.population * 6
    assert sum(row["scored"] for row in result.history) == len(ids)


def test_protocols_differ_only_in_the_predictor_calls():
    """With a deterministic predictor both protocols evolve the same populations."""
    reference, cached = search(protocol="reference"), search(protocol="cached")
    same = [k for k in outcome(reference) if k not in ("history", "scored")]
    assert {k: outcome(reference)[k] for k in same} == {k: outcome(cached)[k] for k in same}
    assert sum(cached.timing["scored"].values()) < sum(reference.timing["scored"].values())
    assert reference.protocol == "reference" and cached.protocol == "cached"
    assert search().protocol == "reference"  # the default
    with pytest.raises(
        ConfigError, match=r"search\.protocol must be one of reference, cached, fast"
    ):
        search(protocol="quick")


def test_every_population_member_satisfies_the_constraint():
    predictors = make_predictors()
    result = search(predictors=predictors)
    # Every member of every scored population was sent to some predictor once.
    seen = [a for p in predictors.values() for call in p.calls for a in call]
    values = params_constraint().values(seen)
    assert len(seen) > SETTINGS.population and (values <= PARAMS_LIMIT).all()
    assert all(count_params(p.arch) / 1e6 <= PARAMS_LIMIT for p in result.parents)
    assert result.timing["constraint_seconds"] >= 0


def test_infeasible_constraint_raises_naming_it():
    settings = EvolutionSettings.from_mapping({**SETTINGS.to_dict(), "max_resample_tries": 300})
    tiny = params_constraint(0.001)
    with pytest.raises(SearchError) as caught:
        run_search(SPACE, make_predictors(), PredictorSchedule.single(6), [tiny], settings)
    message = str(caught.value)
    assert "initial population" in message and "300 candidates in a row" in message
    assert "params_m <= 0.001" in message and "looks infeasible" in message
    smallest = count_params(SPACE.smallest()) / 1e6
    assert f"smallest value seen: {smallest:.6g}" in message


class AtLeastParams(Constraint):
    """`2 - M params <= limit`, i.e. at least `2 - limit` M params."""

    name = "min_params"
    unit = "(2 - M params)"

    def values(self, archs: Sequence[Arch]) -> np.ndarray:
        return np.array([2 - count_params(a) / 1e6 for a in archs])


def test_jointly_infeasible_constraints_are_named():
    settings = EvolutionSettings.from_mapping({**SETTINGS.to_dict(), "max_resample_tries": 300})
    both = [params_constraint(0.9), AtLeastParams(0.8)]  # at most 0.9 M and at least 1.2 M
    with pytest.raises(SearchError, match="jointly infeasible") as caught:
        run_search(SPACE, make_predictors(), PredictorSchedule.single(6), both, settings)
    assert "params_m <= 0.9" in str(caught.value) and "min_params <= 0.8" in str(caught.value)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_search_is_seeded(protocol: str):
    first, again = search(protocol=protocol), search(protocol=protocol)
    assert outcome(first) == outcome(again)
    other = search(
        settings=EvolutionSettings.from_mapping({**SETTINGS.to_dict(), "seed": 8}),
        protocol=protocol,
    )
    assert outcome(other)["population"] != outcome(first)["population"]


def test_search_improves_the_objective():
    settings = EvolutionSettings.from_mapping({**SETTINGS.to_dict(), "iterations": 10})
    result = search(schedule=PredictorSchedule.single(10, "supernet"), settings=settings)
    best = [row["best_score"] for row in result.history]
    assert best == sorted(best) and best[-1] > result.history[0]["mean_score"]
    assert result.best_score == best[-1]
    assert result.best.arch.to_json() == result.history[-1]["best_arch"]
    assert [p.score for p in result.parents] == sorted(
        (p.score for p in result.parents), reverse=True
    )


# ---- resume -------------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_resume_after_a_kill_matches_an_uninterrupted_run(tmp_path: Path, protocol: str):
    schedule = PredictorSchedule.hsnas(6, 1, 3)
    reference = search(schedule=schedule, protocol=protocol)
    # The supernet's 2nd batch is iteration 5: iterations 1..4 are saved when it dies.
    with pytest.raises(RuntimeError, match="killed"):
        search(
            schedule=schedule,
            predictors=make_predictors(supernet=2),
            state_dir=tmp_path,
            protocol=protocol,
        )
    saved = json.loads((tmp_path / "search_state.json").read_text())
    assert saved["iteration"] == 4 and saved["inputs"]["protocol"] == protocol
    predictors = make_predictors()
    resumed = search(
        schedule=schedule, predictors=predictors, state_dir=tmp_path, protocol=protocol
    )
    assert resumed.resumed_from == 4
    assert predictors["distill"].calls == [] and len(predictors["supernet"].calls) == 2
    assert outcome(resumed) == outcome(reference)


def test_resume_after_a_progress_callback_dies(tmp_path: Path):
    reference = search()

    def die_after_2(row):
        if row["iteration"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        search(state_dir=tmp_path, progress=die_after_2)
    resumed = search(state_dir=tmp_path)
    assert resumed.resumed_from == 2 and outcome(resumed) == outcome(reference)
    # A finished state is returned without scoring anything again.
    predictors = make_predictors()
    again = search(predictors=predictors, state_dir=tmp_path)
    assert again.resumed_from == 6 and outcome(again) == outcome(reference)
    assert all(p.calls == [] for p in predictors.values())


def test_state_of_other_inputs_is_refused(tmp_path: Path):
    search(state_dir=tmp_path)
    other = EvolutionSettings.from_mapping({**SETTINGS.to_dict(), "seed": 8})
    with pytest.raises(SearchStateError, match=r"settings\.seed: 7 -> 8.*Delete the folder"):
        search(settings=other, state_dir=tmp_path)
    with pytest.raises(SearchStateError, match="schedule"):
        search(schedule=PredictorSchedule.hsnas(6, 1, 2), state_dir=tmp_path)
    # A state never mixes scoring protocols.
    with pytest.raises(SearchStateError, match="protocol: 'reference' -> 'cached'"):
        search(state_dir=tmp_path, protocol="cached")
    fresh = search(settings=other, state_dir=tmp_path, fresh=True)
    assert fresh.resumed_from == 0 and outcome(fresh) == outcome(search(settings=other))
    # The resample bound may change between runs.
    bound = EvolutionSettings.from_mapping({**other.to_dict(), "max_resample_tries": 50})
    assert search(settings=bound, state_dir=tmp_path).resumed_from == 6


def test_corrupt_state_is_refused(tmp_path: Path):
    (tmp_path / "search_state.json").write_text("{not json")
    with pytest.raises(SearchStateError, match="unreadable search state"):
        search(state_dir=tmp_path)


def test_a_state_missing_a_key_names_the_file(tmp_path: Path):
    search(state_dir=tmp_path)
    path = tmp_path / "search_state.json"
    state = json.loads(path.read_text())
    del state["scores"]
    path.write_text(json.dumps(state))
    with pytest.raises(SearchStateError) as error:
        search(state_dir=tmp_path)
    assert str(error.value).startswith(f"{path}: the search state lacks key 'scores'")


# ---- outputs ------------------------------------------------------------------------------------


def test_write_outputs(tmp_path: Path):
    result = search()
    paths = write_outputs(result, tmp_path / "out", extra_best={"params_m": 0.9})
    history = pd.read_csv(paths["history.csv"])
    assert list(history.columns) == list(HISTORY_COLUMNS) and len(history) == 6
    assert history["best_score"].tolist() == [row["best_score"] for row in result.history]
    scored = pd.read_csv(paths["scored.csv"])
    assert list(scored.columns) == list(SCORED_COLUMNS)
    assert sorted(set(scored["iteration"])) == list(range(1, 7))
    assert not scored.duplicated(["iteration", "arch_id"]).any()
    for row in result.history:  # each iteration's best is among its scored rows, same score
        top = scored[scored["iteration"] == row["iteration"]].nlargest(1, "score").iloc[0]
        assert top["score"] == pytest.approx(row["best_score"])
    best = json.loads(paths["best.json"].read_text())
    assert Arch.from_dict(best["arch"]) == result.best_arch
    assert best["arch_id"] == result.best_arch.id and best["score"] == result.best_score
    assert best["predictor"] == "supernet" and best["params_m"] == 0.9
    assert best["protocol"] == "reference" and set(history["protocol"]) == {"reference"}
    parents = json.loads(paths["parents.json"].read_text())["parents"]
    assert [p["arch_id"] for p in parents] == [p.arch.id for p in result.parents]
    timing = json.loads(paths["timing.json"].read_text())
    assert set(timing) >= {"search_seconds", "predictor_seconds", "constraint_seconds", "scored"}
    assert set(timing["predictor_seconds"]) == {"distill", "supernet"}
    assert timing["protocol"] == "reference" and timing["scored"] == {"distill": 36, "supernet": 36}
    cached = write_outputs(search(protocol="cached"), tmp_path / "cached")
    assert json.loads(cached["timing.json"].read_text())["protocol"] == "cached"
    assert json.loads(cached["parents.json"].read_text())["protocol"] == "cached"
    with pytest.raises(ValueError, match="arch_id"):
        write_outputs(result, tmp_path / "out", extra_best={"arch_id": "x"})

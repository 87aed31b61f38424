"""Scheduler resources estimated from the config (nasflow.cluster.resources): each estimate grows
with the job's size in the config and with the attempt; latency placements become the SLURM
plugin's resources and are checked before any job."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from nasflow.cluster import resources as est
from nasflow.config.resolve import resolve_config, validate_config
from nasflow.core.errors import ConfigError
from nasflow.space.hat import get_space

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def demo() -> dict:
    return resolve_config([REPO / "config" / "config.yaml"])


@pytest.fixture(scope="module")
def wmt() -> dict:
    return resolve_config([REPO / "config" / "wmt14_en_de.yaml"])


def _bigger(config: dict, path: str, factor: int) -> dict:
    """`config` with the number at dotted `path` multiplied by `factor`."""
    bigger = copy.deepcopy(config)
    *parents, last = path.split(".")
    node = bigger
    for key in parents:
        node = node[key]
    node[last] *= factor
    return bigger


def test_runtime_has_a_floor_a_safety_factor_and_grows_with_the_attempt():
    assert est.runtime_minutes(0) == est.MIN_MINUTES
    assert est.runtime_minutes(3600) == 2 * (60 + 5)  # safety 2 on work + 5 min start-up
    assert est.runtime_minutes(3600, attempt=2) == 2 * est.runtime_minutes(3600)
    assert est.runtime_minutes(3600, attempt=3) == 3 * est.runtime_minutes(3600)
    assert est.per_attempt(10, 2) == 20
    assert est.memory_mb(8000) == 8000 and est.memory_mb(8000, 2) == 12000


# (estimate of a config, the config key that sets the job's size)
ESTIMATES = [
    (lambda c, a: est.train_minutes(c, c["supernet"], True, a), "supernet.max_updates"),
    (lambda c, a: est.train_minutes(c, c["train"], True, a), "train.max_tokens"),
    (lambda c, a: est.search_minutes(c, "hat", True, a), "search.population"),
    (lambda c, a: est.supernet_scoring_minutes(c, 3000, True, a), "evaluate.valid_sentences"),
    (lambda c, a: est.latency_dataset_minutes(c, "gpu", a), "latency.dataset_size"),
    (lambda c, a: est.latency_dataset_minutes(c, "cpu", a), "latency.runs"),
    (lambda c, a: est.score_minutes(c, False, a), "evaluate.beam"),
]


@pytest.mark.parametrize("estimate,key", ESTIMATES, ids=[key for _, key in ESTIMATES])
def test_each_estimate_grows_with_its_size_and_the_attempt(wmt, estimate, key):
    config = copy.deepcopy(wmt)
    config["evaluate"]["valid_sentences"] = 1000
    once = estimate(config, 1)
    assert estimate(_bigger(config, key, 4), 1) > once > est.MIN_MINUTES
    assert estimate(config, 2) == 2 * once


def test_a_gpu_trains_faster_than_the_cpu_and_a_subnet_faster_than_the_largest(wmt):
    settings = wmt["train"]
    assert est.train_minutes(wmt, settings, False) > 10 * est.train_minutes(wmt, settings, True)
    smallest = get_space(wmt["space"]).smallest()
    assert est.train_minutes(wmt, settings, True, arch=smallest) < est.train_minutes(
        wmt, settings, True
    )


def test_the_demo_estimates_cover_its_measured_jobs(demo):
    """The demo's benchmarks (2-core VM, busy, minutes): each estimate is above the measured
    time and within the safety factor's reach of it, not hours off."""
    measured = {
        "supernet": (est.train_minutes(demo, demo["supernet"], False), 4.5),
        "search": (est.search_minutes(demo, "hat", False), 1.6),
        "latency": (est.latency_dataset_minutes(demo, "cpu"), 2.0),
        "proxy": (est.proxy_check_minutes(demo), 3.0),
    }
    for name, (estimate, minutes) in measured.items():
        assert minutes < estimate < 60, (name, estimate, minutes)


def test_lts_estimates_count_candidates_and_screening(demo):
    lts = copy.deepcopy(demo["lts"])
    search = lts["search"]
    full = search["population"] + search["iterations"] * (
        search["mutations"] + search["crossovers"]
    )
    assert est.lts_candidates(lts) == full
    bigger = _bigger(lts, "search.iterations", 10)
    assert est.lts_search_minutes(bigger) > est.lts_search_minutes(lts)
    lts["screen"] = {"enabled": True, "initial": 8, "budget": 1}
    assert est.lts_candidates(lts) == min(full, 8 + search["iterations"])
    export = {**demo["lts"], "measure": {"graphs": "export"}}
    assert est.lts_measure_seconds(export) > est.lts_measure_seconds(demo["lts"])


def test_text_prediction_scales_with_steps_and_models(demo):
    once = est.text_prediction_minutes(demo, "pretrain", 1)
    longer = _bigger(demo, "text_prediction.pretrain.steps", 1000)
    assert est.text_prediction_minutes(longer, "pretrain", 1) > once
    assert est.text_prediction_minutes(longer, "pretrain", 4) > est.text_prediction_minutes(
        longer, "pretrain", 1
    )
    assert est.text_prediction_models(demo, "baseline") == 1
    heads = len(demo["lts"]["selection"]["heads"])
    assert (
        est.text_prediction_models(demo, "candidates") == demo["lts"]["selection"]["limit"] * heads
    )


def test_llm_labels_cost_time_only_with_a_real_provider(demo):
    offline = est.llm_label_minutes(demo, "offline", 3000)
    config = copy.deepcopy(demo)
    config["llm"]["predictors"] = [{**demo["llm"]["predictors"][0], "provider": "openai"}]
    name = config["llm"]["predictors"][0]["name"]
    assert est.llm_label_minutes(config, name, 3000) > 10 * offline


def test_a_placement_becomes_the_slurm_plugins_resources():
    assert est.slurm_placement(None) == {} == est.slurm_placement({"exclusive": False})
    assert est.slurm_placement({"partition": "gpu", "constraint": "a100", "exclusive": True}) == {
        "slurm_partition": "gpu",
        "constraint": "a100",
        "slurm_extra": "--exclusive",
    }


def test_placements_are_validated(wmt):
    config = copy.deepcopy(wmt)
    config["latency"]["targets"]["gpu"]["slurm"] = {"partition": "gpu", "exclusive": True}
    with pytest.raises(ConfigError, match=r"latency\.targets\.cpu\.slurm\.partition: needed"):
        validate_config(copy.deepcopy(config))
    config["latency"]["targets"]["cpu"]["slurm"] = {"partition": "cpu", "constraint": "epyc"}
    validate_config(copy.deepcopy(config))
    config["latency"]["targets"]["cpu"]["slurm"]["nodes"] = 2
    with pytest.raises(
        ConfigError, match=r"unknown config key latency\.targets\.cpu\.slurm\.nodes"
    ):
        validate_config(copy.deepcopy(config))
    config = copy.deepcopy(wmt)
    config["lts"]["slurm"] = {"exclusive": "yes"}
    with pytest.raises(ConfigError, match=r"lts\.slurm\.exclusive"):
        validate_config(config)


def test_the_measurement_never_sees_the_placement(wmt):
    from nasflow.cli.latency import target_settings

    config = copy.deepcopy(wmt)
    config["latency"]["targets"]["gpu"]["slurm"] = {"partition": "gpu"}
    assert target_settings(config, "gpu") == {"device": "cuda", "backend": "torch", "threads": 1}

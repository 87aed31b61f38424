"""The labelling jobs a config runs, as the workflow's rules run them (llm_pp_predict,
llm_pp_robustness_predict, distill_dataset): their `--config-json` sections and arguments.
Standard library and the config resolver only: the workflow imports this at parse time, and
`nasflow llm-pp estimate` walks the same list."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nasflow.config.resolve import resolve_tfs_eval_dir

# The distill entries `nasflow distill dataset` reads (its --config-json).
DISTILL_DATASET_KEYS = ("llm", "variant", "demonstrations", "archs_file", "num_archs", "batch_api")


def llm_job_section(
    config: Mapping[str, Any],
    name: str,
    tasks: Sequence[str] | None = None,
    robustness: bool = False,
) -> dict[str, Any]:
    """The `llm` section one job of setup `name` reads (its `--config-json`): that entry of
    llm.predictors, the shared settings, the llm.task_example_corpora of `tasks` (none without
    them) and, for the robustness run, llm.robustness_samples. Other setups, prompt variants
    and demonstrations are left out: adding one reruns no job of the others."""
    unread = ("variants", "demonstrations", "robustness_samples", "task_example_corpora")
    llm = {k: v for k, v in config["llm"].items() if k not in unread}
    entries = {entry["name"]: entry for entry in config["llm"]["predictors"]}
    llm["predictors"] = [entries[name]]
    if tasks is not None:
        corpora = config["llm"].get("task_example_corpora") or {}
        llm["task_example_corpora"] = {task: corpora[task] for task in tasks if task in corpora}
    if robustness:
        llm["robustness_samples"] = config["llm"]["robustness_samples"]
    return llm


def dataset_job_config(config: Mapping[str, Any], llm: str) -> dict[str, Any]:
    """The `--config-json` sections of `distill dataset` for setup `llm` (distill.batch_api
    only when on, so that existing jobs' commands stay as they were)."""
    distill = {key: config["distill"][key] for key in DISTILL_DATASET_KEYS}
    if not distill["batch_api"]:
        del distill["batch_api"]
    return {
        "experiment": config["experiment"],
        "seed": config["seed"],
        "distill": distill,
        "llm": llm_job_section(config, llm),
    }


def main_prompt(config: Mapping[str, Any], scope_demonstrations: Sequence[int]) -> tuple[str, int]:
    """(variant, demonstrations) of Table 11 and the robustness run: the full prompt (else the
    last configured variant) with the most demonstrations."""
    variants = config["llm"]["variants"]
    return ("full" if "full" in variants else variants[-1]), max(scope_demonstrations)


@dataclass(frozen=True)
class PlannedJob:
    """One labelling job of a config: its rule and wildcards (`name`), the command
    (`predict` or `dataset`) with its arguments, and whether its input set exists."""

    name: str
    command: str
    argv: list[str]
    tfs_eval: Path
    upper_bound: int  # requests at most, when the input set is not built yet


def planned_jobs(config: Mapping[str, Any], mirror: str | None) -> list[PlannedJob]:
    """Every labelling job the workflow runs for `config` (a resolved, validated config), as
    the rules llm_pp_predict, llm_pp_robustness_predict and distill_dataset call them."""
    if "hsnas" not in config["chains"]:
        return []
    exp = config["experiment"]
    names = [entry["name"] for entry in config["llm"]["predictors"]]
    scopes: list[tuple[str, Path | None, list[str], list[int]]] = []
    paper_dir = resolve_tfs_eval_dir(dict(config), mirror)
    if config["paper"]["enabled"] and paper_dir is not None:
        scopes.append(
            ("paper", paper_dir, list(config["paper"]["tasks"]), config["paper"]["demonstrations"])
        )
    own = Path("results", exp, "tfs_eval")
    has_set = config["tfs"]["num_archs"] >= 2
    if has_set:
        scopes.append((exp, own, [exp], config["llm"]["demonstrations"]))
    tfs = config["tfs"]
    seeds = len(tfs["split_seeds"])
    test_archs = tfs["num_archs"] - (tfs.get("train_archs") or tfs["num_archs"] // 3)
    jobs: list[PlannedJob] = []
    for scope, folder, tasks, demonstrations in scopes:
        assert folder is not None
        runs = [
            (n, v, k, False)
            for n in names
            for v in config["llm"]["variants"]
            for k in demonstrations
        ]
        variant, k = main_prompt(config, demonstrations)
        runs += [(n, variant, k, True) for n in names]
        for name, variant, k, robust in runs:
            section = llm_job_section(config, name, tasks, robustness=robust)
            argv = ["--config-json", json.dumps({"llm": section}, sort_keys=True)]
            argv += ["--llm", name, "--tfs-eval", str(folder), "--task", *tasks]
            argv += ["--variant", variant, "--demonstrations", str(k)]
            samples = config["llm"]["robustness_samples" if robust else "samples"]
            if robust:
                argv.append("--robustness")
                job = f"llm_pp_robustness_predict {scope}/{name}"
            else:
                job = f"llm_pp_predict {scope}/{name}/{variant}-k{k}"
            bound = seeds * test_archs * samples
            jobs.append(PlannedJob(job, "predict", argv, folder, bound))
    if has_set:
        llm = config["distill"]["llm"]
        job_config = json.dumps(dataset_job_config(config, llm), sort_keys=True)
        bound = config["distill"]["num_archs"] * config["llm"]["samples"]
        for split in tfs["split_seeds"]:
            argv = ["--config-json", job_config, "--tfs-eval", str(own), "--llm", llm]
            argv += ["--seed", str(split)]
            jobs.append(
                PlannedJob(f"distill_dataset {llm}/seed{split}", "dataset", argv, own, bound)
            )
    return jobs

"""Every shipped config, dry-run from the repository root as the README tells a user to: the
planned jobs carry exactly the file's settings (plus the schema defaults), nothing else."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from nasflow.config.resolve import read_yaml, resolve_config

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CONFIGS = sorted(p.name for p in (REPO / "config").glob("*.yaml"))
PAPER_CONFIGS = ("wmt14_en_de.yaml", "wmt14_en_fr.yaml", "wmt19_en_de.yaml")
pytestmark = pytest.mark.workflow


def run_from_root(*args: str, mirror: Path | None) -> subprocess.CompletedProcess:
    """A command run in the repository root, with this virtualenv first on PATH."""
    env = {k: v for k, v in os.environ.items() if k != "NASFLOW_MIRROR"}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    if mirror is not None:
        env["NASFLOW_MIRROR"] = str(mirror)
    return subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def planned_jobs(stdout: str) -> list[dict[str, str]]:
    """The jobs of a dry run (`-n -p`): rule, wildcards and shell command of each."""
    jobs: list[dict[str, str]] = []
    for line in stdout.splitlines():
        if line.startswith(("rule ", "localrule ")) and line.endswith(":"):
            jobs.append({"rule": line.split()[1].rstrip(":")})
        elif jobs and line.strip().startswith("wildcards:"):
            jobs[-1]["wildcards"] = line.split(":", 1)[1].strip()
        elif jobs and line.startswith("Shell command:"):
            jobs[-1]["shell"] = line.split(":", 1)[1].strip()
    return jobs


def option(shell: str, name: str) -> str:
    """The value of `--name` in a shell command."""
    words = shlex.split(shell.split(">")[0])
    return words[words.index(name) + 1]


def dry_run(config: str, mirror: Path | None) -> list[dict[str, str]]:
    result = run_from_root(
        str(BIN / "snakemake"), "-n", "-p", "--configfile", f"config/{config}", mirror=mirror
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return planned_jobs(result.stdout)


_MIRROR = Path(os.environ.get("NASFLOW_MIRROR") or REPO.parent / "shared" / "data")
MIRROR = _MIRROR if _MIRROR.is_dir() else None


@pytest.fixture(scope="module")
def plans() -> dict[str, list[dict[str, str]]]:
    """Dry runs of every shipped config (once per module), with the data mirror when present."""
    return {config: dry_run(config, MIRROR) for config in CONFIGS}


@pytest.mark.parametrize("config", CONFIGS)
def test_a_dry_run_plans_what_the_file_says(config, plans):
    resolved = resolve_config([REPO / "config" / config])
    raw = read_yaml(REPO / "config" / config)
    jobs = plans[config]
    counts = Counter(job["rule"] for job in jobs)
    chains = resolved["chains"]
    assert chains == raw.get("chains", ["hsnas"])
    if "lts" not in chains:  # no foreign chain
        assert not [rule for rule in counts if rule.startswith("lts")], counts
    if "hsnas" not in chains:
        lts_rules = ("lts", "text_prediction")
        assert all(rule.startswith(lts_rules) for rule in set(counts) - {"all", "results_page"}), (
            counts
        )
        if MIRROR is None:  # no text corpus: the LTS chain is skipped (tested in test_workflow)
            return
        assert {"lts_search", "lts_case_study", "lts_proxy_check"} <= set(counts), counts
        (search,) = [job for job in jobs if job["rule"] == "lts_search"]
        planned = json.loads(option(search["shell"], "--config-json"))["lts"]
        assert planned["search"] == resolved["lts"]["search"] == raw["lts"]["search"]
        check_text_prediction_plan(jobs, resolved, raw)
        return
    # TFS-Eval: one training per architecture of the file.
    assert counts["train_arch"] == counts["score_arch"] == resolved["tfs"]["num_archs"]
    # The searches: each method of `run` under each constraint of the file, for each seed.
    search = resolved["search"]
    runs = [
        (method, constraint, seed)
        for method in search["run"]
        for constraint in search["constraints"]
        for seed in search["method_seeds"].get(method, search["seeds"])
    ]
    assert counts["run_search"] == counts["train_final"] == counts["measure_final"] == len(runs)
    if "search" in raw and "constraints" in raw["search"]:
        assert set(search["constraints"]) == set(raw["search"]["constraints"])
    for job in (job for job in jobs if job["rule"] == "run_search"):
        method, constraint = option(job["shell"], "--method"), option(job["shell"], "--constraint")
        planned = json.loads(option(job["shell"], "--config-json"))["search"]
        for key in ("population", "parents", "mutations", "crossovers", "mutation_prob"):
            assert planned[key] == search[key] == raw.get("search", {}).get(key, search[key])
        assert planned["methods"] == {method: search["methods"][method]}
        assert planned["constraints"] == {constraint: search["constraints"][constraint]}
        target = search["latency_target"]
        assert f"latency/{target}/predictor/model.pt" in job["shell"]
    check_supernet_plan(jobs, resolved)
    check_table1_plan(jobs, resolved)
    # The latency targets of the file, each measured and fit once.
    assert counts["latency_dataset"] == len(resolved["latency"]["targets"])
    # LLM-PP and the distillation prompts show the demonstrations the file asks for.
    ks = sorted(
        {
            json.loads(option(j["shell"], "--config-json"))["distill"]["demonstrations"]
            for j in jobs
            if j["rule"] == "distill_dataset"
        }
    )
    assert ks == [resolved["distill"]["demonstrations"]]


def test_the_paper_configs_are_the_paper_setup(plans):
    for config in PAPER_CONFIGS:
        resolved = resolve_config([REPO / "config" / config])
        counts = Counter(job["rule"] for job in plans[config])
        assert resolved["chains"] == ["hsnas"]
        assert resolved["tfs"]["num_archs"] == 30 and resolved["tfs"]["train_archs"] == 10
        assert resolved["llm"]["demonstrations"] == [10]
        assert resolved["distill"]["demonstrations"] == 10
        assert resolved["distill"]["num_archs"] == 3000
        search = resolved["search"]
        assert (search["population"], search["parents"]) == (125, 25)
        assert (search["mutations"], search["crossovers"], search["mutation_prob"]) == (50, 50, 0.3)
        assert search["methods"]["hat"] == {"iterations": 30, "default": "supernet"}
        assert search["methods"]["hsnas"]["segments"] == [
            {"predictor": "distill", "start": 1, "end": 15}
        ]
        assert search["latency_target"] == "gpu"
        assert resolved["latency"]["targets"]["gpu"]["device"] == "cuda"
        assert {"latency-100ms", "latency-150ms", "latency-200ms"} <= set(search["constraints"])
        assert search["constraints"]["gflops-3.0"] == {"gflops": 3.0}  # Tables 13/14
        assert search["method_seeds"] == {"hsnas": [1, 2, 3]}  # Table 12
        assert counts["train_arch"] == 30
        # Each method under each constraint; HS-NAS with three seeds, HAT with one.
        budgets = len(search["constraints"])
        assert counts["run_search"] == counts["train_final"] == budgets * (1 + 3)
        assert counts["search_tables"] == 1
        assert not any(rule.startswith("lts") for rule in counts)


def test_the_demo_is_not_merged_under_a_paper_config(plans):
    """`--configfile X` is X plus the schema defaults: none of the demo's settings leak in."""
    demo = read_yaml(REPO / "config" / "config.yaml")
    for job in plans["wmt14_en_de.yaml"]:
        assert "latency-8ms" not in job.get("shell", "") + job.get("wildcards", "")
        if job["rule"] == "run_search":
            planned = json.loads(option(job["shell"], "--config-json"))
            assert planned["search"]["population"] != demo["search"]["population"]
            assert (
                planned["train"]["save_interval_updates"] != demo["train"]["save_interval_updates"]
            )


@pytest.mark.parametrize("config", ["wmt14_en_de.yaml", "lts_gpt2.yaml"])
def test_config_show_agrees_with_the_workflow(config):
    """`nasflow config show` resolves a config with the same function as the Snakefile."""
    shown = run_from_root(
        str(BIN / "nasflow"), "config", "show", "--config", f"config/{config}", mirror=None
    )
    assert shown.returncode == 0, shown.stderr
    assert yaml.safe_load(shown.stdout) == resolve_config([REPO / "config" / config])


def test_without_a_config_file_the_demo_runs():
    result = run_from_root(str(BIN / "snakemake"), "-n", "-p", mirror=None)
    assert result.returncode == 0, result.stderr[-2000:]
    counts = Counter(job["rule"] for job in planned_jobs(result.stdout))
    demo = resolve_config([REPO / "config" / "config.yaml"])
    assert counts["train_arch"] == demo["tfs"]["num_archs"]
    # Without the mirror the LTS chain has no text corpus: skipped, with the reason.
    assert counts["lts_search"] == 0 and "skipping the LTS chain" in result.stderr


def check_supernet_plan(jobs: list[dict[str, str]], resolved: dict) -> None:
    """One supernet per kind the file names (supernet.kind, supernet.compare, the run methods'
    own), each job with its own kind and no `compare`; all scored by supernet_quality; every
    search scored by its method's kind."""
    section, search = resolved["supernet"], resolved["search"]
    run_kinds = [search["methods"][m].get("supernet", section["kind"]) for m in search["run"]]
    kinds = list(dict.fromkeys([section["kind"], *section["compare"], *run_kinds]))
    trained = {}
    for job in (j for j in jobs if j["rule"] == "train_supernet"):
        planned = json.loads(option(job["shell"], "--config-json"))["supernet"]
        assert "compare" not in planned
        assert f"/supernet/{planned['kind']}/model.pt" in option(job["shell"], "--out")
        # gpus and nodes at 1 are left out of a job's config (its command is unchanged)
        expected = {
            k: v
            for k, v in section.items()
            if k != "compare" and not (k in ("gpus", "nodes") and v == 1)
        }
        if planned["kind"] == "hat":  # the mixture keys do not apply to it
            mixture = ("experts", "router_hidden", "router_dropout")
            expected = {k: v for k, v in expected.items() if k not in mixture}
        assert planned == {**expected, "kind": planned["kind"]}
        trained[planned["kind"]] = planned
    assert list(trained) == kinds or sorted(trained) == sorted(kinds), (trained, kinds)
    (quality,) = [j for j in jobs if j["rule"] == "supernet_quality"]
    words = shlex.split(quality["shell"].split(">")[0])
    models = words[words.index("--model") + 1 : words.index("--data")]
    assert sorted(models) == sorted(f"results/{resolved['experiment']}/supernet/{k}/model.pt"
                                    for k in kinds)  # fmt: skip
    for job in (j for j in jobs if j["rule"] == "run_search"):
        method = option(job["shell"], "--method")
        kind = search["methods"][method].get("supernet", section["kind"])
        assert option(job["shell"], "--supernet").endswith(f"/supernet/{kind}/model.pt")


def check_table1_plan(jobs: list[dict[str, str]], resolved: dict) -> None:
    """Table 1 carries calibrated rows (fit on the scope's largest k) and, as configured,
    zero-cost rows from the scope's scores file."""
    exp = resolved["experiment"]
    for job in (j for j in jobs if j["rule"] in ("llm_pp_evaluate", "table1_baselines")):
        paper = job["rule"] == "table1_baselines" or "results/paper/" in job["shell"]
        scope = "paper" if paper else exp
        section = resolved["paper" if scope == "paper" else "llm"]
        assert "--calibrate" in job["shell"].split()
        assert option(job["shell"], "--calibrate-demonstrations") == str(
            max(section["demonstrations"])
        )
        enabled = resolved["zero_cost"]["released" if scope == "paper" else "enabled"]
        assert ("--zero-cost" in job["shell"]) == enabled, job["shell"]
        if enabled:
            assert option(job["shell"], "--zero-cost") == f"results/{scope}/zero_cost/scores.csv"
    zero_cost = [j for j in jobs if j["rule"] == "zero_cost_scores"]
    for job in zero_cost:
        assert option(job["shell"], "--batch-tokens") == str(resolved["zero_cost"]["batch_tokens"])
        source = "--newstest" if "results/paper/" in job["shell"] else "--data"
        assert source in job["shell"]


def check_text_prediction_plan(jobs: list[dict[str, str]], resolved: dict, raw: dict) -> None:
    """The text_prediction target: both groups pretrained (the candidates from the case study),
    finetuned and run through the suggestion engine, each job with the file's settings."""
    counts = Counter(job["rule"] for job in jobs)
    for rule in ("pretrain", "finetune", "suggest"):
        assert counts[f"text_prediction_{rule}"] == 2, counts
    assert counts["text_prediction_latency"] == counts["text_prediction_tables"] == 1
    section = resolved["text_prediction"]
    for job in (j for j in jobs if j["rule"] == "text_prediction_pretrain"):
        planned = json.loads(option(job["shell"], "--config-json"))
        assert planned["text_prediction"] == section
        assert planned["lts"] == {"baseline": resolved["lts"]["baseline"]}
        group = option(job["shell"], "--group")
        assert ("--case-study" in job["shell"]) == (group == "candidates")
    for key in ("pretrain", "finetune"):
        for entry, value in raw.get("text_prediction", {}).get(key, {}).items():
            assert section[key][entry] == value
    (latency,) = [j for j in jobs if j["rule"] == "text_prediction_latency"]
    planned = json.loads(option(latency["shell"], "--config-json"))
    assert planned["lts"] == {"measure": resolved["lts"]["measure"]}


@pytest.mark.skipif(MIRROR is None, reason="the LTS chain needs the mirror's PTB text")
def test_the_demo_plans_both_chains(plans):
    counts = Counter(job["rule"] for job in plans["config.yaml"])
    assert counts["lts_search"] == counts["lts_text"] == counts["search_tables"] == 1

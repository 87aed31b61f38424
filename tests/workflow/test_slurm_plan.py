"""The shipped SLURM profile, dry-run on a paper config: each job's CPUs are its rule's threads
(the slurm plugin's --cpus-per-task), its runtime is the estimate from the config (bigger
config, longer; a retry, longer), and a latency target's placement reaches every job that
measures on it, and no other."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from nasflow.cluster import resources as est
from nasflow.config.resolve import resolve_config

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CONFIG = REPO / "config" / "wmt14_en_de.yaml"
pytestmark = pytest.mark.workflow
# Rules whose jobs time on a latency target (the search's target for measure_final).
MEASURING = ("latency_dataset", "measure_final")
# Rules whose jobs time on lts.measure's device.
LTS_MEASURING = ("lts_search", "lts_case_study", "text_prediction_latency")
_MIRROR = Path(os.environ.get("NASFLOW_MIRROR") or REPO.parent / "shared" / "data")
MIRROR = _MIRROR if (_MIRROR / "ptb").is_dir() else None


def dry_run(workdir: Path, config: Path, *extra: str, mirror: Path | None = None) -> list[dict]:
    """Jobs of a dry run with the SLURM profile: rule, wildcards, threads, resources, shell.
    A dry run caps threads at --cores (default 1), a cluster run does not: --cores 1024."""
    env = {k: v for k, v in os.environ.items() if k != "NASFLOW_MIRROR"}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    if mirror is not None:
        env["NASFLOW_MIRROR"] = str(mirror)
    result = subprocess.run(
        [str(BIN / "snakemake"), "--snakefile", str(REPO / "Snakefile"), "--directory",
         str(workdir), "-n", "-p", "--cores", "1024", "--configfile", str(config),
         "--workflow-profile", str(REPO / "profiles" / "slurm"), *extra],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    jobs: list[dict] = []
    for line in result.stdout.splitlines():
        if line.startswith(("rule ", "localrule ")) and line.endswith(":"):
            jobs.append({"rule": line.split()[1].rstrip(":"), "threads": 1, "resources": {}})
        elif jobs and line.startswith("    wildcards:"):
            jobs[-1]["wildcards"] = dict(
                item.split("=", 1) for item in line.split(":", 1)[1].strip().split(", ")
            )
        elif jobs and line.startswith("    threads:"):
            jobs[-1]["threads"] = int(line.split(":", 1)[1])
        elif jobs and line.startswith("    resources:"):
            items = line.split(":", 1)[1].strip().split(", ")
            jobs[-1]["resources"] = dict(item.split("=", 1) for item in items)
        elif jobs and line.startswith("Shell command:"):
            jobs[-1]["shell"] = line.split(":", 1)[1].strip()
    return jobs


def by_rule(jobs: list[dict], rule: str) -> list[dict]:
    found = [job for job in jobs if job["rule"] == rule]
    assert found, rule
    return found


def config_json(job: dict) -> dict:
    words = shlex.split(job["shell"].split(">")[0])
    return json.loads(words[words.index("--config-json") + 1])


@pytest.fixture(scope="module")
def plans(tmp_path_factory) -> dict[str, list[dict]]:
    """The shipped config; the same at attempt 2; and a bigger one (supernet and search
    doubled) whose latency targets name their placement."""
    workdir = tmp_path_factory.mktemp("slurm")
    raw = yaml.safe_load(CONFIG.read_text())
    raw["supernet"]["max_updates"] *= 2
    raw["search"].update(population=250, parents=50, mutations=100, crossovers=100)
    raw["latency"]["dataset_size"] = 4000
    raw["latency"]["targets"]["gpu"]["slurm"] = {
        "partition": "gpu-v100", "constraint": "v100", "exclusive": True,
    }  # fmt: skip
    raw["latency"]["targets"]["cpu"]["slurm"] = {"partition": "cpu-xeon", "constraint": "skylake"}
    bigger = workdir / "bigger.yaml"
    bigger.write_text(yaml.safe_dump(raw))
    return {
        "shipped": dry_run(workdir, CONFIG),
        "retry": dry_run(workdir, CONFIG, "--attempt", "2"),
        "bigger": dry_run(workdir, bigger),
    }


def test_cpus_per_task_is_each_rules_threads(plans):
    from snakemake_executor_plugin_slurm_jobstep import get_cpu_setting

    config = resolve_config([CONFIG])
    jobs = plans["shipped"]
    assert not [job["rule"] for job in jobs if "cpus_per_task" in job["resources"]]
    for rule in ("train_supernet", "train_arch", "run_search", "score_final", "prepare_data"):
        assert {job["threads"] for job in by_rule(jobs, rule)} == {config["threads"]}, rule
    for job in by_rule(jobs, "latency_dataset"):
        target = config["latency"]["targets"][job["wildcards"]["target"]]
        assert job["threads"] == target["threads"]
    # What the plugin makes of it (its sbatch line): --cpus-per-task = threads, GPU jobs too.
    for job in jobs:
        resources = SimpleNamespace(**job["resources"])
        resources.get = lambda key, default=None, r=resources: getattr(r, key, default)
        plugin_job = SimpleNamespace(threads=job["threads"], resources=resources)
        gpu = bool(int(job["resources"].get("gpu", 0)))
        assert get_cpu_setting(plugin_job, gpu) == f"--cpus-per-task={job['threads']}"


def runtime(job: dict) -> int:
    return int(job["resources"]["runtime"])


def test_runtimes_come_from_the_config_and_grow_with_it_and_the_attempt(plans):
    config = resolve_config([CONFIG])
    shipped, retry, bigger = plans["shipped"], plans["retry"], plans["bigger"]
    (supernet,) = by_rule(shipped, "train_supernet")
    assert runtime(supernet) == est.train_minutes(config, config["supernet"], True)
    for rule in ("train_supernet", "run_search", "latency_dataset"):
        assert min(map(runtime, by_rule(bigger, rule))) > max(map(runtime, by_rule(shipped, rule)))
    for rule in ("train_supernet", "train_arch", "run_search", "latency_dataset", "score_final"):
        once = sorted(map(runtime, by_rule(shipped, rule)))
        assert sorted(map(runtime, by_rule(retry, rule))) == [2 * m for m in once], rule
    # One training per TFS-Eval architecture, each estimated for its own size.
    assert len({runtime(job) for job in by_rule(shipped, "train_arch")}) > 1
    assert max(map(runtime, by_rule(shipped, "train_arch"))) <= runtime(supernet)


def test_a_latency_targets_placement_reaches_every_job_that_measures_on_it(plans):
    config = resolve_config([CONFIG])
    placed = {
        "gpu": {"slurm_partition": "gpu-v100", "constraint": "v100", "slurm_extra": "--exclusive"},
        "cpu": {"slurm_partition": "cpu-xeon", "constraint": "skylake"},
    }
    keys = ("slurm_partition", "constraint", "slurm_extra")
    measuring = [job for job in plans["bigger"] if job["rule"] in MEASURING]
    assert {job["rule"] for job in measuring} == set(MEASURING)
    for job in measuring:
        target = job["wildcards"].get("target", config["search"]["latency_target"])
        assert {k: v for k, v in job["resources"].items() if k in keys} == placed[target]
    others = [job for job in plans["bigger"] if job["rule"] not in MEASURING]
    assert not [job["rule"] for job in others if "constraint" in job["resources"]]
    # Placement is the scheduler's business: the jobs' commands (hence reruns) do not change.
    shipped = {
        job["wildcards"]["target"]: job for job in by_rule(plans["shipped"], "latency_dataset")
    }
    for job in by_rule(plans["bigger"], "latency_dataset"):
        before = config_json(shipped[job["wildcards"]["target"]])
        after = config_json(job)
        assert "slurm" not in json.dumps(after)
        assert {**after["latency"], "dataset_size": None} == {
            **before["latency"], "dataset_size": None,
        }  # fmt: skip
    # Without a placement, the profile's default partition.
    for job in by_rule(plans["shipped"], "latency_dataset"):
        assert job["resources"]["slurm_partition"] == "MY_CPU_PARTITION"
        assert "constraint" not in job["resources"] and "slurm_extra" not in job["resources"]


@pytest.mark.skipif(MIRROR is None, reason="the LTS chain needs a text corpus (NASFLOW_MIRROR)")
def test_lts_slurm_places_every_lts_measurement(tmp_path):
    raw = yaml.safe_load((REPO / "config" / "lts_gpt2.yaml").read_text())
    raw["lts"]["slurm"] = {"partition": "cpu-quiet", "exclusive": True}
    path = tmp_path / "lts.yaml"
    path.write_text(yaml.safe_dump(raw))
    jobs = dry_run(tmp_path, path, mirror=MIRROR)
    placed = {"slurm_partition": "cpu-quiet", "slurm_extra": "--exclusive"}
    measuring = [job for job in jobs if job["rule"] in LTS_MEASURING]
    assert {job["rule"] for job in measuring} == set(LTS_MEASURING)
    for job in jobs:
        resources = job["resources"]
        if job["rule"] in LTS_MEASURING:
            assert {k: resources.get(k) for k in placed} == placed, job["rule"]
            assert job["threads"] == raw["lts"]["measure"]["threads"]
        else:
            assert resources.get("slurm_partition") == "MY_CPU_PARTITION", job["rule"]
            assert "slurm_extra" not in resources, job["rule"]
    (search,) = by_rule(jobs, "lts_search")
    assert "slurm" not in config_json(search)["lts"]

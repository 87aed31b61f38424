"""A config with gpus / nodes > 1 plans its training jobs under torchrun (one node) or srun +
torchrun (several nodes, SLURM), asking for the GPUs of all nodes; scoring stays on one GPU."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.workflow


def _plan(stdout: str) -> dict[str, dict[str, str]]:
    """Rule -> the `resources` line and `shell` command of its first job in a dry run."""
    jobs: dict[str, dict[str, str]] = {}
    job = None
    for line in stdout.splitlines():
        if line.startswith(("rule ", "localrule ")) and line.endswith(":"):
            rule = line.split()[1].rstrip(":")
            job = None if rule in jobs else jobs.setdefault(rule, {})
        elif job is not None and line.strip().startswith(("resources:", "Shell command:")):
            key, value = line.strip().split(":", 1)
            job["resources" if key == "resources" else "shell"] = value.strip()
    return jobs


def test_gpus_and_nodes_plan_torchrun_jobs(tmp_path: Path) -> None:
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["experiment"] = "t"
    config["supernet"].update(gpus=4, nodes=2)
    config["train"]["gpus"] = 2
    path = tmp_path / "ddp.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if k != "NASFLOW_MIRROR"}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    result = subprocess.run(
        [str(BIN / "snakemake"), "--snakefile", str(REPO / "Snakefile"), "--directory",
         str(tmp_path), "-n", "-p", "supernet", "tfs", "--configfile", str(path),
         "--workflow-profile", str(REPO / "profiles" / "slurm")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = _plan(result.stdout)

    supernet = shlex.split(jobs["train_supernet"]["shell"])
    assert supernet[:3] == ["srun", "--nodes=2", "--ntasks-per-node=1"]
    assert "torchrun --nnodes=2 --nproc-per-node=4" in supernet[5]
    assert supernet[7:10] == ["nasflow", "supernet", "train"]
    settings = json.loads(supernet[supernet.index("--config-json") + 1])["supernet"]
    assert (settings["gpus"], settings["nodes"]) == (4, 2)
    resources = jobs["train_supernet"]["resources"]
    for item in ("gpu=8", "nodes=2", "mpi=srun", "tasks=2", "tasks_per_gpu=0"):
        assert item in resources.split(", "), (item, resources)

    arch = shlex.split(jobs["train_arch"]["shell"])
    assert arch[:8] == ["torchrun", "--standalone", "--nnodes=1", "--nproc-per-node=2",
                        "--no-python", "nasflow", "arch", "train"]  # fmt: skip
    train = json.loads(arch[arch.index("--config-json") + 1])["train"]
    assert train["gpus"] == 2 and "nodes" not in train  # a default 1 is left out
    assert "gpu=2" in jobs["train_arch"]["resources"].split(", ")
    assert "nodes=" not in jobs["train_arch"]["resources"]
    assert "gpu=1" in jobs["score_arch"]["resources"].split(", ")
    assert shlex.split(jobs["score_arch"]["shell"])[:3] == ["nasflow", "arch", "score"]

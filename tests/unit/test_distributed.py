"""Data-parallel training on the CPU (gloo, 2 processes started by torchrun): 2 ranks x
update_freq k train the weights of 1 rank x update_freq 2k; resuming across a changed world size
that keeps the effective batch; the helpers of `nasflow.train.distributed`."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from nasflow.cli import main
from nasflow.config.resolve import load_config
from nasflow.core.errors import ConfigError
from nasflow.core.state import TrainStateError
from nasflow.model import ModelConfig
from nasflow.model.checkpoint import load_model
from nasflow.train.distributed import (
    SINGLE,
    Distributed,
    check_world_size,
    from_environment,
    launch_command,
)
from nasflow.train.loop import Trainer
from nasflow.train.settings import TrainSettings

pytestmark = pytest.mark.usefixtures("one_thread")

# Dropout 0: every rank draws dropout masks from the same stream, so only without dropout are
# the two layouts equal weight for weight.
SUPERNET = {
    "sampling": "spos",
    "max_updates": 4,
    "warmup_updates": 1,
    "max_tokens": 300,
    "save_interval_updates": 2,
    "valid_interval_updates": 0,
    "valid_sentences": 20,
    "log_interval_updates": 1,
    "clip_norm": 1.0,
    "device": "cpu",
}


def _config(folder: Path, update_freq: int, gpus: int) -> Path:
    config = {
        "experiment": "ddp",
        "space": "demo",
        "threads": 1,
        "seed": 5,
        "data": {"corpus": "multi30k", "source_lang": "en", "target_lang": "de"},
        "model": {"dropout": 0.0, "attention_dropout": 0.0, "max_positions": 64},
        "supernet": {**SUPERNET, "update_freq": update_freq, "gpus": gpus},
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"config-uf{update_freq}-gpus{gpus}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _train_args(config: Path, data: Path, out: Path, state: Path) -> list[str]:
    return ["supernet", "train", "--config", str(config), "--data", str(data),
            "--out", str(out), "--curve", str(out.with_suffix(".csv")),
            "--state-dir", str(state), "--no-progress"]  # fmt: skip


def _torchrun(args: list[str], gpus: int) -> subprocess.CompletedProcess[str]:
    """`nasflow ARGS` under torchrun, as the workflow starts it (launch_command)."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["OMP_NUM_THREADS"] = "1"
    command = launch_command(gpus, 1) + args
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def _weights(path: Path) -> dict[str, Any]:
    model, meta = load_model(path)
    return {"updates": meta["updates"], **model.state_dict()}


def _losses(curve: Path) -> list[float]:
    rows = list(csv.DictReader(curve.open()))
    return [float(row["train_loss"]) for row in rows]


@pytest.fixture(scope="module")
def reference(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One process, update_freq 2, trained to the end."""
    folder = tmp_path_factory.mktemp("one-rank")
    out = folder / "model.pt"
    config = _config(folder, update_freq=2, gpus=1)
    assert main(_train_args(config, tiny_data, out, folder / "state")) == 0
    return {**_weights(out), "losses": _losses(out.with_suffix(".csv"))}


def _assert_same_weights(actual: dict[str, Any], expected: dict[str, Any]) -> None:
    assert actual["updates"] == expected["updates"] == 4
    assert actual.keys() == expected.keys() - {"losses"}
    for key, value in actual.items():
        torch.testing.assert_close(value, expected[key], atol=1e-5, rtol=1e-4, msg=key)


def test_two_ranks_match_one_rank_with_twice_the_update_freq(
    tiny_data: Path, tmp_path: Path, reference: dict[str, Any]
) -> None:
    out = tmp_path / "model.pt"
    config = _config(tmp_path, update_freq=1, gpus=2)
    result = _torchrun(_train_args(config, tiny_data, out, tmp_path / "state"), gpus=2)
    assert "done: 4 updates" in result.stderr + result.stdout
    assert "on 2 process(es)" in result.stderr + result.stdout
    _assert_same_weights(_weights(out), reference)
    # The logged losses are the whole update's (summed over the ranks), and they fall.
    losses = _losses(out.with_suffix(".csv"))
    assert losses == pytest.approx(reference["losses"], abs=2e-4) and len(losses) == 4
    assert losses[-1] < losses[0]
    _, meta = load_model(out)
    assert meta["world_size"] == 2 and meta["settings"]["gpus"] == 2


def _interrupted(data: Path, config_path: Path, state: Path, stop_after: int) -> None:
    """A one-process run of `config_path` killed after `stop_after` updates (state saved)."""
    config = load_config(config_path)
    Trainer(
        data,
        TrainSettings.from_config(config, "supernet"),
        space=config["space"],
        model_config=ModelConfig.from_mapping(config["model"]),
        state_dir=state,
        progress=False,
    ).run(stop_after=stop_after)


def test_resume_across_world_size_keeps_the_effective_batch(
    tiny_data: Path, tmp_path: Path, reference: dict[str, Any]
) -> None:
    state = tmp_path / "state"
    _interrupted(tiny_data, _config(tmp_path, update_freq=2, gpus=1), state, stop_after=2)
    assert torch.load(state / "state.pt", weights_only=True)["updates"] == 2
    out = tmp_path / "model.pt"
    config = _config(tmp_path, update_freq=1, gpus=2)
    result = _torchrun(_train_args(config, tiny_data, out, state), gpus=2)
    logs = result.stderr + result.stdout
    assert "at update 2 (saved by 1 process(es) x update_freq 2)" in logs
    _assert_same_weights(_weights(out), reference)
    saved = torch.load(state / "state.pt", weights_only=True)
    assert (saved["updates"], saved["world_size"], saved["update_freq"]) == (4, 2, 1)


def test_a_changed_effective_batch_is_refused(tiny_data: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    _interrupted(tiny_data, _config(tmp_path, update_freq=2, gpus=1), state, stop_after=2)
    with pytest.raises(TrainStateError, match=r"2 micro-batches per update, this run 1 "
                       r"\(update_freq 1 x gpus 1 x nodes 1\)"):  # fmt: skip
        _interrupted(tiny_data, _config(tmp_path, update_freq=1, gpus=1), state, stop_after=3)


def test_gpus_without_torchrun_are_refused(tiny_data: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"gpus=2 x nodes=1 need 2 process\(es\), but 1 were"):
        _interrupted(tiny_data, _config(tmp_path, update_freq=1, gpus=2), tmp_path / "s", 1)


def test_settings_fingerprint_keeps_the_effective_batch() -> None:
    two = TrainSettings(mode="spos", update_freq=1, gpus=2)
    one = TrainSettings(mode="spos", update_freq=2)
    assert two.world_size == 2 and two.effective_update_freq == one.effective_update_freq == 2
    assert two.result_relevant() == one.result_relevant()
    assert one.result_relevant()["update_freq"] == 2 and "gpus" not in one.result_relevant()
    assert TrainSettings(mode="spos", update_freq=4).result_relevant() != one.result_relevant()
    with pytest.raises(ConfigError, match="nodes: must be >= 1"):
        TrainSettings(nodes=0)


def test_environment_shards_and_launch_commands() -> None:
    assert from_environment({}) is SINGLE and not SINGLE.active and SINGLE.is_main
    env = {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}
    dist = from_environment(env)
    assert (dist.rank, dist.world_size, dist.is_main, dist.active) == (1, 2, False, True)
    assert dist.shard([0, 1, 2, 3]) == [2, 3] and Distributed(0, 2).shard([0, 1, 2, 3]) == [0, 1]
    with pytest.raises(ValueError, match="3 micro-batches do not split over 2"):
        dist.shard([0, 1, 2])
    with pytest.raises(ConfigError, match="RANK='x'"):
        from_environment({**env, "RANK": "x"})
    with pytest.raises(ConfigError, match="do not fit"):
        from_environment({**env, "RANK": "2"})
    check_world_size(dist, 2, 1)
    with pytest.raises(ConfigError, match="gpus=4 x nodes=1 need 4"):
        check_world_size(dist, 4, 1)
    assert launch_command(1, 1) == ["nasflow"]
    assert launch_command(2, 1) == [
        "torchrun", "--standalone", "--nnodes=1", "--nproc-per-node=2", "--no-python", "nasflow"
    ]  # fmt: skip
    multi = launch_command(8, 2)
    assert multi[:3] == ["srun", "--nodes=2", "--ntasks-per-node=1"] and multi[-1] == "nasflow"
    assert "torchrun --nnodes=2 --nproc-per-node=8 --rdzv-backend=c10d" in multi[5]

"""Data-parallel training over the processes `torchrun` starts (one per GPU, or per CPU slot).

An update consumes `update_freq x world_size` micro-batches: every rank draws the same global
group from the (identically seeded) batch order, takes its contiguous slice of `update_freq`,
and trains the same subnet on it (the sampler is a function of the seed and the update number).
The loss is normalised by the update's global target-token count (all-reduced before backward)
and the gradients are summed over ranks, so W ranks x `update_freq` k compute the same update as
one rank x `update_freq` W*k, up to the order of float additions.

Why no `DistributedDataParallel` wrapper: it averages gradients (a factor W off this loss
normalisation), must be told `find_unused_parameters=True` because the active subnet (depth,
widths, MoS routers) changes every update, and overlaps its all-reduce with backward of
*every* micro-batch unless each but the last runs under `no_sync`. One explicit sum over the
gradients that exist, after the last micro-batch, is exact, needs no unused-parameter search
(every rank trains the same subnet, so the same parameters have gradients) and keeps one rank
bit-identical to the single-process loop: with world size 1 nothing here communicates.

Rank 0 alone validates and writes state, curves and models; the others wait at a barrier.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import shlex
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

import torch
import torch.distributed as torch_dist

from nasflow.core.device import resolve_device
from nasflow.core.errors import ConfigError

T = TypeVar("T")
ENV_KEYS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")
# Rank 0 validates and saves while the others wait in their next collective.
TIMEOUT = datetime.timedelta(hours=2)
RDZV_PORT = 29500


@dataclass(frozen=True)
class Distributed:
    """This process's place among the training processes (world size 1: no torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    device: torch.device | None = None  # set by `process_group`

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def shard(self, group: Sequence[T]) -> list[T]:
        """This rank's contiguous slice of an update's micro-batches (equal slices)."""
        if len(group) % self.world_size:
            raise ValueError(f"{len(group)} micro-batches do not split over {self.world_size}")
        size = len(group) // self.world_size
        return list(group[self.rank * size : (self.rank + 1) * size])

    def sum(self, values: Sequence[float]) -> list[float]:
        """`values` summed over ranks (float64; unchanged at world size 1)."""
        if not self.active:
            return [float(v) for v in values]
        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        torch_dist.all_reduce(tensor)
        return tensor.tolist()

    def sum_gradients(self, parameters: Iterable[torch.nn.Parameter]) -> None:
        """Replace each existing gradient by its sum over ranks (one flat buffer per dtype)."""
        if not self.active:
            return
        by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
        for param in parameters:
            if param.grad is not None:
                by_dtype.setdefault(param.grad.dtype, []).append(param.grad)
        for grads in by_dtype.values():
            flat = torch.cat([grad.reshape(-1) for grad in grads])
            torch_dist.all_reduce(flat)
            for grad, chunk in zip(grads, flat.split([g.numel() for g in grads]), strict=True):
                grad.copy_(chunk.view_as(grad))

    def same_on_every_rank(self, text: str) -> bool:
        """Whether every rank holds the same `text` (a CRC32 gathered from each)."""
        if not self.active:
            return True
        mine = torch.tensor([zlib.crc32(text.encode("utf-8"))], dtype=torch.int64)
        mine = mine.to(self.device)
        gathered = [torch.zeros_like(mine) for _ in range(self.world_size)]
        torch_dist.all_gather(gathered, mine)
        return all(int(value) == int(mine) for value in gathered)

    def barrier(self) -> None:
        if self.active:
            torch_dist.barrier()


SINGLE = Distributed()


def from_environment(env: Mapping[str, str] | None = None) -> Distributed:
    """The ranks `torchrun` set (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE); none: one
    process. A value that is not a fitting integer is an error naming the variable."""
    env = os.environ if env is None else env
    if "WORLD_SIZE" not in env:
        return SINGLE
    values = {}
    for key in ENV_KEYS:
        raw = env.get(key, "1" if key == "LOCAL_WORLD_SIZE" else "0")
        try:
            values[key] = int(raw)
        except ValueError:
            raise ConfigError(f"environment variable {key}={raw!r}: not an integer") from None
    dist = Distributed(
        values["RANK"], values["WORLD_SIZE"], values["LOCAL_RANK"], values["LOCAL_WORLD_SIZE"]
    )
    if not 0 <= dist.rank < dist.world_size or not 0 <= dist.local_rank < dist.local_world_size:
        raise ConfigError(
            f"environment RANK={dist.rank}, LOCAL_RANK={dist.local_rank} do not fit "
            f"WORLD_SIZE={dist.world_size}, LOCAL_WORLD_SIZE={dist.local_world_size}"
        )
    return dist


def check_world_size(dist: Distributed, gpus: int, nodes: int) -> None:
    """Refuse a run whose process count is not the config's `gpus x nodes`."""
    if dist.world_size != gpus * nodes:
        raise ConfigError(
            f"training settings gpus={gpus} x nodes={nodes} need {gpus * nodes} process(es), "
            f"but {dist.world_size} were started (torchrun's WORLD_SIZE); start the job with "
            f"`{shlex.join(launch_command(gpus, nodes))} ...` or change gpus / nodes"
        )


@contextlib.contextmanager
def process_group(dist: Distributed, device: str = "auto") -> Iterator[Distributed]:
    """Join the process group (nccl on CUDA, each rank on GPU LOCAL_RANK; gloo on CPU) and yield
    `dist` with its device; leave the group after. World size 1: no group, the device only."""
    resolved = resolve_device(device)
    if not dist.active:
        yield replace(dist, device=resolved)
        return
    if resolved.type == "cuda":
        resolved = torch.device("cuda", dist.local_rank)
        torch.cuda.set_device(resolved)
    backend = "nccl" if resolved.type == "cuda" else "gloo"
    torch_dist.init_process_group(
        backend, rank=dist.rank, world_size=dist.world_size, timeout=TIMEOUT
    )
    try:
        yield replace(dist, device=resolved)
    finally:
        torch_dist.destroy_process_group()


def launch_command(gpus: int, nodes: int, port: int = RDZV_PORT) -> list[str]:
    """The words that start `nasflow` as `gpus` processes on each of `nodes` nodes: `nasflow`;
    `torchrun --standalone` on one node; on several (inside a SLURM job), one torchrun per node
    started by `srun`, meeting at the job's first node on `port` (a `bash -c` on each node
    finds it, so no word needs the rule's shell to expand it: every word can be quoted)."""
    gpus, nodes, port = int(gpus), int(nodes), int(port)
    if gpus < 1 or nodes < 1:
        raise ConfigError(f"training settings gpus={gpus}, nodes={nodes}: both must be >= 1")
    if gpus * nodes == 1:
        return ["nasflow"]
    torchrun = ["torchrun", f"--nnodes={nodes}", f"--nproc-per-node={gpus}"]
    if nodes == 1:
        return [*torchrun[:1], "--standalone", *torchrun[1:], "--no-python", "nasflow"]
    first_node = '$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)'
    script = (
        f'exec {" ".join(torchrun)} --rdzv-backend=c10d --rdzv-id="nasflow-$SLURM_JOB_ID" '
        f'--rdzv-endpoint="{first_node}:{port}" --no-python "$@"'
    )
    return [
        "srun", f"--nodes={nodes}", "--ntasks-per-node=1", "bash", "-c", script, "torchrun",
        "nasflow",
    ]  # fmt: skip

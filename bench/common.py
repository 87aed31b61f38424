"""Helpers shared by the model benchmarks (not a benchmark itself: `make bench` runs
`bench_*.py`): a random translation batch, a device-synchronised clock and a busy core."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor

from nasflow.model.supertransformer import EOS

FIRST_TOKEN = 4  # ids below are pad/bos/eos/unk


def random_batch(args: argparse.Namespace, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """Random source, decoder input (EOS-shifted target) and target of `args.batch` x
    `args.length` ids below `args.vocab` (seed `args.seed`), each ending in EOS."""
    generator = torch.Generator().manual_seed(args.seed)
    shape = (args.batch, args.length)
    src = torch.randint(FIRST_TOKEN, args.vocab, shape, generator=generator)
    tgt = torch.randint(FIRST_TOKEN, args.vocab, shape, generator=generator)
    src[:, -1] = EOS
    tgt[:, -1] = EOS
    prev = torch.cat([torch.full((args.batch, 1), EOS), tgt[:, :-1]], dim=1)
    return src.to(device), prev.to(device), tgt.to(device)


def bench_device(device: str, threads: int) -> torch.device | None:
    """The device to time on with `threads` torch threads, or None (after saying so) when
    `device` is CUDA and none is available."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        print("skipped: --device cuda but CUDA is not available")
        return None
    torch.set_num_threads(threads)
    return torch.device(device)


def clock(device: torch.device) -> float:
    """`time.perf_counter()` after the device has finished its queued work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


@contextmanager
def busy_cpu(enabled: bool) -> Iterator[None]:
    """One subprocess spinning on a core while the block runs (nothing when not `enabled`)."""
    if not enabled:
        yield
        return
    process = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield
    finally:
        process.terminate()
        process.wait()

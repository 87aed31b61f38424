"""Latency of translating one sentence with an architecture, HAT's protocol in PyTorch eager.

Batch 1, a dummy source and target of the space's `measure_len` tokens; the encoder runs once,
then the decoder runs `length` incremental steps with the key/value cache on the encoder output
tiled to the beam size (HAT: beam 5). Each part gets warm-up runs, then timed runs whose
lowest and highest 10% are dropped before averaging. Unlike HAT, the model is in eval mode
with autograd off, and at least one sample always survives trimming (HAT's trim empties the
list below 10 runs). GPU timing synchronises the device around every run.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from nasflow.device import environment
from nasflow.model.supertransformer import EOS, SuperTransformer
from nasflow.space import Arch

DUMMY_TOKEN = 7  # HAT's dummy token id


@dataclass(frozen=True)
class LatencyResult:
    """Trimmed-mean encoder and decoder latency (ms) of one architecture, with spread."""

    arch_id: str
    encoder_ms: float
    decoder_ms: float
    encoder_std_ms: float
    decoder_std_ms: float
    runs: int
    length: int
    beam: int
    backend: str = "torch"
    environment: dict[str, Any] = field(default_factory=dict)

    @property
    def total_ms(self) -> float:
        return self.encoder_ms + self.decoder_ms

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "total_ms": self.total_ms}


def trimmed_stats(samples: list[float], trim: float = 0.1) -> tuple[float, float]:
    """Mean and std after dropping the lowest and highest `trim` fraction (>= 1 sample kept)."""
    if not samples:
        raise ValueError("no latency samples")
    ordered = sorted(samples)
    cut = math.floor(trim * len(ordered))
    if len(ordered) - 2 * cut < 1:
        cut = (len(ordered) - 1) // 2
    kept = np.asarray(ordered[cut : len(ordered) - cut])
    return float(kept.mean()), float(kept.std())


def dummy_batch(length: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Source `[7]*(L-1) + [EOS]` and decoder input `[EOS] + [7]*(L-1)`, batch 1."""
    body = [DUMMY_TOKEN] * (length - 1)
    src = torch.tensor([[*body, EOS]], device=device)
    prev = torch.tensor([[EOS, *body]], device=device)
    return src, prev


def _timed(run: Callable[[], object], device: torch.device, warmup: int, runs: int) -> list[float]:
    for _ in range(warmup):
        run()
    samples = []
    for _ in range(runs):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        run()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        samples.append((time.perf_counter() - start) * 1000.0)
    return samples


@torch.no_grad()
def measure_torch(
    model: SuperTransformer,
    arch: Arch | None = None,
    *,
    length: int | None = None,
    beam: int = 5,
    warmup: int = 5,
    runs: int = 20,
) -> LatencyResult:
    """Latency of `arch` (default: the model's current one) with PyTorch eager on its device."""
    if runs < 1 or warmup < 0 or beam < 1:
        raise ValueError(f"need runs >= 1, warmup >= 0, beam >= 1 (got {runs}, {warmup}, {beam})")
    previous, was_training = model.arch, model.training
    if arch is not None:
        model.set_arch(arch)
    assert model.arch is not None
    length = length or model.space.measure_len
    device = next(model.parameters()).device
    src, prev = dummy_batch(length, device)
    model.eval()
    try:
        encoder = _timed(lambda: model.encode(src), device, warmup, runs)
        tiled = model.encode(src).select(torch.zeros(beam, dtype=torch.long, device=device))
        steps = prev.expand(beam, -1)

        def decode_sentence() -> None:
            cache = model.start_cache(tiled)
            for step in range(length):
                model.decode(steps[:, step : step + 1], tiled, cache)

        decoder = _timed(decode_sentence, device, warmup, runs)
    finally:
        model.train(was_training)
        if previous is not None:
            model.set_arch(previous)
    enc_mean, enc_std = trimmed_stats(encoder)
    dec_mean, dec_std = trimmed_stats(decoder)
    return LatencyResult(
        arch_id=(arch or model.arch).id,
        encoder_ms=enc_mean,
        decoder_ms=dec_mean,
        encoder_std_ms=enc_std,
        decoder_std_ms=dec_std,
        runs=runs,
        length=length,
        beam=beam,
        environment=environment(device),
    )

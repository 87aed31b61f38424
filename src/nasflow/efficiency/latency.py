"""Latency of translating one sentence with an architecture, HAT's protocol, two backends.

Batch 1, a dummy source and target of the space's `measure_len` tokens. The encoder part runs
the encoder and projects the cross-attention keys/values of every decoder layer once; the
decoder part tiles that cache to the beam (HAT: 5) and runs `length` incremental steps with the
self-attention key/value cache. Each part gets warm-up runs, then timed runs whose lowest and
highest 10% are dropped before averaging (`protocol="hat"`). `protocol="robust"`
(`nasflow.efficiency.robust`) times the same two parts in short interleaved rounds (encoder,
decoder, and a reference architecture's when one is given) and keeps a low quantile of the runs
(on CPU per decoder step, summed), re-measuring while the rounds disagree; every result records
its protocol.

Differences from HAT, on purpose: the model is in eval mode with autograd off (HAT forgot
both); cross keys/values are projected once per sentence before tiling to the beam, as a
deployed decoder does (HAT tiles the encoder output and projects it per beam row); at least
one sample always survives trimming (HAT's trim empties the list below 10 runs); GPU timing
synchronises the device around every run.

Backends: `torch` (PyTorch eager) and `onnxruntime` (the graphs of `onnx_export`, full graph
optimisation). Threads are fixed by the caller and recorded with every result.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nasflow.core.device import environment
from nasflow.core.errors import NasflowError
from nasflow.core.ort import ort_session
from nasflow.efficiency.onnx_export import ExportedModel, cache_names, export_onnx
from nasflow.efficiency.robust import (
    TRIM,
    RobustSettings,
    check_protocol,
    measure_until_stable,
    robust_estimate,
    runs_per_round,
)
from nasflow.model.supertransformer import EOS, DecoderCache, SuperTransformer
from nasflow.space.hat import Arch

DUMMY_TOKEN = 7  # HAT's dummy token id


class LatencyError(NasflowError, ValueError):
    """Bad latency-measurement settings (backend, protocol)."""


@dataclass(frozen=True)
class LatencyResult:
    """Encoder and decoder latency (ms) of one architecture, with spread, under `protocol`
    (`{"name": "hat", "trim": 0.1}` or the robust settings with `retries`, `stable`, `spread`,
    `rounds`); `reference_ms`: the reference measured alongside (robust protocol), if any."""

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
    protocol: dict[str, Any] = field(default_factory=lambda: {"name": "hat", "trim": TRIM})
    reference_ms: float | None = None

    @property
    def total_ms(self) -> float:
        return self.encoder_ms + self.decoder_ms

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "total_ms": self.total_ms}


def trimmed_stats(samples: list[float], trim: float = TRIM) -> tuple[float, float]:
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


def _timed_steps(
    run: Callable[[], list[float] | None], device: torch.device, runs: int
) -> list[list[float]]:
    """`runs` timed runs, each as the step times it returns (or its own time, one step)."""
    samples = []
    for _ in range(runs):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        steps = run()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        samples.append(steps or [(time.perf_counter() - start) * 1000.0])
    return samples


class StepClock:
    """Times consecutive steps of one run with `time.perf_counter` (ms)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.last = time.perf_counter()

    def tick(self) -> None:
        now = time.perf_counter()
        self.times.append((now - self.last) * 1000.0)
        self.last = now


BACKENDS = ("torch", "onnxruntime")


def check_backend(backend: str) -> str:
    """`backend` if known, else a clear error listing the choices."""
    if backend not in BACKENDS:
        raise LatencyError(f"unknown latency backend {backend!r}; choose one of {list(BACKENDS)}")
    return backend


def _check_protocol(beam: int, warmup: int, runs: int) -> None:
    if runs < 1 or warmup < 0 or beam < 1:
        raise LatencyError(
            f"need runs >= 1, warmup >= 0, beam >= 1 (got runs={runs}, warmup={warmup}, "
            f"beam={beam})"
        )


@dataclass(frozen=True)
class Parts:
    """The two timed parts of translating one sentence, ready to run. `decode` returns the
    times (ms) of its steps where it clocks them (CPU), else None."""

    encode: Callable[[], object]
    decode: Callable[[], list[float] | None]
    device: torch.device


@dataclass(frozen=True)
class Timings:
    """What a protocol made of the timed runs."""

    encoder: tuple[float, float]  # value, spread (ms)
    decoder: tuple[float, float]
    runs: int
    protocol: dict[str, Any]
    reference_ms: float | None = None


def time_parts(
    parts: Parts,
    *,
    warmup: int,
    runs: int,
    protocol: str = "hat",
    robust: RobustSettings | None = None,
    reference: Parts | None = None,
) -> Timings:
    """Time `parts` under `protocol`: HAT's two series and trimmed means, or robust rounds
    (`reference` timed inside every round) and low quantiles."""
    check_protocol(protocol)
    if protocol == "hat":
        encoder = _timed(parts.encode, parts.device, warmup, runs)
        decoder = _timed(parts.decode, parts.device, warmup, runs)
        return Timings(
            trimmed_stats(encoder), trimmed_stats(decoder), runs, {"name": "hat", "trim": TRIM}
        )
    settings = robust or RobustSettings()
    per_round = runs_per_round(runs, settings.rounds)
    subjects = [parts] if reference is None else [parts, reference]
    for subject in subjects:
        _timed(subject.encode, subject.device, warmup, 0)
        _timed(subject.decode, subject.device, warmup, 0)
    encoder: list[list[float]] = []
    decoder: list[list[list[float]]] = []
    ref_total: list[list[list[float]]] = []

    def take_round() -> list[list[float]]:
        enc = _timed(parts.encode, parts.device, 0, per_round)
        dec = _timed_steps(parts.decode, parts.device, per_round)
        encoder.append(enc)
        decoder.append(dec)
        if reference is not None:
            ref_enc = _timed(reference.encode, reference.device, 0, per_round)
            ref_dec = _timed_steps(reference.decode, reference.device, per_round)
            ref_total.append([[e, *d] for e, d in zip(ref_enc, ref_dec, strict=True)])
        return [[e, *d] for e, d in zip(enc, dec, strict=True)]  # the judged total

    outcome = measure_until_stable(take_round, settings)
    q, tol = settings.quantile, settings.tolerance
    enc_estimate = robust_estimate(encoder, q, tol)
    dec_estimate = robust_estimate(decoder, q, tol)
    record = {
        "name": "robust",
        **settings.to_dict(),
        "runs_per_round": per_round,
        "rounds_measured": len(outcome.rounds),
        "retries": outcome.retries,
        "stable": outcome.estimate.stable,
        "spread": outcome.estimate.spread,
    }
    return Timings(
        (enc_estimate.value, enc_estimate.round_std),
        (dec_estimate.value, dec_estimate.round_std),
        per_round * len(outcome.rounds),
        record,
        robust_estimate(ref_total, q, tol).value if ref_total else None,
    )


def _result(
    arch: Arch,
    timings: Timings,
    length: int,
    beam: int,
    backend: str,
    env: dict[str, Any],
) -> LatencyResult:
    return LatencyResult(
        arch_id=arch.id,
        encoder_ms=timings.encoder[0],
        decoder_ms=timings.decoder[0],
        encoder_std_ms=timings.encoder[1],
        decoder_std_ms=timings.decoder[1],
        runs=timings.runs,
        length=length,
        beam=beam,
        backend=backend,
        environment=env,
        protocol=timings.protocol,
        reference_ms=timings.reference_ms,
    )


def torch_parts(model: SuperTransformer, length: int, beam: int) -> Parts:
    """The encoder and decoder parts of `model`'s current architecture in PyTorch eager (call
    them with autograd off and the model in eval mode)."""
    device = next(model.parameters()).device
    src, prev = dummy_batch(length, device)
    tile = torch.zeros(beam, dtype=torch.long, device=device)
    steps = prev.expand(beam, -1)
    with torch.no_grad():
        base = model.start_cache(model.encode(src))

    def decode_sentence() -> list[float] | None:
        clock = StepClock()
        cache = DecoderCache([{} for _ in base.self_attn], list(base.cross))
        cache.select(tile)
        for step in range(length):
            model.decode(steps[:, step : step + 1], None, cache)  # type: ignore[arg-type]
            clock.tick()
        return None if device.type == "cuda" else clock.times  # GPU steps run asynchronously

    return Parts(lambda: model.start_cache(model.encode(src)), decode_sentence, device)


@torch.no_grad()
def measure_torch(
    model: SuperTransformer,
    arch: Arch | None = None,
    *,
    length: int | None = None,
    beam: int = 5,
    warmup: int = 5,
    runs: int = 20,
    protocol: str = "hat",
    robust: RobustSettings | None = None,
    reference: Parts | None = None,
) -> LatencyResult:
    """Latency of `arch` (default: the model's current one) with PyTorch eager on its device."""
    _check_protocol(beam, warmup, runs)
    previous, was_training = model.arch, model.training
    if arch is not None:
        model.set_arch(arch)
    current = model.arch
    assert current is not None
    length = length or model.space.measure_len
    model.eval()
    try:
        parts = torch_parts(model, length, beam)
        timings = time_parts(
            parts, warmup=warmup, runs=runs, protocol=protocol, robust=robust, reference=reference
        )
    finally:
        model.train(was_training)
        if previous is not None:
            model.set_arch(previous)
    return _result(current, timings, length, beam, "torch", environment(parts.device))


def onnx_environment(session: Any, threads: int) -> dict[str, Any]:
    """Backend facts recorded with an ONNX Runtime measurement."""
    import onnxruntime as ort

    on_gpu = session.get_providers()[0] == "CUDAExecutionProvider"
    device = torch.device("cuda" if on_gpu else "cpu")
    return {
        **environment(device),
        "threads": threads,
        "onnxruntime": ort.__version__,
        "providers": session.get_providers(),
    }


def measure_onnx(
    exported: ExportedModel | str | Path,
    *,
    length: int,
    beam: int = 5,
    warmup: int = 5,
    runs: int = 20,
    threads: int = 1,
    device: str = "cpu",
    sessions: tuple[Any, Any] | None = None,
    protocol: str = "hat",
    robust: RobustSettings | None = None,
    reference: Parts | None = None,
) -> LatencyResult:
    """Latency of an `export_onnx` folder with ONNX Runtime, same protocol as `measure_torch`.

    `sessions` (encoder, decoder) reuses sessions opened by `ort_session` for this folder.
    """
    _check_protocol(beam, warmup, runs)
    if not isinstance(exported, ExportedModel):
        exported = ExportedModel.load(exported)
    arch = Arch.from_dict(exported.meta["arch"])
    if sessions is None:
        sessions = (
            ort_session(exported.encoder, threads, device),
            ort_session(exported.decoder, threads, device),
        )
    parts = onnx_parts(exported, sessions, length, beam)
    timings = time_parts(
        parts, warmup=warmup, runs=runs, protocol=protocol, robust=robust, reference=reference
    )
    env = onnx_environment(sessions[1], threads)
    return _result(arch, timings, length, beam, "onnxruntime", env)


def onnx_parts(exported: ExportedModel, sessions: tuple[Any, Any], length: int, beam: int) -> Parts:
    """The encoder and decoder parts of an `export_onnx` folder run by `sessions`."""
    arch = Arch.from_dict(exported.meta["arch"])
    encoder_session, decoder_session = sessions
    names = cache_names(exported.layers)
    src, prev = (t.numpy() for t in dummy_batch(length, torch.device("cpu")))
    steps = np.ascontiguousarray(np.broadcast_to(prev, (beam, length)))
    heads = arch.decoder_self_attention_heads
    head_dim = [int(exported.meta["qkv_dim"]) // h for h in heads]

    def encode() -> list[np.ndarray]:
        return encoder_session.run(None, {"src_tokens": src})

    padding_mask, *cross = encode()
    on_gpu = encoder_session.get_providers()[0] == "CUDAExecutionProvider"

    def decode_sentence() -> list[float] | None:
        clock = StepClock()
        feeds = {"padding_mask": np.repeat(padding_mask, beam, axis=0)}
        feeds.update(
            (n, np.repeat(t, beam, axis=0)) for n, t in zip(names["cross"], cross, strict=True)
        )
        for i, (h, d) in enumerate(zip(heads, head_dim, strict=True)):
            empty = np.zeros((beam, h, 0, d), dtype=np.float32)
            feeds[f"past_k_{i}"] = feeds[f"past_v_{i}"] = empty
        for step in range(length):
            feeds["tokens"] = steps[:, step : step + 1]
            _, *present = decoder_session.run(None, feeds)
            feeds.update(zip(names["past"], present, strict=True))
            clock.tick()
        return None if on_gpu else clock.times

    return Parts(encode, decode_sentence, torch.device("cpu"))


def measure(
    model: SuperTransformer,
    arch: Arch | None = None,
    *,
    backend: str = "torch",
    length: int | None = None,
    beam: int = 5,
    warmup: int = 5,
    runs: int = 20,
    threads: int | None = None,
    workdir: str | Path | None = None,
    protocol: str = "hat",
    robust: RobustSettings | None = None,
    reference: Parts | None = None,
) -> LatencyResult:
    """Latency of `arch` with `backend` under `protocol`; `onnxruntime` exports the arch to
    `workdir` (or a temporary folder) first. `threads` defaults to torch's current intra-op
    threads. `reference`: parts timed in every robust round (`ReferenceProbe.parts`)."""
    check_backend(backend)
    how = {"protocol": protocol, "robust": robust, "reference": reference}
    if backend == "torch":
        return measure_torch(model, arch, length=length, beam=beam, warmup=warmup, runs=runs, **how)
    previous = model.arch
    if arch is not None:
        model.set_arch(arch)
    device = next(model.parameters()).device
    try:
        length = length or model.space.measure_len
        threads = threads or torch.get_num_threads()
        with tempfile.TemporaryDirectory() as scratch:
            exported = export_onnx(model, workdir or scratch)
            return measure_onnx(
                exported,
                length=length,
                beam=beam,
                warmup=warmup,
                runs=runs,
                threads=threads,
                device=device.type,
                **how,
            )
    finally:
        if previous is not None:
            model.set_arch(previous)

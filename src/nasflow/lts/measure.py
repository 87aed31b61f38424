"""On-device objectives of one LTS decoder: text-prediction latency and peak inference memory.

Protocol (`measure_arch`, settings in `LTSMeasureSettings`)
-----------------------------------------------------------
The architecture is built with seeded random weights (latency and memory of a fixed architecture
do not depend on the weights), vocabulary `vocab_size` and `n_positions` positions, fp32, eval
mode, dropout off. With `backend="onnxruntime"` it is exported by `nasflow.lts.onnx_export`
(prompt graph and decoder-step graph with a key/value cache) and run by ONNX Runtime with full
graph optimisation (`ORT_ENABLE_ALL`), `threads` intra-op threads, one inter-op thread,
sequential execution (the session options of `nasflow.core.ort.ort_session`); with
`backend="torch"` the same two computations run in PyTorch eager (`torch.inference_mode`, `threads`
intra-op threads) on `device` (`cpu` or `cuda`).

Prompts are real text (`nasflow.lts.text`): a SentencePiece BPE tokenizer is trained once per
experiment on a plain-text corpus (default Penn Treebank from `$NASFLOW_MIRROR/ptb`), and its
held-out split, encoded, supplies the prompts and the characters per token. Timed inference `i`
(of `runs`) uses prompt `i` of `TextSet.prompts(runs, min_prompt_tokens, prompt_tokens, seed)`:
held-out text of a length drawn uniformly from `[min_prompt_tokens, prompt_tokens]` tokens (by
default 16-64) at a uniform offset, seeded by `seed`; warm-up inference `j` reuses prompt
`j mod runs`. So the statistics below are over `runs` different prompts of varying length, not
repeats of one.

One *inference* generates `n = new_tokens` tokens greedily after its prompt, batch 1:

- the prompt pass runs the prompt graph on the prompt (head on the last position only) and picks
  the first new token (argmax); its wall time is the run's **prompt latency** `PL_i` (time to the
  first token);
- then `n - 1` decoder steps each feed the previous token and the cache and pick the next token;
  the mean wall time of these steps is the run's **token latency** `TL_i`;
- the run's end-to-end latency is `E_i = PL_i + (n - 1) * TL_i` (the time to produce n tokens);
- its **latency_char** is the case study's `latency_char(n) = (PL + (n - 1) * TL) / n = E_i / n`,
  read as the formula reads: milliseconds **per generated token**;
- its latency **per character** is `latency_char_i / chars_per_token`, where `chars_per_token` is
  the tokenizer's figure on the held-out text (decoded characters / tokens; the generated tokens
  of a random-weight model have no meaningful characters of their own).

Each run is timed with `time.perf_counter` (CUDA synchronised before every clock read). After
`warmup` untimed inferences, the `runs` timed inferences give (P95 = numpy's 95th percentile
with linear interpolation between order statistics; with 20 runs it lies between the 19th and
20th smallest):

- `prompt_ms` = median of `PL_i`; `token_ms` = median of `TL_i`;
- `latency_ms` (the search objective) = median of `E_i`; `p95_ms` = P95 of `E_i`;
- `latency_char_ms_per_token` = median of `latency_char_i` (= `latency_ms / n`);
  `p95_latency_char_ms_per_token` = P95 of `latency_char_i` (= `p95_ms / n`), the case study's
  "P95 latency_char";
- `ms_per_char` = `latency_char_ms_per_token / chars_per_token`; `p95_ms_per_char` =
  `p95_latency_char_ms_per_token / chars_per_token`;
- `chars_per_token` is stored with the figures (the same for every architecture of a text set).

Peak memory (`memory_mb`, MiB = 2**20 bytes), a real high-water mark, never a file size or a sum
of allocations. Every measurement (timing included) runs in a worker process: by default a
**fresh** one per measurement (`python -m nasflow.lts.measure --worker`), so no other model's
pages or allocator caches interfere; with `worker="persistent"` one long-lived process
(`PersistentWorker`) measures job after job, each after the previous job's sessions are freed,
with glibc's mmap threshold fixed so freed blocks go back to the OS. What a process allocates
once (runtime and thread state that outlives a session) is then in the loaded baseline of every
job after the first, so a persistent worker can read up to about 2 MiB less than a fresh one
(measured: 1.6-2.1 MiB, on 26-29 MiB text-prediction figures and on 2.6 MiB tiny ones; the tests
bound it at 2.5 MiB); the worker kind enters the cache key, so the figures are never mixed.
With `graphs="template"` the worker builds the GPT-2 graphs itself from a weightless export
(`nasflow.lts.graph_template`) instead of loading `torch.onnx.export` files: the same nodes
after optimisation and the same outputs. The worker reports `load_seconds` and
`inference_seconds` (warm-up and timed inferences) in `environment`.

- CPU, both backends (`memory_method="vmhwm_reset"`): after the session (or the PyTorch model)
  is loaded and the prompts built, the worker returns the C heap's free pages to the OS (glibc
  `malloc_trim(0)`, so memory freed while loading cannot silently absorb inference allocations;
  `environment["heap_trimmed"]` says whether it could), resets its peak resident set size
  (writing `5` to `/proc/self/clear_refs`) and reads `VmRSS` (the *loaded baseline*,
  `loaded_mb`); after the warm-up and timed inferences it reads `VmHWM`.
  `memory_mb = VmHWM - VmRSS_loaded`: the most resident memory the process needed **above the
  loaded model** while running inference (activations, the key/value cache, runtime arenas
  and scratch buffers, the outputs), over the warm-up and timed runs (ONNX Runtime plans its
  memory pattern on the first run and allocates more on later ones, so `warmup + runs >= 2`
  gives the steady state; the longest prompt sets the peak). Weights are in the baseline, not
  in `memory_mb`; `peak_rss_mb` (absolute `VmHWM`) is kept too. Where the reset is refused,
  `VmHWM` may include a transient of loading (`memory_method="vmhwm"`); without `/proc` (not
  Linux), `ru_maxrss` before and after is used (`memory_method="ru_maxrss"`, a lower bound).
- CUDA with `backend="torch"` (`memory_method="cuda_max_allocated"`): after loading,
  `torch.cuda.reset_peak_memory_stats()`; `memory_mb = max_memory_allocated() -
  memory_allocated()` at that point (the caching allocator's high-water mark of live tensors
  above the loaded weights).

ONNX Runtime on CUDA is refused (its device memory is not a host high-water mark).

Backbones (`backbone`): `gpt2` (the default, `GPTDecoder`: the cache is the key/value cache) or
`transformer-xl` (`TXLDecoder` with its defaults: tied head, `mem_len` 192; the "cache" is the
recurrence memory: the prompt pass starts from an empty memory, each decoder step feeds one
token and the memory and gets the new memory). Everything else is the same protocol.

Trained weights (`checkpoint`): a torch file `{"arch", "vocab_size", "n_positions",
"state_dict"}` (the text-prediction stage's, optionally `"backbone"`) replaces the seeded random
weights; its architecture, vocabulary and positions must match the call's.

Cache key: `LTSMeasureSettings.fingerprint(text, backbone)` hashes every setting but
`timeout_s`, `PROTOCOL_VERSION` (2 since prompts became real text; version 1 timed repeats of
one random prompt and divided by an assumed 4.0 characters per token), the text set's
fingerprint (tokenizer and held-out ids) and, when not `gpt2`, the backbone, so no figure is
reused across protocols, corpora, tokenizers or backbones (GPT-2 keys are those of before).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nasflow.config.sections import BACKENDS, DEVICES, MeasureSettings
from nasflow.core.checks import is_number
from nasflow.core.errors import ConfigError, NasflowError
from nasflow.core.ort import ort_session
from nasflow.lts.text import TextSet
from nasflow.space.gpt import ArchError, GPTArch
from nasflow.space.gpt_params import check_backbone, decoder_params, total_params

__all__ = [
    "BACKENDS",
    "DEVICES",
    "PROTOCOL_VERSION",
    "LTSMeasureSettings",
    "LTSMeasurement",
    "MeasureError",
    "PersistentWorker",
    "backend_version",
    "build_model",
    "device_description",
    "load_checkpoint_weights",
    "measure_arch",
    "summarize",
]

#: Bump when the definitions above change, so cached figures of the old protocol are not reused.
PROTOCOL_VERSION = 2
RESULT_MARK = "NASFLOW_LTS_RESULT "
MIB = 2**20


class MeasureError(NasflowError):
    """A measurement could not be made (export failed, the worker crashed or timed out)."""


# ---- settings ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class LTSMeasureSettings(MeasureSettings):
    """`MeasureSettings` with what the measurement derives from them for a text set: the
    protocol fingerprint (a `MeasurementCache` key) and the timed inferences' prompts."""

    def protocol(self, text: TextSet, backbone: str = "gpt2") -> dict[str, Any]:
        """What the figures depend on: every setting but `timeout_s`, `PROTOCOL_VERSION`, the
        text set's fingerprint (its tokenizer and held-out ids: the prompts and characters) and
        the backbone when it is not `gpt2`."""
        out = self.to_dict()
        out.pop("timeout_s")
        for name, default in (("graphs", "export"), ("worker", "fresh")):
            if out[name] == default:  # the keys of measurements made before these settings
                out.pop(name)
        if out["timing"] == "median":  # likewise; rounds only matter under robust
            out.pop("timing")
            out.pop("rounds")
        protocol = {"protocol_version": PROTOCOL_VERSION, **out, "text": text.fingerprint}
        if check_backbone(backbone) != "gpt2":
            protocol["backbone"] = backbone
        return protocol

    def fingerprint(self, text: TextSet, backbone: str = "gpt2") -> str:
        """16 hex digits identifying `protocol(text, backbone)` (a `MeasurementCache` key)."""
        from nasflow.core.state import fingerprint

        return fingerprint(self.protocol(text, backbone))

    def prompts(self, text: TextSet) -> list[np.ndarray]:
        """The `runs` prompts of the timed inferences (see the module docstring)."""
        if text.vocab_size > self.vocab_size:
            raise ConfigError(
                f"the tokenizer has {text.vocab_size} pieces, more than measure.vocab_size "
                f"({self.vocab_size}): its ids would not be valid model inputs"
            )
        return text.prompts(self.runs, self.min_prompt_tokens, self.prompt_tokens, self.seed)


# ---- result -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class LTSMeasurement:
    """Latency and memory of one architecture (definitions in the module docstring).

    `samples` holds the per-run values (`prompt_tokens` of each run's prompt, `prompt_ms`,
    `token_ms`, `latency_ms`, in run order) for the spread; `text` the text set's fingerprint,
    corpus and tokenizer; `environment` the device, threads and library versions.
    """

    arch_id: str
    arch: dict[str, Any]
    backend: str
    device: str
    threads: int
    prompt_tokens: int
    min_prompt_tokens: int
    new_tokens: int
    warmup: int
    runs: int
    decoder_params: int
    total_params: int
    prompt_ms: float
    token_ms: float
    latency_ms: float
    p95_ms: float
    latency_char_ms_per_token: float
    p95_latency_char_ms_per_token: float
    chars_per_token: float
    ms_per_char: float
    p95_ms_per_char: float
    memory_mb: float
    loaded_mb: float
    peak_rss_mb: float
    memory_method: str
    samples: dict[str, list[float]] = field(default_factory=dict)
    text: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)

    #: The evaluator's metrics (the search objectives and the text-prediction figures).
    METRICS = (
        "decoder_params",
        "total_params",
        "latency_ms",
        "memory_mb",
        "prompt_ms",
        "token_ms",
        "p95_ms",
        "latency_char_ms_per_token",
        "p95_latency_char_ms_per_token",
        "chars_per_token",
        "ms_per_char",
        "p95_ms_per_char",
    )

    def metrics(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in self.METRICS}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(
    prompt: list[float], token: list[float], new_tokens: int, chars_per_token: float
) -> dict[str, float]:
    """The reported statistics from per-run `PL_i` and `TL_i` (ms), as the module docstring
    defines them."""
    if not prompt or len(prompt) != len(token):
        raise MeasureError(f"need as many prompt as token samples, got {len(prompt)}, {len(token)}")
    if not is_number(chars_per_token) or chars_per_token <= 0:
        raise MeasureError(f"chars_per_token must be a number > 0, got {chars_per_token!r}")
    pl, tl = np.asarray(prompt, dtype=float), np.asarray(token, dtype=float)
    n = new_tokens
    end_to_end = pl + (n - 1) * tl
    latency_char = end_to_end / n  # the case study's latency_char(n), ms per generated token
    median_char = float(np.median(latency_char))
    p95_char = float(np.percentile(latency_char, 95))
    return {
        "prompt_ms": float(np.median(pl)),
        "token_ms": float(np.median(tl)),
        "latency_ms": float(np.median(end_to_end)),
        "p95_ms": float(np.percentile(end_to_end, 95)),
        "latency_char_ms_per_token": median_char,
        "p95_latency_char_ms_per_token": p95_char,
        "chars_per_token": float(chars_per_token),
        "ms_per_char": median_char / chars_per_token,
        "p95_ms_per_char": p95_char / chars_per_token,
    }


# ---- building and describing --------------------------------------------------------------------
def build_model(
    arch: GPTArch,
    settings: LTSMeasureSettings,
    backbone: str = "gpt2",
    checkpoint: str | Path | None = None,
) -> Any:
    """The `backbone`'s decoder for `arch` (`nasflow.lts.model.build_decoder`) with weights from
    `settings.seed` (global RNG state left untouched), or from `checkpoint`
    (`load_checkpoint_weights`), dropout off, eval mode, fp32 on the CPU."""
    import torch

    from nasflow.lts.model import build_decoder

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        model = build_decoder(arch, backbone, settings.vocab_size, settings.n_positions, 0.0)
    if checkpoint is not None:
        state = load_checkpoint_weights(checkpoint, arch, settings, backbone)
        try:
            model.load_state_dict(state)
        except RuntimeError as error:
            raise MeasureError(
                f"{checkpoint}: weights do not fit {arch.describe()}: {error}"
            ) from None
    return model.eval()


def load_checkpoint_weights(
    path: str | Path, arch: GPTArch, settings: LTSMeasureSettings, backbone: str = "gpt2"
) -> dict[str, Any]:
    """The `state_dict` of a text-prediction checkpoint (`{"arch", "vocab_size",
    "n_positions", "state_dict"}`, optionally `"backbone"`; read with `weights_only`), after
    checking that its architecture, backbone, vocabulary and positions are the measured ones."""
    from nasflow.core.io import load_torch

    what = "a checkpoint {arch, vocab_size, n_positions, state_dict}"
    data = load_torch(path, what)
    if not isinstance(data, dict):
        raise MeasureError(f"{path}: not {what} (a {type(data).__name__})")
    missing = [k for k in ("arch", "vocab_size", "n_positions", "state_dict") if k not in data]
    if missing:
        raise MeasureError(f"{path}: not {what} (missing {', '.join(missing)})")
    try:
        stored = GPTArch.from_dict(data["arch"])
    except ArchError as error:
        raise MeasureError(f"{path}: bad architecture: {error}") from None
    if stored != arch:
        raise MeasureError(
            f"{path}: holds {stored.describe()} ({stored.id}), not the measured "
            f"{arch.describe()} ({arch.id})"
        )
    if data.get("backbone", "gpt2") != backbone:
        raise MeasureError(f"{path}: backbone {data.get('backbone', 'gpt2')}, not {backbone}")
    for key in ("vocab_size", "n_positions"):
        if data[key] != getattr(settings, key):
            raise MeasureError(
                f"{path}: {key} {data[key]} does not match measure.{key} {getattr(settings, key)}"
            )
    return data["state_dict"]


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def backend_version(backend: str) -> str:
    """The version of the library that runs `backend`."""
    if backend == "onnxruntime":
        import onnxruntime

        return str(onnxruntime.__version__)
    import torch

    return str(torch.__version__)


def device_description(settings: LTSMeasureSettings) -> str:
    """The device's name: the CPU model (or machine type), or the GPU model."""
    import torch

    from nasflow.core.device import device_name

    if settings.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("measure.device is cuda, but CUDA is not available on this machine")
    return device_name(torch.device(settings.device))


def _environment(
    settings: LTSMeasureSettings,
    worker: Mapping[str, Any],
    backbone: str = "gpt2",
    checkpoint_sha256: str | None = None,
    template: bool = False,
) -> dict[str, Any]:
    """Device, threads, backend and library versions (and a non-GPT-2 backbone, a checkpoint,
    how the graphs were made and the worker kind)."""
    import torch

    from nasflow.core.device import environment

    env = environment(torch.device(settings.device))
    env.update(
        threads=settings.threads,
        backend=settings.backend,
        backend_version=backend_version(settings.backend),
        **dict(worker.get("environment", {})),
    )
    if backbone != "gpt2":
        env["backbone"] = backbone
    if checkpoint_sha256 is not None:
        env["checkpoint_sha256"] = checkpoint_sha256
    if settings.backend == "onnxruntime":
        env["graphs"] = "template" if template else "export"
    env["worker"] = settings.worker
    return env


# ---- measuring ----------------------------------------------------------------------------------
def _export_for(
    arch: GPTArch,
    settings: LTSMeasureSettings,
    folder: Path,
    backbone: str = "gpt2",
    checkpoint: str | Path | None = None,
    checkpoint_sha256: str | None = None,
) -> Any:
    """Reuse an export of the same arch, backbone, vocabulary, positions, seed and checkpoint
    (sha256) in `folder`, else export."""
    from nasflow.lts.onnx_export import ExportedLTS, ExportError, export_lts

    try:
        existing = ExportedLTS.load(folder)
        meta = existing.meta
        if (
            meta.get("arch_id") == arch.id
            and meta.get("vocab_size") == settings.vocab_size
            and meta.get("n_positions") == settings.n_positions
            and meta.get("seed") == settings.seed
            and meta.get("backbone", "gpt2") == backbone
            and meta.get("checkpoint_sha256") == checkpoint_sha256
        ):
            return existing
    except (ExportError, OSError, ValueError):
        pass
    model = build_model(arch, settings, backbone, checkpoint)
    meta = {"seed": settings.seed}
    if checkpoint_sha256 is not None:
        meta["checkpoint_sha256"] = checkpoint_sha256
    return export_lts(model, folder, meta=meta)


def measure_arch(
    arch: GPTArch,
    text: TextSet,
    settings: LTSMeasureSettings | None = None,
    workdir: str | Path | None = None,
    *,
    backbone: str = "gpt2",
    checkpoint: str | Path | None = None,
    runner: Callable[[dict[str, Any], LTSMeasureSettings], dict[str, Any]] | None = None,
) -> LTSMeasurement:
    """Latency and peak memory of `arch` on prompts of `text` under `settings` (see the module
    docstring).

    `workdir`: with `backend="onnxruntime"` the export goes to `<workdir>/<arch id>/` (for a
    non-GPT-2 backbone `<workdir>/<arch id>-<backbone>/`) and is kept (a later call reuses it
    when the backbone, vocabulary, positions, seed and checkpoint match); `None` uses a
    temporary folder deleted afterwards. The torch backend exports nothing.
    `backbone`: `gpt2` or `transformer-xl`. `checkpoint`: trained weights to measure instead of
    seeded random ones (module docstring); its sha256 enters the export-reuse check and
    `environment["checkpoint_sha256"]`. With `settings.graphs = "template"` a GPT-2 decoder with
    seeded weights is not exported: the worker builds the same graphs from a weightless export
    (`nasflow.lts.graph_template`; a checkpoint is still exported, a Transformer-XL decoder is
    refused). `runner`: runs the worker job (default: a fresh worker process; a
    `PersistentWorker.run` reuses one process).
    """
    settings = settings or LTSMeasureSettings()
    if not isinstance(arch, GPTArch):
        raise MeasureError(f"measure_arch needs a GPTArch, got {type(arch).__name__}")
    backbone = check_backbone(backbone)
    checkpoint_sha256 = None
    if checkpoint is not None:
        load_checkpoint_weights(checkpoint, arch, settings, backbone)  # fail before the export
        checkpoint_sha256 = file_sha256(checkpoint)
    prompts = settings.prompts(text)
    job: dict[str, Any] = {
        "backend": settings.backend,
        "device": settings.device,
        "threads": settings.threads,
        "prompts": [p.tolist() for p in prompts],
        "new_tokens": settings.new_tokens,
        "warmup": settings.warmup,
        "vocab_size": settings.vocab_size,
        "n_positions": settings.n_positions,
        "seed": settings.seed,
        "arch": arch.to_dict(),
    }
    if settings.timing == "robust":
        job["rounds"] = settings.rounds
    if backbone != "gpt2":
        job["backbone"] = backbone
    if checkpoint is not None:
        job["checkpoint"] = str(Path(checkpoint).resolve())
    runner = runner or _run_worker
    template = settings.graphs == "template" and checkpoint is None
    if template and backbone != "gpt2":
        raise ConfigError(
            f"measure.graphs: template builds GPT-2 decoders only, not {backbone}; use graphs: "
            "export"
        )
    if settings.backend == "torch":
        result = runner(job, settings)
    elif template:
        job["template"] = True
        result = runner(job, settings)
    else:
        scratch = None
        if workdir is None:
            scratch = tempfile.mkdtemp(prefix=f"lts-{arch.id}-")
            folder = Path(scratch)
        else:
            name = arch.id if backbone == "gpt2" else f"{arch.id}-{backbone}"
            folder = Path(workdir) / name
        try:
            exported = _export_for(arch, settings, folder, backbone, checkpoint, checkpoint_sha256)
            job["prompt_path"] = str(exported.prompt.resolve())
            job["step_path"] = str(exported.step.resolve())
            result = runner(job, settings)
        finally:
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)
    stats = summarize(
        result["prompt_ms"], result["token_ms"], settings.new_tokens, text.chars_per_token
    )
    pl, tl = np.asarray(result["prompt_ms"]), np.asarray(result["token_ms"])
    samples = {
        "prompt_tokens": [int(p.size) for p in prompts],
        "prompt_ms": [float(v) for v in pl],
        "token_ms": [float(v) for v in tl],
        "latency_ms": [float(v) for v in pl + (settings.new_tokens - 1) * tl],
    }
    return LTSMeasurement(
        arch_id=arch.id,
        arch=arch.to_dict(),
        backend=settings.backend,
        device=settings.device,
        threads=settings.threads,
        prompt_tokens=settings.prompt_tokens,
        min_prompt_tokens=int(settings.min_prompt_tokens or 1),
        new_tokens=settings.new_tokens,
        warmup=settings.warmup,
        runs=settings.runs,
        decoder_params=decoder_params(arch, backbone),
        total_params=total_params(arch, settings.vocab_size, settings.n_positions, backbone),
        memory_mb=float(result["memory_mb"]),
        loaded_mb=float(result["loaded_mb"]),
        peak_rss_mb=float(result["peak_rss_mb"]),
        memory_method=str(result["memory_method"]),
        samples=samples,
        text={"fingerprint": text.fingerprint, **text.info},
        environment=_environment(settings, result, backbone, checkpoint_sha256, template),
        **stats,
    )


def _worker_env(settings: LTSMeasureSettings) -> dict[str, str]:
    """The worker's environment: this package importable, the thread count fixed."""
    import nasflow

    env = os.environ.copy()
    root = str(Path(nasflow.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(settings.threads)
    return env


def _describe_job(job: Mapping[str, Any]) -> str:
    return f"architecture {GPTArch.from_dict(job['arch']).describe()}"


def _run_worker(job: dict[str, Any], settings: LTSMeasureSettings) -> dict[str, Any]:
    """Run `job` in a fresh `python -m nasflow.lts.measure --worker` process."""
    env = _worker_env(settings)
    what = _describe_job(job)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "nasflow.lts.measure", "--worker"],
            input=json.dumps(job),
            capture_output=True,
            text=True,
            timeout=settings.timeout_s,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise MeasureError(
            f"measuring {what} took longer than measure.timeout_s = {settings.timeout_s:g} s"
        ) from None
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_MARK)]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-15:]
        raise MeasureError(
            f"the measurement worker for {what} failed (exit code {proc.returncode}):\n"
            + "\n".join(tail)
        )
    result = json.loads(lines[-1][len(RESULT_MARK) :])
    if "error" in result:
        raise MeasureError(f"measuring {what} failed: {result['error']}")
    return result


# ---- the worker process -------------------------------------------------------------------------
def _status_kib() -> dict[str, int] | None:
    """`VmRSS` and `VmHWM` of this process in KiB (None without `/proc`)."""
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out if len(out) == 2 else None


def _reset_peak() -> bool:
    """Reset this process's `VmHWM` to its current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def _trim_heap() -> bool:
    """Give the C heap's free pages back to the OS (glibc `malloc_trim(0)`), so that memory
    freed while loading cannot absorb inference allocations unseen by the RSS."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim(0)
        return True
    except (OSError, AttributeError):
        return False


def _maxrss_kib() -> int:
    import resource

    value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return value // 1024 if sys.platform == "darwin" else value  # bytes on macOS


Inference = Callable[[Any], tuple[float, float]]


def _ort_inference(job: dict[str, Any]) -> tuple[Inference, list[Any], dict]:
    threads = job["threads"]
    if job.get("template"):
        from nasflow.lts.graph_template import template_graphs, template_session, weight_values

        arch = GPTArch.from_dict(job["arch"])
        prompt, step, shapes = template_graphs(arch, job["vocab_size"], job["n_positions"])
        weights = weight_values(shapes, job["seed"])
        prompt_session = template_session(prompt, weights, threads)
        step_session = template_session(step, weights, threads)
        del weights
    else:
        prompt_session = ort_session(job["prompt_path"], threads)
        step_session = ort_session(job["step_path"], threads)
    return _session_inference(prompt_session, step_session, job)


def _session_inference(
    prompt_session: Any, step_session: Any, job: dict[str, Any]
) -> tuple[Inference, list[Any], dict]:
    """Timed greedy inference through an ONNX Runtime prompt session and step session."""
    import onnxruntime as ort

    n = job["new_tokens"]
    past_names = [i.name for i in step_session.get_inputs() if i.name.startswith("past_")]
    prompts = [np.asarray(p, dtype=np.int64).reshape(1, -1) for p in job["prompts"]]
    # A Transformer-XL prompt graph also takes the memory: empty for a fresh prompt.
    width = int(job["arch"]["d_model"])
    empty = {
        i.name: np.zeros((1, 0, width), dtype=np.float32)
        for i in prompt_session.get_inputs()
        if i.name.startswith("past_")
    }
    clock = time.perf_counter

    def infer(prompt: np.ndarray) -> tuple[float, float]:
        start = clock()
        logits, *cache = prompt_session.run(None, {"tokens": prompt, **empty})
        token = logits.argmax(-1).astype(np.int64).reshape(1, 1)
        prompt_s = clock() - start
        steps = 0.0
        for _ in range(n - 1):
            begin = clock()
            feeds = dict(zip(past_names, cache, strict=True))
            feeds["tokens"] = token
            logits, *cache = step_session.run(None, feeds)
            token = logits.argmax(-1).astype(np.int64).reshape(1, 1)
            steps += clock() - begin
        return prompt_s * 1000.0, steps * 1000.0 / (n - 1)

    env = {"onnxruntime": ort.__version__, "providers": step_session.get_providers()}
    return infer, prompts, env


def _torch_inference(job: dict[str, Any]) -> tuple[Inference, list[Any], dict]:
    import torch

    from nasflow.lts.onnx_export import PromptGraph, StepGraph, TXLGraph

    torch.set_num_threads(job["threads"])
    with contextlib.suppress(RuntimeError):  # already set in this process
        torch.set_num_interop_threads(1)
    device = torch.device(job["device"])
    if device.type == "cuda" and not torch.cuda.is_available():
        raise MeasureError("device cuda asked for, but CUDA is not available")
    settings = LTSMeasureSettings(
        backend="torch",
        device=job["device"],
        vocab_size=job["vocab_size"],
        n_positions=job["n_positions"],
        seed=job["seed"],
        prompt_tokens=max(len(p) for p in job["prompts"]),
        new_tokens=job["new_tokens"],
    )
    backbone = job.get("backbone", "gpt2")
    arch = GPTArch.from_dict(job["arch"])
    model = build_model(arch, settings, backbone, job.get("checkpoint")).to(device)
    empty: list[Any] = []
    if backbone == "gpt2":
        prompt_graph, step_graph = PromptGraph(model), StepGraph(model)
    else:  # the memory is an input of both; a fresh prompt starts from an empty one
        prompt_graph = step_graph = TXLGraph(model)
        empty = model.init_mems(1, device)
    prompts = [torch.tensor([p], dtype=torch.long, device=device) for p in job["prompts"]]
    n = job["new_tokens"]
    cuda = device.type == "cuda"

    def clock() -> float:
        if cuda:
            torch.cuda.synchronize(device)
        return time.perf_counter()

    @torch.inference_mode()
    def infer(prompt: torch.Tensor) -> tuple[float, float]:
        start = clock()
        logits, *cache = prompt_graph(prompt, *empty)
        token = logits.argmax(-1, keepdim=True)
        prompt_s = clock() - start
        steps = 0.0
        for _ in range(n - 1):
            begin = clock()
            logits, *cache = step_graph(token, *cache)
            token = logits.argmax(-1, keepdim=True)
            steps += clock() - begin
        return prompt_s * 1000.0, steps * 1000.0 / (n - 1)

    env = {"torch_threads": torch.get_num_threads()}
    if cuda:
        env["cuda_device_name"] = torch.cuda.get_device_name(device)
    return infer, prompts, env


def _worker(job: dict[str, Any]) -> dict[str, Any]:
    import gc

    backend = job["backend"]
    loading = time.perf_counter()
    infer, prompts, env = (_torch_inference if backend == "torch" else _ort_inference)(job)
    loading = time.perf_counter() - loading
    cuda = backend == "torch" and job["device"] == "cuda"
    gc.collect()
    trimmed = _trim_heap()
    if cuda:
        import torch

        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        cuda_base = torch.cuda.memory_allocated()
    status = _status_kib()
    reset = status is not None and _reset_peak()
    status = _status_kib()
    base_kib = status["VmRSS"] if status is not None else _maxrss_kib()
    inference = time.perf_counter()
    for j in range(job["warmup"]):
        infer(prompts[j % len(prompts)])
    prompt_ms, token_ms, robust = _timed(infer, prompts, job)
    inference = time.perf_counter() - inference
    status = _status_kib()
    peak_kib = status["VmHWM"] if status is not None else _maxrss_kib()
    if cuda:
        memory = (torch.cuda.max_memory_allocated() - cuda_base) / MIB
        method = "cuda_max_allocated"
    else:
        memory = max(0, peak_kib - base_kib) / 1024.0
        method = "vmhwm_reset" if reset else ("vmhwm" if status is not None else "ru_maxrss")
    return {
        "prompt_ms": prompt_ms,
        "token_ms": token_ms,
        "memory_mb": memory,
        "loaded_mb": base_kib / 1024.0,
        "peak_rss_mb": peak_kib / 1024.0,
        "memory_method": method,
        "environment": {
            **env,
            "heap_trimmed": trimmed,
            "load_seconds": loading,  # sessions (or model) built, prompts made
            "inference_seconds": inference,  # the warm-up and timed inferences
            **robust,
        },
    }


def _timed(
    infer: Inference, prompts: list[Any], job: Mapping[str, Any]
) -> tuple[list[float], list[float], dict[str, Any]]:
    """Per prompt, its prompt and token latency (ms): one pass over the prompts, or under the
    robust protocol (`job["rounds"]`) the minimum over interleaved passes, more passes while
    the odd and even passes' summed end-to-end times disagree (`nasflow.efficiency.robust`);
    and what the robust protocol did (empty for one pass)."""
    passes: list[list[tuple[float, float]]] = []
    steps = job["new_tokens"] - 1

    def take_round() -> list[list[float]]:
        passes.append([infer(prompt) for prompt in prompts])
        return [[pl + steps * tl for pl, tl in passes[-1]]]  # one run, a component per prompt

    if "rounds" not in job:
        take_round()
        return [p for p, _ in passes[0]], [t for _, t in passes[0]], {}
    from nasflow.efficiency.robust import RobustSettings, measure_until_stable

    measured = measure_until_stable(take_round, RobustSettings(rounds=int(job["rounds"])))
    times = np.asarray(passes)  # [passes, prompts, 2]
    best = times.min(axis=0)
    info = {
        "passes": len(passes),
        "retries": measured.retries,
        "spread": measured.estimate.spread,
        "stable": measured.estimate.stable,
    }
    return best[:, 0].tolist(), best[:, 1].tolist(), info


def _serve(job: dict[str, Any]) -> None:
    """Measure one job and print its result line (an error becomes a result with `error`)."""
    import gc

    try:
        result = _worker(job)
    except (NasflowError, RuntimeError, ValueError, OSError, ImportError) as error:
        result = {"error": f"{type(error).__name__}: {error}"}
    gc.collect()  # the job's sessions and weights go before the next job's baseline
    print(RESULT_MARK + json.dumps(result), flush=True)


def _worker_cli(argv: list[str]) -> int:
    if argv == ["--worker"]:
        _serve(json.loads(sys.stdin.read()))
        return 0
    if argv == ["--worker", "--persistent"]:
        for line in sys.stdin:
            if line.strip():
                _serve(json.loads(line))
        return 0
    print(
        "usage: python -m nasflow.lts.measure --worker [--persistent]  (job JSON on stdin; "
        "one per line with --persistent)",
        file=sys.stderr,
    )
    return 2


class PersistentWorker:
    """One long-lived `python -m nasflow.lts.measure --worker --persistent` process that measures
    job after job (`measure.worker: persistent`): no interpreter start and library imports per
    measurement, and the graph templates stay cached in it. Peak memory is still reset and read
    per job, after the previous job's sessions are freed and the C heap trimmed, with glibc's
    dynamic mmap threshold fixed (`MALLOC_MMAP_THRESHOLD_`) so that a freed large block is
    returned to the OS rather than kept for reuse unseen by the resident-set size.

    A job that times out or crashes the process kills it (`MeasureError`); the next job starts a
    new one. `close()` (or leaving a `with` block) ends it.
    """

    def __init__(self, settings: LTSMeasureSettings) -> None:
        self.settings = settings
        self.proc: subprocess.Popen[str] | None = None
        self.stderr: Any = None
        self.jobs = 0

    def _start(self) -> subprocess.Popen[str]:
        env = _worker_env(self.settings)
        env["MALLOC_MMAP_THRESHOLD_"] = str(128 * 1024)
        # A file, not a pipe: a full pipe would block the worker. Closed by close().
        self.stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115
        return subprocess.Popen(
            [sys.executable, "-m", "nasflow.lts.measure", "--worker", "--persistent"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
            env=env,
        )

    def run(self, job: dict[str, Any], settings: LTSMeasureSettings) -> dict[str, Any]:
        """Send `job` to the worker and wait for its result (at most `timeout_s`)."""
        import selectors

        if self.proc is None or self.proc.poll() is not None:
            self.close()  # a worker that died: release its pipes and stderr file first
            self.proc = self._start()
        proc = self.proc
        assert proc.stdin is not None and proc.stdout is not None
        what = _describe_job(job)
        try:
            proc.stdin.write(json.dumps(job) + "\n")
            proc.stdin.flush()
        except OSError:
            self._fail(what, "the worker process is gone")
        deadline = time.monotonic() + settings.timeout_s
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ)
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or not selector.select(left):
                    self.close()
                    raise MeasureError(
                        f"measuring {what} took longer than measure.timeout_s = "
                        f"{settings.timeout_s:g} s"
                    )
                line = proc.stdout.readline()
                if not line:
                    self._fail(what, "the worker process ended")
                if line.startswith(RESULT_MARK):
                    break
        self.jobs += 1
        result = json.loads(line[len(RESULT_MARK) :])
        if "error" in result:
            raise MeasureError(f"measuring {what} failed: {result['error']}")
        result.setdefault("environment", {})["worker_job"] = self.jobs
        return result

    def _fail(self, what: str, reason: str) -> None:
        stderr = ""
        if self.stderr is not None:
            self.stderr.seek(0)
            stderr = self.stderr.read()
        self.close()
        tail = stderr.strip().splitlines()[-15:]
        raise MeasureError(
            f"the measurement worker for {what} failed ({reason}):\n" + "\n".join(tail)
        )

    def close(self) -> None:
        """End the worker process (killed if it does not exit at once)."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        try:
            if proc.stdin is not None:
                proc.stdin.close()
            proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        if self.stderr is not None:
            self.stderr.close()
            self.stderr = None

    def __enter__(self) -> PersistentWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


if __name__ == "__main__":
    sys.exit(_worker_cli(sys.argv[1:]))

"""The one training loop for decoder language models (`GPTDecoder`), its held-out evaluator and
its checkpoint format.

Recipe (`LMTrainSettings`): AdamW (betas 0.9/0.95, weight decay on matrices only), the peak `lr`
reached by a linear warm-up over `warmup` steps (default 10% of `steps`, at least 1), then a
cosine decay to `lr * min_lr_ratio` at the last step; gradient norm clipped to `grad_clip`;
`dropout` applied to every dropout of the model. The proxy check (`nasflow.lts.proxy_check`)
trains with this recipe too (`LMTrainSettings.lr_at`, `adamw`), on its own batch layout.

Batches: the training stream is cut into `n = len // (seq_len + 1)` non-overlapping windows of
`seq_len + 1` tokens (inputs and their targets shifted by one); epoch `e` visits them in the
order `numpy.random.default_rng([seed, e]).permutation(n)`, and step `s` takes the windows at
global positions `s * rows .. (s + 1) * rows - 1` of that endless sequence (`rows =
batch_tokens // seq_len`), crossing into the next epoch as needed. A batch is a pure function of
(seed, step), so a resumed run sees the same batches.

Resuming (`state_dir`): a `nasflow.core.state.StateFolder` keyed by the settings (`save_every`
excluded), fingerprints of both streams and of the initial weights, the architecture and
`fingerprint_extra`; it holds the model, the optimizer, the step, every RNG, the curve and the
running losses, saved atomically every `save_every` steps and at the end. An interrupted run
resumed from it ends with bit-identical weights and the same curve (apart from `seconds`).

Curve (`curve_path`, CSV written atomically at each evaluation and at the end): `step, lr,
train_loss` (mean over the steps since the previous row), `valid_nll` (mean nats per token,
empty when not evaluated), `tokens` (training tokens so far), `seconds` (training and evaluation
wall time so far). Rows are added every `eval_every` steps (0: only at the end) and at the end.

Checkpoint (`save_checkpoint` / `load_checkpoint`): one torch file `{"arch": GPTArch.to_dict(),
"vocab_size", "n_positions", "state_dict", "meta"}` (tensors and plain data only), written
atomically and read with `weights_only=True`.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nasflow.core.checks import is_int, is_number
from nasflow.core.errors import ConfigError, DataError
from nasflow.core.io import atomic_path, load_torch, one_line, write_text_atomic
from nasflow.core.state import StateFolder, TrainStateError, rng_state, set_rng_state
from nasflow.lts.model import CausalSelfAttention, GPTDecoder, lm_loss
from nasflow.space.gpt import ArchError, GPTArch

__all__ = [
    "CURVE_COLUMNS",
    "LMTrainResult",
    "LMTrainSettings",
    "adamw",
    "batch_windows",
    "evaluate_nll",
    "load_checkpoint",
    "save_checkpoint",
    "set_dropout",
    "train_lm",
]

CURVE_COLUMNS = ("step", "lr", "train_loss", "valid_nll", "tokens", "seconds")
STATE_KEYS = ("model", "optimizer", "step", "rng", "curve", "recent", "window", "tokens")
CHECKPOINT_KEYS = ("arch", "vocab_size", "n_positions", "state_dict", "meta")
RECENT = 10  # the final train loss is the mean of the last RECENT steps


# ---- settings ------------------------------------------------------------------------------------
def _problem(name: str, value: Any) -> str | None:
    """What is wrong with one settings entry (None when it is fine)."""
    if name in ("steps", "batch_tokens", "seq_len", "save_every"):
        ok, want = is_int(value) and value >= 1, "an integer >= 1"
    elif name in ("seed", "eval_every"):
        ok, want = is_int(value) and value >= 0, "an integer >= 0"
    elif name == "warmup":
        ok, want = value is None or (is_int(value) and value >= 0), "null or an integer >= 0"
    elif name == "eval_tokens":
        ok, want = value is None or (is_int(value) and value >= 2), "null or an integer >= 2"
    elif name == "lr":
        ok, want = is_number(value) and value > 0, "a number > 0"
    elif name == "min_lr_ratio":
        ok, want = is_number(value) and 0 <= value <= 1, "a number in [0, 1]"
    elif name == "weight_decay":
        ok, want = is_number(value) and value >= 0, "a number >= 0"
    elif name == "grad_clip":
        ok, want = value is None or (is_number(value) and value > 0), "null or a number > 0"
    elif name == "dropout":
        ok, want = is_number(value) and 0 <= value < 1, "a number in [0, 1)"
    elif name == "betas":
        ok = (
            isinstance(value, list | tuple)
            and len(value) == 2
            and all(is_number(b) and 0 <= b < 1 for b in value)
        )
        want = "two numbers in [0, 1)"
    else:  # pragma: no cover - every field is listed above
        return None
    return None if ok else f"must be {want}, got {value!r}"


def _validate(values: Mapping[str, Any], key: str) -> None:
    """Raise ConfigError naming `<key>.<entry>` for the first bad entry of `values`."""
    for name, value in values.items():
        problem = _problem(name, value)
        if problem is not None:
            raise ConfigError(f"{key}.{name} {problem}")
    steps, warmup = values["steps"], values["warmup"]
    if warmup is not None and warmup > steps:
        raise ConfigError(f"{key}.warmup must be <= steps ({steps}), got {warmup}")
    if values["batch_tokens"] < values["seq_len"]:
        raise ConfigError(
            f"{key}.batch_tokens must be >= seq_len ({values['seq_len']}): a step takes "
            f"batch_tokens // seq_len windows, got {values['batch_tokens']}"
        )


@dataclass(frozen=True)
class LMTrainSettings:
    """The budget and recipe of one training run (see the module docstring)."""

    steps: int = 1000
    batch_tokens: int = 8192
    seq_len: int = 128
    lr: float = 6e-4
    warmup: int | None = None
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float | None = 1.0
    dropout: float = 0.1
    seed: int = 1
    eval_every: int = 0
    eval_tokens: int | None = None
    save_every: int = 100

    def __post_init__(self) -> None:
        _validate({f.name: getattr(self, f.name) for f in fields(self)}, "lm_train")
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        for name in ("lr", "min_lr_ratio", "weight_decay", "dropout"):
            object.__setattr__(self, name, float(getattr(self, name)))
        if self.grad_clip is not None:
            object.__setattr__(self, "grad_clip", float(self.grad_clip))

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any], key: str) -> LMTrainSettings:
        """Settings from a config section named `key`; every error names `<key>.<entry>`."""
        if not isinstance(mapping, Mapping):
            raise ConfigError(f"{key} must be a mapping, got {type(mapping).__name__}")
        names = [f.name for f in fields(cls)]
        unknown = sorted(f"{key}.{name}" for name in set(mapping) - set(names))
        if unknown:
            raise ConfigError(f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(names)}")
        defaults = {f.name: getattr(cls, f.name) for f in fields(cls)}
        _validate({**defaults, **mapping}, key)
        return cls(**mapping)

    @property
    def rows(self) -> int:
        """Windows per step."""
        return self.batch_tokens // self.seq_len

    @property
    def warmup_steps(self) -> int:
        return self.warmup if self.warmup is not None else max(1, self.steps // 10)

    def lr_at(self, step: int) -> float:
        """The learning rate of optimizer step `step` (0-based): linear warm-up, then cosine to
        `lr * min_lr_ratio` at the last step."""
        warm = self.warmup_steps
        if step < warm:
            return self.lr * (step + 1) / warm
        span = max(1, self.steps - 1 - warm)
        progress = min(1.0, (step - warm) / span)
        cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
        return self.lr * (self.min_lr_ratio + (1.0 - self.min_lr_ratio) * cosine)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "betas": list(self.betas)}


# ---- batches -------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=4)
def _permutation(n_windows: int, seed: int, epoch: int) -> np.ndarray:
    order = np.random.default_rng([seed, epoch]).permutation(n_windows)
    order.flags.writeable = False
    return order


def batch_windows(n_windows: int, rows: int, seed: int, step: int) -> np.ndarray:
    """Indices of the `rows` windows of step `step` (0-based; see the module docstring)."""
    if not 1 <= rows <= n_windows:
        raise ValueError(f"rows must be in [1, {n_windows}], got {rows}")
    positions = np.arange(step * rows, (step + 1) * rows, dtype=np.int64)
    epochs, within = np.divmod(positions, n_windows)
    out = np.empty(rows, dtype=np.int64)
    for epoch in np.unique(epochs):
        mask = epochs == epoch
        out[mask] = _permutation(n_windows, seed, int(epoch))[within[mask]]
    return out


def _stream(ids: Any, what: str, vocab_size: int) -> torch.Tensor:
    """`ids` as a 1-D int64 CPU tensor of valid token ids."""
    tensor = torch.as_tensor(np.asarray(ids) if not isinstance(ids, torch.Tensor) else ids)
    if tensor.dim() != 1 or tensor.dtype.is_floating_point or tensor.dtype == torch.bool:
        raise DataError(f"the {what} must be a 1-D array of integer token ids")
    tensor = tensor.to(device="cpu", dtype=torch.long)
    if tensor.numel() and (int(tensor.min()) < 0 or int(tensor.max()) >= vocab_size):
        raise DataError(
            f"the {what} holds token ids outside [0, {vocab_size}) (the model's vocabulary): "
            f"{int(tensor.min())}..{int(tensor.max())}"
        )
    return tensor


def _digest(tensor: torch.Tensor) -> str:
    return hashlib.sha256(tensor.numpy().tobytes()).hexdigest()[:16]


def _weights_digest(model: nn.Module) -> str:
    digest = hashlib.sha256()
    for name, value in model.state_dict().items():
        digest.update(name.encode("utf-8"))
        digest.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()[:16]


def set_dropout(model: nn.Module, rate: float) -> None:
    """Set every dropout of `model` (modules and attention probabilities) to `rate`."""
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = rate
        elif isinstance(module, CausalSelfAttention):
            module.dropout = rate


# ---- evaluation ----------------------------------------------------------------------------------
@torch.no_grad()
def evaluate_nll(
    model: GPTDecoder,
    ids: Any,
    seq_len: int,
    rows: int = 16,
    max_tokens: int | None = None,
) -> tuple[float, int]:
    """Summed NLL (nats) and the number of scored tokens of a held-out stream.

    The stream (its first `max_tokens` tokens when given) is cut into non-overlapping windows of
    `seq_len` inputs, each from an empty context, `rows` windows per forward pass, plus the final
    partial window: every token after the first is scored exactly once.
    """
    if not 1 <= seq_len <= model.n_positions:
        raise ConfigError(f"seq_len must be in [1, {model.n_positions}], got {seq_len}")
    stream = _stream(ids, "held-out stream", model.vocab_size)
    if max_tokens is not None:
        stream = stream[:max_tokens]
    n = stream.numel()
    if n < 2:
        raise DataError(f"the held-out stream has {n} token(s); at least 2 are needed")
    device = next(model.parameters()).device
    stream = stream.to(device)
    full = (n - 1) // seq_len
    pieces = [(a, min(rows, full - a)) for a in range(0, full, max(1, rows))]
    was_training = model.training
    model.eval()
    total = 0.0
    try:
        for first, count in pieces:
            start, stop = first * seq_len, (first + count) * seq_len
            inputs = stream[start:stop].view(count, seq_len)
            targets = stream[start + 1 : stop + 1].view(count, seq_len)
            total += _summed_nll(model, inputs, targets)
        if full * seq_len < n - 1:
            inputs = stream[full * seq_len : n - 1].unsqueeze(0)
            targets = stream[full * seq_len + 1 : n].unsqueeze(0)
            total += _summed_nll(model, inputs, targets)
    finally:
        model.train(was_training)
    return total, n - 1


def _summed_nll(model: GPTDecoder, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    logits, _ = model(inputs)
    return float(F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), reduction="sum"))


# ---- the loop ------------------------------------------------------------------------------------
@dataclass
class LMTrainResult:
    """What a finished run reports (`valid_nll`: mean nats per token of the final evaluation)."""

    steps: int
    train_loss: float
    valid_nll: float
    valid_tokens: int
    tokens: int
    seconds: float
    resumed_from_step: int
    curve: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (without the curve, which has its own file)."""
        out = {k: v for k, v in asdict(self).items() if k != "curve"}
        out["valid_ppl"] = math.exp(self.valid_nll) if self.valid_nll < 700 else math.inf
        out["seconds"] = round(self.seconds, 3)
        return out


def adamw(model: nn.Module, settings: LMTrainSettings) -> torch.optim.AdamW:
    """AdamW at `settings.lr` with `settings.betas`, weight decay on matrices only (the recipe's
    optimizer, shared with the proxy check)."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": settings.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=settings.lr,
        betas=settings.betas,
    )


def write_curve(path: str | Path, curve: list[dict[str, Any]]) -> None:
    """The curve as CSV (columns `CURVE_COLUMNS`), written atomically."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CURVE_COLUMNS)
    for row in curve:
        writer.writerow(["" if row[c] is None else row[c] for c in CURVE_COLUMNS])
    write_text_atomic(path, buffer.getvalue())


def train_lm(
    model: GPTDecoder,
    train_ids: Any,
    valid_ids: Any,
    settings: LMTrainSettings,
    *,
    state_dir: str | Path | None = None,
    fingerprint_extra: Mapping[str, Any] | None = None,
    curve_path: str | Path | None = None,
    threads: int = 1,
    progress: Callable[[str], None] | None = None,
) -> LMTrainResult:
    """Train `model` in place on `train_ids` (1-D token ids) for `settings.steps` steps.

    Seeds torch with `settings.seed` before the first step (the caller builds the model under
    its own seed); resumes from `state_dir` when it holds a state of the same inputs (a state of
    other inputs is refused naming what differs). `progress(message)` gets one line per curve
    row. The model is left in eval mode.
    """
    seq_len, rows = settings.seq_len, settings.rows
    if seq_len > model.n_positions:
        raise ConfigError(f"seq_len {seq_len} exceeds the model's n_positions {model.n_positions}")
    train = _stream(train_ids, "training stream", model.vocab_size)
    valid = _stream(valid_ids, "validation stream", model.vocab_size)
    n_windows = train.numel() // (seq_len + 1)
    if n_windows < rows:
        raise DataError(
            f"the training stream ({train.numel()} tokens) has {n_windows} windows of "
            f"{seq_len + 1} tokens, fewer than one batch of {rows} (batch_tokens "
            f"{settings.batch_tokens} // seq_len {seq_len})"
        )
    device = next(model.parameters()).device
    windows = train[: n_windows * (seq_len + 1)].view(n_windows, seq_len + 1).to(device)
    set_dropout(model, settings.dropout)
    optimizer = adamw(model, settings)
    say = progress or (lambda message: None)

    state: StateFolder | None = None
    if state_dir is not None:
        recipe = {k: v for k, v in settings.to_dict().items() if k != "save_every"}
        inputs = {
            "format": 1,
            "settings": recipe,
            "train": _digest(train),
            "valid": _digest(valid),
            "init": _weights_digest(model),
            "arch": model.arch.to_dict(),
            "vocab_size": model.vocab_size,
            "n_positions": model.n_positions,
            "extra": dict(fingerprint_extra or {}),
        }
        state = StateFolder(state_dir, json.loads(json.dumps(inputs, default=str)))
    step, tokens, seconds = 0, 0, 0.0
    curve: list[dict[str, Any]] = []
    recent: list[float] = []
    window = {"loss": 0.0, "steps": 0}
    saved = state.load(required=STATE_KEYS) if state is not None else None
    if saved is not None:
        assert state is not None
        try:
            model.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
            step, tokens, seconds = int(saved["step"]), int(saved["tokens"]), saved["seconds"]
            curve, recent, window = list(saved["curve"]), list(saved["recent"]), saved["window"]
            set_rng_state(saved["rng"])
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            raise TrainStateError(
                f"{state.state_file}: the resumable state does not fit this run "
                f"({one_line(error)}); delete the folder (or pass --fresh) to start over"
            ) from None
        say(f"resumed from {state.state_file} at step {step}")
    else:
        torch.manual_seed(settings.seed)
    resumed_from = step

    def save() -> None:
        if state is not None:
            state.save(
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "step": step,
                    "rng": rng_state(),
                    "curve": curve,
                    "recent": recent,
                    "window": window,
                    "tokens": tokens,
                    "seconds": seconds,
                }
            )

    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        model.train()
        while step < settings.steps:
            started = time.perf_counter()
            lr = settings.lr_at(step)
            for group in optimizer.param_groups:
                group["lr"] = lr
            index = torch.from_numpy(batch_windows(n_windows, rows, settings.seed, step))
            batch = windows[index.to(device)]
            loss = lm_loss(model, batch[:, :-1], batch[:, 1:])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if settings.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
            optimizer.step()
            value = float(loss.detach())
            step += 1
            tokens += rows * seq_len
            recent = [*recent, value][-RECENT:]
            window = {"loss": window["loss"] + value, "steps": window["steps"] + 1}
            if (settings.eval_every and step % settings.eval_every == 0) or step == settings.steps:
                nll, count = evaluate_nll(model, valid, seq_len, rows, settings.eval_tokens)
                model.train()
                seconds += time.perf_counter() - started
                row = {
                    "step": step,
                    "lr": lr,
                    "train_loss": window["loss"] / window["steps"],
                    "valid_nll": nll / count,
                    "valid_tokens": count,
                    "tokens": tokens,
                    "seconds": round(seconds, 3),
                }
                curve.append(row)
                window = {"loss": 0.0, "steps": 0}
                if curve_path is not None:
                    write_curve(curve_path, curve)
                say(
                    f"step {step}/{settings.steps}: lr {lr:.3g}, train loss "
                    f"{row['train_loss']:.4f}, valid nll {row['valid_nll']:.4f}"
                )
            else:
                seconds += time.perf_counter() - started
            if step % settings.save_every == 0 or step == settings.steps:
                save()
    finally:
        torch.set_num_threads(previous_threads)
    model.eval()
    if curve_path is not None:
        write_curve(curve_path, curve)
    last = curve[-1]
    return LMTrainResult(
        steps=step,
        train_loss=sum(recent) / len(recent),
        valid_nll=float(last["valid_nll"]),
        valid_tokens=int(last["valid_tokens"]),
        tokens=tokens,
        seconds=seconds,
        resumed_from_step=resumed_from,
        curve=curve,
    )


# ---- checkpoints ---------------------------------------------------------------------------------
def save_checkpoint(path: str | Path, model: GPTDecoder, meta: Mapping[str, Any]) -> None:
    """Write `model` and `meta` (plain JSON data) to one torch file, atomically."""
    plain = json.loads(json.dumps(dict(meta)))
    tensors: dict[int, torch.Tensor] = {}  # tied weights stay one tensor
    state_dict = {
        name: tensors.setdefault(value.data_ptr(), value.detach().cpu())
        for name, value in model.state_dict().items()
    }
    payload = {
        "arch": model.arch.to_dict(),
        "vocab_size": model.vocab_size,
        "n_positions": model.n_positions,
        "state_dict": state_dict,
        "meta": plain,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: str | Path, *, dropout: float = 0.0) -> tuple[GPTDecoder, dict]:
    """The decoder `save_checkpoint` wrote (in eval mode, with `dropout`) and its meta."""
    what = "decoder checkpoint"
    payload = load_torch(path, what)
    if not isinstance(payload, dict) or any(k not in payload for k in CHECKPOINT_KEYS):
        missing = [k for k in CHECKPOINT_KEYS if not isinstance(payload, dict) or k not in payload]
        raise DataError(f"{path}: not a {what} (lacks {', '.join(missing)})")
    try:
        arch = GPTArch.from_dict(payload["arch"])
        model = GPTDecoder(
            arch, int(payload["vocab_size"]), int(payload["n_positions"]), dropout=dropout
        )
        model.load_state_dict(payload["state_dict"])
    except (ArchError, KeyError, TypeError, ValueError, RuntimeError) as error:
        raise DataError(f"{path}: damaged {what} ({one_line(error)})") from None
    model.eval()
    return model, dict(payload["meta"])

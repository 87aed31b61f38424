"""Proxy check: does the decoder-parameter count rank trained models by perplexity?

`proxy_check` samples K distinct architectures from a (small) space with a seeded generator,
trains each from scratch for the same fixed budget on a word-level corpus (PTB), measures the
validation perplexity, and reports Spearman's rho and Kendall's tau-b (scipy) of

- decoder parameters (`nasflow.space.gpt_params.decoder_params`, the LTS proxy) and
- total parameters (decoder + token and position embeddings; the head is tied)

for the space's `backbone` (models built by `nasflow.lts.model.build_decoder`; Transformer-XL
with the tied head has no position table, so its total is decoder + token embedding)

against **-log(validation perplexity)** (= minus the mean validation NLL in nats). Sign
convention: a **positive** correlation means *more parameters -> lower perplexity*, which is the
direction the LTS papers report (0.95+ Spearman for decoder parameters after full training).
Only ranks matter, so this equals minus the correlation with the perplexity itself.

Training recipe (identical for every architecture, documented in the result's `settings`):
the model is built with `torch.manual_seed(seed)`, context `seq_len` (= `n_positions`);
the training split is laid out as `batch` contiguous streams and step `s` uses window
`s mod n_windows` (no shuffling; so every arch sees the same tokens in the same order); AdamW
(betas 0.9/0.95, weight decay on matrices only), peak `lr` reached by a linear warm-up over
`warmup` steps (default 10% of `steps`), then cosine decay to 10% of the peak at the last step;
gradient norm clipped to 1.0; dropout `dropout` (default 0: short budgets underfit). Validation
perplexity is `exp(mean NLL)` over every full non-overlapping `seq_len` window of the validation
stream laid out in `batch` rows (each window starts from an empty context), optionally limited to
the first `valid_tokens` tokens.

Transformer-XL (`backbone: transformer-xl`) is trained and evaluated segment by segment as the
original: `mem_len = seq_len`, and the memory of window `w` carries into window `w + 1` of the
same streams (reset to empty at window 0: at the start of training, at every wrap-around and at
the start of validation), so a window's context is the previous `seq_len` tokens, not empty.

Resuming: every finished architecture appends one row to a jsonl state file (with a fingerprint
of the corpus, the space and the settings, K excluded so K can grow); a rerun with the same
fingerprint skips the architectures already there, and a different fingerprint is an error.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats

from nasflow.core.errors import ConfigError, DataError
from nasflow.core.io import atomic_path, read_state_rows
from nasflow.data.ptb import LMCorpus, batchify, load_corpus, n_windows, window
from nasflow.lts.lm_train import LMTrainSettings, adamw
from nasflow.lts.model import Decoder, GPTDecoder, build_decoder, lm_loss
from nasflow.lts.txl_model import Mems
from nasflow.space.gpt import GPTArch, LTSSpace, resolve_space
from nasflow.space.gpt_params import decoder_params, total_params

SIGN_CONVENTION = (
    "rank correlation of the parameter count with -log(valid perplexity): positive means more "
    "parameters -> lower perplexity"
)
CSV_COLUMNS = (
    "id",
    "arch",
    "n_layer",
    "d_model",
    "d_inner",
    "n_head",
    "decoder_params",
    "total_params",
    "valid_ppl",
    "valid_nll",
    "train_loss",
    "train_seconds",
    "eval_seconds",
)


@dataclass(frozen=True)
class ProxySettings:
    """The training budget and recipe shared by every architecture (see the module docstring)."""

    k: int = 8
    steps: int = 300
    batch: int = 16
    seq_len: int = 64
    lr: float = 1e-3
    warmup: int | None = None
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    dropout: float = 0.0
    seed: int = 1
    valid_tokens: int | None = None
    device: str = "cpu"
    threads: int = 1

    def __post_init__(self) -> None:
        for name in ("k", "steps", "batch", "seq_len", "threads"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"proxy check: {name} must be a positive integer, got {value!r}")
        if self.warmup is not None and not 0 <= self.warmup <= self.steps:
            raise ConfigError(f"proxy check: warmup must be in [0, steps], got {self.warmup}")
        if self.valid_tokens is not None and self.valid_tokens < 2:
            raise ConfigError(f"proxy check: valid_tokens must be >= 2, got {self.valid_tokens}")
        if not self.lr > 0:
            raise ConfigError(f"proxy check: lr must be > 0, got {self.lr}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"proxy check: dropout must be in [0, 1), got {self.dropout}")

    @property
    def warmup_steps(self) -> int:
        return self.warmup if self.warmup is not None else max(1, self.steps // 10)

    def recipe(self) -> LMTrainSettings:
        """The training recipe as `LMTrainSettings` (its schedule `lr_at` and optimizer `adamw`,
        the one decoder training recipe); the batch layout stays the proxy check's."""
        return LMTrainSettings(
            steps=self.steps,
            batch_tokens=self.batch * self.seq_len,
            seq_len=self.seq_len,
            lr=self.lr,
            warmup=self.warmup_steps,
            min_lr_ratio=self.min_lr_ratio,
            weight_decay=self.weight_decay,
            grad_clip=self.grad_clip,
            dropout=self.dropout,
            seed=self.seed,
        )

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "warmup_steps": self.warmup_steps}


def fingerprint(corpus: LMCorpus, space: LTSSpace, settings: ProxySettings) -> str:
    """What a state row must match to be reused: corpus, space and settings except K/threads."""
    recipe = {k: v for k, v in settings.to_dict().items() if k not in ("k", "threads")}
    recipe["device"] = torch.device(settings.device).type
    data = {"corpus": corpus.fingerprint, "space": space.fingerprint, "settings": recipe}
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]


# ---- training -------------------------------------------------------------------------------
def _build(arch: GPTArch, vocab: int, settings: ProxySettings, backbone: str) -> Decoder:
    """The backbone's model for the proxy's recipe (Transformer-XL: `mem_len = seq_len`)."""
    opts = {} if backbone == "gpt2" else {"mem_len": settings.seq_len}
    return build_decoder(arch, backbone, vocab, settings.seq_len, settings.dropout, **opts)


def train_and_evaluate(
    arch: GPTArch,
    corpus: LMCorpus,
    settings: ProxySettings,
    device: torch.device,
    backbone: str = "gpt2",
) -> dict[str, Any]:
    """Train one architecture of `backbone` for the fixed budget; return its result row
    (without `id`)."""
    torch.manual_seed(settings.seed)
    model = _build(arch, corpus.vocab_size, settings, backbone)
    model.to(device)
    recipe = settings.recipe()
    optimizer = adamw(model, recipe)
    train = batchify(corpus.train, settings.batch).to(device)
    windows = n_windows(train, settings.seq_len)
    if windows < 1:
        raise DataError(
            f"the training split ({corpus.train.numel()} tokens) is too short for "
            f"{settings.batch} streams of {settings.seq_len + 1} tokens"
        )
    losses: list[float] = []
    model.train()
    mems: Mems | None = None
    started = time.perf_counter()
    for step in range(settings.steps):
        for group in optimizer.param_groups:
            group["lr"] = recipe.lr_at(step)
        inputs, targets = window(train, step % windows, settings.seq_len)
        if isinstance(model, GPTDecoder):
            loss = lm_loss(model, inputs, targets)
        else:  # the memory of the previous window of the same streams (none at window 0)
            loss, mems = model.loss(inputs, targets, None if step % windows == 0 else mems)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
        optimizer.step()
        losses.append(float(loss.detach()))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    train_seconds = time.perf_counter() - started
    started = time.perf_counter()
    nll, scored = evaluate(model, corpus.valid, settings, device)
    eval_seconds = time.perf_counter() - started
    tail = losses[-max(1, min(10, len(losses))) :]
    return {
        "arch": arch.to_dict(),
        "label": arch.describe(),
        "decoder_params": decoder_params(arch, backbone),
        "total_params": total_params(arch, corpus.vocab_size, settings.seq_len, backbone),
        "valid_nll": nll,
        "valid_ppl": math.exp(nll) if nll < 700 else math.inf,
        "valid_tokens_scored": scored,
        "train_loss": sum(tail) / len(tail),
        "train_seconds": round(train_seconds, 3),
        "eval_seconds": round(eval_seconds, 3),
    }


@torch.no_grad()
def evaluate(
    model: Decoder, ids: torch.Tensor, settings: ProxySettings, device: torch.device
) -> tuple[float, int]:
    """Mean NLL (nats) over the full validation windows, and how many tokens were scored
    (Transformer-XL: the memory carried from window to window)."""
    if settings.valid_tokens is not None:
        ids = ids[: settings.valid_tokens]
    rows = max(1, min(settings.batch, ids.numel() // (settings.seq_len + 1)))
    streams = batchify(ids, rows).to(device)
    count = n_windows(streams, settings.seq_len)
    if count < 1:
        raise DataError(
            f"the validation split ({ids.numel()} tokens) is shorter than one window of "
            f"{settings.seq_len + 1} tokens"
        )
    model.eval()
    total, tokens = 0.0, 0
    mems: Mems | None = None
    for index in range(count):
        inputs, targets = window(streams, index, settings.seq_len)
        if isinstance(model, GPTDecoder):
            logits, _ = model(inputs)
        else:
            logits, mems = model(inputs, mems)
        total += float(
            torch.nn.functional.cross_entropy(
                logits.flatten(0, 1).float(), targets.flatten(), reduction="sum"
            )
        )
        tokens += targets.numel()
    return total / tokens, tokens


# ---- correlations ---------------------------------------------------------------------------
def rank_correlations(x: Sequence[float], y: Sequence[float]) -> dict[str, float | None]:
    """Spearman's rho and Kendall's tau-b (scipy); None where undefined (n < 2, constant)."""
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    out: dict[str, float | None] = {"spearman": None, "kendall": None}
    if a.size < 2 or np.all(a == a[0]) or np.all(b == b[0]):
        return out
    rho = float(stats.spearmanr(a, b).statistic)
    tau = float(stats.kendalltau(a, b).statistic)
    out["spearman"] = rho if math.isfinite(rho) else None
    out["kendall"] = tau if math.isfinite(tau) else None
    return out


def summarize(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Correlations of decoder and total parameters with -log(valid ppl) over `rows`."""
    score = [-float(r["valid_nll"]) for r in rows]
    return {
        "decoder_params": rank_correlations([r["decoder_params"] for r in rows], score),
        "total_params": rank_correlations([r["total_params"] for r in rows], score),
        "n": len(rows),
    }


# ---- state ----------------------------------------------------------------------------------
def read_state(path: Path, expected: str) -> dict[str, dict[str, Any]]:
    """Finished rows by arch id; a torn last line (interrupted write) is dropped from the file."""
    done: dict[str, dict[str, Any]] = {}
    hint = "delete it or use another state file"
    for number, row in read_state_rows(path, "proxy-check state", ("id",), hint):
        if row.get("fingerprint") != expected:
            raise DataError(
                f"{path}:{number}: state written for other settings (fingerprint "
                f"{row.get('fingerprint')}, now {expected}); delete it or use another state file"
            )
        done[row["id"]] = row
    return done


def _append(path: Path, row: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(row, sort_keys=True) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


# ---- entry point ----------------------------------------------------------------------------
def proxy_check(
    corpus: LMCorpus | str | Path,
    space: LTSSpace | str | Mapping[str, Any],
    *,
    k: int = 8,
    steps: int = 300,
    batch: int = 16,
    seq_len: int = 64,
    lr: float = 1e-3,
    seed: int = 1,
    device: str = "cpu",
    threads: int = 1,
    warmup: int | None = None,
    dropout: float = 0.0,
    valid_tokens: int | None = None,
    state_path: str | Path | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Train K sampled architectures and rank-correlate parameters with validation perplexity.

    Returns `{"space", "settings", "corpus", "fingerprint", "sign_convention", "correlations":
    {"decoder_params": {"spearman", "kendall"}, "total_params": {...}, "n"}, "rows", "trained",
    "resumed", "wall_seconds"}`; rows are in sampling order. `progress(row)` is called after each
    architecture (`row["resumed"]` tells whether it came from the state file).
    """
    settings = ProxySettings(
        k=k,
        steps=steps,
        batch=batch,
        seq_len=seq_len,
        lr=lr,
        warmup=warmup,
        dropout=dropout,
        seed=seed,
        valid_tokens=valid_tokens,
        device=device,
        threads=threads,
    )
    space = resolve_space(space)
    if not isinstance(corpus, LMCorpus):
        corpus = load_corpus(corpus)
    try:
        target = torch.device(device)
    except RuntimeError as error:
        raise ConfigError(f"proxy check: invalid device {device!r} ({error})") from None
    if target.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"proxy check: device {device!r} requested but CUDA is not available")
    key = fingerprint(corpus, space, settings)
    state = Path(state_path) if state_path is not None else None
    done = read_state(state, key) if state is not None else {}
    archs = space.sample_unique(k, seed=seed)
    rows: list[dict[str, Any]] = []
    trained = resumed = 0
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    started = time.perf_counter()
    try:
        for arch in archs:
            if arch.id in done:
                row = {**done[arch.id], "resumed": True}
                resumed += 1
            else:
                row = {
                    "id": arch.id,
                    **train_and_evaluate(arch, corpus, settings, target, space.backbone),
                }
                row["fingerprint"] = key
                if state is not None:
                    _append(state, row)
                row["resumed"] = False
                trained += 1
            rows.append(row)
            if progress is not None:
                progress(row)
    finally:
        torch.set_num_threads(previous_threads)
    return {
        "space": space.to_mapping(),
        "settings": settings.to_dict(),
        "corpus": corpus.describe(),
        "fingerprint": key,
        "sign_convention": SIGN_CONVENTION,
        "correlations": summarize(rows),
        "rows": rows,
        "trained": trained,
        "resumed": resumed,
        "wall_seconds": round(time.perf_counter() - started, 3),
    }


def write_csv(path: str | Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """One line per architecture (per-layer values joined with `;`), written atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for row in rows:
            arch = row["arch"]
            writer.writerow(
                [
                    row["id"],
                    row.get("label", ""),
                    arch["n_layer"],
                    arch["d_model"],
                    ";".join(str(v) for v in arch["d_inner"]),
                    ";".join(str(v) for v in arch["n_head"]),
                    row["decoder_params"],
                    row["total_params"],
                    f"{row['valid_ppl']:.4f}",
                    f"{row['valid_nll']:.6f}",
                    f"{row['train_loss']:.6f}",
                    row["train_seconds"],
                    row["eval_seconds"],
                ]
            )

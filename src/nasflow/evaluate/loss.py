"""Validation loss as HAT scores a SubTransformer (reference §3).

Token-weighted label-smoothed cross-entropy over the whole split (or its first `sentences`
sentences) in bits: `sum(loss) / ntokens / ln 2`, batched by tokens without shuffling, in eval
mode without gradients. Batches can be collated once and reused for many architectures.
`sentence_losses` gives the same sums per sentence (for validation subsets and bootstraps).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from nasflow.core.device import autocast
from nasflow.data.batching import PAD, Batch, batch_indices, collate
from nasflow.data.prepare import EncodedSplit
from nasflow.model import SuperTransformer
from nasflow.model.loss import label_smoothed_nll_loss, label_smoothed_row_losses


@dataclass(frozen=True)
class LossResult:
    """Token-weighted losses in bits per target token (EOS included) and what they cover."""

    loss_bits: float
    nll_bits: float
    ntokens: int
    nsentences: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def model_device(model: torch.nn.Module) -> torch.device:
    """The device holding the model's parameters."""
    return next(model.parameters()).device


def prepare_batches(
    split: EncodedSplit,
    max_tokens: int = 4096,
    sentences: int = 0,
    device: torch.device | str = "cpu",
    max_positions: int = 1024,
    indices: np.ndarray | None = None,
) -> list[Batch]:
    """Collate the split (its first `sentences` sentences when > 0, or the sentences `indices`)
    once, on `device`.

    Sentences longer than `max_positions` (with EOS) are skipped, as in fairseq validation.
    """
    if sentences < 0:
        raise ValueError(f"sentences must be >= 0 (0 = all), got {sentences}")
    if sentences and indices is not None:
        raise ValueError("prepare_batches takes sentences or indices, not both")
    if sentences:
        indices = np.arange(min(sentences, len(split)), dtype=np.int64)
    groups = batch_indices(
        split, max_tokens, shuffle=False, max_positions=max_positions, indices=indices
    )
    return [collate(split, group).to(device) for group in groups]


@torch.no_grad()
def validation_loss(
    model: SuperTransformer,
    split: EncodedSplit | None,
    *,
    max_tokens: int = 4096,
    label_smoothing: float = 0.1,
    sentences: int = 0,
    device: torch.device | None = None,
    dtype: torch.dtype = torch.float32,
    batches: Sequence[Batch] | None = None,
) -> LossResult:
    """Loss of the model's current architecture on `split`, or on precollated `batches`.

    `batches` (from `prepare_batches`, already on the model's device) override `split`,
    `max_tokens` and `sentences`.
    """
    device = device or model_device(model)
    if batches is None:
        if split is None:
            raise ValueError("validation_loss needs a split or precollated batches")
        batches = prepare_batches(split, max_tokens, sentences, device, model.config.max_positions)
    if not batches:
        raise ValueError("validation_loss: no sentences to score (empty split or all too long)")
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    nll_sum = torch.zeros((), dtype=torch.float64, device=device)
    ntokens = nsentences = 0
    try:
        for batch in batches:
            with autocast(device, dtype):
                logits = model(batch.src_tokens, batch.prev_output_tokens)
            loss, nll = label_smoothed_nll_loss(logits, batch.target, label_smoothing)
            loss_sum += loss.double()
            nll_sum += nll.double()
            ntokens += batch.ntokens
            nsentences += batch.size
    finally:
        model.train(was_training)
    scale = ntokens * math.log(2)
    return LossResult(
        loss_bits=float(loss_sum) / scale,
        nll_bits=float(nll_sum) / scale,
        ntokens=ntokens,
        nsentences=nsentences,
    )


@torch.no_grad()
def sentence_losses(
    model: SuperTransformer,
    batches: Sequence[Batch],
    *,
    label_smoothing: float = 0.1,
    dtype: torch.dtype = torch.float32,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per sentence of precollated `batches`: its split index, summed label-smoothed loss (nats)
    and target tokens, sorted by index. Summed over any set of sentences and divided by
    `tokens * ln 2` they give that set's `validation_loss` (up to float rounding)."""
    if not batches:
        raise ValueError("sentence_losses: no sentences to score (empty split or all too long)")
    device = model_device(model)
    was_training = model.training
    model.eval()
    indices, losses, tokens = [], [], []
    try:
        for batch in batches:
            with autocast(device, dtype):
                logits = model(batch.src_tokens, batch.prev_output_tokens)
            loss, _ = label_smoothed_row_losses(logits, batch.target, label_smoothing)
            losses.append(loss.double().cpu().numpy())
            tokens.append((batch.target != PAD).sum(dim=1).cpu().numpy())
            indices.append(batch.indices.cpu().numpy())
    finally:
        model.train(was_training)
    index = np.concatenate(indices).astype(np.int64)
    order = np.argsort(index, kind="stable")
    loss_array = np.concatenate(losses)
    return index[order], loss_array[order], np.concatenate(tokens).astype(np.int64)[order]

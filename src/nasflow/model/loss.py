"""Label-smoothed cross-entropy as in HAT (old fairseq `label_smoothed_cross_entropy`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from nasflow.data.batching import PAD


def _token_terms(
    logits: torch.Tensor, target: torch.Tensor, epsilon: float, ignore_index: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per target token (shape of `target`, float32, 0 at pads): the NLL and the smoothing term
    `-lprobs.sum()`."""
    if not 0.0 <= epsilon < 1.0:
        raise ValueError(f"label smoothing epsilon must lie in [0, 1), got {epsilon}")
    lprobs = F.log_softmax(logits.float(), dim=-1)
    keep = target != ignore_index
    picked = target.masked_fill(~keep, 0).unsqueeze(-1)
    nll = -lprobs.gather(-1, picked).squeeze(-1)
    smooth = -lprobs.sum(-1)
    zero = lprobs.new_zeros(())
    return torch.where(keep, nll, zero), torch.where(keep, smooth, zero)


def label_smoothed_nll_loss(
    logits: torch.Tensor, target: torch.Tensor, epsilon: float, ignore_index: int = PAD
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed label-smoothed loss and summed NLL over the non-pad target tokens, in float32.

    `logits` is [..., V] and `target` the matching [...]; with `lprobs = log_softmax(logits)`,
    each token costs `(1 - epsilon) * -lprobs[target] + epsilon / V * -lprobs.sum()`.
    """
    nll, smooth = _token_terms(logits, target, epsilon, ignore_index)
    nll_sum = nll.sum()
    loss = (1.0 - epsilon) * nll_sum + epsilon / logits.shape[-1] * smooth.sum()
    return loss, nll_sum


def label_smoothed_row_losses(
    logits: torch.Tensor, target: torch.Tensor, epsilon: float, ignore_index: int = PAD
) -> tuple[torch.Tensor, torch.Tensor]:
    """`label_smoothed_nll_loss` per row of a [B, T, V] batch: the loss and NLL sums [B]."""
    nll, smooth = _token_terms(logits, target, epsilon, ignore_index)
    nll_rows = nll.sum(-1)
    loss = (1.0 - epsilon) * nll_rows + epsilon / logits.shape[-1] * smooth.sum(-1)
    return loss, nll_rows

"""Label-smoothed cross-entropy as in HAT (old fairseq `label_smoothed_cross_entropy`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from nasflow.data.batching import PAD


def label_smoothed_nll_loss(
    logits: torch.Tensor, target: torch.Tensor, epsilon: float, ignore_index: int = PAD
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed label-smoothed loss and summed NLL over the non-pad target tokens, in float32.

    `logits` is [..., V] and `target` the matching [...]; with `lprobs = log_softmax(logits)`,
    each token costs `(1 - epsilon) * -lprobs[target] + epsilon / V * -lprobs.sum()`.
    """
    if not 0.0 <= epsilon < 1.0:
        raise ValueError(f"label smoothing epsilon must lie in [0, 1), got {epsilon}")
    lprobs = F.log_softmax(logits.float(), dim=-1).reshape(-1, logits.shape[-1])
    target = target.reshape(-1)
    keep = target != ignore_index
    picked = target.masked_fill(~keep, 0).unsqueeze(-1)
    nll = -lprobs.gather(-1, picked).squeeze(-1)
    smooth = -lprobs.sum(-1)
    zero = lprobs.new_zeros(())
    nll_sum = torch.where(keep, nll, zero).sum()
    smooth_sum = torch.where(keep, smooth, zero).sum()
    loss = (1.0 - epsilon) * nll_sum + epsilon / lprobs.shape[-1] * smooth_sum
    return loss, nll_sum

"""Label-smoothed cross-entropy: the HAT formula, pad masking, float32 and gradients."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from nasflow.data.batching import PAD
from nasflow.model.loss import label_smoothed_nll_loss, label_smoothed_row_losses


def test_without_smoothing_it_is_cross_entropy():
    torch.manual_seed(0)
    logits = torch.randn(3, 5, 11)
    target = torch.randint(4, 11, (3, 5))
    target[0, 3:] = PAD
    loss, nll = label_smoothed_nll_loss(logits, target, epsilon=0.0)
    expected = F.cross_entropy(
        logits.view(-1, 11), target.view(-1), ignore_index=PAD, reduction="sum"
    )
    assert torch.allclose(loss, expected) and torch.allclose(nll, expected)


def test_hand_computed_case():
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.25], [0.2, 0.3, 0.5]]))
    target = torch.tensor([0, 2])
    loss, nll = label_smoothed_nll_loss(logits, target, epsilon=0.3, ignore_index=-100)
    nll_expected = -math.log(0.5) - math.log(0.5)
    smooth = -(math.log(0.5) + 2 * math.log(0.25)) - (math.log(0.2) + math.log(0.3) + math.log(0.5))
    assert nll.item() == pytest.approx(nll_expected, rel=1e-6)
    assert loss.item() == pytest.approx(0.7 * nll_expected + 0.1 * smooth, rel=1e-6)


def test_pad_positions_contribute_nothing():
    torch.manual_seed(1)
    logits = torch.randn(2, 4, 9)
    target = torch.tensor([[5, 6, PAD, PAD], [7, 8, 4, PAD]])
    full = label_smoothed_nll_loss(logits, target, epsilon=0.1)
    changed = logits.clone()
    changed[target == PAD] = 100.0 * torch.randn(3, 9)
    again = label_smoothed_nll_loss(changed, target, epsilon=0.1)
    kept = target != PAD
    alone = label_smoothed_nll_loss(logits[kept], target[kept], epsilon=0.1)
    for a, b, c in zip(full, again, alone, strict=True):
        assert torch.allclose(a, b) and torch.allclose(a, c)
    assert label_smoothed_nll_loss(logits, torch.full((2, 4), PAD), 0.1)[0].item() == 0.0


def test_half_precision_logits_give_float32_and_finite_gradients():
    torch.manual_seed(2)
    logits = (10 * torch.randn(4, 6, 13)).to(torch.bfloat16).requires_grad_()
    target = torch.randint(4, 13, (4, 6))
    target[:, -2:] = PAD
    loss, nll = label_smoothed_nll_loss(logits, target, epsilon=0.1)
    assert loss.dtype == torch.float32 and nll.dtype == torch.float32
    assert loss.item() > nll.item() * 0.9 > 0
    loss.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad.float()).all()
    assert (logits.grad[:, -2:] == 0).all()


def test_epsilon_out_of_range():
    with pytest.raises(ValueError, match="epsilon"):
        label_smoothed_nll_loss(torch.zeros(1, 5), torch.tensor([4]), epsilon=1.0)


def test_row_losses_sum_to_the_batch_loss():
    torch.manual_seed(0)
    logits = torch.randn(3, 5, 11)
    target = torch.randint(2, 11, (3, 5))
    target[1, 3:] = PAD
    target[2, 1:] = PAD
    loss, nll = label_smoothed_nll_loss(logits, target, 0.1)
    rows, nll_rows = label_smoothed_row_losses(logits, target, 0.1)
    assert rows.shape == nll_rows.shape == (3,)
    assert torch.allclose(rows.sum(), loss) and torch.allclose(nll_rows.sum(), nll)
    # each row is the batch loss of that row alone (pads count nothing)
    for b in range(3):
        alone, _ = label_smoothed_nll_loss(logits[b : b + 1], target[b : b + 1], 0.1)
        assert torch.allclose(rows[b], alone)

"""Zero-cost proxies over any `torch.nn.Module`: grad-norm, snip and synflow.

Definitions follow NASLib (`naslib/predictors/utils/pruners/measures`) and White et al., "A Deeper
Look at Zero-Cost Proxies", summed over the *weight tensors* (every parameter with two or more
dimensions; biases and LayerNorm gains are left out, as NASLib scores Conv/Linear weights only):

- grad-norm: sum over weight tensors of the L2 norm of dL/dθ;
- snip: sum of |θ ⊙ dL/dθ| over all weight entries;
- synflow: sum of |θ ⊙ dR/dθ| over all weight entries, on a float64 copy of the model in eval
  mode whose parameters are all replaced by |θ|, with R the sum of its outputs on a data-free
  input (NASLib takes the absolute value per entry; with |θ| and a positive network it is the
  plain product of Tanaka et al.).

The caller supplies the loss (`loss_fn(model)`) or the output (`forward_fn(model)`), so the same
code scores a hand-computable toy model and the Transformer (`nasflow.zero_cost.predictor`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import Tensor, nn

NAMES: tuple[str, ...] = ("grad-norm", "snip", "synflow")
"""The proxies, in the order of the scores CSV."""


def weight_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """`(name, parameter)` of every parameter with `dim >= 2`, in registration order."""
    return [(name, p) for name, p in model.named_parameters() if p.dim() >= 2]


def _weight_gradients(model: nn.Module, value: Tensor) -> list[tuple[Tensor, Tensor]]:
    """`(weight, d value / d weight)` pairs; a weight the value does not use gets zeros.

    `torch.autograd.grad` leaves every `.grad` of the model untouched."""
    weights = [p for _, p in weight_parameters(model)]
    if not weights:
        raise ValueError(f"{type(model).__name__} has no weight tensors (parameters of dim >= 2)")
    grads = torch.autograd.grad(value, weights, allow_unused=True)
    return [
        (w, g if g is not None else torch.zeros_like(w))
        for w, g in zip(weights, grads, strict=True)
    ]


def grad_norm_and_snip(
    model: nn.Module, loss_fn: Callable[[nn.Module], Tensor]
) -> tuple[float, float]:
    """grad-norm and snip from one forward/backward of `loss_fn(model)` (a scalar loss).

    The model runs in eval mode (no dropout) and gets its mode back; parameters and `.grad`
    are not changed. Sums are taken in float64.
    """
    training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            pairs = _weight_gradients(model, loss_fn(model))
    finally:
        model.train(training)
    with torch.no_grad():
        grad_norm = sum(float(g.double().norm()) for _, g in pairs)
        snip = sum(float((w.double() * g.double()).abs().sum()) for w, g in pairs)
    return grad_norm, snip


def synflow(model: nn.Module, forward_fn: Callable[[nn.Module], Tensor]) -> float:
    """synflow of `model`, computed on a float64 eval-mode deep copy with every parameter |θ|.

    `forward_fn(copy)` runs the copy on a data-free input built in float64 where the input is
    floating point (e.g. ones); R is the sum of its output. The caller's model is not touched.
    """
    net = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        for param in net.parameters():
            param.abs_()
    for _, weight in weight_parameters(net):
        weight.requires_grad_(True)
    with torch.enable_grad():
        pairs = _weight_gradients(net, forward_fn(net).sum())
    with torch.no_grad():
        return sum(float((w * g).abs().sum()) for w, g in pairs)

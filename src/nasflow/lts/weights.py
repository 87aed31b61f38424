"""The decoders' weight initialisation, shared by the GPT-2 and Transformer-XL backbones."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn


def init_normal(
    model: nn.Module,
    linear_std: Callable[[str], float],
    other: Callable[[nn.Module], None] | None = None,
) -> None:
    """The decoders' initialisation, module by module in order: N(0, `linear_std(name)`) linear
    weights and zero biases, N(0, 0.02) embeddings, unit LayerNorms; `other(module)` for any
    other module (e.g. Transformer-XL's u and v)."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=linear_std(name))
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif other is not None:
            other(module)

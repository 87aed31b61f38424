"""The LTS proxy: decoder parameters in closed form, and total parameters.

Reference definition (LTS paper, section 3 of `reference-lts.md`): the parameters of every
attention block, feed-forward block and LayerNorm, including the final LayerNorm, weights and
biases; **excluding** the token embedding, the positional embedding and the output head (tied to
the token embedding here, so it adds nothing to the total either). For one GPT-2 layer of width
`d` and inner width `f`:

    attention     4*d*d + 4*d     (fused QKV d x 3d + 3d, output projection d x d + d)
    feed-forward  2*d*f + f + d   (d x f + f, f x d + d)
    LayerNorms    4*d             (two, weight and bias each)

i.e. `4d^2 + 2df + f + 9d` per layer, plus `2d` for the final LayerNorm. The number of heads does
not change the count (the heads split the same d x 3d projection).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol


class GPTArch(Protocol):
    """What the counts read of an architecture (`nasflow.space.gpt.GPTArch` has it)."""

    @property
    def d_model(self) -> int: ...

    @property
    def d_inner(self) -> Sequence[int]: ...


GPT2_VOCAB = 50257
GPT2_POSITIONS = 1024


def attention_params(d_model: int) -> int:
    """Fused QKV projection and output projection, weights and biases: `4d^2 + 4d`."""
    return 4 * d_model * d_model + 4 * d_model


def ffn_params(d_model: int, d_inner: int) -> int:
    """Two linear layers `d -> f -> d`, weights and biases: `2df + f + d`."""
    return 2 * d_model * d_inner + d_inner + d_model


def layer_params(d_model: int, d_inner: int) -> int:
    """One decoder layer (attention, feed-forward, two LayerNorms): `4d^2 + 2df + f + 9d`."""
    return attention_params(d_model) + ffn_params(d_model, d_inner) + 4 * d_model


def decoder_params(arch: GPTArch) -> int:
    """The LTS proxy: every layer's parameters plus the final LayerNorm (`2d`)."""
    d = arch.d_model
    return sum(layer_params(d, f) for f in arch.d_inner) + 2 * d


def embedding_params(arch: GPTArch, vocab: int, n_positions: int) -> int:
    """Token embedding (`vocab x d`, shared with the tied output head) plus positions."""
    return (vocab + n_positions) * arch.d_model


def total_params(arch: GPTArch, vocab: int = GPT2_VOCAB, n_positions: int = GPT2_POSITIONS) -> int:
    """Every parameter of `GPTDecoder(arch, vocab, n_positions)` (the head is tied)."""
    if vocab < 1 or n_positions < 1:
        raise ValueError(f"vocab and n_positions must be positive, got {vocab}, {n_positions}")
    return decoder_params(arch) + embedding_params(arch, vocab, n_positions)


def param_summary(
    arch: GPTArch, vocab: int = GPT2_VOCAB, n_positions: int = GPT2_POSITIONS
) -> dict[str, Any]:
    """Decoder, embedding and total parameter counts of `arch` as a JSON-ready dict."""
    return {
        "arch": arch.to_dict(),
        "id": arch.id,
        "vocab": vocab,
        "n_positions": n_positions,
        "decoder_params": decoder_params(arch),
        "embedding_params": embedding_params(arch, vocab, n_positions),
        "total_params": total_params(arch, vocab, n_positions),
    }


def format_count(value: int) -> str:
    """`151156736` -> `151,156,736 (151.16M)`."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if value >= scale:
            return f"{value:,} ({value / scale:.2f}{suffix})"
    return f"{value:,}"

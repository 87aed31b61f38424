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

Transformer-XL backbone (`backbone="transformer-xl"`, `nasflow.lts.txl_model`), one layer:

    attention     5*d*d + 2*d     (fused QKV d x 3d, relative-position projection d x d and
                                   output projection d x d, all without bias, as the original;
                                   the global biases u and v, n_head x d_head = d each, per layer)
    feed-forward  2*d*f + f + d   (as GPT-2, ReLU)
    LayerNorms    4*d             (after attention and after the feed-forward: post-norm)

i.e. `5d^2 + 2df + f + 7d` per layer and no final LayerNorm (the original has none). The
sinusoidal relative encodings have no parameters. Not counted: the token embedding (plain or
adaptive, with its projections) and the output layer (the tied head, or the adaptive softmax's
biases and cluster weights): `txl_embedding_params`.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Any, Protocol

from nasflow.core.checks import is_int
from nasflow.core.errors import ConfigError


class GPTArch(Protocol):
    """What the counts read of an architecture (`nasflow.space.gpt.GPTArch` has it)."""

    @property
    def d_model(self) -> int: ...

    @property
    def d_inner(self) -> Sequence[int]: ...


GPT2_VOCAB = 50257
GPT2_POSITIONS = 1024
#: Decoder families an LTS space can search (`LTSSpace.backbone`).
BACKBONES = ("gpt2", "transformer-xl")
#: Output layers of the Transformer-XL backbone.
SOFTMAXES = ("tied", "adaptive")


def check_backbone(backbone: Any, key: str = "backbone") -> str:
    """`backbone` if it is one of `BACKBONES`, else a `ConfigError` naming `key`."""
    if backbone not in BACKBONES:
        raise ConfigError(f"{key} must be one of {', '.join(BACKBONES)}, got {backbone!r}")
    return str(backbone)


def attention_params(d_model: int) -> int:
    """Fused QKV projection and output projection, weights and biases: `4d^2 + 4d`."""
    return 4 * d_model * d_model + 4 * d_model


def ffn_params(d_model: int, d_inner: int) -> int:
    """Two linear layers `d -> f -> d`, weights and biases: `2df + f + d`."""
    return 2 * d_model * d_inner + d_inner + d_model


def layer_params(d_model: int, d_inner: int) -> int:
    """One decoder layer (attention, feed-forward, two LayerNorms): `4d^2 + 2df + f + 9d`."""
    return attention_params(d_model) + ffn_params(d_model, d_inner) + 4 * d_model


def txl_attention_params(d_model: int) -> int:
    """Transformer-XL attention: QKV, relative-position and output projections (no biases)
    plus the global biases u and v: `5d^2 + 2d`."""
    return 5 * d_model * d_model + 2 * d_model


def txl_layer_params(d_model: int, d_inner: int) -> int:
    """One Transformer-XL layer (attention, feed-forward, two LayerNorms): `5d^2 + 2df + f + 7d`."""
    return txl_attention_params(d_model) + ffn_params(d_model, d_inner) + 4 * d_model


def backbone_layer_params(backbone: str, d_model: int, d_inner: int) -> int:
    """One decoder layer of `backbone` (`layer_params` or `txl_layer_params`)."""
    if check_backbone(backbone) == "gpt2":
        return layer_params(d_model, d_inner)
    return txl_layer_params(d_model, d_inner)


def final_params(backbone: str, d_model: int) -> int:
    """Decoder parameters after the last layer: GPT-2's final LayerNorm (`2d`); none for TXL."""
    return 2 * d_model if check_backbone(backbone) == "gpt2" else 0


def decoder_params(arch: GPTArch, backbone: str = "gpt2") -> int:
    """The LTS proxy: every layer's parameters plus the final LayerNorm (`2d`, GPT-2 only)."""
    d = arch.d_model
    layers = sum(backbone_layer_params(backbone, d, f) for f in arch.d_inner)
    return layers + final_params(backbone, d)


def embedding_params(arch: GPTArch, vocab: int, n_positions: int) -> int:
    """Token embedding (`vocab x d`, shared with the tied output head) plus positions."""
    return (vocab + n_positions) * arch.d_model


def adaptive_clusters(
    vocab: int, cutoffs: Sequence[int], div_val: int, d_model: int
) -> list[tuple[int, int]]:
    """`(tokens, width)` of each adaptive cluster: the shortlist then the tails, cluster `i`
    of width `d_model // div_val**i`; a `ConfigError` naming `cutoffs` / `div_val` if invalid."""
    values = list(cutoffs)
    ends = [0, *values, vocab]
    if not all(is_int(c) for c in values) or any(b <= a for a, b in pairwise(ends)):
        raise ConfigError(
            f"cutoffs must be increasing integers in (0, vocab_size = {vocab}), got {values}"
        )
    if not is_int(div_val) or div_val < 1:
        raise ConfigError(f"div_val must be an integer >= 1, got {div_val!r}")
    clusters = []
    for i in range(len(ends) - 1):
        width = d_model // div_val**i
        if width < 1:
            raise ConfigError(
                f"div_val {div_val} leaves cluster {i} of d_model {d_model} without width"
            )
        clusters.append((ends[i + 1] - ends[i], width))
    return clusters


def txl_embedding_params(
    d_model: int,
    vocab: int,
    softmax: str = "tied",
    cutoffs: Sequence[int] = (),
    div_val: int = 1,
) -> int:
    """Parameters of a Transformer-XL backbone outside the decoder.

    `tied`: the token embedding `vocab x d` (the head shares it). `adaptive`: per cluster
    `tokens x width` embeddings, with `div_val > 1` also a `d x width` projection each (shared
    by the output layer); the output layer adds a bias per token and, with clusters, the
    cluster weights and biases `len(cutoffs) x (d + 1)`.
    """
    if softmax not in SOFTMAXES:
        raise ConfigError(f"softmax must be one of {', '.join(SOFTMAXES)}, got {softmax!r}")
    if softmax == "tied":
        return vocab * d_model
    clusters = adaptive_clusters(vocab, cutoffs, div_val, d_model)
    embedding = sum(n * w + (d_model * w if div_val > 1 else 0) for n, w in clusters)
    return embedding + vocab + len(clusters[1:]) * (d_model + 1)


def total_params(
    arch: GPTArch,
    vocab: int = GPT2_VOCAB,
    n_positions: int = GPT2_POSITIONS,
    backbone: str = "gpt2",
) -> int:
    """Every parameter of `GPTDecoder(arch, vocab, n_positions)` (the head is tied), or with
    `backbone="transformer-xl"` of a `TXLDecoder` with the tied head (no position table)."""
    if vocab < 1 or n_positions < 1:
        raise ValueError(f"vocab and n_positions must be positive, got {vocab}, {n_positions}")
    if check_backbone(backbone) == "transformer-xl":
        return decoder_params(arch, backbone) + txl_embedding_params(arch.d_model, vocab)
    return decoder_params(arch) + embedding_params(arch, vocab, n_positions)


def param_summary(
    arch: GPTArch,
    vocab: int = GPT2_VOCAB,
    n_positions: int = GPT2_POSITIONS,
    backbone: str = "gpt2",
) -> dict[str, Any]:
    """Decoder, embedding and total parameter counts of `arch` as a JSON-ready dict (a
    Transformer-XL backbone with the tied head: token embedding only, no position table)."""
    decoder = decoder_params(arch, backbone)
    total = total_params(arch, vocab, n_positions, backbone)
    return {
        "arch": arch.to_dict(),
        "id": arch.id,
        "backbone": backbone,
        "vocab": vocab,
        "n_positions": n_positions,
        "decoder_params": decoder,
        "embedding_params": total - decoder,
        "total_params": total,
    }


def format_count(value: int) -> str:
    """`151156736` -> `151,156,736 (151.16M)`."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if value >= scale:
            return f"{value:,} ({value / scale:.2f}{suffix})"
    return f"{value:,}"

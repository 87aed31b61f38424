"""Closed-form parameter and FLOP counts with HAT's definitions (reference §5).

Parameters: HAT's `get_sampled_params_numel` counts only the Linear, LayerNorm and attention
in-projection weights of active layers; embeddings and the output projection are excluded.

FLOPs: `2 x MACs` of one teacher-forced forward pass at batch 1 (what `torchprofile` measures in
HAT's `--profile-flops`), and the output layer `2 * d_dec * tgt_len * |V|` on top (llmas
`total_flops`). Elementwise work (softmax, LayerNorm, residuals) is not counted; torchprofile's
extra ~1M such multiplies leave the closed form within 0.1% of the released numbers.
"""

from __future__ import annotations

from nasflow.space.hat import Arch, space_of


def _attention_params(q: int, d_query: int, d_key_value: int) -> int:
    """In-projection (Q from d_query, K/V from d_key_value, full QKV bias) plus out-projection."""
    return q * d_query + 2 * q * d_key_value + 3 * q + q * d_query + d_query


def _ffn_params(d: int, f: int) -> int:
    return 2 * d * f + f + d


def count_params(arch: Arch) -> int:
    """Non-embedding parameters of `arch` (HAT `get_sampled_params_numel`)."""
    q = space_of(arch).qkv_dim
    d_enc, d_dec = arch.encoder_embed_dim, arch.decoder_embed_dim
    total = 0
    for f in arch.encoder_ffn_embed_dim:
        total += _attention_params(q, d_enc, d_enc) + _ffn_params(d_enc, f) + 4 * d_enc
    for f in arch.decoder_ffn_embed_dim:
        total += _attention_params(q, d_dec, d_dec)  # self-attention
        total += _attention_params(q, d_dec, d_enc)  # encoder-decoder attention
        total += _ffn_params(d_dec, f) + 6 * d_dec
    return total


def _attention_macs(q: int, d_query: int, d_key_value: int, n_query: int, n_key: int) -> int:
    """Projections, scores and weighted sum of one attention block (heads do not change it)."""
    projections = n_query * d_query * q + n_key * d_key_value * 2 * q + n_query * q * d_query
    return projections + 2 * n_query * n_key * q


def last_layer_flops(arch: Arch, vocab_size: int, tgt_len: int | None = None) -> int:
    """FLOPs of the output projection onto the vocabulary."""
    tgt_len = space_of(arch).measure_len if tgt_len is None else tgt_len
    return 2 * arch.decoder_embed_dim * tgt_len * vocab_size


def count_flops(
    arch: Arch,
    vocab_size: int,
    src_len: int | None = None,
    tgt_len: int | None = None,
    include_last_layer: bool = True,
) -> int:
    """Forward FLOPs of one sentence pair (default lengths: the space's, 30 for WMT, 23 for IWSLT).

    With `include_last_layer` (default) this is llmas `total_flops`; without it,
    `total_flops_without_last_layer` (the figures in HAT's README).
    """
    space = space_of(arch)
    src_len = space.measure_len if src_len is None else src_len
    tgt_len = space.measure_len if tgt_len is None else tgt_len
    q = space.qkv_dim
    d_enc, d_dec = arch.encoder_embed_dim, arch.decoder_embed_dim
    macs = 0
    for f in arch.encoder_ffn_embed_dim:
        macs += _attention_macs(q, d_enc, d_enc, src_len, src_len) + 2 * src_len * d_enc * f
    for f, arbitrary in zip(
        arch.decoder_ffn_embed_dim, arch.decoder_arbitrary_ende_attn, strict=True
    ):
        attended = {-1: 1, 1: 2, 2: 3}[arbitrary] * src_len  # encoder layers concatenated in time
        macs += _attention_macs(q, d_dec, d_dec, tgt_len, tgt_len)
        macs += _attention_macs(q, d_dec, d_enc, tgt_len, attended)
        macs += 2 * tgt_len * d_dec * f
    flops = 2 * macs
    if include_last_layer:
        flops += last_layer_flops(arch, vocab_size, tgt_len)
    return flops


def count_embedding_params(
    arch: Arch, vocab_size: int, target_vocab_size: int | None = None
) -> int:
    """Embedding parameters as the released TFS-Eval data counts them (`num_embedding_parameters`).

    Shared embeddings (WMT spaces): one `|V| x d_dec` matrix (the slice the decoder and the output
    projection use). Separate embeddings (IWSLT): source `|V_src| x d_enc`, target and output
    `|V_tgt| x d_dec` each.
    """
    if space_of(arch).share_embeddings:
        return vocab_size * arch.decoder_embed_dim
    target_vocab_size = vocab_size if target_vocab_size is None else target_vocab_size
    return vocab_size * arch.encoder_embed_dim + 2 * target_vocab_size * arch.decoder_embed_dim

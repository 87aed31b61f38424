"""Closed-form parameter and FLOP counts against hand-derived values and real torch modules."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nasflow.efficiency import count_embedding_params, count_flops, count_params, last_layer_flops
from nasflow.space.hat import Arch, get_space

ONE_LAYER = Arch(
    encoder_embed_dim=512, encoder_layer_num=6,
    encoder_ffn_embed_dim=(1024,) * 6, encoder_self_attention_heads=(4,) * 6,
    decoder_embed_dim=640, decoder_layer_num=1, decoder_ffn_embed_dim=(3072,),
    decoder_self_attention_heads=(8,), decoder_ende_attention_heads=(4,),
    decoder_arbitrary_ende_attn=(1,),
)  # fmt: skip


def _attention(q: int, d_query: int, d_kv: int) -> nn.ModuleDict:
    """HAT attention shapes: Q from d_query, K/V from d_kv, width q, out-projection to d_query."""
    return nn.ModuleDict(
        {"q": nn.Linear(d_query, q), "k": nn.Linear(d_kv, q), "v": nn.Linear(d_kv, q),
         "out": nn.Linear(q, d_query)}
    )  # fmt: skip


def _torch_reference_params(arch: Arch, q: int) -> int:
    """Parameter count of an equivalent stack of real torch modules (active layers only)."""
    modules: list[nn.Module] = []
    d, e = arch.decoder_embed_dim, arch.encoder_embed_dim
    for f in arch.encoder_ffn_embed_dim:
        modules += [
            _attention(q, e, e),
            nn.Linear(e, f),
            nn.Linear(f, e),
            nn.LayerNorm(e),
            nn.LayerNorm(e),
        ]
    for f in arch.decoder_ffn_embed_dim:
        modules += [_attention(q, d, d), _attention(q, d, e), nn.Linear(d, f), nn.Linear(f, d)]
        modules += [nn.LayerNorm(d) for _ in range(3)]
    return sum(p.numel() for m in modules for p in m.parameters())


@pytest.mark.parametrize("space_name", ["hat-wmt", "hat-iwslt", "demo"])
def test_params_equal_a_torch_module_stack(space_name):
    space = get_space(space_name)
    archs = [space.largest(), space.smallest(), *space.sample_unique(5, seed=2)]
    for arch in archs:
        assert count_params(arch) == _torch_reference_params(arch, space.qkv_dim)


def test_params_of_a_hand_computed_architecture():
    enc_layer = 1536 * 512 + 1536 + 512 * 512 + 512 + 2 * 512 * 1024 + 1024 + 512 + 4 * 512
    dec_self = 1536 * 640 + 1536 + 512 * 640 + 640
    dec_cross = 512 * 640 + 1024 * 512 + 1536 + 512 * 640 + 640
    dec_ffn = 2 * 640 * 3072 + 3072 + 640
    assert count_params(ONE_LAYER) == 6 * enc_layer + dec_self + dec_cross + dec_ffn + 6 * 640


def test_flops_of_a_hand_computed_architecture():
    L, V = 30, 32768
    enc = L * 512 * 1536 + 2 * L * L * 512 + L * 512 * 512 + 2 * L * 512 * 1024
    dec_self = L * 640 * 1536 + 2 * L * L * 512 + L * 512 * 640
    k = 2  # arbitrary attention 1: two encoder layers concatenated in time
    dec_cross = L * 640 * 512 + k * L * 512 * 1024 + 2 * L * (k * L) * 512 + L * 512 * 640
    dec_ffn = 2 * L * 640 * 3072
    without_last = 2 * (6 * enc + dec_self + dec_cross + dec_ffn)
    assert count_flops(ONE_LAYER, V, include_last_layer=False) == without_last
    assert last_layer_flops(ONE_LAYER, V) == 2 * 640 * L * V
    assert count_flops(ONE_LAYER, V) == without_last + 2 * 640 * L * V


def test_flops_grow_with_lengths_attention_span_and_vocabulary():
    base = count_flops(ONE_LAYER, 32768)
    assert count_flops(ONE_LAYER, 32768, src_len=40) > base
    assert count_flops(ONE_LAYER.replace(decoder_arbitrary_ende_attn=(2,)), 32768) > base
    assert count_flops(ONE_LAYER.replace(decoder_arbitrary_ende_attn=(-1,)), 32768) < base
    assert count_flops(ONE_LAYER, 44512) > base
    # IWSLT measures 23-token sentences by default.
    iwslt = get_space("hat-iwslt").smallest()
    assert count_flops(iwslt, 100) == count_flops(iwslt, 100, src_len=23, tgt_len=23)


def test_flops_match_torch_matmul_profile():
    """FLOPs of one encoder layer equal 2 x MACs of the matmuls actually executed."""
    from torch.utils.flop_counter import FlopCounterMode

    arch = get_space("demo").largest()
    q, d, f, L = 128, arch.encoder_embed_dim, arch.encoder_ffn_embed_dim[0], 20
    x = torch.randn(L, d)
    w_qkv, w_out = torch.randn(3 * q, d), torch.randn(d, q)
    w1, w2 = torch.randn(f, d), torch.randn(d, f)
    heads = arch.encoder_self_attention_heads[0]
    with FlopCounterMode(display=False) as counter:
        qkv = x @ w_qkv.T
        qh, kh, vh = (t.reshape(L, heads, q // heads).transpose(0, 1) for t in qkv.split(q, dim=1))
        attn = torch.softmax(qh @ kh.transpose(1, 2), dim=-1) @ vh
        h = attn.transpose(0, 1).reshape(L, q) @ w_out.T
        (torch.relu(h @ w1.T)) @ w2.T
    encoder_only = arch.replace(
        decoder_layer_num=1,
        decoder_ffn_embed_dim=(f,),
        decoder_self_attention_heads=(4,),
        decoder_ende_attention_heads=(4,),
        decoder_arbitrary_ende_attn=(-1,),
    )
    total = count_flops(encoder_only, vocab_size=1, src_len=L, tgt_len=0, include_last_layer=False)
    cross_attention_kv = 2 * (L * d * 2 * q)  # the decoder layer projects the source to K/V
    one_encoder_layer = (total - cross_attention_kv) // arch.encoder_layer_num
    assert counter.get_total_flops() == one_encoder_layer


def test_embedding_params_follow_the_released_definition():
    assert count_embedding_params(ONE_LAYER, 32768) == 32768 * 640
    iwslt = get_space("hat-iwslt").largest()
    assert count_embedding_params(iwslt, 8848, 6632) == 8848 * 640 + 2 * 6632 * 640

"""The HAT SuperTransformer: an elastic encoder-decoder Transformer in plain PyTorch.

Every weight is allocated at the super shape of the search space and a subnet uses the first-k
rows/columns of it (HAT's `LinearSuper`, `LayerNormSuper`, `EmbeddingSuper`,
`MultiheadAttentionSuper`). The slicing happens in the forward functions below, where it can be
read. The QKV width is fixed by the space; the number of heads only changes the head size.
Post-norm layers, ReLU, sinusoidal positions in fairseq layout, inactive layers are skipped
(identity), and decoder layer i may attend to the concatenation (along time) of the last 1-3
encoder layers (`decoder_arbitrary_ende_attn`). Dropout is scaled by `d_sample / d_super`.

`model.extract(arch)` returns the same class allocated at exactly `arch`'s shapes (a dense model,
`model.layout == arch`), with the active slices copied, so a subnet can be trained, exported or
benchmarked without the supernet around it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nasflow.data.prepare import SPECIAL_IDS
from nasflow.space.hat import Arch, SearchSpace, get_space

PAD = SPECIAL_IDS["pad_id"]
EOS = SPECIAL_IDS["eos_id"]
BOS = SPECIAL_IDS["bos_id"]


@dataclass(frozen=True)
class ModelConfig:
    """Regularisation and size limits (HAT WMT defaults); the dimensions come from the space."""

    dropout: float = 0.3
    attention_dropout: float = 0.1
    activation_dropout: float = 0.0
    max_positions: int = 1024

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> ModelConfig:
        """Build from the `model` section of an experiment config (unknown keys ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (values or {}).items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------------
def _xavier_(weight: Tensor, fan_in: int, fan_out: int) -> None:
    """Xavier-uniform with explicit fans (so split projections match HAT's fused init)."""
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    nn.init.uniform_(weight, -bound, bound)


class _Prefix(torch.autograd.Function):
    """A contiguous copy of the leading block of a weight, padded back in one backward node.

    A strided view such as `W[:, :d]` makes `mm`'s backward return the weight gradient in
    transposed layout, and every later pass over it (padding to the full shape, accumulation)
    is then cache-hostile; this is most of the elastic overhead of narrow subnets.
    """

    @staticmethod
    def forward(ctx: Any, weight: Tensor, *sizes: int) -> Tensor:
        ctx.full_shape = weight.shape
        return weight[tuple(slice(0, n) for n in sizes)].contiguous()

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        full = grad.new_zeros(ctx.full_shape)
        full[tuple(slice(0, n) for n in grad.shape)] = grad
        return (full, *([None] * grad.dim()))


def _prefix(weight: Tensor, *sizes: int) -> Tensor:
    """`weight[:sizes[0], :sizes[1], ...]`: the parameter itself when full-size, a plain view
    when no gradient is needed (inference, decoding), else a contiguous copy (training)."""
    if tuple(sizes) == tuple(weight.shape):
        return weight
    if not (torch.is_grad_enabled() and weight.requires_grad):
        return weight[tuple(slice(0, n) for n in sizes)]
    return _Prefix.apply(weight, *sizes)


def _layer_norm(x: Tensor, norm: nn.LayerNorm, dim: int) -> Tensor:
    return F.layer_norm(x, (dim,), _prefix(norm.weight, dim), _prefix(norm.bias, dim), norm.eps)


def sinusoidal_table(num_positions: int, dim: int, padding_idx: int = PAD) -> Tensor:
    """fairseq's sinusoidal table `[sin(dim/2) | cos(dim/2)]`; row `padding_idx` is zero."""
    half = dim // 2
    step = math.log(10000.0) / (half - 1)
    freqs = torch.exp(torch.arange(half, dtype=torch.float32) * -step)
    angles = torch.arange(num_positions, dtype=torch.float32)[:, None] * freqs[None, :]
    table = torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)
    if dim % 2:
        table = torch.cat([table, torch.zeros(num_positions, 1)], dim=1)
    table[padding_idx] = 0.0
    return table


class ElasticAttention(nn.Module):
    """Multi-head attention with a fixed QKV width; inputs/outputs sliced to the sampled dims.

    Self-attention keeps one fused input projection `[3*qkv, d]`; cross-attention keeps a query
    projection `[qkv, d_q]` and a key/value projection `[2*qkv, d_kv]`, initialised with the
    fans of HAT's fused `[3*qkv, max(d)]` matrix.
    """

    def __init__(self, query_dim: int, kv_dim: int, qkv_dim: int, *, self_attention: bool):
        super().__init__()
        self.qkv_dim = qkv_dim
        self.self_attention = self_attention
        fan_in, fan_out = max(query_dim, kv_dim), 3 * qkv_dim
        if self_attention:
            self.in_proj_weight = nn.Parameter(torch.empty(3 * qkv_dim, query_dim))
            _xavier_(self.in_proj_weight, fan_in, fan_out)
        else:
            self.q_proj_weight = nn.Parameter(torch.empty(qkv_dim, query_dim))
            self.kv_proj_weight = nn.Parameter(torch.empty(2 * qkv_dim, kv_dim))
            _xavier_(self.q_proj_weight, fan_in, fan_out)
            _xavier_(self.kv_proj_weight, fan_in, fan_out)
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * qkv_dim))
        self.out_proj = nn.Linear(qkv_dim, query_dim)
        nn.init.xavier_uniform_(self.out_proj.weight)
        nn.init.zeros_(self.out_proj.bias)

    def project_kv(self, memory: Tensor, heads: int) -> tuple[Tensor, Tensor]:
        """Keys and values `[B, H, T, head_dim]` of `memory` (cross-attention)."""
        d = memory.shape[-1]
        q = self.qkv_dim
        kv = F.linear(memory, _prefix(self.kv_proj_weight, 2 * q, d), self.in_proj_bias[q:])
        key, value = kv.split(q, dim=-1)
        return self._heads(key, heads), self._heads(value, heads)

    def _heads(self, x: Tensor, heads: int) -> Tensor:
        batch, length, _ = x.shape
        return x.view(batch, length, heads, self.qkv_dim // heads).transpose(1, 2)

    def forward(
        self,
        query: Tensor,
        heads: int,
        *,
        key_value: tuple[Tensor, Tensor] | None = None,
        mask: Tensor | None = None,
        causal: bool = False,
        cache: dict[str, Tensor] | None = None,
        dropout: float = 0.0,
    ) -> Tensor:
        """Attend from `query` [B, T, d_q].

        Self-attention when `key_value` is None (with `cache`, new keys/values are appended to
        `cache['k']`/`cache['v']`); otherwise `key_value` are pre-projected cross keys/values.
        `mask` is a boolean `[B, 1, 1, T_k]` (True = attend).
        """
        d = query.shape[-1]
        q_dim = self.qkv_dim
        if key_value is None:
            qkv = F.linear(query, _prefix(self.in_proj_weight, 3 * q_dim, d), self.in_proj_bias)
            q, k, v = (self._heads(t, heads) for t in qkv.split(q_dim, dim=-1))
            if cache is not None:
                if "k" in cache:
                    k = torch.cat([cache["k"], k], dim=2)
                    v = torch.cat([cache["v"], v], dim=2)
                cache["k"], cache["v"] = k, v
                causal = causal and bool(q.shape[2] > 1)  # bool(): a traced shape is a tensor
        else:
            q = F.linear(query, _prefix(self.q_proj_weight, q_dim, d), self.in_proj_bias[:q_dim])
            q = self._heads(q, heads)
            k, v = key_value
        if causal and q.shape[2] != k.shape[2]:
            offset = k.shape[2] - q.shape[2]
            allowed = torch.ones(q.shape[2], k.shape[2], dtype=torch.bool, device=q.device)
            mask = allowed.tril(diagonal=offset)
            causal = False
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=dropout if self.training else 0.0, is_causal=causal
        )
        out = out.transpose(1, 2).reshape(query.shape[0], query.shape[1], q_dim)
        weight = _prefix(self.out_proj.weight, d, q_dim)
        return F.linear(out, weight, _prefix(self.out_proj.bias, d))


class FeedForward(nn.Module):
    """`fc2(relu(fc1(x)))` with `fc1 [ffn, d]` and `fc2 [d, ffn]` sliced to the sampled dims."""

    def __init__(self, embed_dim: int, ffn_dim: int):
        super().__init__()
        self.fc1 = nn.Linear(embed_dim, ffn_dim)
        self.fc2 = nn.Linear(ffn_dim, embed_dim)
        for layer in (self.fc1, self.fc2):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: Tensor, ffn_dim: int, activation_dropout: float) -> Tensor:
        d = x.shape[-1]
        weight1 = _prefix(self.fc1.weight, ffn_dim, d)
        h = F.relu(F.linear(x, weight1, _prefix(self.fc1.bias, ffn_dim)))
        h = F.dropout(h, activation_dropout, self.training)
        weight2 = _prefix(self.fc2.weight, d, ffn_dim)
        return F.linear(h, weight2, _prefix(self.fc2.bias, d))


class EncoderLayer(nn.Module):
    """Post-norm: `LN(x + drop(SelfAttn(x)))`, then `LN(h + drop(FFN(h)))`."""

    def __init__(self, embed_dim: int, ffn_dim: int, qkv_dim: int):
        super().__init__()
        self.self_attn = ElasticAttention(embed_dim, embed_dim, qkv_dim, self_attention=True)
        self.self_attn_layer_norm = nn.LayerNorm(embed_dim)
        self.ffn = FeedForward(embed_dim, ffn_dim)
        self.final_layer_norm = nn.LayerNorm(embed_dim)


class DecoderLayer(nn.Module):
    """Post-norm: causal self-attention, encoder-decoder attention, FFN (three LayerNorms)."""

    def __init__(self, embed_dim: int, encoder_dim: int, ffn_dim: int, qkv_dim: int):
        super().__init__()
        self.self_attn = ElasticAttention(embed_dim, embed_dim, qkv_dim, self_attention=True)
        self.self_attn_layer_norm = nn.LayerNorm(embed_dim)
        self.encoder_attn = ElasticAttention(embed_dim, encoder_dim, qkv_dim, self_attention=False)
        self.encoder_attn_layer_norm = nn.LayerNorm(embed_dim)
        self.ffn = FeedForward(embed_dim, ffn_dim)
        self.final_layer_norm = nn.LayerNorm(embed_dim)


# ---------------------------------------------------------------------------------------------
# Encoder output and decoder cache
# ---------------------------------------------------------------------------------------------
@dataclass
class EncoderOut:
    """Outputs of every active encoder layer `[B, S, d_enc]` and the source padding mask."""

    states: list[Tensor]
    padding_mask: Tensor  # [B, S] bool, True = pad

    def select(self, index: Tensor) -> EncoderOut:
        """Rows `index` of the batch (beam expansion, dropping finished sentences)."""
        return EncoderOut([s.index_select(0, index) for s in self.states], self.padding_mask[index])


@dataclass
class DecoderCache:
    """Key/value cache of incremental decoding: growing self-attention and static cross K/V."""

    self_attn: list[dict[str, Tensor]] = field(default_factory=list)
    cross: list[tuple[Tensor, Tensor, Tensor]] = field(default_factory=list)  # k, v, mask
    length: int = 0

    def select(self, index: Tensor) -> None:
        """Keep/reorder batch rows `index` (beam reordering, dropping finished sentences)."""
        for entry in self.self_attn:
            for key in list(entry):
                entry[key] = entry[key].index_select(0, index)
        self.cross = [
            (k.index_select(0, index), v.index_select(0, index), m.index_select(0, index))
            for k, v, m in self.cross
        ]


# ---------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------
class SuperTransformer(nn.Module):
    """HAT's elastic encoder-decoder; `set_arch` selects a subnet, `extract` copies one out.

    With `layout=None` every weight has the space's super shape (a supernet). With
    `layout=arch` the model is allocated at exactly that architecture (a dense model).
    """

    kind = "hat"  # the supernet kind (`nasflow.model.mos.KINDS`); dense models are HAT models

    def __init__(
        self,
        space: SearchSpace | str,
        vocab_size: int,
        config: ModelConfig | None = None,
        *,
        layout: Arch | None = None,
    ):
        super().__init__()
        self.space = get_space(space) if isinstance(space, str) else space
        self.vocab_size = int(vocab_size)
        self.config = config or ModelConfig()
        if layout is not None:
            self.space.validate(layout)
        self.layout = layout
        space_, q = self.space, self.space.qkv_dim
        if layout is None:
            d_enc = d_dec = space_.super_embed_dim
            enc_ffn = [space_.super_ffn_dim] * space_.max_encoder_layers
            dec_ffn = [space_.super_ffn_dim] * space_.max_decoder_layers
        else:
            d_enc, d_dec = layout.encoder_embed_dim, layout.decoder_embed_dim
            enc_ffn, dec_ffn = (
                list(layout.encoder_ffn_embed_dim),
                list(layout.decoder_ffn_embed_dim),
            )
        self.embed_dims = (d_enc, d_dec)
        self.reference_dim = space_.super_embed_dim  # dropout scaling and positions
        if space_.share_embeddings:
            self.embed_tokens = self._embedding(max(d_enc, d_dec))
        else:
            self.embed_tokens = self._embedding(d_enc)
            self.decoder_embed_tokens = self._embedding(d_dec)
            self.embed_out = nn.Parameter(torch.empty(self.vocab_size, d_dec))
            nn.init.normal_(self.embed_out, 0.0, space_.super_embed_dim**-0.5)
        positions = sinusoidal_table(self.config.max_positions + PAD + 1, space_.super_embed_dim)
        self.register_buffer("positions", positions, persistent=False)
        self.encoder_layers = nn.ModuleList(EncoderLayer(d_enc, f, q) for f in enc_ffn)
        self.decoder_layers = nn.ModuleList(DecoderLayer(d_dec, d_enc, f, q) for f in dec_ffn)
        self.arch: Arch | None = None
        self.set_arch(layout if layout is not None else space_.largest())

    def _embedding(self, dim: int) -> nn.Embedding:
        embedding = nn.Embedding(self.vocab_size, dim, padding_idx=PAD)
        nn.init.normal_(embedding.weight, 0.0, self.space.super_embed_dim**-0.5)
        with torch.no_grad():
            embedding.weight[PAD].zero_()
        return embedding

    @property
    def target_embedding(self) -> nn.Embedding:
        """The decoder's input embedding (the shared one in the WMT setting)."""
        return self.embed_tokens if self.space.share_embeddings else self.decoder_embed_tokens

    @property
    def output_weight(self) -> Tensor:
        """Output projection `[V, d]`: the shared embedding, or `embed_out` (IWSLT)."""
        return self.embed_tokens.weight if self.space.share_embeddings else self.embed_out

    # ---- architecture selection ---------------------------------------------------------------
    @property
    def is_supernet(self) -> bool:
        return self.layout is None

    def set_arch(self, arch: Arch) -> SuperTransformer:
        """Select the subnet `arch` in place (a dense model accepts only its own layout)."""
        self.space.validate(arch)
        if self.layout is not None and arch != self.layout:
            raise ValueError(f"a dense model of {self.layout.id} cannot run arch {arch.id}")
        self.arch = arch
        return self

    def extract(self, arch: Arch | None = None) -> SuperTransformer:
        """A standalone model allocated at exactly `arch` with the active slices copied."""
        arch = arch or self.arch
        assert arch is not None
        dense = SuperTransformer(self.space, self.vocab_size, self.config, layout=arch)
        source = dict(self.named_parameters())
        with torch.no_grad():
            for name, param in dense.named_parameters():
                block = source[name][tuple(slice(0, size) for size in param.shape)]
                param.copy_(block)
        return dense.to(next(self.parameters()).device)

    def _dropout(self, dim: int) -> float:
        return self.config.dropout * dim / self.reference_dim

    def _embed(self, tokens: Tensor, weight: Tensor, dim: int, start: int = 0) -> Tensor:
        x = F.embedding(tokens, _prefix(weight, self.vocab_size, dim), PAD) * math.sqrt(dim)
        first = PAD + 1 + start
        x = x + self.positions[first : first + tokens.shape[1], :dim].to(x.dtype)
        return F.dropout(x, self._dropout(dim), self.training)

    # ---- encoder ------------------------------------------------------------------------------
    def encode(self, src_tokens: Tensor, table: Tensor | None = None) -> EncoderOut:
        """Run the encoder over right-padded `src_tokens` [B, S].

        `table` is the shared embedding already sliced once for this step (see `forward`).
        """
        arch = self.arch
        assert arch is not None
        d = arch.encoder_embed_dim
        padding_mask = src_tokens.eq(PAD)
        attn_mask = ~padding_mask[:, None, None, :]
        p = self._dropout(d)
        x = self._embed(src_tokens, self.embed_tokens.weight if table is None else table, d)
        states = []
        for i in range(arch.encoder_layer_num):
            layer = self.encoder_layers[i]
            heads, ffn = arch.encoder_self_attention_heads[i], arch.encoder_ffn_embed_dim[i]
            h = layer.self_attn(x, heads, mask=attn_mask, dropout=self.config.attention_dropout)
            x = _layer_norm(x + F.dropout(h, p, self.training), layer.self_attn_layer_norm, d)
            h = layer.ffn(x, ffn, self.config.activation_dropout)
            x = _layer_norm(x + F.dropout(h, p, self.training), layer.final_layer_norm, d)
            states.append(x)
        return EncoderOut(states, padding_mask)

    def attended_layers(self, layer_index: int) -> int:
        """How many of the last encoder layers decoder layer `layer_index` attends to (1-3)."""
        assert self.arch is not None
        arbitrary = self.arch.decoder_arbitrary_ende_attn[layer_index]
        return 1 if arbitrary == -1 else arbitrary + 1

    @staticmethod
    def cross_mask(padding_mask: Tensor, count: int) -> Tensor:
        """Cross-attention mask `[B, 1, 1, count*S]` (True = attend) over `count` encoder
        layers concatenated along time."""
        keep = ~padding_mask
        return (keep if count == 1 else keep.repeat(1, count))[:, None, None, :]

    def _memory(self, encoder_out: EncoderOut, layer_index: int) -> tuple[Tensor, Tensor]:
        """Encoder states decoder layer `layer_index` attends to, and their attention mask."""
        count = self.attended_layers(layer_index)
        chosen = encoder_out.states[::-1][:count]
        memory = chosen[0] if count == 1 else torch.cat(chosen, dim=1)
        return memory, self.cross_mask(encoder_out.padding_mask, count)

    # ---- decoder ------------------------------------------------------------------------------
    def start_cache(self, encoder_out: EncoderOut) -> DecoderCache:
        """A cache with the static cross-attention keys/values of every active decoder layer."""
        arch = self.arch
        assert arch is not None
        cache = DecoderCache()
        for i in range(arch.decoder_layer_num):
            memory, mask = self._memory(encoder_out, i)
            heads = arch.decoder_ende_attention_heads[i]
            k, v = self.decoder_layers[i].encoder_attn.project_kv(memory, heads)
            cache.cross.append((k, v, mask))
            cache.self_attn.append({})
        return cache

    def decode(
        self,
        prev_output_tokens: Tensor,
        encoder_out: EncoderOut,
        cache: DecoderCache | None = None,
        table: Tensor | None = None,
    ) -> Tensor:
        """Logits `[B, T, V]` for `prev_output_tokens` [B, T].

        With `cache`, the tokens continue the cached prefix (usually T = 1) and the cache grows.
        `table` is the shared embedding already sliced once for this step (see `forward`).
        """
        arch = self.arch
        assert arch is not None
        d = arch.decoder_embed_dim
        p = self._dropout(d)
        start = cache.length if cache is not None else 0
        embedding = self.target_embedding.weight if table is None else table
        x = self._embed(prev_output_tokens, embedding, d, start)
        for i in range(arch.decoder_layer_num):
            layer = self.decoder_layers[i]
            self_heads = arch.decoder_self_attention_heads[i]
            h = layer.self_attn(
                x,
                self_heads,
                causal=True,
                cache=cache.self_attn[i] if cache is not None else None,
                dropout=self.config.attention_dropout,
            )
            x = _layer_norm(x + F.dropout(h, p, self.training), layer.self_attn_layer_norm, d)
            cross_heads = arch.decoder_ende_attention_heads[i]
            if cache is not None:
                k, v, mask = cache.cross[i]
            else:
                memory, mask = self._memory(encoder_out, i)
                k, v = layer.encoder_attn.project_kv(memory, cross_heads)
            h = layer.encoder_attn(
                x,
                cross_heads,
                key_value=(k, v),
                mask=mask,
                dropout=self.config.attention_dropout,
            )
            x = _layer_norm(x + F.dropout(h, p, self.training), layer.encoder_attn_layer_norm, d)
            h = layer.ffn(x, arch.decoder_ffn_embed_dim[i], self.config.activation_dropout)
            x = _layer_norm(x + F.dropout(h, p, self.training), layer.final_layer_norm, d)
        if cache is not None:
            cache.length += prev_output_tokens.shape[1]
        output = self.output_weight if table is None else table
        return F.linear(x, _prefix(output, self.vocab_size, d))

    def forward(self, src_tokens: Tensor, prev_output_tokens: Tensor) -> Tensor:
        """Teacher-forced logits `[B, T, V]`.

        With shared embeddings the table is sliced once to the wider of the two embed dims and
        the encoder input, decoder input and output projection slice that, so their gradients
        meet at the subnet's size and only one full-size gradient is built per step.
        """
        table = None
        if self.space.share_embeddings:
            assert self.arch is not None
            width = max(self.arch.encoder_embed_dim, self.arch.decoder_embed_dim)
            table = _prefix(self.embed_tokens.weight, self.vocab_size, width)
        return self.decode(prev_output_tokens, self.encode(src_tokens, table), table=table)

    # ---- bookkeeping --------------------------------------------------------------------------

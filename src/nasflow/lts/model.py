"""A flexible GPT-2-style decoder whose layers may differ in `d_inner` and `n_head`.

Pre-norm blocks (`x + attn(ln_1(x))`, `x + mlp(ln_2(x))`), learned positions, GELU (tanh
approximation, as GPT-2), a final LayerNorm and an output head tied to the token embedding.
Dropout (embeddings, attention probabilities, residual branches) is one configurable rate.

`forward(tokens, past=None) -> (logits, present)`:

- `past=None` (training and the *prompt* step): causal self-attention over `tokens` through
  `scaled_dot_product_attention(..., is_causal=True)`;
- `past` = one `(k, v)` pair per layer, each `(batch, n_head_i, past_len, d_model // n_head_i)`
  (the *decoder step*): the new keys/values are appended and the new queries attend to every
  cached position and causally among themselves (an explicit boolean mask aligned to the end,
  built from shapes only).

`present` is the per-layer `(k, v)` list after this call, ready to be passed back as `past`.

`build_decoder(arch, backbone, ...)` builds this model (`gpt2`) or the Transformer-XL decoder of
`nasflow.lts.txl_model` (`transformer-xl`); every consumer builds its models through it.

Export notes: nothing branches on tensor values. The only Python branch is `past is None`,
which is fixed per exported graph (a prompt graph without `past`, a decoder-step graph with it);
head splits use `unflatten` / `flatten` with the layer's static head count, positions and the
mask are `arange`s over (symbolic) shapes, and the length check against `n_positions` runs only
in eager mode.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, TypeAlias

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nasflow.core.checks import check_lm_sizes
from nasflow.core.errors import ConfigError
from nasflow.lts.weights import init_normal
from nasflow.space.gpt import GPTArch
from nasflow.space.gpt_params import check_backbone

if TYPE_CHECKING:
    from nasflow.lts.txl_model import TXLDecoder

KVCache = list[tuple[Tensor, Tensor]]


def _eager() -> bool:
    """False while tracing, scripting, compiling or exporting (skip shape-value checks)."""
    if torch.jit.is_tracing() or torch.jit.is_scripting():
        return False
    compiler = getattr(torch, "compiler", None)
    for name in ("is_compiling", "is_exporting", "is_dynamo_compiling"):
        check = getattr(compiler, name, None)
        if check is not None and check():
            return False
    return True


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with a fused QKV projection (GPT-2's `c_attn`)."""

    def __init__(self, d_model: int, n_head: int, dropout: float = 0.0) -> None:
        super().__init__()
        if d_model % n_head:
            raise ValueError(f"n_head {n_head} does not divide d_model {d_model}")
        self.d_model, self.n_head, self.head_dim = d_model, n_head, d_model // n_head
        self.dropout = dropout
        self.c_attn = nn.Linear(d_model, 3 * d_model)
        self.c_proj = nn.Linear(d_model, d_model)
        self.resid_drop = nn.Dropout(dropout)

    def forward(
        self, x: Tensor, past: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        q, k, v = self.c_attn(x).split(self.d_model, dim=2)
        # (B, T, d) -> (B, h, T, hd)
        q, k, v = (t.unflatten(-1, (self.n_head, self.head_dim)).transpose(1, 2) for t in (q, k, v))
        p = self.dropout if self.training else 0.0
        if past is None:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        else:
            k = torch.cat((past[0], k), dim=2)
            v = torch.cat((past[1], v), dim=2)
            # Query t (absolute position past_len + t) sees keys 0..past_len + t.
            n_new, n_all = q.shape[2], k.shape[2]
            rows = torch.arange(n_new, device=x.device).unsqueeze(1) + (n_all - n_new)
            cols = torch.arange(n_all, device=x.device).unsqueeze(0)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=cols <= rows, dropout_p=p)
        y = y.transpose(1, 2).flatten(2)
        return self.resid_drop(self.c_proj(y)), (k, v)


class MLP(nn.Module):
    """`d -> d_inner -> d` with GELU (tanh approximation)."""

    def __init__(self, d_model: int, d_inner: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.c_fc = nn.Linear(d_model, d_inner)
        self.c_proj = nn.Linear(d_inner, d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.c_proj(F.gelu(self.c_fc(x), approximate="tanh")))


class Block(nn.Module):
    """One pre-norm decoder layer."""

    def __init__(self, d_model: int, d_inner: int, n_head: int, dropout: float, eps: float) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(d_model, eps=eps)
        self.attn = CausalSelfAttention(d_model, n_head, dropout)
        self.ln_2 = nn.LayerNorm(d_model, eps=eps)
        self.mlp = MLP(d_model, d_inner, dropout)

    def forward(
        self, x: Tensor, past: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        a, present = self.attn(self.ln_1(x), past)
        x = x + a
        x = x + self.mlp(self.ln_2(x))
        return x, present


class GPTDecoder(nn.Module):
    """GPT-2-style decoder-only language model for one `GPTArch` (see the module docstring).

    Parameter groups: `wte` (tokens, tied with the head), `wpe` (positions), `blocks` and `ln_f`;
    the LTS decoder-parameter proxy counts exactly `blocks` and `ln_f`
    (`decoder_param_count()`, equal to `nasflow.space.gpt_params.decoder_params(arch)`).
    """

    def __init__(
        self,
        arch: GPTArch,
        vocab_size: int,
        n_positions: int = 1024,
        dropout: float = 0.1,
        layer_norm_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        check_lm_sizes(vocab_size, n_positions, dropout)
        self.arch, self.vocab_size, self.n_positions = arch, vocab_size, n_positions
        d = arch.d_model
        self.wte = nn.Embedding(vocab_size, d)
        self.wpe = nn.Embedding(n_positions, d)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            Block(d, f, h, dropout, layer_norm_eps)
            for f, h in zip(arch.d_inner, arch.n_head, strict=True)
        )
        self.ln_f = nn.LayerNorm(d, eps=layer_norm_eps)
        self.lm_head = nn.Linear(d, vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # tied
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """GPT-2 initialisation: N(0, 0.02) weights and embeddings, zero biases, unit LayerNorms,
        residual output projections scaled by `1 / sqrt(2 * n_layer)`."""
        residual_std = 0.02 / math.sqrt(2 * self.arch.n_layer)
        init_normal(self, lambda name: residual_std if name.endswith("c_proj") else 0.02)

    def forward(self, tokens: Tensor, past: KVCache | None = None) -> tuple[Tensor, KVCache]:
        """`tokens` (batch, T) int64 -> logits (batch, T, vocab) and the per-layer `(k, v)`."""
        n_new = tokens.shape[1]
        past_len = 0 if past is None else past[0][0].shape[2]
        if _eager():
            if past is not None and len(past) != len(self.blocks):
                raise ValueError(f"past has {len(past)} layers, the model {len(self.blocks)}")
            if past_len + n_new > self.n_positions:
                raise ValueError(
                    f"sequence of {past_len + n_new} tokens exceeds n_positions {self.n_positions}"
                )
        positions = torch.arange(n_new, device=tokens.device) + past_len
        x = self.drop(self.wte(tokens) + self.wpe(positions))
        present: KVCache = []
        for i, block in enumerate(self.blocks):
            x, kv = block(x, None if past is None else past[i])
            present.append(kv)
        return self.lm_head(self.ln_f(x)), present

    # ---- counting ---------------------------------------------------------------------------
    def decoder_param_count(self) -> int:
        """Parameters of the blocks and the final LayerNorm (the LTS proxy's definition)."""
        modules = [*self.blocks, self.ln_f]
        return sum(p.numel() for m in modules for p in m.parameters())

    def total_param_count(self) -> int:
        """Every distinct parameter (the tied head counted once)."""
        return sum(p.numel() for p in self.parameters())


Decoder: TypeAlias = "GPTDecoder | TXLDecoder"


def build_decoder(
    arch: GPTArch,
    backbone: str,
    vocab_size: int,
    n_positions: int = 1024,
    dropout: float = 0.1,
    **opts: Any,
) -> Decoder:
    """The decoder of `backbone` for `arch`: `GPTDecoder` (`gpt2`; option `layer_norm_eps`) or
    `TXLDecoder` (`transformer-xl`; options `mem_len`, `softmax`, `cutoffs`, `div_val`,
    `pre_lnorm`, `layer_norm_eps`). Weights come from the global torch RNG; an unknown
    backbone or option is a `ConfigError` naming it."""
    if check_backbone(backbone) == "gpt2":
        unknown = sorted(set(opts) - {"layer_norm_eps"})
        if unknown:
            raise ConfigError(f"backbone gpt2 has no option(s) {', '.join(unknown)}")
        return GPTDecoder(arch, vocab_size, n_positions, dropout, **opts)
    from nasflow.lts.txl_model import TXLDecoder

    known = {"mem_len", "softmax", "cutoffs", "div_val", "pre_lnorm", "layer_norm_eps"}
    unknown = sorted(set(opts) - known)
    if unknown:
        raise ConfigError(f"backbone transformer-xl has no option(s) {', '.join(unknown)}")
    return TXLDecoder(arch, vocab_size, n_positions, dropout, **opts)


def backbone_of(model: nn.Module) -> str:
    """`gpt2` for a `GPTDecoder`, `transformer-xl` for a `TXLDecoder`."""
    if isinstance(model, GPTDecoder):
        return "gpt2"
    from nasflow.lts.txl_model import TXLDecoder

    if isinstance(model, TXLDecoder):
        return "transformer-xl"
    raise TypeError(f"not an LTS decoder: {type(model).__name__}")


def lm_loss(model: GPTDecoder, inputs: Tensor, targets: Tensor) -> Tensor:
    """Mean next-token cross-entropy (nats) of `model` on `(inputs, targets)` windows."""
    logits, _ = model(inputs)
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten())

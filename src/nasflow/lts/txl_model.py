"""A Transformer-XL decoder (Dai et al. 2019) whose layers may differ in `d_inner` and `n_head`.

The LTS paper's second backbone, built for the same `GPTArch` shapes as `GPTDecoder`. As the
original `MemTransformerLM` (attention type 0, "relative partial learnable"):

- **relative positional attention**: the score of query `i` and key `j` is
  `(q_i + u) . k_j + (q_i + v) . W_r R_{i-j}`, with sinusoidal encodings `R` of the distance,
  a bias-free projection `W_r` (`r_net`) and the learned global biases `u` and `v`
  (`r_w_bias`, `r_r_bias`; one pair per layer, since layers may differ in `n_head`). The second
  term is computed against every distance `klen-1 .. 0` and aligned by the "rel shift"
  (`rel_shift`); keys after the query are masked;
- **segment-level recurrence**: `forward(tokens, mems)` takes and returns `mems`, one
  `(batch, mem, d_model)` tensor per layer holding the detached inputs of that layer over the
  last `mem_len` positions of earlier segments (`mem_len = 0`: no memory). The current segment
  attends to the memory and causally to itself;
- **post-norm** layers (`LN(x + attn(x))`, `LN(x + ff(x))`, ReLU feed-forward, no final
  LayerNorm), as the original; `pre_lnorm=True` gives the original's pre-norm variant;
- embeddings scaled by `sqrt(d_model)`; one `dropout` rate for embeddings, encodings, attention
  probabilities and residual branches;
- the output layer `softmax="tied"` (a bias-free head sharing the token embedding; `forward`
  returns **logits**) or `"adaptive"` (an adaptive input embedding and adaptive log-softmax with
  `cutoffs` and `div_val` sharing their weights and projections; `forward` returns
  **log-probabilities**). Either output gives the same `F.cross_entropy`, as `loss` uses.

`decoder_param_count()` counts the layers (attention with `r_net`, `u`, `v`; feed-forward;
LayerNorms) and equals `nasflow.space.gpt_params.decoder_params(arch, "transformer-xl")`.

Export notes: nothing branches on tensor values; lengths, the mask and the encodings come from
(symbolic) shapes, and the memory is always an input of the exported graphs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nasflow.core.checks import check_lm_sizes
from nasflow.core.errors import ConfigError
from nasflow.lts.weights import init_normal
from nasflow.space.gpt import GPTArch
from nasflow.space.gpt_params import SOFTMAXES, adaptive_clusters

Mems = list[Tensor]

#: Memory length of the paper-era code (NVIDIA/archai Transformer-XL, tgt_len = mem_len = 192).
DEFAULT_MEM_LEN = 192


def shift_index(rows: Tensor, cols: Tensor) -> Tensor:
    """`rel_shift`'s gather index `(Q, K)` from query rows `(Q, 1)` and key columns `(1, K)`."""
    qlen, klen = rows.shape[0], cols.shape[1]
    return (cols + (qlen - 1) - rows).clamp(0, klen - 1)


def rel_shift(scores: Tensor, index: Tensor | None = None) -> Tensor:
    """Align scores against distances `klen-1 .. 0` to key positions (Transformer-XL's shift).

    `scores[..., i, r]` is query `i` against distance `klen - 1 - r`; the result's `[..., i, j]`
    is `scores[..., i, j + qlen - 1 - i]` (distance `klen - qlen + i - j`) wherever
    `j <= i + klen - qlen` (the keys query `i` may see); entries past that are left-over values
    that the causal mask removes. `index`: `shift_index` of the scores' rows and columns
    (computed here when not given).

    The original pads a zero column and reshapes; a gather does the same without reshapes by
    sizes. The attention passes an index built from its inputs' shapes: one built from the
    scores' own shape is frozen to the example's by the ONNX export.
    """
    if index is None:
        rows = torch.arange(scores.shape[-2], device=scores.device).unsqueeze(1)
        cols = torch.arange(scores.shape[-1], device=scores.device).unsqueeze(0)
        index = shift_index(rows, cols)
    return torch.gather(scores, -1, index.expand_as(scores))


def sinusoid(distances: Tensor, inv_freq: Tensor, d_model: int) -> Tensor:
    """Sinusoidal encodings `(len, d_model)`: sines then cosines of `distances x inv_freq`."""
    angles = torch.outer(distances, inv_freq)
    return torch.cat((angles.sin(), angles.cos()), dim=-1)[:, :d_model]


class RelAttention(nn.Module):
    """Relative positional multi-head attention over `[memory, segment]` with its LayerNorm."""

    def __init__(
        self, d_model: int, n_head: int, dropout: float, pre_lnorm: bool, eps: float
    ) -> None:
        super().__init__()
        if d_model % n_head:
            raise ValueError(f"n_head {n_head} does not divide d_model {d_model}")
        self.d_model, self.n_head, self.head_dim = d_model, n_head, d_model // n_head
        self.pre_lnorm = pre_lnorm
        self.qkv_net = nn.Linear(d_model, 3 * d_model, bias=False)
        self.r_net = nn.Linear(d_model, d_model, bias=False)
        self.o_net = nn.Linear(d_model, d_model, bias=False)
        self.r_w_bias = nn.Parameter(torch.zeros(n_head, 1, self.head_dim))  # u
        self.r_r_bias = nn.Parameter(torch.zeros(n_head, 1, self.head_dim))  # v
        self.layer_norm = nn.LayerNorm(d_model, eps=eps)
        self.drop = nn.Dropout(dropout)
        self.dropatt = nn.Dropout(dropout)
        self.scale = 1.0 / math.sqrt(self.head_dim)

    def _heads(self, x: Tensor) -> Tensor:
        """`(B, T, d)` -> `(B, h, T, hd)`."""
        return x.unflatten(-1, (self.n_head, self.head_dim)).transpose(1, 2)

    def forward(self, x: Tensor, pos: Tensor, mem: Tensor) -> Tensor:
        """`x` (B, Q, d), `pos` encodings (K, d) of distances K-1..0, `mem` (B, M, d), K = M + Q."""
        context = torch.cat((mem, x), dim=1)
        query = x
        if self.pre_lnorm:
            context, query = self.layer_norm(context), self.layer_norm(x)
        # Queries of the segment only (the original projects all and keeps the last qlen).
        weight = self.qkv_net.weight
        q = self._heads(F.linear(query, weight[: self.d_model]))
        k, v = F.linear(context, weight[self.d_model :]).split(self.d_model, dim=-1)
        k, v = self._heads(k), self._heads(v)
        qlen, klen = x.shape[1], context.shape[1]
        rows = torch.arange(qlen, device=x.device).unsqueeze(1)
        cols = torch.arange(klen, device=x.device).unsqueeze(0)
        # (K, d) -> (h, hd, K)
        r = self.r_net(pos).unflatten(-1, (self.n_head, self.head_dim)).permute(1, 2, 0)
        content = torch.matmul(q + self.r_w_bias, k.transpose(-1, -2))  # (B, h, Q, K)
        position = rel_shift(torch.matmul(q + self.r_r_bias, r), shift_index(rows, cols))
        scores = (content + position) * self.scale
        # Query i (absolute position M + i) sees keys 0 .. M + i.
        scores = scores.masked_fill(cols > rows + (klen - qlen), float("-inf"))
        probs = self.dropatt(torch.softmax(scores, dim=-1))
        out = torch.matmul(probs, v).transpose(1, 2).flatten(2)
        out = self.drop(self.o_net(out))
        return x + out if self.pre_lnorm else self.layer_norm(x + out)


class PositionwiseFF(nn.Module):
    """`d -> d_inner -> d` with ReLU and its LayerNorm (post- or pre-norm)."""

    def __init__(
        self, d_model: int, d_inner: int, dropout: float, pre_lnorm: bool, eps: float
    ) -> None:
        super().__init__()
        self.pre_lnorm = pre_lnorm
        self.core = nn.Sequential(
            nn.Linear(d_model, d_inner),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(d_inner, d_model),
            nn.Dropout(dropout),
        )
        self.layer_norm = nn.LayerNorm(d_model, eps=eps)

    def forward(self, x: Tensor) -> Tensor:
        if self.pre_lnorm:
            return x + self.core(self.layer_norm(x))
        return self.layer_norm(x + self.core(x))


class TXLLayer(nn.Module):
    """One Transformer-XL decoder layer."""

    def __init__(
        self, d_model: int, d_inner: int, n_head: int, dropout: float, pre_lnorm: bool, eps: float
    ) -> None:
        super().__init__()
        self.attn = RelAttention(d_model, n_head, dropout, pre_lnorm, eps)
        self.ff = PositionwiseFF(d_model, d_inner, dropout, pre_lnorm, eps)

    def forward(self, x: Tensor, pos: Tensor, mem: Tensor) -> Tensor:
        return self.ff(self.attn(x, pos, mem))


class AdaptiveEmbedding(nn.Module):
    """Token embedding, plain (`div_val = 1`) or per-cluster widths with projections to `d`."""

    def __init__(self, vocab: int, d_model: int, cutoffs: Sequence[int], div_val: int) -> None:
        super().__init__()
        self.d_model, self.div_val = d_model, div_val
        clusters = adaptive_clusters(vocab, cutoffs, div_val, d_model)
        self.ends = [0]
        for n, _ in clusters:
            self.ends.append(self.ends[-1] + n)
        if div_val == 1:
            self.emb_layers = nn.ModuleList([nn.Embedding(vocab, d_model)])
            self.emb_projs = nn.ParameterList()
        else:
            self.emb_layers = nn.ModuleList(nn.Embedding(n, w) for n, w in clusters)
            self.emb_projs = nn.ParameterList(
                nn.Parameter(torch.zeros(d_model, w)) for _, w in clusters
            )

    def forward(self, tokens: Tensor) -> Tensor:
        if self.div_val == 1:
            return self.emb_layers[0](tokens)
        # Every cluster looks up every token (clamped) and keeps its own: no data-dependent
        # shapes, so the same code exports.
        parts = []
        for i, (layer, proj) in enumerate(zip(self.emb_layers, self.emb_projs, strict=True)):
            low, high = self.ends[i], self.ends[i + 1]
            inside = (tokens >= low) & (tokens < high)
            emb = F.linear(layer((tokens - low).clamp(0, high - low - 1)), proj)
            parts.append(emb * inside.unsqueeze(-1).to(emb.dtype))
        return torch.stack(parts).sum(0)


class AdaptiveLogSoftmax(nn.Module):
    """Adaptive log-softmax (Grave et al. 2017, as Transformer-XL's projected variant) whose
    output weights and projections are the input embedding's; own biases and cluster logits.

    Head: the shortlist's tokens plus one logit per tail cluster; a tail token's log-probability
    is its cluster's head log-probability plus its log-probability within the cluster.
    """

    def __init__(self, embedding: AdaptiveEmbedding, vocab: int) -> None:
        super().__init__()
        self.embedding = [embedding]  # shared weights, not a submodule (no double registration)
        self.ends = embedding.ends
        self.n_clusters = len(self.ends) - 2
        self.biases = nn.ParameterList(
            nn.Parameter(torch.zeros(high - low)) for low, high in pairwise(self.ends)
        )
        if self.n_clusters:
            width = embedding.emb_layers[0].embedding_dim
            self.cluster_weight = nn.Parameter(torch.zeros(self.n_clusters, width))
            self.cluster_bias = nn.Parameter(torch.zeros(self.n_clusters))

    def _logits(self, hidden: Tensor, i: int) -> tuple[Tensor, Tensor]:
        """Cluster `i`'s projected input and its logits."""
        emb = self.embedding[0]
        if emb.div_val == 1:  # one embedding: cluster i is a slice of its rows
            weight = emb.emb_layers[0].weight[self.ends[i] : self.ends[i + 1]]
        else:
            hidden = F.linear(hidden, emb.emb_projs[i].t())
            weight = emb.emb_layers[i].weight
        return hidden, F.linear(hidden, weight, self.biases[i])

    def forward(self, hidden: Tensor) -> Tensor:
        """Log-probabilities `(..., vocab)` of `hidden` `(..., d_model)`."""
        projected, head = self._logits(hidden, 0)
        if not self.n_clusters:
            return torch.log_softmax(head, dim=-1)
        cluster = F.linear(projected, self.cluster_weight, self.cluster_bias)
        head = torch.log_softmax(torch.cat((head, cluster), dim=-1), dim=-1)
        shortlist = self.ends[1]
        parts = [head[..., :shortlist]]
        for i in range(1, self.n_clusters + 1):
            _, tail = self._logits(hidden, i)
            gate = head[..., shortlist + i - 1 : shortlist + i]
            parts.append(gate + torch.log_softmax(tail, dim=-1))
        return torch.cat(parts, dim=-1)


class TXLDecoder(nn.Module):
    """Transformer-XL language model for one `GPTArch` (see the module docstring).

    Parameter groups: the embedding (`word_emb`), the `layers` (the LTS decoder parameters,
    `decoder_param_count()`) and, with `softmax="adaptive"`, the output layer `crit`.
    `n_positions` is the context length the model is built for (recorded, and bounding one
    call's tokens in eager mode); the relative encodings need no position table.
    """

    def __init__(
        self,
        arch: GPTArch,
        vocab_size: int,
        n_positions: int = 1024,
        dropout: float = 0.1,
        *,
        mem_len: int = DEFAULT_MEM_LEN,
        softmax: str = "tied",
        cutoffs: Sequence[int] = (),
        div_val: int = 1,
        pre_lnorm: bool = False,
        layer_norm_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        check_lm_sizes(vocab_size, n_positions, dropout)
        if isinstance(mem_len, bool) or not isinstance(mem_len, int) or mem_len < 0:
            raise ConfigError(f"mem_len must be an integer >= 0, got {mem_len!r}")
        if softmax not in SOFTMAXES:
            raise ConfigError(f"softmax must be one of {', '.join(SOFTMAXES)}, got {softmax!r}")
        if softmax == "tied" and (tuple(cutoffs) or div_val != 1):
            raise ConfigError("cutoffs and div_val need softmax: adaptive")
        self.arch, self.vocab_size, self.n_positions = arch, vocab_size, n_positions
        self.mem_len, self.softmax, self.pre_lnorm = mem_len, softmax, pre_lnorm
        self.cutoffs, self.div_val = tuple(cutoffs), div_val
        d = arch.d_model
        self.word_emb = AdaptiveEmbedding(vocab_size, d, self.cutoffs, div_val)
        self.emb_scale = math.sqrt(d)
        self.drop = nn.Dropout(dropout)
        self.layers = nn.ModuleList(
            TXLLayer(d, f, h, dropout, pre_lnorm, layer_norm_eps)
            for f, h in zip(arch.d_inner, arch.n_head, strict=True)
        )
        self.crit = AdaptiveLogSoftmax(self.word_emb, vocab_size) if softmax == "adaptive" else None
        self.register_buffer(
            "inv_freq", 1.0 / (10000 ** (torch.arange(0.0, d, 2.0) / d)), persistent=False
        )
        self.reset_parameters()

    @property
    def output(self) -> str:
        """What `forward` returns: `logits` (tied head) or `log_probs` (adaptive softmax)."""
        return "logits" if self.crit is None else "log_probs"

    def reset_parameters(self) -> None:
        """Transformer-XL initialisation: N(0, 0.02) weights, embeddings and u, v; N(0, 0.01)
        embedding projections; zero biases; unit LayerNorms."""

        def biases(module: nn.Module) -> None:
            if isinstance(module, RelAttention):
                nn.init.normal_(module.r_w_bias, mean=0.0, std=0.02)
                nn.init.normal_(module.r_r_bias, mean=0.0, std=0.02)

        init_normal(self, lambda name: 0.02, biases)
        for proj in self.word_emb.emb_projs:
            nn.init.normal_(proj, mean=0.0, std=0.01)
        if self.crit is not None:
            for bias in self.crit.biases:
                nn.init.zeros_(bias)
            if self.crit.n_clusters:
                nn.init.normal_(self.crit.cluster_weight, mean=0.0, std=0.02)
                nn.init.zeros_(self.crit.cluster_bias)

    # ---- memory ------------------------------------------------------------------------------
    def init_mems(self, batch: int, device: torch.device | str | None = None) -> Mems:
        """Empty memory: one `(batch, 0, d_model)` tensor per layer."""
        param = next(self.parameters())
        shape = (batch, 0, self.arch.d_model)
        return [
            torch.zeros(shape, dtype=param.dtype, device=device or param.device)
            for _ in self.layers
        ]

    def _update(self, mem: Tensor, hidden: Tensor) -> Tensor:
        """The last `mem_len` positions of `[mem, hidden]`, detached."""
        if self.mem_len == 0:
            return mem[:, :0].detach()
        return torch.cat((mem, hidden), dim=1)[:, -self.mem_len :].detach()

    # ---- forward -----------------------------------------------------------------------------
    def hidden(self, tokens: Tensor, mems: Mems | None = None) -> tuple[Tensor, Mems]:
        """The last layer's output `(B, Q, d)` and the new memory."""
        if mems is None:
            mems = self.init_mems(tokens.shape[0], tokens.device)
        if not torch.jit.is_tracing():
            if len(mems) != len(self.layers):
                raise ValueError(f"mems has {len(mems)} layers, the model {len(self.layers)}")
            if tokens.shape[1] > self.n_positions:
                raise ValueError(
                    f"a segment of {tokens.shape[1]} tokens exceeds n_positions {self.n_positions}"
                )
        klen = mems[0].shape[1] + tokens.shape[1]
        distances = (klen - 1 - torch.arange(klen, device=tokens.device)).to(self.inv_freq.dtype)
        pos = self.drop(sinusoid(distances, self.inv_freq, self.arch.d_model))
        x = self.drop(self.word_emb(tokens) * self.emb_scale)
        new_mems: Mems = []
        for layer, mem in zip(self.layers, mems, strict=True):
            new_mems.append(self._update(mem, x))
            x = layer(x, pos, mem)
        return x, new_mems

    def head(self, hidden: Tensor) -> Tensor:
        """Logits (tied head) or log-probabilities (adaptive softmax) of `hidden`."""
        if self.crit is None:
            return F.linear(hidden, self.word_emb.emb_layers[0].weight)
        return self.crit(hidden)

    def forward(self, tokens: Tensor, mems: Mems | None = None) -> tuple[Tensor, Mems]:
        """`tokens` (batch, Q) int64 and the memory -> `(batch, Q, vocab)` logits or
        log-probabilities (`output`) and the new memory."""
        hidden, new_mems = self.hidden(tokens, mems)
        return self.head(hidden), new_mems

    def loss(
        self, inputs: Tensor, targets: Tensor, mems: Mems | None = None
    ) -> tuple[Tensor, Mems]:
        """Mean next-token cross-entropy (nats) of one segment, and the new memory."""
        out, new_mems = self(inputs, mems)
        return F.cross_entropy(out.flatten(0, 1).float(), targets.flatten()), new_mems

    # ---- counting ----------------------------------------------------------------------------
    def decoder_param_count(self) -> int:
        """Parameters of the layers (the LTS proxy's definition; no final LayerNorm exists)."""
        return sum(p.numel() for p in self.layers.parameters())

    def total_param_count(self) -> int:
        """Every distinct parameter (shared embedding and output weights counted once)."""
        return sum(p.numel() for p in self.parameters())

"""Mixture-of-Supernets (Jawahar et al.): the HAT supernet with architecture-routed FFN experts.

Only the FFN of every encoder and decoder layer changes: `fc1 [ffn, d]`, `fc2 [d, ffn]` and
their biases become `experts` super-shaped copies (expert 0 is the HAT weight, kept under its
HAT name so a HAT state dict loads with `strict=False`). A small router maps the architecture's
10 normalised HAT features (`space.latency_features(arch)`, the same for every layer) to mixing
probabilities, and the subnet uses the mixed weight, each expert sliced to the subnet first:

- `layer-mos`: per layer `Linear(10, h) -> ReLU -> Linear(h, m) -> softmax` gives one `p [m]`
  shared by fc1, fc2 and both biases: `W = sum_e p_e * W_e[:out, :in]`.
- `neuron-mos`: per layer and matrix `Linear(10, h) -> ReLU -> Dropout -> Linear(h, m*out_super)`,
  cut to its first `m*out` values and softmaxed as `[out, m]`: row j of `W` is
  `sum_e p[j, e] * W_e[j, :in]`.

With one expert every probability is exactly 1 and the model computes what HAT does. `extract`
returns a plain dense `SuperTransformer` holding the mixed weights of one architecture.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nasflow.core.checks import is_int, is_number
from nasflow.core.errors import ConfigError
from nasflow.model.supertransformer import FeedForward, ModelConfig, SuperTransformer, _prefix
from nasflow.space.hat import Arch, SearchSpace

KINDS = ("hat", "layer-mos", "neuron-mos")
KIND_LABELS = {"hat": "Supernet", "layer-mos": "Layer-wise MoS", "neuron-mos": "Neuron-wise MoS"}


@dataclass(frozen=True)
class MixtureConfig:
    """The supernet kind and, for the MoS kinds, the experts per FFN and the router size."""

    kind: str = "hat"
    experts: int = 2
    router_hidden: int = 128
    router_dropout: float = 0.1

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"supernet.kind {self.kind!r}: expected one of {', '.join(KINDS)}")
        for name in ("experts", "router_hidden"):
            value = getattr(self, name)
            if not is_int(value) or value < 1:
                raise ConfigError(f"supernet.{name} must be an integer >= 1, got {value!r}")
        dropout = self.router_dropout
        if not is_number(dropout) or not 0.0 <= dropout < 1.0:
            raise ConfigError(f"supernet.router_dropout must be in [0, 1), got {dropout!r}")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> MixtureConfig:
        """Build from a mapping of the four keys; an unknown key is an error naming it."""
        values = dict(values or {})
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise ConfigError(f"unknown mixture setting(s): {', '.join(unknown)}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class LayerRouter(nn.Module):
    """`Linear(features, h) -> ReLU -> Linear(h, m) -> softmax`: one `p [m]` per layer."""

    def __init__(self, features: int, hidden: int, experts: int):
        super().__init__()
        self.hidden = nn.Linear(features, hidden)
        self.output = nn.Linear(hidden, experts)

    def forward(self, features: Tensor) -> Tensor:
        return self.output(F.relu(self.hidden(features))).softmax(dim=-1)


class NeuronRouter(nn.Module):
    """`Linear(features, h) -> ReLU -> Dropout -> Linear(h, m*out_super)`, cut to `m*out` and
    softmaxed per output row: `p [out, m]`. The last layer is initialised like an expert."""

    def __init__(self, features: int, hidden: int, experts: int, super_out: int, dropout: float):
        super().__init__()
        self.experts = experts
        self.dropout = dropout
        self.hidden = nn.Linear(features, hidden)
        self.output = nn.Linear(hidden, experts * super_out)
        nn.init.xavier_uniform_(self.output.weight)
        nn.init.zeros_(self.output.bias)

    def forward(self, features: Tensor, out: int, train: bool) -> Tensor:
        h = F.dropout(F.relu(self.hidden(features)), self.dropout, train)
        size = self.experts * out
        weight = _prefix(self.output.weight, size, self.output.in_features)
        logits = F.linear(h, weight, _prefix(self.output.bias, size))
        return logits.view(out, self.experts).softmax(dim=-1)


def _mix(first: Tensor, others: Tensor, probs: Tensor) -> Tensor:
    """`sum_e probs[:, e] * expert_e` for row-wise `probs [out, m]`, expert 0 = `first [out, ...]`
    and experts 1.. = `others [m-1, out, ...]` (all already sliced to the subnet)."""
    shape = (-1,) + (1,) * (first.dim() - 1)
    mixed = probs[:, 0].reshape(shape) * first
    for e in range(others.shape[0]):
        mixed = mixed + probs[:, e + 1].reshape(shape) * others[e]
    return mixed


class MixtureFeedForward(nn.Module):
    """A `FeedForward` whose weights are the router-weighted sum of `experts` copies.

    `fc1`/`fc2` are expert 0 (the HAT layer it replaces); `fc1_weights [m-1, ffn, d]`,
    `fc1_biases`, `fc2_weights [m-1, d, ffn]` and `fc2_biases` hold the others. The router input
    is the non-persistent buffer `router_input`, set by `MixtureSupernet.set_arch`.
    """

    def __init__(self, dense: FeedForward, mixture: MixtureConfig, features: int):
        super().__init__()
        if mixture.kind not in ("layer-mos", "neuron-mos"):
            raise ValueError(f"not a mixture kind: {mixture.kind!r}")
        self.kind = mixture.kind
        self.experts = mixture.experts
        self.fc1, self.fc2 = dense.fc1, dense.fc2
        ffn, d = self.fc1.weight.shape
        extra = mixture.experts - 1
        weights1, weights2 = torch.empty(extra, ffn, d), torch.empty(extra, d, ffn)
        for e in range(extra):
            nn.init.xavier_uniform_(weights1[e])
            nn.init.xavier_uniform_(weights2[e])
        self.fc1_weights = nn.Parameter(weights1)
        self.fc1_biases = nn.Parameter(torch.zeros(extra, ffn))
        self.fc2_weights = nn.Parameter(weights2)
        self.fc2_biases = nn.Parameter(torch.zeros(extra, d))
        hidden = mixture.router_hidden
        if self.kind == "layer-mos":
            self.router = LayerRouter(features, hidden, mixture.experts)
        else:
            dropout = mixture.router_dropout
            self.fc1_router = NeuronRouter(features, hidden, mixture.experts, ffn, dropout)
            self.fc2_router = NeuronRouter(features, hidden, mixture.experts, d, dropout)
        self.register_buffer("router_input", torch.zeros(features), persistent=False)

    def route(self, features: Tensor, ffn_dim: int, d: int, train: bool) -> tuple[Tensor, Tensor]:
        """Mixing probabilities of fc1 and fc2: `[m]` twice (layer-wise) or `[ffn_dim, m]` and
        `[d, m]` (neuron-wise); `train` switches router dropout on."""
        if self.kind == "layer-mos":
            probs = self.router(features)
            return probs, probs
        return self.fc1_router(features, ffn_dim, train), self.fc2_router(features, d, train)

    def mixed(
        self, features: Tensor, ffn_dim: int, d: int, train: bool
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The subnet's mixed `fc1.weight [ffn_dim, d]`, `fc1.bias`, `fc2.weight`, `fc2.bias`."""
        probs1, probs2 = self.route(features, ffn_dim, d, train)
        if probs1.dim() == 1:
            probs1, probs2 = probs1.expand(ffn_dim, -1), probs2.expand(d, -1)
        extra = self.experts - 1
        return (
            _mix(
                _prefix(self.fc1.weight, ffn_dim, d),
                _prefix(self.fc1_weights, extra, ffn_dim, d),
                probs1,
            ),
            _mix(_prefix(self.fc1.bias, ffn_dim), _prefix(self.fc1_biases, extra, ffn_dim), probs1),
            _mix(
                _prefix(self.fc2.weight, d, ffn_dim),
                _prefix(self.fc2_weights, extra, d, ffn_dim),
                probs2,
            ),
            _mix(_prefix(self.fc2.bias, d), _prefix(self.fc2_biases, extra, d), probs2),
        )

    def forward(self, x: Tensor, ffn_dim: int, activation_dropout: float) -> Tensor:
        weight1, bias1, weight2, bias2 = self.mixed(
            self.router_input, ffn_dim, x.shape[-1], self.training
        )
        h = F.relu(F.linear(x, weight1, bias1))
        h = F.dropout(h, activation_dropout, self.training)
        return F.linear(h, weight2, bias2)


class MixtureSupernet(SuperTransformer):
    """The HAT supernet with a `MixtureFeedForward` in every layer (always a supernet).

    Built from the same random stream as `SuperTransformer` first, so with the same seed every
    HAT weight (expert 0 included) is identical; the extra experts and routers come after.
    """

    def __init__(
        self,
        space: SearchSpace | str,
        vocab_size: int,
        config: ModelConfig | None = None,
        mixture: MixtureConfig | None = None,
    ):
        super().__init__(space, vocab_size, config)
        self.mixture = mixture or MixtureConfig(kind="layer-mos")
        if self.mixture.kind == "hat":
            raise ValueError("a MixtureSupernet needs a mixture kind (layer-mos or neuron-mos)")
        features = len(self.space.latency_feature_scale)
        for layer in (*self.encoder_layers, *self.decoder_layers):
            layer.ffn = MixtureFeedForward(layer.ffn, self.mixture, features)
        assert self.arch is not None
        self.set_arch(self.arch)

    @property
    def kind(self) -> str:  # type: ignore[override]
        return self.mixture.kind

    def _features(self, arch: Arch, like: Tensor) -> Tensor:
        values = self.space.latency_features(arch)
        return torch.tensor(values, dtype=like.dtype, device=like.device)

    def _mixtures(self) -> list[MixtureFeedForward]:
        layers = (*self.encoder_layers, *self.decoder_layers)
        return [layer.ffn for layer in layers if isinstance(layer.ffn, MixtureFeedForward)]

    def _active(self, arch: Arch) -> Iterator[tuple[MixtureFeedForward, int, int]]:
        """`(ffn, ffn_dim, embed_dim)` of every active layer of `arch`, encoder first."""
        for layers, ffn_dims, d in (
            (self.encoder_layers, arch.encoder_ffn_embed_dim, arch.encoder_embed_dim),
            (self.decoder_layers, arch.decoder_ffn_embed_dim, arch.decoder_embed_dim),
        ):
            for layer, ffn_dim in zip(layers, ffn_dims, strict=False):
                yield layer.ffn, ffn_dim, d

    def set_arch(self, arch: Arch) -> MixtureSupernet:
        """Select `arch` and give every mixture FFN its router input (a new tensor, so a graph
        built for the previous arch keeps its own)."""
        super().set_arch(arch)
        mixtures = self._mixtures()  # empty while SuperTransformer.__init__ runs
        if mixtures:
            features = self._features(arch, mixtures[0].router_input)
            for ffn in mixtures:
                ffn.router_input = features
        return self

    def mixture_weights(self, arch: Arch | None = None) -> list[tuple[Tensor, Tensor]]:
        """Router outputs `(fc1, fc2)` of each active layer of `arch` (default: the current
        one), encoder first; no gradient, router dropout off."""
        arch = self.space.validate(arch or self.arch)
        ffns = self._mixtures()
        features = self._features(arch, ffns[0].router_input)
        with torch.no_grad():
            return [ffn.route(features, f, d, False) for ffn, f, d in self._active(arch)]

    def extract(self, arch: Arch | None = None) -> SuperTransformer:
        """A dense HAT `SuperTransformer` of `arch` whose FFNs hold the mixed weights (router
        dropout off); every other weight is sliced as `SuperTransformer.extract` does."""
        arch = arch or self.arch
        assert arch is not None
        dense = super().extract(arch)
        features = self._features(arch, self._mixtures()[0].router_input)
        targets = (*dense.encoder_layers, *dense.decoder_layers)
        with torch.no_grad():
            for (ffn, ffn_dim, d), layer in zip(self._active(arch), targets, strict=True):
                weights = ffn.mixed(features, ffn_dim, d, False)
                params = (layer.ffn.fc1.weight, layer.ffn.fc1.bias)
                params += (layer.ffn.fc2.weight, layer.ffn.fc2.bias)
                for param, value in zip(params, weights, strict=True):
                    param.copy_(value)
        return dense


def build_supernet(
    space: SearchSpace | str,
    vocab_size: int,
    config: ModelConfig | None = None,
    mixture: MixtureConfig | None = None,
) -> SuperTransformer:
    """The HAT `SuperTransformer` (no mixture, or kind `hat`) or a `MixtureSupernet`."""
    if mixture is None or mixture.kind == "hat":
        return SuperTransformer(space, vocab_size, config)
    return MixtureSupernet(space, vocab_size, config, mixture)

"""Hardware constraints of the evolutionary search: latency, FLOPs and parameter budgets.

Each constraint maps architectures to one quantity (ms, GFLOPs, millions of parameters) and
holds when the value is at most its limit. Config form (any subset; null or absent means
unconstrained): `{"latency_ms": 100, "gflops": 2.5, "params_m": 30}`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from nasflow.core.errors import ConfigError
from nasflow.efficiency.counts import count_embedding_params, count_flops, count_params
from nasflow.space.hat import Arch

if TYPE_CHECKING:
    from nasflow.predictors.latency import LatencyPredictor

CONSTRAINT_KEYS = ("latency_ms", "gflops", "params_m")


class Constraint(ABC):
    """An upper bound on one efficiency quantity of an architecture.

    Attributes:
        name: the config key (`latency_ms`, `gflops`, `params_m`).
        unit: unit of `values` and `limit`, for messages.
        limit: the largest allowed value.
    """

    name: str
    unit: str

    def __init__(self, limit: float) -> None:
        self.limit = _check_limit(self.name, limit)

    @abstractmethod
    def values(self, archs: Sequence[Arch]) -> np.ndarray:
        """The constrained quantity of each architecture (float vector, in `unit`)."""

    def satisfied(self, archs: Sequence[Arch]) -> np.ndarray:
        """Whether each architecture's value is at most the limit (bool vector)."""
        return np.asarray(self.values(archs), dtype=float) <= self.limit

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name} <= {self.limit:g} {self.unit})"


def _check_limit(name: str, limit: Any) -> float:
    if isinstance(limit, bool) or not isinstance(limit, int | float):
        raise ConfigError(f"constraint {name}: the limit must be a number, got {limit!r}")
    if not math.isfinite(limit) or limit <= 0:
        raise ConfigError(f"constraint {name}: the limit must be positive and finite, got {limit}")
    return float(limit)


class LatencyConstraint(Constraint):
    """Predicted latency (ms) by a trained `LatencyPredictor`."""

    name = "latency_ms"
    unit = "ms"

    def __init__(self, predictor: LatencyPredictor, max_ms: float) -> None:
        super().__init__(max_ms)
        self.predictor = predictor

    def values(self, archs: Sequence[Arch]) -> np.ndarray:
        return np.asarray(self.predictor.predict_ms(archs), dtype=float)


class FlopsConstraint(Constraint):
    """Forward GFLOPs of one sentence pair, output projection included (`count_flops`)."""

    name = "gflops"
    unit = "GFLOPs"

    def __init__(self, max_gflops: float, vocab_size: int) -> None:
        super().__init__(max_gflops)
        self.vocab_size = _check_vocab(vocab_size)

    def values(self, archs: Sequence[Arch]) -> np.ndarray:
        return np.array([count_flops(a, self.vocab_size) / 1e9 for a in archs], dtype=float)


class ParamsConstraint(Constraint):
    """Millions of parameters: HAT's non-embedding count, plus embeddings if asked."""

    name = "params_m"
    unit = "M params"

    def __init__(
        self, max_millions: float, vocab_size: int, include_embeddings: bool = False
    ) -> None:
        super().__init__(max_millions)
        self.vocab_size = _check_vocab(vocab_size)
        self.include_embeddings = include_embeddings

    def values(self, archs: Sequence[Arch]) -> np.ndarray:
        return np.array([self._count(a) / 1e6 for a in archs], dtype=float)

    def _count(self, arch: Arch) -> int:
        extra = count_embedding_params(arch, self.vocab_size) if self.include_embeddings else 0
        return count_params(arch) + extra


def _check_vocab(vocab_size: Any) -> int:
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 1:
        raise ConfigError(f"vocab_size must be a positive integer, got {vocab_size!r}")
    return vocab_size


def constraints_from_mapping(
    mapping: Mapping[str, Any] | None,
    *,
    vocab_size: int,
    latency_predictor: LatencyPredictor | None = None,
) -> list[Constraint]:
    """Constraints of a config mapping such as `{"latency_ms": 100, "gflops": 2.5}`.

    Keys are `latency_ms`, `gflops` and `params_m`; a null or absent key is unconstrained.
    """
    mapping = dict(mapping or {})
    unknown = sorted(set(mapping) - set(CONSTRAINT_KEYS))
    if unknown:
        raise ConfigError(
            f"unknown constraint(s): {', '.join(unknown)}; known: {', '.join(CONSTRAINT_KEYS)}"
        )
    constraints: list[Constraint] = []
    if mapping.get("latency_ms") is not None:
        if latency_predictor is None:
            raise ConfigError("constraint latency_ms needs a trained latency predictor")
        constraints.append(LatencyConstraint(latency_predictor, mapping["latency_ms"]))
    if mapping.get("gflops") is not None:
        constraints.append(FlopsConstraint(mapping["gflops"], vocab_size))
    if mapping.get("params_m") is not None:
        constraints.append(ParamsConstraint(mapping["params_m"], vocab_size))
    return constraints


def satisfies_all(constraints: Sequence[Constraint], archs: Sequence[Arch]) -> np.ndarray:
    """Whether each architecture meets every constraint (all True when there are none)."""
    ok = np.ones(len(archs), dtype=bool)
    for constraint in constraints:
        ok &= constraint.satisfied(archs)
    return ok

"""Screening for the LTS search: measure only the candidates that could enter the frontier.

Measuring one text-prediction candidate on the device costs tens of seconds, and most of the
2,420 candidates of the paper's search can never be on the frontier: a decoder with fewer
parameters *and* a higher latency and memory than one already measured is dominated whatever
its exact figures. `ScreenSettings(enabled=True)` makes the search (`nasflow.lts.search`)
measure the first `initial` new candidates, then, before each evaluator batch:

1. fit `CostSurrogate` on every candidate measured so far (this device, this protocol): one
   least-squares fit per measured objective (latency, peak memory) on cost features of the
   architecture that follow how a batch-1 decoder spends time and memory (`cost_features`);
2. estimate its error by leave-one-out: the relative residual of each measured point when it is
   left out of the fit (closed form), `error` = their root mean square, at least `min_error`;
3. give each unmeasured candidate its exact decoder parameters and an *optimistic* latency and
   memory, `prediction * (1 - margin * error)`; a candidate whose optimistic point is dominated
   by a measured one is screened out (`screened_because = dominated`: not measured, not on the
   frontier, not a parent; listed in `screened.csv` with its predictions); the others are
   measured, `eval_batch` at a time, the largest hypervolume gain of the optimistic point first
   (`nasflow.search.pareto.hypervolume_gains`), the fit and the decisions renewed after each
   batch;
4. with a `budget`, at most `budget` candidates are measured per iteration after the warm-up;
   the rest are screened out too (`screened_because = budget`).

Every architecture on the frontier is therefore measured. Without a budget a screened-out one
would have to beat its prediction by more than `margin` times the surrogate's own error to have
belonged there; with one, a candidate that could have entered may be left out, and what that
costs is the frontier's hypervolume (`bench/bench_lts.py --demo` compares it with a search that
measures everything).
The predictions made just before each measurement are kept with it, so the surrogate's error on
architectures it had not seen (`held_out_error`) is reported beside the leave-one-out estimate.

Why a linear fit and not `nasflow.predictors.arch_mlp` (the architecture-feature MLP of the
latency predictor): the screen has 20 points when it starts and must extrapolate across the
space; a few physically motivated features fit by least squares do that, a 400-wide MLP needs
hundreds of labels.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from nasflow.core.checks import is_int, is_number
from nasflow.core.errors import ConfigError

__all__ = ["FEATURES", "CostSurrogate", "Screen", "ScreenSettings", "cost_features", "gpt_screen"]

#: The surrogate's features (`cost_features`), in order.
FEATURES = (
    "decoder_params",
    "n_layer",
    "d_model",
    "layer_width",
    "heads",
    "ffn_width",
)


@dataclass(frozen=True)
class ScreenSettings:
    """`enabled` (off by default: LTS measures every candidate), `initial` (candidates measured
    before the first screen), `margin` (optimism, in surrogate errors), `min_error` (floor of
    the relative error used), `budget` (most candidates measured per iteration after the
    warm-up, the largest optimistic hypervolume gains first; None = every candidate that could
    enter the frontier), the objectives predicted (`measured`: latency and memory)."""

    enabled: bool = False
    initial: int = 20
    margin: float = 2.0
    min_error: float = 0.02
    budget: int | None = None
    measured: tuple[str, ...] = ("latency_ms", "memory_mb")

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, bool):
            raise ConfigError(f"lts.screen.enabled must be true or false, got {self.enabled!r}")
        if not is_int(self.initial) or self.initial < len(FEATURES) + 2:
            raise ConfigError(
                f"lts.screen.initial must be an integer >= {len(FEATURES) + 2} (the surrogate "
                f"fits {len(FEATURES) + 1} coefficients per objective), got {self.initial!r}"
            )
        if self.budget is not None and (not is_int(self.budget) or self.budget < 1):
            raise ConfigError(
                f"lts.screen.budget must be null or an integer >= 1, got {self.budget!r}"
            )
        for name in ("margin", "min_error"):
            value = getattr(self, name)
            if not is_number(value) or value < 0:
                raise ConfigError(f"lts.screen.{name} must be a number >= 0, got {value!r}")
        object.__setattr__(self, "measured", tuple(self.measured))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> ScreenSettings:
        values = dict(values or {})
        known = {"enabled", "initial", "margin", "min_error", "budget"}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"unknown lts.screen setting(s): {', '.join(unknown)}; known: "
                f"{', '.join(sorted(known))}"
            )
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["measured"] = list(self.measured)
        return out


def cost_features(arch: Any, decoder_params: int) -> np.ndarray:
    """`FEATURES` of a GPT-style decoder: its decoder parameters (the weights every step
    reads), layers (per-layer fixed costs), `d_model` (the head's `d_model x vocabulary`
    product and the embeddings), `n_layer * d_model` (the key/value cache and activations),
    the total head count (attention kernels) and the summed FFN width (the largest
    activations)."""
    heads = sum(arch.n_head)
    return np.array(
        [
            float(decoder_params),
            float(arch.n_layer),
            float(arch.d_model),
            float(arch.n_layer * arch.d_model),
            float(heads),
            float(sum(arch.d_inner)),
        ]
    )


class CostSurrogate:
    """Least-squares fits of the measured objectives on `cost_features` (module docstring)."""

    def __init__(self, settings: ScreenSettings) -> None:
        self.settings = settings
        self.coef: dict[str, np.ndarray] = {}
        self.error: dict[str, float] = {}
        self.scale: np.ndarray | None = None
        self.points = 0

    def fit(self, features: np.ndarray, metrics: Sequence[Mapping[str, Any]]) -> CostSurrogate:
        """Fit on `features` (one row per measured architecture) and their `metrics`."""
        x = np.asarray(features, dtype=float)
        self.scale = np.maximum(np.abs(x).max(axis=0), 1e-12)
        design = np.column_stack([np.ones(len(x)), x / self.scale])
        # Leverages of the fit (hat-matrix diagonal) for the leave-one-out residuals.
        pinv = np.linalg.pinv(design)
        leverage = np.einsum("ij,ji->i", design, pinv)
        for name in self.settings.measured:
            y = np.array([float(m[name]) for m in metrics])
            coef = pinv @ y
            residual = (y - design @ coef) / np.maximum(1.0 - leverage, 1e-6)
            relative = residual / np.maximum(np.abs(y), 1e-12)
            self.coef[name] = coef
            self.error[name] = max(
                float(np.sqrt(np.mean(relative**2))), float(self.settings.min_error)
            )
        self.points = len(x)
        return self

    def predict(self, features: np.ndarray) -> dict[str, np.ndarray]:
        """Predicted objectives of each row of `features`."""
        if self.scale is None:
            raise RuntimeError("the surrogate is not fitted")
        x = np.atleast_2d(np.asarray(features, dtype=float))
        design = np.column_stack([np.ones(len(x)), x / self.scale])
        return {name: design @ coef for name, coef in self.coef.items()}

    def optimistic(self, features: np.ndarray) -> dict[str, np.ndarray]:
        """Predictions lowered by `margin` relative errors (every measured objective is
        minimised), never below zero."""
        factor = {
            name: max(0.0, 1.0 - self.settings.margin * err) for name, err in self.error.items()
        }
        return {
            name: np.maximum(values, 0.0) * factor[name]
            for name, values in self.predict(features).items()
        }


@dataclass(frozen=True)
class Screen:
    """What the search needs to screen: the settings, the objectives known without measuring
    (`exact(arch) -> {name: value}`) and the surrogate's features (`features(arch)`)."""

    settings: ScreenSettings
    exact: Callable[[Any], dict[str, float]]
    features: Callable[[Any], np.ndarray]


def gpt_screen(settings: ScreenSettings, backbone: str = "gpt2") -> Screen:
    """The screen of a GPT-style decoder space: decoder parameters exact (closed form), latency
    and memory predicted from `cost_features`."""
    from nasflow.space.gpt_params import decoder_params

    def exact(arch: Any) -> dict[str, float]:
        return {"decoder_params": decoder_params(arch, backbone)}

    def features(arch: Any) -> np.ndarray:
        return cost_features(arch, decoder_params(arch, backbone))

    return Screen(settings, exact, features)

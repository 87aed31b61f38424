"""Learning-rate schedules of HAT (fairseq `cosine` and `inverse_sqrt`), as functions of updates."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from nasflow.core.errors import ConfigError


class LRSchedule(Protocol):
    """Learning rate for the update that follows `num_updates` completed updates."""

    def __call__(self, num_updates: int) -> float: ...


def _warmup(num_updates: int, warmup_updates: int, init_lr: float, peak_lr: float) -> float:
    return init_lr + num_updates * (peak_lr - init_lr) / warmup_updates


def _check(name: str, value: float, low: float, strict: bool = False) -> None:
    if value < low or (strict and value == low):
        bound = ">" if strict else ">="
        raise ConfigError(f"learning-rate schedule: {name} must be {bound} {low}, got {value}")


@dataclass(frozen=True)
class CosineSchedule:
    """Linear warmup `warmup_init_lr -> max_lr`, then one half-cosine down to `min_lr`.

    After warmup, `t = n - warmup_updates` and `lr = min_lr + (max_lr - min_lr)(1 + cos(pi t /
    period)) / 2`; `t >= period` gives `min_lr` (fairseq would restart the cycle instead).
    """

    max_lr: float
    warmup_updates: int
    warmup_init_lr: float = 1e-7
    min_lr: float = 1e-7
    period: int = field(kw_only=True)

    def __post_init__(self) -> None:
        _check("max_lr", self.max_lr, 0.0, strict=True)
        _check("warmup_updates", self.warmup_updates, 0)
        _check("warmup_init_lr", self.warmup_init_lr, 0.0)
        _check("min_lr", self.min_lr, 0.0)
        _check("period", self.period, 1)

    def __call__(self, num_updates: int) -> float:
        if num_updates < self.warmup_updates:
            return _warmup(num_updates, self.warmup_updates, self.warmup_init_lr, self.max_lr)
        t = num_updates - self.warmup_updates
        if t >= self.period:
            return self.min_lr
        cosine = 1.0 + math.cos(math.pi * t / self.period)
        return self.min_lr + 0.5 * (self.max_lr - self.min_lr) * cosine


@dataclass(frozen=True)
class InverseSqrtSchedule:
    """Linear warmup `warmup_init_lr -> lr`, then `lr * sqrt(warmup_updates / n)`.

    With `warmup_updates` 0 the decay is `lr / sqrt(max(n, 1))`.
    """

    lr: float
    warmup_updates: int
    warmup_init_lr: float = 1e-7

    def __post_init__(self) -> None:
        _check("lr", self.lr, 0.0, strict=True)
        _check("warmup_updates", self.warmup_updates, 0)
        _check("warmup_init_lr", self.warmup_init_lr, 0.0)

    def __call__(self, num_updates: int) -> float:
        if num_updates < self.warmup_updates:
            return _warmup(num_updates, self.warmup_updates, self.warmup_init_lr, self.lr)
        reference = max(self.warmup_updates, 1)
        return self.lr * math.sqrt(reference / max(num_updates, reference))


SCHEDULERS = ("cosine", "inverse_sqrt")


def make_schedule(settings: Mapping[str, Any]) -> LRSchedule:
    """The schedule of a `supernet` or `train` config section (period = max - warmup updates)."""
    try:
        kind = settings["lr_scheduler"]
        lr, warmup = float(settings["lr"]), int(settings["warmup_updates"])
        init_lr = float(settings["warmup_init_lr"])
        if kind == "cosine":
            period = max(int(settings["max_updates"]) - warmup, 1)
            min_lr = float(settings["min_lr"])
            return CosineSchedule(lr, warmup, init_lr, min_lr, period=period)
    except KeyError as error:
        raise ConfigError(f"learning-rate schedule: missing setting {error.args[0]!r}") from None
    if kind == "inverse_sqrt":
        return InverseSqrtSchedule(lr, warmup, init_lr)
    raise ConfigError(f"lr_scheduler {kind!r} is not one of {list(SCHEDULERS)}")

"""Training settings: the `supernet` / `train` config sections as one typed value."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from nasflow.core.errors import ConfigError

MODES = ("spos", "sandwich", "fixed")


@dataclass(frozen=True)
class TrainSettings:
    """One training run's hyperparameters (defaults: HAT WMT, reference §2 and §9)."""

    mode: str = "fixed"
    seed: int = 1
    max_updates: int = 40000
    max_tokens: int = 4096
    update_freq: int = 1
    lr: float = 1e-3
    lr_scheduler: str = "cosine"
    warmup_updates: int = 4000
    warmup_init_lr: float = 1e-7
    min_lr: float = 1e-7
    weight_decay: float = 0.0
    clip_norm: float = 0.0
    label_smoothing: float = 0.1
    adam_betas: tuple[float, float] = (0.9, 0.98)
    adam_eps: float = 1e-8
    device: str = "auto"
    precision: str = "auto"
    save_interval_updates: int = 1000
    valid_interval_updates: int = 1000
    valid_sentences: int = 0
    log_interval_updates: int = 100
    sandwich_random: int = 1
    average_last: int = 0
    max_positions: int = 1024

    def __post_init__(self) -> None:
        object.__setattr__(self, "adam_betas", tuple(float(b) for b in self.adam_betas))
        if self.mode not in MODES:
            raise ConfigError(f"training mode {self.mode!r}: expected one of {', '.join(MODES)}")
        for name in ("max_updates", "max_tokens", "update_freq", "save_interval_updates"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"training setting {name}: must be >= 1")
        if self.warmup_updates and self.warmup_updates >= self.max_updates:
            raise ConfigError(
                f"training setting warmup_updates ({self.warmup_updates}) must be smaller than "
                f"max_updates ({self.max_updates})"
            )

    @classmethod
    def from_config(cls, config: Mapping[str, Any], section: str) -> TrainSettings:
        """Settings of `section` (`supernet` or `train`) of a validated experiment config."""
        values = dict(config.get(section) or {})
        if section == "supernet":
            values["mode"] = values.pop("sampling", "spos")
        else:
            values["mode"] = "fixed"
        values["seed"] = int(config.get("seed", 1))
        values["max_positions"] = int((config.get("model") or {}).get("max_positions", 1024))
        return cls.from_mapping(values)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> TrainSettings:
        """Settings from a flat mapping; unknown keys are an error naming them."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - names - {"sampling"})
        if unknown:
            raise ConfigError(f"unknown training setting(s): {', '.join(unknown)}")
        values = dict(values)
        if "sampling" in values:
            values["mode"] = values.pop("sampling")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["adam_betas"] = list(self.adam_betas)
        return data

    def result_relevant(self) -> dict[str, Any]:
        """Settings that change the trained weights (not logging or save cadence)."""
        data = self.to_dict()
        for name in ("log_interval_updates", "save_interval_updates", "device"):
            data.pop(name)
        return data

"""Training settings: the `supernet` / `train` config sections as one typed value."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from nasflow.config.schema import schema_defaults
from nasflow.core.errors import ConfigError

MODES = ("spos", "sandwich", "fixed")
_TRAIN = schema_defaults("train")  # the defaults of the `train` section, stated once


@dataclass(frozen=True)
class TrainSettings:
    """One training run's hyperparameters (defaults: the schema's `train` section, HAT WMT,
    reference §2 and §9)."""

    mode: str = "fixed"
    seed: int = 1
    max_updates: int = _TRAIN["max_updates"]
    max_tokens: int = _TRAIN["max_tokens"]
    update_freq: int = _TRAIN["update_freq"]
    lr: float = _TRAIN["lr"]
    lr_scheduler: str = _TRAIN["lr_scheduler"]
    warmup_updates: int = _TRAIN["warmup_updates"]
    warmup_init_lr: float = _TRAIN["warmup_init_lr"]
    min_lr: float = _TRAIN["min_lr"]
    weight_decay: float = _TRAIN["weight_decay"]
    clip_norm: float = _TRAIN["clip_norm"]
    label_smoothing: float = _TRAIN["label_smoothing"]
    adam_betas: tuple[float, float] = tuple(_TRAIN["adam_betas"])
    adam_eps: float = _TRAIN["adam_eps"]
    device: str = _TRAIN["device"]
    precision: str = _TRAIN["precision"]
    save_interval_updates: int = _TRAIN["save_interval_updates"]
    valid_interval_updates: int = _TRAIN["valid_interval_updates"]
    valid_sentences: int = _TRAIN["valid_sentences"]
    log_interval_updates: int = _TRAIN["log_interval_updates"]
    sandwich_random: int = 1
    average_last: int = _TRAIN["average_last"]
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

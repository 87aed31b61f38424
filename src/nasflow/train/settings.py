"""Training settings: the `supernet` / `train` config sections as one typed value."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from nasflow.config.schema import schema_defaults
from nasflow.core.errors import ConfigError
from nasflow.model.mos import MixtureConfig

MODES = ("spos", "sandwich", "fixed")
MIXTURE_KEYS = ("kind", "experts", "router_hidden", "router_dropout")
WORKFLOW_ONLY = ("compare",)  # `supernet` keys the workflow reads, not training
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
    gpus: int = _TRAIN["gpus"]
    nodes: int = _TRAIN["nodes"]
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
    kind: str = "hat"
    experts: int = 2
    router_hidden: int = 128
    router_dropout: float = 0.1

    def __post_init__(self) -> None:
        object.__setattr__(self, "adam_betas", tuple(float(b) for b in self.adam_betas))
        if self.mode not in MODES:
            raise ConfigError(f"training mode {self.mode!r}: expected one of {', '.join(MODES)}")
        positive = ("max_updates", "max_tokens", "update_freq", "gpus", "nodes")
        for name in (*positive, "save_interval_updates"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"training setting {name}: must be >= 1")
        if self.warmup_updates and self.warmup_updates >= self.max_updates:
            raise ConfigError(
                f"training setting warmup_updates ({self.warmup_updates}) must be smaller than "
                f"max_updates ({self.max_updates})"
            )
        self.mixture()  # validates the mixture keys
        if self.kind != "hat" and self.mode not in ("spos", "sandwich"):
            raise ConfigError(
                f"supernet.kind {self.kind!r} needs spos or sandwich training, not {self.mode!r} "
                "(a from-scratch run trains a dense HAT model)"
            )

    @classmethod
    def from_config(cls, config: Mapping[str, Any], section: str) -> TrainSettings:
        """Settings of `section` (`supernet` or `train`) of a validated experiment config."""
        values = dict(config.get(section) or {})
        if section == "supernet":
            values["mode"] = values.pop("sampling", "spos")
            for key in WORKFLOW_ONLY:
                values.pop(key, None)
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

    @property
    def world_size(self) -> int:
        """Training processes: `gpus` per node x `nodes` (torchrun's WORLD_SIZE)."""
        return self.gpus * self.nodes

    @property
    def effective_update_freq(self) -> int:
        """Micro-batches per update over all processes (`update_freq x gpus x nodes`)."""
        return self.update_freq * self.world_size

    def mixture(self) -> MixtureConfig:
        """The supernet kind and its mixture-of-experts settings."""
        return MixtureConfig(self.kind, self.experts, self.router_hidden, self.router_dropout)

    def result_relevant(self) -> dict[str, Any]:
        """Settings that change the trained weights (not logging or save cadence); the mixture
        keys only for a MoS kind, so HAT runs keep their fingerprints. `update_freq` is the
        effective one (x gpus x nodes) and the process counts are left out: a run resumes
        across a changed world size that keeps the effective batch."""
        data = self.to_dict()
        for name in ("log_interval_updates", "save_interval_updates", "device", "gpus", "nodes"):
            data.pop(name)
        data["update_freq"] = self.effective_update_freq
        if self.kind == "hat":
            for name in MIXTURE_KEYS:
                data.pop(name)
        return data

"""Saving and loading trained models (supernets and dense architectures) as one `.pt` file.

A Mixture-of-Supernets model adds `"mixture"` (its `MixtureConfig`); files without the key are
HAT models.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from nasflow.core.errors import ConfigError, NasflowError
from nasflow.core.io import atomic_path, load_torch, one_line
from nasflow.model.mos import MixtureConfig, MixtureSupernet
from nasflow.model.supertransformer import ModelConfig, SuperTransformer
from nasflow.space.hat import Arch, ArchError

FORMAT = "nasflow-model-1"
PAYLOAD_KEYS = ("format", "space", "vocab_size", "config", "layout", "arch", "state_dict")


class CheckpointError(NasflowError):
    """A model file is missing, unreadable or not a nasflow model."""


def model_payload(model: SuperTransformer, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything needed to rebuild `model` (weights on CPU, no optimizer state)."""
    assert model.arch is not None
    payload = {
        "format": FORMAT,
        "space": model.space.name,
        "vocab_size": model.vocab_size,
        "config": model.config.to_dict(),
        "layout": model.layout.to_dict() if model.layout is not None else None,
        "arch": model.arch.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "meta": dict(meta or {}),
    }
    if isinstance(model, MixtureSupernet):
        payload["mixture"] = model.mixture.to_dict()
    return payload


def save_model(
    path: str | Path, model: SuperTransformer, meta: dict[str, Any] | None = None
) -> None:
    """Write `model` atomically (a reader never sees a half-written file)."""
    payload = model_payload(model, meta)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def model_from_payload(payload: dict[str, Any], source: str = "model") -> SuperTransformer:
    """Rebuild a model from `model_payload` output (a `MixtureSupernet` when it has a mixture)."""
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{source}: not a nasflow model file (expected format {FORMAT})")
    layout = Arch.from_dict(payload["layout"]) if payload["layout"] is not None else None
    config = ModelConfig(**payload["config"])
    mixture = payload.get("mixture")
    model: SuperTransformer
    if mixture is not None:
        if layout is not None:
            raise ValueError("a mixture model is always a supernet, but the file has a layout")
        mixture_config = MixtureConfig.from_mapping(mixture)
        model = MixtureSupernet(payload["space"], payload["vocab_size"], config, mixture_config)
    else:
        model = SuperTransformer(payload["space"], payload["vocab_size"], config, layout=layout)
    model.load_state_dict(payload["state_dict"])
    model.set_arch(Arch.from_dict(payload["arch"]))
    return model


def load_model(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[SuperTransformer, dict[str, Any]]:
    """Load a model saved by `save_model`; returns the model (eval mode) and its metadata."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: model file not found")
    payload = load_torch(path, "model", error=CheckpointError)  # weights_only: never runs code
    try:
        model = model_from_payload(payload, str(path))
    except (KeyError, TypeError, ValueError, RuntimeError, ArchError, ConfigError) as error:
        missing = [key for key in PAYLOAD_KEYS if key not in payload]
        reason = f"lacks {', '.join(missing)}" if missing else one_line(error)
        raise CheckpointError(f"{path}: not a usable nasflow model ({reason})") from None
    model = model.to(device)
    model.eval()
    return model, payload.get("meta", {})

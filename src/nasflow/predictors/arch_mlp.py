"""MLP regressors on architecture features, shared by the HAT latency predictor and LLM-Distill-PP.

One network (HAT's `Net`), one seeded training loop (Adam, MSE, batches drawn without replacement
at every step, optional held-out early stopping), a seeded permutation split, per-column feature
normalisation, batched prediction and checkpoint files (atomic `torch.save`, `weights_only` load).
The callers (`predictors.latency`, `predictors.distilled`) keep their own settings, file formats
and messages; the random-number use here is theirs unchanged, so their results are bit-identical.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from itertools import pairwise
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn

from nasflow.core.errors import DataError
from nasflow.core.io import atomic_path, load_torch

FEATURE_DIM = 10  # both HAT encodings (latency features, `hat` distill features) have 10 columns
LOAD_ERRORS: tuple[type[Exception], ...] = (
    AttributeError,
    KeyError,
    TypeError,
    ValueError,
    RuntimeError,
)
T = TypeVar("T")


# ---- model --------------------------------------------------------------------------------------


class ArchMLP(nn.Module):
    """HAT's `Net`: Linear(features, hidden), ReLU, `hidden_layers` x [Linear, ReLU], Linear(1)."""

    def __init__(
        self, hidden_dim: int = 400, hidden_layers: int = 3, feature_dim: int = FEATURE_DIM
    ):
        super().__init__()
        self.first_layer = nn.Linear(feature_dim, hidden_dim)
        self.layers = nn.ModuleList(nn.Linear(hidden_dim, hidden_dim) for _ in range(hidden_layers))
        self.predict = nn.Linear(hidden_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.first_layer(x))
        for layer in self.layers:
            x = torch.relu(layer(x))
        return self.predict(x).squeeze(-1)


def predict_rows(
    model: nn.Module, x: np.ndarray, device: torch.device, chunk: int | None = None
) -> np.ndarray:
    """Model outputs (float64) for rows of features: one forward pass, or `chunk` rows each."""
    inputs = torch.as_tensor(np.asarray(x), dtype=torch.float32)
    with torch.inference_mode():
        if chunk is None:
            return model(inputs.to(device)).double().cpu().numpy()
        out = np.empty(len(inputs), dtype=np.float64)
        for start in range(0, len(inputs), chunk):
            rows = inputs[start : start + chunk].to(device)
            out[start : start + len(rows)] = model(rows).double().cpu().numpy()
    return out


# ---- splits and normalisation -------------------------------------------------------------------


def permuted_parts(n: int, seed: int, sizes: Sequence[int]) -> list[np.ndarray]:
    """Consecutive slices of `sizes` rows (the last takes the rest) of a seeded permutation."""
    order = np.random.default_rng(seed).permutation(n)
    bounds = [0, *np.cumsum(sizes[:-1]).tolist(), n]
    return [order[start:stop] for start, stop in pairwise(bounds)]


@dataclass(frozen=True)
class FeatureNormalization:
    """`(x - mean) / std` per feature column; identity is mean 0, std 1 (llmas)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def identity(cls, dim: int = FEATURE_DIM) -> FeatureNormalization:
        return cls((0.0,) * dim, (1.0,) * dim)

    @classmethod
    def fit(cls, x: np.ndarray) -> FeatureNormalization:
        """Mean/std of the columns of `x` (a constant column keeps std 1)."""
        std = x.std(axis=0)
        return cls(
            tuple(map(float, x.mean(axis=0))), tuple(float(s) if s > 0 else 1.0 for s in std)
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], dim: int = FEATURE_DIM) -> FeatureNormalization:
        mean, std = tuple(map(float, data["mean"])), tuple(map(float, data["std"]))
        if len(mean) != dim or len(std) != dim:
            raise ValueError(f"normalisation needs {dim} means and stds")
        if not all(math.isfinite(v) for v in mean) or not all(s > 0 for s in std):
            raise ValueError("normalisation means must be finite and stds positive")
        return cls(mean, std)

    @property
    def is_identity(self) -> bool:
        return all(m == 0.0 for m in self.mean) and all(s == 1.0 for s in self.std)

    def apply(self, x: np.ndarray) -> np.ndarray:
        if self.is_identity:
            return x
        return (x - np.asarray(self.mean)) / np.asarray(self.std)

    def to_dict(self) -> dict[str, Any]:
        kind = "identity" if self.is_identity else "standard"
        return {"kind": kind, "mean": list(self.mean), "std": list(self.std)}


# ---- training -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FitOptions:
    """One training run: network size, Adam lr, steps, batch rows, seed, evaluation schedule.

    `eval_interval` 0 records no curves (only every batch's loss); otherwise every that many steps
    (and at the last) the mean batch MSE since the previous evaluation goes to the train curve and,
    with held-out rows, their MSE to the valid curve; `patience` evaluations without improvement
    stop training (0: never) and the best held-out state is restored.
    """

    hidden_dim: int
    hidden_layers: int
    lr: float
    steps: int
    batch_size: int
    seed: int
    eval_interval: int = 0
    patience: int = 0

    @classmethod
    def of(cls, settings: Any) -> FitOptions:
        """The options named like attributes of `settings` (absent ones keep their default)."""
        names = (f.name for f in fields(cls))
        return cls(**{name: getattr(settings, name) for name in names if hasattr(settings, name)})


@dataclass
class FitLog:
    """What a training run recorded: every batch loss, the curves and the early-stopping state."""

    losses: list[float] = field(default_factory=list)
    train_curve: list[list[float]] = field(default_factory=list)
    valid_curve: list[list[float]] = field(default_factory=list)
    steps_run: int = 0
    best_mse: float = math.inf
    best_step: int = 0


def seeded_mlp(options: FitOptions, feature_dim: int) -> ArchMLP:
    """A fresh MLP initialised from `options.seed` without touching the global torch RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(options.seed)
        return ArchMLP(options.hidden_dim, options.hidden_layers, feature_dim)


def mse(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Mean squared error of `model` on `(x, y)` in eval mode; leaves the model training."""
    model.eval()
    with torch.no_grad():
        value = nn.functional.mse_loss(model(x), y).item()
    model.train()
    return value


def fit_mlp(
    x: torch.Tensor,
    y: torch.Tensor,
    options: FitOptions,
    x_valid: torch.Tensor | None = None,
    y_valid: torch.Tensor | None = None,
) -> tuple[ArchMLP, FitLog]:
    """Train a fresh seeded MLP on `(x, y)`: each step one batch drawn without replacement."""
    model = seeded_mlp(options, x.shape[1]).to(x.device).train()
    generator = torch.Generator().manual_seed(options.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=options.lr)
    batch = min(options.batch_size, len(y))
    held_out = x_valid is not None and y_valid is not None and len(y_valid) > 0
    log, best_state, stale, since = FitLog(), None, 0, 0
    for step in range(1, options.steps + 1):
        log.steps_run = step
        index = torch.randperm(len(y), generator=generator)[:batch].to(x.device)
        loss = nn.functional.mse_loss(model(x[index]), y[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        log.losses.append(loss.item())
        if not options.eval_interval or (step % options.eval_interval and step != options.steps):
            continue
        log.train_curve.append([step, float(np.mean(log.losses[since:]))])
        since = step
        if not held_out:
            continue
        value = mse(model, x_valid, y_valid)
        log.valid_curve.append([step, value])
        if value < log.best_mse:
            log.best_mse, log.best_step, stale = value, step, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
        if options.patience > 0 and stale >= options.patience:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return model, log


# ---- files --------------------------------------------------------------------------------------


def save_checkpoint(path: str | Path, payload: Mapping[str, Any]) -> Path:
    """`torch.save` the payload to `path` atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def check_format(payload: Any, expected: str) -> None:
    """ValueError unless `payload["format"]` is `expected`."""
    if payload.get("format") != expected:
        raise ValueError(f"format is {payload.get('format')!r}, expected {expected!r}")


def mlp_from_state(
    state_dict: Mapping[str, Any],
    hidden_dim: int,
    hidden_layers: int,
    feature_dim: int = FEATURE_DIM,
) -> ArchMLP:
    """An MLP of that size holding the stored weights."""
    model = ArchMLP(hidden_dim, hidden_layers, feature_dim)
    model.load_state_dict(state_dict)
    return model


def load_checkpoint(
    path: str | Path,
    what: str,
    missing: str,
    build: Callable[[Any], T],
    errors: tuple[type[Exception], ...] = LOAD_ERRORS,
) -> T:
    """`build(payload)` of the checkpoint at `path` (loaded `weights_only`: never runs code).

    DataError `"{path}: {missing}"` when there is no file, and `"{path}: not a valid {what} (...)"`
    when `build` raises one of `errors`.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: {missing}")
    payload = load_torch(path, what)
    try:
        return build(payload)
    except errors as error:
        raise DataError(f"{path}: not a valid {what} ({type(error).__name__}: {error})") from None

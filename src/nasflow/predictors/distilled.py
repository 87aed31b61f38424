"""LLM-Distill-PP: an MLP regressor from the 10-value `hat` encoding of an architecture to BLEU.

llmas (`bleu_predictor.py`, `feature_type="hat"`) distils LLM-PP's BLEU predictions into HAT's
latency-predictor network (Linear 10->400, ReLU, 3 x [Linear 400->400, ReLU], Linear 400->1),
trained with MSE on *unnormalised* BLEU, Adam lr 1e-5, 5000 steps (15000 in practice), batches of
128 drawn without replacement at every step, seed 123. Inputs are `SearchSpace.distill_features`
fed as they are (already in [0, 1]).

The defaults here are llmas's. Additions, all off by default or inert for llmas's setup:
- `valid_fraction` holds out a seeded slice of the labels for early stopping on its MSE (every
  `eval_interval` steps, stop after `patience` evaluations without improvement) and restores the
  best state;
- `standardize` standardises the features with the training mean/std. The normalisation (identity
  by default) is stored in the checkpoint either way, so a file stays loadable if this changes.
Initial weights and batch draws are seeded, so two runs on the same data give identical weights
(for a fixed device and thread count).
"""

from __future__ import annotations

import json
import math
import operator
import time
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nasflow.config.sections import DistillSettings
from nasflow.core.errors import ConfigError, DataError
from nasflow.core.metrics import kendall, mae
from nasflow.predictors.arch_mlp import (
    FEATURE_DIM,
    LOAD_ERRORS,
    ArchMLP,
    FeatureNormalization,
    FitOptions,
    check_format,
    fit_mlp,
    load_checkpoint,
    mlp_from_state,
    mse,
    permuted_parts,
    predict_rows,
    save_checkpoint,
)
from nasflow.predictors.base import Predictor, check_scores
from nasflow.space.hat import Arch, ArchError, SearchSpace, get_space

MODEL_FORMAT = "nasflow-distill-mlp/1"
DEFAULT_NAME = "LLM-Distill-PP"
PREDICT_CHUNK = 2048  # rows per forward pass: keeps the activations in cache (~1.5x faster)

# ---- features -----------------------------------------------------------------------------------

_SCALAR_GENES = ("encoder_embed_dim", "encoder_layer_num", "decoder_embed_dim", "decoder_layer_num")
_FEATURE_GENES = (
    "encoder_embed_dim",
    "encoder_layer_num",
    "encoder_ffn_embed_dim",
    "encoder_self_attention_heads",
    "decoder_embed_dim",
    "decoder_layer_num",
    "decoder_ffn_embed_dim",
    "decoder_self_attention_heads",
    "decoder_ende_attention_heads",
    "decoder_arbitrary_ende_attn",
)
_GETTERS = tuple(operator.attrgetter(name) for name in _FEATURE_GENES)
_LAYER_COUNT = {2: 1, 3: 1, 6: 5, 7: 5, 8: 5, 9: 5}  # column -> column holding its layer count


@lru_cache(maxsize=16)
def _divisors(space: SearchSpace) -> np.ndarray:
    """Per-column divisors of the `hat` encoding for `space` (cached per space)."""
    e, f, h = space.super_embed_dim, space.super_ffn_dim, space.super_heads
    le, ld = space.max_encoder_layers, space.max_decoder_layers
    divisors = np.array([e, le, f, h, e, ld, f, h, h, 1.0], dtype=np.float64)
    divisors.flags.writeable = False
    return divisors


def distill_feature_matrix(archs: Sequence[Arch], space: SearchSpace) -> np.ndarray:
    """`space.distill_features` of every arch as an `(n, 10)` float64 matrix, vectorised.

    Equal to stacking `distill_features` row by row (same float operations in the same order),
    about 2.5x faster. Archs are assumed to belong to `space` (the caller checks).
    """
    n = len(archs)
    out = np.empty((n, FEATURE_DIM), dtype=np.float64)
    for column, getter in enumerate(_GETTERS):
        values = map(getter, archs)
        if _FEATURE_GENES[column] not in _SCALAR_GENES:
            values = map(sum, values)
        out[:, column] = np.fromiter(values, dtype=np.float64, count=n)
    for column, count in _LAYER_COUNT.items():
        out[:, column] /= out[:, count]
    out[:, 9] += 1.0
    out[:, 9] /= 3.0
    out /= _divisors(space)
    return out


def _single_space(archs: Sequence[Arch], what: str) -> SearchSpace:
    """The one search space all `archs` name, else a DataError listing them."""
    names = {arch.space for arch in archs}
    if len(names) != 1:
        raise DataError(
            f"{what}: architectures of several search spaces "
            f"({', '.join(sorted(map(repr, names)))}); train one predictor per space"
        )
    try:
        return get_space(names.pop())
    except ArchError as error:
        raise DataError(f"{what}: {error}") from None


# ---- predictor ----------------------------------------------------------------------------------


class DistilledPredictor(Predictor):
    """A trained LLM-Distill-PP MLP: architectures of one space -> predicted BLEU."""

    bleu_scale = True

    def __init__(
        self,
        model: ArchMLP,
        space_name: str,
        *,
        name: str = DEFAULT_NAME,
        normalization: FeatureNormalization | None = None,
        settings: DistillSettings | None = None,
        training_summary: Mapping[str, Any] | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        self.name = name
        self.space = get_space(space_name)
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.normalization = normalization or FeatureNormalization.identity()
        self.settings = settings or DistillSettings()
        self.training_summary: dict[str, Any] = dict(training_summary or {})

    @property
    def space_name(self) -> str:
        return self.space.name

    def features(self, archs: Sequence[Arch]) -> np.ndarray:
        """The normalised `(n, 10)` model inputs; ArchError for an arch of another space."""
        foreign = next((a for a in archs if a.space != self.space.name), None)
        if foreign is not None:
            raise ArchError(
                f"predictor {self.name!r} was trained on space {self.space.name!r} and cannot "
                f"score architecture {foreign.id} of space {foreign.space!r}"
            )
        return self.normalization.apply(distill_feature_matrix(archs, self.space))

    def predict(self, archs: Sequence[Arch]) -> np.ndarray:
        """Predicted BLEU of each architecture (float64, in order), batched forward passes."""
        if len(archs) == 0:
            return np.zeros(0, dtype=np.float64)
        return self.predict_features(self.features(archs))

    def predict_features(self, x: np.ndarray) -> np.ndarray:
        """Predicted BLEU for rows of already normalised features."""
        return predict_rows(self.model, x, self.device, PREDICT_CHUNK)

    # ---- files ----------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the checkpoint (weights, settings, space, normalisation, summary) atomically."""
        payload = {
            "format": MODEL_FORMAT,
            "name": self.name,
            "space": self.space.name,
            "settings": self.settings.to_dict(),
            "feature_type": "hat",
            "normalization": self.normalization.to_dict(),
            "state_dict": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "training_summary": self.training_summary,
        }
        return save_checkpoint(path, payload)

    @classmethod
    def load(
        cls, path: str | Path, name: str | None = None, device: str | torch.device = "cpu"
    ) -> DistilledPredictor:
        """Load a checkpoint written by `save`; DataError when missing, corrupt or incompatible."""
        return load_checkpoint(
            path,
            "distill MLP checkpoint",
            "distill MLP checkpoint not found",
            lambda payload: cls._from_payload(payload, name, device),
            (*LOAD_ERRORS, ConfigError, ArchError),
        )

    @classmethod
    def _from_payload(
        cls, payload: Any, name: str | None, device: str | torch.device
    ) -> DistilledPredictor:
        if not isinstance(payload, dict):
            raise TypeError(f"expected a dict payload, got {type(payload).__name__}")
        check_format(payload, MODEL_FORMAT)
        settings = DistillSettings.from_mapping(payload["settings"])
        return cls(
            mlp_from_state(
                payload["state_dict"], settings.hidden_dim, settings.hidden_layers, FEATURE_DIM
            ),
            payload["space"],
            name=name if name is not None else str(payload.get("name", DEFAULT_NAME)),
            normalization=FeatureNormalization.from_dict(payload["normalization"]),
            settings=settings,
            training_summary=payload.get("training_summary") or {},
            device=device,
        )

    def __repr__(self) -> str:
        return f"DistilledPredictor(name={self.name!r}, space={self.space.name!r})"


# ---- training -----------------------------------------------------------------------------------


def _check_labels(archs: Sequence[Arch], labels: Sequence[float], what: str) -> np.ndarray:
    """Labels as a finite float vector matching `archs`, else a DataError naming the problem."""
    if len(archs) == 0:
        raise DataError(f"{what}: no architectures given")
    if len(labels) != len(archs):
        raise DataError(f"{what}: {len(archs)} architectures but {len(labels)} BLEU values")
    try:
        y = np.asarray(labels, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise DataError(f"{what}: BLEU values must be numbers ({error})") from None
    if y.shape != (len(archs),):
        raise DataError(f"{what}: BLEU values must be one number per architecture")
    bad = np.flatnonzero(~np.isfinite(y))
    if bad.size:
        first = int(bad[0])
        raise DataError(
            f"{what}: BLEU value {first} (architecture {archs[first].id}) is {y[first]!r}; "
            f"values must be finite ({bad.size} bad)"
        )
    return y


def _holdout(n: int, settings: DistillSettings) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (train, held-out) row indices; held-out is empty when `valid_fraction` is 0."""
    if settings.valid_fraction == 0:
        return np.arange(n), np.zeros(0, dtype=np.int64)
    if n < 2:
        raise DataError(f"distill MLP: valid_fraction > 0 needs at least 2 labelled archs, got {n}")
    n_valid = min(n - 1, max(1, round(settings.valid_fraction * n)))
    valid, train = permuted_parts(n, settings.seed, (n_valid, n - n_valid))
    return np.sort(train), np.sort(valid)


def _device(settings: DistillSettings) -> torch.device:
    device = torch.device(settings.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"distill MLP setting device: {settings.device!r} but CUDA is unavailable"
        )
    return device


def _fit(
    x: torch.Tensor,
    y: torch.Tensor,
    x_valid: torch.Tensor,
    y_valid: torch.Tensor,
    settings: DistillSettings,
) -> tuple[ArchMLP, dict[str, Any]]:
    """Train a fresh seeded MLP (batches drawn without replacement each step, as HAT/llmas)."""
    model, log = fit_mlp(x, y, FitOptions.of(settings), x_valid, y_valid)
    held_out = len(y_valid) > 0
    summary = {
        "steps_run": log.steps_run,
        "max_steps": settings.steps,
        "stopped_early": log.steps_run < settings.steps,
        "best_step": log.best_step if held_out else log.steps_run,
        "best_valid_mse": log.best_mse if held_out else None,
        "train_curve": log.train_curve,
        "valid_curve": log.valid_curve,
    }
    return model, summary


def train_distill_mlp(
    archs: Sequence[Arch],
    labels: Sequence[float],
    settings: DistillSettings | None = None,
    *,
    name: str = DEFAULT_NAME,
) -> DistilledPredictor:
    """Train the LLM-Distill-PP MLP on `(arch, BLEU)` pairs of one search space.

    Targets are the raw labels (no scaling, as llmas); features are the space's `hat` encoding,
    standardised only with `settings.standardize`. `training_summary` holds steps run, best step,
    the train (mean batch MSE per `eval_interval`) and held-out MSE curves and final MSEs.
    """
    settings = settings or DistillSettings()
    y = _check_labels(archs, labels, "distill MLP training data")
    space = _single_space(archs, "distill MLP training data")
    device = _device(settings)
    features = distill_feature_matrix(archs, space)
    train, valid = _holdout(len(y), settings)
    normalization = (
        FeatureNormalization.fit(features[train])
        if settings.standardize
        else FeatureNormalization.identity()
    )
    x = torch.as_tensor(normalization.apply(features), dtype=torch.float32, device=device)
    t = torch.as_tensor(y, dtype=torch.float32, device=device)
    train_t, valid_t = torch.as_tensor(train, device=device), torch.as_tensor(valid, device=device)
    start = time.perf_counter()
    model, summary = _fit(x[train_t], t[train_t], x[valid_t], t[valid_t], settings)
    summary["train_seconds"] = time.perf_counter() - start
    summary["n_train"], summary["n_valid"] = len(train), len(valid)
    summary["final_train_mse"] = mse(model, x[train_t], t[train_t])
    summary["final_valid_mse"] = mse(model, x[valid_t], t[valid_t]) if len(valid) else None
    model.eval()
    return DistilledPredictor(
        model,
        space.name,
        name=name,
        normalization=normalization,
        settings=settings,
        training_summary=summary,
        device=device,
    )


# ---- evaluation ---------------------------------------------------------------------------------


def evaluate_on(
    predictor: Predictor, archs: Sequence[Arch], gold: Sequence[float]
) -> dict[str, Any]:
    """`{"n", "mae", "kendall"}` of `predictor` on `archs` against gold BLEU.

    MAE is None for a rank-only predictor (`bleu_scale` False); Kendall's tau is None when
    undefined (fewer than 2 archs or a constant side).
    """
    gold_values = _check_labels(archs, gold, f"evaluating {predictor.name!r}")
    scores = check_scores(predictor, archs, predictor.predict(archs))
    tau = kendall(gold_values, scores) if len(archs) >= 2 else math.nan
    return {
        "n": len(archs),
        "mae": mae(gold_values, scores) if predictor.bleu_scale else None,
        "kendall": None if math.isnan(tau) else tau,
    }


SIDECAR_SUFFIX = ".json"


def sidecar(model: str | Path) -> Path:
    """The JSON written beside a distilled model (name, task, TFS seed, training, evaluation)."""
    return Path(model).with_suffix(SIDECAR_SUFFIX)


class SeedModels(Predictor):
    """LLM-Distill-PP with one MLP per TFS-Eval seed (each seed's LLM-PP saw its own
    demonstrations), for the Table 1 rows."""

    bleu_scale = True

    def __init__(self, name: str, models: dict[int, Path], seed: int | None = None) -> None:
        self.name, self.models, self.seed = name, models, seed

    def for_seed(self, seed: int) -> SeedModels:
        return SeedModels(self.name, self.models, seed)

    def predict(self, archs: Sequence[Arch]) -> np.ndarray:
        from nasflow.predictors.distilled import DistilledPredictor

        if self.seed is None or self.seed not in self.models:
            raise DataError(
                f"{self.name}: no distilled model for TFS-Eval seed {self.seed}; have seeds "
                f"{sorted(self.models)}"
            )
        return DistilledPredictor.load(self.models[self.seed]).predict(archs)


def read_seed_models(paths: Sequence[Path]) -> dict[str, dict[str, SeedModels]]:
    """`{task: {name: SeedModels}}` from distilled models and their sidecars."""
    grouped: dict[str, dict[str, dict[int, Path]]] = {}
    for path in paths:
        meta_path = sidecar(path)
        if not meta_path.is_file():
            raise DataError(f"{meta_path}: missing (written by `nasflow distill train`)")
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("task") is None or meta.get("tfs_seed") is None:
            raise DataError(f"{meta_path}: the model was trained without --task and --seed")
        models = grouped.setdefault(meta["task"], {}).setdefault(meta["name"], {})
        if int(meta["tfs_seed"]) in models:
            raise DataError(f"{path}: a second {meta['name']!r} model for seed {meta['tfs_seed']}")
        models[int(meta["tfs_seed"])] = Path(path)
    return {
        task: {name: SeedModels(name, models) for name, models in by_name.items()}
        for task, by_name in grouped.items()
    }

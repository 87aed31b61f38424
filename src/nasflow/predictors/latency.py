"""HAT's latency predictor: an MLP from the 10 latency features of an architecture to its latency.

HAT (`latency_predictor.py`) trains `Net` (Linear 10->400, ReLU, 3 x [Linear 400->400, ReLU],
Linear 400->1) with MSE and Adam on batches of 128 drawn without replacement from an 80/10/10
split of its measured latency dataset. Inputs are `SearchSpace.latency_features` (the raw
features divided by the space's scale); the target is divided by a fixed `lat-norm`.

The defaults are HAT's (hidden 400 x 3, Adam lr 1e-5, 5000 steps, batch 128, 80/10/10 split).
One deviation, for a reason: HAT divides the target by a fixed `lat-norm` (200 ms GPU, 300 ms
CPU); our latencies are a few to tens of ms, so the target is divided by the largest target of
the training split instead (stored with the model), which puts it in (0, 1] as lat-norm does
for HAT's data. With that scale HAT's lr does not underfit: on 300 demo-space architectures timed
with PyTorch on CPU it reaches ~5% held-out relative MAE (Kendall ~0.8), at the noise floor of
the measurements, while lr 1e-4 / 1e-3 fit the training split closer and generalise worse.
Batches are drawn without replacement from the training split as in HAT, with a seeded generator;
the initial weights come from `seed` too, so a run is reproducible (for a fixed thread count).
The valid and test splits are rounded sizes of at least one row each (HAT: 1600/200/200 rows).
"""

from __future__ import annotations

import hashlib
import io
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from nasflow.core.checks import is_int
from nasflow.core.errors import ConfigError, DataError
from nasflow.core.io import atomic_path, write_json_atomic
from nasflow.core.metrics import kendall
from nasflow.efficiency.latency_dataset import DATASET_COLUMNS
from nasflow.predictors.arch_mlp import (
    ArchMLP,
    FitOptions,
    check_format,
    fit_mlp,
    load_checkpoint,
    mlp_from_state,
    permuted_parts,
    predict_rows,
    save_checkpoint,
)
from nasflow.space.hat import LATENCY_FEATURE_NAMES, Arch, ArchError, get_space

TARGETS = ("total_ms", "encoder_ms", "decoder_ms")
LATENCY_COLUMNS = ("encoder_ms", "decoder_ms", "total_ms")
STD_COLUMNS = ("encoder_std_ms", "decoder_std_ms")
FEATURE_RTOL = 1e-5  # the dataset writer rounds floats to 6 significant digits
MODEL_FORMAT = "nasflow-latency-predictor/1"


# ---- dataset ------------------------------------------------------------------------------------


def read_latency_dataset(path: str | Path, space_name: str) -> pd.DataFrame:
    """Read and check a latency dataset CSV whose architectures belong to `space_name`."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: latency dataset not found")
    try:
        frame = pd.read_csv(path, dtype={"arch_id": str, "arch": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot read latency dataset CSV ({error})") from None
    return check_latency_frame(frame, space_name, source=str(path))


def check_latency_frame(frame: pd.DataFrame, space_name: str, source: str) -> pd.DataFrame:
    """`frame` unchanged if it is a valid latency dataset of `space_name`, else a DataError.

    `source` names the data in messages; lines are CSV lines (the header is line 1).
    """
    get_space(space_name)
    missing = [c for c in DATASET_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"{source}: missing column(s): {', '.join(missing)}")
    if len(frame) == 0:
        raise DataError(f"{source}: empty dataset (no rows)")
    _check_numbers(frame, source)
    _check_archs(frame, source, space_name)
    return frame


def _line(frame: pd.DataFrame, position: int) -> str:
    return f"line {position + 2} (arch_id {frame['arch_id'].iloc[position]})"


def _check_numbers(frame: pd.DataFrame, source: str) -> None:
    """Features finite, latencies finite and > 0, spreads finite and >= 0."""
    checks = (
        (LATENCY_FEATURE_NAMES, "feature", lambda v: np.isfinite(v) & (v > 0)),
        (LATENCY_COLUMNS, "latency", lambda v: np.isfinite(v) & (v > 0)),
        (STD_COLUMNS, "latency spread", lambda v: np.isfinite(v) & (v >= 0)),
    )
    for columns, what, ok in checks:
        for column in columns:
            values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
            bad = np.flatnonzero(~ok(values))
            if bad.size:
                raise DataError(
                    f"{source}: {_line(frame, int(bad[0]))}: {what} {column} must be a finite "
                    f"{'non-negative' if what == 'latency spread' else 'positive'} number, "
                    f"got {frame[column].iloc[int(bad[0])]!r}"
                    + (f" ({bad.size} bad rows)" if bad.size > 1 else "")
                )


def _check_archs(frame: pd.DataFrame, source: str, space_name: str) -> None:
    """Every `arch` parses, belongs to `space_name` and matches its row's id and features."""
    archs = []
    for position, text in enumerate(frame["arch"]):
        try:
            archs.append(Arch.from_json(str(text)))
        except ArchError as error:
            raise DataError(f"{source}: {_line(frame, position)}: {error}") from None
    wrong = sorted({a.space for a in archs} - {space_name})
    if wrong:
        raise DataError(
            f"space mismatch: file {source} holds architectures of space "
            f"{', '.join(repr(s) for s in wrong)}, expected {space_name!r}"
        )
    space = get_space(space_name)
    features = frame[list(LATENCY_FEATURE_NAMES)].to_numpy(dtype=float)
    for position, (arch, arch_id) in enumerate(zip(archs, frame["arch_id"], strict=True)):
        if arch.id != str(arch_id):
            raise DataError(
                f"{source}: {_line(frame, position)}: arch_id does not match the architecture "
                f"(its id is {arch.id})"
            )
        expected = space.latency_raw_features(arch)
        if not np.allclose(features[position], expected, rtol=FEATURE_RTOL, atol=0.0):
            raise DataError(
                f"{source}: {_line(frame, position)}: feature columns do not match the "
                f"architecture (expected {expected})"
            )


def _dataset_sha256(dataset: pd.DataFrame | str | Path) -> str:
    """sha256 of the CSV file's bytes, or of the frame's CSV serialisation."""
    if isinstance(dataset, pd.DataFrame):
        buffer = io.StringIO()
        dataset.to_csv(buffer, index=False)
        return hashlib.sha256(buffer.getvalue().encode("utf-8")).hexdigest()
    return hashlib.sha256(Path(dataset).read_bytes()).hexdigest()


# ---- settings -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PredictorSettings:
    """Latency-predictor hyperparameters; the defaults are HAT's (`latency_predictor.py`)."""

    hidden_dim: int = 400
    hidden_layers: int = 3
    lr: float = 1e-5
    steps: int = 5000
    batch_size: int = 128
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 1
    target: str = "total_ms"

    def __post_init__(self) -> None:
        split = tuple(float(v) for v in self.split)
        object.__setattr__(self, "split", split)
        for name in ("hidden_dim", "steps", "batch_size"):
            if not is_int(getattr(self, name)) or getattr(self, name) < 1:
                raise ConfigError(f"latency predictor setting {name}: must be an integer >= 1")
        if not is_int(self.hidden_layers) or self.hidden_layers < 0:
            raise ConfigError("latency predictor setting hidden_layers: must be an integer >= 0")
        if not is_int(self.seed):
            raise ConfigError("latency predictor setting seed: must be an integer")
        if not (isinstance(self.lr, int | float) and math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"latency predictor setting lr: must be > 0, got {self.lr!r}")
        if len(split) != 3 or min(split) <= 0 or not math.isclose(sum(split), 1.0, abs_tol=1e-6):
            raise ConfigError(
                "latency predictor setting split: three positive fractions (train, valid, "
                f"test) summing to 1, got {list(self.split)}"
            )
        if self.target not in TARGETS:
            raise ConfigError(
                f"latency predictor setting target {self.target!r}: expected one of "
                f"{', '.join(TARGETS)}"
            )

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> PredictorSettings:
        """Settings from a flat mapping (None: defaults); unknown keys are an error naming them."""
        values = dict(values or {})
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise ConfigError(f"unknown latency predictor setting(s): {', '.join(unknown)}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["split"] = list(self.split)
        return data


# ---- model --------------------------------------------------------------------------------------

LatencyMLP = ArchMLP  # HAT's `Net`, shared with LLM-Distill-PP (`predictors.arch_mlp`)


# ---- training -----------------------------------------------------------------------------------


def split_indices(n: int, settings: PredictorSettings) -> dict[str, np.ndarray]:
    """Seeded shuffle of `range(n)` cut into train/valid/test (>= 1 row each)."""
    if n < 3:
        raise DataError(f"a latency dataset needs at least 3 rows (train/valid/test), got {n}")
    n_valid = max(1, round(settings.split[1] * n))
    n_test = max(1, round(settings.split[2] * n))
    n_train = n - n_valid - n_test
    if n_train < 1:
        raise DataError(
            f"{n} rows leave no training rows with split {list(settings.split)}; "
            "add rows or change the split"
        )
    parts = permuted_parts(n, settings.seed, (n_train, n_valid, n_test))
    return dict(zip(("train", "valid", "test"), parts, strict=True))


def _fit(
    x: torch.Tensor, y: torch.Tensor, settings: PredictorSettings
) -> tuple[LatencyMLP, list[float]]:
    """Train a fresh seeded MLP on normalised features `x` and targets `y`; returns the losses."""
    model, log = fit_mlp(x, y, FitOptions.of(settings))
    return model, log.losses


def _split_metrics(gold: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
    error = pred - gold
    relative = np.abs(error) / gold
    tau = kendall(gold, pred) if len(gold) >= 2 else float("nan")
    return {
        "n": len(gold),
        "rmse_ms": float(np.sqrt(np.mean(error**2))),
        "mae_ms": float(np.mean(np.abs(error))),
        "rel_mae": float(np.mean(relative)),
        "max_rel_error": float(np.max(relative)),
        "kendall": None if math.isnan(tau) else tau,
    }


def _loss_summary(losses: list[float], points: int = 20) -> dict[str, Any]:
    window = max(1, min(100, len(losses) // 10))
    every = max(1, len(losses) // points)
    return {
        "first_batch_mse": losses[0],
        "final_batch_mse": float(np.mean(losses[-window:])),
        "final_window_steps": window,
        "curve": [
            [step + 1, float(np.mean(losses[max(0, step + 1 - window) : step + 1]))]
            for step in range(every - 1, len(losses), every)
        ],
    }


def train_latency_predictor(
    dataset: pd.DataFrame | str | Path,
    space_name: str,
    settings: PredictorSettings | None,
    out_dir: str | Path,
) -> dict[str, Any]:
    """Train on a latency dataset; write model.pt, eval.json, predictions.csv and a plot.

    Returns the eval dict (also in `eval.json`): per split n, RMSE, MAE, relative MAE, max
    relative error and Kendall's tau, the training-loss summary, settings and seconds.
    """
    settings = settings or PredictorSettings()
    if isinstance(dataset, pd.DataFrame):
        frame = check_latency_frame(dataset, space_name, source="<latency dataset frame>")
    else:
        frame = read_latency_dataset(dataset, space_name)
    sha256 = _dataset_sha256(dataset)
    scale = tuple(float(v) for v in get_space(space_name).latency_feature_scale)
    x = frame[list(LATENCY_FEATURE_NAMES)].to_numpy(dtype=np.float64) / np.asarray(scale)
    gold = frame[settings.target].to_numpy(dtype=np.float64)
    parts = split_indices(len(frame), settings)
    target_scale = float(gold[parts["train"]].max())
    start = time.perf_counter()
    model, losses = _fit(
        torch.tensor(x[parts["train"]], dtype=torch.float32),
        torch.tensor(gold[parts["train"]] / target_scale, dtype=torch.float32),
        settings,
    )
    seconds = time.perf_counter() - start
    predictor = LatencyPredictor(model, space_name, settings.target, scale, target_scale)
    pred = predictor.predict_features(x)
    out_dir = Path(out_dir)
    report = {
        "space": space_name,
        "target": settings.target,
        "target_scale_ms": target_scale,
        "dataset_sha256": sha256,
        "n_rows": len(frame),
        "settings": settings.to_dict(),
        "train_seconds": seconds,
        "threads": torch.get_num_threads(),
        "train_loss": _loss_summary(losses),
        **{name: _split_metrics(gold[idx], pred[idx]) for name, idx in parts.items()},
    }
    payload = {
        "format": MODEL_FORMAT,
        "state_dict": model.state_dict(),
        "settings": settings.to_dict(),
        "space": space_name,
        "feature_scale": list(scale),
        "target_scale": target_scale,
        "target": settings.target,
        "n_train": len(parts["train"]),
        "dataset_sha256": sha256,
    }
    save_checkpoint(out_dir / "model.pt", payload)
    _write_predictions(out_dir / "predictions.csv", frame, parts, gold, pred)
    plot_predicted_vs_measured(out_dir / "predicted_vs_measured.png", report, gold, pred, parts)
    write_json_atomic(out_dir / "eval.json", report)
    return report


def _write_predictions(
    path: Path,
    frame: pd.DataFrame,
    parts: Mapping[str, np.ndarray],
    gold: np.ndarray,
    pred: np.ndarray,
) -> None:
    rows = [
        pd.DataFrame(
            {
                "arch_id": frame["arch_id"].to_numpy()[idx],
                "split": name,
                "measured_ms": gold[idx],
                "predicted_ms": pred[idx],
            }
        )
        for name, idx in parts.items()
    ]
    with atomic_path(path) as tmp:
        pd.concat(rows, ignore_index=True).to_csv(tmp, index=False, float_format="%.17g")


def plot_predicted_vs_measured(
    path: str | Path,
    report: Mapping[str, Any],
    gold: np.ndarray,
    pred: np.ndarray,
    parts: Mapping[str, np.ndarray],
) -> None:
    """Scatter of predicted vs measured latency on the valid and test splits, with y = x."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    target = report["target"]
    fig, ax = plt.subplots(figsize=(5, 5), dpi=120)
    try:
        for name, colour in (("valid", "tab:orange"), ("test", "tab:blue")):
            idx = parts[name]
            ax.scatter(
                gold[idx], pred[idx], s=14, alpha=0.8, c=colour, label=f"{name} ({idx.size})"
            )
        shown = np.concatenate([parts["valid"], parts["test"]])
        values = np.concatenate([gold[shown], pred[shown]])
        low, high = float(values.min()), float(values.max())
        margin = 0.05 * (high - low or 1.0)
        line = [low - margin, high + margin]
        ax.plot(line, line, "k--", lw=1, label="y = x")
        ax.set_xlim(line)
        ax.set_ylim(line)
        ax.set_xlabel(f"measured {target} (ms)")
        ax.set_ylabel(f"predicted {target} (ms)")
        ax.set_title(
            f"latency predictor, space {report['space']!r}\n"
            f"test relative MAE {report['test']['rel_mae']:.2%}"
        )
        ax.legend(loc="upper left")
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)


# ---- inference ----------------------------------------------------------------------------------


class LatencyPredictor:
    """A trained latency MLP: architectures of one space -> predicted latency (ms)."""

    def __init__(
        self,
        model: LatencyMLP,
        space_name: str,
        target: str,
        feature_scale: Sequence[float],
        target_scale: float,
        device: str | torch.device = "cpu",
    ) -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.space_name = space_name
        self.target = target
        self.feature_scale = tuple(float(v) for v in feature_scale)
        self.target_scale = float(target_scale)

    @classmethod
    def from_file(cls, path: str | Path, device: str | torch.device = "cpu") -> LatencyPredictor:
        """Load a `model.pt` written by `train_latency_predictor`."""

        def build(payload: Any) -> LatencyPredictor:
            check_format(payload, MODEL_FORMAT)
            settings = payload["settings"]
            return cls(
                mlp_from_state(
                    payload["state_dict"], settings["hidden_dim"], settings["hidden_layers"]
                ),
                payload["space"],
                payload["target"],
                payload["feature_scale"],
                payload["target_scale"],
                device,
            )

        return load_checkpoint(
            path, "latency predictor", "latency predictor model file not found", build
        )

    def predict_ms(self, archs: Sequence[Arch]) -> np.ndarray:
        """Predicted latency (ms, of `self.target`) of each architecture, in one forward pass."""
        for arch in archs:
            if arch.space != self.space_name:
                raise ArchError(
                    f"latency predictor trained on space {self.space_name!r} cannot predict "
                    f"architecture {arch.id} of space {arch.space!r}"
                )
        if not archs:
            return np.zeros(0, dtype=float)
        space = get_space(self.space_name)
        raw = np.asarray([space.latency_raw_features(a) for a in archs], dtype=np.float64)
        return self.predict_features(raw / np.asarray(self.feature_scale))

    def predict_features(self, features: np.ndarray) -> np.ndarray:
        """Predicted ms for rows of already normalised features (`latency_features`)."""
        return predict_rows(self.model, features, self.device) * self.target_scale

    def __repr__(self) -> str:
        return f"LatencyPredictor(space={self.space_name!r}, target={self.target!r})"

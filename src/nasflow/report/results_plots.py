"""Plots of the results page (PNG bytes, matplotlib's Agg canvas, no pyplot state): every
architecture the MT searches scored against its predicted latency, training curves, and the
supernet's predictions against from-scratch BLEU."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from nasflow.report.plots import MARKERS

DPI = 110


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def _figure(panels: int, width: float = 4.6, height: float = 3.8) -> tuple[Figure, list]:
    figure = Figure(figsize=(width * panels, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure, list(figure.subplots(1, panels, squeeze=False)[0])


def _budget_lines(ax, budgets: Mapping[str, float]) -> None:
    for k, (name, limit) in enumerate(budgets.items()):
        ax.axvline(limit, color="0.3", linestyle=(0, (4, 2 + k)), linewidth=1, label=f"{name}")


def search_scatter(
    scored: pd.DataFrame, winners: pd.DataFrame, budgets: Mapping[str, float]
) -> bytes:
    """Score against predicted latency of every architecture the searches scored, one panel per
    predictor (their scales differ), then the winners trained from scratch: test BLEU against
    measured latency. Colour = method; stars = the winners; dashed lines = latency budgets.

    `scored`: `method`, `predictor`, `score`, `predicted_latency_ms` (one row per architecture
    and predictor). `winners`: `method`, `score_predictor`, `predicted_score`,
    `predicted_latency_ms`, `latency_ms`, `test_bleu`.
    """
    predictors = list(dict.fromkeys(scored["predictor"]))
    methods = list(dict.fromkeys([*scored["method"], *winners["method"]]))
    colour = {m: f"C{k % 10}" for k, m in enumerate(methods)}
    figure, axes = _figure(len(predictors) + 1)
    for ax, name in zip(axes, predictors, strict=False):
        rows = scored[scored["predictor"] == name]
        for k, method in enumerate(methods):
            mine = rows[rows["method"] == method]
            if len(mine):
                ax.scatter(
                    mine["predicted_latency_ms"],
                    mine["score"],
                    s=14,
                    alpha=0.55,
                    color=colour[method],
                    marker=MARKERS[k % len(MARKERS)],
                    label=f"{method} ({len(mine)} scored)",
                )
        won = winners[winners["score_predictor"] == name]
        ax.scatter(
            won["predicted_latency_ms"],
            won["predicted_score"],
            s=160,
            marker="*",
            c=[colour[m] for m in won["method"]],
            edgecolors="black",
            linewidths=0.8,
            label="winner",
            zorder=3,
        )
        _budget_lines(ax, budgets)
        ax.set_title(f"scored by {name}")
        ax.set_xlabel("predicted latency (ms)")
        ax.set_ylabel(f"{name} score (higher is better)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    ax = axes[-1]
    for method in methods:
        mine = winners[winners["method"] == method]
        ax.scatter(
            mine["latency_ms"],
            mine["test_bleu"],
            s=160,
            marker="*",
            color=colour[method],
            edgecolors="black",
            linewidths=0.8,
            label=method,
        )
    _budget_lines(ax, budgets)
    ax.set_title("winners trained from scratch")
    ax.set_xlabel("measured latency (ms)")
    ax.set_ylabel("test BLEU")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    return _png(figure)


def training_curves(
    supernets: Mapping[str, pd.DataFrame],
    winners: Mapping[str, pd.DataFrame],
    others: Mapping[str, pd.DataFrame] | None = None,
) -> bytes:
    """Loss against updates: the supernets (left) and the from-scratch trainings (right: the
    winners in colour, `others`, e.g. the TFS-Eval architectures, in grey). Lines = training
    loss, dots = validation loss. Each frame has `update`, `train_loss`, `valid_loss`."""
    groups = [("supernet training", supernets), ("from-scratch training", winners)]
    groups = [(title, curves) for title, curves in groups if curves]
    figure, axes = _figure(max(len(groups), 1))
    for ax, (title, curves) in zip(axes, groups, strict=False):
        if title.startswith("from-scratch"):
            for k, curve in enumerate((others or {}).values()):
                ax.plot(
                    curve["update"],
                    curve["train_loss"],
                    color="0.7",
                    linewidth=0.8,
                    label="TFS-Eval architectures" if k == 0 else None,
                )
        for k, (label, curve) in enumerate(curves.items()):
            ax.plot(curve["update"], curve["train_loss"], color=f"C{k % 10}", label=label)
            valid = curve.dropna(subset=["valid_loss"])
            if len(valid):
                ax.plot(valid["update"], valid["valid_loss"], "o", color=f"C{k % 10}", ms=4)
        ax.set_title(f"{title} (lines: train loss, dots: valid loss)", fontsize=9)
        ax.set_xlabel("updates")
        ax.set_ylabel("loss (bits per token)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return _png(figure)


def supernet_vs_scratch(supernets: Sequence[Mapping]) -> bytes:
    """Per supernet (a `tfs/supernet_quality.json` entry): its predicted score of each TFS-Eval
    architecture against the architecture's from-scratch valid BLEU, Kendall tau in the title."""
    figure, axes = _figure(len(supernets))
    for ax, entry in zip(axes, supernets, strict=True):
        rows = pd.DataFrame(entry["rows"])
        ax.scatter(rows["valid_bleu"], rows["predicted"], s=30, color="C0")
        tau = entry.get("kendall_valid_bleu")
        tau_text = f", Kendall tau {tau:.2f}" if isinstance(tau, int | float) else ""
        ax.set_title(f"{entry.get('predictor', entry.get('kind'))}{tau_text}", fontsize=9)
        ax.set_xlabel("from-scratch valid BLEU (TFS-Eval)")
        ax.set_ylabel("supernet prediction")
        if len(rows) >= 2 and np.ptp(rows["valid_bleu"].to_numpy(dtype=float)) > 0:
            fit = np.polyfit(rows["valid_bleu"], rows["predicted"], 1)
            xs = np.linspace(rows["valid_bleu"].min(), rows["valid_bleu"].max(), 10)
            ax.plot(xs, np.polyval(fit, xs), color="0.5", linestyle="--", linewidth=1)
        ax.grid(alpha=0.3)
    return _png(figure)

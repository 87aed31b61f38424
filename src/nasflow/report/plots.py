"""Plots (PNG, no GUI backend): predictors against from-scratch BLEU on matplotlib's Agg canvas
(no global pyplot state), and the search convergence plot (pyplot with the Agg backend)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from nasflow.core.errors import DataError
from nasflow.core.io import atomic_path
from nasflow.report.search_runs import Run
from nasflow.tfs.format import STORED_PREDICTORS, unique_archs

MARKERS = ("o", "s", "^", "D", "v", "P", "X")
# Predictors whose scores share the supernet's scale (the MLP is trained on supernet scores).
SUPERNET_SCALE = ("supernet", "supernet-mlp")


def plot_tfs_vs_predicted(table: pd.DataFrame, out_png: str | Path, tasks: Sequence[str]) -> None:
    """One panel per task: from-scratch BLEU (x) against each stored predictor's BLEU (y).

    Each architecture appears once per task (rows deduplicated by `arch_id` across seeds and
    splits); the y = x diagonal marks perfect predictions. Written atomically as PNG.
    """
    tasks = list(tasks)
    if not tasks:
        raise ValueError("plot_tfs_vs_predicted: no tasks given")
    predictors = [p for p in STORED_PREDICTORS if p in table.columns]
    if not predictors:
        raise DataError("the TFS-Eval table holds no stored predictor columns to plot")
    figure = Figure(figsize=(4.2 * len(tasks), 4.2), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(tasks), squeeze=False)[0]
    for ax, task in zip(axes, tasks, strict=True):
        _panel(ax, table, task, predictors)
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=len(labels))
    with atomic_path(out_png) as tmp:
        figure.savefig(tmp, format="png", dpi=120)


def _panel(ax, table: pd.DataFrame, task: str, predictors: Sequence[str]) -> None:
    rows = unique_archs(table, task)
    if rows.empty:
        raise DataError(f"the TFS-Eval table has no rows for task {task!r}")
    gold = rows["gold"].to_numpy(dtype=float)
    values = np.concatenate([gold, *(rows[p].to_numpy(dtype=float) for p in predictors)])
    values = values[np.isfinite(values)]
    low, high = float(values.min()) - 0.5, float(values.max()) + 0.5
    ax.plot([low, high], [low, high], color="0.6", linestyle="--", linewidth=1, label="y = x")
    for index, name in enumerate(predictors):
        ax.scatter(
            gold,
            rows[name].to_numpy(dtype=float),
            marker=MARKERS[index % len(MARKERS)],
            s=22,
            alpha=0.8,
            label=name,
        )
    _finish_square_panel(ax, low, high, f"{task} ({len(rows)} archs)", "predicted valid BLEU")


def _finish_square_panel(ax, low: float, high: float, title: str, ylabel: str) -> None:
    """Equal axes over [low, high] with from-scratch BLEU on x, as both scatter plots draw."""
    ax.set_xlim(low, high)
    ax.set_ylim(low, high)
    ax.set_aspect("equal")
    ax.set_title(title)
    ax.set_xlabel("from-scratch valid BLEU")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)


def plot_llm_pp_vs_tfs(points: pd.DataFrame, out_png: str | Path, tasks: Sequence[str]) -> None:
    """One panel per task: from-scratch BLEU (x) against each predictor's BLEU (y).

    `points` has columns `task`, `predictor`, `arch_id`, `gold` and `predicted` (one row per
    predictor and test architecture, predictions averaged over split seeds, as
    `nasflow.predictors.llm.per_arch_predictions` gives them). A predictor keeps its colour and
    marker in every panel; the y = x diagonal marks perfect predictions. Written atomically as
    PNG; a task without points is a `DataError`.
    """
    tasks = list(tasks)
    if not tasks:
        raise ValueError("plot_llm_pp_vs_tfs: no tasks given")
    for task in tasks:
        if not (points["task"] == task).any():
            raise DataError(f"no predictions to plot for task {task!r}")
    predictors = list(dict.fromkeys(points.loc[points["task"].isin(tasks), "predictor"]))
    # One legend column per panel (the setups' labels are long); the diagonal is an entry too.
    columns = min(len(predictors) + 1, len(tasks))
    rows = -(-(len(predictors) + 1) // columns)
    figure = Figure(figsize=(4.4 * len(tasks), 4.0 + 0.25 * rows), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(tasks), squeeze=False)[0]
    legend: dict[str, object] = {}
    for ax, task in zip(axes, tasks, strict=True):
        _predictions_panel(ax, points[points["task"] == task], predictors)
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            legend.setdefault(label, handle)
    figure.legend(list(legend.values()), list(legend), loc="outside lower center", ncols=columns)
    with atomic_path(out_png) as tmp:
        figure.savefig(tmp, format="png", dpi=120)


def _predictions_panel(ax, rows: pd.DataFrame, predictors: Sequence[str]) -> None:
    values = rows[["gold", "predicted"]].to_numpy(dtype=float).ravel()
    values = values[np.isfinite(values)]
    low, high = float(values.min()) - 0.5, float(values.max()) + 0.5
    ax.plot([low, high], [low, high], color="0.6", linestyle="--", linewidth=1, label="y = x")
    for index, name in enumerate(predictors):
        series = rows[rows["predictor"] == name]
        if series.empty:
            continue
        ax.scatter(
            series["gold"].to_numpy(dtype=float),
            series["predicted"].to_numpy(dtype=float),
            color=f"C{index % 10}",
            marker=MARKERS[index % len(MARKERS)],
            s=22,
            alpha=0.8,
            label=name,
        )
    title = f"{rows['task'].iloc[0]} ({rows['arch_id'].nunique()} test archs)"
    _finish_square_panel(ax, low, high, title, "predicted valid BLEU (mean over split seeds)")


def plot_convergence(
    runs: Sequence[Run], methods: Sequence[str], constraints: Sequence[str], path: str | Path
) -> None:
    """Best predicted score per iteration (mean over seeds), one panel per constraint.

    Colour = method; marker and line style = the predictor that scored the iteration. Predictor
    scales differ (supernet and supernet-mlp, which is trained on supernet scores: minus loss in
    bits or BLEU; distill: BLEU), so the supernet's scale is on the left y axis and the others
    on the right one (the first predictor on the left when no supernet-scale predictor ran).
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.lines import Line2D

    names = list(dict.fromkeys(p for run in runs for p in run.history["predictor"].astype(str)))
    names.sort(key=lambda name: name not in SUPERNET_SCALE)  # the supernet's scale first
    styles = (("o", "-"), ("^", "--"), ("s", ":"), ("D", "-."))
    style = {name: styles[k % len(styles)] for k, name in enumerate(names)}
    left = [n for n in names if n in SUPERNET_SCALE] or names[:1]
    side = {name: 0 if name in left else 1 for name in names}
    colour = {m: plt.get_cmap("tab10")(k % 10) for k, m in enumerate(methods)}
    fig, grid = plt.subplots(
        1, len(constraints), figsize=(5.5 * len(constraints), 4.2), dpi=110, squeeze=False
    )
    try:
        for ax, constraint in zip(grid[0], constraints, strict=True):
            axes = [ax, ax.twinx()] if len(names) > 1 else [ax]
            for method in methods:
                chosen = [
                    r.history
                    for r in runs
                    if r.row["method"] == method and r.row["constraint"] == constraint
                ]
                if not chosen:
                    continue
                mean = (
                    pd.concat(chosen)
                    .groupby("iteration")
                    .agg(best=("best_score", "mean"), predictor=("predictor", "first"))
                )
                for name in names:
                    y = mean["best"].where(mean["predictor"].astype(str) == name)
                    if y.notna().any():
                        marker, line = style[name]
                        axes[side[name]].plot(
                            mean.index,
                            y,
                            marker=marker,
                            linestyle=line,
                            markersize=3,
                            color=colour[method],
                        )
            ax.set_title(constraint)
            ax.set_xlabel("iteration")
            for k, axis in enumerate(axes):
                shown = [n for n in names if side[n] == k]
                axis.set_ylabel(" / ".join(shown) + " score")
                axis.set_visible(k == 0 or bool(axis.lines))  # no empty right axis
        handles = [Line2D([], [], color=colour[m], label=m) for m in methods]
        handles += [
            Line2D(
                [],
                [],
                color="grey",
                marker=style[n][0],
                linestyle=style[n][1],
                label=f"{n} ({'right' if side[n] else 'left'} axis)",
            )
            for n in names
        ]
        fig.suptitle(
            "Best predicted score per iteration (mean over seeds);\n"
            "predictor scales differ, so each has its own axis",
            fontsize=9,
        )
        fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), fontsize=8)
        fig.tight_layout(rect=(0, 0.1, 1, 0.92))
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)

"""Frontier-evolution plots of the LTS search (PNG, matplotlib's Agg canvas, no pyplot state).

As in the LTS papers' figures: one panel per hardware objective (latency, memory) against the
decoder-parameter proxy; every evaluated architecture in light grey, and the frontier after a few
selected iterations (default: first, middle, last) as coloured markers joined by the step line of
that frontier's 2-D non-dominated subset in the panel's pair of objectives. (The search's frontier
is 3-D, so some of its points lie above a panel's staircase: they win on the other objective.)
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from nasflow.core.errors import DataError
from nasflow.core.io import atomic_path
from nasflow.lts.search import ParetoResult, result_frames
from nasflow.search.pareto import Objective, pareto_front, parse_objectives

MARKERS = ("o", "s", "^", "D", "v", "P", "X")
COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")
UNITS = {"latency_ms": "ms", "memory_mb": "MB"}


def default_iterations(available: Sequence[int]) -> list[int]:
    """First, middle and last of the available iterations (deduplicated, ascending)."""
    its = sorted(set(available))
    if not its:
        return []
    return sorted({its[0], its[len(its) // 2], its[-1]})


def plot_frontier_evolution(
    table: pd.DataFrame,
    frontiers: Mapping[int, Sequence[str]],
    out_png: str | Path,
    *,
    x: str = "decoder_params",
    ys: Sequence[str] = ("latency_ms", "memory_mb"),
    objectives: Sequence[Objective] | Mapping[str, str] | None = None,
    iterations: Sequence[int] | None = None,
    title: str | None = None,
) -> Path:
    """Write the frontier-evolution figure; returns `out_png`.

    Args:
        table: every evaluated architecture (`all.csv`): `arch_id`, `x` and each of `ys`.
        frontiers: frontier arch ids by iteration (`frontiers.json`, `ParetoResult.history`).
        x: the proxy column (x axis; shown in millions when it holds parameter counts).
        ys: one panel per column (missing columns are an error).
        objectives: directions of `x` and `ys` (default: `x` maximised, `ys` minimised).
        iterations: which frontiers to draw (default: first, middle, last).
        title: figure title.
    """
    ys = list(ys)
    if not ys:
        raise ValueError("plot_frontier_evolution: no y columns given")
    missing = [c for c in ("arch_id", x, *ys) if c not in table.columns]
    if missing:
        raise DataError(f"the search table has no column(s) {', '.join(missing)} to plot")
    if table.empty:
        raise DataError("the search table is empty: nothing to plot")
    direction = {x: "max", **dict.fromkeys(ys, "min")}
    if objectives is not None:
        direction.update({o.name: o.direction for o in parse_objectives(objectives)})
    frontiers = {int(k): list(v) for k, v in frontiers.items()}
    chosen = default_iterations(list(frontiers)) if iterations is None else list(iterations)
    unknown = [i for i in chosen if i not in frontiers]
    if unknown:
        raise DataError(f"no frontier recorded for iteration(s) {unknown}")
    by_id = table.drop_duplicates("arch_id").set_index("arch_id")
    scale, x_label = _axis(x, by_id[x].to_numpy(dtype=float))

    figure = Figure(figsize=(5.0 * len(ys), 4.4), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(ys), squeeze=False)[0]
    for ax, y in zip(axes, ys, strict=True):
        ax.scatter(
            by_id[x].to_numpy(dtype=float) / scale,
            by_id[y].to_numpy(dtype=float),
            s=8,
            color="0.8",
            label=f"all evaluated ({len(by_id)})",
            zorder=1,
        )
        pair = [Objective(x, direction[x]), Objective(y, direction[y])]  # type: ignore[arg-type]
        for number, iteration in enumerate(chosen):
            ids = [i for i in frontiers[iteration] if i in by_id.index]
            lost = sorted(set(frontiers[iteration]) - set(by_id.index))
            if lost:
                raise DataError(
                    f"iteration {iteration}'s frontier names {len(lost)} architecture(s) absent "
                    f"from the table, e.g. {lost[0]}"
                )
            rows = by_id.loc[ids]
            colour = COLOURS[number % len(COLOURS)]
            xs = rows[x].to_numpy(dtype=float)
            vals = rows[y].to_numpy(dtype=float)
            ax.scatter(
                xs / scale,
                vals,
                s=24,
                marker=MARKERS[number % len(MARKERS)],
                color=colour,
                label=f"frontier, iteration {iteration} ({len(ids)})",
                zorder=3 + number,
            )
            keep = pareto_front(np.column_stack([xs, vals]), pair) if len(ids) else []
            if keep:
                order = sorted(keep, key=lambda k: xs[k])
                ax.step(
                    xs[order] / scale,
                    vals[order],
                    where="pre" if direction[x] == "max" else "post",
                    color=colour,
                    linewidth=1.2,
                    zorder=2 + number,
                )
        ax.set_xlabel(x_label)
        unit = UNITS.get(y)
        ax.set_ylabel(f"{y} ({unit})" if unit else y)
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=min(4, len(labels)))
    if title:
        figure.suptitle(title)
    with atomic_path(out_png) as tmp:
        figure.savefig(tmp, format="png", dpi=120)
    return Path(out_png)


def plot_result(result: ParetoResult, out_png: str | Path, **options: Any) -> Path:
    """`plot_frontier_evolution` of a `ParetoResult` (objectives' directions taken from it)."""
    _, table = result_frames(result)
    frontiers = {int(row["iteration"]): row["frontier"] for row in result.history}
    options.setdefault("objectives", result.objectives)
    return plot_frontier_evolution(table, frontiers, out_png, **options)


def plot_outputs(out_dir: str | Path, out_png: str | Path | None = None, **options: Any) -> Path:
    """Plot from `write_outputs`' `all.csv` and `frontiers.json` (default: `frontier_evolution.png`
    in the same folder)."""
    folder = Path(out_dir)
    table_path, fronts_path = folder / "all.csv", folder / "frontiers.json"
    for path in (table_path, fronts_path):
        if not path.is_file():
            raise DataError(f"{path}: not found (run the LTS search first)")
    table = pd.read_csv(table_path, dtype={"arch_id": str})
    data = json.loads(fronts_path.read_text(encoding="utf-8"))
    options.setdefault("objectives", data.get("objectives"))
    target = folder / "frontier_evolution.png" if out_png is None else Path(out_png)
    return plot_frontier_evolution(table, data["iterations"], target, **options)


def _axis(column: str, values: np.ndarray) -> tuple[float, str]:
    finite = values[np.isfinite(values)]
    if "params" in column and finite.size and float(np.abs(finite).max()) >= 1e5:
        return 1e6, f"{column} (M)"
    return 1.0, column

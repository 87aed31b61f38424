"""Predictor tables as CSV and markdown: Table 1 (quality on TFS-Eval), the LLM-PP prompt
ablation, Table 11 (prediction time) and LLM-PP robustness (A.8.4).

`nasflow.predictors` computes the numbers (DataFrames); this module shapes and writes them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from nasflow import __version__
from nasflow.core.errors import DataError
from nasflow.core.io import atomic_path
from nasflow.predictors.quality import RESULT_COLUMNS
from nasflow.predictors.timing import TIMED_ARCHS

VARIANT_DESCRIPTIONS: dict[str, str] = {
    "demos": "demonstrations only",
    "role_hparams": "+ role + hyperparameters",
    "task": "+ instruction 1 (task, dataset, metric)",
    "examples": "+ instruction 2 (task examples)",
    "backbone": "+ instruction 3 (backbone)",
    "efficiency": "+ instruction 4 (efficiency metric)",
    "full": "+ instruction 5 (focus on demonstrations) = full prompt",
}
"""Rows of the prompt ablation (the paper's Table 1), each adding to the one before."""

ABLATION_COLUMNS = ("setup", "prompt", "variant", "demonstrations", *RESULT_COLUMNS[1:])
"""The ablation's columns: the prompt setup, then Table 1's columns after `predictor`."""


def write_csv(frame: pd.DataFrame, path: str | Path, decimals: int) -> None:
    """`frame` rounded to `decimals`, written atomically (no index, empty cells for NaN)."""
    with atomic_path(path) as tmp:
        frame.round(decimals).to_csv(tmp, index=False, na_rep="")


# ---- Table 1 ------------------------------------------------------------------------------------


def quality_document(
    markdown: str, folder: Path, table: pd.DataFrame, notes: Sequence[str] = ()
) -> str:
    """The markdown document of `nasflow predictors evaluate`: what the metrics are, `notes` on
    added rows (`table1_notes`), the table (`to_markdown`) and where the TFS-Eval set came from."""
    seeds = ", ".join(str(s) for s in sorted(table["seed"].unique()))
    return (
        "# Predictor quality on TFS-Eval\n\n"
        "Gold = `scratch.valid_BLEU` (from-scratch validation BLEU). Metrics are computed on each "
        f"seed's `test` split (seeds {seeds}) and reported as mean ± std over seeds (population "
        "std); `Average` averages each seed's metric over the tasks first. MAE is left empty "
        "for rank-only predictors (#Params, #FLOPs).\n\n"
        + "".join(f"{note}\n\n" for note in notes)
        + f"{markdown}\n\n"
        f"_nasflow {__version__}; data: `{folder}`_\n"
    )


def table1_notes(
    *, calibrate: bool, demonstrations: int | None, zero_cost: Path | None
) -> list[str]:
    """`quality_document` notes on the calibrated rows (`calibrate`, fitted on the first
    `demonstrations` train architectures, None: all) and on zero-cost rows read from
    `zero_cost`."""
    notes = [_calibration_note(demonstrations)] if calibrate else []
    return notes + ([_zero_cost_note(zero_cost)] if zero_cost is not None else [])


def _calibration_note(demonstrations: int | None) -> str:
    """What the `+ calibration` and `+ shift calibration` rows are (`predictors.calibration`)."""
    k = "all" if demonstrations is None else f"the first {demonstrations}"
    return (
        "`X + calibration` rows map supernet predictor X's scores to BLEU with `a · score + b`, "
        f"fitted per split seed on {k} of its train architectures (LLM-PP's demonstrations) "
        "against their from-scratch BLEU: least squares for `+ calibration`; a = 1 and "
        "b = mean(gold − score) for `+ shift calibration` (BLEU-scale X only). Every fit has "
        "a > 0, so the ranking and Kendall tau equal X's. Where the least-squares slope is not "
        "positive or undefined (fewer than 2 demonstrations, constant scores), the fit falls "
        "back to the shift; for a rank-only X, to matching the demonstrations' mean and spread "
        "(a = 1 if either spread is zero). Calibrated rows are BLEU estimates, so they have an "
        "MAE even when X only ranks."
    )


def _zero_cost_note(path: Path) -> str:
    """What the zero-cost rows (grad-norm, snip, synflow) are."""
    return (
        f"grad-norm, snip and synflow are zero-cost proxies (`{path}`): scores of each "
        "architecture at initialisation, computed on one batch; they only rank (Kendall tau, "
        "no MAE). For the released sets the batch comes from newstest2013 with a BPE built "
        "from it, because the paper's exact training batch is not available."
    )


def ablation_table(results: pd.DataFrame, records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The LLM-PP rows of a quality table as the prompt ablation: one row per (setup, variant,
    demonstrations) on the `Average` task (or each task when there is one), variants in the
    order each adds a component (`VARIANT_DESCRIPTIONS`), then by number of demonstrations."""
    meta: dict[str, tuple[str, str, int]] = {}
    for record in records:
        missing = {"setup", "variant", "demonstrations"} - set(record)
        if missing:
            raise DataError(
                f"prediction record of {record.get('predictor')!r} lacks {sorted(missing)}; "
                "rerun `nasflow llm-pp predict` to write them"
            )
        meta[record["predictor"]] = (
            str(record["setup"]),
            str(record["variant"]),
            int(record["demonstrations"]),
        )
    rows = results[results["predictor"].isin(list(meta))]
    if "Average" in set(rows["task"]):
        rows = rows[rows["task"] == "Average"]
    order = list(VARIANT_DESCRIPTIONS)
    table = pd.DataFrame(
        [
            {
                "setup": meta[row.predictor][0],
                "prompt": VARIANT_DESCRIPTIONS[meta[row.predictor][1]],
                "variant": meta[row.predictor][1],
                "demonstrations": meta[row.predictor][2],
                **{c: getattr(row, c) for c in ABLATION_COLUMNS[4:]},
            }
            for row in rows.itertuples(index=False)
        ],
        columns=list(ABLATION_COLUMNS),
    )
    table["_variant"] = table["variant"].map(order.index)
    table = table.sort_values(["setup", "_variant", "demonstrations", "task"], kind="stable")
    return table.drop(columns="_variant").reset_index(drop=True)


# ---- Table 11 -----------------------------------------------------------------------------------


def _mean_std(mean: float, std: float, decimals: int) -> str:
    if math.isnan(mean):
        return "–"
    return f"{mean:.{decimals}f} ± {std:.{decimals}f}"


def _seconds(value: float) -> str:
    if math.isnan(value):
        return "–"
    return f"{value:.3g}" if value < 1 else f"{value:.2f}"


def table11_markdown(results: pd.DataFrame, notes: Mapping[str, Mapping[str, str]]) -> str:
    """The table as a markdown document: time for the timed architectures, MAE and Kendall
    (mean ± std over seeds), how each predictor was timed, then the notes (`{predictor: {task:
    note}}`; a note every task shares is written once)."""
    lines = [
        "# Table 11: prediction time for 10 architectures and predictor quality",
        "",
        f"Time = wall time to predict the first {TIMED_ARCHS} test architectures (split-seed "
        "order), in seconds. Quality = MAE and Kendall tau against the from-scratch valid BLEU "
        "of each split seed's test architectures, mean ± std over split seeds (population std; "
        "the code of Table 1). `–`: not applicable (MAE of a rank-only score) or not timed.",
        "",
        "| predictor | kind | task | archs timed | time (s) | MAE | Kendall tau | timing |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in results.itertuples(index=False):
        lines.append(
            f"| {row.predictor} | {row.kind} | {row.task} | {row.timed_archs} | "
            f"{_seconds(row.time_s)} | {_mean_std(row.mae, row.mae_std, 2)} | "
            f"{_mean_std(row.kendall, row.kendall_std, 3)} | {row.timing} |"
        )
    items = []
    for name, by_task in notes.items():
        texts = set(by_task.values())
        if len(texts) == 1:
            items += [f"- {name}: {text}" for text in texts if text]
        else:
            items += [f"- {name}, {task}: {text}" for task, text in by_task.items() if text]
    if items:
        lines += ["", "Notes:", "", *items]
    return "\n".join(lines) + "\n"


def table11_document(markdown: str, folder: Path, table: pd.DataFrame) -> str:
    """`table11_markdown`'s text with a footer naming the version, the data and its seeds."""
    seeds_text = ", ".join(str(s) for s in sorted(table["seed"].unique()))
    return f"{markdown}\n_nasflow {__version__}; data: `{folder}`; split seeds {seeds_text}_\n"


# ---- robustness ---------------------------------------------------------------------------------


def robustness_markdown(table: pd.DataFrame) -> str:
    """The table as a markdown document, the offline note spelled out in its rows."""
    samples = int(table["samples"].iloc[0]) if len(table) else 0
    lines = [
        "# LLM-PP robustness (A.8.4)",
        "",
        f"Each test architecture (every split seed's prompt) was predicted {samples} times; "
        "per architecture the standard deviation of its predictions (population std), then the "
        "mean over architectures (`mean std`, BLEU points) and the largest (`max std`). "
        "`excluded`: architectures with a failed sample, left out.",
        "",
        "| setup | task | samples | archs | excluded | mean std | max std | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in table.itertuples(index=False):
        mean = "–" if math.isnan(row.mean_std) else f"{row.mean_std:.3f}"
        top = "–" if math.isnan(row.max_std) else f"{row.max_std:.3f}"
        lines.append(
            f"| {row.setup} | {row.task} | {row.samples} | {row.architectures} | "
            f"{row.excluded} | {mean} | {top} | {row.note} |"
        )
    return "\n".join(lines) + "\n"


def robustness_document(markdown: str, predictions: Sequence[Path]) -> str:
    """`robustness_markdown`'s text with a footer naming the version and the prediction files."""
    files = ", ".join(f"`{p}`" for p in predictions)
    return f"{markdown}\n_nasflow {__version__}; {files}_\n"

"""`nasflow predictors evaluate`: predictor quality on the released TFS-Eval sets."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from nasflow import __version__
from nasflow.io import atomic_path, write_text_atomic
from nasflow.tfs_eval import TASK_VOCAB_SIZES, read_tfs_eval

if TYPE_CHECKING:  # pandas/scipy load only when a subcommand runs
    import pandas as pd

DECIMALS = 4


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from nasflow.predictors.quality import default_predictors, evaluate_predictors

    table = read_tfs_eval(args.tfs_eval, tasks=args.task)
    tasks = args.task or list(table["task"].unique())
    results = evaluate_predictors(table, tasks, lambda task: default_predictors(table, task))
    with atomic_path(args.out) as tmp:
        results.round(DECIMALS).to_csv(tmp, index=False, na_rep="")
    markdown = to_markdown(results)
    print(markdown)
    if args.markdown:
        write_text_atomic(args.markdown, _markdown_document(markdown, args.tfs_eval, table))
    if args.plot:
        from nasflow.report.plots import plot_tfs_vs_predicted

        plot_tfs_vs_predicted(table, args.plot, tasks)
    return 0


def to_markdown(results: pd.DataFrame) -> str:
    """The results table as GitHub markdown (4 decimals, empty cells where MAE does not apply)."""
    cells = results.astype(object).where(results.notna(), None)
    return cells.to_markdown(index=False, floatfmt=f".{DECIMALS}f", missingval="")


def _markdown_document(markdown: str, folder: Path, table: pd.DataFrame) -> str:
    seeds = ", ".join(str(s) for s in sorted(table["seed"].unique()))
    return (
        "# Predictor quality on TFS-Eval\n\n"
        "Gold = `scratch.valid_BLEU` (from-scratch validation BLEU). Metrics are computed on each "
        f"seed's `test` split (seeds {seeds}) and reported as mean ± std over seeds (population "
        "std); `Average` averages each seed's metric over the tasks first. MAE is left empty "
        "for rank-only predictors (#Params, #FLOPs).\n\n"
        f"{markdown}\n\n"
        f"_nasflow {__version__}; data: `{folder}`_\n"
    )


def _parse_tasks(text: str) -> list[str] | None:
    """`all` (None: every task of the folder) or comma-separated distinct task names, in order.

    Names are checked against the folder when it is read (a built set has its own tasks)."""
    if text == "all":
        return None
    tasks = [t.strip() for t in text.split(",") if t.strip()]
    if not tasks or len(set(tasks)) != len(tasks):
        raise argparse.ArgumentTypeError(f"{text!r}: expected 'all' or distinct task names")
    return tasks


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `nasflow predictors evaluate`."""
    group = subparsers.add_parser("predictors", help="performance predictors and their quality")
    sub = group.add_subparsers(dest="predictors_command", required=True, metavar="SUBCOMMAND")
    evaluate = sub.add_parser(
        "evaluate",
        help="MAE and Kendall tau of the stored supernet predictors, #Params and #FLOPs",
    )
    evaluate.add_argument(
        "--tfs-eval", type=Path, required=True, metavar="DIR", help="{seed}/{task}/ folder"
    )
    evaluate.add_argument(
        "--task",
        required=True,
        type=_parse_tasks,
        metavar="TASK[,TASK...]|all",
        help=f"tasks of the folder (comma-separated; released: {', '.join(TASK_VOCAB_SIZES)}), "
        "or all",
    )
    evaluate.add_argument("--out", type=Path, required=True, metavar="FILE.csv")
    evaluate.add_argument("--markdown", type=Path, metavar="FILE.md")
    evaluate.add_argument("--plot", type=Path, metavar="FILE.png")
    evaluate.set_defaults(func=_cmd_evaluate)

"""The extra Table 1 rows of `nasflow predictors evaluate` and `nasflow llm-pp evaluate
--baselines`: calibrated supernet predictors (`--calibrate`) and zero-cost proxies
(`--zero-cost`), added to each task's default predictors."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from nasflow.core.errors import ConfigError, DataError

if TYPE_CHECKING:
    import pandas as pd

    from nasflow.predictors.base import Predictor


def add_table1_options(parser: argparse.ArgumentParser) -> None:
    """`--calibrate`, `--calibrate-demonstrations K` and `--zero-cost FILE.csv`."""
    parser.add_argument(
        "--calibrate",
        action="store_true",
        help="add each supernet predictor calibrated per split seed on its demonstrations "
        "(affine; also shift for BLEU-scale ones)",
    )
    parser.add_argument(
        "--calibrate-demonstrations",
        type=int,
        metavar="K",
        help="with --calibrate: fit on the first K train architectures of each split seed "
        "(default: all of them)",
    )
    parser.add_argument(
        "--zero-cost",
        type=Path,
        metavar="FILE.csv",
        help="add the grad-norm, snip and synflow rows of a `nasflow zero-cost score` file",
    )


def table1_predictors(
    args: argparse.Namespace, table: pd.DataFrame, tasks: Sequence[str]
) -> Callable[[str], list[Predictor]]:
    """Per task: the default predictors, their calibrated rows (`--calibrate`) and the zero-cost
    rows (`--zero-cost`, read here; every task of `tasks` must have scores in the file)."""
    from nasflow.predictors.calibration import calibrated_predictors
    from nasflow.predictors.quality import default_predictors, supernet_bases

    k = args.calibrate_demonstrations
    if k is not None and not args.calibrate:
        raise ConfigError("--calibrate-demonstrations needs --calibrate")
    if k is not None and k < 1:
        raise ConfigError(f"--calibrate-demonstrations must be >= 1, got {k}")
    zero_cost: dict[str, list[Predictor]] = {}
    if args.zero_cost is not None:
        from nasflow.zero_cost.scores import read_scores

        zero_cost = {task: list(rows) for task, rows in read_scores(args.zero_cost).items()}
        missing = [task for task in tasks if task not in zero_cost]
        if missing:
            raise DataError(f"{args.zero_cost}: no zero-cost scores for task {missing[0]!r}")

    def predictors(task: str) -> list[Predictor]:
        rows = default_predictors(table, task)
        if args.calibrate:
            rows += calibrated_predictors(table, task, supernet_bases(rows), k)
        return rows + zero_cost.get(task, [])

    return predictors

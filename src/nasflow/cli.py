"""The `nasflow` command: one subcommand group per library package.

Each package exposes `register(subparsers)` that adds its subcommands; every subcommand sets
`func(args) -> int`. Errors derived from `NasflowError` are printed as one line, without traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from nasflow import __version__
from nasflow.errors import NasflowError


def build_parser() -> argparse.ArgumentParser:
    """Assemble the argument parser from the packages' `register` functions."""
    from nasflow import config as config_cli
    from nasflow import space as space_cli
    from nasflow import tfs_eval_build
    from nasflow.data import cli as data_cli
    from nasflow.distill import cli as distill_cli
    from nasflow.efficiency import cli as efficiency_cli
    from nasflow.evaluate import cli as evaluate_cli
    from nasflow.llm import cli as llm_cli
    from nasflow.lts import cli as lts_cli
    from nasflow.predictors import cli as predictors_cli
    from nasflow.report import render_check
    from nasflow.search import cli as search_cli
    from nasflow.train import cli as train_cli

    parser = argparse.ArgumentParser(prog="nasflow", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"nasflow {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    modules = (
        config_cli,
        space_cli,
        data_cli,
        predictors_cli,
        tfs_eval_build,
        train_cli,
        evaluate_cli,
        efficiency_cli,
        search_cli,
        llm_cli,
        distill_cli,
        lts_cli,
        render_check,
    )
    for module in modules:
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except NasflowError as error:
        print(f"nasflow: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""The `nasflow` command: one module per command group, each with `register(subparsers)`.

Every subcommand sets `func(args) -> int`; the modules import the library, never each other.
Errors derived from `NasflowError` are printed as one line, without traceback. Log records go
to standard error in one format (`nasflow.core.logs`); standard output carries only a command's
result (tables, JSON, summaries).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from nasflow import __version__
from nasflow.core.errors import NasflowError
from nasflow.core.flags import ArgumentParser
from nasflow.core.logs import LEVELS, setup_logging


def build_parser() -> argparse.ArgumentParser:
    """Assemble the argument parser from the packages' `register` functions."""
    from nasflow.cli import (
        arch,
        config,
        data,
        distill,
        latency,
        llm_pp,
        lts,
        predictors,
        report,
        search,
        space,
        supernet,
        text_prediction,
        tfs_eval,
        zero_cost,
    )

    parser = ArgumentParser(prog="nasflow", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"nasflow {__version__}")
    parser.add_argument(
        "--log-level", choices=LEVELS, default="INFO", help="nasflow log records shown (INFO)"
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    modules = (
        config,
        space,
        data,
        predictors,
        tfs_eval,
        supernet,
        arch,
        latency,
        search,
        llm_pp,
        distill,
        lts,
        text_prediction,
        zero_cost,
        report,
    )
    for module in modules:
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    for old, new in getattr(args, "deprecated_flags", []):
        logging.getLogger("nasflow.cli").warning("%s is deprecated: use %s", old, new)
    try:
        return int(args.func(args) or 0)
    except NasflowError as error:
        # The one-line form of argparse's own usage errors, not a log record.
        print(f"nasflow: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""The `nasflow` command: one module per command group, each with `register(subparsers)`.

Every subcommand sets `func(args) -> int`; the modules import the library, never each other.
Errors derived from `NasflowError` are printed as one line, without traceback. Log records go
to standard error in one format (`nasflow.core.logs`); standard output carries only a command's
result (tables, JSON, summaries).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from nasflow import __version__
from nasflow.core.errors import NasflowError
from nasflow.core.flags import ArgumentParser
from nasflow.core.logs import LEVELS, setup_logging

#: Command word -> the module whose `register` adds it, in `nasflow --help` order. A job imports
#: only its command's module (and what that imports): the others pull in torch, scipy and more.
COMMANDS = {
    "config": "config",
    "space": "space",
    "data": "data",
    "predictors": "predictors",
    "tfs-eval": "tfs_eval",
    "supernet": "supernet",
    "arch": "arch",
    "translate": "arch",
    "latency": "latency",
    "export-onnx": "latency",
    "search": "search",
    "llm-pp": "llm_pp",
    "distill": "distill",
    "lts": "lts",
    "text-prediction": "text_prediction",
    "zero-cost": "zero_cost",
    "report": "report",
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Assemble the argument parser from the command modules' `register` functions: every
    module, or only the one of `command` (a key of `COMMANDS`)."""
    parser = ArgumentParser(prog="nasflow", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"nasflow {__version__}")
    parser.add_argument(
        "--log-level", choices=LEVELS, default="INFO", help="nasflow log records shown (INFO)"
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    modules = dict.fromkeys(COMMANDS.values() if command is None else [COMMANDS[command]])
    for name in modules:
        importlib.import_module(f"nasflow.cli.{name}").register(subparsers)
    return parser


def command_word(argv: Sequence[str]) -> str | None:
    """The command of `argv` when its first word that is no option (nor --log-level's value) is
    a known command, else None (help, a typo: the full parser answers)."""
    words = iter(argv)
    for word in words:
        if word == "--log-level":
            next(words, None)
        elif not word.startswith("-"):
            return word if word in COMMANDS else None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(command_word(argv))
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

"""`nasflow config validate|show`: a config resolved as the workflow resolves it."""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from nasflow.config.resolve import DEFAULT_CONFIG, config_hash, resolve_config


def _cmd_validate(args: argparse.Namespace) -> int:
    config = resolve_config(args.config)
    name = " + ".join(map(str, args.config or [DEFAULT_CONFIG]))
    print(f"{name}: valid (experiment {config['experiment']!r}, hash {config_hash(config)})")
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    print(yaml.safe_dump(resolve_config(args.config), sort_keys=False), end="")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `nasflow config {validate,show}`."""
    group = subparsers.add_parser("config", help="validate or show an experiment config")
    sub = group.add_subparsers(dest="config_command", required=True, metavar="SUBCOMMAND")
    for name, func, text in (
        ("validate", _cmd_validate, "check a config against the schema"),
        ("show", _cmd_show, "print a config with every default filled in"),
    ):
        parser = sub.add_parser(name, help=text)
        parser.add_argument(
            "--config",
            type=Path,
            nargs="+",
            default=[],
            help=f"config file(s), merged in order as --configfile does (default {DEFAULT_CONFIG})",
        )
        parser.set_defaults(func=func)

"""The `--config FILE | --config-json TEXT` options every config-reading command takes."""

from __future__ import annotations

import argparse
from pathlib import Path

from nasflow.config.resolve import Config, parse_json_object, resolve_config, validate_config


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """`--config FILE` (an experiment config) or `--config-json TEXT` (what rules pass)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--config", type=Path, help="experiment config (default config/config.yaml)")
    group.add_argument("--config-json", help="experiment config as JSON text (used by the rules)")


def read_config(args: argparse.Namespace) -> Config:
    """The validated experiment config named by `--config` or `--config-json`."""
    if args.config_json:
        # Rules pass only the sections a job depends on (never the whole config).
        data = parse_json_object(args.config_json, "--config-json")
        return validate_config(data, "--config-json", complete=False)
    return resolve_config([args.config] if args.config else [])

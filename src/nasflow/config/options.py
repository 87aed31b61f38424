"""The `--config FILE | --config-json TEXT` options every config-reading command takes.

Each such command declares the config sections it reads (`add_config_options(parser,
sections=...)`): a top-level key (`train`) or one entry of a section (`distill.mlp`). The rules
pass exactly those sections as one `--config-json` (workflow/rules/common.smk, `job_config`);
`read_config` refuses any other key and validates the sections once.
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nasflow.config.resolve import Config, parse_json_object, resolve_config, validate_config
from nasflow.core.errors import ConfigError

# The sections every model-building command reads beside its own.
BASE_SECTIONS = ("experiment", "seed", "space", "threads", "model")


def add_config_options(
    parser: argparse.ArgumentParser, sections: Sequence[str] | None = None
) -> None:
    """`--config FILE` (an experiment config) or `--config-json TEXT` (what rules pass), and
    the config sections the command reads (`declare_config_sections`)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--config", type=Path, help="experiment config (default config/config.yaml)")
    group.add_argument(
        "--config-json",
        help="the config sections the command reads, as JSON text (used by the rules)",
    )
    if sections is not None:
        declare_config_sections(parser, sections)


def declare_config_sections(parser: argparse.ArgumentParser, sections: Sequence[str]) -> None:
    """Record the config sections a command reads (`section` or `section.entry`)."""
    parser.set_defaults(config_sections=tuple(sections))


def config_given(args: argparse.Namespace) -> bool:
    """Whether `--config` or `--config-json` was passed."""
    return bool(getattr(args, "config_json", None)) or getattr(args, "config", None) is not None


def _declared(sections: Sequence[str]) -> dict[str, set[str] | None]:
    """Top-level key -> the entries declared of it (None: the whole section)."""
    declared: dict[str, set[str] | None] = {}
    for name in sections:
        top, _, entry = name.partition(".")
        if not entry:
            declared[top] = None
        elif top not in declared or declared[top] is not None:
            declared.setdefault(top, set()).add(entry)  # type: ignore[union-attr]
    return declared


def check_sections(data: Config, sections: Sequence[str], source: str) -> None:
    """Refuse keys of `data` outside the declared `sections`, naming them."""
    declared = _declared(sections)
    extra: list[str] = []
    for key, value in data.items():
        if key not in declared:
            extra.append(key)
            continue
        entries = declared[key]
        if entries is None:
            continue
        if not isinstance(value, dict):
            raise ConfigError(
                f"{source}: config key {key} must be a mapping (of {sorted(entries)})"
            )
        extra += [f"{key}.{entry}" for entry in value if entry not in entries]
    if extra:
        raise ConfigError(
            f"{source}: config key(s) {', '.join(sorted(extra))} are not read by this command "
            f"(it reads {', '.join(sections) or 'none'})"
        )


def slice_config(config: Config, sections: Sequence[str]) -> Config:
    """The declared sections of a validated config (absent ones left out)."""
    out: dict[str, Any] = {}
    for key, entries in _declared(sections).items():
        if key not in config:
            continue
        if entries is None:
            out[key] = config[key]
        else:
            out[key] = {entry: config[key][entry] for entry in entries if entry in config[key]}
    return out


def read_config(args: argparse.Namespace) -> Config:
    """The validated experiment config named by `--config` or `--config-json`.

    With declared sections (`add_config_options(..., sections=)`), `--config-json` may hold only
    those and a `--config` file's config is cut down to them, so the command reads the same
    values either way."""
    sections = getattr(args, "config_sections", None)
    if args.config_json:
        # Rules pass only the sections a job depends on (never the whole config).
        data = parse_json_object(args.config_json, "--config-json")
        if sections is None:
            config = validate_config(data, "--config-json", complete=False)
        else:
            config = validate_sections(data, sections, "--config-json")
    else:
        config = resolve_config([args.config] if args.config else [])
        config = config if sections is None else slice_config(config, sections)
    return _space_by_name(config)


def _space_by_name(config: Config) -> Config:
    """A space given as a mapping (from a file) registered, and named by its name from here on,
    as a built-in space is."""
    if isinstance(config.get("space"), dict):
        from nasflow.space.hat import get_space

        config["space"] = get_space(config["space"]).name
    return config


def validate_sections(data: Config, sections: Sequence[str], source: str) -> Config:
    """`data` checked to hold only the declared `sections`, validated (defaults filled in) and
    cut down to them."""
    check_sections(data, sections, source)
    data = copy.deepcopy(data)
    # Placeholders for keys the slice leaves out, dropped again with every other undeclared
    # key, so that the checks across sections compare only what the slice holds:
    # `experiment` (the one key a config needs); for a slice of the llm or distill sections
    # without `tfs`, no TFS-Eval set (llm.demonstrations and distill.demonstrations are not
    # checked against the default tfs.num_archs); for an llm section without distill.llm, a
    # distill.llm naming one of its predictors.
    declared = _declared(sections)
    if "experiment" not in declared:
        data["experiment"] = "section-check"
    if "tfs" not in declared and ("llm" in declared or "distill" in declared):
        data["tfs"] = {"num_archs": 0}
    predictors = (
        data.get("llm", {}).get("predictors") if isinstance(data.get("llm"), dict) else None
    )
    distill = declared.get("distill", set())
    if predictors and distill is not None and "llm" not in distill:
        names = [entry.get("name") for entry in predictors if isinstance(entry, dict)]
        if names:
            data["distill"] = {**data.get("distill", {}), "llm": names[0]}
    return slice_config(validate_config(data, source, complete=False), sections)

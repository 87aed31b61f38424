"""One flag name per concept across the `nasflow` commands, old names kept as hidden aliases.

`add_flag(parser, "--out", "--out-dir", ...)` adds an option under its canonical name with
deprecated aliases that still parse but are left out of `--help` (the `ArgumentParser` below,
used by the `nasflow` command and inherited by its subcommands, formats help that way). Parsing
records each alias used in `args.deprecated_flags` as `(old, canonical)` pairs; the entry point
logs a warning for each.

The canonical names (tests/unit/test_flags.py checks every subcommand against this table):
`--out` (output file or folder), `--state-dir` (resumable state folder), `--state-file`
(resumable state file), `--n` (how many architectures), `--batch-size`, `--cache` (cache file
or folder) and `--task T [T ...]` (several tasks as separate words, commas also accepted).
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Sequence
from typing import Any

ALIASES_ATTR = "deprecated_aliases"

CANONICAL: dict[str, tuple[str, ...]] = {
    "--out": ("--out-dir", "--output"),
    "--state-dir": ("--state",),
    "--state-file": ("--state",),
    "--n": ("--size", "--k", "--sample", "--archs"),
    "--batch-size": ("--batch",),
    "--cache": ("--cache-dir",),
}
"""Canonical flag -> the deprecated aliases it may carry."""


def add_flag(parser: Any, canonical: str, *aliases: str, **kwargs: Any) -> argparse.Action:
    """`parser.add_argument(canonical, *aliases, **kwargs)` with `aliases` hidden from help."""
    allowed = CANONICAL.get(canonical, ())
    unknown = [alias for alias in aliases if alias not in allowed]
    if unknown:
        raise ValueError(f"{canonical}: {unknown} are not aliases listed in CANONICAL")
    if "action" not in kwargs:
        kwargs.setdefault("metavar", canonical.lstrip("-").upper().replace("-", "_"))
    action = parser.add_argument(canonical, *aliases, **kwargs)
    setattr(action, ALIASES_ATTR, tuple(aliases))
    return action


def visible_options(action: argparse.Action) -> list[str]:
    """The option strings of `action` shown in help (its deprecated aliases left out)."""
    hidden = getattr(action, ALIASES_ATTR, ())
    return [option for option in action.option_strings if option not in hidden]


class HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, without the deprecated aliases of `add_flag`."""

    def _format_action_invocation(self, action: argparse.Action) -> str:
        if not getattr(action, ALIASES_ATTR, ()):
            return super()._format_action_invocation(action)
        shown = copy.copy(action)
        shown.option_strings = visible_options(action)
        return super()._format_action_invocation(shown)


class ArgumentParser(argparse.ArgumentParser):
    """An argument parser that hides deprecated aliases and records their use."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        import sys

        words = list(sys.argv[1:] if args is None else args)
        namespace, extras = super().parse_known_args(words, namespace)
        used = [
            (alias, action.option_strings[0])
            for action in self._actions
            for alias in getattr(action, ALIASES_ATTR, ())
            if any(word == alias or word.startswith(alias + "=") for word in words)
        ]
        if used or not hasattr(namespace, "deprecated_flags"):
            namespace.deprecated_flags = [*getattr(namespace, "deprecated_flags", []), *used]
        return namespace, extras

"""What every space file shares (MT `SearchSpace` and LTS `LTSSpace`): reading a YAML/JSON file
that holds one space mapping, and parsing a choice set from config."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import yaml

from nasflow.core.checks import is_int
from nasflow.core.errors import ConfigError

SPACE_FILE_SUFFIXES = (".yaml", ".yml", ".json")


def looks_like_file(value: str) -> bool:
    """Whether a `--space` / `space:` value names a file rather than a registered space."""
    return Path(value).suffix.lower() in SPACE_FILE_SUFFIXES or Path(value).is_file()


def read_space_file(path: str | Path) -> dict[str, Any]:
    """The space mapping a YAML/JSON file holds (a top-level `space:` key is unwrapped);
    errors name the file (and the line of a syntax error)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: space file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.MarkedYAMLError as error:
        line = error.problem_mark.line + 1 if error.problem_mark else "?"
        raise ConfigError(f"{path}:{line}: invalid YAML/JSON ({error.problem})") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: invalid YAML/JSON ({error})") from None
    if isinstance(data, dict) and set(data) == {"space"}:
        data = data["space"]
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping describing a space")
    return data


def parse_choices(
    value: Any,
    key: str,
    *,
    keep_order: bool = False,
    allowed: Collection[int] | None = None,
) -> tuple[int, ...]:
    """A choice set from config: an int, a list of ints, or `{min, max, step}` (inclusive).

    By default the values must be positive and come back sorted without duplicates (LTS);
    `keep_order` keeps a list's order and refuses duplicates instead (MT spaces sample with
    `rng.choice`, so the order is part of the space); `allowed` replaces the positivity rule
    by a fixed set of values.
    """
    if is_int(value):
        values: list[int] = [value]
    elif isinstance(value, Mapping):
        unknown = sorted(set(value) - {"min", "max", "step"})
        if unknown:
            raise ConfigError(f"{key}: unknown range key(s) {', '.join(unknown)} (min, max, step)")
        lo, hi, step = value.get("min"), value.get("max"), value.get("step", 1)
        if not (is_int(lo) and is_int(hi) and is_int(step)) or step < 1 or hi < lo:
            raise ConfigError(
                f"{key}: a range needs integers min <= max and step >= 1, got {dict(value)}"
            )
        values = list(range(lo, hi + 1, step))
    elif isinstance(value, list | tuple):
        values = list(value)
    else:
        raise ConfigError(
            f"{key}: expected an integer, a list or {{min, max, step}}, got {value!r}"
        )
    if allowed is not None:
        if not values or not all(is_int(v) and v in allowed for v in values):
            raise ConfigError(f"{key}: choices must be among {sorted(allowed)}, got {values!r}")
    elif not values or not all(is_int(v) and v >= 1 for v in values):
        raise ConfigError(f"{key}: choices must be positive integers, got {values!r}")
    if not keep_order:
        return tuple(sorted(set(values)))
    if len(set(values)) != len(values):
        raise ConfigError(f"{key}: choices must not repeat, got {values!r}")
    return tuple(values)

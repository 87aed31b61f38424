"""The config JSON Schema shipped with the package, and the defaults it states.

The schema is the one home of every default a config key has: settings classes and command-line
options that mirror a config section take their defaults from `schema_defaults`.
"""

from __future__ import annotations

import copy
from functools import cache
from importlib import resources
from typing import Any

import yaml


@cache
def load_schema() -> dict[str, Any]:
    """The config JSON Schema shipped with the package (same file as the workflow's)."""
    text = resources.files("nasflow").joinpath("schemas/config.schema.yaml").read_text("utf-8")
    return yaml.safe_load(text)


def schema_defaults(*path: str) -> dict[str, Any]:
    """The default of every key of the config section at `path` that states one, e.g.
    `schema_defaults("train")` or `schema_defaults("lts", "search")` (a copy)."""
    node = load_schema()
    for key in path:
        node = node["properties"][key]
    return {
        key: copy.deepcopy(sub["default"])
        for key, sub in node.get("properties", {}).items()
        if "default" in sub
    }

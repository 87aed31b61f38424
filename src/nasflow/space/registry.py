"""MT search spaces beyond the built-in ones: spaces from YAML/JSON files or mappings, a registry
(`register_space`), the `nasflow.spaces` entry-point group, and `NASFLOW_SPACES`.

A space file holds one mapping (a top-level `space:` key is unwrapped), with HAT's genes:

```yaml
name: my-space                # required (or inherited from `base`); enters every arch id
description: free text
base: demo                    # optional: a registered space whose values the others override
embed: [160, 128]             # encoder and decoder embedding dims
encoder_layers: [3]
decoder_layers: [3, 2, 1]
ffn: [512, 384, 256]          # hidden (FFN) dims of every layer
heads: [4, 2]                 # self and encoder-decoder attention heads of every layer
arbitrary_ende_attn: [-1, 1, 2]   # encoder layers a decoder layer attends (HAT; default all 3)
qkv_dim: 128                  # fixed Q/K/V width; every head choice must divide it
share_embeddings: true        # default true
measure_len: 20               # sentence length of FLOPs and latency (default 20)
latency_feature_scale: [...]  # 10 divisors of the latency features (default: the super dims)
```

A choice set is an int, a list (its order is kept: sampling draws with `rng.choice`, so a file
equal to a built-in space samples the same architectures) or `{min, max, step}`.

Names resolve in this order: the registry (built-ins and `register_space`), the entry points of
the group `nasflow.spaces` (each entry point's name is the space's; its object is a
`SearchSpace`, a mapping, a file path, or a callable returning one), then `NASFLOW_SPACES` (file
paths separated by `os.pathsep`, or a JSON list of mappings, which the workflow sets so that every
job finds a configured space by name).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import fields
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

from nasflow.core.checks import is_int, is_number
from nasflow.core.errors import ConfigError, NasflowError
from nasflow.space.files import looks_like_file, parse_choices, read_space_file
from nasflow.space.hat import (
    ARBITRARY_CHOICES,
    SPACES,
    ArchError,
    SearchSpace,
    set_space_resolver,
)

__all__ = [
    "BUILTIN_SPACES",
    "ENTRY_POINT_GROUP",
    "SPACES_ENV",
    "available_spaces",
    "load_space_file",
    "register_space",
    "resolve_space",
    "space_from_mapping",
    "space_to_mapping",
    "spaces_env_value",
]

ENTRY_POINT_GROUP = "nasflow.spaces"
SPACES_ENV = "NASFLOW_SPACES"
BUILTIN_SPACES = frozenset(SPACES)
# mapping key -> SearchSpace field of the choice sets, in the order the genes come.
CHOICE_KEYS = {
    "embed": "embed_choices",
    "encoder_layers": "encoder_layer_choices",
    "decoder_layers": "decoder_layer_choices",
    "ffn": "ffn_choices",
    "heads": "head_choices",
    "arbitrary_ende_attn": "arbitrary_choices",
}
OTHER_KEYS = ("qkv_dim", "share_embeddings", "measure_len", "latency_feature_scale")
MAPPING_KEYS = ("name", "description", "base", *CHOICE_KEYS, *OTHER_KEYS)
DEFAULTS: dict[str, Any] = {
    "arbitrary_choices": ARBITRARY_CHOICES,
    "share_embeddings": True,
    "measure_len": 20,
}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


# ---- mapping codec -----------------------------------------------------------------------------
def space_to_mapping(space: SearchSpace) -> dict[str, Any]:
    """The plain mapping of a space (what a space file holds), accepted back by
    `space_from_mapping`."""
    data: dict[str, Any] = {"name": space.name, "description": space.description}
    for key, attr in CHOICE_KEYS.items():
        data[key] = list(getattr(space, attr))
    data.update(
        qkv_dim=space.qkv_dim,
        share_embeddings=space.share_embeddings,
        measure_len=space.measure_len,
        latency_feature_scale=list(space.latency_feature_scale),
    )
    return data


def space_from_mapping(data: Mapping[str, Any], source: str = "space") -> SearchSpace:
    """A checked `SearchSpace` from a mapping (keys: the module docstring); every error names
    `source` (the file) and the key."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: a space must be a mapping, got {type(data).__name__}")
    unknown = sorted(set(map(str, data)) - set(MAPPING_KEYS))
    if unknown:
        raise ConfigError(
            f"{source}: unknown space key(s) {', '.join(unknown)} "
            f"(known: {', '.join(MAPPING_KEYS)})"
        )
    values: dict[str, Any] = dict(DEFAULTS)
    if "base" in data:
        try:
            base = resolve_space(str(data["base"]))
        except NasflowError as error:
            raise ConfigError(f"{source}: space key base: {error}") from None
        values = {f.name: getattr(base, f.name) for f in fields(base)}
    values["name"] = data.get("name", values.get("name"))
    if not isinstance(values["name"], str) or not _NAME.match(values["name"]):
        raise ConfigError(
            f"{source}: space key name: a name of letters, digits, '_', '.' and '-' is required "
            f"(or a base to inherit it from), got {values['name']!r}"
        )
    if "description" in data:
        values["description"] = str(data["description"])
    for key, attr in CHOICE_KEYS.items():
        if key in data:
            allowed = ARBITRARY_CHOICES if key == "arbitrary_ende_attn" else None
            values[attr] = parse_choices(
                data[key], f"{source}: space key {key}", keep_order=True, allowed=allowed
            )
        elif attr not in values:
            raise ConfigError(f"{source}: space key {key} is missing (its choices)")
    for key in ("qkv_dim", "measure_len"):
        if key in data:
            if not is_int(data[key]) or data[key] < 1:
                raise ConfigError(
                    f"{source}: space key {key} must be a positive integer, got {data[key]!r}"
                )
            values[key] = data[key]
        elif key not in values:
            raise ConfigError(f"{source}: space key {key} is missing")
    if "share_embeddings" in data:
        if not isinstance(data["share_embeddings"], bool):
            raise ConfigError(f"{source}: space key share_embeddings must be true or false")
        values["share_embeddings"] = data["share_embeddings"]
    if "latency_feature_scale" in data:
        values["latency_feature_scale"] = _scale(data["latency_feature_scale"], source)
    elif "latency_feature_scale" not in values:
        values["latency_feature_scale"] = _derived_scale(values)
    _check_consistent(values, source)
    return SearchSpace(**values)


def _scale(raw: Any, source: str) -> tuple[float, ...]:
    if (
        not isinstance(raw, list | tuple)
        or len(raw) != 10
        or not all(is_number(v) and v > 0 for v in raw)
    ):
        raise ConfigError(
            f"{source}: space key latency_feature_scale must be 10 positive numbers (one per "
            f"latency feature), got {raw!r}"
        )
    return tuple(float(v) for v in raw)


def _derived_scale(values: Mapping[str, Any]) -> tuple[float, ...]:
    """The super dims as divisors (as the demo and m30k spaces have them)."""
    e, f, h = (max(values[k]) for k in ("embed_choices", "ffn_choices", "head_choices"))
    le, ld = max(values["encoder_layer_choices"]), max(values["decoder_layer_choices"])
    attended = max(values["arbitrary_choices"]) + 1
    return tuple(float(v) for v in (e, le, f, h, e, ld, f, h, h, attended))


def _check_consistent(values: Mapping[str, Any], source: str) -> None:
    """Rules across keys, without which some sampled architecture has no model."""
    bad = [h for h in values["head_choices"] if values["qkv_dim"] % h]
    if bad:
        raise ConfigError(
            f"{source}: space key heads: {bad} do not divide qkv_dim ({values['qkv_dim']})"
        )
    deepest = max(values["arbitrary_choices"]) + 1
    fewest = min(values["encoder_layer_choices"])
    if deepest > fewest:
        raise ConfigError(
            f"{source}: space key arbitrary_ende_attn: {deepest - 1} attends {deepest} encoder "
            f"layers, but encoder_layers allows {fewest}"
        )


def load_space_file(path: str | Path) -> SearchSpace:
    """The space a YAML/JSON file describes (not registered; see `resolve_space`)."""
    return space_from_mapping(read_space_file(path), str(path))


# ---- registry ----------------------------------------------------------------------------------
def register_space(name: str, space: SearchSpace | Mapping[str, Any] | str | Path) -> SearchSpace:
    """Register `space` (a `SearchSpace`, a mapping or a file) under `name` and return it.

    The name enters every architecture's id, so it is refused when it already names a different
    space; registering an equal space again is a no-op.
    """
    if isinstance(space, SearchSpace):
        mapping = space_to_mapping(space)
        source = f"space {name!r}"
    elif isinstance(space, Mapping):
        mapping, source = dict(space), f"space {name!r}"
    else:
        mapping, source = read_space_file(space), str(space)
    checked = space_from_mapping({**mapping, "name": name}, source)
    known = SPACES.get(name)
    if known is not None:
        if known != checked:
            what = "a built-in" if name in BUILTIN_SPACES else "another registered"
            raise ArchError(
                f"{source}: the name {name!r} is taken by {what} space with other choices; "
                "architecture ids include the space name, so give this space its own name"
            )
        return known
    SPACES[name] = checked
    return checked


def resolve_space(value: SearchSpace | Mapping[str, Any] | str | Path) -> SearchSpace:
    """The space `value` names or describes, registered on the way: a registered name, an entry
    point's name, a `NASFLOW_SPACES` space, a YAML/JSON file, a mapping, or a `SearchSpace`."""
    if isinstance(value, SearchSpace):
        return register_space(value.name, value)
    if isinstance(value, Mapping):
        space = space_from_mapping(value)
        return register_space(space.name, space)
    text = str(value)
    if text in SPACES:
        return SPACES[text]
    if isinstance(value, Path) or looks_like_file(text):
        space = load_space_file(text)
        return register_space(space.name, space)
    found = _from_entry_points(text) or _from_env(text)
    if found is None:
        raise ArchError(
            f"unknown search space {text!r}; known: {', '.join(available_spaces())} "
            "(or a YAML/JSON space file)"
        )
    return found


def available_spaces() -> list[str]:
    """Names of the registered spaces and of the `nasflow.spaces` entry points."""
    return list(dict.fromkeys([*SPACES, *(ep.name for ep in _entry_points())]))


def spaces_env_value() -> str | None:
    """`NASFLOW_SPACES` for child processes: the registered spaces that are not built in, as a
    JSON list of mappings (None when there are none)."""
    custom = [space_to_mapping(s) for name, s in SPACES.items() if name not in BUILTIN_SPACES]
    return json.dumps(custom, separators=(",", ":")) if custom else None


def _entry_points() -> tuple[EntryPoint, ...]:
    return tuple(entry_points(group=ENTRY_POINT_GROUP))


def _from_entry_points(name: str) -> SearchSpace | None:
    for point in _entry_points():
        if point.name != name:
            continue
        where = f"entry point {point.name} = {point.value} ({ENTRY_POINT_GROUP})"
        try:
            obj = point.load()
            if callable(obj) and not isinstance(obj, SearchSpace | Mapping):
                obj = obj()
            if isinstance(obj, SearchSpace | Mapping):
                return register_space(name, obj)
            if isinstance(obj, str | Path):
                return register_space(name, Path(obj))
        except NasflowError as error:
            raise ArchError(f"{where}: {error}") from None
        except (ImportError, AttributeError) as error:
            raise ArchError(f"{where}: cannot load ({error})") from None
        raise ArchError(
            f"{where}: expected a SearchSpace, a mapping or a file path, got {type(obj).__name__}"
        )
    return None


def _from_env(name: str) -> SearchSpace | None:
    raw = os.environ.get(SPACES_ENV, "").strip()
    if not raw:
        return None
    if raw[0] in "[{":
        try:
            items = json.loads(raw)
        except json.JSONDecodeError as error:
            raise ArchError(f"{SPACES_ENV}: invalid JSON ({error.msg})") from None
        items = items if isinstance(items, list) else [items]
        spaces = [space_from_mapping(item, SPACES_ENV) for item in items]
    else:
        spaces = [load_space_file(path) for path in raw.split(os.pathsep) if path]
    for space in spaces:
        if space.name == name:
            return register_space(name, space)
    return None


set_space_resolver(resolve_space)

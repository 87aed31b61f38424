"""GPT-2-style decoder architectures (`GPTArch`) and the LTS search spaces (`LTSSpace`).

A `GPTArch` is one concrete decoder: the number of layers, the model width shared by every layer,
and per-layer `d_inner` and `n_head` tuples. The vocabulary and the number of positions are not
part of the architecture (they belong to the task), so the same architecture has the same `.id`
whatever it is trained on.

An `LTSSpace` holds choice sets and constraints as plain config values (`from_mapping` /
`to_mapping`), so a search space is an experiment setting rather than code. Rules, each reported
by name in `violations`:

- `n_layer`, `d_model`, `d_inner`, `n_head`: a value outside its choice set;
- `homogeneous`: a space with `per_layer: false` wants one `d_inner` and one `n_head` for all
  layers (the text-prediction case study's GPT-2 space);
- `inner_ratio`: every layer's `d_inner / d_model` must be `>= inner_ratio` (or `>` with
  `inner_ratio_strict`: the LTS paper space's hidden rule `d_inner > 1.7 d_model`);
- `decoder_params`: the decoder-parameter proxy within `[min_decoder_params, max_decoder_params]`,
  counted for the space's `backbone` (`gpt2`, the default, or `transformer-xl`; see
  `nasflow.space.gpt_params`);
- `d_model` divisible by every `n_head`: checked by `GPTArch` itself (no model exists otherwise).

Sampling draws the (n_layer, d_model) pair uniformly among pairs that can meet the parameter
bounds, each `n_head` uniformly among the choices that divide `d_model`, and each `d_inner`
uniformly among the choices that meet the ratio rule (the reference sampler's hidden rule), then
rejects out-of-bounds draws (for homogeneous spaces the `d_inner` draw is restricted to in-bounds
values, so nothing is rejected). A space whose bounds no architecture can meet is refused when it
is built, with the achievable range in the message.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from functools import cached_property
from typing import Any

from nasflow.core.checks import is_int
from nasflow.core.errors import ConfigError
from nasflow.space.files import parse_choices
from nasflow.space.gpt_params import (
    backbone_layer_params,
    check_backbone,
    decoder_params,
    final_params,
)
from nasflow.space.hat import ArchError

__all__ = [
    "SPACES",
    "ArchError",
    "GPTArch",
    "LTSSpace",
    "get_space",
    "resolve_space",
]

ARCH_KEYS = ("n_layer", "d_model", "d_inner", "n_head")


@dataclass(frozen=True)
class GPTArch:
    """One GPT-2-style decoder (immutable, hashable).

    `d_inner` and `n_head` hold one value per layer; an int is broadcast to every layer.
    """

    n_layer: int
    d_model: int
    d_inner: tuple[int, ...]
    n_head: tuple[int, ...]

    def __post_init__(self) -> None:
        for name in ("n_layer", "d_model"):
            value = getattr(self, name)
            if not is_int(value) or value < 1:
                raise ArchError(f"{name} must be a positive integer, got {value!r}")
        for name in ("d_inner", "n_head"):
            value = getattr(self, name)
            if is_int(value):
                value = (value,) * self.n_layer
            elif isinstance(value, list | tuple):
                value = tuple(value)
            else:
                raise ArchError(f"{name} must be an integer or a list of integers, got {value!r}")
            if not all(is_int(v) and v >= 1 for v in value):
                raise ArchError(f"{name} must hold positive integers, got {list(value)}")
            if len(value) != self.n_layer:
                raise ArchError(
                    f"{name} has {len(value)} values but n_layer is {self.n_layer} "
                    "(give one per layer, or a single value for all)"
                )
            object.__setattr__(self, name, value)
        bad = sorted({h for h in self.n_head if self.d_model % h})
        if bad:
            raise ArchError(f"n_head values {bad} do not divide d_model {self.d_model}")

    @classmethod
    def uniform(cls, n_layer: int, d_model: int, d_inner: int, n_head: int) -> GPTArch:
        """A homogeneous decoder (every layer alike), e.g. the GPT-2 baseline."""
        return cls(n_layer, d_model, (d_inner,) * n_layer, (n_head,) * n_layer)

    # ---- identity ---------------------------------------------------------------------------
    @cached_property
    def id(self) -> str:
        """Stable 12-hex-digit id (sha1 of the canonical JSON)."""
        return hashlib.sha1(self.to_json().encode("utf-8")).hexdigest()[:12]

    @property
    def is_homogeneous(self) -> bool:
        return len(set(self.d_inner)) == 1 and len(set(self.n_head)) == 1

    def head_dims(self) -> tuple[int, ...]:
        """Per-layer head size `d_model // n_head`."""
        return tuple(self.d_model // h for h in self.n_head)

    def describe(self) -> str:
        """Short human-readable form: `L12 d1024 f4096 h16` or `L3 d128 f[256,384,256] h[2,4,2]`."""

        def one(values: tuple[int, ...]) -> str:
            if len(set(values)) == 1:
                return str(values[0])
            return "[" + ",".join(str(v) for v in values) + "]"

        return f"L{self.n_layer} d{self.d_model} f{one(self.d_inner)} h{one(self.n_head)}"

    # ---- JSON ---------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form: `{"n_layer", "d_model", "d_inner": [...], "n_head": [...]}`."""
        return {
            "n_layer": self.n_layer,
            "d_model": self.d_model,
            "d_inner": list(self.d_inner),
            "n_head": list(self.n_head),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GPTArch:
        """Inverse of `to_dict` (ints broadcast); unknown or missing keys are named."""
        if not isinstance(data, Mapping):
            raise ArchError(f"an architecture must be a JSON object, got {type(data).__name__}")
        unknown = sorted(set(data) - set(ARCH_KEYS))
        if unknown:
            raise ArchError(f"unknown architecture key(s): {', '.join(unknown)}")
        missing = [k for k in ARCH_KEYS if k not in data]
        if missing:
            raise ArchError(f"missing architecture key(s): {', '.join(missing)}")
        return cls(**{k: data[k] for k in ARCH_KEYS})

    def to_json(self) -> str:
        """Compact canonical JSON string."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> GPTArch:
        """Parse `to_json` output."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ArchError(f"invalid architecture JSON: {error.msg}") from None
        return cls.from_dict(data)

    def replace(self, **changes: Any) -> GPTArch:
        """A copy with some fields changed (validated like any new arch)."""
        return GPTArch(**{**self.to_dict(), **changes})


# ---- spaces ---------------------------------------------------------------------------------
_COUNT = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([kKmMgGbB]?)\s*$")
_SUFFIX = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "b": 10**9}


def _count(value: Any, key: str) -> int | None:
    """A parameter count from config: int, integral float, or a string like `120M` / `1.2e8`."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ConfigError(f"{key}: expected a parameter count, got {value!r}")
    if isinstance(value, str):
        match = _COUNT.match(value)
        if not match:
            raise ConfigError(
                f"{key}: expected a parameter count like 120M or 1.2e8, got {value!r}"
            )
        number = float(match.group(1)) * _SUFFIX[match.group(2).lower()]
    elif isinstance(value, int | float):
        number = float(value)
    else:
        raise ConfigError(f"{key}: expected a parameter count, got {value!r}")
    if number < 0 or number != int(number):
        raise ConfigError(f"{key}: expected a non-negative whole count, got {value!r}")
    return int(number)


@dataclass(frozen=True)
class LTSSpace:
    """Choice sets and constraints of an LTS decoder search space (see the module docstring)."""

    name: str
    n_layer_choices: tuple[int, ...]
    d_model_choices: tuple[int, ...]
    d_inner_choices: tuple[int, ...]
    n_head_choices: tuple[int, ...]
    per_layer: bool = True
    min_decoder_params: int | None = None
    max_decoder_params: int | None = None
    inner_ratio: float | None = None
    inner_ratio_strict: bool = False
    backbone: str = "gpt2"
    description: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        check_backbone(self.backbone, f"space {self.name!r}: backbone")
        for name in ("n_layer_choices", "d_model_choices", "d_inner_choices", "n_head_choices"):
            choices = parse_choices(getattr(self, name), f"{self.name}.{name}")
            object.__setattr__(self, name, choices)
        lo, hi = self.min_decoder_params, self.max_decoder_params
        if lo is not None and hi is not None and lo > hi:
            raise ConfigError(
                f"space {self.name!r}: min_decoder_params {lo:,} > max_decoder_params {hi:,}"
            )
        if self.inner_ratio is not None and not self.inner_ratio > 0:
            raise ConfigError(
                f"space {self.name!r}: inner_ratio must be > 0, got {self.inner_ratio}"
            )
        if not self._pairs:
            low, high = self.decoder_param_range()
            if low is None:
                raise ConfigError(
                    f"space {self.name!r} holds no architecture: no d_model has a dividing "
                    "n_head and a d_inner meeting the inner_ratio rule"
                )
            raise ConfigError(
                f"space {self.name!r} is infeasible: decoder-parameter bounds "
                f"[{_fmt(lo)}, {_fmt(hi)}] miss the achievable range [{low:,}, {high:,}]"
            )

    # ---- derived choice sets ------------------------------------------------------------------
    def inner_choices_for(self, d_model: int) -> tuple[int, ...]:
        """The `d_inner` choices that meet the ratio rule for `d_model`."""
        return tuple(f for f in self.d_inner_choices if self._ratio_ok(f, d_model))

    def head_choices_for(self, d_model: int) -> tuple[int, ...]:
        """The `n_head` choices that divide `d_model`."""
        return tuple(h for h in self.n_head_choices if d_model % h == 0)

    def _ratio_ok(self, d_inner: int, d_model: int) -> bool:
        if self.inner_ratio is None:
            return True
        if self.inner_ratio_strict:
            return d_inner > self.inner_ratio * d_model
        return d_inner >= self.inner_ratio * d_model

    @cached_property
    def _usable_d_models(self) -> tuple[int, ...]:
        return tuple(
            d
            for d in self.d_model_choices
            if self.head_choices_for(d) and self.inner_choices_for(d)
        )

    def _bounds_ok(self, params: int) -> bool:
        lo, hi = self.min_decoder_params, self.max_decoder_params
        return (lo is None or params >= lo) and (hi is None or params <= hi)

    def _params(self, n_layer: int, d_model: int, d_inner: int) -> int:
        """Decoder parameters of `n_layer` alike layers for the space's backbone."""
        layer = backbone_layer_params(self.backbone, d_model, d_inner)
        return n_layer * layer + final_params(self.backbone, d_model)

    def _pair_range(self, n_layer: int, d_model: int) -> tuple[int, int]:
        inner = self.inner_choices_for(d_model)
        return self._params(n_layer, d_model, inner[0]), self._params(n_layer, d_model, inner[-1])

    @cached_property
    def _pairs(self) -> tuple[tuple[int, int], ...]:
        """(n_layer, d_model) pairs that can meet the parameter bounds (and, if homogeneous,
        do so with one of the d_inner choices)."""
        pairs = []
        for d in self._usable_d_models:
            for n in self.n_layer_choices:
                if self.per_layer:
                    low, high = self._pair_range(n, d)
                    lo, hi = self.min_decoder_params, self.max_decoder_params
                    if (lo is None or high >= lo) and (hi is None or low <= hi):
                        pairs.append((n, d))
                elif self._homogeneous_inner(n, d):
                    pairs.append((n, d))
        return tuple(pairs)

    def _homogeneous_inner(self, n_layer: int, d_model: int) -> tuple[int, ...]:
        return tuple(
            f
            for f in self.inner_choices_for(d_model)
            if self._bounds_ok(self._params(n_layer, d_model, f))
        )

    def decoder_param_range(self) -> tuple[int | None, int | None]:
        """Smallest and largest decoder parameters over the choice sets and the ratio and head
        rules, ignoring the parameter bounds; `(None, None)` when no architecture exists."""
        ranges = [
            self._pair_range(n, d) for d in self._usable_d_models for n in self.n_layer_choices
        ]
        if not ranges:
            return None, None
        return min(r[0] for r in ranges), max(r[1] for r in ranges)

    # ---- validity -----------------------------------------------------------------------------
    def violations(self, arch: GPTArch) -> list[str]:
        """Every rule `arch` breaks, each message starting with the rule's name (empty if valid)."""
        problems: list[str] = []

        def check(name: str, values: Iterable[int], choices: Sequence[int]) -> None:
            bad = sorted({v for v in values if v not in choices})
            if bad:
                problems.append(f"{name}: {bad} not in the choices {_short(choices)}")

        check("n_layer", [arch.n_layer], self.n_layer_choices)
        check("d_model", [arch.d_model], self.d_model_choices)
        check("d_inner", arch.d_inner, self.d_inner_choices)
        check("n_head", arch.n_head, self.n_head_choices)
        if not self.per_layer and not arch.is_homogeneous:
            problems.append(
                "homogeneous: this space uses one d_inner and one n_head for all layers"
            )
        bad = [f for f in arch.d_inner if not self._ratio_ok(f, arch.d_model)]
        if bad:
            op = ">" if self.inner_ratio_strict else ">="
            problems.append(
                f"inner_ratio: d_inner {sorted(set(bad))} break d_inner {op} "
                f"{self.inner_ratio:g} x d_model ({arch.d_model})"
            )
        params = decoder_params(arch, self.backbone)
        if not self._bounds_ok(params):
            problems.append(
                f"decoder_params: {params:,} outside [{_fmt(self.min_decoder_params)}, "
                f"{_fmt(self.max_decoder_params)}]"
            )
        return problems

    def violation(self, arch: GPTArch) -> str | None:
        """The first rule `arch` breaks, or None when it is valid."""
        problems = self.violations(arch)
        return problems[0] if problems else None

    def is_valid(self, arch: GPTArch) -> bool:
        return not self.violations(arch)

    def validate(self, arch: GPTArch) -> GPTArch:
        """Return `arch` unchanged, or raise `ArchError` listing every violated rule."""
        problems = self.violations(arch)
        if problems:
            raise ArchError(
                f"architecture {arch.describe()} ({arch.id}) is not in space {self.name!r}: "
                + "; ".join(problems)
            )
        return arch

    # ---- sampling -----------------------------------------------------------------------------
    def sample(self, rng: random.Random, max_tries: int = 10_000) -> GPTArch:
        """One valid architecture (see the module docstring for the distribution)."""
        rejected = 0
        for _ in range(max_tries):
            n, d = rng.choice(self._pairs)
            heads = self.head_choices_for(d)
            if self.per_layer:
                inner = self.inner_choices_for(d)
                arch = GPTArch(
                    n,
                    d,
                    tuple(rng.choice(inner) for _ in range(n)),
                    tuple(rng.choice(heads) for _ in range(n)),
                )
            else:
                arch = GPTArch.uniform(
                    n, d, rng.choice(self._homogeneous_inner(n, d)), rng.choice(heads)
                )
            if self.is_valid(arch):
                return arch
            rejected += 1
        raise ArchError(
            f"space {self.name!r}: no valid architecture in {max_tries} draws ({rejected} outside "
            f"the decoder-parameter bounds [{_fmt(self.min_decoder_params)}, "
            f"{_fmt(self.max_decoder_params)}]); widen the bounds"
        )

    def sample_unique(
        self, n: int, seed: int | random.Random, max_tries: int | None = None
    ) -> list[GPTArch]:
        """`n` distinct valid architectures from a seeded generator (error if none are left)."""
        rng = seed if isinstance(seed, random.Random) else random.Random(seed)
        seen: dict[str, GPTArch] = {}
        tries, limit = 0, max_tries or 1000 * max(n, 1)
        while len(seen) < n:
            if tries >= limit:
                raise ArchError(
                    f"space {self.name!r}: found only {len(seen)} distinct architectures of {n} "
                    f"after {tries} draws"
                )
            arch = self.sample(rng)
            seen.setdefault(arch.id, arch)
            tries += 1
        return list(seen.values())

    # ---- evolution ----------------------------------------------------------------------------
    def _draw_layer(self, rng: random.Random, d_model: int) -> tuple[int, int]:
        inner = self.inner_choices_for(d_model) or self.d_inner_choices
        heads = self.head_choices_for(d_model) or self.n_head_choices
        return rng.choice(inner), rng.choice(heads)

    def mutate(
        self, arch: GPTArch, prob: float, rng: random.Random, max_tries: int = 100
    ) -> GPTArch:
        """Redraw each gene with probability `prob` until the child is valid.

        Genes: `n_layer`, `d_model`, and per layer `d_inner` and `n_head` (a single `d_inner`
        and `n_head` gene in homogeneous spaces). Redraws of `d_inner` / `n_head` follow the
        ratio and divisibility rules for the child's `d_model`; layers added by a larger
        `n_layer` get freshly drawn genes. The child may equal the parent (a redraw can pick the
        same value). If no valid child appears in `max_tries` attempts, the last invalid
        candidate is returned (the parent if none could be built), so a caller that checks
        `is_valid` (as the Pareto search does) counts the failure instead of crashing.
        """
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"mutation probability must be in [0, 1], got {prob}")

        def make() -> GPTArch:
            n = rng.choice(self.n_layer_choices) if rng.random() < prob else arch.n_layer
            d = rng.choice(self._usable_d_models) if rng.random() < prob else arch.d_model
            if not self.per_layer:
                f, h = arch.d_inner[0], arch.n_head[0]
                new_f, new_h = self._draw_layer(rng, d)
                f = new_f if rng.random() < prob else f
                h = new_h if rng.random() < prob else h
                return GPTArch.uniform(n, d, f, h)
            inner, heads = [], []
            for i in range(n):
                new_f, new_h = self._draw_layer(rng, d)
                if i < arch.n_layer:
                    inner.append(new_f if rng.random() < prob else arch.d_inner[i])
                    heads.append(new_h if rng.random() < prob else arch.n_head[i])
                else:
                    inner.append(new_f)
                    heads.append(new_h)
            return GPTArch(n, d, tuple(inner), tuple(heads))

        return self._retry(make, max_tries, arch)

    def crossover(
        self, first: GPTArch, second: GPTArch, rng: random.Random, max_tries: int = 100
    ) -> GPTArch:
        """Take each gene from either parent with probability 0.5 until the child is valid.

        Layer `i` comes from a parent that has a layer `i` (from the deeper one past the
        shallower one's depth). Like `mutate`, returns an invalid candidate (or `first`) when
        no valid child appears in `max_tries` attempts.
        """

        def pick(a: Any, b: Any) -> Any:
            return a if rng.random() < 0.5 else b

        def make() -> GPTArch:
            n = pick(first.n_layer, second.n_layer)
            d = pick(first.d_model, second.d_model)
            inner, heads = [], []
            for i in range(n):
                a = first if i < first.n_layer else second
                b = second if i < second.n_layer else first
                inner.append(pick(a.d_inner[i], b.d_inner[i]))
                heads.append(pick(a.n_head[i], b.n_head[i]))
            if not self.per_layer:
                return GPTArch.uniform(n, d, inner[0], heads[0])
            return GPTArch(n, d, tuple(inner), tuple(heads))

        return self._retry(make, max_tries, first)

    def _retry(self, make: Any, max_tries: int, fallback: GPTArch) -> GPTArch:
        last = fallback
        for _ in range(max_tries):
            try:
                child = make()
            except ArchError:  # e.g. an n_head that does not divide a new d_model
                continue
            if self.is_valid(child):
                return child
            last = child
        return last

    def arch_from_dict(self, data: Mapping[str, Any]) -> GPTArch:
        """`GPTArch.from_dict` (for resume states of the Pareto search)."""
        return GPTArch.from_dict(data)

    # ---- config -------------------------------------------------------------------------------
    def to_mapping(self) -> dict[str, Any]:
        """Plain config form (explicit choice lists), accepted back by `from_mapping`."""
        return {
            "name": self.name,
            "description": self.description,
            "n_layer": list(self.n_layer_choices),
            "d_model": list(self.d_model_choices),
            "d_inner": list(self.d_inner_choices),
            "n_head": list(self.n_head_choices),
            "per_layer": self.per_layer,
            "backbone": self.backbone,
            "constraints": {
                "min_decoder_params": self.min_decoder_params,
                "max_decoder_params": self.max_decoder_params,
                "inner_ratio": self.inner_ratio,
                "inner_ratio_strict": self.inner_ratio_strict,
            },
        }

    @cached_property
    def fingerprint(self) -> str:
        """Short sha1 of `to_mapping()` without the description (for caches and resumes); the
        backbone enters only when it is not `gpt2`, so GPT-2 spaces keep their fingerprints."""
        data = {k: v for k, v in self.to_mapping().items() if k != "description"}
        if data["backbone"] == "gpt2":
            del data["backbone"]
        text = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any]) -> LTSSpace:
        """Build a space from config.

        Keys: `name`, `description`, `base` (a registered space to start from),
        `n_layer`, `d_model`, `d_inner`, `n_head` (an int, a list, or `{min, max, step}`),
        `per_layer` (bool), `backbone` (`gpt2`, the default, or `transformer-xl`: the decoder
        family, whose count the parameter bounds use), `constraints` with
        `decoder_params: [min, max]` or `min_decoder_params` / `max_decoder_params` (ints or
        strings like `120M`; null for none), `inner_ratio` (null for none) and
        `inner_ratio_strict`.
        """
        if not isinstance(config, Mapping):
            raise ConfigError(f"a space must be a mapping, got {type(config).__name__}")
        top = {"name", "description", "base", "n_layer", "d_model", "d_inner", "n_head"}
        top |= {"per_layer", "backbone", "constraints"}
        unknown = sorted(set(config) - top)
        if unknown:
            raise ConfigError(f"space: unknown key(s) {', '.join(unknown)}")
        values: dict[str, Any] = {}
        if "base" in config:
            base = get_space(str(config["base"]))
            values = {f.name: getattr(base, f.name) for f in fields(base)}
        name = config.get("name", values.get("name"))
        if not isinstance(name, str) or not name:
            raise ConfigError("space: `name` is required (or a `base` to inherit it from)")
        values["name"] = name
        if "description" in config:
            values["description"] = str(config["description"])
        for key in ARCH_KEYS:
            if key in config:
                values[f"{key}_choices"] = parse_choices(config[key], f"{name}.{key}")
            elif f"{key}_choices" not in values:
                raise ConfigError(f"space {name!r}: `{key}` choices are required")
        if "per_layer" in config:
            if not isinstance(config["per_layer"], bool):
                raise ConfigError(f"space {name!r}: per_layer must be true or false")
            values["per_layer"] = config["per_layer"]
        if "backbone" in config:
            values["backbone"] = check_backbone(config["backbone"], f"space {name!r}: backbone")
        values.update(_constraints(config.get("constraints") or {}, name))
        return cls(**values)


def _constraints(raw: Any, name: str) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"space {name!r}: constraints must be a mapping")
    known = {
        "decoder_params",
        "min_decoder_params",
        "max_decoder_params",
        "inner_ratio",
        "inner_ratio_strict",
    }
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"space {name!r}: unknown constraint(s) {', '.join(unknown)}")
    out: dict[str, Any] = {}
    if "decoder_params" in raw:
        bounds = raw["decoder_params"]
        if bounds is None:
            bounds = [None, None]
        if not isinstance(bounds, list | tuple) or len(bounds) != 2:
            raise ConfigError(f"space {name!r}: decoder_params must be [min, max]")
        out["min_decoder_params"] = _count(bounds[0], f"{name}.decoder_params[0]")
        out["max_decoder_params"] = _count(bounds[1], f"{name}.decoder_params[1]")
    for key in ("min_decoder_params", "max_decoder_params"):
        if key in raw:
            out[key] = _count(raw[key], f"{name}.{key}")
    if "inner_ratio" in raw:
        ratio = raw["inner_ratio"]
        if ratio is not None and (isinstance(ratio, bool) or not isinstance(ratio, int | float)):
            raise ConfigError(f"space {name!r}: inner_ratio must be a number or null")
        out["inner_ratio"] = None if ratio is None else float(ratio)
    if "inner_ratio_strict" in raw:
        if not isinstance(raw["inner_ratio_strict"], bool):
            raise ConfigError(f"space {name!r}: inner_ratio_strict must be true or false")
        out["inner_ratio_strict"] = raw["inner_ratio_strict"]
    return out


def _fmt(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def _short(choices: Sequence[int]) -> str:
    values = list(choices)
    if len(values) > 6:
        steps = {b - a for a, b in itertools.pairwise(values)}
        if len(steps) == 1:
            return f"{values[0]}..{values[-1]} step {steps.pop()}"
    return str(values)


_LTS_PAPER = LTSSpace(
    name="lts-paper",
    n_layer_choices=tuple(range(2, 17)),
    d_model_choices=tuple(range(128, 961, 64)),
    d_inner_choices=tuple(range(128, 4033, 64)),
    n_head_choices=(2, 4, 8),
    per_layer=True,
    inner_ratio=1.7,
    inner_ratio_strict=True,
    backbone="gpt2",
    description="LTS paper-era GPT-2 space: per-layer d_inner and n_head, "
    "d_inner > 1.7 d_model (the reference sampler's hidden rule), no parameter bounds",
)

SPACES: dict[str, LTSSpace] = {
    space.name: space
    for space in (
        _LTS_PAPER,
        replace(
            _LTS_PAPER,
            name="lts-paper-txl",
            backbone="transformer-xl",
            description="LTS paper-era Transformer-XL space: the lts-paper choices and rules "
            "with Transformer-XL decoders (relative attention, recurrence memory)",
        ),
        LTSSpace(
            name="text-prediction",
            n_layer_choices=tuple(range(6, 19)),
            d_model_choices=tuple(range(512, 2049, 64)),
            d_inner_choices=tuple(range(1024, 8193, 64)),
            n_head_choices=(4, 8, 16, 32),
            per_layer=False,
            min_decoder_params=120_000_000,
            max_decoder_params=180_000_000,
            inner_ratio=2.0,
            inner_ratio_strict=False,
            description="text-prediction case study: homogeneous GPT-2, decoder parameters "
            "120M-180M (the 12-layer baseline has 151M), d_inner / d_model >= 2",
        ),
        LTSSpace(
            name="lts-demo",
            n_layer_choices=(2, 3, 4),
            d_model_choices=(64, 128, 192),
            d_inner_choices=tuple(range(128, 513, 64)),
            n_head_choices=(2, 4),
            per_layer=True,
            inner_ratio=2.0,
            inner_ratio_strict=False,
            description="CPU-sized per-layer space for tests, demos and the PTB proxy check",
        ),
    )
}
# The proxy check's small space with the second backbone (`nasflow lts proxy-check --space
# lts-demo-txl`): the same choices, Transformer-XL decoders.
SPACES["lts-demo-txl"] = replace(
    SPACES["lts-demo"],
    name="lts-demo-txl",
    backbone="transformer-xl",
    description="lts-demo with Transformer-XL decoders (the proxy check on the second backbone)",
)


def get_space(name: str) -> LTSSpace:
    """The registered space called `name` (`lts-paper`, `lts-paper-txl`, `text-prediction`,
    `lts-demo`, `lts-demo-txl`)."""
    try:
        return SPACES[name]
    except KeyError:
        raise ConfigError(f"unknown LTS space {name!r}; known: {', '.join(SPACES)}") from None


def resolve_space(value: str | Mapping[str, Any] | LTSSpace) -> LTSSpace:
    """A space from a registered name, a config mapping, or an `LTSSpace` itself."""
    if isinstance(value, LTSSpace):
        return value
    if isinstance(value, str):
        return get_space(value)
    return LTSSpace.from_mapping(value)

"""The case study's selection step: frontier candidates slightly larger than a baseline, and their
`n_head` variants.

The text-prediction case study (reference §2, §5) keeps the frontier points whose decoder
parameters lie just above the baseline's (so their quality should match or beat it) and ranks them
by latency; for a chosen candidate it also tries the same architecture with every layer's `n_head`
set to 8 and to 16 (quality rises, latency barely moves). Both helpers are generic: rows are plain
mappings (or a DataFrame) and the head change is a callable supplied by the space.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import pandas as pd

from nasflow.core.errors import ConfigError, DataError

A = TypeVar("A")


def select_candidates(
    rows: pd.DataFrame | Iterable[Mapping[str, Any]],
    baseline_params: float,
    *,
    margin: float = 0.1,
    params_key: str = "decoder_params",
    latency_key: str = "latency_ms",
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Rows with `baseline < params <= baseline * (1 + margin)`, fastest first.

    Sorted by `latency_key` ascending, then by `params_key` descending (more capacity for the
    same latency), then by `arch_id` when present. `limit` keeps the first `limit` rows.
    Returns plain dicts (copies of the rows).
    """
    if isinstance(margin, bool) or not isinstance(margin, int | float) or not margin >= 0:
        raise ConfigError(f"the selection margin must be a number >= 0, got {margin!r}")
    if (
        isinstance(baseline_params, bool)
        or not isinstance(baseline_params, int | float)
        or not math.isfinite(baseline_params)
        or baseline_params <= 0
    ):
        raise ConfigError(
            f"the baseline's decoder parameters must be a positive number, got {baseline_params!r}"
        )
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"the selection limit must be an integer >= 1, got {limit!r}")
    records = rows.to_dict("records") if isinstance(rows, pd.DataFrame) else list(rows)
    upper = baseline_params * (1.0 + margin)
    picked: list[dict[str, Any]] = []
    for number, row in enumerate(records):
        for key in (params_key, latency_key):
            if key not in row:
                raise DataError(f"frontier row {number} has no {key!r} column")
        if baseline_params < float(row[params_key]) <= upper:
            picked.append(dict(row))
    picked.sort(
        key=lambda r: (float(r[latency_key]), -float(r[params_key]), str(r.get("arch_id", "")))
    )
    return picked if limit is None else picked[:limit]


def head_variants(
    arch: A,
    set_heads: Callable[[A, int], A],
    heads: Sequence[int] = (8, 16),
    *,
    is_valid: Callable[[A], bool] | None = None,
) -> list[tuple[int, A]]:
    """`(n_head, variant)` for each of `heads`: `arch` with every layer's `n_head` set to it.

    `set_heads(arch, n)` builds the variant (e.g. `LTSSpace.with_heads`). A variant equal to
    `arch` (same `id`, when archs have one; else `==`) or to an earlier variant is left out, as
    is one that `is_valid` rejects or for which `set_heads` raises `ValueError` (e.g. `d_model`
    not divisible by `n`).
    """
    out: list[tuple[int, A]] = []
    seen = {_key(arch)}
    for n in heads:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"head counts must be integers >= 1, got {n!r}")
        try:
            variant = set_heads(arch, n)
        except ValueError:
            continue
        key = _key(variant)
        if key in seen or (is_valid is not None and not is_valid(variant)):
            continue
        seen.add(key)
        out.append((n, variant))
    return out


def _key(arch: Any) -> Any:
    return getattr(arch, "id", arch)

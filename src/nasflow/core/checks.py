"""Type checks of config values (YAML booleans are not numbers, NaN and infinity are not finite) and
of a language model's size arguments."""

from __future__ import annotations

import math
from typing import Any


def is_int(value: Any) -> bool:
    """An integer that is not a boolean."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """A finite int or float that is not a boolean."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def check_lm_sizes(vocab_size: int, n_positions: int, dropout: float) -> None:
    """`ValueError` unless a language model's vocabulary and positions are positive and its
    dropout is in [0, 1)."""
    if vocab_size < 1 or n_positions < 1:
        raise ValueError(
            f"vocab_size and n_positions must be positive, got {vocab_size}, {n_positions}"
        )
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")

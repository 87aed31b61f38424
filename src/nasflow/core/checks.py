"""Type checks of config values: YAML booleans are not numbers, NaN and infinity are not finite."""

from __future__ import annotations

import math
from typing import Any


def is_int(value: Any) -> bool:
    """An integer that is not a boolean."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """A finite int or float that is not a boolean."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)

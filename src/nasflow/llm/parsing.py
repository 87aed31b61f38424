"""Reading a number out of an LLM reply."""

from __future__ import annotations

import re

_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")


def first_number(reply: str) -> float | None:
    """The first number in `reply` (prose around it is allowed), or None."""
    match = _NUMBER.search(reply)
    return float(match.group()) if match else None


def parse_prediction(reply: str, low: float, high: float) -> float | None:
    """The first number of `reply` if it lies in `[low, high]`; None for no number or an
    absurd one (the caller retries, then records a failure)."""
    value = first_number(reply)
    if value is None or not low <= value <= high:
        return None
    return value

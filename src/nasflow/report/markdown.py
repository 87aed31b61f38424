"""Result tables as GitHub markdown."""

from __future__ import annotations

import pandas as pd

DECIMALS = 4


def to_markdown(results: pd.DataFrame) -> str:
    """The results table as GitHub markdown (4 decimals, empty cells where MAE does not apply)."""
    cells = results.astype(object).where(results.notna(), None)
    return cells.to_markdown(index=False, floatfmt=f".{DECIMALS}f", missingval="")

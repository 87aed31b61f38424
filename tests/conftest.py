"""Shared fixtures: the repository root and the shared data mirror (skipped when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def find_mirror() -> Path | None:
    """`$NASFLOW_MIRROR`, else `../shared/data` beside the repository, else None."""
    candidates = [os.environ.get("NASFLOW_MIRROR"), REPO_ROOT.parent / "shared" / "data"]
    for candidate in candidates:
        if candidate and Path(candidate).is_dir():
            return Path(candidate).resolve()
    return None


@pytest.fixture
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture
def mirror() -> Path:
    """The shared data folder; tests using it are skipped cleanly when it is absent."""
    found = find_mirror()
    if found is None:
        pytest.skip("shared data not found (set NASFLOW_MIRROR or place ../shared/data)")
    return found

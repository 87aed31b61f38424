"""Resumable search state: one JSON file in a state folder, tied to a fingerprint of the inputs.

A state written for other inputs (settings, schedule, constraints, space, predictors) is refused
with a message naming what differs, so a stale folder never silently changes a search.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nasflow.core.errors import NasflowError
from nasflow.core.io import one_line, write_text_atomic

STATE_FILE = "search_state.json"
STATE_VERSION = 1


class SearchStateError(NasflowError):
    """A search state folder cannot be used for this run."""


def fingerprint(inputs: dict[str, Any]) -> str:
    """Stable hash of JSON-serialisable run inputs."""
    text = json.dumps(inputs, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    """`key: old -> new` for every differing leaf of two JSON values."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(set(old) | set(new)):
            out.extend(differences(old.get(key), new.get(key), f"{prefix}{key}."))
        return out
    return [] if old == new else [f"{prefix.rstrip('.')}: {old!r} -> {new!r}"]


def rng_to_json(rng: random.Random) -> list[Any]:
    """`rng.getstate()` as JSON-able lists."""
    version, internal, gauss_next = rng.getstate()
    return [version, list(internal), gauss_next]


def rng_from_json(data: list[Any]) -> random.Random:
    """A generator in the state `rng_to_json` saved."""
    version, internal, gauss_next = data
    rng = random.Random()
    rng.setstate((version, tuple(internal), gauss_next))
    return rng


class StateFolder:
    """Saves and restores search state under `path`, guarded by the inputs' fingerprint."""

    def __init__(self, path: str | Path, inputs: dict[str, Any]) -> None:
        self.path = Path(path)
        # Normalise through JSON so saved and fresh inputs compare equal (tuples -> lists).
        self.inputs = json.loads(json.dumps(inputs, sort_keys=True, default=str))
        self.key = fingerprint(self.inputs)

    @property
    def state_file(self) -> Path:
        return self.path / STATE_FILE

    def load(self) -> dict[str, Any] | None:
        """The saved state, or None when there is none; refuses a state of other inputs."""
        if not self.state_file.is_file():
            return None
        try:
            state = json.loads(self.state_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise SearchStateError(
                f"{self.state_file}: unreadable search state ({error}); delete the folder "
                "(or pass --fresh) to start over"
            ) from None
        if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
            raise SearchStateError(
                f"{self.state_file}: not a version-{STATE_VERSION} search state; delete the "
                "folder (or pass --fresh) to start over"
            )
        if state.get("fingerprint") != self.key:
            diff = differences(state.get("inputs"), self.inputs)
            shown = "; ".join(diff[:6]) + (f"; ... ({len(diff)} in all)" if len(diff) > 6 else "")
            raise SearchStateError(
                f"{self.path}: the resumable search state was written for different inputs "
                f"({shown or 'fingerprint differs'}). Delete the folder (or pass --fresh) to "
                "start over."
            )
        return state

    @contextlib.contextmanager
    def restoring(self) -> Iterator[None]:
        """Around restoring a loaded state: a missing key or a value of the wrong kind (a state
        edited by hand, or written by another version) becomes one line naming the file."""
        try:
            yield
        except SearchStateError as error:
            if str(self.state_file) in str(error):
                raise
            raise SearchStateError(f"{self.state_file}: {error}") from None
        except KeyError as error:
            raise SearchStateError(
                f"{self.state_file}: the search state lacks key {error}; delete the folder (or "
                "pass --fresh) to start over"
            ) from None
        except (AttributeError, IndexError, TypeError, ValueError) as error:
            raise SearchStateError(
                f"{self.state_file}: the search state holds a value of the wrong kind "
                f"({one_line(error)}); delete the folder (or pass --fresh) to start over"
            ) from None

    def save(self, state: dict[str, Any]) -> None:
        """Write `state` atomically (a kill mid-save leaves the previous state intact)."""
        payload = {
            "version": STATE_VERSION,
            "fingerprint": self.key,
            "inputs": self.inputs,
            **state,
        }
        write_text_atomic(self.state_file, json.dumps(payload, separators=(",", ":")) + "\n")

    def clear(self) -> None:
        """Remove the saved state (for `--fresh`)."""
        self.state_file.unlink(missing_ok=True)

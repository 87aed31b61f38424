"""Resumable training state: one file in a state folder, tied to a fingerprint of the inputs.

The state folder lives outside the rule's declared outputs (Snakemake deletes those before a
job runs). A state written for different inputs (data, settings, architecture, model) is refused
with a message that names what differs, so a stale folder never silently contaminates a run.

`state.pt` is read with `weights_only=True` (the folder comes from the command line, so a crafted
pickle there must not run code): it holds only tensors and plain data, the RNG states included.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nasflow.core.errors import NasflowError
from nasflow.core.io import atomic_path, load_torch, write_json_atomic

STATE_FILE = "state.pt"
INPUTS_FILE = "inputs.json"


class TrainStateError(NasflowError):
    """A state folder cannot be used for this run."""


def fingerprint(inputs: dict[str, Any]) -> str:
    """Stable hash of the JSON-serialisable run inputs."""
    text = json.dumps(inputs, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    keys = sorted(set(old) | set(new))
    out: list[str] = []
    for key in keys:
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out.extend(_differences(a, b, f"{prefix}{key}."))
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return out


def rng_state() -> dict[str, Any]:
    """Every RNG the training loop draws from, as tensors and plain data (no numpy arrays, so
    that `torch.load(weights_only=True)` reads it back)."""
    version, internal, gauss_next = random.getstate()
    numpy_state = np.random.get_state(legacy=False)
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": [version, list(internal), gauss_next],
        "numpy": {
            "bit_generator": numpy_state["bit_generator"],
            "key": [int(v) for v in numpy_state["state"]["key"]],
            "pos": int(numpy_state["state"]["pos"]),
            "has_gauss": int(numpy_state["has_gauss"]),
            "gauss": float(numpy_state["gauss"]),
        },
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    saved = state["numpy"]
    if isinstance(saved, dict) and "key" in saved:
        np.random.set_state(
            {
                "bit_generator": saved["bit_generator"],
                "state": {"key": np.asarray(saved["key"], dtype=np.uint32), "pos": saved["pos"]},
                "has_gauss": saved["has_gauss"],
                "gauss": saved["gauss"],
            }
        )
    else:  # a state saved before the RNG states were plain data
        np.random.set_state(saved)
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _legacy_numpy_types() -> list[Any]:
    """The numpy types of `np.random.get_state()`'s array, which states saved before the RNG
    states were plain data hold: rebuilt as data (no code), so older folders still resume."""
    multiarray = getattr(np, "_core", None) or np.core
    return [
        multiarray.multiarray._reconstruct,
        np.ndarray,
        np.dtype,
        type(np.dtype(np.uint32)),
    ]


class StateFolder:
    """Saves and restores training state under `path`, guarded by the inputs' fingerprint."""

    def __init__(self, path: str | Path, inputs: dict[str, Any]):
        self.path = Path(path)
        self.inputs = inputs
        self.key = fingerprint(inputs)

    @property
    def state_file(self) -> Path:
        return self.path / STATE_FILE

    def check(self) -> None:
        """Refuse a folder written for other inputs (names the differing keys)."""
        inputs_file = self.path / INPUTS_FILE
        if not inputs_file.is_file():
            if self.state_file.exists():
                raise TrainStateError(f"{self.path}: {STATE_FILE} without {INPUTS_FILE}")
            return
        try:
            saved = json.loads(inputs_file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise TrainStateError(f"{inputs_file}: unreadable ({error})") from None
        if fingerprint(saved) != self.key:
            diff = _differences(saved, self.inputs)
            shown = "; ".join(diff[:6]) + (f"; ... ({len(diff)} in all)" if len(diff) > 6 else "")
            raise TrainStateError(
                f"{self.path}: resumable state was written for different inputs ({shown}). "
                "Delete the folder (or pass --fresh) to start over."
            )

    def load(self, required: Iterable[str] = ()) -> dict[str, Any] | None:
        """The saved state, or None when there is none yet.

        Read with `weights_only=True`: a file that needs any Python object beyond tensors and
        plain data (a crafted pickle) is refused before anything in it runs. A state that is
        not a dict, or lacks any of the `required` keys, is refused naming the missing keys.
        """
        self.check()
        if not self.state_file.is_file():
            return None
        hint = "delete the folder (or pass --fresh) to start over"
        state = load_torch(
            self.state_file,
            "resumable training state",
            error=TrainStateError,
            allow=_legacy_numpy_types(),
            hint=hint,
        )
        if not isinstance(state, dict):
            raise TrainStateError(
                f"{self.state_file}: not a resumable state (a {type(state).__name__}, expected "
                f"a dict); {hint}"
            )
        missing = ", ".join(key for key in required if key not in state)
        if missing:
            raise TrainStateError(f"{self.state_file}: the resumable state lacks {missing}; {hint}")
        return state

    def save(self, state: dict[str, Any]) -> None:
        """Write the state atomically (a kill mid-save leaves the previous state intact)."""
        self.path.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.path / INPUTS_FILE, self.inputs)
        with atomic_path(self.state_file) as tmp:
            torch.save(state, tmp)

    def clear(self) -> None:
        """Remove saved state (for `--fresh`)."""
        for name in (STATE_FILE, INPUTS_FILE):
            (self.path / name).unlink(missing_ok=True)
        snapshots = self.path / "snapshots"
        if snapshots.is_dir():
            for file in snapshots.glob("*.pt"):
                file.unlink()

"""Resumable state: one file in a state folder, tied to a fingerprint of the inputs.

Two payloads share one `StateFolder`: `torch` (training, latency datasets: `state.pt` beside
`inputs.json`) and `json` (searches: `search_state.json`, the inputs and their fingerprint
inside). The state folder lives outside the rule's declared outputs (Snakemake deletes those
before a job runs). A state written for different inputs (data, settings, architecture, model,
schedule, constraints, space, predictors) is refused with a message that names what differs, so
a stale folder never silently contaminates a run.

`state.pt` is read with `weights_only=True` (the folder comes from the command line, so a crafted
pickle there must not run code): it holds only tensors and plain data, the RNG states included.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from nasflow.core.errors import NasflowError
from nasflow.core.io import atomic_path, load_torch, one_line, write_json_atomic, write_text_atomic

STATE_FILE = "state.pt"
INPUTS_FILE = "inputs.json"
SEARCH_STATE_FILE = "search_state.json"
SEARCH_STATE_VERSION = 1
FRESH = "delete the folder (or pass --fresh) to start over"


class TrainStateError(NasflowError):
    """A state folder cannot be used for this run."""


class SearchStateError(NasflowError):
    """A search state folder cannot be used for this run."""


def fingerprint(inputs: dict[str, Any]) -> str:
    """Stable hash of the JSON-serialisable run inputs (16 hex digits)."""
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


def _shown(diff: list[str]) -> str:
    return "; ".join(diff[:6]) + (f"; ... ({len(diff)} in all)" if len(diff) > 6 else "")


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
    """Saves and restores state under `path`, guarded by the inputs' fingerprint.

    `payload="torch"`: `state.pt` (tensors and plain data) beside `inputs.json`, refused with
    `TrainStateError`. `payload="json"`: one `search_state.json` holding the version, the
    fingerprint, the inputs and the state, refused with `SearchStateError`.
    """

    def __init__(
        self, path: str | Path, inputs: dict[str, Any], payload: Literal["torch", "json"] = "torch"
    ) -> None:
        if payload not in ("torch", "json"):
            raise ValueError(f"payload must be 'torch' or 'json', got {payload!r}")
        self.path = Path(path)
        self.payload = payload
        self.error: type[NasflowError] = TrainStateError if payload == "torch" else SearchStateError
        if payload == "json":
            # Normalise through JSON so saved and fresh inputs compare equal (tuples -> lists).
            inputs = json.loads(json.dumps(inputs, sort_keys=True, default=str))
        self.inputs = inputs
        self.key = fingerprint(inputs)

    @property
    def state_file(self) -> Path:
        return self.path / (STATE_FILE if self.payload == "torch" else SEARCH_STATE_FILE)

    def check(self) -> None:
        """Refuse a torch folder written for other inputs (names the differing keys); a JSON
        state is checked as it is loaded."""
        if self.payload == "json":
            return
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
            raise TrainStateError(
                f"{self.path}: resumable state was written for different inputs "
                f"({_shown(differences(saved, self.inputs))}). "
                "Delete the folder (or pass --fresh) to start over."
            )

    def load(self, required: Iterable[str] = ()) -> dict[str, Any] | None:
        """The saved state, or None when there is none yet.

        Torch: read with `weights_only=True`: a file that needs any Python object beyond tensors
        and plain data (a crafted pickle) is refused before anything in it runs. A state that is
        not a dict, or lacks any of the `required` keys, is refused naming the missing keys.
        JSON: a state of other inputs (or another version) is refused.
        """
        if self.payload == "json":
            return self._load_json()
        self.check()
        if not self.state_file.is_file():
            return None
        state = load_torch(
            self.state_file,
            "resumable training state",
            error=TrainStateError,
            allow=_legacy_numpy_types(),
            hint=FRESH,
        )
        if not isinstance(state, dict):
            raise TrainStateError(
                f"{self.state_file}: not a resumable state (a {type(state).__name__}, expected "
                f"a dict); {FRESH}"
            )
        missing = ", ".join(key for key in required if key not in state)
        if missing:
            raise TrainStateError(
                f"{self.state_file}: the resumable state lacks {missing}; {FRESH}"
            )
        return state

    def _load_json(self) -> dict[str, Any] | None:
        if not self.state_file.is_file():
            return None
        try:
            state = json.loads(self.state_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise SearchStateError(
                f"{self.state_file}: unreadable search state ({error}); {FRESH}"
            ) from None
        if not isinstance(state, dict) or state.get("version") != SEARCH_STATE_VERSION:
            raise SearchStateError(
                f"{self.state_file}: not a version-{SEARCH_STATE_VERSION} search state; {FRESH}"
            )
        if state.get("fingerprint") != self.key:
            shown = _shown(differences(state.get("inputs"), self.inputs))
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
        except self.error as error:
            if str(self.state_file) in str(error):
                raise
            raise self.error(f"{self.state_file}: {error}") from None
        except KeyError as error:
            raise self.error(
                f"{self.state_file}: the search state lacks key {error}; {FRESH}"
            ) from None
        except (AttributeError, IndexError, TypeError, ValueError) as error:
            raise self.error(
                f"{self.state_file}: the search state holds a value of the wrong kind "
                f"({one_line(error)}); {FRESH}"
            ) from None

    def save(self, state: dict[str, Any]) -> None:
        """Write the state atomically (a kill mid-save leaves the previous state intact)."""
        if self.payload == "json":
            payload = {
                "version": SEARCH_STATE_VERSION,
                "fingerprint": self.key,
                "inputs": self.inputs,
                **state,
            }
            write_text_atomic(self.state_file, json.dumps(payload, separators=(",", ":")) + "\n")
            return
        self.path.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.path / INPUTS_FILE, self.inputs)
        with atomic_path(self.state_file) as tmp:
            torch.save(state, tmp)

    def clear(self) -> None:
        """Remove saved state (for `--fresh`)."""
        if self.payload == "json":
            self.state_file.unlink(missing_ok=True)
            return
        for name in (STATE_FILE, INPUTS_FILE):
            (self.path / name).unlink(missing_ok=True)
        snapshots = self.path / "snapshots"
        if snapshots.is_dir():
            for file in snapshots.glob("*.pt"):
                file.unlink()

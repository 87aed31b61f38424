"""The latency dataset: N sampled architectures measured on this device, one CSV row each.

Architectures are drawn with a seed from the search space widened as HAT does (one more, smaller
FFN and head choice; `SearchSpace.widened`), or from the search space itself. Each is allocated
as a dense model with random weights (latency does not depend on the weights) and measured with
the configured backend and protocol.

On a machine whose speed drifts (a shared VM), `passes` > 1 measures every architecture
several times, each pass in another seeded order, and keeps the median per timing column.

With `drift_correction`, each measurement is followed by one of a fixed reference architecture
and scaled by the reference's speed at that moment (`drift_corrected`); under the robust
protocol the reference is timed inside every round of the architecture's measurement instead.

`protocol` is HAT's trimmed mean (`hat`) or the load-robust estimate (`robust`,
`nasflow.efficiency.robust`); `measure_with` measures one model under a settings object, so the
dataset and the final models' measurement (`nasflow latency measure`) share one protocol. The
protocol is recorded in the meta JSON, in every state row (with its retries) and in the CSV's
`protocol` and `retries` columns.

Resumable: every measured row is appended (and flushed) to `rows.jsonl` in a state folder
outside the rule's outputs, guarded by a fingerprint of the settings. A killed run keeps its rows
and measures only the rest; the CSV is written atomically once all rows exist.
"""

from __future__ import annotations

import json
import os
import random
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from nasflow.core.errors import ConfigError, DataError
from nasflow.core.io import atomic_path, read_state_rows, write_json_atomic
from nasflow.efficiency.robust import RobustSettings, check_protocol, pinned
from nasflow.space.hat import LATENCY_FEATURE_NAMES, Arch, SearchSpace, get_space

ROWS_FILE = "rows.jsonl"
TIMING_COLUMNS = ("encoder_ms", "decoder_ms", "total_ms", "encoder_std_ms", "decoder_std_ms")
DATASET_COLUMNS = ("arch_id", "arch", *LATENCY_FEATURE_NAMES, *TIMING_COLUMNS)
PROTOCOL_COLUMNS = ("protocol", "retries")  # written, not required (older datasets lack them)
SAMPLINGS = ("wide", "search")


@dataclass(frozen=True)
class DatasetSettings:
    """What a latency dataset depends on (its state fingerprint)."""

    space: str
    size: int = 200
    seed: int = 1
    sampling: str = "wide"
    backend: str = "onnxruntime"
    device: str = "cpu"
    threads: int = 1
    vocab_size: int = 8000
    length: int | None = None
    beam: int = 5
    warmup: int = 5
    runs: int = 20
    passes: int = 1
    drift_correction: bool = False
    protocol: str = "hat"
    robust: RobustSettings = field(default_factory=RobustSettings)

    def __post_init__(self) -> None:
        from nasflow.efficiency.latency import check_backend

        check_backend(self.backend)
        check_protocol(self.protocol)
        if not isinstance(self.robust, RobustSettings):
            object.__setattr__(self, "robust", RobustSettings.from_mapping(self.robust))
        if self.sampling not in SAMPLINGS:
            raise ConfigError(
                f"latency sampling must be one of {list(SAMPLINGS)}, got {self.sampling!r}"
            )
        if self.passes < 1:
            raise ConfigError(f"latency passes must be >= 1, got {self.passes}")
        if self.size < 1:
            raise ConfigError(f"latency dataset size must be >= 1, got {self.size}")
        if self.device not in ("cpu", "cuda"):
            raise ConfigError(f"latency device must be cpu or cuda, got {self.device!r}")
        get_space(self.space)

    @property
    def sampling_space(self) -> SearchSpace:
        space = get_space(self.space)
        return space.widened() if self.sampling == "wide" else space

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def fingerprint_inputs(self) -> dict[str, Any]:
        """What the state folder is tied to: `to_dict`, without the protocol keys under HAT's
        protocol (so that states written before the protocol existed still resume)."""
        data = self.to_dict()
        if self.protocol == "hat":
            del data["protocol"], data["robust"]
        return data

    def protocol_record(self, pinned_cores: list[int] | None = None) -> dict[str, Any]:
        """The measurement protocol as recorded with results (meta JSON, measure output)."""
        record: dict[str, Any] = {"name": self.protocol, "warmup": self.warmup, "runs": self.runs}
        if self.protocol == "robust":
            record.update(self.robust.to_dict(), pinned_cores=pinned_cores)
        return record


def measure_with(
    model: Any, settings: DatasetSettings, reference: ReferenceProbe | None = None
) -> Any:
    """`LatencyResult` of `model`'s current architecture under `settings`' backend and protocol
    (the one call of both the dataset and the final models' measurement); with a `reference`
    and the robust protocol, the reference is timed inside every round (`reference_ms`)."""
    from nasflow.efficiency.latency import measure

    parts = reference.parts() if reference is not None and settings.protocol == "robust" else None
    return measure(
        model,
        backend=settings.backend,
        length=settings.length,
        beam=settings.beam,
        warmup=settings.warmup,
        runs=settings.runs,
        threads=settings.threads,
        protocol=settings.protocol,
        robust=settings.robust,
        reference=parts,
    )


def measure_like_dataset(
    model: Any, settings: DatasetSettings, scratch: Path, meta: dict[str, Any] | None
) -> tuple[Any, dict[str, Any]]:
    """`measure_with` for a model measured outside the dataset (the final models), labelled as
    the dataset labels its rows: with `drift_correction`, the reference architecture is timed
    alongside and the timings scaled by `reference_typical_ms` of the dataset's `meta` over the
    reference now. Returns the result and what was recorded about the scaling."""
    from dataclasses import replace

    if not settings.drift_correction:
        return measure_with(model, settings), {}
    probe = ReferenceProbe(settings, scratch / "reference")
    result = measure_with(model, settings, probe)
    reference = result.reference_ms or probe()
    typical = (meta or {}).get("reference_typical_ms")
    extra: dict[str, Any] = {"reference_ms": reference, "raw_total_ms": result.total_ms}
    if typical is None:
        extra["drift_factor"] = None  # a dataset measured before its meta held the reference
        return result, extra
    factor = float(typical) / reference
    extra.update(drift_factor=factor, reference_typical_ms=float(typical))
    scaled = {name: getattr(result, name) * factor for name in TIMING_COLUMNS if name != "total_ms"}
    return replace(result, **scaled), extra


def sample_archs(settings: DatasetSettings) -> list[Arch]:
    """The dataset's architectures, in measurement order (seeded, distinct)."""
    return settings.sampling_space.sample_unique(settings.size, seed=settings.seed)


def dataset_row(arch: Arch, space: SearchSpace, timing: dict[str, float]) -> dict[str, Any]:
    """One CSV row: id, arch JSON, raw features, timings."""
    features = dict(zip(LATENCY_FEATURE_NAMES, space.latency_raw_features(arch), strict=True))
    return {"arch_id": arch.id, "arch": arch.to_json(), **features, **timing}


Key = tuple[str, int]  # (arch id, pass)


def read_rows(path: Path) -> dict[Key, dict[str, Any]]:
    """Rows already measured, by (arch id, pass). A truncated last line (a kill mid-write) is
    dropped from the file too, so that the next row starts on a line of its own; any other
    damaged row is refused naming the file and the line (`nasflow.core.io.read_state_rows`)."""
    hint = "delete the state folder (or pass --fresh) to measure again"
    rows: dict[Key, dict[str, Any]] = {}
    for number, row in read_state_rows(path, "latency measurement", ("arch_id",), hint):
        try:
            rows[(str(row["arch_id"]), int(row.get("pass", 0)))] = row
        except (TypeError, ValueError):
            raise DataError(
                f"{path}:{number}: the latency measurement row's pass is {row.get('pass')!r}, "
                f"not a number; {hint}"
            ) from None
    return rows


def _append_row(path: Path, row: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(row, sort_keys=True) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def pass_order(archs: list[Arch], settings: DatasetSettings, index: int) -> list[Arch]:
    """Measurement order of pass `index`: the sampling order first, then seeded shuffles, so
    a slow spell of the machine hits different architectures in every pass."""
    if index == 0:
        return list(archs)
    order = list(archs)
    random.Random(f"{settings.seed}-pass-{index}").shuffle(order)
    return order


class ReferenceProbe:
    """Times a fixed reference architecture (the search space's smallest) with sessions or
    model kept open, to measure how fast the machine runs at the moment."""

    def __init__(self, settings: DatasetSettings, folder: Path):
        import torch

        from nasflow.core.ort import ort_session
        from nasflow.efficiency.onnx_export import export_onnx
        from nasflow.model import SuperTransformer

        self.settings = settings
        arch = get_space(settings.space).smallest()
        model = SuperTransformer(settings.space, settings.vocab_size, layout=arch)
        self.model = model.to(torch.device(settings.device)).eval()
        self.sessions = None
        if settings.backend == "onnxruntime":
            self.exported = export_onnx(self.model, folder)
            self.sessions = tuple(
                ort_session(path, settings.threads, settings.device)
                for path in (self.exported.encoder, self.exported.decoder)
            )

    def parts(self) -> Any:
        """The reference's timed parts (`nasflow.efficiency.latency.Parts`), for robust rounds."""
        from nasflow.efficiency.latency import onnx_parts, torch_parts

        s = self.settings
        length = s.length or get_space(s.space).measure_len
        if self.sessions is None:
            return torch_parts(self.model, length, s.beam)
        return onnx_parts(self.exported, self.sessions, length, s.beam)

    def __call__(self) -> float:
        """Total latency (ms) of the reference architecture now, under the settings' protocol."""
        from nasflow.efficiency.latency import measure_onnx, measure_torch

        s = self.settings
        protocol = {
            "beam": s.beam,
            "warmup": s.warmup,
            "runs": s.runs,
            "protocol": s.protocol,
            "robust": s.robust,
        }
        if self.sessions is None:
            return measure_torch(self.model, length=s.length, **protocol).total_ms
        length = s.length or get_space(s.space).measure_len
        result = measure_onnx(
            self.exported, length=length, threads=s.threads, sessions=self.sessions, **protocol
        )
        return result.total_ms


def drift_corrected(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows with timings scaled by `median(reference) / reference` of their own moment.

    On a machine whose speed drifts (a shared VM has slow spells of seconds, 40% slower), every
    architecture's measurement is followed by one of a fixed reference architecture; dividing by
    the reference's relative speed at that moment removes the machine's state from the label.
    """
    typical = statistics.median(row["reference_ms"] for row in rows)
    corrected = []
    for row in rows:
        factor = typical / row["reference_ms"]
        corrected.append({**row, **{name: row[name] * factor for name in TIMING_COLUMNS}})
    return corrected


def median_row(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The per-pass rows of one architecture merged: medians of the timings over passes."""
    merged = dict(rows[0])
    for name in TIMING_COLUMNS:
        merged[name] = statistics.median(row[name] for row in rows)
    merged["total_ms"] = merged["encoder_ms"] + merged["decoder_ms"]
    merged["retries"] = sum(int(row.get("retries", 0)) for row in rows)
    merged["protocol"] = rows[0].get("protocol", {}).get("name", "hat")
    return merged


def collect_latency_dataset(
    settings: DatasetSettings,
    out_csv: str | Path,
    state_dir: str | Path,
    *,
    fresh: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """Measure every (architecture, pass) not yet in `state_dir` and write `out_csv`."""
    import torch

    from nasflow.core.state import INPUTS_FILE, StateFolder
    from nasflow.model import SuperTransformer

    state = StateFolder(state_dir, {"latency_dataset": settings.fingerprint_inputs()})
    rows_path = state.path / ROWS_FILE
    if fresh:
        state.clear()
        rows_path.unlink(missing_ok=True)
    state.check()
    done = read_rows(rows_path)  # a damaged state is refused before anything is written
    state.path.mkdir(parents=True, exist_ok=True)
    write_json_atomic(state.path / INPUTS_FILE, state.inputs)
    archs = sample_archs(settings)
    space = settings.sampling_space
    device = torch.device(settings.device)
    torch.set_num_threads(settings.threads)
    total, count = len(archs) * settings.passes, 0
    pin = settings.protocol == "robust" and settings.robust.pin
    with pinned(settings.threads, pin) as cores:
        probe = (
            ReferenceProbe(settings, state.path / "reference")
            if settings.drift_correction
            else None
        )
        protocol = settings.protocol_record(cores)
        for index in range(settings.passes):
            for arch in pass_order(archs, settings, index):
                if (arch.id, index) not in done:
                    model = SuperTransformer(space, settings.vocab_size, layout=arch).to(device)
                    result = measure_with(model, settings, probe)
                    row = _measured_row(arch, space, result, index, probe, protocol)
                    _append_row(rows_path, row)
                    done[(arch.id, index)] = row
                count += 1
                if progress is not None:
                    progress(count, total)
    rows = {key: done[key] for key in ((a.id, i) for a in archs for i in range(settings.passes))}
    if settings.drift_correction:
        rows = dict(zip(rows, drift_corrected(list(rows.values())), strict=True))
    merged = [median_row([rows[(a.id, i)] for i in range(settings.passes)]) for a in archs]
    frame = pd.DataFrame(merged, columns=[*DATASET_COLUMNS, *PROTOCOL_COLUMNS])
    out_csv = Path(out_csv)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_csv) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6g")
    meta = {
        "settings": settings.to_dict(),
        "protocol": protocol,
        "rows": len(frame),
        "retries": int(frame["retries"].sum()),
        "unstable_rows": sum(not rows[key].get("protocol", {}).get("stable", True) for key in rows),
        "environment": merged[-1].get("environment"),
    }
    if settings.drift_correction:  # what a final model's reference is scaled to
        meta["reference_typical_ms"] = statistics.median(r["reference_ms"] for r in done.values())
    write_json_atomic(meta_path(out_csv), meta)
    return frame


def _measured_row(
    arch: Arch,
    space: SearchSpace,
    result: Any,
    index: int,
    probe: ReferenceProbe | None,
    protocol: dict[str, Any],
) -> dict[str, Any]:
    """The state row of one measurement: timings, pass, reference, protocol, environment."""
    timings = {name: getattr(result, name) for name in TIMING_COLUMNS}
    row = dataset_row(arch, space, timings)
    row["pass"] = index
    if probe is not None:
        row["reference_ms"] = result.reference_ms if result.reference_ms else probe()
    row["protocol"] = {**protocol, **result.protocol}
    row["retries"] = int(result.protocol.get("retries", 0))
    row["environment"] = result.environment  # kept in rows.jsonl, not in the CSV
    return row


def meta_path(csv_path: str | Path) -> Path:
    """The JSON beside a dataset CSV: settings and the measuring environment (threads,
    device name, backend versions)."""
    return Path(csv_path).with_suffix(".json")

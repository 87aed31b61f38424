"""The LTS search's evaluator: decoder parameters in closed form plus latency and peak memory
measured on this device (`nasflow.lts.measure`).

`LTSEvaluator(text, settings).evaluate(archs)` measures each architecture in a fresh worker
process on prompts of the text set `text` (`nasflow.lts.text`) and returns, per architecture,
`LTSMeasurement.METRICS`: `decoder_params`, `total_params`, `latency_ms`, `memory_mb` (the search
objectives are `decoder_params`, `latency_ms`, `memory_mb`) and the text-prediction figures
(`prompt_ms`, `token_ms`, `p95_ms`, `latency_char_ms_per_token`, `p95_latency_char_ms_per_token`,
`chars_per_token`, `ms_per_char`, `p95_ms_per_char`; definitions in `nasflow.lts.measure`).
`device_key()` and `protocol()` key a `MeasurementCache` so that no architecture is measured
twice on the same device under the same protocol, text set and backbone (`backbone`: `gpt2`,
the default, or `transformer-xl`; pass the space's, `LTSEvaluator(text, settings,
backbone=space.backbone)`; the Pareto search refuses an evaluator of another backbone):

    evaluator = LTSEvaluator(load_text_set("results/exp/lts/text"), settings)
    cache = evaluator.measurement_cache("runs/lts/measurements.sqlite")
    run_pareto_search(space, evaluator, cache, ...)
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from nasflow.core.errors import ConfigError
from nasflow.lts.measure import (
    LTSMeasurement,
    LTSMeasureSettings,
    MeasureError,
    PersistentWorker,
    backend_version,
    device_description,
    measure_arch,
)
from nasflow.lts.text import TextSet
from nasflow.space.gpt import GPTArch
from nasflow.space.gpt_params import check_backbone

__all__ = ["LTSEvaluator"]


class LTSEvaluator:
    """Measures GPT-2-style decoders for the Pareto search (the search's `Evaluator` protocol).

    Args:
        text: the text set the prompts and characters per token come from.
        settings: the measurement protocol (default `LTSMeasureSettings()`).
        workdir: where ONNX exports go. With `keep_exports=False` (default) each export lives
            in a scratch folder under `workdir` (the system temporary folder when `None`) that
            is deleted right after its measurement (a full text-prediction search would
            otherwise keep gigabytes per candidate); with `keep_exports=True` they are kept in
            `<workdir>/<arch id>/` and reused.
        on_measured: called with every `LTSMeasurement` as soon as it is made (logging,
            keeping the full records with samples and environment).
        backbone: the decoder family measured (`gpt2` or `transformer-xl`); a non-GPT-2
            backbone enters `name` and `protocol()`.

    With `settings.worker = "persistent"` one `PersistentWorker` process measures every
    architecture (`close()` or a `with` block ends it); with `settings.graphs = "template"`
    nothing is exported to `workdir`.

    Attributes: `name` (enters the search's resume fingerprint), `measured` (architectures
    measured by this evaluator so far), `last` (the `LTSMeasurement`s of the last `evaluate`).
    """

    def __init__(
        self,
        text: TextSet,
        settings: LTSMeasureSettings | None = None,
        workdir: str | Path | None = None,
        *,
        keep_exports: bool = False,
        on_measured: Callable[[LTSMeasurement], None] | None = None,
        backbone: str = "gpt2",
    ) -> None:
        self.settings = settings or LTSMeasureSettings()
        if not isinstance(self.settings, LTSMeasureSettings):
            raise ConfigError(
                f"LTSEvaluator needs LTSMeasureSettings, got {type(self.settings).__name__}"
            )
        if not isinstance(text, TextSet):
            raise ConfigError(f"LTSEvaluator needs a TextSet, got {type(text).__name__}")
        self.text = text
        self.settings.prompts(text)  # fails now, not at the first measurement
        if keep_exports and workdir is None:
            raise ConfigError("keep_exports needs a workdir to keep the ONNX exports in")
        self.workdir = None if workdir is None else Path(workdir)
        self.keep_exports = keep_exports
        self.on_measured = on_measured
        self.backbone = check_backbone(backbone, "LTSEvaluator backbone")
        self.name = f"lts-measure-{self.settings.backend}"
        if self.backbone != "gpt2":
            self.name += f"-{self.backbone}"
        self.measured = 0
        self.last: list[LTSMeasurement] = []
        self.worker = (
            PersistentWorker(self.settings) if self.settings.worker == "persistent" else None
        )
        self.runner = None if self.worker is None else self.worker.run

    # ---- cache keys -----------------------------------------------------------------------------
    def device_key(self) -> str:
        """Where the figures are valid: device type and name, backend and its version, threads,
        e.g. `cpu:AMD EPYC 7763|onnxruntime=1.32.0|threads=1`."""
        s = self.settings
        return (
            f"{s.device}:{device_description(s)}|{s.backend}={backend_version(s.backend)}"
            f"|threads={s.threads}"
        )

    def protocol(self) -> str:
        """The fingerprint of the settings, the protocol version, the text set and a non-GPT-2
        backbone."""
        return self.settings.fingerprint(self.text, self.backbone)

    def measurement_cache(self, path: str | Path) -> Any:
        """A `MeasurementCache` at `path` keyed by `device_key()` and `protocol()`."""
        from nasflow.lts.search import MeasurementCache

        return MeasurementCache(path, self.device_key(), self.protocol())

    # ---- measuring ------------------------------------------------------------------------------
    def measure(self, arch: GPTArch) -> LTSMeasurement:
        """Measure one architecture (no cache)."""
        if not isinstance(arch, GPTArch):
            raise MeasureError(f"LTSEvaluator measures GPTArch values, got {type(arch).__name__}")
        backbone, runner = self.backbone, self.runner
        if self.settings.backend == "torch" or self.settings.graphs == "template":
            measurement = measure_arch(
                arch, self.text, self.settings, backbone=backbone, runner=runner
            )
        elif self.keep_exports:
            measurement = measure_arch(
                arch, self.text, self.settings, self.workdir, backbone=backbone, runner=runner
            )
        else:
            if self.workdir is not None:
                self.workdir.mkdir(parents=True, exist_ok=True)
            scratch = tempfile.mkdtemp(prefix="lts-export-", dir=self.workdir)
            try:
                measurement = measure_arch(
                    arch, self.text, self.settings, scratch, backbone=backbone, runner=runner
                )
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
        self.measured += 1
        if self.on_measured is not None:
            self.on_measured(measurement)
        return measurement

    def evaluate(self, archs: Sequence[GPTArch]) -> list[dict[str, float]]:
        """One metrics mapping per architecture, in order (see the module docstring)."""
        self.last = [self.measure(arch) for arch in archs]
        return [m.metrics() for m in self.last]

    def close(self) -> None:
        """End the persistent worker process, if any (a later measurement starts another)."""
        if self.worker is not None:
            self.worker.close()

    def __enter__(self) -> LTSEvaluator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

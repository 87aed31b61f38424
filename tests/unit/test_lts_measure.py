"""LTS on-device objectives: ONNX export (prompt + step graphs), latency/memory measurement in a
worker process, the search evaluator and its measurement cache. Tiny models, no timed asserts."""

from __future__ import annotations

import math
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from nasflow.errors import ConfigError
from nasflow.lts.evaluator import LTSEvaluator
from nasflow.lts.measure import (
    LTSMeasurement,
    LTSMeasureSettings,
    MeasureError,
    build_model,
    measure_arch,
    summarize,
)
from nasflow.lts.onnx_export import ExportedLTS, export_lts, verify_lts_export
from nasflow.lts.params import decoder_params, total_params
from nasflow.lts.search import LTS_OBJECTIVES, ParetoSettings, run_pareto_search
from nasflow.lts.space import GPTArch, get_space

TINY = GPTArch.uniform(2, 64, 128, 2)
HETERO = GPTArch(3, 64, (128, 192, 256), (2, 4, 2))  # per-layer d_inner and n_head
FAST = {"vocab_size": 100, "n_positions": 32, "prompt_tokens": 8, "new_tokens": 3}


def fast(**changes: object) -> LTSMeasureSettings:
    return LTSMeasureSettings(**{**FAST, "warmup": 1, "runs": 4, **changes})


def finite_positive(value: float) -> bool:
    return isinstance(value, float) and math.isfinite(value) and value > 0


# ---- export -----------------------------------------------------------------------------------
def test_export_matches_pytorch_over_prompt_and_steps(tmp_path: Path) -> None:
    assert get_space("lts-demo").is_valid(HETERO)
    settings = LTSMeasureSettings(vocab_size=100, n_positions=64, prompt_tokens=8)
    model = build_model(HETERO, settings)
    exported = export_lts(model, tmp_path / "x", meta={"seed": 0})
    assert exported.prompt.exists() and exported.step.exists()
    loaded = ExportedLTS.load(tmp_path / "x")
    assert loaded.arch == HETERO and loaded.vocab_size == 100
    assert loaded.meta["decoder_params"] == decoder_params(HETERO)
    assert loaded.meta["total_params"] == total_params(HETERO, 100, 64)
    assert {"torch", "onnx", "onnxruntime"} <= set(loaded.meta["versions"])
    # dynamic prompt and cache lengths, other than the export's example shapes
    assert verify_lts_export(model, loaded, prompt_len=11, steps=5) < 1e-4
    assert verify_lts_export(model, loaded, prompt_len=1, steps=3) < 1e-4
    assert not model.training


def test_build_model_is_seeded_and_keeps_global_rng() -> None:
    settings = LTSMeasureSettings(**FAST, seed=3)
    state = torch.random.get_rng_state()
    a, b = build_model(TINY, settings), build_model(TINY, settings)
    assert torch.equal(torch.random.get_rng_state(), state)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    assert not a.training


# ---- statistics -------------------------------------------------------------------------------
def test_summarize_by_hand() -> None:
    # PL = 10, 20, 30; TL = 1, 2, 3; n = 3 tokens, 2 chars/token -> E = 12, 24, 36
    out = summarize([10.0, 30.0, 20.0], [1.0, 3.0, 2.0], new_tokens=3, chars_per_token=2.0)
    assert out["prompt_ms"] == 20.0 and out["token_ms"] == 2.0
    assert out["latency_ms"] == 24.0
    assert out["p95_ms"] == pytest.approx(24.0 + 0.9 * 12.0)  # linear interpolation
    assert out["latency_per_char_ms"] == pytest.approx((20.0 + 2 * 2.0) / 6.0)
    assert out["p95_ms_per_char"] == pytest.approx(out["p95_ms"] / 6.0)


# ---- measurement ------------------------------------------------------------------------------
def check_figures(m: LTSMeasurement, settings: LTSMeasureSettings) -> None:
    n, cpt = settings.new_tokens, settings.chars_per_token
    for name in LTSMeasurement.METRICS[2:]:
        assert finite_positive(getattr(m, name)), name
    assert m.p95_ms >= m.latency_ms
    assert m.latency_per_char_ms == pytest.approx((m.prompt_ms + (n - 1) * m.token_ms) / (n * cpt))
    assert m.p95_ms_per_char == pytest.approx(m.p95_ms / (n * cpt))
    samples = m.samples
    assert len(samples["latency_ms"]) == len(samples["prompt_ms"]) == settings.runs
    assert np.allclose(
        samples["latency_ms"], np.add(samples["prompt_ms"], (n - 1) * np.array(samples["token_ms"]))
    )
    assert m.latency_ms == pytest.approx(float(np.median(samples["latency_ms"])))
    assert m.prompt_ms == pytest.approx(float(np.median(samples["prompt_ms"])))
    assert m.decoder_params == decoder_params(m_arch(m))
    assert m.peak_rss_mb >= m.loaded_mb > 0
    env = m.environment
    assert env["threads"] == settings.threads and env["device_name"] and env["backend_version"]
    if sys.platform.startswith("linux"):
        assert m.memory_method in ("vmhwm_reset", "vmhwm")


def m_arch(m: LTSMeasurement) -> GPTArch:
    return GPTArch.from_dict(m.arch)


def test_measure_onnxruntime(tmp_path: Path) -> None:
    settings = fast(chars_per_token=3.5)
    m = measure_arch(HETERO, settings, tmp_path)
    check_figures(m, settings)
    assert m.backend == "onnxruntime" and m.arch_id == HETERO.id
    assert m.environment["onnxruntime"] and m.environment["providers"] == ["CPUExecutionProvider"]
    # the export is kept under workdir/<arch id> and reused by a second call
    prompt = tmp_path / HETERO.id / "prompt.onnx"
    stamp = prompt.stat().st_mtime_ns
    again = measure_arch(HETERO, fast(runs=1, warmup=0), tmp_path)
    assert prompt.stat().st_mtime_ns == stamp and again.runs == 1
    assert set(m.metrics()) == set(LTSMeasurement.METRICS)


def test_memory_is_positive_and_grows_with_the_model() -> None:
    # Above the loaded baseline: ~1.4 MiB for TINY vs ~6.4 MiB for the wide model at a
    # 64-token prompt on this machine, stable to a few KiB over repeats (without the heap trim
    # before the baseline the wide model read ~3.0 MiB: memory freed while loading was reused).
    settings = LTSMeasureSettings(
        vocab_size=100, n_positions=80, prompt_tokens=64, new_tokens=2, warmup=1, runs=1
    )
    tiny = measure_arch(TINY, settings)
    wide = measure_arch(GPTArch.uniform(2, 512, 2048, 8), settings)
    assert tiny.memory_mb > 0 and wide.memory_mb > 0
    assert wide.memory_mb > tiny.memory_mb
    assert wide.loaded_mb > tiny.loaded_mb  # the weights are in the baseline


def test_measure_torch_backend() -> None:
    settings = fast(backend="torch", runs=3)
    m = measure_arch(TINY, settings)
    check_figures(m, settings)
    assert m.backend == "torch" and m.environment["torch_threads"] == 1


def test_measure_errors() -> None:
    with pytest.raises(MeasureError, match="GPTArch"):
        measure_arch({"n_layer": 2}, fast())  # type: ignore[arg-type]
    with pytest.raises(MeasureError, match=r"longer than measure.timeout_s = 0.01 s"):
        measure_arch(TINY, fast(backend="torch", timeout_s=0.01))


# ---- settings ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"backend": "tensorrt"}, "measure.backend"),
        ({"device": "tpu"}, "measure.device"),
        ({"device": "cuda"}, "measure.device: backend onnxruntime"),
        ({"threads": 0}, "measure.threads"),
        ({"prompt_tokens": 0}, "measure.prompt_tokens"),
        ({"new_tokens": 1}, "measure.new_tokens must be an integer >= 2"),
        ({"runs": 0}, "measure.runs"),
        ({"warmup": -1}, "measure.warmup"),
        ({"runs": 2.0}, "measure.runs"),
        ({"vocab_size": True}, "measure.vocab_size"),
        ({"chars_per_token": 0}, "measure.chars_per_token"),
        ({"chars_per_token": float("nan")}, "measure.chars_per_token"),
        ({"timeout_s": -1}, "measure.timeout_s"),
        ({"seed": "1"}, "measure.seed"),
        ({"prompt_tokens": 30, "new_tokens": 4}, "exceeds measure.n_positions (32)"),
    ],
)
def test_settings_errors_name_the_field(changes: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        LTSMeasureSettings(**{**FAST, **changes})


def test_settings_mapping_and_fingerprint() -> None:
    with pytest.raises(ConfigError, match=r"unknown measure setting.*: repeats"):
        LTSMeasureSettings.from_mapping({"repeats": 3})
    settings = LTSMeasureSettings.from_mapping({**FAST, "chars_per_token": 4})
    assert settings.chars_per_token == 4.0 and isinstance(settings.chars_per_token, float)
    assert LTSMeasureSettings.from_mapping(settings.to_dict()) == settings
    assert settings.fingerprint() == LTSMeasureSettings(**FAST).fingerprint()
    assert settings.fingerprint() == fast(runs=20, warmup=3, timeout_s=5).fingerprint()
    assert settings.fingerprint() != fast(runs=21, warmup=3).fingerprint()
    assert settings.fingerprint() != fast(runs=20, warmup=3, threads=2).fingerprint()
    assert settings.chars_per_inference == 3 * 4.0
    defaults = LTSMeasureSettings()
    assert (defaults.backend, defaults.threads, defaults.prompt_tokens) == ("onnxruntime", 1, 64)
    assert (defaults.new_tokens, defaults.chars_per_token) == (8, 4.0)


# ---- evaluator and cache ----------------------------------------------------------------------
class Counting:
    """Wraps an evaluator and counts the architectures it is asked to measure."""

    def __init__(self, inner: LTSEvaluator) -> None:
        self.inner, self.name, self.count = inner, inner.name, 0

    def evaluate(self, archs: list) -> list:
        self.count += len(archs)
        return self.inner.evaluate(archs)


def test_evaluator_through_the_measurement_cache(tmp_path: Path) -> None:
    settings = fast(runs=2)
    evaluator = LTSEvaluator(settings, tmp_path / "exports")
    key = evaluator.device_key()
    assert key.startswith("cpu:") and "|onnxruntime=" in key and key.endswith("|threads=1")
    assert evaluator.protocol() == settings.fingerprint()
    space = get_space("lts-demo")
    search = ParetoSettings(population=2, parents=2, mutations=0, crossovers=0, iterations=1)
    cache_path = tmp_path / "measurements.sqlite"

    first = Counting(evaluator)
    with evaluator.measurement_cache(cache_path) as cache:
        result = run_pareto_search(space, first, LTS_OBJECTIVES, search, cache)
        assert len(cache) == 2
    assert first.count == 2 and evaluator.measured == 2
    assert result.timing["measured"] == 2
    for candidate in result.candidates:
        metrics = candidate.metrics
        assert set(metrics) == set(LTSMeasurement.METRICS)
        assert metrics["decoder_params"] == decoder_params(candidate.arch)
        assert metrics["p95_ms"] >= metrics["latency_ms"] > 0 and metrics["memory_mb"] > 0
    assert not any((tmp_path / "exports").iterdir())  # scratch exports removed

    again = LTSEvaluator(settings, tmp_path / "exports")
    second = Counting(again)
    with again.measurement_cache(cache_path) as cache:
        repeat = run_pareto_search(space, second, LTS_OBJECTIVES, search, cache)
    assert second.count == 0 and again.measured == 0
    assert repeat.timing["cache_hits"] == 2 and repeat.timing["measured"] == 0
    assert [c.metrics for c in repeat.candidates] == [c.metrics for c in result.candidates]

    # another protocol is another cache key: nothing is reused
    other = LTSEvaluator(fast(runs=3))
    with other.measurement_cache(cache_path) as cache:
        assert len(cache) == 0


def test_evaluator_options() -> None:
    with pytest.raises(ConfigError, match="keep_exports needs a workdir"):
        LTSEvaluator(fast(), keep_exports=True)
    seen: list[LTSMeasurement] = []
    evaluator = LTSEvaluator(fast(backend="torch", runs=1, warmup=0), on_measured=seen.append)
    assert evaluator.name == "lts-measure-torch"
    with pytest.raises(MeasureError, match="GPTArch"):
        evaluator.evaluate(["not an arch"])
    assert seen == []

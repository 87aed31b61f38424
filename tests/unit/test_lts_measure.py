"""LTS on-device objectives: ONNX export (prompt + step graphs), latency/memory measurement in a
worker process on held-out prompts of varying length, the search evaluator and its measurement
cache. Tiny models, no timed asserts."""

from __future__ import annotations

import math
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from nasflow.core.errors import ConfigError
from nasflow.core.state import fingerprint
from nasflow.lts.evaluator import LTSEvaluator
from nasflow.lts.measure import (
    PROTOCOL_VERSION,
    LTSMeasurement,
    LTSMeasureSettings,
    MeasureError,
    build_model,
    measure_arch,
    summarize,
)
from nasflow.lts.model import GPTDecoder
from nasflow.lts.onnx_export import ExportedLTS, export_lts, verify_lts_export
from nasflow.lts.search import LTS_OBJECTIVES, MeasurementCache, ParetoSettings, run_pareto_search
from nasflow.lts.text import TextSet
from nasflow.space.gpt import GPTArch, get_space
from nasflow.space.gpt_params import decoder_params, total_params

TINY = GPTArch.uniform(2, 64, 128, 2)
HETERO = GPTArch(3, 64, (128, 192, 256), (2, 4, 2))  # per-layer d_inner and n_head
FAST = {"vocab_size": 100, "n_positions": 32, "prompt_tokens": 8, "new_tokens": 3}
# Held-out "text": 300 token ids below the model's vocabulary, 3.5 characters per token.
TEXT = TextSet(np.arange(300, dtype=np.int32) % 97, 1050, 97, "text-a")


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
def test_latency_char_is_the_case_study_formula_per_generated_token() -> None:
    # The case study's baseline (its Table 2): PL 47.58 ms, TL 11.78 ms; n = 8 generated tokens.
    out = summarize([47.58], [11.78], new_tokens=8, chars_per_token=4.0)
    assert out["latency_char_ms_per_token"] == pytest.approx((47.58 + 7 * 11.78) / 8)  # 16.255
    assert out["p95_latency_char_ms_per_token"] == pytest.approx(16.255)
    assert out["ms_per_char"] == pytest.approx(16.255 / 4.0)
    assert out["latency_ms"] == pytest.approx(47.58 + 7 * 11.78)
    # n = 1: the prompt latency alone; large n: tends to TL
    assert summarize([5.0], [1.0], 1, 1.0)["latency_char_ms_per_token"] == 5.0
    assert summarize([5.0], [1.0], 10_001, 1.0)["latency_char_ms_per_token"] == pytest.approx(
        1.0004
    )


def test_summarize_by_hand() -> None:
    # PL = 10, 30, 20; TL = 1, 3, 2; n = 3 -> E = 12, 36, 24; latency_char = E / 3 = 4, 12, 8
    out = summarize([10.0, 30.0, 20.0], [1.0, 3.0, 2.0], new_tokens=3, chars_per_token=2.5)
    assert out["prompt_ms"] == 20.0 and out["token_ms"] == 2.0
    assert out["latency_ms"] == 24.0
    assert out["p95_ms"] == pytest.approx(24.0 + 0.9 * 12.0)  # linear interpolation
    assert out["latency_char_ms_per_token"] == 8.0
    assert out["p95_latency_char_ms_per_token"] == pytest.approx(8.0 + 0.9 * 4.0)  # 11.6
    assert out["chars_per_token"] == 2.5
    assert out["ms_per_char"] == pytest.approx(8.0 / 2.5)
    assert out["p95_ms_per_char"] == pytest.approx(11.6 / 2.5)
    with pytest.raises(MeasureError, match="chars_per_token"):
        summarize([1.0], [1.0], 3, 0.0)


def test_p95_is_over_the_per_prompt_values() -> None:
    # 20 prompts: PL grows with the prompt (1..20 ms), TL constant 1 ms, n = 5
    pl = [float(i) for i in range(1, 21)]
    out = summarize(pl, [1.0] * 20, new_tokens=5, chars_per_token=4.0)
    latency_char = [(p + 4.0) / 5 for p in pl]
    assert out["latency_char_ms_per_token"] == pytest.approx(float(np.median(latency_char)))
    # 95th percentile of 20 values: 19th + 0.05 x (20th - 19th)
    expected = latency_char[18] + 0.05 * (latency_char[19] - latency_char[18])
    assert out["p95_latency_char_ms_per_token"] == pytest.approx(expected)  # 4.81
    assert out["p95_ms_per_char"] == pytest.approx(expected / 4.0)


# ---- measurement ------------------------------------------------------------------------------
def check_figures(m: LTSMeasurement, settings: LTSMeasureSettings, text: TextSet = TEXT) -> None:
    n, cpt = settings.new_tokens, text.chars_per_token
    for name in LTSMeasurement.METRICS[2:]:
        assert finite_positive(getattr(m, name)), name
    assert m.p95_ms >= m.latency_ms
    assert m.chars_per_token == cpt
    samples = m.samples
    latency = np.array(samples["latency_ms"])
    assert len(latency) == len(samples["prompt_ms"]) == settings.runs
    assert np.allclose(
        latency, np.add(samples["prompt_ms"], (n - 1) * np.array(samples["token_ms"]))
    )
    # latency_char per inference = E_i / n; median and P95 over the inferences
    assert m.latency_char_ms_per_token == pytest.approx(float(np.median(latency / n)))
    assert m.p95_latency_char_ms_per_token == pytest.approx(float(np.percentile(latency / n, 95)))
    assert m.ms_per_char == pytest.approx(m.latency_char_ms_per_token / cpt)
    assert m.p95_ms_per_char == pytest.approx(m.p95_ms / n / cpt)
    # every timed inference had its own held-out prompt, of the drawn lengths
    assert samples["prompt_tokens"] == [p.size for p in settings.prompts(text)]
    assert m.latency_ms == pytest.approx(float(np.median(latency)))
    assert m.prompt_ms == pytest.approx(float(np.median(samples["prompt_ms"])))
    assert m.text["fingerprint"] == text.fingerprint
    assert m.decoder_params == decoder_params(m_arch(m))
    assert m.peak_rss_mb >= m.loaded_mb > 0
    env = m.environment
    assert env["threads"] == settings.threads and env["device_name"] and env["backend_version"]
    if sys.platform.startswith("linux"):
        assert m.memory_method in ("vmhwm_reset", "vmhwm")


def m_arch(m: LTSMeasurement) -> GPTArch:
    return GPTArch.from_dict(m.arch)


def test_measure_onnxruntime(tmp_path: Path) -> None:
    settings = fast(runs=6, min_prompt_tokens=2)
    assert len(set(p.size for p in settings.prompts(TEXT))) > 1  # prompts of varying length
    m = measure_arch(HETERO, TEXT, settings, tmp_path)
    check_figures(m, settings)
    assert m.backend == "onnxruntime" and m.arch_id == HETERO.id
    assert m.environment["onnxruntime"] and m.environment["providers"] == ["CPUExecutionProvider"]
    # the export is kept under workdir/<arch id> and reused by a second call
    prompt = tmp_path / HETERO.id / "prompt.onnx"
    stamp = prompt.stat().st_mtime_ns
    again = measure_arch(HETERO, TEXT, fast(runs=1, warmup=0), tmp_path)
    assert prompt.stat().st_mtime_ns == stamp and again.runs == 1
    assert set(m.metrics()) == set(LTSMeasurement.METRICS)


def test_memory_is_positive_and_grows_with_the_model() -> None:
    # Above the loaded baseline: ~1.4 MiB for TINY vs ~6.4 MiB for the wide model at a
    # 64-token prompt on this machine, stable to a few KiB over repeats (without the heap trim
    # before the baseline the wide model read ~3.0 MiB: memory freed while loading was reused).
    settings = LTSMeasureSettings(
        vocab_size=100,
        n_positions=80,
        prompt_tokens=64,
        min_prompt_tokens=64,
        new_tokens=2,
        warmup=1,
        runs=1,
    )
    tiny = measure_arch(TINY, TEXT, settings)
    wide = measure_arch(GPTArch.uniform(2, 512, 2048, 8), TEXT, settings)
    assert tiny.memory_mb > 0 and wide.memory_mb > 0
    assert wide.memory_mb > tiny.memory_mb
    assert wide.loaded_mb > tiny.loaded_mb  # the weights are in the baseline


def test_measure_torch_backend() -> None:
    settings = fast(backend="torch", runs=3)
    m = measure_arch(TINY, TEXT, settings)
    check_figures(m, settings)
    assert m.backend == "torch" and m.environment["torch_threads"] == 1


def test_measure_errors() -> None:
    with pytest.raises(MeasureError, match="GPTArch"):
        measure_arch({"n_layer": 2}, TEXT, fast())  # type: ignore[arg-type]
    with pytest.raises(MeasureError, match=r"longer than measure.timeout_s = 0.01 s"):
        measure_arch(TINY, TEXT, fast(backend="torch", timeout_s=0.01))
    big = TextSet(np.arange(300, dtype=np.int32), 900, 300, "big")
    with pytest.raises(ConfigError, match=r"300 pieces, more than measure.vocab_size \(100\)"):
        measure_arch(TINY, big, fast())


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
        ({"min_prompt_tokens": 0}, "measure.min_prompt_tokens must be an integer in [1, "),
        ({"min_prompt_tokens": 9}, "measure.min_prompt_tokens"),
        ({"min_prompt_tokens": 2.0}, "measure.min_prompt_tokens"),
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
    with pytest.raises(ConfigError, match=r"chars_per_token is no longer a setting.*lts.text"):
        LTSMeasureSettings.from_mapping({**FAST, "chars_per_token": 4})
    settings = LTSMeasureSettings.from_mapping(FAST)
    assert settings.min_prompt_tokens == 2  # a quarter of prompt_tokens
    assert LTSMeasureSettings.from_mapping(settings.to_dict()) == settings
    key = settings.fingerprint(TEXT)
    assert key == LTSMeasureSettings(**FAST, min_prompt_tokens=2).fingerprint(TEXT)
    assert key == fast(runs=20, warmup=3, timeout_s=5).fingerprint(TEXT)
    assert key != fast(runs=21, warmup=3).fingerprint(TEXT)
    assert key != fast(runs=20, warmup=3, threads=2).fingerprint(TEXT)
    assert key != fast(runs=20, warmup=3, min_prompt_tokens=3).fingerprint(TEXT)
    other_text = TextSet(TEXT.ids, TEXT.chars, TEXT.vocab_size, "text-b")
    assert key != settings.fingerprint(other_text)  # another corpus or tokenizer
    defaults = LTSMeasureSettings()
    assert (defaults.backend, defaults.threads, defaults.prompt_tokens) == ("onnxruntime", 1, 64)
    assert (defaults.new_tokens, defaults.min_prompt_tokens, defaults.runs) == (8, 16, 20)
    assert LTSMeasureSettings(prompt_tokens=3).min_prompt_tokens == 1


def test_protocol_key_changed_with_the_real_text_protocol(tmp_path: Path) -> None:
    """Figures cached under protocol 1 (one random prompt, 4.0 assumed characters per token)
    are never returned under protocol 2."""
    assert PROTOCOL_VERSION == 2
    settings = LTSMeasureSettings(**FAST)
    protocol = settings.protocol(TEXT)
    assert protocol["protocol_version"] == 2 and protocol["text"] == "text-a"
    assert "chars_per_token" not in protocol and protocol["min_prompt_tokens"] == 2
    # protocol 1's key for the same settings: its fields, the assumed 4.0 characters per token
    old = {"protocol_version": 1, "backend": "onnxruntime", "device": "cpu", "threads": 1,
           "prompt_tokens": 8, "new_tokens": 3, "chars_per_token": 4.0, "warmup": 3, "runs": 20,
           "vocab_size": 100, "n_positions": 32, "seed": 0}  # fmt: skip
    old_key = fingerprint(old)
    evaluator = LTSEvaluator(TEXT, settings)
    assert evaluator.protocol() == settings.fingerprint(TEXT) != old_key
    path = tmp_path / "cache.sqlite"
    with MeasurementCache(path, evaluator.device_key(), old_key) as cache:
        cache.put(TINY.id, {"latency_ms": 1.0, "p95_ms_per_char": 0.1})
    with evaluator.measurement_cache(path) as cache:
        assert len(cache) == 0 and cache.get(TINY.id) is None
    with MeasurementCache(path, evaluator.device_key(), old_key) as cache:
        assert cache.get(TINY.id) == {"latency_ms": 1.0, "p95_ms_per_char": 0.1}


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
    evaluator = LTSEvaluator(TEXT, settings, tmp_path / "exports")
    key = evaluator.device_key()
    assert key.startswith("cpu:") and "|onnxruntime=" in key and key.endswith("|threads=1")
    assert evaluator.protocol() == settings.fingerprint(TEXT)
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
        assert metrics["chars_per_token"] == pytest.approx(3.5)
    assert not any((tmp_path / "exports").iterdir())  # scratch exports removed

    again = LTSEvaluator(TEXT, settings, tmp_path / "exports")
    second = Counting(again)
    with again.measurement_cache(cache_path) as cache:
        repeat = run_pareto_search(space, second, LTS_OBJECTIVES, search, cache)
    assert second.count == 0 and again.measured == 0
    assert repeat.timing["cache_hits"] == 2 and repeat.timing["measured"] == 0
    assert [c.metrics for c in repeat.candidates] == [c.metrics for c in result.candidates]

    # another protocol or text set is another cache key: nothing is reused
    for other in (
        LTSEvaluator(TEXT, fast(runs=3)),
        LTSEvaluator(TextSet(TEXT.ids, TEXT.chars, TEXT.vocab_size, "text-b"), settings),
    ):
        with other.measurement_cache(cache_path) as cache:
            assert len(cache) == 0


def test_evaluator_options() -> None:
    with pytest.raises(ConfigError, match="keep_exports needs a workdir"):
        LTSEvaluator(TEXT, fast(), keep_exports=True)
    with pytest.raises(ConfigError, match="needs a TextSet"):
        LTSEvaluator(fast())  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"more than measure\.vocab_size"):
        LTSEvaluator(TEXT, fast(vocab_size=50))  # fails before any measurement
    seen: list[LTSMeasurement] = []
    torch_settings = fast(backend="torch", runs=1, warmup=0)
    evaluator = LTSEvaluator(TEXT, torch_settings, on_measured=seen.append)
    assert evaluator.name == "lts-measure-torch"
    with pytest.raises(MeasureError, match="GPTArch"):
        evaluator.evaluate(["not an arch"])
    assert seen == []


# ---- trained weights --------------------------------------------------------------------------
def write_checkpoint(path: Path, model_arch: GPTArch, seed: int, **changes: object) -> GPTDecoder:
    torch.manual_seed(seed)
    model = GPTDecoder(model_arch, 100, 32, 0.0)
    data = {"arch": model_arch.to_dict(), "vocab_size": 100, "n_positions": 32}
    torch.save({**data, "state_dict": model.state_dict(), "meta": {}, **changes}, path)
    return model.eval()


def test_measure_a_checkpoint(tmp_path: Path) -> None:
    import onnxruntime as ort

    first = write_checkpoint(tmp_path / "a.pt", TINY, seed=11)
    settings = fast(runs=1, warmup=0)
    m = measure_arch(TINY, TEXT, settings, tmp_path / "exports", checkpoint=tmp_path / "a.pt")
    sha = m.environment["checkpoint_sha256"]
    assert len(sha) == 64
    folder = tmp_path / "exports" / TINY.id
    assert ExportedLTS.load(folder).meta["checkpoint_sha256"] == sha

    def graph_logits() -> np.ndarray:  # the exported prompt graph carries the trained weights
        session = ort.InferenceSession(str(folder / "prompt.onnx"))
        return session.run(None, {"tokens": np.array([[1, 2, 3]], dtype=np.int64)})[0]

    with torch.no_grad():
        expected = first(torch.tensor([[1, 2, 3]]))[0][:, -1].numpy()
    assert np.abs(graph_logits() - expected).max() < 1e-4
    # another checkpoint of the same arch is another export (the sha256 differs)
    second = write_checkpoint(tmp_path / "a.pt", TINY, seed=12)
    again = measure_arch(TINY, TEXT, settings, tmp_path / "exports", checkpoint=tmp_path / "a.pt")
    assert again.environment["checkpoint_sha256"] != sha
    with torch.no_grad():
        assert (
            np.abs(graph_logits() - second(torch.tensor([[1, 2, 3]]))[0][:, -1].numpy()).max()
            < 1e-4
        )
    # the torch backend loads it in the worker
    t = measure_arch(
        TINY, TEXT, fast(backend="torch", runs=1, warmup=0), checkpoint=tmp_path / "a.pt"
    )
    assert t.environment["checkpoint_sha256"] == again.environment["checkpoint_sha256"]
    # without a checkpoint: seeded random weights again, no checkpoint key
    plain = measure_arch(TINY, TEXT, settings, tmp_path / "exports")
    assert "checkpoint_sha256" not in plain.environment
    assert "checkpoint_sha256" not in ExportedLTS.load(folder).meta


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"vocab_size": 200}, "vocab_size 200 does not match measure.vocab_size 100"),
        ({"n_positions": 64}, "n_positions 64 does not match measure.n_positions 32"),
        ({"arch": HETERO.to_dict()}, f"holds {HETERO.describe()}"),
        ({"backbone": "transformer-xl"}, "backbone transformer-xl, not gpt2"),
    ],
)
def test_checkpoint_mismatch_is_refused(tmp_path: Path, changes: dict, message: str) -> None:
    write_checkpoint(tmp_path / "c.pt", TINY, seed=1, **changes)
    with pytest.raises(MeasureError, match=re.escape(message)):
        measure_arch(TINY, TEXT, fast(), checkpoint=tmp_path / "c.pt")
    torch.save({"arch": TINY.to_dict()}, tmp_path / "d.pt")
    with pytest.raises(MeasureError, match="missing vocab_size, n_positions, state_dict"):
        measure_arch(TINY, TEXT, fast(), checkpoint=tmp_path / "d.pt")

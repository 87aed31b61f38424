"""The LTS measurement's fast path: graphs from a weightless export template and a persistent
worker process give the same graphs, outputs, latencies and memory as the full export path.
Tiny models; latencies compared with a loose ratio (noise), never against a time."""

from __future__ import annotations

import collections
import os
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from nasflow.core.errors import ConfigError
from nasflow.lts.evaluator import LTSEvaluator
from nasflow.lts.graph_template import (
    template_graphs,
    template_session,
    weight_arrays,
    weight_values,
)
from nasflow.lts.measure import (
    LTSMeasureSettings,
    MeasureError,
    PersistentWorker,
    _timed,
    measure_arch,
)
from nasflow.lts.model import build_decoder
from nasflow.lts.onnx_export import export_lts
from nasflow.lts.text import TextSet
from nasflow.space.gpt import GPTArch

HETERO = GPTArch(3, 96, (256, 384, 256), (4, 2, 8))  # per-layer widths and head counts
TEXT = TextSet(np.arange(400, dtype=np.int32) % 97, 1400, 97, "text-a")
FAST = {"vocab_size": 101, "n_positions": 48, "prompt_tokens": 12, "new_tokens": 3}


def feeds(kind: str, arch: GPTArch) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    if kind == "prompt":
        return {"tokens": np.array([[1, 5, 7, 9, 3, 2, 8]], dtype=np.int64)}
    out = {"tokens": np.array([[4]], dtype=np.int64)}
    for i, h in enumerate(arch.n_head):
        for part in ("k", "v"):
            out[f"past_{part}_{i}"] = rng.random((1, h, 6, arch.d_model // h), dtype=np.float32)
    return out


def test_template_graphs_compute_what_the_export_computes(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_decoder(HETERO, "gpt2", 101, 48, 0.0).eval()
    exported = export_lts(model, tmp_path / "export")
    prompt, step, shapes = template_graphs(HETERO, 101, 48)
    assert len(prompt) < 200_000 and len(step) < 200_000  # no weights inside
    assert shapes["model.blocks.1.mlp.c_fc.weight.T"] == [96, 384]
    arrays = weight_arrays(model)
    for kind, graph, path in (("prompt", prompt, exported.prompt), ("step", step, exported.step)):
        full = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        fast = template_session(graph, arrays, threads=1)
        got, want = fast.run(None, feeds(kind, HETERO)), full.run(None, feeds(kind, HETERO))
        assert [g.shape for g in got] == [w.shape for w in want]
        for g, w in zip(got, want, strict=True):
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def test_template_runs_the_same_optimised_nodes(tmp_path: Path) -> None:
    """After ONNX Runtime's optimisation both paths run the same node types, the same number
    of times (the exporter folds the head's transpose, the session folds the template's)."""
    torch.manual_seed(1)
    model = build_decoder(HETERO, "gpt2", 101, 48, 0.0).eval()
    exported = export_lts(model, tmp_path / "export")
    prompt, step, shapes = template_graphs(HETERO, 101, 48)
    for name, graph, path in (("prompt", prompt, exported.prompt), ("step", step, exported.step)):
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.optimized_model_filepath = str(tmp_path / f"{name}-full.onnx")
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        full = onnx.load(str(tmp_path / f"{name}-full.onnx"))
        # the template with its weights as real initializers, optimised the same way
        model_proto = onnx.load_from_string(graph)
        arrays = weight_arrays(model)
        weights = [i.name for i in model_proto.graph.input if i.name in shapes]
        for w in weights:
            model_proto.graph.initializer.append(onnx.numpy_helper.from_array(arrays[w], w))
        kept = [i for i in model_proto.graph.input if i.name not in shapes]
        del model_proto.graph.input[:]
        model_proto.graph.input.extend(kept)
        options.optimized_model_filepath = str(tmp_path / f"{name}-fast.onnx")
        ort.InferenceSession(
            model_proto.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
        fast = onnx.load(str(tmp_path / f"{name}-fast.onnx"))
        count = collections.Counter
        assert count(n.op_type for n in fast.graph.node) == count(
            n.op_type for n in full.graph.node
        )
        assert "Transpose" not in {
            n.op_type for n in fast.graph.node if any(i in shapes for i in n.input)
        }


def test_seeded_weights_are_views_with_the_right_shapes() -> None:
    _, _, shapes = template_graphs(HETERO, 101, 48)
    values = weight_values(shapes, seed=3)
    assert {k: list(v.shape) for k, v in values.items()} == shapes
    assert not values["model.blocks.0.attn.c_attn.bias"].any()
    assert (values["model.ln_f.weight"] == 1).all()
    matrix = values["model.wte.weight"]
    assert 0.015 < float(matrix.std()) < 0.025 and np.isfinite(matrix).all()
    again = weight_values(shapes, seed=3)["model.wte.weight"]
    np.testing.assert_array_equal(matrix, again)


def settings(**changes: object) -> LTSMeasureSettings:
    return LTSMeasureSettings(**{**FAST, "warmup": 2, "runs": 8, **changes})


def test_fast_path_measures_like_the_export_path(tmp_path: Path) -> None:
    """Template graphs in a persistent worker: the same figures as a full export measured in a
    fresh worker, within noise. Medians of 8 runs of a sub-millisecond model, interleaved
    (full, fast, full, fast) and compared by their minimum, so a load spike on a busy machine
    during one measurement does not decide (a loose ratio: noise, never a time)."""
    arch = GPTArch.uniform(2, 256, 1024, 4)
    fast_settings = settings(graphs="template", worker="persistent")
    full, fast = [], []
    with PersistentWorker(fast_settings) as worker:
        for _ in range(2):
            full.append(measure_arch(arch, TEXT, settings(), tmp_path))
            fast.append(measure_arch(arch, TEXT, fast_settings, runner=worker.run))
        assert worker.jobs == 2 and worker.proc is not None  # one process measured both
    assert fast[0].environment["graphs"] == "template"
    assert full[0].environment["graphs"] == "export"
    assert fast[1].environment["worker_job"] == 2
    for m, reference in zip(fast, full, strict=True):
        assert m.decoder_params == reference.decoder_params
        # memory above the loaded model: the same activations, cache and arena, less what a
        # long-lived process allocated once before (documented bound: 2.5 MiB)
        assert abs(m.memory_mb - reference.memory_mb) < max(2.5, 0.5 * reference.memory_mb)
    ratio = min(m.latency_ms for m in fast) / min(m.latency_ms for m in full)
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    if load > cores:
        # Oversubscribed, a worker that slept between jobs gets the CPU at once on waking while
        # a fresh one, busy importing and loading, is time-sliced: the two paths then differ by
        # the scheduler, not the graphs (seen: 17x at load 11 on 2 cores).
        pytest.skip(f"latency ratio {ratio:.2f} not judged: load {load:.1f} on {cores} cores")
    assert 0.33 < ratio < 3.0


def test_persistent_worker_memory_matches_a_fresh_worker() -> None:
    """Peak memory above the loaded model of a large then a small model in one persistent
    worker: the small one's figure is what a fresh worker reads (freed memory is returned)."""
    big = GPTArch.uniform(2, 512, 2048, 8)
    small = GPTArch.uniform(2, 128, 256, 4)
    base = settings(prompt_tokens=40, min_prompt_tokens=40, n_positions=48, runs=2, warmup=1)
    fresh = measure_arch(
        small, TEXT, LTSMeasureSettings(**{**base.to_dict(), "graphs": "template"})
    )
    persistent = LTSMeasureSettings(
        **{**base.to_dict(), "graphs": "template", "worker": "persistent"}
    )
    with PersistentWorker(persistent) as worker:
        measure_arch(big, TEXT, persistent, runner=worker.run)
        again = measure_arch(small, TEXT, persistent, runner=worker.run)
    assert again.memory_mb > 0
    assert abs(again.memory_mb - fresh.memory_mb) < max(2.5, 0.5 * fresh.memory_mb)


def test_persistent_worker_survives_a_failed_job() -> None:
    fast_settings = settings(graphs="template", worker="persistent", timeout_s=0.01)
    with PersistentWorker(fast_settings) as worker:
        with pytest.raises(MeasureError, match=r"longer than measure\.timeout_s"):
            measure_arch(HETERO, TEXT, fast_settings, runner=worker.run)
        assert worker.proc is None  # killed; the next job starts a new process
        ok = settings(graphs="template", worker="persistent")
        m = measure_arch(HETERO, TEXT, ok, runner=worker.run)
        assert m.latency_ms > 0


def test_evaluator_uses_one_persistent_worker(tmp_path: Path) -> None:
    fast_settings = settings(graphs="template", worker="persistent", runs=2, warmup=1)
    archs = [GPTArch.uniform(2, 64, 128, 2), GPTArch.uniform(1, 64, 256, 4)]
    with LTSEvaluator(TEXT, fast_settings, workdir=tmp_path) as evaluator:
        metrics = evaluator.evaluate(archs)
        assert evaluator.worker is not None and evaluator.worker.jobs == 2
    assert evaluator.worker.proc is None
    assert all(m["latency_ms"] > 0 and m["memory_mb"] > 0 for m in metrics)
    assert not list(tmp_path.iterdir())  # nothing exported


def test_fast_settings_are_checked_and_keyed() -> None:
    with pytest.raises(ConfigError, match=r"measure\.graphs must be one of export, template"):
        LTSMeasureSettings(graphs="fast")
    with pytest.raises(ConfigError, match=r"measure\.worker must be one of fresh, persistent"):
        LTSMeasureSettings(worker="pool")
    with pytest.raises(ConfigError, match="needs backend onnxruntime"):
        LTSMeasureSettings(backend="torch", graphs="template")
    plain = settings()
    assert "graphs" not in plain.protocol(TEXT)  # the keys of earlier measurements stand
    assert plain.fingerprint(TEXT) != settings(graphs="template").fingerprint(TEXT)
    assert plain.fingerprint(TEXT) != settings(worker="persistent").fingerprint(TEXT)


def test_template_refuses_transformer_xl() -> None:
    with pytest.raises(ConfigError, match="template builds GPT-2 decoders only"):
        measure_arch(
            GPTArch.uniform(2, 64, 128, 2),
            TEXT,
            settings(graphs="template"),
            backbone="transformer-xl",
        )


def test_robust_protocol_takes_each_prompts_minimum_over_passes() -> None:
    """`_timed`: one pass by default; under robust the per-prompt minimum over the passes, and
    more passes while the odd and even ones disagree."""
    slow_second = iter([(1.0, 0.1), (2.0, 0.2), (5.0, 0.5), (6.0, 0.6)] + [(1.0, 0.1)] * 40)
    prompts = ["a", "b"]
    pl, tl, info = _timed(lambda _: next(slow_second), prompts, {"new_tokens": 3})
    assert (pl, tl, info) == ([1.0, 2.0], [0.1, 0.2], {})
    times = iter([(1.0, 0.1), (2.0, 0.2), (5.0, 0.5), (6.0, 0.6)] + [(1.0, 0.1)] * 40)
    pl, tl, info = _timed(lambda _: next(times), prompts, {"new_tokens": 3, "rounds": 2})
    # passes 1 and 2 disagree (1.2 + 2.4 vs 6 + 7.2): two more passes, then stable
    assert info["passes"] == 4 and info["retries"] == 1 and info["stable"]
    assert pl == [1.0, 1.0] and tl == [0.1, 0.1]


def test_robust_protocol_is_keyed_and_recorded(tmp_path: Path) -> None:
    median = settings(graphs="template")
    robust = settings(graphs="template", timing="robust", rounds=2, runs=3, warmup=1)
    assert "timing" not in median.protocol(TEXT) and "rounds" not in median.protocol(TEXT)
    assert robust.protocol(TEXT)["timing"] == "robust"
    with pytest.raises(ConfigError, match=r"measure\.timing must be one of median, robust"):
        LTSMeasureSettings(timing="hat")
    with pytest.raises(ConfigError, match=r"measure\.rounds must be an integer >= 2"):
        LTSMeasureSettings(timing="robust", rounds=1)
    m = measure_arch(GPTArch.uniform(1, 64, 128, 2), TEXT, robust, tmp_path)
    assert m.environment["passes"] >= 2 and "spread" in m.environment
    assert len(m.samples["prompt_ms"]) == 3 and m.latency_ms > 0

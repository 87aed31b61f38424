"""Latency measurement (HAT protocol), PyTorch eager and ONNX Runtime: trimming, dummy inputs,
state restored, recorded environment, bad settings."""

from __future__ import annotations

import pytest
import torch

from nasflow.efficiency.latency import (
    LatencyError,
    dummy_batch,
    measure,
    measure_torch,
    trimmed_stats,
)
from nasflow.model import EOS, ModelConfig, SuperTransformer
from nasflow.space.hat import get_space


def test_trimmed_stats_drops_tails_and_keeps_a_sample() -> None:
    values = [100.0] + [10.0] * 8 + [1.0]
    mean, std = trimmed_stats(values)
    assert mean == pytest.approx(10.0) and std == pytest.approx(0.0)
    assert trimmed_stats([5.0]) == (5.0, 0.0)  # HAT's trim would leave nothing here
    assert trimmed_stats([1.0, 2.0, 9.0])[0] == pytest.approx(4.0)  # 10% of 3 rounds to 0
    with pytest.raises(ValueError):
        trimmed_stats([])


def test_dummy_batch_follows_hat() -> None:
    src, prev = dummy_batch(5, torch.device("cpu"))
    assert src.tolist() == [[7, 7, 7, 7, EOS]] and prev.tolist() == [[EOS, 7, 7, 7, 7]]


def test_measure_runs_encoder_once_and_decoder_per_step(monkeypatch) -> None:
    space = get_space("demo")
    model = SuperTransformer(space, 50).train()
    model.set_arch(space.largest())
    calls = {"encode": 0, "decode": 0}
    encode, decode = model.encode, model.decode

    def counting_encode(*args, **kwargs):
        calls["encode"] += 1
        assert not torch.is_grad_enabled() and not model.training
        return encode(*args, **kwargs)

    def counting_decode(tokens, *args, **kwargs):
        calls["decode"] += 1
        assert tokens.shape == (3, 1)  # beam-tiled, one token per step
        return decode(tokens, *args, **kwargs)

    monkeypatch.setattr(model, "encode", counting_encode)
    monkeypatch.setattr(model, "decode", counting_decode)
    result = measure_torch(model, space.smallest(), length=6, beam=3, warmup=1, runs=4)
    assert calls["encode"] == (1 + 4) + 1  # warm-up + timed runs, then one for the tiled memory
    assert calls["decode"] == (1 + 4) * 6
    assert result.encoder_ms > 0 and result.decoder_ms > 0
    assert result.total_ms == pytest.approx(result.encoder_ms + result.decoder_ms)
    assert result.arch_id == space.smallest().id and result.environment["threads"] >= 1
    assert model.training and model.arch == space.largest()  # state restored


def test_onnx_backend_measures_the_same_protocol(tmp_path) -> None:
    space = get_space("demo")
    model = SuperTransformer(space, 60, ModelConfig(max_positions=32))
    result = measure(
        model,
        space.smallest(),
        backend="onnxruntime",
        length=5,
        beam=2,
        warmup=1,
        runs=3,
        threads=1,
        workdir=tmp_path,
    )
    assert result.backend == "onnxruntime" and result.arch_id == space.smallest().id
    assert result.encoder_ms > 0 and result.decoder_ms > 0 and result.runs == 3
    env = result.environment
    assert env["threads"] == 1 and env["providers"] == ["CPUExecutionProvider"]
    assert env["onnxruntime"] and env["device_name"]
    assert (tmp_path / "encoder.onnx").is_file() and (tmp_path / "decoder.onnx").is_file()
    assert model.arch == space.largest()  # the supernet's selection is restored


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"backend": "tensorrt"}, "unknown latency backend 'tensorrt'"),
        ({"runs": 0}, "need runs >= 1"),
        ({"beam": 0}, "beam=0"),
    ],
)
def test_bad_measurement_settings_are_named(kwargs, message) -> None:
    model = SuperTransformer(get_space("demo"), 40)
    with pytest.raises(LatencyError, match=message):
        measure(model, **kwargs)

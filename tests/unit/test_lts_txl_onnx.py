"""LTS's Transformer-XL backbone on the device side: ONNX prompt/step graphs with the memory as
an input, verified against eager; latency/memory measurement (both backends); the measurement
protocol key, the evaluator and the search's backbone check. Tiny models, no timed asserts."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from nasflow.core.errors import ConfigError
from nasflow.lts.evaluator import LTSEvaluator
from nasflow.lts.measure import LTSMeasureSettings, build_model, measure_arch
from nasflow.lts.onnx_export import ExportedLTS, export_lts, txl_names, verify_lts_export
from nasflow.lts.search import LTS_OBJECTIVES, ParetoSettings, run_pareto_search
from nasflow.lts.text import TextSet
from nasflow.lts.txl_model import TXLDecoder
from nasflow.space.gpt import GPTArch, LTSSpace
from nasflow.space.gpt_params import decoder_params, total_params

HETERO = GPTArch(3, 64, (128, 192, 256), (2, 4, 2))
TXL = "transformer-xl"
FAST = {"vocab_size": 100, "n_positions": 32, "prompt_tokens": 8, "new_tokens": 3}
TEXT = TextSet(np.arange(300, dtype=np.int32) % 97, 1050, 97, "text-a")


def fast(**changes: object) -> LTSMeasureSettings:
    return LTSMeasureSettings(**{**FAST, "warmup": 1, "runs": 3, **changes})


@pytest.mark.parametrize(
    "opts",
    [
        {},
        {"mem_len": 5},
        {"softmax": "adaptive", "cutoffs": [20, 60], "div_val": 2, "pre_lnorm": True},
    ],
    ids=["tied", "short-memory", "adaptive"],
)
def test_txl_graphs_match_eager(tmp_path: Path, opts: dict) -> None:
    torch.manual_seed(0)
    model = TXLDecoder(HETERO, 100, 64, 0.1, **opts)
    exported = export_lts(model, tmp_path / "x", meta={"seed": 0})
    loaded = ExportedLTS.load(tmp_path / "x")
    assert loaded.backbone == TXL and loaded.arch == HETERO
    meta = loaded.meta
    assert meta["decoder_params"] == decoder_params(HETERO, TXL)
    assert meta["total_params"] == model.total_param_count()
    assert meta["mem_len"] == model.mem_len and meta["output"] == model.output
    # prompt lengths and memory lengths other than the export's examples (a prompt of 1 token,
    # memories that grow past mem_len)
    assert verify_lts_export(model, exported, prompt_len=9, steps=4) < 1e-4
    assert verify_lts_export(model, exported, prompt_len=1, steps=6) < 1e-4
    assert model.training  # put back as it was


def test_txl_graph_io_names(tmp_path: Path) -> None:
    import onnx

    exported = export_lts(TXLDecoder(HETERO, 100, 32, mem_len=4), tmp_path)
    names = txl_names(3)
    for path in (exported.prompt, exported.step):
        graph = onnx.load(path).graph
        assert [i.name for i in graph.input] == ["tokens", *names["past"]]
        assert [o.name for o in graph.output] == ["logits", *names["present"]]


def test_measure_txl_onnxruntime_and_torch(tmp_path: Path) -> None:
    settings = fast()
    m = measure_arch(HETERO, TEXT, settings, tmp_path, backbone=TXL)
    assert m.decoder_params == decoder_params(HETERO, TXL)
    assert m.total_params == total_params(HETERO, 100, 32, TXL)
    assert m.environment["backbone"] == TXL
    assert m.prompt_ms > 0 and m.token_ms > 0 and m.memory_mb >= 0
    folder = tmp_path / f"{HETERO.id}-{TXL}"
    assert ExportedLTS.load(folder).backbone == TXL
    assert not (tmp_path / HETERO.id).exists()  # a GPT-2 export of the same arch stays apart
    t = measure_arch(HETERO, TEXT, fast(backend="torch"), backbone=TXL)
    assert t.backend == "torch" and math.isfinite(t.latency_ms) and t.latency_ms > 0
    model = build_model(HETERO, settings, TXL)
    assert isinstance(model, TXLDecoder) and not model.training


def test_protocol_evaluator_and_search_name_the_backbone(tmp_path: Path) -> None:
    settings = fast()
    assert settings.fingerprint(TEXT) == settings.fingerprint(TEXT, "gpt2")
    assert "backbone" not in settings.protocol(TEXT)  # GPT-2 keys are those of before
    assert settings.protocol(TEXT, TXL)["backbone"] == TXL
    assert settings.fingerprint(TEXT, TXL) != settings.fingerprint(TEXT)
    gpt, txl = LTSEvaluator(TEXT, settings), LTSEvaluator(TEXT, settings, backbone=TXL)
    assert gpt.name == "lts-measure-onnxruntime" and txl.name == "lts-measure-onnxruntime-" + TXL
    assert txl.protocol() == settings.fingerprint(TEXT, TXL) != gpt.protocol()
    with pytest.raises(ConfigError, match="LTSEvaluator backbone must be one of"):
        LTSEvaluator(TEXT, settings, backbone="rnn")
    space = LTSSpace.from_mapping({"base": "lts-demo", "name": "demo-txl", "backbone": TXL})
    search = ParetoSettings(population=2, parents=2, mutations=0, crossovers=0, iterations=1)
    with (
        gpt.measurement_cache(tmp_path / "cache.sqlite") as cache,
        pytest.raises(ConfigError, match="has backbone transformer-xl, but the evaluator"),
    ):
        run_pareto_search(space, gpt, LTS_OBJECTIVES, search, cache)

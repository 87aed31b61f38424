"""Table 11 (`nasflow predictors table11`): time for 10 architectures and quality per predictor."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from nasflow.cli import main
from nasflow.data import load_vocab_size
from nasflow.model import SuperTransformer
from nasflow.model.checkpoint import save_model
from nasflow.predictors.base import Predictor
from nasflow.predictors.timing import (
    MEASURED,
    NOT_RECORDED,
    NOT_TIMED,
    RECORDED,
    recorded_latency,
    time_predictor,
    timing_pairs,
)
from nasflow.space.hat import get_space
from nasflow.tfs.format import read_tfs_eval

SPACE = get_space("demo")
TINY_ARCHS = SPACE.sample_unique(9, seed=5)  # the same as conftest.TINY_ARCHS


def _gold(arch) -> float:
    return arch.encoder_embed_dim / 10 + arch.decoder_layer_num


def _predictions(tfs_eval: Path, tmp_path: Path) -> Path:
    out = tmp_path / "full.jsonl"
    argv = ["llm-pp", "predict", "--tfs-eval", str(tfs_eval), "--demonstrations", "3"]
    assert main([*argv, "--cache", str(tmp_path / "c.sqlite"), "--out", str(out)]) == 0
    return out


def _distill_models(tfs_eval: Path, tmp_path: Path) -> list[str]:
    models = []
    for seed in (1, 2):
        dataset, model = tmp_path / f"d{seed}.csv", tmp_path / f"m{seed}.pt"
        argv = ["distill", "dataset", "--tfs-eval", str(tfs_eval), "--task", "demo"]
        argv += ["--seed", str(seed), "--n", "30", "--demonstrations", "3"]
        assert main([*argv, "--cache", str(tmp_path / "c.sqlite"), "--out", str(dataset)]) == 0
        argv = ["distill", "train", "--dataset", str(dataset), "--name", "LLM-Distill-PP test"]
        argv += ["--settings-json", '{"steps": 30, "hidden_dim": 16}', "--task", "demo"]
        assert main([*argv, "--seed", str(seed), "--out", str(model)]) == 0
        models.append(str(model))
    return models


def test_table11_times_10_archs_per_predictor_and_reuses_table1(
    tfs_eval_with_supernet: Path, tiny_data: Path, tmp_path: Path, capsys
) -> None:
    tfs = tfs_eval_with_supernet
    predictions = _predictions(tfs, tmp_path)
    models = _distill_models(tfs, tmp_path)
    torch.manual_seed(0)
    supernet = tmp_path / "supernet.pt"
    save_model(supernet, SuperTransformer(SPACE, load_vocab_size(tiny_data)).eval())
    config = {
        "experiment": "t",
        "space": "demo",
        "threads": 1,
        "model": {"max_positions": 64},
        "train": {"device": "cpu", "max_tokens": 400},
        "evaluate": {"valid_sentences": 8},
    }
    out, md = tmp_path / "tables" / "table11.csv", tmp_path / "tables" / "table11.md"
    argv = ["predictors", "table11", "--tfs-eval", str(tfs), "--predictions", str(predictions)]
    argv += ["--distill-models", *models, "--supernet", str(supernet), "--data", str(tiny_data)]
    argv += ["--config-json", json.dumps(config), "--out", str(out), "--markdown", str(md)]
    assert main(argv) == 0
    table = pd.read_csv(out)

    # One row per predictor (one task): the supernet, LLM-PP and the distilled MLP, each timed
    # on 10 (seed, architecture) predictions (6 of seed 1, then 4 of seed 2), in positive time.
    assert list(table["predictor"]) == [
        "Supernet (loss)",
        "LLM-PP offline stand-in (no LLM) k=3",
        "LLM-Distill-PP test",
    ]
    assert list(table["kind"]) == ["supernet", "LLM-PP", "LLM-Distill-PP"]
    assert (table["timed_archs"] == 10).all()
    assert (table["time_s"] > 0).all()
    assert list(table["timing"]) == [MEASURED, RECORDED, MEASURED]

    # Quality is Table 1's: `llm-pp evaluate` on the same predictions, models and stored block.
    table1 = tmp_path / "table1.csv"
    argv = ["llm-pp", "evaluate", "--tfs-eval", str(tfs), "--predictions", str(predictions)]
    assert main([*argv, "--distill-models", *models, "--baselines", "--out", str(table1)]) == 0
    reference = pd.read_csv(table1).set_index("predictor").loc[list(table["predictor"])]
    for column in ("mae", "mae_std", "kendall", "kendall_std", "n_seeds"):
        np.testing.assert_allclose(
            table[column].to_numpy(float), reference[column].to_numpy(float), atol=1e-4
        )
    assert math.isnan(table.loc[0, "mae"]) and not math.isnan(table.loc[1, "mae"])

    text = md.read_text()
    assert "Table 11" in text and "load and one warm-up prediction excluded" in text
    assert "10 replies, one request after another" in text
    assert "valid sentences each" in text  # where the supernet ran
    assert "| Supernet (loss) | supernet | demo | 10 |" in text
    assert "Table 11" in capsys.readouterr().out


def test_stored_blocks_without_a_supernet_are_not_timed(tfs_eval_with_supernet, tmp_path) -> None:
    out = tmp_path / "t.csv"
    argv = ["predictors", "table11", "--tfs-eval", str(tfs_eval_with_supernet), "--out", str(out)]
    assert main(argv) == 0
    table = pd.read_csv(out)
    assert list(table["predictor"]) == ["Supernet (loss)"]
    assert table.loc[0, "timing"] == NOT_TIMED and math.isnan(table.loc[0, "time_s"])


def test_the_timed_pairs_run_across_split_seeds(tfs_eval: Path) -> None:
    table = read_tfs_eval(tfs_eval)
    pairs = timing_pairs(table, "demo")
    assert [seed for seed, _ in pairs] == [1] * 6 + [2] * 4
    test = table[(table["split"] == "test") & (table["seed"] == 1)]
    assert [arch.id for _, arch in pairs[:6]] == list(test["arch_id"])
    assert len(timing_pairs(table, "demo", 3)) == 3


class _Clocked(Predictor):
    """Each predict() advances a fake clock by one second per architecture."""

    name = "clocked"

    def __init__(self, clock: list[float], calls: list[int]) -> None:
        self.clock, self.calls = clock, calls

    def predict(self, archs: Sequence) -> np.ndarray:
        self.calls.append(len(archs))
        self.clock[0] += len(archs)
        return np.zeros(len(archs))


def test_loading_and_warm_up_are_not_timed() -> None:
    clock, calls = [0.0], []

    def load(seed: int) -> Predictor:
        clock[0] += 100.0  # loading is slow, and excluded
        return _Clocked(clock, calls)

    pairs = [(1, a) for a in TINY_ARCHS[:6]] + [(2, a) for a in TINY_ARCHS[:4]]
    timing = time_predictor(load, pairs, clock=lambda: clock[0])
    assert timing.seconds == 10.0 and timing.archs == 10 and timing.how == MEASURED
    assert calls == [1, 6, 1, 4]  # per seed: a one-arch warm-up, then the timed call
    # One predictor for every seed (the supernet) is warmed up once.
    shared, calls[:] = _Clocked(clock, calls), []
    timing = time_predictor(lambda seed: shared, pairs, clock=lambda: clock[0])
    assert timing.seconds == 10.0 and calls == [1, 6, 4]


def _record(seed, arch, latencies, cache_hits=0) -> dict:
    return {"predictor": "P", "task": "demo", "seed": seed, "arch_id": arch.id,
            "latencies_s": latencies, "cache_hits": cache_hits}  # fmt: skip


def test_llm_time_is_the_sum_of_the_recorded_request_latencies() -> None:
    archs = TINY_ARCHS[:3]
    records = [_record(1, archs[0], [0.5]), _record(1, archs[1], [0.25, 1.0], cache_hits=2)]
    records.append(_record(2, archs[2], [2.0]))
    pairs = [(1, archs[0]), (1, archs[1])]
    timing = recorded_latency(records, "demo", pairs, "P")
    assert timing.seconds == 1.75 and timing.archs == 2 and timing.how == RECORDED
    assert "3 replies" in timing.note and "2 of them were served from the reply cache" in (
        timing.note
    )
    old = [{k: v for k, v in r.items() if k != "latencies_s"} for r in records]
    assert recorded_latency(old, "demo", pairs, "P").how == NOT_RECORDED
    assert recorded_latency(old, "demo", pairs, "P").seconds is None


class _Fixed(Predictor):
    """Scores looked up by name (the `arch` column holds plain names here)."""

    bleu_scale = True

    def __init__(self, name: str, scores: dict[str, float]) -> None:
        self.name, self.scores = name, scores

    def predict(self, archs: Sequence) -> np.ndarray:
        return np.array([self.scores[a] for a in archs])


def test_two_tasks_average_time_and_quality_and_shared_notes() -> None:
    from nasflow.predictors.quality import evaluate_predictors
    from nasflow.predictors.timing import Entry, Timing, not_timed, table11
    from nasflow.report.predictor_tables import table11_markdown

    gold = {"a": 20.0, "b": 22.0, "c": 25.0}
    table = pd.DataFrame(
        [
            {"task": t, "seed": s, "split": "test", "arch_id": a, "arch": a, "gold": gold[a]}
            for t in ("t1", "t2")
            for s in (1, 2)
            for a in gold
        ]
    )
    mlp = _Fixed("MLP", {"a": 21.0, "b": 21.5, "c": 24.0})
    stored = _Fixed("Stored", {"a": 22.0, "b": 21.0, "c": 20.0})
    seconds = {"t1": 1.0, "t2": 3.0}

    def entries(task: str) -> list[Entry]:
        return [
            Entry("supernet", stored, not_timed([], "no timing")),
            Entry("LLM-Distill-PP", mlp, Timing(seconds[task], 10, MEASURED, f"on {task}")),
        ]

    results = table11(table, ["t1", "t2"], entries).set_index(["predictor", "task"])
    assert results.loc[("MLP", "Average"), "time_s"] == 2.0
    assert math.isnan(results.loc[("Stored", "Average"), "time_s"])
    reference = evaluate_predictors(table, ["t1", "t2"], lambda task: [stored, mlp])
    reference = reference.set_index(["predictor", "task"]).loc[results.index]
    for column in ("mae", "kendall", "kendall_std"):
        np.testing.assert_allclose(results[column], reference[column])
    notes = {"Stored": {"t1": "no timing", "t2": "no timing"}, "MLP": {"t1": "x", "t2": "y"}}
    text = table11_markdown(results.reset_index(), notes)
    assert text.count("no timing") == 1 and "- MLP, t1: x" in text and "- MLP, t2: y" in text

"""A TFS-Eval folder built from the workflow's own runs reads like the released sets."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from nasflow.cli import main
from nasflow.core.errors import ConfigError, DataError
from nasflow.efficiency.counts import count_flops
from nasflow.predictors.quality import default_predictors, evaluate_predictors
from nasflow.space.hat import get_space
from nasflow.tfs.build import SplitSettings, build_tfs_eval
from nasflow.tfs.format import read_task_examples, read_tfs_eval, read_tfs_eval_info

ARCHS = get_space("demo").sample_unique(7, seed=3)
VOCAB = 1234


@pytest.fixture()
def runs(tmp_path: Path) -> dict[str, object]:
    """Seven score files, a prepared-data folder and a supernet quality file."""
    scores = []
    for i, arch in enumerate(ARCHS):
        path = tmp_path / "tfs" / arch.id / "score.json"
        path.parent.mkdir(parents=True)
        score = {
            "arch": arch.to_dict(),
            "valid": {"bleu": 10.0 + i, "loss_bits": 5.0 - i / 10},
            "test": {"bleu": 11.0 + i},
        }
        path.write_text(json.dumps(score))
        scores.append(path)
    data = tmp_path / "data"
    data.mkdir()
    manifest = {"vocab_size": VOCAB, "languages": {"source": "en", "target": "de"}}
    (data / "manifest.json").write_text(json.dumps({**manifest, "corpus": "multi30k"}))
    (data / "train.en").write_text("".join(f"A dog number {i} runs .\n" for i in range(50)))
    (data / "train.de").write_text("".join(f"Ein Hund Nummer {i} rennt .\n" for i in range(50)))
    quality = tmp_path / "supernet_quality.json"
    rows = [{"arch_id": a.id, "predicted": -5.0 + i / 5} for i, a in enumerate(ARCHS)]
    quality.write_text(
        json.dumps({"predictor": "Supernet (loss)", "bleu_scale": False, "rows": rows})
    )
    return {"scores": scores, "data": data, "quality": quality, "out": tmp_path / "tfs_eval"}


def _build(runs, **kwargs):
    return build_tfs_eval(runs["scores"], runs["data"], runs["out"], "demo", **kwargs)


def test_built_folder_reads_like_the_released_sets(runs) -> None:
    info = _build(runs, split=SplitSettings((1, 2, 3)), supernet_quality=runs["quality"])
    assert info.space == "demo"
    meta = info.tasks["demo"]
    assert (meta.vocab_size, meta.dataset) == (VOCAB, "Multi30k")
    assert (meta.source_language, meta.target_language) == ("English", "German")
    assert read_tfs_eval_info(runs["out"]) == info
    table = read_tfs_eval(runs["out"])
    assert sorted(table["seed"].unique()) == [1, 2, 3]
    for _, rows in table.groupby("seed"):
        # Seven archs: 2 train (a third, rounded) and 5 test; every arch exactly once.
        assert list(rows["split"].value_counts().sort_index()) == [5, 2]
        assert sorted(rows["arch_id"]) == sorted(a.id for a in ARCHS)
    splits = {s: tuple(r.loc[r["split"] == "train", "arch_id"]) for s, r in table.groupby("seed")}
    assert len(set(splits.values())) > 1  # each seed re-splits
    first = table[table["arch_id"] == ARCHS[0].id].iloc[0]
    assert first["gold"] == 10.0 and first["test_bleu"] == 11.0
    assert first["flops"] == count_flops(ARCHS[0], VOCAB)
    assert first["vocab_size"] == VOCAB
    assert table.attrs["rank_only"] == ["Supernet (loss)"]


def test_baselines_and_the_supernet_rank_the_built_set(runs) -> None:
    _build(runs, supernet_quality=runs["quality"])
    table = read_tfs_eval(runs["out"])
    predictors = default_predictors(table, "demo")
    assert [p.name for p in predictors] == ["Supernet (loss)", "#Params", "#FLOPs"]
    assert not predictors[0].bleu_scale
    results = evaluate_predictors(table, ["demo"], {"demo": predictors})
    supernet = results[results["predictor"] == "Supernet (loss)"].iloc[0]
    # The stored supernet score rises with the gold BLEU, so it ranks perfectly; no MAE.
    assert supernet["kendall"] == pytest.approx(1.0) and supernet["n_seeds"] == 3
    assert supernet["mae"] != supernet["mae"]  # NaN


def test_task_examples_come_from_the_training_data(runs) -> None:
    info = _build(runs, split=SplitSettings(example_pool=10))
    sources, targets = read_task_examples(runs["out"], info, "demo")
    assert len(sources) == 10 and sources[0].startswith("A dog number")
    assert [s.split()[3] for s in sources] == [t.split()[3] for t in targets]
    assert read_task_examples(runs["out"], info, "other") is None


def test_llm_pp_runs_on_the_built_set_with_its_own_task(runs, tmp_path: Path) -> None:
    _build(runs)
    out = tmp_path / "pred.jsonl"
    argv = ["llm-pp", "predict", "--tfs-eval", str(runs["out"]), "--demonstrations", "2"]
    argv += ["--cache", str(tmp_path / "cache.sqlite"), "--out", str(out), "--seeds", "123"]
    assert main(argv) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 5 and {r["task"] for r in records} == {"demo"}
    assert all(r["prediction"] is not None for r in records)
    # The prompt names the experiment's dataset and languages and shows its sentence pairs.
    cache = tmp_path / "cache.sqlite"
    with sqlite3.connect(cache) as db:
        prompts = [row[0] for row in db.execute("SELECT prompt FROM replies")]
    assert prompts and all("Multi30k" in p and "English to German" in p for p in prompts)
    assert all("Input: A dog number" in p for p in prompts)
    table = tmp_path / "t1.csv"
    argv = ["llm-pp", "evaluate", "--tfs-eval", str(runs["out"]), "--predictions", str(out)]
    assert main([*argv, "--baselines", "--out", str(table)]) == 0
    lines = table.read_text().splitlines()
    assert lines[0].startswith("predictor,task,mae,mae_std,kendall")
    row = next(line for line in lines if line.startswith("LLM-PP offline stand-in (no LLM) k=2,"))
    assert row.split(",")[1] == "demo" and row.endswith(",1")  # one seed predicted


def test_ablation_table_orders_variants_as_they_add_components(runs, tmp_path: Path) -> None:
    _build(runs)
    cache, files = str(tmp_path / "cache.sqlite"), []
    for variant, k in (("full", 2), ("demos", 2), ("role_hparams", 1), ("demos", 1)):
        out = tmp_path / f"{variant}-{k}.jsonl"
        argv = ["llm-pp", "predict", "--tfs-eval", str(runs["out"]), "--variant", variant]
        assert main([*argv, "--demonstrations", str(k), "--cache", cache, "--out", str(out)]) == 0
        files.append(str(out))
    ablation, markdown = tmp_path / "ablation.csv", tmp_path / "ablation.md"
    argv = ["llm-pp", "evaluate", "--tfs-eval", str(runs["out"]), "--predictions", *files]
    argv += ["--out", str(tmp_path / "t.csv"), "--ablation", str(ablation)]
    assert main([*argv, "--ablation-markdown", str(markdown)]) == 0
    lines = ablation.read_text().splitlines()
    assert lines[0] == (
        "setup,prompt,variant,demonstrations,task,mae,mae_std,kendall,kendall_std,n_seeds"
    )
    keys = [tuple(line.split(",")[2:5]) for line in lines[1:]]
    assert keys == [
        ("demos", "1", "demo"),
        ("demos", "2", "demo"),
        ("role_hparams", "1", "demo"),
        ("full", "2", "demo"),
    ]
    assert "demonstrations only" in markdown.read_text()


def test_bad_splits_and_inputs_are_refused_without_leaving_a_folder(runs) -> None:
    with pytest.raises(ConfigError, match="cannot split 7 architectures into 7 train"):
        _build(runs, split=SplitSettings(train_size=7))
    with pytest.raises(ConfigError, match="distinct seeds"):
        SplitSettings((1, 1))
    runs["scores"].append(runs["scores"][0])
    with pytest.raises(DataError, match="more than one score file"):
        _build(runs)
    runs["scores"].pop()
    runs["quality"].write_text(json.dumps({"predictor": "S", "rows": []}))
    with pytest.raises(DataError, match="no supernet score for architecture"):
        _build(runs, supernet_quality=runs["quality"])
    assert not runs["out"].exists()
    assert not runs["out"].with_name("tfs_eval.partial").exists()

"""The distillation path with the offline provider: dataset through the cache, MLP, Table 1."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from nasflow.cli import main
from nasflow.core.errors import DataError
from nasflow.predictors.distill_dataset import read_arch_file, read_distill_dataset
from nasflow.space.hat import get_space, held_out_sample, stream_seed, tfs_sample

ARCHS = get_space("demo").sample_unique(9, seed=5)  # the same as conftest.TINY_ARCHS


def _dataset(tfs_eval: Path, tmp_path: Path, seed: int, n: int = 60) -> Path:
    out = tmp_path / f"d{seed}.csv"
    argv = ["distill", "dataset", "--tfs-eval", str(tfs_eval), "--task", "demo"]
    argv += ["--seed", str(seed), "--n", str(n), "--demonstrations", "3"]
    assert main([*argv, "--cache", str(tmp_path / "cache.sqlite"), "--out", str(out)]) == 0
    return out


def test_dataset_is_labelled_through_the_cache(tfs_eval: Path, tmp_path: Path) -> None:
    out = _dataset(tfs_eval, tmp_path, seed=1)
    frame = pd.read_csv(out)
    assert len(frame) == 60 and not frame["failed"].any()
    usage = json.loads(out.with_suffix(".usage.json").read_text())
    assert usage["requests"] == 60 and usage["cache_hits"] == 0 and usage["tfs_seed"] == 1
    assert usage["prompt"]["examples_from"]["demo"]["origin"] == "train"
    # A rerun asks nothing: every reply comes from the cache, with identical labels.
    first = frame["prediction"].tolist()
    _dataset(tfs_eval, tmp_path, seed=1)
    usage = json.loads(out.with_suffix(".usage.json").read_text())
    assert usage["requests"] == 0 and usage["cache_hits"] == 60
    assert pd.read_csv(out)["prediction"].tolist() == first
    with sqlite3.connect(tmp_path / "cache.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM replies").fetchone()[0] == 60
    archs, labels, failed = read_distill_dataset(out)
    assert len(archs) == 60 and failed == 0 and archs[0].space == "demo"
    assert all(0 <= value <= 100 for value in labels)


def test_mlp_per_seed_and_its_table_1_row(tfs_eval: Path, tmp_path: Path) -> None:
    models = []
    for seed in (1, 2):
        dataset = _dataset(tfs_eval, tmp_path, seed)
        model = tmp_path / f"m{seed}.pt"
        argv = ["distill", "train", "--dataset", str(dataset), "--name", "LLM-Distill-PP test"]
        argv += ["--settings-json", '{"steps": 300, "lr": 0.001}', "--tfs-eval", str(tfs_eval)]
        assert main([*argv, "--task", "demo", "--seed", str(seed), "--out", str(model)]) == 0
        meta = json.loads(model.with_suffix(".json").read_text())
        assert meta["tfs_seed"] == seed and meta["architectures"] == 60
        assert meta["tfs_eval"]["n"] == 6 and meta["throughput_archs_per_s"] > 0
        models.append(str(model))
    predictions = tmp_path / "pp.jsonl"
    argv = ["llm-pp", "predict", "--tfs-eval", str(tfs_eval), "--demonstrations", "3"]
    assert main([*argv, "--cache", str(tmp_path / "c2.sqlite"), "--out", str(predictions)]) == 0
    table = tmp_path / "t1.csv"
    argv = ["llm-pp", "evaluate", "--tfs-eval", str(tfs_eval), "--predictions", str(predictions)]
    assert main([*argv, "--distill-models", *models, "--out", str(table)]) == 0
    rows = {line.split(",")[0]: line.split(",") for line in table.read_text().splitlines()[1:]}
    assert set(rows) == {"LLM-PP offline stand-in (no LLM) k=3", "LLM-Distill-PP test"}
    assert rows["LLM-Distill-PP test"][-1] == "2"  # mean ± std over both split seeds


def test_arch_files_and_bad_datasets(tmp_path: Path) -> None:
    archs = tmp_path / "archs.jsonl"
    lines = [json.dumps(ARCHS[0].to_dict()), json.dumps({"arch": ARCHS[1].to_dict()})]
    lines.append(json.dumps({"scratch": {"arch_info": ARCHS[2].to_arch_info()}}))
    archs.write_text("\n".join([*lines, lines[0]]) + "\n")
    assert [a.id for a in read_arch_file(archs, "demo")] == [a.id for a in ARCHS[:3]]
    archs.write_text('{"encoder_embed_dim": 3}\n')
    with pytest.raises(DataError, match=r"archs\.jsonl:1: not an architecture"):
        read_arch_file(archs, "demo")
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "arch,prediction,failed\n" + f'"{ARCHS[0].to_json()}",,True\n'.replace('"{', "'{")
    )
    bad.write_text("arch,prediction,failed\nx,,True\n")
    with pytest.raises(DataError, match="no labelled architectures"):
        read_distill_dataset(bad)
    with pytest.raises(DataError, match="not found"):
        read_distill_dataset(tmp_path / "none.csv")


def test_distillation_sets_never_hold_tfs_eval_architectures(
    tfs_eval: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """The distillation sample has its own seeded stream and excludes the TFS-Eval set, even
    with the TFS-Eval set's own seed (5); a given file that leaks an architecture is refused."""
    out = tmp_path / "d.csv"
    argv = ["distill", "dataset", "--tfs-eval", str(tfs_eval), "--task", "demo", "--seed", "1"]
    argv += ["--demonstrations", "3", "--cache", str(tmp_path / "cache.sqlite")]
    assert main([*argv, "--n", "200", "--sample-seed", "5", "--out", str(out)]) == 0
    labelled = set(pd.read_csv(out)["arch_id"])
    assert len(labelled) == 200 and not labelled & {arch.id for arch in ARCHS}
    leaky = tmp_path / "leaky.jsonl"
    leaky.write_text("".join(arch.to_json() + "\n" for arch in ARCHS[:2]))
    assert main([*argv, "--archs", str(leaky), "--out", str(tmp_path / "x.csv")]) != 0
    assert "2 architecture(s) of the TFS-Eval set" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()


def test_held_out_samples_have_their_own_stream_and_exclude() -> None:
    space = get_space("demo")
    tfs = tfs_sample(space, 30, seed=1)
    assert tfs == space.sample_unique(30, seed=1)  # the TFS-Eval set: the experiment seed
    assert stream_seed(1, "distill") != stream_seed(1, "supernet-mlp") != 1
    assert stream_seed(1, "distill") == stream_seed(1, "distill")
    # Excluding forces the draw past architectures it would otherwise have picked first.
    free = held_out_sample(space, 100, 1, "distill", exclude=())
    excluded = {arch.id for arch in free[:40]} | {arch.id for arch in tfs}
    drawn = held_out_sample(space, 100, 1, "distill", exclude=excluded)
    assert len({arch.id for arch in drawn}) == 100 and not {arch.id for arch in drawn} & excluded
    assert [arch.id for arch in drawn[:60]] == [arch.id for arch in free[40:]]

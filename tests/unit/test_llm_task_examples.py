"""Task examples of LLM-PP prompts: from the task's training data, never a test set; the examples
instruction is dropped when there are none; seeded and sorted by index as llmas."""

from __future__ import annotations

import gzip
import json
import random
import re
import sqlite3
from pathlib import Path

import pytest

from nasflow.cli import main
from nasflow.core.errors import ConfigError
from nasflow.core.io import read_lines
from nasflow.llm import examples as task_examples
from nasflow.llm.examples import (
    ORIGIN_DEV,
    ORIGIN_TRAIN,
    TaskExamples,
    refuse_test_set,
    sample_indices,
    sample_task_examples,
)
from nasflow.llm.prompts import VARIANTS, Demonstration, PromptTemplate, TaskInfo, render_prompt
from nasflow.space.hat import get_space
from nasflow.tfs.build import SplitSettings, build_tfs_eval

ARCHS = get_space("demo").sample_unique(6, seed=11)
LINES = 40


def _write(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(line + "\n" for line in lines).encode("utf-8")
    path.write_bytes(gzip.compress(text) if path.suffix == ".gz" else text)


def _pairs(folder: Path, stem: str, tag: str, langs=("en", "de"), gz: bool = False) -> None:
    """Line-aligned `{stem}.{lang}` files whose lines read `{tag} {lang} {i}`."""
    for lang in langs:
        name = f"{stem}.{lang}" + (".gz" if gz else "")
        _write(folder / name, [f"{tag} {lang} {i}" for i in range(LINES)])


@pytest.fixture()
def corpora(tmp_path: Path) -> dict[str, Path]:
    """Score files of six demo archs; a prepared corpus whose train, valid and test sentences
    differ; a mirror-like newstest folder (dev set newstest2013, test set newstest2014); and a
    WMT-like training corpus folder (train.{en,de}.gz)."""
    scores = []
    for i, arch in enumerate(ARCHS):
        path = tmp_path / "tfs" / arch.id / "score.json"
        path.parent.mkdir(parents=True)
        score = {"arch": arch.to_dict(), "valid": {"bleu": 10.0 + i, "loss_bits": 4.0}}
        path.write_text(json.dumps({**score, "test": {"bleu": 11.0 + i}}))
        scores.append(path)
    data = tmp_path / "data"
    _pairs(data, "train", "TRAIN")
    _pairs(data, "valid", "VALID")
    _pairs(data, "test", "TEST")
    splits = {"train": "train", "valid": "val", "test": "test_2016_flickr"}
    manifest = {
        "vocab_size": 500,
        "corpus": "multi30k",
        "languages": {"source": "en", "target": "de"},
        "splits": {role: {"split": name} for role, name in splits.items()},
    }
    (data / "manifest.json").write_text(json.dumps(manifest))
    newstest = tmp_path / "newstest"
    for name, tag in (("newstest2013", "DEV"), ("newstest2014", "TEST")):
        _pairs(newstest, f"en-de.{name}", tag, gz=True)
        _pairs(newstest, f"en-fr.{name}", tag, langs=("en", "fr"), gz=True)
    wmt = tmp_path / "wmt14_en_de"
    _pairs(wmt, "train", "WMTTRAIN", gz=True)
    return {"scores": scores, "data": data, "newstest": newstest, "wmt": wmt, "root": tmp_path}


def _build(corpora, task: str, pool: int) -> Path:
    out = corpora["root"] / f"tfs_eval_{task}"
    split = SplitSettings((1, 2), train_size=2, example_pool=pool)
    build_tfs_eval(corpora["scores"], corpora["data"], out, task, split)
    return out


def _predict(corpora, folder: Path, *extra: str, name: str = "pred") -> tuple[list, dict, list]:
    """Offline LLM-PP on `folder`: records, usage and the prompts sent (from the cache)."""
    out, cache = corpora["root"] / f"{name}.jsonl", corpora["root"] / f"{name}.sqlite"
    argv = ["llm-pp", "predict", "--tfs-eval", str(folder), "--demonstrations", "2"]
    argv += ["--examples-dir", str(corpora["newstest"]), *extra]
    assert main([*argv, "--cache", str(cache), "--out", str(out)]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    usage = json.loads(out.with_suffix(".usage.json").read_text())
    with sqlite3.connect(cache) as db:
        prompts = [row[0] for row in db.execute("SELECT prompt FROM replies")]
    return records, usage, prompts


def _inputs(prompt: str) -> list[str]:
    return re.findall(r"^Input: (.*)$", prompt, flags=re.MULTILINE)


def test_built_set_examples_come_from_its_train_split(corpora) -> None:
    folder = _build(corpora, "demo", pool=20)
    described = json.loads((folder / "tfs_eval.json").read_text())
    assert described["built_from"]["example_pool_split"] == "train"
    records, usage, prompts = _predict(corpora, folder)
    assert prompts and len(records) == 2 * 4
    for prompt in prompts:
        inputs = _inputs(prompt)
        assert len(inputs) == 5 and all(s.startswith("TRAIN en ") for s in inputs)
        assert "TEST" not in prompt and "VALID" not in prompt
    meta = records[0]["task_examples"]
    assert meta["origin"] == ORIGIN_TRAIN and meta["split"] == "train" and meta["shown"] == 5
    assert meta["corpus"].endswith("examples/demo.jsonl")
    assert all(r["task_examples"] == meta for r in records)
    assert usage["prompt"]["examples_from"] == {"demo": meta}


def test_build_refuses_a_test_set_as_the_train_role(corpora) -> None:
    manifest_path = corpora["data"] / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["splits"]["train"]["split"] = "test_2017_flickr"
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ConfigError, match=r"test_2017_flickr.*Multi30k test set"):
        _build(corpora, "demo", pool=20)


def test_released_task_takes_examples_from_its_training_corpus(corpora) -> None:
    folder = _build(corpora, "wmt14ende", pool=0)  # no pool: a released-like task
    train = f"wmt14ende={corpora['wmt']}"
    records, usage, prompts = _predict(corpora, folder, "--examples-train", train)
    for prompt in prompts:
        inputs = _inputs(prompt)
        assert len(inputs) == 5 and all(s.startswith("WMTTRAIN en ") for s in inputs)
        assert re.search(r"^Output: WMTTRAIN de \d+$", prompt, flags=re.MULTILINE)
    meta = records[0]["task_examples"]
    assert (meta["origin"], meta["split"], meta["shown"]) == (ORIGIN_TRAIN, "train", 5)
    assert "train.en.gz" in meta["corpus"]
    assert usage["prompt"]["examples_from"]["wmt14ende"]["origin"] == ORIGIN_TRAIN


def test_released_task_falls_back_to_the_development_set(corpora, capsys) -> None:
    folder = _build(corpora, "wmt14ende", pool=0)
    records, usage, prompts = _predict(corpora, folder)
    for prompt in prompts:
        inputs = _inputs(prompt)
        assert len(inputs) == 5 and all(s.startswith("DEV en ") for s in inputs)
        assert "TEST" not in prompt
    meta = records[0]["task_examples"]
    assert (meta["origin"], meta["split"]) == (ORIGIN_DEV, "newstest2013")
    assert usage["prompt"]["examples_from"]["wmt14ende"]["origin"] == "dev fallback"
    assert "dev fallback" in capsys.readouterr().err


def test_changing_the_example_source_changes_the_prompts_and_the_cache_keys(corpora) -> None:
    folder = _build(corpora, "wmt14ende", pool=0)
    _, dev_usage, dev_prompts = _predict(corpora, folder, name="shared")
    train = f"wmt14ende={corpora['wmt']}"
    _, usage, prompts = _predict(corpora, folder, "--examples-train", train, name="shared")
    # Same cache file: the new prompts are asked for, none of the dev-set replies is reused.
    assert dev_usage["requests"] == 8 and usage["cache_hits"] == 0 and usage["requests"] == 8
    assert len(dev_prompts) == 8 and all("DEV en" in p for p in dev_prompts)
    train_prompts = [p for p in prompts if "WMTTRAIN en" in p]
    assert (
        len(prompts) == 16 and len(train_prompts) == 8 and not set(train_prompts) & set(dev_prompts)
    )


@pytest.mark.parametrize(
    "name",
    [
        "newstest2014",
        "en-fr.newstest2014.en.gz",
        "/data/wmt/newstest2014",
        "newstest2018",
        "newstest2019",
        "NEWSTEST2019",
        "test_2016_flickr",
        "test_2017_mscoco",
    ],
)
def test_known_test_sets_are_refused(name: str) -> None:
    with pytest.raises(ConfigError, match="never from a test set"):
        refuse_test_set(name, "task examples")


@pytest.mark.parametrize("name", ["newstest2013", "newstest2017", "train", "val", "valid"])
def test_training_and_development_sets_pass(name: str) -> None:
    refuse_test_set(name, "task examples")


def test_test_sets_are_refused_wherever_examples_come_from(corpora, tmp_path, capsys) -> None:
    folder = _build(corpora, "wmt14ende", pool=0)
    test_dir = tmp_path / "newstest2014"
    _pairs(test_dir, "train", "TEST", gz=True)
    argv = ["llm-pp", "predict", "--tfs-eval", str(folder), "--examples-train"]
    argv += [f"wmt14ende={test_dir}", "--out", str(tmp_path / "p.jsonl")]
    assert main([*argv, "--cache", str(tmp_path / "c.sqlite")]) == 2
    assert "newstest2014, the WMT'14 test set" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="test_2016_flickr"):
        TaskExamples(ORIGIN_TRAIN, "test_2016_flickr", "x", pairs=(["a"], ["b"]))


def test_the_dev_fallback_table_holds_no_test_set(corpora, monkeypatch) -> None:
    for task, (_, name) in task_examples.DEV_FALLBACK.items():
        refuse_test_set(name, task)
    monkeypatch.setitem(task_examples.DEV_FALLBACK, "wmt14enfr", ("en-fr", "newstest2014"))
    with pytest.raises(ConfigError, match="newstest2014"):
        task_examples.dev_fallback("wmt14enfr", corpora["newstest"])


TASK = TaskInfo(dataset="WMT'14", source_language="English", target_language="German")


def _render(variant: str, examples) -> str:
    space = get_space("hat-wmt")
    rng = random.Random(0)
    demos = [Demonstration(space.sample(rng), 1.0 + i, 20.0 + i) for i in range(3)]
    return render_prompt(PromptTemplate.load(), variant, TASK, examples, demos, demos[0])


def _numbers(prompt: str) -> list[int]:
    block = prompt.split("Instructions:\n", 1)[1].split("\n\n", 1)[0]
    return [int(n) for n in re.findall(r"^(\d+)\. ", block, flags=re.MULTILINE)]


def test_no_examples_drop_the_instruction_and_renumber() -> None:
    pair = [("A dog runs .", "Ein Hund rennt .")]
    full, bare = _render("full", pair), _render("full", [])
    assert _numbers(full) == [1, 2, 3, 4, 5] and _numbers(bare) == [1, 2, 3, 4]
    assert "Some examples of" in full and "Example 1:" in full
    assert "Some examples of" not in bare and "Example" not in bare.split("Example arch")[0]
    assert "Input:" not in bare and "\n\n\n" not in bare
    # The backbone instruction moves up to 2; everything else is as with examples.
    assert re.search(r"^2\. Every architecture is a Transformer", bare, flags=re.MULTILINE)
    assert re.search(r"^3\. Every architecture is a Transformer", full, flags=re.MULTILINE)
    # The `examples` variant without examples is the `task` variant.
    assert _render("examples", []) == _render("task", pair) == _render("task", [])
    for variant in VARIANTS:
        numbers = _numbers(_render(variant, [])) if variant not in ("demos", "role_hparams") else []
        assert numbers == list(range(1, len(numbers) + 1))


def test_task_examples_zero_records_none_and_drops_the_instruction(corpora) -> None:
    folder = _build(corpora, "demo", pool=20)
    records, usage, prompts = _predict(corpora, folder, "--task-examples", "0")
    assert all("Input:" not in p and "Some examples of" not in p for p in prompts)
    assert all(_numbers(p) == [1, 2, 3, 4] for p in prompts)
    assert records[0]["task_examples"] == {
        "origin": "none",
        "split": None,
        "corpus": None,
        "shown": 0,
    }
    assert usage["prompt"]["examples_from"]["demo"]["origin"] == "none"


def _llmas_indices(n: int, k: int, seed: int) -> list[int]:
    """gpt_scorer.py: random.seed(seed), then randint until k distinct indices, sorted."""
    random.seed(seed)
    sampled: dict[int, None] = {}
    while len(sampled) < k:
        index = random.randint(0, n - 1)
        if index in sampled:
            continue
        sampled[index] = None
    return sorted(sampled)


@pytest.mark.parametrize("seed", [123, 456, 789, 1])
def test_sampling_is_seeded_sorted_and_draws_as_llmas(seed: int) -> None:
    assert sample_indices(4_500_000, 5, seed) == _llmas_indices(4_500_000, 5, seed)
    assert sample_indices(LINES, 5, seed) == _llmas_indices(LINES, 5, seed)
    sources = [f"s{i}" for i in range(LINES)]
    targets = [f"t{i}" for i in range(LINES)]
    one = sample_task_examples(sources, targets, 5, seed)
    assert one == sample_task_examples(sources, targets, 5, seed)
    indices = [int(s[1:]) for s, _ in one]
    assert indices == sorted(indices) == _llmas_indices(LINES, 5, seed)
    assert all(t == "t" + s[1:] for s, t in one)
    assert sample_task_examples(sources, targets, 5, seed + 1) != one
    assert sample_indices(3, 5, seed) == [0, 1, 2]  # a small pool: all of it


def test_a_streamed_corpus_draws_the_same_pairs_as_one_in_memory(corpora) -> None:
    files = (corpora["wmt"] / "train.en.gz", corpora["wmt"] / "train.de.gz")
    streamed = TaskExamples(ORIGIN_TRAIN, "train", "wmt", files=files)
    in_memory = TaskExamples(
        ORIGIN_TRAIN, "train", "wmt", pairs=(read_lines(files[0]), read_lines(files[1]))
    )
    assert len(streamed) == len(in_memory) == LINES
    for seed in (1, 2, 123):
        assert streamed.sample(5, seed) == in_memory.sample(5, seed)
    assert streamed.sample(0, 1) == []

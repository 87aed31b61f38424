"""LTS proxy check: the PTB-layout corpus, LM batching, training K archs, correlations, resume."""

from __future__ import annotations

import gzip
import itertools
import json
import math
import random
from pathlib import Path

import pytest
import torch

from nasflow.cli import main
from nasflow.core.errors import ConfigError, DataError
from nasflow.data.ptb import EOS, UNK, batchify, load_corpus, n_windows, window
from nasflow.lts import proxy_check as pc
from nasflow.space.gpt import GPTArch
from nasflow.space.gpt_params import decoder_params

WORDS = [f"w{i}" for i in range(20)]


def _lines(count: int, seed: int) -> list[str]:
    """A learnable toy language: mostly `w(3i+1 mod 20)` follows `wi`."""
    rng = random.Random(seed)
    lines = []
    for _ in range(count):
        word, line = rng.randrange(20), []
        for _ in range(rng.randint(3, 12)):
            line.append(WORDS[word])
            word = (3 * word + 1) % 20 if rng.random() < 0.8 else rng.randrange(20)
        lines.append(" " + " ".join(line) + " ")
    return lines


def write_toy_ptb(folder: Path, valid: bool = True, gz: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    splits = {"train": _lines(300, 1), "test": _lines(30, 3)}
    if valid:
        splits["valid"] = _lines(40, 2)
    for split, lines in splits.items():
        text = "\n".join(lines) + "\n"
        path = folder / f"ptb.{split}.txt"
        if gz:
            with gzip.open(path.with_suffix(".txt.gz"), "wt", encoding="utf-8") as handle:
                handle.write(text)
        else:
            path.write_text(text, encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_toy_ptb(tmp_path_factory.mktemp("ptb"))


# ---- corpus -----------------------------------------------------------------------------------
def test_corpus_tokens_vocab_and_unknown_words(tmp_path: Path) -> None:
    folder = tmp_path / "c"
    folder.mkdir()
    (folder / "ptb.train.txt").write_text(" a b <unk> \n\n c a \n", encoding="utf-8")
    (folder / "ptb.valid.txt").write_text(" a zebra \n", encoding="utf-8")
    corpus = load_corpus(folder)
    assert corpus.vocab == ["a", "b", UNK, EOS, "c"]
    assert corpus.train.tolist() == [0, 1, 2, 3, 3, 4, 0, 3]  # the empty line still ends in <eos>
    assert corpus.valid.tolist() == [0, 2, 3]  # zebra is unknown
    assert corpus.test.numel() == 0 and corpus.valid_source == "ptb.valid.txt"
    assert corpus.describe()["vocab_size"] == 5


def test_missing_valid_is_the_last_5_percent_of_train(tmp_path: Path) -> None:
    folder = write_toy_ptb(tmp_path / "novalid", valid=False, gz=True)
    corpus = load_corpus(folder)
    with gzip.open(folder / "ptb.train.txt.gz", "rt") as handle:
        lines = handle.read().splitlines()
    n_valid = math.ceil(0.05 * 300)
    assert corpus.valid_source.startswith(f"last {n_valid} of 300 lines of ptb.train.txt.gz")
    tail_tokens = sum(len(line.split()) + 1 for line in lines[-n_valid:])
    head_tokens = sum(len(line.split()) + 1 for line in lines[:-n_valid])
    assert (corpus.valid.numel(), corpus.train.numel()) == (tail_tokens, head_tokens)
    assert load_corpus(folder).fingerprint == corpus.fingerprint  # deterministic
    with pytest.raises(DataError, match="corpus folder not found"):
        load_corpus(tmp_path / "nope")
    with pytest.raises(DataError, match=r"no ptb.train.txt\(.gz\)"):
        load_corpus(tmp_path)


def test_batchify_and_windows() -> None:
    ids = torch.arange(23)
    streams = batchify(ids, 3)
    assert streams.tolist()[1] == list(range(7, 14))  # contiguous rows, tail dropped
    assert n_windows(streams, 3) == 2
    x, y = window(streams, 1, 3)
    assert x.tolist()[0] == [3, 4, 5] and y.tolist()[0] == [4, 5, 6]
    with pytest.raises(IndexError):
        window(streams, 2, 3)


# ---- recipe and correlations -------------------------------------------------------------------
def test_lr_schedule_and_settings_errors() -> None:
    settings = pc.ProxySettings(steps=100, lr=1.0)
    assert settings.warmup_steps == 10
    factors = [settings.recipe().lr_at(s) / settings.lr for s in range(100)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert factors[-1] == pytest.approx(0.1)
    assert all(a >= b for a, b in itertools.pairwise(factors[9:]))
    with pytest.raises(ConfigError, match="steps must be a positive integer"):
        pc.ProxySettings(steps=0)
    with pytest.raises(ConfigError, match="warmup"):
        pc.ProxySettings(steps=5, warmup=6)


def test_rank_correlations_sign_convention() -> None:
    assert pc.rank_correlations([1, 2, 3, 4], [4, 3, 2, 1]) == {"spearman": -1.0, "kendall": -1.0}
    assert pc.rank_correlations([1, 2], [5, 5]) == {"spearman": None, "kendall": None}
    rows = [
        {"decoder_params": 10, "total_params": 50, "valid_nll": 5.0},
        {"decoder_params": 20, "total_params": 40, "valid_nll": 4.0},
        {"decoder_params": 30, "total_params": 30, "valid_nll": 3.0},
    ]
    summary = pc.summarize(rows)  # more decoder params, lower perplexity: positive
    assert summary["decoder_params"] == {"spearman": 1.0, "kendall": 1.0}
    assert summary["total_params"] == {"spearman": -1.0, "kendall": -1.0}


# ---- proxy check ------------------------------------------------------------------------------
TINY = {"k": 3, "steps": 20, "batch": 4, "seq_len": 16, "lr": 3e-3, "seed": 1}


def test_proxy_check_trains_reports_and_resumes(
    toy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state.jsonl"
    result = pc.proxy_check(toy, "lts-demo", state_path=state, **TINY)
    assert (result["trained"], result["resumed"]) == (3, 0)
    rows = result["rows"]
    assert len({r["id"] for r in rows}) == 3
    for row in rows:
        arch = GPTArch.from_dict(row["arch"])
        assert row["decoder_params"] == decoder_params(arch)
        assert math.isfinite(row["valid_ppl"]) and 1 < row["valid_ppl"] < 23  # below uniform
        assert row["train_seconds"] >= 0 and row["valid_tokens_scored"] > 0
    for key in ("decoder_params", "total_params"):
        for value in result["correlations"][key].values():
            assert value is not None and -1 <= value <= 1
    assert result["correlations"]["n"] == 3
    assert "positive means more parameters -> lower perplexity" in result["sign_convention"]
    assert len(state.read_text().splitlines()) == 3
    json.dumps(result, allow_nan=False)  # strict JSON

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("a finished architecture was trained again")

    monkeypatch.setattr(pc, "train_and_evaluate", no_training)
    again = pc.proxy_check(toy, "lts-demo", state_path=state, **TINY)
    assert (again["trained"], again["resumed"]) == (0, 3)
    assert again["correlations"] == result["correlations"]
    assert len(state.read_text().splitlines()) == 3
    # a different recipe must not silently reuse the rows
    with pytest.raises(DataError, match="state written for other settings"):
        pc.proxy_check(toy, "lts-demo", state_path=state, **{**TINY, "steps": 21})


def test_state_torn_last_line_is_dropped(toy: Path, tmp_path: Path) -> None:
    state = tmp_path / "state.jsonl"
    first = pc.proxy_check(toy, "lts-demo", state_path=state, **{**TINY, "k": 1, "steps": 3})
    with open(state, "a", encoding="utf-8") as handle:
        handle.write('{"id": "torn", "fing')  # killed mid-append
    grown = pc.proxy_check(toy, "lts-demo", state_path=state, **{**TINY, "k": 2, "steps": 3})
    assert (grown["trained"], grown["resumed"]) == (1, 1)  # K grew: only the new arch trains
    assert grown["rows"][0]["id"] == first["rows"][0]["id"]
    assert [json.loads(x)["id"] for x in state.read_text().splitlines()] == [
        r["id"] for r in grown["rows"]
    ]


def test_proxy_check_cli(toy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, rows = tmp_path / "result.json", tmp_path / "rows.csv"
    argv = ["lts", "proxy-check", "--corpus", str(toy), "--space", "lts-demo", "--n", "2"]
    argv += ["--steps", "5", "--batch-size", "4", "--seq-len", "16", "--out", str(out)]
    assert main([*argv, "--csv", str(rows)]) == 0
    result = json.loads(out.read_text())
    assert result["trained"] == 2 and result["settings"]["steps"] == 5
    assert (tmp_path / "result.json.state.jsonl").is_file()
    lines = rows.read_text().splitlines()
    assert lines[0].startswith("id,arch,n_layer,d_model,d_inner,n_head,decoder_params")
    assert len(lines) == 3
    err = capsys.readouterr().err
    assert "[2/2]" in err and "decoder params spearman" in err
    assert main(argv) == 0
    assert json.loads(out.read_text())["resumed"] == 2
    assert main([*argv[:-2], "--out", str(out), "--space", "nope"]) == 2
    assert "unknown LTS space 'nope'" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA error")
def test_cuda_requested_without_cuda(toy: Path) -> None:
    with pytest.raises(ConfigError, match="CUDA is not available"):
        pc.proxy_check(toy, "lts-demo", device="cuda", **TINY)

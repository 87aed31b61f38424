"""The text-prediction vocabulary and encoded corpora (`nasflow.text_prediction.corpus`)."""

from __future__ import annotations

import gzip
import itertools
import json
import random
import re
from pathlib import Path

import numpy as np
import pytest

from nasflow.core.errors import ConfigError, DataError
from nasflow.text_prediction.corpus import build_data, load_data

WORDS = ("ka", "lon", "mira", "tu", "sel", "vo")
VOCAB = 300  # 256 bytes + 3 specials + a few characters and merges


def lines(count: int, seed: int, capital: bool = False) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        words = [rng.choice(WORDS) for _ in range(rng.randint(2, 9))]
        if capital:
            words[0] = words[0].capitalize()
        out.append(" ".join(words))
    return out


def write(path: Path, rows: list[str], gz: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(row + "\n" for row in rows)
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def ptb_folder(root: Path, test: bool = True) -> Path:
    folder = root / "ptb"
    write(folder / "ptb.train.txt", lines(300, 1))
    write(folder / "ptb.valid.txt", ["", *lines(20, 2), "  "])  # blank lines are dropped
    if test:
        write(folder / "ptb.test.txt.gz", lines(25, 3), gz=True)
    return folder


def multi30k_folder(root: Path) -> Path:
    folder = root / "multi30k"
    write(folder / "train.en.gz", lines(200, 4, capital=True), gz=True)
    write(folder / "val.en", lines(15, 5, capital=True))
    write(folder / "test_2016_flickr.en", lines(12, 6, capital=True))
    return folder


@pytest.fixture()
def corpora(tmp_path: Path) -> tuple[Path, Path]:
    return ptb_folder(tmp_path), multi30k_folder(tmp_path)


def test_folders_build_every_split_with_eos_after_each_line(
    tmp_path: Path, corpora: tuple[Path, Path]
) -> None:
    data = build_data(*corpora, tmp_path / "data", VOCAB)
    assert data.vocab_size == VOCAB and data.eos_id == 1
    assert data.processor.id_to_piece(data.eos_id) == "</s>"
    assert data.processor.id_to_piece(0) == "<spm-unk>" and data.processor.bos_id() == -1
    for corpus in ("pretrain", "finetune"):
        assert data.splits(corpus) == ("train", "valid", "test")
        assert data.heldout_split(corpus) == "test"
    expected = {
        ("pretrain", "train"): lines(300, 1),
        ("pretrain", "valid"): lines(20, 2),
        ("pretrain", "test"): lines(25, 3),
        ("finetune", "train"): lines(200, 4, True),
        ("finetune", "valid"): lines(15, 5, True),
        ("finetune", "test"): lines(12, 6, True),
    }
    info = json.loads((tmp_path / "data" / "data.json").read_text())
    for (corpus, split), text in expected.items():
        ids, offsets = data.ids(corpus, split), data.offsets(corpus, split)
        assert ids.dtype == np.int32 and offsets[0] == 0 and offsets[-1] == ids.size
        assert data.lines(corpus, split) == len(text) == offsets.size - 1
        for line, (a, b) in zip(text, itertools.pairwise(offsets), strict=True):
            assert ids[b - 1] == data.eos_id and data.eos_id not in ids[a : b - 1]
            assert ids[a : b - 1].tolist() == data.processor.encode(line)
        words = sum(len(line.split()) for line in text) + len(text)
        assert data.words(corpus, split) == words
        entry = info["corpora"][corpus]["splits"][split]
        assert (entry["lines"], entry["tokens"], entry["words"]) == (len(text), ids.size, words)
        if split != "train":
            assert data.sentences(corpus, split) == text
            chars = sum(len(line) for line in text)
            assert entry["chars"] == chars
            assert data.chars_per_token(corpus, split) == pytest.approx(
                chars / (ids.size - len(text))
            )
    assert info["corpora"]["pretrain"]["splits"]["valid"]["blank_lines_dropped"] == 2
    assert info["tokenizer_lines"] == 500
    assert np.array_equal(data.ids("finetune", "val"), data.ids("finetune", "valid"))
    with pytest.raises(DataError, match="sentences are stored for valid and test"):
        data.sentences("pretrain", "train")
    with pytest.raises(DataError, match="no 'dev' split"):
        data.ids("finetune", "dev")
    loaded = load_data(tmp_path / "data")
    assert loaded.fingerprint == data.fingerprint == info["fingerprint"]
    assert np.array_equal(loaded.ids("pretrain", "test"), data.ids("pretrain", "test"))
    assert loaded.sentences("finetune", "test") == data.sentences("finetune", "test")
    assert "finetune: train 200 lines" in loaded.describe()


def test_two_builds_write_identical_bytes(tmp_path: Path, corpora: tuple[Path, Path]) -> None:
    build_data(*corpora, tmp_path / "a", VOCAB)
    build_data(*corpora, tmp_path / "b", VOCAB)
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == ["data.json", "finetune.npz", "pretrain.npz", "sentences.json", "spm.model"]
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_single_files_split_off_valid_and_test(tmp_path: Path) -> None:
    pretrain = write(tmp_path / "pre.txt", lines(100, 1))
    finetune = write(tmp_path / "fine.txt.gz", [*lines(30, 2), "", *lines(10, 3)], gz=True)
    data = build_data(pretrain, finetune, tmp_path / "data", VOCAB)
    assert data.splits("pretrain") == ("train", "valid")
    assert data.heldout_split("pretrain") == "valid"
    assert data.lines("pretrain", "valid") == 5 and data.lines("pretrain", "train") == 95
    assert data.sentences("pretrain", "valid") == lines(100, 1)[-5:]
    fine = [*lines(30, 2), *lines(10, 3)]  # 40 text lines: valid and test get ceil(5%) = 2 each
    assert [data.lines("finetune", s) for s in ("train", "valid", "test")] == [36, 2, 2]
    assert data.sentences("finetune", "test") == fine[-2:]
    assert data.sentences("finetune", "valid") == fine[36:38]
    info = data.info["corpora"]
    assert info["pretrain"]["heldout"] == "valid"
    assert "no test split: the validation split is the held-out" in info["pretrain"]["note"]
    assert "36/2/2" in info["finetune"]["split"]
    other = build_data(pretrain, finetune, tmp_path / "d2", VOCAB, finetune_split=[0.5, 0.25, 0.25])
    assert [other.lines("finetune", s) for s in ("train", "valid", "test")] == [20, 10, 10]


def _assert_nothing_written(out: Path) -> None:
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize(
    ("damage", "error", "message"),
    [
        ("no_pretrain", DataError, "{root}/missing: corpus folder not found"),
        ("no_val", DataError, "{root}/multi30k/val.en: not found"),
        ("empty_valid", DataError, "{root}/ptb/ptb.valid.txt: the pretrain corpus's valid split"),
        ("empty_test", DataError, "{root}/ptb/ptb.test.txt.gz: the pretrain corpus's test split"),
        ("no_words", DataError, "{root}/multi30k/train.en.gz: no line of the finetune corpus"),
        ("huge_vocab", ConfigError, "config key text_prediction.vocab_size: SentencePiece"),
        ("bad_split", ConfigError, "text_prediction.finetune_split must sum to 1"),
        ("tiny_file", DataError, "{root}/fine.txt: 2 non-blank line(s) are too few"),
    ],
)
def test_bad_input_fails_before_anything_is_written(
    tmp_path: Path, damage: str, error: type[Exception], message: str
) -> None:
    pretrain, finetune = ptb_folder(tmp_path), multi30k_folder(tmp_path)
    vocab, split = VOCAB, (0.9, 0.05, 0.05)
    if damage == "no_pretrain":
        pretrain = tmp_path / "missing"
    elif damage == "no_val":
        (finetune / "val.en").unlink()
    elif damage == "empty_valid":
        write(pretrain / "ptb.valid.txt", ["", " "])
    elif damage == "empty_test":
        write(pretrain / "ptb.test.txt.gz", [], gz=True)
    elif damage == "no_words":
        write(finetune / "train.en.gz", ["x" * 50, "y" * 80], gz=True)
    elif damage == "huge_vocab":
        vocab = 50_000
    elif damage == "bad_split":
        split = (0.9, 0.1, 0.1)
    elif damage == "tiny_file":
        finetune = write(tmp_path / "fine.txt", ["a b", "c d"])
    out = tmp_path / "out"
    with pytest.raises(error, match=re.escape(message.format(root=tmp_path))):
        build_data(pretrain, finetune, out, vocab, finetune_split=split)
    _assert_nothing_written(out)


def test_load_refuses_a_changed_or_missing_folder(
    tmp_path: Path, corpora: tuple[Path, Path]
) -> None:
    out = tmp_path / "data"
    build_data(*corpora, out, VOCAB)
    with pytest.raises(DataError, match="not a text-prediction data folder"):
        load_data(tmp_path / "nothing")
    sentences = json.loads((out / "sentences.json").read_text())
    sentences["finetune"]["test"][0] = "changed"
    (out / "sentences.json").write_text(json.dumps(sentences))
    with pytest.raises(DataError, match=r"do not match data\.json"):
        load_data(out)


def test_shared_ptb_and_multi30k(tmp_path: Path, mirror: Path) -> None:
    """The real corpora: split sizes (PTB's 73,760 / 82,430 validation / test words)."""
    ptb, multi30k = mirror / "ptb", mirror / "multi30k"
    needed = [ptb / "ptb.train.txt.gz", multi30k / "train.en.gz", multi30k / "val.en.gz"]
    if not all(path.is_file() for path in needed):
        pytest.skip("PTB or Multi30k not in the shared data mirror")
    data = build_data(ptb, multi30k, tmp_path / "data", 1000)
    sizes = {c: [data.lines(c, s) for s in data.splits(c)] for c in ("pretrain", "finetune")}
    assert sizes == {"pretrain": [42068, 3370, 3761], "finetune": [29000, 1014, 1000]}
    assert data.words("pretrain", "valid") == 73760
    assert data.words("pretrain", "test") == 82430
    assert data.info["corpora"]["pretrain"]["splits"]["test"]["lines_altered_by_decoding"] == 0
    assert 2.5 < data.chars_per_token("finetune", "test") < 4.5
    assert data.heldout_split("pretrain") == data.heldout_split("finetune") == "test"

"""The latency protocol's real text: tokenizer, characters per token, held-out prompts."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import sentencepiece as spm

from nasflow.core.errors import ConfigError, DataError
from nasflow.data.ptb import read_splits
from nasflow.lts.text import (
    DEFAULT_VOCAB,
    TextSet,
    build_text_set,
    load_text_set,
    resolve_text_corpus,
    text_corpus,
    tokenizer_vocab,
)

WORDS = ("ka", "lon", "mira", "tu")
# 288 = 256 bytes + 4 + the corpus's characters and merges: every training word is one piece.
VOCAB = 288
HELDOUT = " ka  lon mira \n\ntu tu ka\nka zé <unk>\n"


def write_corpus(folder: Path, heldout: str = HELDOUT) -> Path:
    """Training lines of four words in random order, and a held-out file."""
    rng = random.Random(0)
    lines = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12))) for _ in range(400)]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ptb.train.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "ptb.valid.txt").write_text(heldout, encoding="utf-8")
    return folder


def test_chars_per_token_from_the_tokenizer_on_known_text(tmp_path: Path) -> None:
    text = build_text_set(write_corpus(tmp_path / "c"), tmp_path / "t", VOCAB)
    sp = spm.SentencePieceProcessor(model_file=str(tmp_path / "t" / "spm.model"))
    assert sp.get_piece_size() == text.vocab_size == VOCAB
    # Whole words are one piece; unseen characters fall back to their UTF-8 bytes (z, é = 2),
    # and `<unk>` is text like any other (2 bytes + 3 letters), so decoding is lossless.
    assert sp.encode("ka lon mira", out_type=str) == ["▁ka", "▁lon", "▁mira"]
    assert len(sp.encode("ka zé <unk>")) == 11
    # Held-out: blank line skipped, whitespace collapsed; "ka lon mira" (11 characters,
    # 3 tokens), "tu tu ka" (8, 3), "ka zé <unk>" (11, 11).
    assert (text.chars, text.tokens) == (30, 17)
    assert text.chars_per_token == pytest.approx(30 / 17)
    assert text.info["lines_altered_by_decoding"] == 0
    assert text.info["heldout_lines"] == 3 and text.info["heldout_source"] == "ptb.valid.txt"
    assert text.info["chars_per_token"] == pytest.approx(30 / 17)


def test_text_set_is_deterministic_and_checked_on_load(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "c")
    first = build_text_set(corpus, tmp_path / "a", VOCAB)
    again = build_text_set(corpus, tmp_path / "b", VOCAB)
    assert first.fingerprint == again.fingerprint
    loaded = load_text_set(tmp_path / "a")
    assert loaded.fingerprint == first.fingerprint and np.array_equal(loaded.ids, first.ids)
    assert (loaded.chars, loaded.vocab_size) == (30, VOCAB)
    other = build_text_set(write_corpus(tmp_path / "d", "tu ka\n"), tmp_path / "d2", VOCAB)
    assert other.fingerprint != first.fingerprint and other.tokens == 2
    (tmp_path / "b" / "heldout.npz").write_bytes((tmp_path / "d2" / "heldout.npz").read_bytes())
    with pytest.raises(DataError, match=r"does not match text\.json"):
        load_text_set(tmp_path / "b")
    with pytest.raises(DataError, match="not a text set"):
        load_text_set(tmp_path / "nothing")


def test_vocabulary_too_large_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"lts.text.vocab_size.*<= 288"):
        build_text_set(write_corpus(tmp_path / "c"), tmp_path / "t", 400)


def test_single_file_corpus_holds_out_its_last_lines(tmp_path: Path) -> None:
    path = tmp_path / "story.txt"
    path.write_text("".join(f"line {i}\n" for i in range(40)), encoding="utf-8")
    splits = read_splits(path)
    assert len(splits.train) == 38 and splits.valid == ["line 38", "line 39"]
    assert splits.valid_source.startswith("last 2 of 40 lines of story.txt")


def stream(tokens: int) -> TextSet:
    """A text set whose held-out ids are 0, 1, 2, ... (so a prompt's ids tell its offset)."""
    return TextSet(np.arange(tokens, dtype=np.int32), 4 * tokens, tokens, "arange")


def test_prompts_vary_in_length_and_are_seeded_slices_of_heldout_text() -> None:
    text = stream(500)
    prompts = text.prompts(40, 4, 12, seed=3)
    lengths = [p.size for p in prompts]
    assert len(prompts) == 40 and min(lengths) >= 4 and max(lengths) <= 12
    assert len(set(lengths)) >= 6  # uniform over 9 lengths: they really vary
    for p in prompts:  # contiguous held-out text
        assert p.dtype == np.int64 and np.array_equal(p, np.arange(p[0], p[0] + p.size))
    assert len({int(p[0]) for p in prompts}) >= 30  # different places of the text
    same = text.prompts(40, 4, 12, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(prompts, same, strict=True))
    assert [p.size for p in text.prompts(40, 4, 12, seed=4)] != lengths
    assert [p.size for p in text.prompts(5, 7, 7, seed=0)] == [7] * 5
    with pytest.raises(DataError, match="fewer than a 600-token prompt"):
        text.prompts(1, 1, 600, seed=0)
    with pytest.raises(ConfigError, match="1 <= min <= max"):
        text.prompts(1, 9, 8, seed=0)


def test_corpus_resolution_and_the_error_naming_the_key(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("NASFLOW_MIRROR", raising=False)
    assert resolve_text_corpus({}) is None
    with pytest.raises(ConfigError, match=r"^config key lts.text.corpus: .*NASFLOW_MIRROR"):
        text_corpus({"text": {"corpus": None}, "proxy_check": {"corpus": None}})
    assert resolve_text_corpus({}, mirror="/m") == str(Path("/m") / "ptb")
    monkeypatch.setenv("NASFLOW_MIRROR", str(tmp_path))
    assert resolve_text_corpus({}) == str(tmp_path / "ptb")
    section = {"proxy_check": {"corpus": "p"}}
    assert resolve_text_corpus(section) == "p"
    assert resolve_text_corpus({**section, "text": {"corpus": "t"}}) == "t"
    with pytest.raises(ConfigError, match=r"config key lts.text.corpus: .*ptb not found"):
        text_corpus({})
    (tmp_path / "ptb").mkdir()
    assert text_corpus({}) == tmp_path / "ptb"


def test_tokenizer_vocabulary_default_and_bounds() -> None:
    assert DEFAULT_VOCAB == 4000
    assert tokenizer_vocab({}) == 4000
    assert tokenizer_vocab({"measure": {"vocab_size": 1000}}) == 1000
    assert tokenizer_vocab({"text": {"vocab_size": 300}}) == 300
    with pytest.raises(ConfigError, match=r"lts.text.vocab_size \(600\) exceeds lts.measure"):
        tokenizer_vocab({"text": {"vocab_size": 600}, "measure": {"vocab_size": 500}})
    with pytest.raises(ConfigError, match=r"lts\.text\.vocab_size must be an integer"):
        tokenizer_vocab({"text": {"vocab_size": "4k"}})

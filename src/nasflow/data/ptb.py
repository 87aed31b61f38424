"""Penn Treebank (Mikolov's split) as a word-level language-modelling corpus.

Tokens are the whitespace-separated words of each line followed by `<eos>` (every line,
empty ones included), as in the usual PTB word-level setup (e.g. PyTorch's
`word_language_model` example). The vocabulary is built from the training split in order of
first appearance; `<unk>` (already in PTB) and `<eos>` are always in it, and words of the other
splits that the training split lacks map to `<unk>` (PTB has none: 10,000 types).

Files, in `folder`: `ptb.{train,valid,test}.txt` or the same with `.gz` (also accepted without
the `ptb.` prefix). When there is no validation file, the validation split is the **last 5% of the
training lines** (`ceil(0.05 * lines)`, configurable) and the training split keeps the rest;
`LMCorpus.valid_source` says which was used. A missing test file is allowed (`test` is empty).
`read_splits` returns the raw lines of the same splits (also of a single plain-text file), for
the latency protocol's tokenizer (`nasflow.lts.text`).

`batchify` lays a token stream out as `batch` contiguous rows; `window` cuts the input/target
pair at a column offset (targets are the inputs shifted by one token).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from nasflow.core.errors import DataError
from nasflow.core.io import read_lines

EOS = "<eos>"
UNK = "<unk>"
VALID_FRACTION = 0.05


@dataclass
class LMCorpus:
    """A tokenised corpus: `vocab[i]` is word `i`; splits are 1-D int64 tensors of ids."""

    vocab: list[str]
    train: Tensor
    valid: Tensor
    test: Tensor
    folder: str = ""
    valid_source: str = ""
    files: dict[str, str] = field(default_factory=dict)

    @cached_property
    def index(self) -> dict[str, int]:
        return {word: i for i, word in enumerate(self.vocab)}

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def describe(self) -> dict[str, Any]:
        """JSON-ready summary (sizes, sources and a fingerprint of vocabulary and splits)."""
        return {
            "folder": self.folder,
            "files": self.files,
            "valid_source": self.valid_source,
            "vocab_size": self.vocab_size,
            "train_tokens": int(self.train.numel()),
            "valid_tokens": int(self.valid.numel()),
            "test_tokens": int(self.test.numel()),
            "fingerprint": self.fingerprint,
        }

    @cached_property
    def fingerprint(self) -> str:
        """Short sha1 over the vocabulary and the three id streams."""
        digest = hashlib.sha1("\n".join(self.vocab).encode("utf-8"))
        for split in (self.train, self.valid, self.test):
            digest.update(split.numpy().tobytes())
        return digest.hexdigest()[:12]


def tokenize(lines: Sequence[str]) -> list[str]:
    """Whitespace words of every line, each line closed by `<eos>`."""
    tokens: list[str] = []
    for line in lines:
        tokens.extend(line.split())
        tokens.append(EOS)
    return tokens


def build_vocab(tokens: Sequence[str]) -> list[str]:
    """Words in order of first appearance; `<unk>` and `<eos>` appended if absent."""
    vocab = list(dict.fromkeys(tokens))
    for special in (UNK, EOS):
        if special not in vocab:
            vocab.append(special)
    return vocab


def encode(tokens: Sequence[str], index: dict[str, int]) -> Tensor:
    """Ids of `tokens`; unknown words become `<unk>`."""
    unk = index[UNK]
    return torch.tensor([index.get(t, unk) for t in tokens], dtype=torch.long)


def _find(folder: Path, split: str) -> Path | None:
    for stem in (f"ptb.{split}.txt", f"{split}.txt"):
        for suffix in ("", ".gz"):
            path = folder / f"{stem}{suffix}"
            if path.is_file():
                return path
    return None


@dataclass(frozen=True)
class TextSplits:
    """The raw lines of a corpus's splits, and where each came from."""

    train: list[str]
    valid: list[str]
    test: list[str]
    files: dict[str, str]
    valid_source: str


def _split_off_valid(lines: list[str], name: str, fraction: float) -> tuple[list, list, str]:
    """(train, valid, description): valid is the last `ceil(fraction * len)` lines."""
    if not 0.0 < fraction < 1.0:
        raise DataError(f"valid_fraction must be in (0, 1), got {fraction}")
    n_valid = math.ceil(fraction * len(lines))
    if n_valid >= len(lines):
        raise DataError(f"{name}: too few lines ({len(lines)}) to split off valid")
    train = lines[:-n_valid]
    source = (
        f"last {n_valid} of {len(lines)} lines of {Path(name).name} "
        f"({fraction:g}); train keeps the first {len(train)}"
    )
    return train, lines[-n_valid:], source


def read_splits(path: str | Path, valid_fraction: float = VALID_FRACTION) -> TextSplits:
    """The lines of a PTB-layout folder (see the module docstring), or of one plain-text file
    (`.gz` allowed) whose last `valid_fraction` of lines is the validation split."""
    path = Path(path)
    if path.is_file():
        train, valid, source = _split_off_valid(read_lines(path), str(path), valid_fraction)
        return TextSplits(train, valid, [], {"train": path.name}, source)
    if not path.is_dir():
        raise DataError(f"{path}: corpus folder not found")
    train_path = _find(path, "train")
    if train_path is None:
        raise DataError(f"{path}: no ptb.train.txt(.gz) or train.txt(.gz)")
    train_lines = read_lines(train_path)
    files = {"train": train_path.name}
    valid_path = _find(path, "valid")
    if valid_path is not None:
        valid_lines = read_lines(valid_path)
        files["valid"] = valid_path.name
        valid_source = valid_path.name
    else:
        train_lines, valid_lines, valid_source = _split_off_valid(
            train_lines, train_path.name, valid_fraction
        )
    test_path = _find(path, "test")
    test_lines = read_lines(test_path) if test_path is not None else []
    if test_path is not None:
        files["test"] = test_path.name
    return TextSplits(train_lines, valid_lines, test_lines, files, valid_source)


def load_corpus(folder: str | Path, valid_fraction: float = VALID_FRACTION) -> LMCorpus:
    """Load a PTB-layout word-level corpus from `folder` (see the module docstring)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: corpus folder not found")
    splits = read_splits(folder, valid_fraction)
    train_tokens = tokenize(splits.train)
    vocab = build_vocab(train_tokens)
    index = {w: i for i, w in enumerate(vocab)}
    corpus = LMCorpus(
        vocab=vocab,
        train=encode(train_tokens, index),
        valid=encode(tokenize(splits.valid), index),
        test=encode(tokenize(splits.test), index),
        folder=str(folder),
        valid_source=splits.valid_source,
        files=splits.files,
    )
    corpus.__dict__["index"] = index
    return corpus


def batchify(ids: Tensor, batch: int) -> Tensor:
    """`(batch, n)` contiguous streams: row `i` is the `i`-th slice of `ids` (tail dropped)."""
    if batch < 1:
        raise ValueError(f"batch must be positive, got {batch}")
    n = ids.numel() // batch
    if n < 2:
        raise DataError(f"{ids.numel()} tokens are too few for {batch} streams")
    return ids[: n * batch].view(batch, n)


def n_windows(streams: Tensor, seq_len: int) -> int:
    """How many non-overlapping `seq_len` windows (with their shifted targets) fit."""
    return (streams.shape[1] - 1) // seq_len


def window(streams: Tensor, index: int, seq_len: int) -> tuple[Tensor, Tensor]:
    """Inputs `streams[:, s:s+L]` and targets `streams[:, s+1:s+L+1]` for `s = index * L`."""
    start = index * seq_len
    if index < 0 or start + seq_len + 1 > streams.shape[1]:
        raise IndexError(f"window {index} of length {seq_len} outside {streams.shape[1]} columns")
    return (
        streams[:, start : start + seq_len],
        streams[:, start + 1 : start + seq_len + 1],
    )

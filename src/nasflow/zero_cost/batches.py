"""The one fixed batch the zero-cost proxies are computed on, and what it is (for the sidecar).

- From a prepared data folder (`nasflow data prepare`): the first batch of a seeded shuffle of
  its train split (`batch_indices` with `shuffle=True`: a length bucket within `batch_tokens`).
- For the released WMT tasks, whose training corpora are not in the mirror: newstest2013 (the
  WMT'14 development set of both pairs; `nasflow.llm.examples.DEV_FALLBACK`), tokenised by a
  SentencePiece BPE of `bpe_vocab` pieces trained on it (one thread, file order, cached in a
  work folder); the batch is its first sentence pairs in file order within `batch_tokens`.
  The model keeps the task's vocabulary size; these ids merely stay below `bpe_vocab`.

Cost of n sentences: n * (longest source or target, EOS included), as in `nasflow.data.batching`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import sentencepiece as spm

from nasflow.core.errors import ConfigError, DataError
from nasflow.core.io import write_json_atomic
from nasflow.data.batching import Batch, batch_indices, collate, filter_by_length, sentence_lengths
from nasflow.data.checks import read_parallel
from nasflow.data.corpora import sha256_file
from nasflow.data.prepare import (
    EncodedSplit,
    encode_lines,
    load_split,
    load_vocab_size,
    train_sentencepiece,
)
from nasflow.llm.examples import DEV_FALLBACK, TASK_LANGUAGES

SPM_SEED = 1
"""SentencePiece's random seed for the newstest BPE (BPE training draws nothing with it)."""


@dataclass(frozen=True)
class ScoringBatch:
    """A collated batch and a JSON-able description of where it comes from."""

    batch: Batch
    info: dict[str, Any]


def _describe(batch: Batch, batch_tokens: int) -> dict[str, Any]:
    return {
        "batch_tokens": batch_tokens,
        "sentences": batch.size,
        "src_tokens": int(batch.src_lengths.sum()),
        "target_tokens": batch.ntokens,
        "src_shape": list(batch.src_tokens.shape),
        "target_shape": list(batch.target.shape),
    }


def _check_budget(batch_tokens: int) -> None:
    if batch_tokens < 2:
        raise ConfigError(f"batch_tokens must be at least 2, got {batch_tokens}")


def prepared_batch(
    data_dir: str | Path, *, batch_tokens: int = 1024, seed: int = 1, max_positions: int = 1024
) -> ScoringBatch:
    """The first batch of the train split of a prepared folder, shuffled with `seed`.

    Sentences longer than `min(batch_tokens, max_positions)` (EOS included) are skipped.
    """
    _check_budget(batch_tokens)
    split = load_split(data_dir, "train")
    limit = min(batch_tokens, max_positions)
    batches = batch_indices(split, batch_tokens, shuffle=True, seed=seed, max_positions=limit)
    if not batches:
        raise DataError(f"{data_dir}: no train sentence fits {limit} tokens")
    batch = collate(split, batches[0])
    info = {
        "source": "prepared",
        "data": str(data_dir),
        "split": "train",
        "shuffle_seed": seed,
        "vocab_size": load_vocab_size(data_dir),
        **_describe(batch, batch_tokens),
        "indices": [int(i) for i in batches[0]],
    }
    return ScoringBatch(batch, info)


def newstest_files(task: str, newstest_dir: str | Path) -> tuple[Path, Path]:
    """Source and target newstest2013 files of a released task (`{pair}.newstest2013.{lang}.gz`)."""
    if task not in DEV_FALLBACK:
        raise ConfigError(
            f"no newstest2013 for task {task!r} (known: {', '.join(DEV_FALLBACK)}); use --data"
        )
    (pair, name), (source, target) = DEV_FALLBACK[task], TASK_LANGUAGES[task]
    folder = Path(newstest_dir)
    return folder / f"{pair}.{name}.{source}.gz", folder / f"{pair}.{name}.{target}.gz"


def _bpe(
    files: tuple[Path, Path], lines: list[str], work_dir: Path, bpe_vocab: int
) -> tuple[spm.SentencePieceProcessor, Path]:
    """The BPE model of `lines`, trained once per input and size and cached in `work_dir`."""
    folder = work_dir / f"{files[0].name.rsplit('.', 2)[0]}.bpe{bpe_vocab}"
    inputs = {
        "files": {str(f): sha256_file(f) for f in files},
        "bpe_vocab": bpe_vocab,
        "seed": SPM_SEED,
        "sentencepiece_version": spm.__version__,
    }
    record = folder / "inputs.json"
    model = folder / "spm.model"
    if model.is_file() and record.is_file():
        try:
            cached = json.loads(record.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            cached = None
        if cached == inputs:
            return spm.SentencePieceProcessor(model_file=str(model)), model
    folder.mkdir(parents=True, exist_ok=True)
    record.unlink(missing_ok=True)
    try:
        processor = train_sentencepiece(
            lines, folder, vocab_size=bpe_vocab, model_type="bpe", seed=SPM_SEED, threads=1
        )
    except RuntimeError as error:
        names = ", ".join(map(str, files))
        raise ConfigError(f"BPE of {bpe_vocab} pieces on {names} failed: {error}") from None
    write_json_atomic(record, inputs)
    return processor, model


def newstest_batch(
    task: str,
    newstest_dir: str | Path,
    work_dir: str | Path,
    *,
    batch_tokens: int = 1024,
    bpe_vocab: int = 8000,
    max_positions: int = 1024,
) -> ScoringBatch:
    """The first newstest2013 sentence pairs of `task` within `batch_tokens`, in file order.

    Pairs longer than `min(batch_tokens, max_positions)` are skipped. Missing or malformed files
    raise a `DataError` naming them.
    """
    _check_budget(batch_tokens)
    files = newstest_files(task, newstest_dir)
    sources, targets = read_parallel(*files)
    processor, model = _bpe(files, sources + targets, Path(work_dir), bpe_vocab)
    src, src_offsets = encode_lines(processor, sources)
    tgt, tgt_offsets = encode_lines(processor, targets)
    split = EncodedSplit(src, tgt, src_offsets, tgt_offsets)
    kept, _ = filter_by_length(split, min(batch_tokens, max_positions))
    src_len, tgt_len = sentence_lengths(split)
    longest = np.maximum.accumulate(np.maximum(src_len[kept], tgt_len[kept]))
    count = int(np.count_nonzero(np.arange(1, len(kept) + 1) * longest <= batch_tokens))
    if count == 0:
        raise DataError(f"{files[0]}: no sentence pair fits {batch_tokens} tokens")
    batch = collate(split, kept[:count])
    info = {
        "source": "newstest2013",
        "files": [str(f) for f in files],
        "bpe_vocab": bpe_vocab,
        "spm_model": str(model),
        "spm_seed": SPM_SEED,
        "first_sentences": count,
        "skipped_long": int(kept[count - 1]) + 1 - count,
        **_describe(batch, batch_tokens),
    }
    return ScoringBatch(batch, info)

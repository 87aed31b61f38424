"""Translate with beam search: token ids, prepared splits and raw text (SentencePiece).

Sources get EOS appended (truncated first so they fit `max_positions`), are sorted by length
and batched `batch_sentences` at a time; results come back in the input order. Decoding
defaults follow HAT's WMT `test.sh`: beam 4, length penalty 0.6, `max_len_b` 200.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import sentencepiece as spm
import torch

from nasflow.core.device import autocast
from nasflow.data.prepare import EncodedSplit
from nasflow.evaluate.loss import model_device
from nasflow.model import EOS, PAD, SuperTransformer, beam_search


@dataclass
class SourceBatch:
    """Right-padded sources (EOS included) and their positions in the input list."""

    positions: np.ndarray
    src_tokens: torch.Tensor
    src_lengths: torch.Tensor


def source_batches(
    src_sentences: Sequence[np.ndarray],
    *,
    batch_sentences: int = 128,
    max_positions: int = 1024,
    device: torch.device | str = "cpu",
) -> list[SourceBatch]:
    """Length-sorted batches of at most `batch_sentences` sources, collated on `device`."""
    if batch_sentences < 1:
        raise ValueError(f"batch_sentences must be at least 1, got {batch_sentences}")
    sources = [np.asarray(s, dtype=np.int64)[: max_positions - 1] for s in src_sentences]
    lengths = np.array([len(s) + 1 for s in sources], dtype=np.int64)
    order = np.argsort(lengths, kind="stable")
    batches = []
    for start in range(0, len(order), batch_sentences):
        positions = order[start : start + batch_sentences]
        tokens = np.full((len(positions), lengths[positions].max()), PAD, dtype=np.int64)
        for row, pos in enumerate(positions):
            tokens[row, : len(sources[pos])] = sources[pos]
            tokens[row, len(sources[pos])] = EOS
        batches.append(
            SourceBatch(
                positions=positions,
                src_tokens=torch.from_numpy(tokens).to(device),
                src_lengths=torch.from_numpy(lengths[positions]).to(device),
            )
        )
    return batches


def translate_batches(
    model: SuperTransformer,
    batches: Sequence[SourceBatch],
    *,
    beam: int = 4,
    lenpen: float = 0.6,
    max_len_a: float = 0.0,
    max_len_b: int = 200,
    dtype: torch.dtype = torch.float32,
) -> list[list[int]]:
    """Best hypothesis (ids without EOS) per source of `batches`, in the original order."""
    count = sum(len(b.positions) for b in batches)
    outputs: list[list[int]] = [[] for _ in range(count)]
    device = model_device(model)
    for batch in batches:
        with autocast(device, dtype):
            hyps = beam_search(
                model,
                batch.src_tokens,
                batch.src_lengths,
                beam=beam,
                lenpen=lenpen,
                max_len_a=max_len_a,
                max_len_b=max_len_b,
            )
        for pos, sentence in zip(batch.positions.tolist(), hyps, strict=True):
            outputs[pos] = list(sentence[0].tokens) if sentence else []
    return outputs


def translate_ids(
    model: SuperTransformer,
    src_sentences: Sequence[np.ndarray],
    *,
    beam: int = 4,
    lenpen: float = 0.6,
    max_len_a: float = 0.0,
    max_len_b: int = 200,
    batch_sentences: int = 128,
    device: torch.device | None = None,
    dtype: torch.dtype = torch.float32,
) -> list[list[int]]:
    """Translate source id arrays (without EOS); best hypothesis ids per sentence, input order.

    `device` defaults to the model's device (the model is not moved).
    """
    batches = source_batches(
        src_sentences,
        batch_sentences=batch_sentences,
        max_positions=model.config.max_positions,
        device=device or model_device(model),
    )
    return translate_batches(
        model,
        batches,
        beam=beam,
        lenpen=lenpen,
        max_len_a=max_len_a,
        max_len_b=max_len_b,
        dtype=dtype,
    )


def load_spm(spm_path: str | Path) -> spm.SentencePieceProcessor:
    """Load a SentencePiece model file."""
    path = Path(spm_path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: SentencePiece model not found")
    return spm.SentencePieceProcessor(model_file=str(path))


def translate_split(
    model: SuperTransformer,
    split: EncodedSplit,
    spm_path: str | Path,
    *,
    sentences: int = 0,
    **decode: Any,
) -> list[str]:
    """Detokenised translations of a prepared split (its first `sentences` when > 0)."""
    count = min(sentences, len(split)) if sentences else len(split)
    sources = [split[i][0] for i in range(count)]
    ids = translate_ids(model, sources, **decode)
    processor = load_spm(spm_path)
    return [processor.decode(hyp) for hyp in ids]


def translate_text(
    model: SuperTransformer,
    lines: Sequence[str],
    spm_path: str | Path,
    **decode: Any,
) -> list[str]:
    """Translate raw lines: SentencePiece-encode, beam search, decode."""
    processor = load_spm(spm_path)
    limit = model.config.max_positions - 1
    sources = [
        np.asarray(ids[:limit], dtype=np.int64)
        for ids in processor.encode(list(lines), out_type=int)
    ]
    ids = translate_ids(model, sources, **decode)
    return [processor.decode(hyp) for hyp in ids]

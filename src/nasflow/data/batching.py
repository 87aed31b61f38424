"""Deterministic fairseq-style token-budget batching and collation of an `EncodedSplit`.

Every sentence gets EOS appended (lengths below include it). A batch of n sentences costs
n * max(longest source, longest target) tokens, which must stay within `max_tokens`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch

from nasflow.core.errors import ConfigError, DataError
from nasflow.data.prepare import SPECIAL_IDS, EncodedSplit

PAD = SPECIAL_IDS["pad_id"]
EOS = SPECIAL_IDS["eos_id"]


@dataclass
class Batch:
    """A collated batch; token tensors are int64 [B, S] / [B, T], right-padded with PAD."""

    src_tokens: torch.Tensor  # source ids + EOS
    src_lengths: torch.Tensor  # [B], including EOS
    prev_output_tokens: torch.Tensor  # EOS + target ids (decoder input)
    target: torch.Tensor  # target ids + EOS
    indices: torch.Tensor  # [B] sentence indices in the split
    ntokens: int  # non-pad target tokens

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """A copy with every tensor on `device`."""

        def move(tensor: torch.Tensor) -> torch.Tensor:
            return tensor.to(device, non_blocking=non_blocking)

        return Batch(
            move(self.src_tokens),
            move(self.src_lengths),
            move(self.prev_output_tokens),
            move(self.target),
            move(self.indices),
            self.ntokens,
        )

    @property
    def size(self) -> int:
        """Number of sentences B."""
        return int(self.src_tokens.shape[0])


def sentence_lengths(split: EncodedSplit) -> tuple[np.ndarray, np.ndarray]:
    """Source and target lengths of every sentence, EOS included (int64)."""
    src = np.diff(np.asarray(split.src_offsets, dtype=np.int64)) + 1
    tgt = np.diff(np.asarray(split.tgt_offsets, dtype=np.int64)) + 1
    return src, tgt


def _check_indices(split: EncodedSplit, indices: np.ndarray | None) -> np.ndarray:
    if indices is None:
        return np.arange(len(split), dtype=np.int64)
    indices = np.asarray(indices, dtype=np.int64).reshape(-1)
    if indices.size and (indices.min() < 0 or indices.max() >= len(split)):
        raise DataError(f"sentence indices must lie in 0..{len(split) - 1}")
    return indices


def filter_by_length(
    split: EncodedSplit, max_positions: int, indices: np.ndarray | None = None
) -> tuple[np.ndarray, int]:
    """Sentences whose source and target (with EOS) fit `max_positions`, and how many did not."""
    indices = _check_indices(split, indices)
    src, tgt = sentence_lengths(split)
    fits = (src[indices] <= max_positions) & (tgt[indices] <= max_positions)
    return indices[fits], int(indices.size - np.count_nonzero(fits))


def _chunk(
    order: np.ndarray, sizes: np.ndarray, max_tokens: int, max_sentences: int | None
) -> list[np.ndarray]:
    """Greedy split of `order` so that len(batch) * max(size) <= max_tokens."""
    limit = max_sentences or len(order) or 1
    bounds, start, longest = [0], 0, 0
    for pos, size in enumerate(sizes.tolist()):
        longest = max(longest, size)
        count = pos - start + 1
        if count * longest > max_tokens or count > limit:
            bounds.append(pos)
            start, longest = pos, size
    bounds.append(len(order))
    return [order[a:b] for a, b in itertools.pairwise(bounds) if b > a]


def batch_indices(
    split: EncodedSplit,
    max_tokens: int,
    *,
    shuffle: bool,
    seed: int = 0,
    epoch: int = 0,
    max_positions: int = 1024,
    max_sentences: int | None = None,
    indices: np.ndarray | None = None,
) -> list[np.ndarray]:
    """One epoch of batches (arrays of sentence indices), deterministic in its arguments.

    Sentences longer than `max_positions` are skipped; `indices` restricts to a subset. Kept
    sentences are sorted by (source, target) length, stably, after a random permutation
    (seeded by `(seed, epoch)`) when `shuffle`, so that equal lengths come in random order; the
    sorted list is chunked greedily and, when `shuffle`, the batch order is permuted too.
    """
    if max_tokens < 1:
        raise ConfigError(f"max_tokens must be at least 1, got {max_tokens}")
    if max_sentences is not None and max_sentences < 1:
        raise ConfigError(f"max_sentences must be at least 1, got {max_sentences}")
    kept, _ = filter_by_length(split, max_positions, indices)
    src, tgt = sentence_lengths(split)
    sizes = np.maximum(src[kept], tgt[kept])
    if sizes.size and sizes.max() > max_tokens:
        pos = int(np.argmax(sizes > max_tokens))
        raise DataError(
            f"sentence {int(kept[pos])} has {int(sizes[pos])} tokens (with EOS), more than "
            f"max_tokens {max_tokens}; set max_tokens >= max_positions ({max_positions})"
        )
    rng = np.random.default_rng((seed, epoch)) if shuffle else None
    if rng is not None:
        kept = rng.permutation(kept)
    order = kept[np.lexsort((tgt[kept], src[kept]))]  # stable: primary source, then target
    batches = _chunk(order, np.maximum(src[order], tgt[order]), max_tokens, max_sentences)
    if rng is not None:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def collate(split: EncodedSplit, indices: np.ndarray) -> Batch:
    """Pad the sentences `indices` of `split` into a `Batch` (EOS appended, PAD on the right)."""
    indices = np.asarray(indices, dtype=np.int64).reshape(-1)
    if indices.size == 0:
        raise DataError("cannot collate an empty batch")
    pairs = [split[int(i)] for i in indices]
    src_len = np.array([len(s) + 1 for s, _ in pairs], dtype=np.int64)
    tgt_len = np.array([len(t) + 1 for _, t in pairs], dtype=np.int64)
    size = len(pairs)
    src_tokens = np.full((size, src_len.max()), PAD, dtype=np.int64)
    prev = np.full((size, tgt_len.max()), PAD, dtype=np.int64)
    target = np.full((size, tgt_len.max()), PAD, dtype=np.int64)
    for row, (src, tgt) in enumerate(pairs):
        src_tokens[row, : len(src)] = src
        src_tokens[row, len(src)] = EOS
        prev[row, 0] = EOS
        prev[row, 1 : len(tgt) + 1] = tgt
        target[row, : len(tgt)] = tgt
        target[row, len(tgt)] = EOS
    return Batch(
        src_tokens=torch.from_numpy(src_tokens),
        src_lengths=torch.from_numpy(src_len),
        prev_output_tokens=torch.from_numpy(prev),
        target=torch.from_numpy(target),
        indices=torch.from_numpy(indices.copy()),
        ntokens=int(tgt_len.sum()),
    )

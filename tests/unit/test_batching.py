"""Token-budget batching: budget, coverage, determinism, length filtering and collation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nasflow.core.errors import DataError
from nasflow.data.batching import (
    EOS,
    PAD,
    Batch,
    batch_indices,
    collate,
    filter_by_length,
    sentence_lengths,
)
from nasflow.data.prepare import EncodedSplit


def make_split(pairs: list[tuple[list[int], list[int]]]) -> EncodedSplit:
    """An EncodedSplit built directly from (source ids, target ids) pairs."""

    def pack(seqs: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum([len(s) for s in seqs])
        flat = np.array([t for s in seqs for t in s], dtype=np.int32)
        return flat, offsets

    src, src_offsets = pack([s for s, _ in pairs])
    tgt, tgt_offsets = pack([t for _, t in pairs])
    return EncodedSplit(src, tgt, src_offsets, tgt_offsets)


def random_split(n: int = 300, longest: int = 40, seed: int = 0) -> EncodedSplit:
    rng = np.random.default_rng(seed)
    pairs = [
        (
            rng.integers(4, 100, rng.integers(0, longest)).tolist(),
            rng.integers(4, 100, rng.integers(1, longest)).tolist(),
        )
        for _ in range(n)
    ]
    return make_split(pairs)


@pytest.fixture
def split() -> EncodedSplit:
    return random_split()


def test_sentence_lengths_include_eos():
    split = make_split([([5, 6, 7], [8]), ([], [9, 10])])
    src, tgt = sentence_lengths(split)
    assert src.tolist() == [4, 1] and tgt.tolist() == [2, 3]
    assert src.dtype == np.int64 and tgt.dtype == np.int64


def test_filter_by_length_counts_dropped_pairs():
    split = make_split([([5] * 3, [6] * 3), ([5] * 9, [6]), ([5], [6] * 4), ([5] * 4, [6] * 4)])
    kept, dropped = filter_by_length(split, max_positions=5)
    assert kept.tolist() == [0, 2, 3] and dropped == 1
    kept, dropped = filter_by_length(split, max_positions=4)
    assert kept.tolist() == [0] and dropped == 3
    kept, dropped = filter_by_length(split, max_positions=10, indices=np.array([3, 1]))
    assert kept.tolist() == [3, 1] and dropped == 0


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("max_sentences", [None, 7])
def test_budget_and_every_kept_sentence_once(split, shuffle, max_sentences):
    max_tokens, max_positions = 120, 30
    batches = batch_indices(
        split, max_tokens, shuffle=shuffle, max_positions=max_positions, max_sentences=max_sentences
    )
    src, tgt = sentence_lengths(split)
    for batch in batches:
        assert batch.dtype == np.int64 and len(batch) >= 1
        assert len(batch) * max(src[batch].max(), tgt[batch].max()) <= max_tokens
        assert max_sentences is None or len(batch) <= max_sentences
    kept, dropped = filter_by_length(split, max_positions)
    seen = np.concatenate(batches)
    assert dropped > 0 and sorted(seen.tolist()) == kept.tolist()


def test_batches_are_sorted_by_length_without_shuffle(split):
    batches = batch_indices(split, 200, shuffle=False)
    src, tgt = sentence_lengths(split)
    order = np.concatenate(batches)
    keys = list(zip(src[order].tolist(), tgt[order].tolist(), order.tolist(), strict=True))
    assert keys == sorted(keys)
    assert all(
        np.array_equal(a, b)
        for a, b in zip(batches, batch_indices(split, 200, shuffle=False, seed=5), strict=True)
    )


def test_greedy_chunking_fills_batches():
    split = make_split([([5] * 3, [6] * 3)] * 10)  # every pair costs 4 tokens
    batches = batch_indices(split, 10, shuffle=False)
    assert [b.tolist() for b in batches] == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]
    assert [len(b) for b in batch_indices(split, 40, shuffle=False, max_sentences=3)] == [
        3, 3, 3, 1,
    ]  # fmt: skip


def test_shuffled_batches_are_deterministic_per_seed_and_epoch(split):
    def run(seed, epoch):
        return [b.tolist() for b in batch_indices(split, 150, shuffle=True, seed=seed, epoch=epoch)]

    assert run(1, 0) == run(1, 0)
    assert run(1, 0) != run(1, 1)
    assert run(1, 0) != run(2, 0)
    assert sorted(map(sorted, run(1, 0))) != sorted(map(sorted, run(1, 1)))  # ties reshuffled


def test_indices_restrict_to_a_subset(split):
    subset = np.arange(50)
    batches = batch_indices(split, 200, shuffle=False, indices=subset)
    assert (
        sorted(np.concatenate(batches).tolist())
        == filter_by_length(split, 1024, subset)[0].tolist()
    )
    assert batch_indices(split, 200, shuffle=False, indices=np.array([], dtype=np.int64)) == []
    with pytest.raises(DataError, match="sentence indices"):
        batch_indices(split, 200, shuffle=False, indices=np.array([len(split)]))


def test_sentence_longer_than_max_tokens_is_an_error():
    split = make_split([([5] * 3, [6]), ([5] * 20, [6] * 2)])
    with pytest.raises(DataError, match=r"sentence 1 has 21 tokens .* max_tokens >= max_posit"):
        batch_indices(split, 16, shuffle=False)
    assert len(batch_indices(split, 16, shuffle=False, max_positions=16)) == 1  # skipped instead


def test_collate_pads_and_places_eos():
    split = make_split([([5, 6, 7], [8, 9]), ([10], [11, 12, 13, 14]), ([15, 16], [17])])
    batch = collate(split, np.array([2, 0, 1]))
    assert isinstance(batch, Batch) and batch.size == 3 and batch.ntokens == 3 + 2 + 5
    P = PAD
    assert batch.src_tokens.tolist() == [[15, 16, EOS, P], [5, 6, 7, EOS], [10, EOS, P, P]]
    assert batch.src_lengths.tolist() == [3, 4, 2]
    assert batch.target.tolist() == [
        [17, EOS, P, P, P], [8, 9, EOS, P, P], [11, 12, 13, 14, EOS],
    ]  # fmt: skip
    assert batch.prev_output_tokens.tolist() == [
        [EOS, 17, P, P, P], [EOS, 8, 9, P, P], [EOS, 11, 12, 13, 14],
    ]  # fmt: skip
    assert batch.indices.tolist() == [2, 0, 1]
    for tensor in (batch.src_tokens, batch.src_lengths, batch.prev_output_tokens, batch.target):
        assert tensor.dtype == torch.int64
    assert int((batch.target != PAD).sum()) == batch.ntokens
    moved = batch.to("cpu")
    assert moved.ntokens == batch.ntokens and torch.equal(moved.target, batch.target)
    with pytest.raises(DataError, match="empty batch"):
        collate(split, np.array([], dtype=np.int64))


def test_a_multi30k_sized_split_is_covered_once():
    split = random_split(n=29_000, longest=60, seed=1)
    batches = batch_indices(split, 4096, shuffle=True, seed=3, epoch=2)
    assert sum(len(b) for b in batches) == len(split)
    assert len(np.unique(np.concatenate(batches))) == len(split)

"""LTS proxy check on the real Penn Treebank of the shared data mirror (skipped when absent)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from nasflow.data.ptb import EOS, UNK, load_corpus
from nasflow.lts.proxy_check import proxy_check

pytestmark = pytest.mark.shared


def test_ptb_corpus_and_a_tiny_proxy_check(ptb_dir: Path, tmp_path: Path) -> None:
    corpus = load_corpus(ptb_dir)
    # Mikolov's PTB: 10k types with <unk> and <eos>; the usual token counts (one <eos> per line)
    assert corpus.vocab_size == 10_000 and UNK in corpus.index and EOS in corpus.index
    assert (corpus.train.numel(), corpus.valid.numel(), corpus.test.numel()) == (
        929_589,
        73_760,
        82_430,
    )
    assert corpus.valid_source == "ptb.valid.txt.gz"
    result = proxy_check(
        corpus,
        "lts-demo",
        k=2,
        steps=2,
        batch=4,
        seq_len=16,
        valid_tokens=1_000,
        state_path=tmp_path / "state.jsonl",
    )
    assert result["trained"] == 2
    assert all(math.isfinite(r["valid_ppl"]) for r in result["rows"])
    assert result["corpus"]["vocab_size"] == 10_000


def test_a_tiny_proxy_check_on_ptb_with_transformer_xl(ptb_dir: Path, tmp_path: Path) -> None:
    """The second backbone on the real corpus: decoders built, trained segment by segment with
    the memory carried over, and scored, through the same entry point."""
    result = proxy_check(
        ptb_dir, "lts-demo-txl", k=2, steps=2, batch=4, seq_len=16, valid_tokens=1_000
    )
    assert result["space"]["backbone"] == "transformer-xl" and result["trained"] == 2
    assert all(math.isfinite(r["valid_ppl"]) for r in result["rows"])
    gpt2 = proxy_check(ptb_dir, "lts-demo", k=2, steps=2, batch=4, seq_len=16, valid_tokens=1_000)
    assert [r["id"] for r in gpt2["rows"]] == [r["id"] for r in result["rows"]]  # same samples
    assert [r["decoder_params"] for r in gpt2["rows"]] != [
        r["decoder_params"] for r in result["rows"]
    ]

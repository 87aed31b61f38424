"""The latency protocol on the real Penn Treebank of the shared data mirror (skipped when absent):
the tokenizer's characters per token on the held-out split, and a measurement on its prompts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import sentencepiece as spm

from nasflow.lts.evaluator import LTSEvaluator
from nasflow.lts.measure import LTSMeasureSettings
from nasflow.lts.text import DEFAULT_VOCAB, build_text_set, load_text_set, text_corpus
from nasflow.space.gpt import GPTArch

pytestmark = pytest.mark.shared


def test_ptb_text_set_and_a_measurement_on_its_prompts(
    ptb_dir: Path, mirror: Path, tmp_path: Path
) -> None:
    assert text_corpus({}, mirror=str(mirror)) == ptb_dir  # the default corpus
    text = build_text_set(ptb_dir, tmp_path / "text", DEFAULT_VOCAB)
    info = text.info
    # PTB valid: 3370 lines, 70,390 words, 389,672 characters once whitespace is collapsed;
    # decoding is lossless, so those are the characters counted.
    assert info["heldout_source"] == "ptb.valid.txt.gz" and info["heldout_lines"] == 3370
    assert info["heldout_chars"] == 389_672 and info["lines_altered_by_decoding"] == 0
    assert text.vocab_size == 4000
    # 4000 BPE pieces on PTB: about 1.37 tokens per word, 4.05 characters per token
    assert 1.3 < text.tokens / 70_390 < 1.45
    assert 3.9 < text.chars_per_token < 4.2
    assert load_text_set(tmp_path / "text").fingerprint == text.fingerprint

    settings = LTSMeasureSettings(
        vocab_size=4000, n_positions=64, prompt_tokens=32, new_tokens=4, warmup=1, runs=8
    )
    prompts = settings.prompts(text)
    lengths = [p.size for p in prompts]
    assert min(lengths) >= 8 and max(lengths) <= 32 and len(set(lengths)) > 3
    sp = spm.SentencePieceProcessor(model_file=str(tmp_path / "text" / "spm.model"))
    heldout = sp.decode(text.ids.tolist())
    for prompt in prompts:  # real held-out text
        assert sp.decode(prompt.tolist()).strip() in heldout

    evaluator = LTSEvaluator(text, settings)
    (metrics,) = evaluator.evaluate([GPTArch.uniform(2, 64, 128, 2)])
    (measurement,) = evaluator.last
    assert measurement.samples["prompt_tokens"] == lengths
    latency = np.array(measurement.samples["latency_ms"])
    assert metrics["chars_per_token"] == text.chars_per_token
    assert metrics["p95_latency_char_ms_per_token"] == pytest.approx(np.percentile(latency / 4, 95))
    assert metrics["p95_ms_per_char"] == pytest.approx(
        metrics["p95_latency_char_ms_per_token"] / text.chars_per_token
    )
    assert metrics["ms_per_char"] < metrics["latency_char_ms_per_token"]

"""sacreBLEU wrapper and HAT's tokenised BLEU with the compound split."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from nasflow.evaluate.bleu import (
    COMPOUND_SUFFIX,
    corpus_bleu,
    hat_tokenize,
    split_compounds,
    tokenized_bleu,
)

LINES = ["The cat sat on the mat.", "A well-known fact, stated twice."]


def multi_bleu(hypotheses: list[str], references: list[str]) -> float:
    """Unsmoothed BLEU-4 on whitespace tokens (multi-bleu.perl / fairseq scorer)."""
    matches, totals, hyp_len, ref_len = [0] * 4, [0] * 4, 0, 0
    for hyp, ref in zip(hypotheses, references, strict=True):
        h, r = hyp.split(), ref.split()
        hyp_len, ref_len = hyp_len + len(h), ref_len + len(r)
        for n in range(1, 5):
            hyp_grams = Counter(tuple(h[i : i + n]) for i in range(len(h) - n + 1))
            ref_grams = Counter(tuple(r[i : i + n]) for i in range(len(r) - n + 1))
            matches[n - 1] += sum((hyp_grams & ref_grams).values())
            totals[n - 1] += max(len(h) - n + 1, 0)
    if min(matches) == 0:
        return 0.0
    log_precision = sum(math.log(m / t) for m, t in zip(matches, totals, strict=True)) / 4
    bp = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)
    return 100 * bp * math.exp(log_precision)


def test_identical_text_scores_100_with_signature() -> None:
    result = corpus_bleu(LINES, LINES)
    assert result.score == pytest.approx(100.0)
    assert result.bp == 1.0 and result.sys_len == result.ref_len > 0
    assert result.precisions == (100.0,) * 4
    assert "nrefs:1" in result.signature and "tok:13a" in result.signature
    assert result.to_dict()["precisions"] == [100.0] * 4
    tokenized = tokenized_bleu(LINES, LINES)
    assert tokenized.score == pytest.approx(100.0)
    assert "tok:none" in tokenized.signature and "smooth:none" in tokenized.signature
    assert tokenized.signature.endswith(COMPOUND_SUFFIX)


def test_compound_split_is_complete() -> None:
    assert split_compounds("a-b-c") == "a ##AT##-##AT## b ##AT##-##AT## c"
    assert split_compounds("x ##AT##-##AT## y") == "x ##AT##-##AT## y"  # idempotent
    assert split_compounds("-a b- - c") == "-a b- - c"  # only hyphens between characters
    assert hat_tokenize('He said "state-of-the-art".') == (
        'He said " state ##AT##-##AT## of ##AT##-##AT## the ##AT##-##AT## art " .'
    )


def test_tokenized_bleu_credits_compound_parts() -> None:
    hyps, refs = ["a well-made small house stands here"], ["a well-kept small house stands here"]
    sacre, tokenized = corpus_bleu(hyps, refs), tokenized_bleu(hyps, refs)
    # 13a keeps "well-made" whole; the compound split exposes the shared "well" and "-".
    assert (sacre.sys_len, sacre.counts[0]) == (6, 5)
    assert (tokenized.sys_len, tokenized.counts[0]) == (8, 7)
    assert tokenized.precisions[0] > sacre.precisions[0]
    assert 0.0 < tokenized.score < 100.0


def test_tokenized_bleu_equals_multi_bleu() -> None:
    hyps = ["the red-brown cat sits on a mat .", "a dog runs in the big park today", "hi"]
    refs = ["the red-brown cat sat on the mat .", "the dog runs in a big park today", "hello"]
    expected = multi_bleu([hat_tokenize(h) for h in hyps], [hat_tokenize(r) for r in refs])
    assert expected > 0
    assert tokenized_bleu(hyps, refs).score == pytest.approx(expected, rel=1e-9)


def test_tokenized_bleu_is_unsmoothed() -> None:
    hyps, refs = ["the cat sat down"], ["the cat sat up"]  # no 4-gram match
    assert tokenized_bleu(hyps, refs).score == 0.0
    assert corpus_bleu(hyps, refs).score > 0.0  # sacreBLEU's default exp smoothing


@pytest.mark.parametrize("score", [corpus_bleu, tokenized_bleu])
def test_bad_inputs_are_clear_errors(score) -> None:
    with pytest.raises(ValueError, match="empty"):
        score([], [])
    with pytest.raises(ValueError, match="3 hypotheses and 2 references"):
        score(["a", "b", "c"], ["a", "b"])
    with pytest.raises(TypeError, match="not one string"):
        score("a b", "a b")

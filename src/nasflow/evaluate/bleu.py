"""Corpus BLEU: sacreBLEU on detokenised text, and HAT's tokenised "normal" BLEU.

`corpus_bleu` is standard sacreBLEU (13a tokenisation, exponential smoothing). `tokenized_bleu`
reproduces HAT's `normal` score for comparison with the paper (reference §9): both sides are
tokenised with sacreBLEU's Moses-like 13a tokenizer, compounds are split with
`(\\S)-(\\S)` -> `\\1 ##AT##-##AT## \\2`, and BLEU-4 is computed on whitespace tokens without
smoothing, like `multi-bleu.perl` and fairseq's scorer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

from sacrebleu.metrics import BLEU
from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

COMPOUND_MARK = "##AT##-##AT##"
COMPOUND_SUFFIX = "|hat-compound-split"
# A hyphen between two non-space characters. Lookarounds make one pass split "a-b-c" fully
# (the fixed point of repeating HAT's substitution, which by itself leaves "a ... b-c").
_COMPOUND = re.compile(r"(?<=\S)-(?=\S)")


@dataclass(frozen=True)
class BleuResult:
    """A corpus BLEU score with the statistics needed to audit it."""

    score: float
    signature: str
    bp: float
    sys_len: int
    ref_len: int
    precisions: tuple[float, ...]
    counts: tuple[int, ...]
    totals: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("precisions", "counts", "totals"):
            data[key] = list(data[key])
        return data


def _check(hypotheses: Sequence[str], references: Sequence[str]) -> None:
    if isinstance(hypotheses, str) or isinstance(references, str):
        raise TypeError("hypotheses and references must be sequences of lines, not one string")
    if len(hypotheses) == 0:
        raise ValueError("BLEU needs at least one hypothesis; got an empty list")
    if len(hypotheses) != len(references):
        raise ValueError(
            f"BLEU needs one reference per hypothesis: got {len(hypotheses)} hypotheses "
            f"and {len(references)} references"
        )


def _score(metric: BLEU, hypotheses: list[str], references: list[str], suffix: str) -> BleuResult:
    result = metric.corpus_score(hypotheses, [references])
    return BleuResult(
        score=float(result.score),
        signature=str(metric.get_signature()) + suffix,
        bp=float(result.bp),
        sys_len=int(result.sys_len),
        ref_len=int(result.ref_len),
        precisions=tuple(float(p) for p in result.precisions),
        counts=tuple(int(c) for c in result.counts),
        totals=tuple(int(t) for t in result.totals),
    )


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str]) -> BleuResult:
    """sacreBLEU with its defaults (13a tokenisation) on detokenised lines, one reference each."""
    _check(hypotheses, references)
    return _score(BLEU(), list(hypotheses), list(references), "")


@lru_cache(maxsize=1)
def _tokenizer() -> Tokenizer13a:
    return Tokenizer13a()


def split_compounds(line: str) -> str:
    """HAT's compound split: every `x-y` becomes `x ##AT##-##AT## y`, whitespace normalised."""
    tokens = []
    for token in line.split():
        if token == COMPOUND_MARK:
            tokens.append(token)
        else:
            tokens.extend(_COMPOUND.sub(f" {COMPOUND_MARK} ", token).split())
    return " ".join(tokens)


def hat_tokenize(line: str) -> str:
    """13a (Moses-like) tokenisation followed by the compound split."""
    return split_compounds(_tokenizer()(line.strip()))


def tokenized_bleu(hypotheses: Sequence[str], references: Sequence[str]) -> BleuResult:
    """HAT's `normal` BLEU: 13a tokens, compound split, unsmoothed BLEU-4 on whitespace tokens."""
    _check(hypotheses, references)
    hyps = [hat_tokenize(line) for line in hypotheses]
    refs = [hat_tokenize(line) for line in references]
    metric = BLEU(tokenize="none", smooth_method="none", force=True)  # tokenised on purpose
    return _score(metric, hyps, refs, COMPOUND_SUFFIX)

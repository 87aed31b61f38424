"""Suggestions at thresholds (trigger, stop) and their metrics: trigger rate, ASC, AEC, saving rate.

The suggestion at thresholds (trigger, stop), from a position's greedy continuation
(`nasflow.text_prediction.suggest`):

- it is shown only if p1 >= trigger AND the first generated token starts a new word (the user
  already typed the space);
- the text is cut before the first token k >= 2 whose log-prob < stop, and before EOS;
- then backed off to the last complete word: a word is complete when the token after it starts
  a new word or is EOS or the cut point is a token that starts a new word; a trailing word still
  being built when max_tokens ran out is dropped. If nothing is left, the suggestion is not shown;
- the suggestion's words are decoded from the kept tokens (`texts`, whitespace-split).

Metrics over positions (every position counts, shown or not):

- trigger rate = shown / positions;
- for a shown suggestion with words s1..sk and real continuation r1..rm: kept words = the longest
  common prefix of whole words (s_j == r_j exactly); kept characters = len(" ".join(kept words))
  (0 when none); shown characters = len(" ".join(s1..sk)); rejected characters = shown - kept;
- ASC = mean kept characters per suggestion shown; AEC = mean rejected characters per suggestion
  shown (both 0.0 when nothing is shown);
- saving rate = total kept characters / total characters of the real continuations at all
  positions.

`score(records, trigger, stop)` is vectorised: per records object (cached while it lives) the
kept/shown characters of every complete-word cut are precomputed once, and per stop value the
kept-token counts once, so a call costs a few array operations over positions.
`suggestion_words` is the same rule for one record, written plainly.
"""

from __future__ import annotations

import weakref
from dataclasses import asdict, dataclass

import numpy as np

from nasflow.core.errors import DataError
from nasflow.text_prediction.suggest import PositionRecord, SuggestionRecords

__all__ = [
    "ScoreTable",
    "SuggestionMetrics",
    "cut_point",
    "kept_words",
    "score",
    "score_table",
    "suggestion_words",
]


@dataclass(frozen=True)
class SuggestionMetrics:
    """Metrics of one (trigger, stop) pair over all positions (see the module docstring)."""

    trigger: float
    stop: float
    positions: int
    shown: int
    trigger_rate: float
    asc: float
    aec: float
    saving_rate: float
    kept_chars: int
    rejected_chars: int
    continuation_chars: int

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def cut_point(record: PositionRecord, stop: float) -> int:
    """Tokens left after cutting before the first token k >= 2 (1-based) with log-prob < stop
    and before EOS."""
    for k in range(1, record.length):
        if record.logprobs[k] < stop:
            return k
    return record.length


def _complete(record: PositionRecord, j: int) -> bool:
    """Whether the first `j` tokens end on a complete word (the token after them is known and
    starts a word or is EOS)."""
    return 1 <= j < len(record.tokens) and (record.word_start[j] or j == record.length)


def suggestion_words(record: PositionRecord, trigger: float, stop: float) -> list[str] | None:
    """The words shown at this position, or None when no suggestion is shown."""
    if record.p1 < trigger or record.length == 0 or not record.word_start[0]:
        return None
    j = cut_point(record, stop)
    while j > 0 and not _complete(record, j):
        j -= 1
    return record.texts[j - 1].split() if j else None


def kept_words(shown: list[str], real: list[str]) -> list[str]:
    """The longest common prefix of whole words."""
    kept = []
    for s, r in zip(shown, real, strict=False):
        if s != r:
            break
        kept.append(s)
    return kept


class ScoreTable:
    """Per-position arrays for fast scoring of one `SuggestionRecords` (see the module
    docstring); `eligible(stop)` is the mask of positions shown at any trigger <= p1."""

    def __init__(self, records: SuggestionRecords) -> None:
        if not len(records):
            raise DataError("suggestion records hold no positions: nothing to score")
        n = len(records)
        width = max(max(len(r.tokens) for r in records.positions), 1)
        self.positions = n
        self.p1 = np.array([r.p1 for r in records.positions], dtype=np.float64)
        self.length = np.array([r.length for r in records.positions], dtype=np.int64)
        self.first_word = np.array(
            [r.length > 0 and r.word_start[0] for r in records.positions], dtype=bool
        )
        self.logprobs = np.full((n, width), np.inf)  # only tokens 2..length can cut
        bound = np.zeros((n, width + 1), dtype=np.int64)
        self.shown_chars = np.zeros((n, width + 1), dtype=np.int64)
        self.kept_chars = np.zeros((n, width + 1), dtype=np.int64)
        self.continuation_chars = 0
        for i, r in enumerate(records.positions):
            self.logprobs[i, 1 : r.length] = r.logprobs[1 : r.length]
            real = r.continuation.split()
            self.continuation_chars += len(" ".join(real))
            for j in range(1, r.length + 1):
                if _complete(r, j):
                    bound[i, j] = j
                words = r.texts[j - 1].split()
                self.shown_chars[i, j] = len(" ".join(words))
                self.kept_chars[i, j] = len(" ".join(kept_words(words, real)))
        self.last_complete = np.maximum.accumulate(bound, axis=1)
        self._kept: dict[float, np.ndarray] = {}

    def kept_tokens(self, stop: float) -> np.ndarray:
        """Per position, the tokens kept after cutting at `stop` and backing off (0: none)."""
        stop = float(stop)
        if stop not in self._kept:
            low = self.logprobs < stop
            cut = np.where(low.any(axis=1), low.argmax(axis=1), self.length)
            self._kept[stop] = self.last_complete[np.arange(self.positions), cut]
        return self._kept[stop]

    def eligible(self, stop: float) -> np.ndarray:
        return self.first_word & (self.kept_tokens(stop) > 0)

    def score(self, trigger: float, stop: float) -> SuggestionMetrics:
        j = self.kept_tokens(stop)
        shown = self.eligible(stop) & (self.p1 >= trigger)
        rows = np.flatnonzero(shown)
        kept = int(self.kept_chars[rows, j[rows]].sum())
        rejected = int(self.shown_chars[rows, j[rows]].sum()) - kept
        count = len(rows)
        return SuggestionMetrics(
            trigger=float(trigger),
            stop=float(stop),
            positions=self.positions,
            shown=count,
            trigger_rate=count / self.positions,
            asc=kept / count if count else 0.0,
            aec=rejected / count if count else 0.0,
            saving_rate=kept / self.continuation_chars if self.continuation_chars else 0.0,
            kept_chars=kept,
            rejected_chars=rejected,
            continuation_chars=self.continuation_chars,
        )


_TABLES: weakref.WeakKeyDictionary[SuggestionRecords, ScoreTable] = weakref.WeakKeyDictionary()


def score_table(records: SuggestionRecords) -> ScoreTable:
    """The (cached) `ScoreTable` of `records`."""
    table = _TABLES.get(records)
    if table is None:
        table = _TABLES[records] = ScoreTable(records)
    return table


def score(records: SuggestionRecords, trigger: float, stop: float) -> SuggestionMetrics:
    """Trigger rate, ASC, AEC and saving rate of `records` at (trigger, stop)."""
    return score_table(records).score(trigger, stop)

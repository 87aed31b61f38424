"""Suggestions at (trigger, stop): the stopping and back-off rule, and trigger rate / ASC / AEC /
saving rate on hand-made records with known answers."""

from __future__ import annotations

import random

import pytest

from nasflow.core.errors import DataError
from nasflow.text_prediction.metrics import (
    cut_point,
    kept_words,
    score,
    score_table,
    suggestion_words,
)
from nasflow.text_prediction.suggest import PositionRecord, SuggestionRecords

EOS = "</s>"


def record(
    pieces: list[str],
    continuation: str,
    logprobs: list[float] | None = None,
    p1: float = 0.9,
    sentence: int = 0,
) -> PositionRecord:
    """A position whose greedy continuation is `pieces` ('▁' starts a word, '</s>' ends)."""
    eos = bool(pieces) and pieces[-1] == EOS
    n = len(pieces) - eos
    text = ["".join(pieces[:j]).replace("▁", " ").strip() for j in range(1, n + 1)]
    result = PositionRecord(
        sentence=sentence,
        position=1,
        continuation=continuation,
        p1=p1,
        tokens=tuple(range(len(pieces))),
        logprobs=tuple(logprobs or [-0.1] * len(pieces)),
        word_start=tuple(p.startswith("▁") for p in pieces),
        eos=eos,
        texts=tuple(text),
    )
    result.check()
    return result


def records(*positions: PositionRecord) -> SuggestionRecords:
    return SuggestionRecords(tuple(positions), max_tokens=8, eos_id=1, sentences=len(positions))


SHIRT = ["▁a", "▁red", "▁sh", "irt", EOS]


def test_kept_and_rejected_characters_known_answer() -> None:
    # suggestion "a red shirt" vs continuation "a red hat on": kept "a red" (5), rejected 6
    m = score(records(record(SHIRT, "a red hat on")), trigger=0.5, stop=-5.0)
    assert (m.shown, m.kept_chars, m.rejected_chars) == (1, 5, 6)
    assert (m.trigger_rate, m.asc, m.aec) == (1.0, 5.0, 6.0)
    assert m.saving_rate == 5 / len("a red hat on") and m.continuation_chars == 12
    assert kept_words(["a", "red", "shirt"], ["a", "red", "hat", "on"]) == ["a", "red"]
    assert kept_words(["b"], ["a"]) == [] and kept_words(["a", "b"], ["a"]) == ["a"]


@pytest.mark.parametrize(
    ("pieces", "logprobs", "stop", "expected"),
    [
        # nothing below stop: cut before EOS, the last word is complete (EOS follows it)
        (SHIRT, None, -1.0, ["a", "red", "shirt"]),
        # 'irt' below stop: cut inside "shirt", backed off to "a red"
        (SHIRT, [-0.1, -0.1, -0.1, -3.0, -0.1], -1.0, ["a", "red"]),
        # '▁sh' below stop: the cut token starts a word, so "a red" is complete
        (SHIRT, [-0.1, -0.1, -3.0, -0.1, -0.1], -1.0, ["a", "red"]),
        # EOS itself below stop: still cut before it, "shirt" complete
        (SHIRT, [-0.1, -0.1, -0.1, -0.1, -9.0], -1.0, ["a", "red", "shirt"]),
        # the first token's log-prob never cuts (the trigger judges it)
        (SHIRT, [-9.0, -0.1, -0.1, -0.1, -0.1], -1.0, ["a", "red", "shirt"]),
        # the second token cuts: one word left, complete since the cut token starts a word
        (SHIRT, [-0.1, -3.0, -0.1, -0.1, -0.1], -1.0, ["a"]),
        # the next word's token after the cut decides: '▁on' starts a word -> "shirt" complete
        (["▁a", "▁sh", "irt", "▁on", "▁it"], [-0.1, -0.1, -0.1, -3.0, -0.1], -1.0, ["a", "shirt"]),
        # max_tokens ran out inside a word: the trailing word is dropped
        (["▁a", "▁red", "▁sh", "irt"], None, -1.0, ["a", "red"]),
        # ran out right after a word-start token: that word may continue, so it is dropped
        (["▁a", "▁red", "▁sh"], None, -1.0, ["a", "red"]),
        # a single word still being built when max_tokens ran out: nothing left, not shown
        (["▁sh", "irt"], None, -1.0, None),
        # cut inside the only word: nothing left, not shown
        (["▁sh", "irt", EOS], [-0.1, -3.0, -0.1], -1.0, None),
        # first token does not start a word (the user typed the space): not shown
        (["irt", "▁a", EOS], None, -1.0, None),
        # first token is EOS: not shown
        ([EOS], None, -1.0, None),
    ],
)
def test_stopping_logic(pieces, logprobs, stop, expected) -> None:
    r = record(pieces, "a red shirt", logprobs)
    assert suggestion_words(r, 0.5, stop) == expected
    m = score(records(r), 0.5, stop)
    assert m.shown == (expected is not None)
    assert m.rejected_chars + m.kept_chars == len(" ".join(expected or []))


def test_cut_point_and_trigger() -> None:
    r = record(SHIRT, "a red shirt", [-0.1, -0.1, -2.0, -0.5, -0.1], p1=0.4)
    assert [cut_point(r, stop) for stop in (-3.0, -1.0, -0.3, 0.0)] == [4, 2, 2, 1]
    assert suggestion_words(r, 0.4, -3.0) == ["a", "red", "shirt"]
    assert suggestion_words(r, 0.41, -3.0) is None  # p1 below the trigger
    assert score(records(r), 0.41, -3.0).shown == 0


def test_rates_over_positions_known_answers() -> None:
    rs = records(
        record(SHIRT, "a red hat on", p1=0.9),  # shows "a red shirt": kept 5, rejected 6
        record(["▁the", "▁end", EOS], "the end", p1=0.6),  # kept 7, rejected 0
        record(["▁no", EOS], "yes it is", p1=0.3),  # kept 0, rejected 2 when shown
        record(["irt", EOS], "never", p1=0.99),  # never shown
    )
    total = len("a red hat on") + len("the end") + len("yes it is") + len("never")
    m = score(rs, 0.5, -1.0)
    assert (m.positions, m.shown, m.trigger_rate) == (4, 2, 0.5)
    assert (m.asc, m.aec) == (6.0, 3.0)
    assert m.saving_rate == 12 / total
    m = score(rs, 0.3, -1.0)
    assert (m.shown, m.trigger_rate, m.asc, m.aec) == (3, 0.75, 4.0, 8 / 3)
    m = score(rs, 0.995, -1.0)
    assert (m.shown, m.trigger_rate, m.asc, m.aec, m.saving_rate) == (0, 0.0, 0.0, 0.0, 0.0)
    assert set(m.to_dict()) >= {"trigger_rate", "asc", "aec", "saving_rate", "shown", "positions"}


def random_records(seed: int, count: int = 300) -> SuggestionRecords:
    rng = random.Random(seed)
    vocab = ["▁a", "▁b", "▁c", "x", "y", EOS]
    out = []
    for i in range(count):
        pieces: list[str] = []
        for _ in range(rng.randint(1, 8)):
            pieces.append(rng.choice(vocab))
            if pieces[-1] == EOS:
                break
        logprobs = [-rng.random() * 4 for _ in pieces]
        words = rng.choices(["a", "b", "c", "ax", "bxy"], k=rng.randint(1, 5))
        out.append(record(pieces, " ".join(words), logprobs, rng.random(), i))
    return records(*out)


def test_vectorised_score_equals_the_plain_rule() -> None:
    rs = random_records(3)
    for trigger in (0.0, 0.3, 0.7):
        for stop in (-4.0, -2.0, -0.5, 0.0):
            m = score(rs, trigger, stop)
            kept = rejected = shown = 0
            for r in rs.positions:
                words = suggestion_words(r, trigger, stop)
                if words is not None:
                    shown += 1
                    k = len(" ".join(kept_words(words, r.continuation.split())))
                    kept += k
                    rejected += len(" ".join(words)) - k
            assert (m.shown, m.kept_chars, m.rejected_chars) == (shown, kept, rejected)
    assert score_table(rs) is score_table(rs)  # cached per records object
    assert score(rs, 0.3, -1.0) == score(rs, 0.3, -1.0)


def test_empty_records_refused() -> None:
    with pytest.raises(DataError, match="no positions"):
        score(records(), 0.5, -1.0)

"""Threshold tuning: the trigger matched to a target rate by an exact search, the stop value
chosen among those within tolerance, the error when none is, and config checks."""

from __future__ import annotations

import random

import pytest

from nasflow.core.errors import ConfigError
from nasflow.text_prediction.metrics import score, score_table
from nasflow.text_prediction.suggest import PositionRecord, SuggestionRecords
from nasflow.text_prediction.tuning import TuningRow, tune_thresholds, validate_thresholds

EOS = "</s>"
STOPS = [-4.0, -2.0, -1.0, -0.5]


def record(
    pieces: list[str], logprobs: list[float], p1: float, continuation: str
) -> PositionRecord:
    eos = pieces[-1] == EOS
    n = len(pieces) - eos
    return PositionRecord(
        sentence=0,
        position=1,
        continuation=continuation,
        p1=p1,
        tokens=tuple(range(len(pieces))),
        logprobs=tuple(logprobs),
        word_start=tuple(p.startswith("▁") for p in pieces),
        eos=eos,
        texts=tuple("".join(pieces[:j]).replace("▁", " ").strip() for j in range(1, n + 1)),
    )


def synthetic(seed: int = 0, count: int = 1000) -> SuggestionRecords:
    """Continuations of 1-8 pieces with random log-probs; p1 on a coarse grid (ties)."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        pieces = [rng.choice(["▁a", "▁b", "▁c"])]
        while len(pieces) < 8 and pieces[-1] != EOS:
            pieces.append(rng.choice(["▁a", "▁b", "▁c", "x", EOS]))
        logprobs = [-rng.random() * 3 for _ in pieces]
        real = " ".join(rng.choices(["a", "b", "c", "ax"], k=rng.randint(1, 6)))
        out.append(record(pieces, logprobs, round(rng.random(), 2), real))
    return SuggestionRecords(tuple(out), max_tokens=8, eos_id=1, sentences=count)


def test_tuning_hits_the_target_rate_exactly_as_a_search_would() -> None:
    rs = synthetic()
    table = score_table(rs)
    result = tune_thresholds(rs, 0.3, stops=STOPS, tolerance=0.005)
    assert abs(result.metrics.trigger_rate - 0.3) <= 0.005
    assert result.metrics == score(rs, result.trigger, result.stop)
    assert [row.stop for row in result.rows] == STOPS
    for row in result.rows:
        eligible = table.p1[table.eligible(row.stop)]
        # brute force over every distinct eligible p1: none gets closer to the target
        gaps = {float(t): abs(score(rs, float(t), row.stop).trigger_rate - 0.3) for t in eligible}
        best = min(gaps.values())
        assert abs(row.trigger_rate - 0.3) == best
        assert row.trigger == max(t for t, g in gaps.items() if g == best)  # ties: higher
        assert row.trigger in set(eligible.tolist())
        assert row.within_tolerance == (abs(row.trigger_rate - 0.3) <= 0.005)
    within = [row for row in result.rows if row.within_tolerance]
    assert result.stop == max(within, key=lambda r: r.asc - r.aec).stop
    frame = result.table()
    assert list(frame.columns) == list(TuningRow.__annotations__) and len(frame) == len(STOPS)
    assert result.to_dict()["rows"][0]["stop"] == STOPS[0]
    assert tune_thresholds(rs, 0.3, stops=STOPS).to_dict() == result.to_dict()  # deterministic


def test_target_saving_picks_the_closest_saving_rate() -> None:
    rs = synthetic(1)
    result = tune_thresholds(rs, 0.4, stops=STOPS, tolerance=0.02, target_saving=0.0)
    within = [row for row in result.rows if row.within_tolerance]
    assert len(within) > 1
    assert result.stop == min(within, key=lambda r: r.saving_rate).stop
    high = tune_thresholds(rs, 0.4, stops=STOPS, tolerance=0.02, target_saving=1.0)
    assert high.stop == max(within, key=lambda r: r.saving_rate).stop


def test_saving_rates_within_the_saving_tolerance_are_matched_by_net_characters() -> None:
    rs = synthetic(1)
    exact = tune_thresholds(rs, 0.4, stops=STOPS, tolerance=0.02, target_saving=0.05)
    within = [row for row in exact.rows if row.within_tolerance]
    target = exact.metrics.saving_rate  # one of the rows hits this saving rate exactly
    near = [r for r in within if abs(r.saving_rate - target) <= 0.5 * target]
    assert len(near) > 1
    loose = tune_thresholds(
        rs, 0.4, stops=STOPS, tolerance=0.02, target_saving=target, saving_tolerance=0.5
    )
    assert loose.stop == max(near, key=lambda r: r.asc - r.aec).stop
    strict = tune_thresholds(rs, 0.4, stops=STOPS, tolerance=0.02, target_saving=target)
    assert strict.metrics.saving_rate == target
    with pytest.raises(ConfigError, match=r"saving_tolerance"):
        tune_thresholds(rs, 0.4, stops=STOPS, target_saving=target, saving_tolerance=-1)


def test_ties_go_to_the_higher_threshold() -> None:
    # p1 0.9 and 0.5 each once among four positions: rates 0.25 (trigger 0.9), 0.5 (0.5);
    # target 0.375 is equally far from both -> the higher threshold 0.9.
    rs = SuggestionRecords(
        tuple(record(["▁a", EOS], [-0.1, -0.1], p1, "a") for p1 in (0.9, 0.5, 0.1, 0.1)),
        8,
        1,
        4,
    )
    result = tune_thresholds(rs, 0.375, stops=[-1.0], tolerance=0.125)
    assert (result.trigger, result.metrics.trigger_rate) == (0.9, 0.25)
    assert tune_thresholds(rs, 1.0, stops=[-1.0], tolerance=0.01).trigger == 0.1


def test_unreachable_target_names_the_stops_key() -> None:
    # every position has p1 0.5: the rate is 0 or 1, never 0.5 +- 0.005
    rs = SuggestionRecords(
        tuple(record(["▁a", EOS], [-0.1, -0.1], 0.5, "a") for _ in range(10)), 8, 1, 10
    )
    with pytest.raises(ConfigError, match=r"text_prediction\.suggest\.stops.*closest rate is 1\.0"):
        tune_thresholds(rs, 0.5, stops=[-1.0, -2.0])
    # no eligible position at all (first tokens never start a word): trigger 1.0, rate 0
    none = SuggestionRecords((record(["x", EOS], [-0.1, -0.1], 0.5, "a"),), 8, 1, 1)
    with pytest.raises(ConfigError, match=r"closest rate is 0\.0000"):
        tune_thresholds(none, 0.5, stops=[-1.0])
    assert tune_thresholds(none, 0.0, stops=[-1.0]).trigger == 1.0


def test_unmatched_closest_uses_the_closest_rate_and_says_so() -> None:
    # every p1 is 0.5: the only rate a trigger among them reaches is 1.0, far from 0.3
    rs = SuggestionRecords(
        tuple(record(["▁a", EOS], [-0.1, -0.1], 0.5, "a") for _ in range(10)), 8, 1, 10
    )
    result = tune_thresholds(rs, 0.3, stops=[-1.0, -2.0], unmatched="closest")
    assert not result.matched and result.to_dict()["matched"] is False
    assert (result.metrics.trigger_rate, result.trigger) == (1.0, 0.5)
    assert not any(row.within_tolerance for row in result.rows)
    assert tune_thresholds(rs, 1.0, stops=[-1.0]).matched
    with pytest.raises(ConfigError, match=r"suggest\.unmatched must be one of error, closest"):
        tune_thresholds(rs, 0.3, stops=[-1.0], unmatched="nearest")


@pytest.mark.parametrize(
    ("args", "key"),
    [
        ((0.0, -1.0, [-1.0], 0.01), "trigger"),
        ((1.5, -1.0, [-1.0], 0.01), "trigger"),
        ((True, -1.0, [-1.0], 0.01), "trigger"),
        ((0.5, 0.5, [-1.0], 0.01), "stop"),
        ((0.5, float("nan"), [-1.0], 0.01), "stop"),
        ((0.5, -1.0, [], 0.01), "stops"),
        ((0.5, -1.0, [-1.0, 0.1], 0.01), "stops"),
        ((0.5, -1.0, "-1", 0.01), "stops"),
        ((0.5, -1.0, [-1.0], 0.0), "tolerance"),
        ((0.5, -1.0, [-1.0], 0.6), "tolerance"),
        ((0.5, -1.0, [-1.0], 0.01, "nearest"), "unmatched"),
    ],
)
def test_validate_thresholds_names_the_key(args, key) -> None:
    with pytest.raises(ConfigError, match=rf"text_prediction\.suggest\.{key} "):
        validate_thresholds(*args)


def test_valid_thresholds_and_bad_targets() -> None:
    validate_thresholds(1, 0, [0, -1.5], 0.5)
    rs = synthetic(2, 50)
    with pytest.raises(ConfigError, match="target trigger rate"):
        tune_thresholds(rs, 1.5, stops=STOPS)
    with pytest.raises(ConfigError, match="target saving rate"):
        tune_thresholds(rs, 0.5, stops=STOPS, target_saving=-0.1)
    with pytest.raises(ConfigError, match=r"suggest\.stops"):
        tune_thresholds(rs, 0.5, stops=[])

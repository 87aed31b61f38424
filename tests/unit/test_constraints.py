"""Search constraints: values against the closed-form counts, combination and config errors."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from nasflow.core.errors import ConfigError
from nasflow.efficiency.counts import count_embedding_params, count_flops, count_params
from nasflow.search.constraints import (
    Constraint,
    FlopsConstraint,
    LatencyConstraint,
    ParamsConstraint,
    constraints_from_mapping,
    satisfies_all,
)
from nasflow.space.hat import Arch, get_space

VOCAB = 8000
SPACE = get_space("demo")
ARCHS = [SPACE.smallest(), SPACE.largest(), *SPACE.sample_unique(4, seed=3)]


class FakePredictor:
    """Stands in for a LatencyPredictor: latency is 10 ms per decoder layer."""

    space_name = "demo"
    target = "total_ms"

    def predict_ms(self, archs: Sequence[Arch]) -> np.ndarray:
        return np.array([10.0 * a.decoder_layer_num for a in archs])


def test_flops_constraint_against_hand_computed_counts():
    gflops = np.array([count_flops(a, VOCAB) / 1e9 for a in ARCHS])
    limit = float(np.median(gflops))
    constraint = FlopsConstraint(limit, vocab_size=VOCAB)
    np.testing.assert_allclose(constraint.values(ARCHS), gflops)
    np.testing.assert_array_equal(constraint.satisfied(ARCHS), gflops <= limit)
    assert constraint.satisfied([SPACE.smallest()]).tolist() == [True]
    assert (constraint.name, constraint.limit) == ("gflops", limit)


def test_smallest_demo_arch_flops_by_hand():
    # demo smallest: d=128, q=128, 3 encoder layers (ffn 256), 1 decoder layer (ffn 256,
    # last-layer attention only), 20 source and target tokens.
    n, d, q, f = 20, 128, 128, 256
    attention = n * d * q + n * d * 2 * q + n * q * d + 2 * n * n * q
    encoder = 3 * (attention + 2 * n * d * f)
    decoder = attention + attention + 2 * n * d * f  # cross attention over one encoder layer
    expected = 2 * (encoder + decoder) + 2 * d * n * VOCAB
    assert FlopsConstraint(1.0, VOCAB).values([SPACE.smallest()])[0] == pytest.approx(
        expected / 1e9
    )


def test_params_constraint_with_and_without_embeddings():
    plain = np.array([count_params(a) / 1e6 for a in ARCHS])
    total = plain + np.array([count_embedding_params(a, VOCAB) / 1e6 for a in ARCHS])
    np.testing.assert_allclose(ParamsConstraint(5, VOCAB).values(ARCHS), plain)
    with_embeddings = ParamsConstraint(5, VOCAB, include_embeddings=True)
    np.testing.assert_allclose(with_embeddings.values(ARCHS), total)
    limit = float(np.median(plain))
    np.testing.assert_array_equal(ParamsConstraint(limit, VOCAB).satisfied(ARCHS), plain <= limit)


def test_latency_constraint_uses_the_predictor():
    constraint = LatencyConstraint(FakePredictor(), max_ms=20)
    layers = np.array([a.decoder_layer_num for a in ARCHS])
    np.testing.assert_allclose(constraint.values(ARCHS), 10.0 * layers)
    np.testing.assert_array_equal(constraint.satisfied(ARCHS), layers <= 2)
    assert "latency_ms <= 20 ms" in repr(constraint)


def test_limit_is_inclusive():
    value = FlopsConstraint(1.0, VOCAB).values([SPACE.largest()])[0]
    assert FlopsConstraint(value, VOCAB).satisfied([SPACE.largest()]).tolist() == [True]


def test_constraints_from_mapping_and_combination():
    predictor = FakePredictor()
    gflops = np.array([count_flops(a, VOCAB) / 1e9 for a in ARCHS])
    params = np.array([count_params(a) / 1e6 for a in ARCHS])
    g_limit, p_limit = float(np.median(gflops)), float(np.max(params))
    constraints = constraints_from_mapping(
        {"latency_ms": 25, "gflops": g_limit, "params_m": p_limit},
        vocab_size=VOCAB,
        latency_predictor=predictor,
    )
    assert [c.name for c in constraints] == ["latency_ms", "gflops", "params_m"]
    assert all(isinstance(c, Constraint) for c in constraints)
    layers = np.array([a.decoder_layer_num for a in ARCHS])
    expected = (layers <= 2) & (gflops <= g_limit) & (params <= p_limit)
    np.testing.assert_array_equal(satisfies_all(constraints, ARCHS), expected)


def test_absent_or_null_limits_are_unconstrained():
    assert constraints_from_mapping(None, vocab_size=VOCAB) == []
    assert constraints_from_mapping({"latency_ms": None, "gflops": None}, vocab_size=VOCAB) == []
    only = constraints_from_mapping({"params_m": 30}, vocab_size=VOCAB)
    assert [type(c) for c in only] == [ParamsConstraint]
    assert satisfies_all([], ARCHS).tolist() == [True] * len(ARCHS)
    assert satisfies_all(only, []).shape == (0,)


@pytest.mark.parametrize(
    ("mapping", "pattern"),
    [
        ({"latency_ms": 100}, "latency_ms needs a trained latency predictor"),
        ({"gflops": 2, "latency": 3, "flops": 1}, r"unknown constraint\(s\): flops, latency"),
        ({"gflops": 0}, "gflops: the limit must be positive"),
        ({"params_m": -1}, "params_m: the limit must be positive"),
        ({"params_m": float("inf")}, "params_m: the limit must be positive and finite"),
        ({"gflops": "2.5"}, "gflops: the limit must be a number"),
        ({"gflops": True}, "gflops: the limit must be a number"),
    ],
)
def test_config_errors(mapping, pattern):
    with pytest.raises(ConfigError, match=pattern):
        constraints_from_mapping(mapping, vocab_size=VOCAB)


def test_bad_vocab_size():
    with pytest.raises(ConfigError, match="vocab_size"):
        FlopsConstraint(1.0, vocab_size=0)

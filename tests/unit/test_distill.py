"""LLM-Distill-PP MLP: features, learning a known target, determinism, files, early stopping."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from nasflow.core.errors import ConfigError, DataError
from nasflow.predictors.base import Predictor
from nasflow.predictors.distilled import (
    MODEL_FORMAT,
    DistilledPredictor,
    DistillSettings,
    FeatureNormalization,
    distill_feature_matrix,
    evaluate_on,
    train_distill_mlp,
)
from nasflow.space.hat import Arch, ArchError, get_space

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = {"hidden_dim": 64, "hidden_layers": 2, "lr": 3e-3, "steps": 300, "batch_size": 64}
TINY = {"hidden_dim": 16, "hidden_layers": 1, "steps": 20, "batch_size": 16}


def synthetic_bleu(archs: list[Arch]) -> np.ndarray:
    """A known smooth target: 10 + 20 x mean of the 10 distill features."""
    space = get_space("demo")
    return np.array([10 + 20 * np.mean(space.distill_features(a)) for a in archs])


@pytest.fixture(scope="module")
def archs() -> list[Arch]:
    return get_space("demo").sample_unique(300, seed=7)


@pytest.fixture(scope="module")
def trained(archs: list[Arch]) -> DistilledPredictor:
    train = archs[:220]
    return train_distill_mlp(train, synthetic_bleu(train), DistillSettings(**FAST), name="demo")


def test_feature_matrix_equals_distill_features(archs: list[Arch]) -> None:
    for name in ("demo", "hat-wmt"):
        space = get_space(name)
        sample = archs if name == "demo" else space.sample_unique(50, seed=1)
        expected = np.array([space.distill_features(a) for a in sample])
        assert np.array_equal(distill_feature_matrix(sample, space), expected)


def test_learns_synthetic_target_on_held_out_archs(
    trained: DistilledPredictor, archs: list[Arch]
) -> None:
    held_out = archs[220:]
    metrics = evaluate_on(trained, held_out, synthetic_bleu(held_out))
    assert metrics["n"] == 80
    assert metrics["mae"] < 0.5  # targets span ~15-30 BLEU
    assert metrics["kendall"] > 0.85
    assert isinstance(trained, Predictor) and trained.bleu_scale and trained.name == "demo"
    summary = trained.training_summary
    assert summary["steps_run"] == 300 and summary["n_train"] == 220 and summary["n_valid"] == 0
    assert summary["train_curve"][-1][0] == 300


def test_predict_shapes_and_empty(trained: DistilledPredictor, archs: list[Arch]) -> None:
    scores = trained.predict(archs[:5])
    assert scores.shape == (5,) and scores.dtype == np.float64
    assert np.allclose(scores, [trained.predict([a])[0] for a in archs[:5]], atol=1e-5)
    assert trained.predict([]).shape == (0,)


def test_same_seed_gives_identical_predictions(archs: list[Arch]) -> None:
    labels = synthetic_bleu(archs[:64])
    settings = DistillSettings(**TINY)
    first = train_distill_mlp(archs[:64], labels, settings).predict(archs)
    second = train_distill_mlp(archs[:64], labels, settings).predict(archs)
    assert np.array_equal(first, second)
    other = train_distill_mlp(archs[:64], labels, DistillSettings(**TINY, seed=124))
    assert not np.array_equal(first, other.predict(archs))


def test_save_load_round_trip(
    trained: DistilledPredictor, archs: list[Arch], tmp_path: Path
) -> None:
    path = trained.save(tmp_path / "sub" / "mlp.pt")
    loaded = DistilledPredictor.load(path)
    assert np.array_equal(loaded.predict(archs), trained.predict(archs))
    assert loaded.name == "demo" and loaded.space_name == "demo"
    assert loaded.settings == trained.settings
    assert loaded.training_summary["steps_run"] == 300
    assert DistilledPredictor.load(path, name="renamed").name == "renamed"
    assert [p.name for p in tmp_path.joinpath("sub").iterdir()] == ["mlp.pt"]  # no temp left


def test_standardized_features_round_trip(archs: list[Arch], tmp_path: Path) -> None:
    labels = synthetic_bleu(archs[:64])
    predictor = train_distill_mlp(archs[:64], labels, DistillSettings(**TINY, standardize=True))
    assert not predictor.normalization.is_identity
    loaded = DistilledPredictor.load(predictor.save(tmp_path / "mlp.pt"))
    assert loaded.normalization == predictor.normalization
    assert np.array_equal(loaded.predict(archs), predictor.predict(archs))


def test_load_errors(trained: DistilledPredictor, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        DistilledPredictor.load(tmp_path / "missing.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a torch checkpoint\x00\xff")
    with pytest.raises(DataError, match="cannot read"):
        DistilledPredictor.load(garbage)
    other = tmp_path / "other.pt"
    torch.save({"format": "nasflow-latency-predictor/1"}, other)
    with pytest.raises(DataError, match=r"not a valid.*format"):
        DistilledPredictor.load(other)
    payload = torch.load(trained.save(tmp_path / "ok.pt"), weights_only=True)
    payload["settings"]["hidden_dim"] = 32  # weights no longer fit the network
    torch.save(payload, tmp_path / "mismatch.pt")
    with pytest.raises(DataError, match="not a valid"):
        DistilledPredictor.load(tmp_path / "mismatch.pt")
    assert payload["format"] == MODEL_FORMAT


def test_refuses_archs_of_another_space(trained: DistilledPredictor) -> None:
    foreign = get_space("hat-wmt").sample_unique(2, seed=0)
    with pytest.raises(ArchError, match=r"space 'demo'.*space 'hat-wmt'"):
        trained.predict(foreign)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"hidden_dim": 0}, "hidden_dim"),
        ({"steps": 1.5}, "steps"),
        ({"lr": -1.0}, "lr"),
        ({"lr": float("nan")}, "lr"),
        ({"valid_fraction": 1.0}, "valid_fraction"),
        ({"patience": -1}, "patience"),
        ({"batch_size": True}, "batch_size"),
        ({"device": "nonsense"}, "device"),
        ({"standardize": "yes"}, "standardize"),
    ],
)
def test_bad_settings_name_the_field(changes: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        DistillSettings(**changes)


def test_settings_mapping_round_trip() -> None:
    settings = DistillSettings.from_mapping({"steps": 15000, "valid_fraction": 0.1})
    assert DistillSettings.from_mapping(settings.to_dict()) == settings
    assert DistillSettings.from_mapping(None) == DistillSettings()
    assert DistillSettings().lr == 1e-5 and DistillSettings().seed == 123
    with pytest.raises(ConfigError, match=r"unknown.*bogus"):
        DistillSettings.from_mapping({"bogus": 1})


def test_early_stopping_keeps_best_state(archs: list[Arch]) -> None:
    # Noise labels on few archs: the held-out MSE falls while the mean is learnt, then rises
    # as the network memorises the training noise.
    few = archs[:40]
    labels = 20 + 5 * np.random.default_rng(0).standard_normal(len(few))
    settings = DistillSettings(
        hidden_dim=64,
        hidden_layers=2,
        lr=1e-2,
        steps=3000,
        batch_size=16,
        valid_fraction=0.5,
        eval_interval=10,
        patience=3,
    )
    summary = train_distill_mlp(few, labels, settings).training_summary
    assert summary["stopped_early"] and summary["steps_run"] < settings.steps
    assert summary["n_valid"] == 20
    curve = dict((int(step), mse) for step, mse in summary["valid_curve"])
    assert summary["best_step"] < summary["steps_run"]
    assert summary["best_valid_mse"] == min(curve.values()) == curve[summary["best_step"]]
    assert summary["final_valid_mse"] == pytest.approx(summary["best_valid_mse"], rel=1e-6)
    assert summary["final_valid_mse"] < curve[summary["steps_run"]]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda a: ([], []), "no architectures"),
        (lambda a: (a[:3], [20.0, 21.0]), "3 architectures but 2"),
        (lambda a: (a[:3], [20.0, float("nan"), 21.0]), "BLEU value 1"),
        (lambda a: (a[:3], [20.0, float("inf"), 21.0]), "finite"),
        (lambda a: (a[:2], ["x", 1.0]), "must be numbers"),
        (
            lambda a: ([a[0], get_space("hat-wmt").smallest()], [20.0, 21.0]),
            "several search spaces",
        ),
    ],
)
def test_training_data_errors(archs: list[Arch], make, message: str) -> None:
    data, labels = make(archs)
    with pytest.raises(DataError, match=message):
        train_distill_mlp(data, labels, DistillSettings(**TINY))


def test_holdout_needs_two_archs(archs: list[Arch]) -> None:
    with pytest.raises(DataError, match="at least 2"):
        train_distill_mlp(archs[:1], [20.0], DistillSettings(**TINY, valid_fraction=0.5))


def test_evaluate_on_rank_only_and_constant(archs: list[Arch]) -> None:
    class Constant(Predictor):
        name = "constant"

        def predict(self, archs):
            return np.zeros(len(archs))

    metrics = evaluate_on(Constant(), archs[:4], [1.0, 2.0, 3.0, 4.0])
    assert metrics == {"n": 4, "mae": None, "kendall": None}


def test_identity_normalization_is_a_no_op() -> None:
    x = np.random.default_rng(0).random((3, 10))
    assert FeatureNormalization.identity().apply(x) is x
    with pytest.raises(ValueError):
        FeatureNormalization.from_dict({"mean": [0.0] * 10, "std": [0.0] * 10})

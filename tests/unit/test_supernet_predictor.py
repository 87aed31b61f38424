"""The supernet as a predictor: inherited-weight loss/BLEU per architecture (CPU, no network)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from nasflow.core.errors import ConfigError, DataError
from nasflow.core.io import read_lines
from nasflow.data import load_split
from nasflow.evaluate import corpus_bleu, translate_split, validation_loss
from nasflow.model import SuperTransformer
from nasflow.model.checkpoint import save_model
from nasflow.predictors import Predictor, SupernetPredictor
from nasflow.space.hat import get_space

VOCAB = 100
DECODE = {"beam": 2, "lenpen": 0.6, "max_len_a": 0.0, "max_len_b": 6}


@pytest.fixture(scope="module")
def supernet() -> SuperTransformer:
    torch.manual_seed(0)
    return SuperTransformer(get_space("demo"), VOCAB).eval()


@pytest.fixture(scope="module")
def archs():
    space = get_space("demo")
    return [space.largest(), space.smallest(), *space.sample_unique(3, seed=7)]


def test_loss_scores_equal_extracted_models(tiny_data: Path, supernet, archs) -> None:
    predictor = SupernetPredictor(supernet, tiny_data, metric="loss", max_tokens=128)
    assert isinstance(predictor, Predictor)
    assert predictor.name == "Supernet (loss)" and predictor.bleu_scale is False
    scores = predictor.predict(archs)
    assert scores.shape == (len(archs),) and scores.dtype == float
    split = load_split(tiny_data, "valid")
    losses = [validation_loss(supernet.extract(a), split).loss_bits for a in archs]
    np.testing.assert_allclose(scores, -np.array(losses), atol=1e-4)
    # Higher is better: the best score is the lowest loss.
    assert int(np.argmax(scores)) == int(np.argmin(losses))
    assert len(predictor.timings) == len(archs) and predictor.seconds_per_arch > 0
    assert predictor.predict([]).shape == (0,)


def test_predict_restores_arch_and_mode(tiny_data: Path, supernet, archs) -> None:
    predictor = SupernetPredictor(supernet, tiny_data, valid_sentences=5)
    supernet.set_arch(archs[2]).train()
    try:
        predictor.predict(archs[:2])
        assert supernet.arch == archs[2] and supernet.training
        with pytest.raises(ValueError):
            predictor.predict([get_space("hat-wmt").largest()])
        assert supernet.arch == archs[2]
    finally:
        supernet.eval()


def test_valid_sentences_restricts(tiny_data: Path, supernet, archs) -> None:
    predictor = SupernetPredictor(supernet, tiny_data, valid_sentences=5)
    assert sum(batch.size for batch in predictor.batches) == 5
    split = load_split(tiny_data, "valid")
    expected = validation_loss(supernet.extract(archs[3]), split, sentences=5).loss_bits
    assert predictor.predict([archs[3]])[0] == pytest.approx(-expected, abs=1e-4)


def test_bleu_metric_matches_translation(tiny_data: Path, supernet, archs) -> None:
    predictor = SupernetPredictor(
        supernet, tiny_data, metric="bleu", valid_sentences=6, batch_sentences=4, **DECODE
    )
    assert predictor.name == "Supernet (bleu)" and predictor.bleu_scale is True
    score = predictor.predict([archs[1]])[0]
    hyps = translate_split(
        supernet.extract(archs[1]),
        load_split(tiny_data, "valid"),
        tiny_data / "spm.model",
        sentences=6,
        **DECODE,
    )
    refs = read_lines(tiny_data / "valid.de")[:6]
    assert score == pytest.approx(corpus_bleu(hyps, refs).score, abs=1e-6)


def test_from_file_and_bad_setups(tiny_data: Path, supernet, archs, tmp_path: Path) -> None:
    path = tmp_path / "supernet.pt"
    save_model(path, supernet)
    loaded = SupernetPredictor.from_file(path, tiny_data, device="cpu", valid_sentences=8)
    direct = SupernetPredictor(supernet, tiny_data, valid_sentences=8)
    np.testing.assert_allclose(loaded.predict(archs[:2]), direct.predict(archs[:2]), rtol=1e-6)
    with pytest.raises(ConfigError, match="metric 'ppl'"):
        SupernetPredictor(supernet, tiny_data, metric="ppl")
    with pytest.raises(ConfigError, match="needs a supernet"):
        SupernetPredictor(supernet.extract(archs[0]), tiny_data)
    with pytest.raises(DataError, match="vocabulary"):
        SupernetPredictor(SuperTransformer(get_space("demo"), VOCAB + 1), tiny_data)

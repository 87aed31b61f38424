"""Zero-cost proxies: hand-computed values on a toy model, the Transformer at initialisation,
the fixed batches, the scores CSV and `nasflow zero-cost score`."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from tests.conftest import TOY_DE, TOY_EN, TOY_VOCAB
from torch import nn

from nasflow.cli import main
from nasflow.core.errors import ConfigError, DataError
from nasflow.data.prepare import SPECIAL_IDS
from nasflow.model.supertransformer import ModelConfig, SuperTransformer
from nasflow.predictors.base import Predictor
from nasflow.space.hat import get_space
from nasflow.zero_cost.batches import newstest_batch, newstest_files, prepared_batch
from nasflow.zero_cost.predictor import (
    SYNFLOW_TOKEN,
    InitialModels,
    ZeroCostPredictor,
    proxy_scores,
    score_archs,
    synflow_inputs,
)
from nasflow.zero_cost.proxies import NAMES, grad_norm_and_snip, synflow, weight_parameters
from nasflow.zero_cost.scores import COLUMNS, read_scores

SPACE = get_space("demo")
ARCHS = [SPACE.largest(), SPACE.smallest(), *SPACE.sample_unique(1, seed=3)]


def toy_model() -> nn.Sequential:
    """`W2 (W1 x + b1)` with dropout between: W1 = [[1, -2], [3, 4]], b1 = [-1, 2], W2 = [-1, 2]."""
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5), nn.Linear(2, 1, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, -2.0], [3.0, 4.0]]))
        model[0].bias.copy_(torch.tensor([-1.0, 2.0]))
        model[2].weight.copy_(torch.tensor([[-1.0, 2.0]]))
    return model


def test_grad_norm_and_snip_by_hand() -> None:
    # x = [1, 2]: h = W1 x + b1 = [-4, 13], L = W2 h = 30; dL/dW2 = h, dL/dW1 = W2^T x^T.
    model = toy_model().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    grad_norm, snip = grad_norm_and_snip(model, lambda m: m(torch.tensor([1.0, 2.0])).sum())
    assert grad_norm == pytest.approx(math.sqrt(185) + math.sqrt(1 + 4 + 4 + 16))
    # |W2 * h| = 4 + 26, |W1 * [[-1, -2], [2, 4]]| = 1 + 4 + 6 + 16; the bias is left out.
    assert snip == pytest.approx(30 + 27)
    assert model.training and all(p.grad is None for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_synflow_by_hand_on_an_abs_float64_eval_copy() -> None:
    # |W1| = [[1, 2], [3, 4]], |b1| = [1, 2], |W2| = [1, 2], x = ones: h = [4, 9], R = 22;
    # |W2| * h = 4 + 18, |W1| * (|W2|^T x^T) = 1 + 2 + 6 + 8; the bias is left out.
    model = toy_model().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    seen = {}

    def forward(net: nn.Module) -> torch.Tensor:
        seen["dtype"], seen["training"] = net[0].weight.dtype, net.training
        return net(torch.ones(2, dtype=torch.float64))

    assert synflow(model, forward) == pytest.approx(22 + 17, rel=1e-12)
    assert seen == {"dtype": torch.float64, "training": False}
    assert model.training and model[0].weight.dtype == torch.float32
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def test_weight_parameters_are_the_matrices() -> None:
    torch.manual_seed(0)
    model = SuperTransformer(SPACE, TOY_VOCAB).extract(ARCHS[1])
    names = [n for n, _ in weight_parameters(model)]
    assert "embed_tokens.weight" in names and "encoder_layers.0.ffn.fc1.weight" in names
    assert not any("bias" in n or "norm" in n for n in names)
    assert len(names) == sum(p.dim() >= 2 for p in model.parameters())


def test_initial_model_is_the_from_scratch_start() -> None:
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    built = InitialModels(SPACE, TOY_VOCAB, ModelConfig(), seed=1).build(ARCHS[2])
    assert torch.equal(torch.rand(3), expected_next)  # the caller's RNG is left alone
    torch.manual_seed(1)  # as Trainer._build_model
    reference = SuperTransformer(SPACE, TOY_VOCAB, ModelConfig()).extract(ARCHS[2])
    ours, theirs = built.state_dict(), reference.state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)


@pytest.fixture(scope="module")
def batch(tiny_data: Path):
    return prepared_batch(tiny_data, batch_tokens=96, seed=1).batch


def test_prepared_batch_is_deterministic_and_within_budget(tiny_data: Path) -> None:
    first = prepared_batch(tiny_data, batch_tokens=96, seed=1)
    again = prepared_batch(tiny_data, batch_tokens=96, seed=1)
    other = prepared_batch(tiny_data, batch_tokens=96, seed=2)
    assert torch.equal(first.batch.src_tokens, again.batch.src_tokens) and first.info == again.info
    assert first.info["indices"] != other.info["indices"]
    longest = max(first.batch.src_tokens.shape[1], first.batch.target.shape[1])
    assert first.batch.size * longest <= 96 and first.batch.size > 1
    assert first.info["vocab_size"] == TOY_VOCAB and first.info["sentences"] == first.batch.size


def test_scores_are_deterministic_finite_and_seeded(batch) -> None:
    kwargs = {"space": SPACE, "vocab_size": TOY_VOCAB, "batch": batch}
    frame = score_archs(ARCHS, **kwargs, seed=1)
    assert list(frame.columns) == ["arch_id", *NAMES, "seconds"]
    assert list(frame["arch_id"]) == [a.id for a in ARCHS]
    values = frame[list(NAMES)].to_numpy()
    assert np.isfinite(values).all() and (values > 0).all()
    same = score_archs(ARCHS, **kwargs, seed=1)
    other = score_archs(ARCHS, **kwargs, seed=2)
    assert frame[list(NAMES)].equals(same[list(NAMES)])
    assert (frame[list(NAMES)].to_numpy() != other[list(NAMES)].to_numpy()).all()
    predictor = ZeroCostPredictor("snip", batch, space=SPACE, vocab_size=TOY_VOCAB, seed=1)
    assert isinstance(predictor, Predictor) and predictor.bleu_scale is False
    np.testing.assert_array_equal(predictor.predict(ARCHS), frame["snip"].to_numpy())


def test_synflow_of_one_row_times_b_is_the_batch_value(batch) -> None:
    model = InitialModels(SPACE, TOY_VOCAB).build(ARCHS[0])
    src, prev = synflow_inputs(batch)
    assert src.shape == batch.src_tokens.shape and prev.shape == batch.prev_output_tokens.shape
    assert (src == SYNFLOW_TOKEN).all() and max(SPECIAL_IDS.values()) + 1 == SYNFLOW_TOKEN
    full = synflow(model, lambda m: m(src, prev))
    assert proxy_scores(model, batch, ["synflow"])["synflow"] == pytest.approx(full, rel=1e-9)


def test_batch_ids_must_fit_the_vocabulary(batch) -> None:
    with pytest.raises(DataError, match="vocabulary of 10"):
        score_archs(ARCHS[:1], space=SPACE, vocab_size=10, batch=batch)
    with pytest.raises(ValueError, match="unknown zero-cost proxy"):
        ZeroCostPredictor("jacov", batch, space=SPACE, vocab_size=TOY_VOCAB)


def write_newstest(folder: Path, count: int = 60) -> Path:
    """A fake `en-de.newstest2013.{en,de}.gz` pair of toy sentences of growing length."""
    folder.mkdir(parents=True, exist_ok=True)
    for lang, words in (("en", TOY_EN), ("de", TOY_DE)):
        lines = [" ".join(words[(i + j) % 16] for j in range(2 + i % 7)) for i in range(count)]
        with gzip.open(folder / f"en-de.newstest2013.{lang}.gz", "wt", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
    return folder


def test_newstest_batch_takes_the_first_pairs_and_caches_the_bpe(tmp_path: Path) -> None:
    folder = write_newstest(tmp_path / "newstest")
    work = tmp_path / "work"
    first = newstest_batch("wmt19ende", folder, work, batch_tokens=64, bpe_vocab=60)
    model = Path(first.info["spm_model"])
    stamp = model.stat().st_mtime_ns
    again = newstest_batch("wmt19ende", folder, work, batch_tokens=64, bpe_vocab=60)
    assert model.stat().st_mtime_ns == stamp and again.info == first.info
    assert torch.equal(first.batch.target, again.batch.target)
    batch = first.batch
    assert batch.indices.tolist() == list(range(batch.size)) and batch.size > 1
    assert batch.size * max(batch.src_tokens.shape[1], batch.target.shape[1]) <= 64
    assert int(batch.target.max()) < 60 and first.info["bpe_vocab"] == 60
    assert first.info["files"] == [str(f) for f in newstest_files("wmt14ende", folder)]


def test_newstest_batch_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"en-fr\.newstest2013\.en\.gz"):
        newstest_batch("wmt14enfr", tmp_path, tmp_path / "work")
    with pytest.raises(ConfigError, match="no newstest2013 for task 'demo'"):
        newstest_batch("demo", tmp_path, tmp_path / "work")


def test_read_scores_round_trip_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "scores.csv"
    rows = [("t1", "a", 1.5, 2.0, 3e20, 0.1), ("t1", "b", 0.5, 4.0, 1e20, 0.2)]
    pd.DataFrame(rows, columns=list(COLUMNS)).to_csv(path, index=False)
    predictors = read_scores(path)["t1"]
    assert [p.name for p in predictors] == list(NAMES)
    assert all(p.bleu_scale is False for p in predictors)
    assert predictors[2].predictions == {"a": 3e20, "b": 1e20}
    path.write_text(path.read_text().replace("4.0", "oops"))
    with pytest.raises(DataError, match=r"scores\.csv:3: column 'snip': 'oops' is not a number"):
        read_scores(path)
    path.write_text("task,arch_id,grad-norm,snip\nt1,a,1,2\n")
    with pytest.raises(DataError, match=r"scores\.csv:1: missing column\(s\) synflow"):
        read_scores(path)


def test_cli_scores_a_built_tfs_eval_set(tmp_path: Path, tiny_data: Path, tfs_eval: Path) -> None:
    out = tmp_path / "zc" / "scores.csv"
    argv = ["zero-cost", "score", "--tfs-eval", str(tfs_eval), "--task", "all"]
    argv += ["--data", str(tiny_data), "--out", str(out), "--batch-tokens", "64"]
    assert main([*argv, "--config-json", json.dumps({"model": {"dropout": 0.1}})]) == 0
    frame = pd.read_csv(out)
    assert list(frame.columns) == list(COLUMNS) and len(frame) == 9
    assert set(frame["task"]) == {"demo"} and frame["arch_id"].is_unique
    sidecar = json.loads((tmp_path / "zc" / "scores.csv.json").read_text())
    assert sidecar["space"] == "demo" and sidecar["model"]["dropout"] == 0.1
    task = sidecar["tasks"]["demo"]
    assert (
        task["vocab_size"] == 500 and task["archs"] == 9 and task["batch"]["source"] == "prepared"
    )
    scores = read_scores(out)["demo"]
    assert len(scores[0].predictions) == 9
    assert main([*argv[:-2], "--batch-tokens", "64", "--task", "nope"]) == 2

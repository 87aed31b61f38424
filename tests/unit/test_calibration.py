"""Demonstration-calibrated predictors: the fits, their fallbacks, that they never change a
ranking, their Table 1 rows (order, MAE, Kendall) and the CLI options that add them."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tests.unit.conftest import TINY_ARCHS

from nasflow.cli import main
from nasflow.core.errors import DataError
from nasflow.core.metrics import kendall
from nasflow.predictors import Predictor, StoredPredictor
from nasflow.predictors.calibration import (
    MODES,
    CalibratedPredictor,
    Calibration,
    calibrated_predictors,
    fit_calibration,
)
from nasflow.predictors.quality import (
    _ordered,
    default_predictors,
    evaluate_predictors,
    supernet_bases,
)
from nasflow.tfs.format import read_tfs_eval


def _same_tau(x: float, y: float) -> bool:
    """Kendall values equal (both NaN counts as equal: tau undefined on both sides)."""
    return (math.isnan(x) and math.isnan(y)) or x == y


# ---- fitting ------------------------------------------------------------------------------------


def test_affine_recovers_a_linear_map():
    x = np.array([20.0, 22.5, 21.0, 25.0, 19.5])
    fit = fit_calibration(x, 2 * x + 3, "affine", bleu_scale=True)
    assert (fit.a, fit.b) == pytest.approx((2.0, 3.0))
    assert fit.mode == "affine" and fit.fallback is None
    assert fit.apply([10.0, 0.0]) == pytest.approx([23.0, 3.0])


def test_shift_adds_the_mean_gap_only():
    p, g = np.array([20.0, 22.0, 24.0]), np.array([21.0, 24.0, 24.0])
    fit = fit_calibration(p, g, "shift", bleu_scale=True)
    assert fit == Calibration(1.0, pytest.approx(1.0), "shift", None)
    assert fit.apply(p) == pytest.approx(p + 1.0)
    with pytest.raises(ValueError, match="shift calibration needs BLEU-scale"):
        fit_calibration(p, g, "shift", bleu_scale=False)


@pytest.mark.parametrize(
    ("predictions", "gold", "bleu_scale", "fallback", "a"),
    [
        # anti-correlated demonstrations: the least-squares slope is negative
        ([20.0, 21.0, 22.0], [25.0, 24.0, 23.0], True, "shift", 1.0),
        ([-5.0, -4.0, -3.0], [25.0, 24.0, 23.0], False, "moments", 1.0),
        ([-5.0, -4.0, -3.0], [26.0, 24.0, 22.0], False, "moments", 2.0),
        # constant predictions (slope undefined), one demonstration, constant gold
        ([20.0, 20.0, 20.0], [25.0, 24.0, 23.0], True, "shift", 1.0),
        ([-4.0, -4.0, -4.0], [25.0, 24.0, 23.0], False, "mean", 1.0),
        ([20.0], [25.0], True, "shift", 1.0),
        ([-4.0], [25.0], False, "mean", 1.0),
        ([-5.0, -4.0, -3.0], [24.0, 24.0, 24.0], False, "mean", 1.0),
    ],
)
def test_fallbacks_keep_a_positive_and_match_the_mean(predictions, gold, bleu_scale, fallback, a):
    fit = fit_calibration(predictions, gold, "affine", bleu_scale=bleu_scale)
    assert fit.fallback == fallback and fit.mode == "affine"
    assert fit.a == pytest.approx(a)
    assert fit.apply(predictions).mean() == pytest.approx(np.mean(gold))


def test_fit_rejects_bad_input():
    with pytest.raises(ValueError, match="at least one demonstration"):
        fit_calibration([], [], "affine", bleu_scale=True)
    with pytest.raises(ValueError, match="mode 'scale'"):
        fit_calibration([1.0], [1.0], "scale", bleu_scale=True)
    with pytest.raises(ValueError, match=r"predictions of shape \(2,\), gold \(1,\)"):
        fit_calibration([1.0, 2.0], [1.0], "affine", bleu_scale=True)
    with pytest.raises(ValueError, match="NaN or infinite"):
        fit_calibration([1.0, math.nan], [1.0, 2.0], "affine", bleu_scale=True)


def test_calibration_never_changes_a_ranking():
    rng = np.random.default_rng(7)
    fallbacks = set()
    for trial in range(600):
        n = int(rng.choice([1, 2, 3, 5, 10]))
        bleu_scale = bool(trial % 2)
        scale = 1.0 if bleu_scale else float(rng.uniform(0.01, 10))
        demos = rng.normal(0, 2, n) * scale + (20 if bleu_scale else -5)
        kind = trial % 3
        if kind == 0:  # correlated with noise
            gold = 1.3 * demos / scale + rng.normal(0, 1, n) + 25
        elif kind == 1:  # anti-correlated
            gold = -0.8 * demos / scale + rng.normal(0, 0.1, n) + 25
        else:  # constant predictions
            demos = np.full(n, demos[0])
            gold = rng.normal(25, 2, n)
        test = np.round(rng.normal(0, 2, 20) * scale, 1) + (20 if bleu_scale else -5)
        test_gold = test / scale + rng.normal(0, 1, 20)
        for mode in MODES if bleu_scale else ("affine",):
            fit = fit_calibration(demos, gold, mode, bleu_scale=bleu_scale)
            assert fit.a > 0
            assert _same_tau(kendall(test_gold, fit.apply(test)), kendall(test_gold, test))
            fallbacks.add(fit.fallback)
    assert fallbacks == {None, "shift", "moments", "mean"}


# ---- the predictor on a TFS-Eval table ------------------------------------------------------


@pytest.fixture
def table(tfs_eval_with_supernet: Path) -> pd.DataFrame:
    """The tiny built set: task `demo`, seeds 1 and 2, 3 train + 6 test architectures each,
    a rank-only stored `Supernet (loss)`."""
    return read_tfs_eval(tfs_eval_with_supernet)


def _supernet(table: pd.DataFrame) -> Predictor:
    (base,) = supernet_bases(default_predictors(table, "demo"))
    return base


def test_calibrated_predictor_fits_each_seed_on_its_demonstrations(table: pd.DataFrame):
    base = _supernet(table)
    assert base.name == "Supernet (loss)" and not base.bleu_scale
    calibrated = CalibratedPredictor(base, table, "demo")
    assert calibrated.name == "Supernet (loss) + calibration" and calibrated.bleu_scale
    for seed in (1, 2):
        train = table[(table.seed == seed) & (table.split == "train")]
        archs = list(train.arch)
        expected = fit_calibration(
            base.predict(archs), train.gold.to_numpy(), "affine", bleu_scale=False
        )
        got = calibrated.for_seed(seed).predict(archs)
        assert got == pytest.approx(expected.apply(base.predict(archs)))
        assert calibrated.fits[seed] == expected
    assert set(calibrated.fits) == {1, 2}
    assert calibrated.fits[1] != calibrated.fits[2]
    with pytest.raises(ValueError, match="per split seed; call for_seed"):
        calibrated.predict(TINY_ARCHS[:2])


def test_demonstrations_limit_the_fit_and_empty_seeds_fail(table: pd.DataFrame):
    one = CalibratedPredictor(_supernet(table), table, "demo", demonstrations=1)
    first = table[(table.seed == 1) & (table.split == "train")].iloc[0]
    fit = one.fit(1)
    assert fit.fallback == "mean" and fit.a == 1.0
    assert fit.apply(_supernet(table).predict([first.arch])) == pytest.approx([first.gold])
    no_train = table[~((table.seed == 2) & (table.split == "train"))]
    calibrated = CalibratedPredictor(_supernet(table), no_train, "demo")
    with pytest.raises(DataError, match="seed 2 task demo has no train architectures"):
        calibrated.for_seed(2)
    with pytest.raises(ValueError, match="rank-only: shift calibration"):
        CalibratedPredictor(_supernet(table), table, "demo", "shift")
    with pytest.raises(ValueError, match="demonstrations must be >= 1"):
        CalibratedPredictor(_supernet(table), table, "demo", demonstrations=0)


def test_calibrated_predictors_add_shift_only_for_bleu_scale_bases(table: pd.DataFrame):
    bleu = StoredPredictor("HAT", {a.id: 1.0 + i for i, a in enumerate(TINY_ARCHS)})
    rows = calibrated_predictors(table, "demo", [bleu, _supernet(table)], demonstrations=2)
    assert [p.name for p in rows] == [
        "HAT + calibration",
        "HAT + shift calibration",
        "Supernet (loss) + calibration",
    ]
    assert all(p.demonstrations == 2 for p in rows)


def test_calibrated_row_has_mae_and_the_base_kendall(table: pd.DataFrame):
    base_predictor = _supernet(table)
    calibrated_predictor = CalibratedPredictor(base_predictor, table, "demo")

    def predictors(task: str) -> list[Predictor]:
        return [*default_predictors(table, task), calibrated_predictor]

    results = evaluate_predictors(table, ["demo"], predictors).set_index("predictor")
    assert list(results.index) == [
        "Supernet (loss)",
        "Supernet (loss) + calibration",
        "#Params",
        "#FLOPs",
    ]
    base, calibrated = results.loc["Supernet (loss)"], results.loc["Supernet (loss) + calibration"]
    errors = []  # each seed's MAE, recomputed from its fit
    for seed, fit in calibrated_predictor.fits.items():
        test = table[(table.seed == seed) & (table.split == "test")]
        scores = fit.apply(base_predictor.predict(list(test.arch)))
        errors.append(np.abs(scores - test.gold.to_numpy()).mean())
    assert math.isnan(base.mae) and calibrated.mae == pytest.approx(np.mean(errors))
    assert (calibrated.kendall, calibrated.kendall_std) == (base.kendall, base.kendall_std)


def test_rows_are_ordered_supernets_calibrations_counts_zero_cost_rest():
    names = [
        "LLM-PP",
        "synflow",
        "Supernet (loss) + calibration",
        "#FLOPs",
        "grad-norm",
        "HAT + shift calibration",
        "Neuron-wise MoS (loss)",
        "HAT + calibration",
        "HAT",
        "#Params",
        "snip",
        "LLM-Distill-PP",
        "Supernet (loss)",
        "Supernet (Sandwich)",
    ]
    assert _ordered(names) == [
        "HAT",
        "Supernet (Sandwich)",
        "Neuron-wise MoS (loss)",
        "Supernet (loss)",
        "HAT + calibration",
        "HAT + shift calibration",
        "Supernet (loss) + calibration",
        "#Params",
        "#FLOPs",
        "grad-norm",
        "snip",
        "synflow",
        "LLM-PP",
        "LLM-Distill-PP",
    ]


def test_supernet_bases_are_the_supernet_predictors():
    names = ["HAT", "Layer-wise MoS (loss)", "Supernet (loss)", "#Params", "LLM-PP", "snip"]
    predictors = [StoredPredictor(n, {}) for n in [*names, "HAT + calibration"]]
    assert [p.name for p in supernet_bases(predictors)] == names[:3]


# ---- CLI ----------------------------------------------------------------------------------------


def _rows(path: Path) -> pd.DataFrame:
    return pd.read_csv(path).set_index("predictor")


def test_predictors_evaluate_calibrate(tfs_eval_with_supernet: Path, tmp_path: Path, capsys):
    out, md = tmp_path / "t1.csv", tmp_path / "t1.md"
    argv = ["predictors", "evaluate", "--tfs-eval", str(tfs_eval_with_supernet), "--task", "all"]
    argv += ["--out", str(out), "--markdown", str(md)]
    assert main([*argv, "--calibrate"]) == 0
    rows = _rows(out)
    assert list(rows.index) == [
        "Supernet (loss)",
        "Supernet (loss) + calibration",
        "#Params",
        "#FLOPs",
    ]
    assert rows.loc["Supernet (loss) + calibration", "mae"] > 0
    document = md.read_text()
    assert "fitted per split seed on all of its train architectures" in document
    assert "| Supernet (loss) + calibration |" in document
    assert main([*argv, "--calibrate", "--calibrate-demonstrations", "1"]) == 0
    assert "on the first 1 of its train architectures" in md.read_text()
    one = _rows(out).loc["Supernet (loss) + calibration"]
    assert one.kendall == rows.loc["Supernet (loss)", "kendall"]
    assert one.mae != rows.loc["Supernet (loss) + calibration", "mae"]
    capsys.readouterr()
    assert main([*argv, "--calibrate-demonstrations", "2"]) == 2
    assert "--calibrate-demonstrations needs --calibrate" in capsys.readouterr().err
    assert main([*argv, "--calibrate", "--calibrate-demonstrations", "0"]) == 2
    assert "must be >= 1, got 0" in capsys.readouterr().err


def _llm_pp_predictions(tfs_eval: Path, tmp_path: Path) -> Path:
    predictions = tmp_path / "pp.jsonl"
    argv = ["llm-pp", "predict", "--tfs-eval", str(tfs_eval), "--demonstrations", "3"]
    assert main([*argv, "--cache", str(tmp_path / "c.sqlite"), "--out", str(predictions)]) == 0
    return predictions


def test_llm_pp_evaluate_calibrate(tfs_eval_with_supernet: Path, tmp_path: Path, capsys):
    predictions = _llm_pp_predictions(tfs_eval_with_supernet, tmp_path)
    out, md = tmp_path / "t1.csv", tmp_path / "t1.md"
    argv = ["llm-pp", "evaluate", "--tfs-eval", str(tfs_eval_with_supernet)]
    argv += ["--predictions", str(predictions), "--out", str(out), "--markdown", str(md)]
    assert main([*argv, "--calibrate", "--calibrate-demonstrations", "3"]) == 2
    assert "need --baselines" in capsys.readouterr().err
    assert main([*argv, "--baselines", "--calibrate", "--calibrate-demonstrations", "3"]) == 0
    rows = _rows(out)
    assert list(rows.index) == [
        "Supernet (loss)",
        "Supernet (loss) + calibration",
        "#Params",
        "#FLOPs",
        "LLM-PP offline stand-in (no LLM) k=3",
    ]
    calibrated = rows.loc["Supernet (loss) + calibration"]
    assert calibrated.kendall == rows.loc["Supernet (loss)", "kendall"] and calibrated.mae > 0
    assert "on the first 3 of its train architectures" in md.read_text()


def test_zero_cost_rows(tfs_eval_with_supernet: Path, tmp_path: Path, capsys):
    pytest.importorskip("nasflow.zero_cost.scores")
    scores = tmp_path / "zero_cost.csv"
    lines = ["task,arch_id,grad-norm,snip,synflow,seconds"]
    lines += [f"demo,{a.id},{a.encoder_embed_dim},{i},{-i},0.1" for i, a in enumerate(TINY_ARCHS)]
    scores.write_text("\n".join(lines) + "\n")
    out, md = tmp_path / "t1.csv", tmp_path / "t1.md"
    argv = ["predictors", "evaluate", "--tfs-eval", str(tfs_eval_with_supernet), "--task", "all"]
    argv += ["--out", str(out), "--markdown", str(md)]
    assert main([*argv, "--calibrate", "--zero-cost", str(scores)]) == 0
    rows = _rows(out)
    assert list(rows.index)[-5:] == ["#Params", "#FLOPs", "grad-norm", "snip", "synflow"]
    zero_cost = rows.loc[["grad-norm", "snip", "synflow"]]
    assert zero_cost.mae.isna().all() and zero_cost.kendall.notna().all()
    assert "zero-cost proxies" in md.read_text()
    other = tmp_path / "other.csv"
    other.write_text(lines[0] + "\n" + lines[1].replace("demo,", "wmt14ende,") + "\n")
    capsys.readouterr()
    assert main([*argv, "--zero-cost", str(other)]) == 2
    assert f"{other}: no zero-cost scores for task 'demo'" in capsys.readouterr().err


# ---- the released sets ------------------------------------------------------------------------


def test_released_sets_calibrated_mae_and_unchanged_kendall(tfs_dir: Path):
    table = read_tfs_eval(tfs_dir)

    def predictors(task: str) -> list[Predictor]:
        return calibrated_predictors(table, task, supernet_bases(default_predictors(table, task)))

    def bases(task: str) -> list[Predictor]:
        return supernet_bases(default_predictors(table, task))

    tasks = list(table["task"].unique())
    calibrated = evaluate_predictors(table, tasks, predictors).set_index(["predictor", "task"])
    raw = evaluate_predictors(table, tasks, bases).set_index(["predictor", "task"])
    average = calibrated.xs("Average", level="task")
    for base in ("HAT", "Supernet (Sandwich)", "Neuron-wise MoS"):
        assert average.loc[f"{base} + calibration", "mae"] <= 0.20
    expected = {  # mean over seeds 123/456/789 of the task-averaged MAE, checked by hand
        "HAT + calibration": 0.175,
        "HAT + shift calibration": 0.239,
        "Supernet (Sandwich) + calibration": 0.169,
        "Layer-wise MoS + calibration": 0.228,
        "Layer-wise MoS + shift calibration": 0.219,
        "Neuron-wise MoS + calibration": 0.162,
        "Neuron-wise MoS + shift calibration": 0.187,
    }
    for name, value in expected.items():
        assert average.loc[name, "mae"] == pytest.approx(value, abs=5e-4)
    for (name, task), row in calibrated.iterrows():
        base = name.removesuffix(" + shift calibration").removesuffix(" + calibration")
        assert row.kendall == raw.loc[(base, task), "kendall"]
        assert row.mae < raw.loc[(base, task), "mae"]

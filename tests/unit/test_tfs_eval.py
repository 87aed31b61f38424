"""TFS-Eval reading, the predictor interface, predictor quality, the plot and the CLI.

A tiny synthetic TFS-Eval folder: 2 seeds x 2 tasks, 4 HAT-space architectures that differ only in
decoder depth (so #Params and #FLOPs both grow with the index), 3 test + 1 train per seed.
"""

from __future__ import annotations

import gzip
import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nasflow.cli import main
from nasflow.core.errors import DataError
from nasflow.efficiency import count_embedding_params, count_flops, count_params
from nasflow.predictors import (
    FlopsPredictor,
    ParamsPredictor,
    Predictor,
    StoredPredictor,
)
from nasflow.predictors.quality import (
    RESULT_COLUMNS,
    default_predictors,
    evaluate_predictors,
)
from nasflow.report.plots import plot_tfs_vs_predicted
from nasflow.space.hat import Arch, get_space
from nasflow.tfs.format import (
    COLUMNS,
    STORED_PREDICTORS,
    TASK_VOCAB_SIZES,
    read_tfs_eval,
    unique_archs,
)

TASKS = ("wmt14ende", "wmt14enfr")
GOLD = {"wmt14ende": [20.0, 22.0, 21.0, 24.0], "wmt14enfr": [40.0, 41.0, 43.0, 42.0]}
HAT = {"wmt14ende": [19.0, 23.0, 22.0, 22.0], "wmt14enfr": [40.5, 41.5, 42.5, 42.5]}
SPLIT_OF = {1: {"train": [3], "test": [0, 1, 2]}, 2: {"train": [0], "test": [1, 2, 3]}}
R6 = 2 / math.sqrt(6)  # tau-b of 2 concordant pairs + 1 pair tied in pred


def make_arch(decoder_layers: int) -> Arch:
    n = decoder_layers
    return (
        get_space("hat-wmt")
        .smallest()
        .replace(
            decoder_layer_num=n,
            decoder_ffn_embed_dim=[1024] * n,
            decoder_self_attention_heads=[4] * n,
            decoder_ende_attention_heads=[4] * n,
            decoder_arbitrary_ende_attn=[-1] * n,
        )
    )


ARCHS = [make_arch(n) for n in (1, 2, 3, 4)]


def make_record(index: int, task: str) -> dict:
    arch, vocab, gold = ARCHS[index], TASK_VOCAB_SIZES[task], GOLD[task][index]
    flops = count_flops(arch, vocab)
    return {  # predictor blocks deliberately not in paper order
        "Neuron-wise MoS": {"test_BLEU": gold + 1, "valid_BLEU": gold},
        "scratch": {
            "test_BLEU": gold + 1.5,
            "valid_BLEU": gold,
            "sockeye_dir": f"/runs/{task}/{index}",
            "arch_info": arch.to_arch_info(),
            "num_parameters_without_embedding_weights": count_params(arch),
            "num_embedding_parameters": count_embedding_params(arch, vocab),
            "overall_latency": 100.0 + index,
            "total_flops": flops,
            "last_layer_flops": 0,
            "total_flops_without_last_layer": flops,
        },
        "HAT": {"test_BLEU": HAT[task][index] + 1, "valid_BLEU": HAT[task][index]},
    }


def exact(*parts: object) -> str:
    """A `match=` pattern: the message starts with these parts, taken literally."""
    return "^" + re.escape("".join(str(p) for p in parts))


def write_lines(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(line + "\n" for line in lines)
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode("utf-8")))
    else:
        path.write_text(text, encoding="utf-8")


@pytest.fixture
def tfs(tmp_path: Path) -> Path:
    """Seed 1 written as .jsonl.gz, seed 2 as plain .jsonl."""
    root = tmp_path / "tfs"
    for seed, splits in SPLIT_OF.items():
        suffix = ".jsonl.gz" if seed == 1 else ".jsonl"
        for task in TASKS:
            for split, indices in splits.items():
                lines = [json.dumps(make_record(i, task)) for i in indices]
                write_lines(root / str(seed) / task / f"{split}{suffix}", lines)
    return root


# ---- reading ------------------------------------------------------------------------------


def test_read_table_rows_and_columns(tfs: Path):
    table = read_tfs_eval(tfs)
    assert list(table.columns) == [*COLUMNS, "HAT", "Neuron-wise MoS"]
    assert len(table) == 2 * 2 * 4
    assert sorted(table["seed"].unique()) == [1, 2]
    assert list(table["task"].unique()) == list(TASKS)
    counts = table.groupby(["seed", "task", "split"]).size()
    assert set(counts.xs("test", level="split")) == {3}
    assert set(counts.xs("train", level="split")) == {1}
    row = table[(table.seed == 2) & (table.task == "wmt14enfr") & (table.split == "test")].iloc[0]
    assert row["arch"] == ARCHS[1]
    assert row["arch_id"] == ARCHS[1].id
    assert row["gold"] == 41.0
    assert row["test_bleu"] == 42.5
    assert row["HAT"] == 41.5
    assert row["Neuron-wise MoS"] == 41.0
    assert row["params_nonemb"] == count_params(ARCHS[1])
    assert row["params_emb"] == 44512 * 512
    assert row["flops"] == count_flops(ARCHS[1], 44512)
    assert row["latency_ms"] == 101.0


def test_read_subset_of_tasks_and_seeds(tfs: Path):
    table = read_tfs_eval(tfs, tasks=["wmt14enfr"], seeds=[2])
    assert set(table["task"]) == {"wmt14enfr"} and set(table["seed"]) == {2}
    assert len(table) == 4


def test_unique_archs(tfs: Path):
    rows = unique_archs(read_tfs_eval(tfs), "wmt14ende")
    assert sorted(rows["arch_id"]) == sorted(a.id for a in ARCHS)


# ---- reading: errors ----------------------------------------------------------------------


def _break(tfs: Path, lines: list[str]) -> Path:
    path = tfs / "2" / "wmt14ende" / "test.jsonl"
    good = json.dumps(make_record(1, "wmt14ende"))
    write_lines(path, [good, *lines])
    return path


def _record(**scratch_changes) -> str:
    record = make_record(2, "wmt14ende")
    record["scratch"].update(scratch_changes)
    return json.dumps(record)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "invalid JSON"),
        ("[1, 2]", "expected a JSON object"),
        (json.dumps({"HAT": {"valid_BLEU": 1.0}}), "missing 'scratch' object"),
        (_record(arch_info="encoder-embed-dim-subtransformer: 512"), "must be a list of"),
        (_record(arch_info=["encoder-embed-dim-subtransformer 512"]), "bad arch_info"),
        (_record(arch_info=ARCHS[2].to_arch_info()[1:]), "missing HAT key"),
        (
            _record(arch_info=ARCHS[2].replace(encoder_embed_dim=600).to_arch_info()),
            "not in space 'hat-wmt'",
        ),
        (_record(valid_BLEU="high"), "scratch.valid_BLEU must be a finite number"),
        (_record(num_parameters_without_embedding_weights=12345), "nasflow counts"),
        (_record(num_embedding_parameters=512 * 44512), "scratch.num_embedding_parameters is"),
        (_record(total_flops=-1), "scratch.total_flops must be a non-negative integer"),
        (json.dumps(make_record(1, "wmt14ende")), "already listed on line 1"),
    ],
)
def test_malformed_records_name_file_and_line(tfs: Path, line: str, message: str):
    path = _break(tfs, [line])
    with pytest.raises(DataError, match=exact(path, ":2: ")) as error:
        read_tfs_eval(tfs)
    assert message in str(error.value)


def test_missing_scratch_keys(tfs: Path):
    record = make_record(2, "wmt14ende")
    del record["scratch"]["valid_BLEU"], record["scratch"]["arch_info"]
    path = _break(tfs, [json.dumps(record)])
    with pytest.raises(
        DataError, match=exact(path, ":2: 'scratch' lacks key(s) valid_BLEU, arch_info")
    ):
        read_tfs_eval(tfs)


def test_bad_predictor_block(tfs: Path):
    record = make_record(2, "wmt14ende")
    record["HAT"] = {"test_BLEU": 3.0}
    path = _break(tfs, [json.dumps(record)])
    with pytest.raises(DataError, match=exact(path, ":2: predictor block 'HAT' must")):
        read_tfs_eval(tfs)
    record["HAT"] = {"valid_BLEU": None}
    _break(tfs, [json.dumps(record)])
    with pytest.raises(DataError, match=r"HAT\.valid_BLEU must be a finite number"):
        read_tfs_eval(tfs)


def test_folder_errors(tmp_path: Path, tfs: Path):
    with pytest.raises(DataError, match="TFS-Eval folder not found"):
        read_tfs_eval(tmp_path / "absent")
    empty = tmp_path / "empty"
    (empty / "notes").mkdir(parents=True)
    with pytest.raises(DataError, match=exact(empty, ": holds no seed folders")):
        read_tfs_eval(empty)
    (empty / "7").mkdir()
    with pytest.raises(DataError, match=exact(empty, ": seed folders hold no task folders")):
        read_tfs_eval(empty)
    with pytest.raises(DataError, match=exact(tfs / "1", ": task folder 'wmt19ende' is missing")):
        read_tfs_eval(tfs, tasks=["wmt14ende", "wmt19ende"])
    with pytest.raises(DataError, match="unknown TFS-Eval task 'iwslt'"):
        read_tfs_eval(tfs, tasks=["iwslt"])
    with pytest.raises(DataError, match=exact(tfs, ": seed folder(s) 3 missing; found 1, 2")):
        read_tfs_eval(tfs, seeds=[1, 3])


def test_split_file_errors(tfs: Path):
    task_dir = tfs / "2" / "wmt14enfr"
    (task_dir / "train.jsonl").rename(task_dir / "train.jsonl.gz.bak")
    with pytest.raises(DataError, match=r"neither train\.jsonl nor train\.jsonl\.gz exists"):
        read_tfs_eval(tfs)
    (task_dir / "train.jsonl.gz.bak").rename(task_dir / "train.jsonl")
    write_lines(task_dir / "train.jsonl.gz", ["{}"])
    with pytest.raises(DataError, match=r"both train\.jsonl and train\.jsonl\.gz exist"):
        read_tfs_eval(tfs)


def test_empty_split_file(tfs: Path):
    path = tfs / "2" / "wmt14enfr" / "train.jsonl"
    write_lines(path, [""])
    with pytest.raises(DataError, match=exact(path, ": holds no records")):
        read_tfs_eval(tfs)


# ---- predictors -----------------------------------------------------------------------------


def test_predictor_interface_is_abstract():
    with pytest.raises(TypeError):
        Predictor()  # type: ignore[abstract]


def test_params_and_flops_predictors_use_our_counts():
    params, flops = ParamsPredictor(32768), FlopsPredictor(32768)
    assert not params.bleu_scale and not flops.bleu_scale
    assert (params.name, flops.name) == ("#Params", "#FLOPs")
    expected = [count_params(a) + count_embedding_params(a, 32768) for a in ARCHS]
    np.testing.assert_array_equal(params.predict(ARCHS), expected)
    np.testing.assert_array_equal(flops.predict(ARCHS), [count_flops(a, 32768) for a in ARCHS])
    assert np.all(np.diff(params.predict(ARCHS)) > 0)


def test_stored_predictor(tfs: Path):
    table = read_tfs_eval(tfs)
    hat = StoredPredictor.from_table(table, "HAT", "wmt14enfr")
    assert hat.bleu_scale and hat.name == "HAT"
    np.testing.assert_array_equal(hat.predict(ARCHS[::-1]), HAT["wmt14enfr"][::-1])
    with pytest.raises(DataError, match="has no stored prediction for architecture"):
        StoredPredictor("HAT", {}).predict(ARCHS[:1])
    with pytest.raises(DataError, match="no predictor column 'Layer-wise MoS'"):
        StoredPredictor.from_table(table, "Layer-wise MoS", "wmt14enfr")
    table.loc[(table.seed == 2) & (table.arch_id == ARCHS[1].id), "HAT"] = 0.0
    with pytest.raises(DataError, match="different stored predictions across seeds"):
        StoredPredictor.from_table(table, "HAT", "wmt14enfr")


def test_default_predictors_order(tfs: Path):
    names = [p.name for p in default_predictors(read_tfs_eval(tfs), "wmt14ende")]
    assert names == ["HAT", "Neuron-wise MoS", "#Params", "#FLOPs"]


# ---- quality ----------------------------------------------------------------------------------


def _evaluate(tfs: Path, tasks=TASKS) -> pd.DataFrame:
    table = read_tfs_eval(tfs)
    return evaluate_predictors(table, tasks, lambda task: default_predictors(table, task))


def _row(results: pd.DataFrame, predictor: str, task: str) -> pd.Series:
    rows = results[(results.predictor == predictor) & (results.task == task)]
    assert len(rows) == 1
    return rows.iloc[0]


def test_evaluate_rows_and_order(tfs: Path):
    results = _evaluate(tfs)
    assert list(results.columns) == list(RESULT_COLUMNS)
    tasks = [*TASKS, "Average"]
    expected = [(p, t) for p in ("HAT", "Neuron-wise MoS", "#Params", "#FLOPs") for t in tasks]
    assert list(zip(results.predictor, results.task, strict=True)) == expected
    assert set(results["n_seeds"]) == {2}


@pytest.mark.parametrize(
    ("predictor", "task", "values"),
    [
        # (mae, mae_std, kendall, kendall_std) worked out by hand from GOLD, HAT and SPLIT_OF
        ("HAT", "wmt14ende", (7 / 6, 1 / 6, 0.5, 0.5)),
        ("HAT", "wmt14enfr", (0.5, 0.0, (1 + R6) / 2, (1 - R6) / 2)),
        ("HAT", "Average", (5 / 6, 1 / 12, (1 + R6 / 2) / 2, (1 - R6 / 2) / 2)),
        ("Neuron-wise MoS", "Average", (0.0, 0.0, 1.0, 0.0)),
        ("#Params", "wmt14ende", (math.nan, math.nan, 1 / 3, 0.0)),
        ("#Params", "wmt14enfr", (math.nan, math.nan, 2 / 3, 1 / 3)),
        ("#Params", "Average", (math.nan, math.nan, 0.5, 1 / 6)),
        ("#FLOPs", "Average", (math.nan, math.nan, 0.5, 1 / 6)),
    ],
)
def test_evaluate_hand_checked(tfs: Path, predictor: str, task: str, values: tuple):
    row = _row(_evaluate(tfs), predictor, task)
    got = tuple(row[["mae", "mae_std", "kendall", "kendall_std"]].astype(float))
    assert got == pytest.approx(values, nan_ok=True)


def test_single_task_has_no_average(tfs: Path):
    results = _evaluate(tfs, tasks=["wmt14enfr"])
    assert list(results.task.unique()) == ["wmt14enfr"]
    assert len(results) == 4


def test_evaluate_accepts_mapping_and_checks_scores(tfs: Path):
    table = read_tfs_eval(tfs)

    class Broken(Predictor):
        name = "broken"

        def predict(self, archs):
            return np.zeros(len(archs) + 1)

    results = evaluate_predictors(table, ["wmt14ende"], {"wmt14ende": [ParamsPredictor(32768)]})
    assert list(results.predictor) == ["#Params"]
    with pytest.raises(ValueError, match="'broken' returned shape \\(4,\\) for 3 architectures"):
        evaluate_predictors(table, ["wmt14ende"], {"wmt14ende": [Broken()]})
    with pytest.raises(ValueError, match="used twice"):
        evaluate_predictors(table, ["wmt14ende"], {"wmt14ende": [FlopsPredictor(1)] * 2})


# ---- plot and CLI -------------------------------------------------------------------------------


def test_plot_writes_png_atomically(tfs: Path, tmp_path: Path):
    out = tmp_path / "plots" / "tfs.png"
    plot_tfs_vs_predicted(read_tfs_eval(tfs), out, TASKS)
    assert out.read_bytes().startswith(b"\x89PNG")
    assert [p.name for p in out.parent.iterdir()] == ["tfs.png"]


def test_cli_writes_csv_markdown_and_plot(tfs: Path, tmp_path: Path, capsys):
    csv, md, png = tmp_path / "q.csv", tmp_path / "q.md", tmp_path / "q.png"
    argv = ["predictors", "evaluate", "--tfs-eval", str(tfs), "--task", "wmt14ende"]
    assert main([*argv, "--out", str(csv), "--markdown", str(md), "--plot", str(png)]) == 0
    lines = csv.read_text().splitlines()
    assert lines[0] == ",".join(RESULT_COLUMNS)
    assert lines[1] == "HAT,wmt14ende,1.1667,0.1667,0.5,0.5,2"
    assert lines[3] == "#Params,wmt14ende,,,0.3333,0.0,2"
    printed = capsys.readouterr().out
    assert printed.startswith("| predictor")
    assert "| #Params         | wmt14ende |        |" in printed
    document = md.read_text()
    assert document.startswith("# Predictor quality on TFS-Eval")
    assert "scratch.valid_BLEU" in document and "mean ± std over seeds" in document
    assert printed.strip() in document
    assert png.read_bytes().startswith(b"\x89PNG")


def test_cli_reports_missing_task_in_one_line(tfs: Path, tmp_path: Path, capsys):
    out = tmp_path / "q.csv"
    tasks = "wmt14ende,wmt19ende"
    argv = ["predictors", "evaluate", "--tfs-eval", str(tfs), "--task", tasks, "--out", str(out)]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert error == f"nasflow: error: {tfs / '1'}: task folder 'wmt19ende' is missing\n"
    assert not out.exists()


def test_stored_predictor_names_in_paper_order():
    assert STORED_PREDICTORS == ("HAT", "Supernet (Sandwich)", "Layer-wise MoS", "Neuron-wise MoS")


def test_cli_accepts_a_comma_separated_task_list(tfs: Path, tmp_path: Path, capsys):
    out = tmp_path / "q.csv"
    argv = ["predictors", "evaluate", "--tfs-eval", str(tfs), "--out", str(out), "--task"]
    assert main([*argv, ",".join(TASKS)]) == 0
    tasks = [line.split(",")[1] for line in out.read_text().splitlines()[1:]]
    assert set(tasks) == {*TASKS, "Average"}
    capsys.readouterr()
    for bad in ("wmt14ende,wmt14ende", ","):
        with pytest.raises(SystemExit):
            main([*argv, bad])
        assert "expected 'all' or distinct task names" in capsys.readouterr().err
    # Names are checked against the folder (a built set has its own tasks).
    assert main([*argv, "wmt14ende,nope"]) == 2
    assert "unknown TFS-Eval task 'nope'" in capsys.readouterr().err
    assert main([*argv, "all"]) == 0
    tasks = [line.split(",")[1] for line in out.read_text().splitlines()[1:]]
    assert set(tasks) == {*TASKS, "Average"}


def test_cli_calibrate_adds_calibrated_supernet_rows(tfs: Path, tmp_path: Path, capsys):
    out = tmp_path / "q.csv"
    argv = ["predictors", "evaluate", "--tfs-eval", str(tfs), "--task", "wmt14ende"]
    assert main([*argv, "--calibrate", "--out", str(out)]) == 0
    rows = pd.read_csv(out).set_index("predictor")
    assert list(rows.index) == [
        "HAT",
        "Neuron-wise MoS",
        "HAT + calibration",
        "HAT + shift calibration",
        "Neuron-wise MoS + calibration",
        "Neuron-wise MoS + shift calibration",
        "#Params",
        "#FLOPs",
    ]
    # One demonstration per seed: affine falls back to the shift (+2 on seed 1, +1 on seed 2),
    # so MAE = mean(7/3, 5/3) worked out by hand from GOLD, HAT and SPLIT_OF; Kendall is HAT's.
    for name in ("HAT + calibration", "HAT + shift calibration"):
        assert tuple(rows.loc[name, ["mae", "mae_std"]]) == pytest.approx((2.0, 1 / 3), abs=1e-4)
        assert rows.loc[name, "kendall"] == rows.loc["HAT", "kendall"]

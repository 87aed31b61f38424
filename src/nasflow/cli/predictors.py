"""`nasflow predictors evaluate|table11|robustness`: predictor quality on TFS-Eval sets, the
time each predictor takes (Table 11) and LLM-PP's robustness to repeated samples (A.8.4)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from nasflow.core.errors import ConfigError, DataError
from nasflow.core.flags import add_flag
from nasflow.core.io import write_text_atomic
from nasflow.report.markdown import DECIMALS, to_markdown
from nasflow.report.table1_rows import add_table1_options
from nasflow.tfs.format import TASK_VOCAB_SIZES, add_task_option, read_tfs_eval

if TYPE_CHECKING:  # pandas/scipy load only when a subcommand runs
    from nasflow.predictors.base import Predictor
    from nasflow.predictors.timing import Entry


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from nasflow.predictors.quality import evaluate_predictors
    from nasflow.report.predictor_tables import quality_document, table1_notes, write_csv
    from nasflow.report.table1_rows import table1_predictors

    table = read_tfs_eval(args.tfs_eval, tasks=args.task)
    tasks = args.task or list(table["task"].unique())
    results = evaluate_predictors(table, tasks, table1_predictors(args, table, tasks))
    write_csv(results, args.out, DECIMALS)
    markdown = to_markdown(results)
    print(markdown)
    if args.markdown:
        notes = table1_notes(
            calibrate=args.calibrate,
            demonstrations=args.calibrate_demonstrations,
            zero_cost=args.zero_cost,
        )
        document = quality_document(markdown, args.tfs_eval, table, notes)
        write_text_atomic(args.markdown, document)
    if args.plot:
        from nasflow.report.plots import plot_tfs_vs_predicted

        plot_tfs_vs_predicted(table, args.plot, tasks)
    return 0


def _cmd_table11(args: argparse.Namespace) -> int:
    from nasflow.predictors.baselines import StoredPredictor
    from nasflow.predictors.distilled import read_seed_models
    from nasflow.predictors.llm import SeedPredictions, read_predictions
    from nasflow.predictors.quality import default_predictors
    from nasflow.predictors.timing import (
        Entry,
        not_timed,
        recorded_latency,
        table11,
        time_predictor,
        timing_pairs,
    )
    from nasflow.report.predictor_tables import table11_document, table11_markdown, write_csv

    if args.archs < 1:
        raise ConfigError(f"--n must be >= 1, got {args.archs}")
    records = read_predictions(args.predictions or [])
    seeds = sorted({int(r["seed"]) for r in records}) or None
    table = read_tfs_eval(args.tfs_eval, tasks=args.task, seeds=seeds)
    tasks = args.task or list(table["task"].unique())
    names = list(dict.fromkeys(r["predictor"] for r in records))
    distilled = read_seed_models(args.distill_models or [])
    supernet, supernet_note = _load_supernet(args) if args.supernet else (None, "")
    notes: dict[str, dict[str, str]] = {}

    def entries(task: str) -> list[Entry]:
        pairs = timing_pairs(table, task, args.archs)
        rows: list[Entry] = []
        stored = [p for p in default_predictors(table, task) if isinstance(p, StoredPredictor)]
        for predictor in stored:
            if supernet is not None and predictor.name == supernet.name:
                timing = time_predictor(lambda seed: supernet, pairs, supernet_note)
            else:
                timing = not_timed(
                    pairs, "predictions stored in the TFS-Eval set, which records no timing"
                )
            rows.append(Entry("supernet", predictor, timing))
        if supernet is not None and supernet.name not in {p.name for p in stored}:
            raise DataError(
                f"{args.tfs_eval}: no stored {supernet.name!r} block for task {task}, so the "
                "timed supernet has no quality; build the set with --supernet-quality"
            )
        for name in names:
            task_records = [r for r in records if r["task"] == task]
            timing = recorded_latency(task_records, task, pairs, name)
            rows.append(Entry("LLM-PP", SeedPredictions(name, task_records), timing))
        for models in distilled.get(task, {}).values():
            timing = time_predictor(
                lambda seed, m=models: _load_distilled(m, seed), pairs, _cpu_note()
            )
            rows.append(Entry("LLM-Distill-PP", models, timing))
        for entry in rows:
            notes.setdefault(entry.predictor.name, {})[task] = entry.timing.note
        return rows

    results = table11(table, tasks, entries)
    write_csv(results, args.out, 6)
    markdown = table11_markdown(results, notes)
    print(markdown)
    if args.markdown:
        write_text_atomic(args.markdown, table11_document(markdown, args.tfs_eval, table))
    return 0


def _load_supernet(args: argparse.Namespace) -> tuple[Predictor, str]:
    """The experiment's supernet predictor as the config describes it, and where it runs."""
    import torch

    from nasflow.config.options import read_config
    from nasflow.core.device import environment
    from nasflow.search.runner import supernet_predictor

    if args.data is None:
        raise ConfigError("--supernet needs --data (the prepared data folder)")
    config = read_config(args)
    torch.set_num_threads(int(config["threads"]))
    predictor = supernet_predictor(config, args.supernet, args.data, args.device)
    env = environment(predictor.device, predictor.dtype)
    return predictor, (
        f"scored on {predictor.sentences} valid sentences each; {env['device_name']} "
        f"({env['device']}, {env['dtype']}, torch threads: {env['threads']})"
    )


def _load_distilled(models, seed: int) -> Predictor:
    """The distilled MLP of one split seed (`SeedModels.models`), loaded outside the timing."""
    from nasflow.predictors.distilled import DistilledPredictor

    if seed not in models.models:
        raise DataError(f"{models.name}: no distilled model for split seed {seed}")
    return DistilledPredictor.load(models.models[seed])


def _cpu_note() -> str:
    import torch

    threads = torch.get_num_threads()
    return f"one batched predict() per split seed on the CPU (torch threads: {threads})"


def _cmd_robustness(args: argparse.Namespace) -> int:
    from nasflow.predictors.llm import read_predictions
    from nasflow.predictors.robustness import robustness_table
    from nasflow.report.predictor_tables import (
        robustness_document,
        robustness_markdown,
        write_csv,
    )

    records = read_predictions(args.predictions)
    table = robustness_table(records, args.samples)
    write_csv(table, args.out, 6)
    markdown = robustness_markdown(table)
    print(markdown)
    if args.markdown:
        write_text_atomic(args.markdown, robustness_document(markdown, args.predictions))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `nasflow predictors evaluate|table11|robustness`."""
    group = subparsers.add_parser("predictors", help="performance predictors and their quality")
    sub = group.add_subparsers(dest="predictors_command", required=True, metavar="SUBCOMMAND")
    evaluate = sub.add_parser(
        "evaluate",
        help="MAE and Kendall tau of the stored supernet predictors, #Params and #FLOPs "
        "(optionally calibrated supernets and zero-cost proxies)",
    )
    evaluate.add_argument(
        "--tfs-eval", type=Path, required=True, metavar="DIR", help="{seed}/{task}/ folder"
    )
    add_task_option(
        evaluate,
        required=True,
        help=f"tasks of the folder (released: {', '.join(TASK_VOCAB_SIZES)}), or all",
    )
    add_table1_options(evaluate)
    evaluate.add_argument("--out", type=Path, required=True, metavar="FILE.csv")
    evaluate.add_argument("--markdown", type=Path, metavar="FILE.md")
    evaluate.add_argument("--plot", type=Path, metavar="FILE.png")
    evaluate.set_defaults(func=_cmd_evaluate)

    from nasflow.config.options import BASE_SECTIONS, add_config_options

    timing = sub.add_parser(
        "table11",
        help="Table 11: time to predict 10 architectures, and MAE / Kendall tau, per predictor",
    )
    timing.add_argument("--tfs-eval", type=Path, required=True, metavar="DIR")
    add_task_option(timing, help="tasks, or all (default: all)")
    timing.add_argument(
        "--predictions", type=Path, nargs="+", help="LLM-PP predictions (`llm-pp predict`)"
    )
    timing.add_argument(
        "--distill-models", type=Path, nargs="+", help="LLM-Distill-PP models, one per seed"
    )
    timing.add_argument(
        "--supernet", type=Path, help="the experiment's supernet (.pt): its stored block is timed"
    )
    timing.add_argument("--data", type=Path, help="prepared data folder (with --supernet)")
    # The supernet's settings (read only with --supernet).
    add_config_options(timing, sections=(*BASE_SECTIONS, "train", "evaluate"))
    timing.add_argument("--device", help="override train.device for the supernet")
    add_flag(
        timing,
        "--n",
        "--archs",
        dest="archs",
        type=int,
        default=10,
        help="architectures timed (10)",
    )
    timing.add_argument("--out", type=Path, required=True, metavar="FILE.csv")
    timing.add_argument("--markdown", type=Path, metavar="FILE.md")
    timing.set_defaults(func=_cmd_table11)

    robust = sub.add_parser(
        "robustness", help="LLM-PP robustness: mean over archs of the std of repeated samples"
    )
    robust.add_argument(
        "--predictions", type=Path, nargs="+", required=True, help="`llm-pp predict --samples N`"
    )
    robust.add_argument("--samples", type=int, help="samples expected per architecture")
    robust.add_argument("--out", type=Path, required=True, metavar="FILE.csv")
    robust.add_argument("--markdown", type=Path, metavar="FILE.md")
    robust.set_defaults(func=_cmd_robustness)

"""`nasflow llm-pp predict|evaluate`: LLM-PP predictions on TFS-Eval and their quality table."""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

from nasflow.config.options import add_config_options, config_given, read_config
from nasflow.config.resolve import resolve_tfs_eval_dir
from nasflow.core.errors import ConfigError
from nasflow.core.io import write_json_atomic, write_text_atomic
from nasflow.predictors.llm import read_predictions
from nasflow.predictors.llm_options import (
    add_llm_options,
    llm_setup,
    resolve_llm_options,
    task_examples,
)
from nasflow.report.table1_rows import add_table1_options
from nasflow.tfs.format import add_task_option

logger = logging.getLogger(__name__)

# The config sections `llm-pp predict` reads (what the rules pass as --config-json).
PREDICT_SECTIONS = ("llm",)


def _tfs_eval_dir(args: argparse.Namespace) -> Path:
    folder = args.tfs_eval or resolve_tfs_eval_dir({}, os.environ.get("NASFLOW_MIRROR"))
    if folder is None:
        raise ConfigError("pass --tfs-eval DIR or set NASFLOW_MIRROR (with llmas/ in it)")
    return Path(folder)


def _cmd_predict(args: argparse.Namespace) -> int:
    from nasflow.predictors.llm import llm_pp_predictions, usage_summary
    from nasflow.tfs.format import read_tfs_eval, read_tfs_eval_info

    config = read_config(args) if config_given(args) else None
    samples_key = "robustness_samples" if args.robustness else "samples"
    if args.robustness and config is None:
        raise ConfigError("--robustness reads llm.robustness_samples: pass the config")
    resolve_llm_options(args, config, samples_key=samples_key)
    folder = _tfs_eval_dir(args)
    info = read_tfs_eval_info(folder)
    table = read_tfs_eval(folder, tasks=args.task, seeds=args.seeds)
    tasks = args.task or list(table["task"].unique())
    provider, cache, prompts, predict, prices = llm_setup(args)
    from nasflow.llm.examples import parse_train_corpora

    train = parse_train_corpora(_examples_train(args, config))
    examples = task_examples(folder, info, args.examples_dir, train)
    records = llm_pp_predictions(
        table, info, tasks, provider, cache, prompts, predict, examples, logger.info
    )
    lines = "".join(json.dumps(record, sort_keys=True) + "\n" for record in records)
    write_text_atomic(args.out, lines)
    usage = usage_summary(records, provider, prompts, predict, prices)
    write_json_atomic(args.usage or args.out.with_suffix(".usage.json"), usage)
    logger.info(
        f"{len(records)} predictions ({usage['failed']} failed): {usage['requests']} requests, "
        f"{usage['cache_hits']} cache hits -> {args.out}"
    )
    return 0


def _examples_train(args: argparse.Namespace, config: dict | None) -> list[str] | None:
    """`--examples-train`, else the config's llm.task_example_corpora of the tasks asked for
    (every named one without --task), as `TASK=DIR` words."""
    if args.examples_train is not None or config is None:
        return args.examples_train
    corpora = config["llm"].get("task_example_corpora") or {}
    tasks = args.task if args.task is not None else list(corpora)
    words = [f"{task}={corpora[task]}" for task in tasks if task in corpora]
    return words or None


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from nasflow.predictors.distilled import read_seed_models
    from nasflow.predictors.llm import SeedPredictions, per_arch_predictions
    from nasflow.predictors.quality import evaluate_predictors
    from nasflow.report.markdown import DECIMALS, to_markdown
    from nasflow.report.predictor_tables import ablation_table, table1_notes, write_csv
    from nasflow.report.table1_rows import table1_predictors
    from nasflow.tfs.format import read_tfs_eval

    extra = (args.calibrate_demonstrations, args.zero_cost)
    if not args.baselines and (args.calibrate or any(v is not None for v in extra)):
        raise ConfigError(
            "--calibrate, --calibrate-demonstrations and --zero-cost need --baselines"
        )
    records = read_predictions(args.predictions)
    # The seeds the predictions cover (every predictor must cover all of them).
    seeds = sorted({int(r["seed"]) for r in records})
    table = read_tfs_eval(_tfs_eval_dir(args), tasks=args.task, seeds=seeds)
    tasks = args.task or list(table["task"].unique())
    names = list(dict.fromkeys(r["predictor"] for r in records))

    distilled = read_seed_models(args.distill_models or [])
    baselines = table1_predictors(args, table, tasks) if args.baselines else lambda task: []

    def predictors(task: str) -> list:
        llm = [SeedPredictions(name, [r for r in records if r["task"] == task]) for name in names]
        return baselines(task) + llm + list(distilled.get(task, {}).values())

    results = evaluate_predictors(table, tasks, predictors)
    write_csv(results, args.out, DECIMALS)
    markdown = to_markdown(results)
    print(markdown)
    if args.markdown:
        added = table1_notes(
            calibrate=args.calibrate,
            demonstrations=args.calibrate_demonstrations,
            zero_cost=args.zero_cost,
        )
        notes = "".join(f"\n{note}\n" for note in added)
        write_text_atomic(args.markdown, markdown + "\n" + notes)
    if args.ablation:
        ablation = ablation_table(results, records)
        write_csv(ablation, args.ablation, DECIMALS)
        if args.ablation_markdown:
            write_text_atomic(args.ablation_markdown, to_markdown(ablation) + "\n")
    if args.plot:
        import pandas as pd

        from nasflow.report.plots import plot_llm_pp_vs_tfs

        points = pd.concat(
            [
                per_arch_predictions(
                    table, task, records, list(distilled.get(task, {}).values())
                ).assign(task=task)
                for task in tasks
            ],
            ignore_index=True,
        )
        plot_llm_pp_vs_tfs(points, args.plot, tasks)
        logger.info(f"{len(points)} (predictor, architecture) points -> {args.plot}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `llm-pp predict` and `llm-pp evaluate`."""
    group = subparsers.add_parser("llm-pp", help="LLM performance predictors (LLM-PP)")
    sub = group.add_subparsers(dest="llm_command", required=True, metavar="SUBCOMMAND")

    predict = sub.add_parser("predict", help="LLM-PP predictions for TFS-Eval test architectures")
    predict.add_argument("--tfs-eval", type=Path, help="TFS-Eval folder (default: the mirror's)")
    add_task_option(predict, help="tasks, or all (default: every task found)")
    predict.add_argument("--seeds", type=int, nargs="+", help="seeds (default: all)")
    add_config_options(predict, sections=PREDICT_SECTIONS)
    add_llm_options(predict)
    predict.add_argument(
        "--robustness",
        action="store_true",
        help="ask llm.robustness_samples replies per architecture (the robustness run, A.8.4; "
        "needs the config)",
    )
    predict.add_argument(
        "--examples-train",
        nargs="+",
        metavar="TASK=DIR",
        help="training corpus of a released task for its task examples: DIR/train.{src,tgt} "
        "(plain or .gz); default: the config's llm.task_example_corpora, else the task's "
        "development set newstest2013",
    )
    predict.add_argument("--out", type=Path, required=True, help="predictions JSONL")
    predict.add_argument("--usage", type=Path, help="usage JSON (default OUT.usage.json)")
    predict.set_defaults(func=_cmd_predict)

    evaluate = sub.add_parser("evaluate", help="MAE / Kendall tau of LLM-PP predictions")
    evaluate.add_argument("--tfs-eval", type=Path, help="TFS-Eval folder (default: the mirror's)")
    add_task_option(evaluate, help="tasks, or all (default: every task found)")
    evaluate.add_argument("--predictions", type=Path, nargs="+", required=True)
    evaluate.add_argument("--baselines", action="store_true", help="add supernet and count rows")
    add_table1_options(evaluate)  # with --baselines
    evaluate.add_argument(
        "--distill-models",
        type=Path,
        nargs="+",
        help="LLM-Distill-PP models (one per TFS-Eval seed, `nasflow distill train`) to add",
    )
    evaluate.add_argument("--out", type=Path, required=True, help="results CSV")
    evaluate.add_argument("--markdown", type=Path, help="also write the table as markdown")
    evaluate.add_argument("--ablation", type=Path, help="prompt-ablation CSV (LLM-PP rows)")
    evaluate.add_argument("--ablation-markdown", type=Path, help="the ablation as markdown")
    evaluate.add_argument(
        "--plot",
        type=Path,
        help="PNG: from-scratch BLEU against each row's predictions (mean over split seeds)",
    )
    evaluate.set_defaults(func=_cmd_evaluate)

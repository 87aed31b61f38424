"""`nasflow llm-pp predict|estimate|evaluate`: LLM-PP predictions on TFS-Eval, what the labelling
jobs of a config will send and cost, and the predictions' quality table."""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

from nasflow.core.errors import ConfigError
from nasflow.core.io import write_json_atomic, write_text_atomic
from nasflow.predictors.llm import read_predictions
from nasflow.predictors.llm_jobs import add_predict_arguments
from nasflow.report.table1_rows import add_table1_options
from nasflow.tfs.format import add_task_option

logger = logging.getLogger(__name__)


def _tfs_eval_dir(args: argparse.Namespace) -> Path:
    from nasflow.predictors.llm_jobs import tfs_eval_dir

    return tfs_eval_dir(args.tfs_eval)


def _cmd_predict(args: argparse.Namespace) -> int:
    from nasflow.predictors.llm import llm_pp_predictions, usage_summary
    from nasflow.predictors.llm_jobs import prepare_predict

    job = prepare_predict(args)
    logger.info(job.estimate().line())  # before any request
    progress = job.progress(logger.info)
    records = llm_pp_predictions(
        job.extra["groups"], job.provider, job.cache, job.prompts, job.predict, progress
    )
    progress.finish()
    lines = "".join(json.dumps(record, sort_keys=True) + "\n" for record in records)
    write_text_atomic(args.out, lines)
    usage = usage_summary(records, job.provider, job.prompts, job.predict, job.prices)
    write_json_atomic(args.usage or args.out.with_suffix(".usage.json"), usage)
    logger.info(
        f"{len(records)} predictions ({usage['failed']} failed): {usage['requests']} requests, "
        f"{usage['cache_hits']} cache hits -> {args.out}"
    )
    return 0


def _cmd_estimate(args: argparse.Namespace) -> int:
    """Requests, tokens and cost of every labelling job the config runs, from the cache."""
    from nasflow.config.resolve import resolve_config
    from nasflow.llm.plan import planned_jobs
    from nasflow.predictors.llm_jobs import (
        add_dataset_arguments,
        add_predict_arguments,
        prepare_dataset,
        prepare_predict,
    )

    config = resolve_config([args.config] if args.config else [])
    jobs = planned_jobs(config, os.environ.get("NASFLOW_MIRROR"))
    if not jobs:
        print("no labelling jobs: the config runs no LLM-PP predictions or distillation labels")
        return 0
    parsers = {}
    for command, add in (("predict", add_predict_arguments), ("dataset", add_dataset_arguments)):
        parsers[command] = argparse.ArgumentParser(prog=f"estimate {command}")
        add(parsers[command])
    prepare = {"predict": prepare_predict, "dataset": prepare_dataset}
    totals = {"requests": 0, "cached": 0, "prompt": 0, "completion": 0}
    cost: float | None = 0.0
    pending = []
    seen: set[str] = set()  # a request two jobs would send is paid (and counted) once
    for planned in jobs:
        if not planned.tfs_eval.is_dir():
            pending.append(planned)
            print(
                f"estimate: {planned.name}: {planned.tfs_eval} not built yet: at most "
                f"{planned.upper_bound} requests; tokens and cost once the set exists"
            )
            continue
        job_args = parsers[planned.command].parse_args(planned.argv)
        if args.cache is not None:
            job_args.cache = args.cache
        job = prepare[planned.command](job_args)
        estimate = job.estimate(planned.name, seen)
        print(estimate.line())
        totals["requests"] += estimate.requests
        totals["cached"] += estimate.cached
        totals["prompt"] += estimate.prompt_tokens
        totals["completion"] += estimate.completion_tokens
        cost = None if cost is None or estimate.cost_usd is None else cost + estimate.cost_usd
        job.cache.close()
    money = "cost unknown (a setup without prices)" if cost is None else f"${cost:,.4f}"
    print(
        f"total: {len(jobs) - len(pending)} jobs: {totals['requests']} requests to send, "
        f"{totals['cached']} replies cached; ~{totals['prompt']:,} prompt tokens, at most "
        f"{totals['completion']:,} completion tokens; {money}"
        + (f"; {len(pending)} jobs wait for their TFS-Eval set" if pending else "")
    )
    return 0


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
    add_predict_arguments(predict)
    predict.add_argument("--out", type=Path, required=True, help="predictions JSONL")
    predict.add_argument("--usage", type=Path, help="usage JSON (default OUT.usage.json)")
    predict.set_defaults(func=_cmd_predict)

    estimate = sub.add_parser(
        "estimate",
        help="requests, tokens and cost of every labelling job of a config (nothing is sent)",
    )
    estimate.add_argument(
        "--config", type=Path, help="experiment config (default config/config.yaml)"
    )
    estimate.add_argument("--cache", type=Path, help="reply cache (default: the config's)")
    estimate.set_defaults(func=_cmd_estimate)

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

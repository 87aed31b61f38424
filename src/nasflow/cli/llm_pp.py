"""`nasflow llm-pp predict|evaluate`: LLM-PP predictions on TFS-Eval and their quality table."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from nasflow.config.resolve import resolve_tfs_eval_dir
from nasflow.core.errors import ConfigError, DataError
from nasflow.core.io import atomic_path, iter_jsonl, write_json_atomic, write_text_atomic


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _mirror_path(*parts: str) -> Path | None:
    mirror = os.environ.get("NASFLOW_MIRROR")
    return Path(mirror, *parts) if mirror else None


def _tfs_eval_dir(args: argparse.Namespace) -> Path:
    folder = args.tfs_eval or resolve_tfs_eval_dir({}, os.environ.get("NASFLOW_MIRROR"))
    if folder is None:
        raise ConfigError("pass --tfs-eval DIR or set NASFLOW_MIRROR (with llmas/ in it)")
    return Path(folder)


def task_examples(
    tfs_eval: Path,
    info,
    folder: Path | None,
    train_corpora: dict[str, Path] | None = None,
):
    """Task-example pool per task (`nasflow.llm.examples.example_source`): a training corpus of
    `train_corpora`, a built set's own pool (its train split), else the released task's
    development set newstest2013 in `folder` (default `$NASFLOW_MIRROR/newstest`)."""
    from nasflow.llm.examples import example_source

    return example_source(tfs_eval, info, folder or _mirror_path("newstest"), train_corpora, _log)


def _provider(args: argparse.Namespace):
    from nasflow.llm.providers import OfflineProvider, OpenAIProvider

    if args.provider == "offline":
        return OfflineProvider()
    if not args.model:
        raise ConfigError("--provider openai needs --model (e.g. gpt-4, or the served model name)")
    return OpenAIProvider(
        args.model,
        base_url=args.base_url,
        api_key_env=args.api_key_env,
        temperature=args.temperature,
        max_tokens=args.max_tokens,
        timeout_s=args.timeout,
        requests_per_minute=args.requests_per_minute,
    )


def _cmd_predict(args: argparse.Namespace) -> int:
    from nasflow.predictors.llm import llm_pp_predictions, usage_summary
    from nasflow.tfs.format import read_tfs_eval, read_tfs_eval_info

    folder = _tfs_eval_dir(args)
    info = read_tfs_eval_info(folder)
    table = read_tfs_eval(folder, tasks=args.task, seeds=args.seeds)
    tasks = args.task or list(table["task"].unique())
    provider, cache, prompts, predict, prices = llm_setup(args)
    from nasflow.llm.examples import parse_train_corpora

    train = parse_train_corpora(args.examples_train)
    examples = task_examples(folder, info, args.examples_dir, train)
    records = llm_pp_predictions(
        table, info, tasks, provider, cache, prompts, predict, examples, _log
    )
    lines = "".join(json.dumps(record, sort_keys=True) + "\n" for record in records)
    write_text_atomic(args.out, lines)
    usage = usage_summary(records, provider, prompts, predict, prices)
    write_json_atomic(args.usage or args.out.with_suffix(".usage.json"), usage)
    _log(
        f"{len(records)} predictions ({usage['failed']} failed): {usage['requests']} requests, "
        f"{usage['cache_hits']} cache hits -> {args.out}"
    )
    return 0


def read_predictions(paths: list[Path]) -> list[dict[str, Any]]:
    """Records of `llm-pp predict` files (errors name file and line)."""
    records = []
    for path in paths:
        if not path.is_file():
            raise DataError(f"{path}: no such predictions file")
        for line, record in iter_jsonl(path):
            missing = {"predictor", "seed", "task", "arch_id", "prediction"} - set(record)
            if missing:
                raise DataError(f"{path}:{line}: missing {', '.join(sorted(missing))}")
            records.append(record)
    return records


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from nasflow.cli.distill import read_seed_models
    from nasflow.cli.predictors import DECIMALS, to_markdown
    from nasflow.predictors.llm import SeedPredictions, ablation_table, per_arch_predictions
    from nasflow.predictors.quality import default_predictors, evaluate_predictors
    from nasflow.tfs.format import read_tfs_eval

    records = read_predictions(args.predictions)
    # The seeds the predictions cover (every predictor must cover all of them).
    seeds = sorted({int(r["seed"]) for r in records})
    table = read_tfs_eval(_tfs_eval_dir(args), tasks=args.task, seeds=seeds)
    tasks = args.task or list(table["task"].unique())
    names = list(dict.fromkeys(r["predictor"] for r in records))

    distilled = read_seed_models(args.distill_models or [])

    def predictors(task: str) -> list:
        llm = [SeedPredictions(name, [r for r in records if r["task"] == task]) for name in names]
        baselines = default_predictors(table, task) if args.baselines else []
        return baselines + llm + list(distilled.get(task, {}).values())

    results = evaluate_predictors(table, tasks, predictors)
    with atomic_path(args.out) as tmp:
        results.round(DECIMALS).to_csv(tmp, index=False, na_rep="")
    markdown = to_markdown(results)
    print(markdown)
    if args.markdown:
        write_text_atomic(args.markdown, markdown + "\n")
    if args.ablation:
        ablation = ablation_table(results, records)
        with atomic_path(args.ablation) as tmp:
            ablation.round(DECIMALS).to_csv(tmp, index=False, na_rep="")
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
        _log(f"{len(points)} (predictor, architecture) points -> {args.plot}")
    return 0


def add_llm_options(parser: argparse.ArgumentParser) -> None:
    """Provider, sampling, prompt and cache options (shared with `nasflow distill dataset`)."""
    parser.add_argument("--provider", choices=["offline", "openai"], default="offline")
    parser.add_argument("--model", help="model name (openai provider)")
    parser.add_argument("--base-url", help="OpenAI-compatible endpoint, e.g. a vLLM server")
    parser.add_argument("--api-key-env", default="OPENAI_API_KEY", help="env var of the key")
    parser.add_argument("--temperature", type=float, help="sampling temperature")
    parser.add_argument("--max-tokens", type=int, default=25)
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    parser.add_argument("--requests-per-minute", type=float, help="throttle")
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight")
    parser.add_argument("--samples", type=int, default=1, help="replies per architecture")
    parser.add_argument("--aggregate", choices=["mean", "median"], default="mean")
    parser.add_argument("--parse-retries", type=int, default=3)
    parser.add_argument("--variant", default="full", help="prompt variant (ablation)")
    parser.add_argument("--demonstrations", type=int, default=10)
    parser.add_argument("--task-examples", type=int, default=5)
    parser.add_argument("--template", help="prompt template YAML (default: packaged)")
    parser.add_argument(
        "--examples-dir",
        type=Path,
        help="folder of WMT development sets for the released tasks' task-example fallback "
        "(newstest2013; default $NASFLOW_MIRROR/newstest)",
    )
    parser.add_argument(
        "--cache", type=Path, default=Path("resources/llm_cache.sqlite"), help="reply cache"
    )
    parser.add_argument("--price-prompt", type=float, help="USD per million prompt tokens")
    parser.add_argument("--price-completion", type=float, help="USD per million output tokens")


def llm_setup(args: argparse.Namespace):
    """Provider, reply cache, prompt and predict settings, and prices from `add_llm_options`."""
    from nasflow.llm.cache import ReplyCache
    from nasflow.llm.predict import PredictSettings
    from nasflow.predictors.llm import PromptSettings

    prompts = PromptSettings(args.variant, args.demonstrations, args.task_examples, args.template)
    predict = PredictSettings(
        samples=args.samples,
        aggregate=args.aggregate,
        parse_retries=args.parse_retries,
        concurrency=args.concurrency,
    )
    prices = None
    if args.price_prompt is not None or args.price_completion is not None:
        prices = {"prompt": args.price_prompt or 0.0, "completion": args.price_completion or 0.0}
    return _provider(args), ReplyCache(args.cache), prompts, predict, prices


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `llm-pp predict` and `llm-pp evaluate`."""
    group = subparsers.add_parser("llm-pp", help="LLM performance predictors (LLM-PP)")
    sub = group.add_subparsers(dest="llm_command", required=True, metavar="SUBCOMMAND")

    predict = sub.add_parser("predict", help="LLM-PP predictions for TFS-Eval test architectures")
    predict.add_argument("--tfs-eval", type=Path, help="TFS-Eval folder (default: the mirror's)")
    predict.add_argument("--task", nargs="+", help="tasks (default: every task found)")
    predict.add_argument("--seeds", type=int, nargs="+", help="seeds (default: all)")
    add_llm_options(predict)
    predict.add_argument(
        "--examples-train",
        nargs="+",
        metavar="TASK=DIR",
        help="training corpus of a released task for its task examples: DIR/train.{src,tgt} "
        "(plain or .gz); without one, the task's development set newstest2013 is used",
    )
    predict.add_argument("--out", type=Path, required=True, help="predictions JSONL")
    predict.add_argument("--usage", type=Path, help="usage JSON (default OUT.usage.json)")
    predict.set_defaults(func=_cmd_predict)

    evaluate = sub.add_parser("evaluate", help="MAE / Kendall tau of LLM-PP predictions")
    evaluate.add_argument("--tfs-eval", type=Path, help="TFS-Eval folder (default: the mirror's)")
    evaluate.add_argument("--task", nargs="+", help="tasks (default: every task found)")
    evaluate.add_argument("--predictions", type=Path, nargs="+", required=True)
    evaluate.add_argument("--baselines", action="store_true", help="add supernet and count rows")
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

"""The LLM options of `nasflow llm-pp predict` and `nasflow distill dataset`, and what they build:
the provider, the reply cache, prompt and predict settings, prices, and each task's example pool."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from nasflow.config.schema import schema_defaults
from nasflow.core.errors import ConfigError
from nasflow.core.log import log


def _mirror_path(*parts: str) -> Path | None:
    mirror = os.environ.get("NASFLOW_MIRROR")
    return Path(mirror, *parts) if mirror else None


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

    return example_source(tfs_eval, info, folder or _mirror_path("newstest"), train_corpora, log)


def provider_from_options(args: argparse.Namespace):
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


def add_llm_options(parser: argparse.ArgumentParser) -> None:
    """Provider, sampling, prompt and cache options (shared with `nasflow distill dataset`);
    defaults are the schema's `llm` section."""
    llm = schema_defaults("llm")
    parser.add_argument("--provider", choices=["offline", "openai"], default="offline")
    parser.add_argument("--model", help="model name (openai provider)")
    parser.add_argument("--base-url", help="OpenAI-compatible endpoint, e.g. a vLLM server")
    parser.add_argument("--api-key-env", default="OPENAI_API_KEY", help="env var of the key")
    parser.add_argument("--temperature", type=float, help="sampling temperature")
    parser.add_argument("--max-tokens", type=int, default=25)
    parser.add_argument(
        "--timeout", type=float, default=float(llm["timeout"]), help="seconds per request"
    )
    parser.add_argument("--requests-per-minute", type=float, help="throttle")
    parser.add_argument(
        "--concurrency", type=int, default=llm["concurrency"], help="requests in flight"
    )
    parser.add_argument(
        "--samples", type=int, default=llm["samples"], help="replies per architecture"
    )
    parser.add_argument("--aggregate", choices=["mean", "median"], default=llm["aggregate"])
    parser.add_argument("--parse-retries", type=int, default=llm["parse_retries"])
    parser.add_argument("--variant", default="full", help="prompt variant (ablation)")
    parser.add_argument("--demonstrations", type=int, default=llm["demonstrations"][0])
    parser.add_argument("--task-examples", type=int, default=llm["task_examples"])
    parser.add_argument("--template", help="prompt template YAML (default: packaged)")
    parser.add_argument(
        "--examples-dir",
        type=Path,
        help="folder of WMT development sets for the released tasks' task-example fallback "
        "(newstest2013; default $NASFLOW_MIRROR/newstest)",
    )
    parser.add_argument("--cache", type=Path, default=Path(llm["cache"]), help="reply cache")
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
    return provider_from_options(args), ReplyCache(args.cache), prompts, predict, prices

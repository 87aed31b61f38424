"""The LLM options of `nasflow llm-pp predict` and `nasflow distill dataset`, and what they build:
the provider, the reply cache, prompt and predict settings, prices, and each task's example pool."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from nasflow.config.schema import schema_defaults
from nasflow.core.errors import ConfigError


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

    return example_source(tfs_eval, info, folder or _mirror_path("newstest"), train_corpora)


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
        token_param=args.token_param,
        timeout_s=args.timeout,
        requests_per_minute=args.requests_per_minute,
    )


# Options an `llm.predictors` entry sets (the entry chosen by `--llm NAME`) and options the
# `llm` section sets, by argparse destination.
ENTRY_OPTIONS = (
    "provider",
    "model",
    "base_url",
    "api_key_env",
    "temperature",
    "max_tokens",
    "token_param",
    "price_prompt",
    "price_completion",
)
SECTION_OPTIONS = (
    "task_examples",
    "template",
    "samples",
    "aggregate",
    "parse_retries",
    "concurrency",
    "requests_per_minute",
    "timeout",
    "cache",
)


def _builtin_defaults() -> dict[str, Any]:
    """Values of the options neither a flag nor the config sets (the schema's `llm` section)."""
    llm = schema_defaults("llm")
    return {
        "provider": "offline",
        "api_key_env": "OPENAI_API_KEY",
        "max_tokens": 25,
        "token_param": "auto",
        "timeout": float(llm["timeout"]),
        "concurrency": llm["concurrency"],
        "samples": llm["samples"],
        "aggregate": llm["aggregate"],
        "parse_retries": llm["parse_retries"],
        "variant": "full",
        "demonstrations": llm["demonstrations"][0],
        "task_examples": llm["task_examples"],
        "cache": Path(llm["cache"]),
    }


def add_llm_options(parser: argparse.ArgumentParser) -> None:
    """`--llm NAME` and the provider, sampling, prompt and cache options (shared with `nasflow
    distill dataset`). A flag overrides the config (`--config-json`: the `llm` section, and
    `--llm`'s entry of `llm.predictors`); without either, the schema's `llm` defaults apply
    (`resolve_llm_options`)."""
    llm = schema_defaults("llm")
    parser.add_argument(
        "--llm", metavar="NAME", help="llm.predictors entry of the config to use (its provider)"
    )
    parser.add_argument(
        "--provider", choices=["offline", "openai"], help="LLM provider (default offline)"
    )
    parser.add_argument("--model", help="model name (openai provider)")
    parser.add_argument("--base-url", help="OpenAI-compatible endpoint, e.g. a vLLM server")
    parser.add_argument("--api-key-env", help="env var of the key (default OPENAI_API_KEY)")
    parser.add_argument("--temperature", type=float, help="sampling temperature")
    parser.add_argument("--max-tokens", type=int, help="reply-length cap (default 25)")
    parser.add_argument(
        "--token-param",
        choices=["auto", "max_tokens", "max_completion_tokens"],
        help="the request parameter the cap goes out as (default auto: max_completion_tokens "
        "for OpenAI's o1/o3/o4 and gpt-5 models, else max_tokens)",
    )
    parser.add_argument(
        "--timeout", type=float, help=f"seconds per request (default {float(llm['timeout'])})"
    )
    parser.add_argument("--requests-per-minute", type=float, help="throttle")
    parser.add_argument(
        "--concurrency", type=int, help=f"requests in flight (default {llm['concurrency']})"
    )
    parser.add_argument(
        "--samples", type=int, help=f"replies per architecture (default {llm['samples']})"
    )
    parser.add_argument(
        "--aggregate", choices=["mean", "median"], help=f"default {llm['aggregate']}"
    )
    parser.add_argument("--parse-retries", type=int, help=f"default {llm['parse_retries']}")
    parser.add_argument("--variant", help="prompt variant (ablation; default full)")
    parser.add_argument("--demonstrations", type=int, help=f"default {llm['demonstrations'][0]}")
    parser.add_argument("--task-examples", type=int, help=f"default {llm['task_examples']}")
    parser.add_argument("--template", help="prompt template YAML (default: packaged)")
    parser.add_argument(
        "--examples-dir",
        type=Path,
        help="folder of WMT development sets for the released tasks' task-example fallback "
        "(newstest2013; default $NASFLOW_MIRROR/newstest)",
    )
    parser.add_argument("--cache", type=Path, help=f"reply cache (default {llm['cache']})")
    parser.add_argument("--price-prompt", type=float, help="USD per million prompt tokens")
    parser.add_argument("--price-completion", type=float, help="USD per million output tokens")


# The argparse type of each option that is not plain text.
_TYPES: dict[str, Any] = {
    "temperature": float,
    "max_tokens": int,
    "timeout": float,
    "requests_per_minute": float,
    "concurrency": int,
    "samples": int,
    "parse_retries": int,
    "demonstrations": int,
    "task_examples": int,
    "cache": Path,
    "price_prompt": float,
    "price_completion": float,
}


def resolve_llm_options(
    args: argparse.Namespace,
    config: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    *,
    samples_key: str = "samples",
) -> None:
    """Fill the options of `add_llm_options` left unset, in place: from `--llm`'s entry of
    `llm.predictors` and the `llm` section of `config` (`samples` from `llm.<samples_key>`),
    then from `extra` (other config values by destination), else the built-in defaults. A
    config value is read as its flag would read it (its text through the option's type), so
    a rule passing the config computes what the same values as flags did."""
    from_config: dict[str, Any] = {}
    if config is not None:
        section = config.get("llm", {})
        if args.llm is not None:
            entries = {entry["name"]: entry for entry in section.get("predictors", [])}
            if args.llm not in entries:
                raise ConfigError(
                    f"--llm {args.llm}: no such llm.predictors entry in the config (entries: "
                    f"{', '.join(entries) or 'none'})"
                )
            from_config.update({dest: entries[args.llm].get(dest) for dest in ENTRY_OPTIONS})
        from_config.update({dest: section.get(dest) for dest in SECTION_OPTIONS})
        from_config["samples"] = section.get(samples_key)
    elif args.llm is not None:
        raise ConfigError("--llm NAME needs the config (--config or --config-json)")
    from_config.update(extra or {})
    defaults = _builtin_defaults()
    for dest in (*ENTRY_OPTIONS, *SECTION_OPTIONS, "variant", "demonstrations"):
        if getattr(args, dest, None) is not None:
            continue
        value = from_config.get(dest)
        # The config value's text through the option's type, as the flag would read it.
        setattr(
            args,
            dest,
            defaults.get(dest) if value is None else _TYPES.get(dest, str)(str(value)),
        )


def llm_setup(args: argparse.Namespace):
    """Provider, reply cache, prompt and predict settings, and prices from `add_llm_options`
    (after `resolve_llm_options`)."""
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

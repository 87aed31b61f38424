"""The labelling jobs of LLM-PP: `nasflow llm-pp predict` (predictions on a TFS-Eval set) and
`nasflow distill dataset` (labels of LLM-Distill-PP), each prepared up to its prompts before
any request, so that a job can say what it will send and cost first (`nasflow.llm.cost`), and
the list of those jobs a config runs is `nasflow.llm.plan`.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nasflow.config.options import add_config_options, config_given, read_config
from nasflow.config.resolve import resolve_tfs_eval_dir
from nasflow.core.errors import ConfigError, DataError
from nasflow.llm.cache import ReplyCache
from nasflow.llm.cost import Estimate, estimate_requests
from nasflow.llm.plan import DISTILL_DATASET_KEYS
from nasflow.llm.predict import PredictSettings
from nasflow.llm.progress import Progress
from nasflow.llm.providers import Provider
from nasflow.predictors.llm_options import (
    add_llm_options,
    llm_setup,
    resolve_llm_options,
    task_examples,
)
from nasflow.tfs.format import add_task_option

# The config sections each command reads (what the rules pass as --config-json).
PREDICT_SECTIONS = ("llm",)
DATASET_SECTIONS = ("experiment", "seed", "llm", *(f"distill.{k}" for k in DISTILL_DATASET_KEYS))


@dataclass
class LabellingJob:
    """A labelling job prepared up to its prompts (one per architecture, in order)."""

    provider: Provider
    cache: ReplyCache
    prompts: Any  # nasflow.predictors.llm.PromptSettings
    predict: PredictSettings
    prices: dict[str, float] | None
    texts: list[str]
    extra: dict[str, Any] = field(default_factory=dict)  # what the command writes besides

    @property
    def label(self) -> str:
        from nasflow.predictors.llm import predictor_label

        return predictor_label(self.provider, self.prompts)

    def estimate(self, label: str | None = None, seen: set[str] | None = None) -> Estimate:
        """Requests not in the reply cache, tokens and cost (`nasflow.llm.cost`; `seen`: the
        requests counted for earlier jobs)."""
        return estimate_requests(
            label or self.label, self.provider, self.cache, self.texts, self.predict,
            self.prices, seen,
        )  # fmt: skip

    def progress(self, emit: Callable[[str], None]) -> Progress:
        """The job's progress lines (one per architecture finished)."""
        return Progress(self.label, len(self.texts), emit)


# `nasflow llm-pp predict`


def add_predict_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `nasflow llm-pp predict` before its outputs."""
    parser.add_argument("--tfs-eval", type=Path, help="TFS-Eval folder (default: the mirror's)")
    add_task_option(parser, help="tasks, or all (default: every task found)")
    parser.add_argument("--seeds", type=int, nargs="+", help="seeds (default: all)")
    add_config_options(parser, sections=PREDICT_SECTIONS)
    add_llm_options(parser)
    parser.add_argument(
        "--robustness",
        action="store_true",
        help="ask llm.robustness_samples replies per architecture (the robustness run, A.8.4; "
        "needs the config)",
    )
    parser.add_argument(
        "--examples-train",
        nargs="+",
        metavar="TASK=DIR",
        help="training corpus of a released task for its task examples: DIR/train.{src,tgt} "
        "(plain or .gz); default: the config's llm.task_example_corpora, else the task's "
        "development set newstest2013",
    )


def tfs_eval_dir(folder: Path | None) -> Path:
    """`folder`, else the mirror's released TFS-Eval set."""
    folder = folder or resolve_tfs_eval_dir({}, os.environ.get("NASFLOW_MIRROR"))
    if folder is None:
        raise ConfigError("pass --tfs-eval DIR or set NASFLOW_MIRROR (with llmas/ in it)")
    return Path(folder)


def prepare_predict(args: argparse.Namespace) -> LabellingJob:
    """`llm-pp predict` up to its prompts; `extra["groups"]` holds them per (task, seed)."""
    from nasflow.llm.examples import parse_train_corpora
    from nasflow.predictors.llm import llm_pp_prompts
    from nasflow.tfs.format import read_tfs_eval, read_tfs_eval_info

    config = read_config(args) if config_given(args) else None
    samples_key = "robustness_samples" if args.robustness else "samples"
    if args.robustness and config is None:
        raise ConfigError("--robustness reads llm.robustness_samples: pass the config")
    resolve_llm_options(args, config, samples_key=samples_key)
    folder = tfs_eval_dir(args.tfs_eval)
    info = read_tfs_eval_info(folder)
    table = read_tfs_eval(folder, tasks=args.task, seeds=args.seeds)
    tasks = args.task or list(table["task"].unique())
    provider, cache, prompts, predict, prices = llm_setup(args)
    train = parse_train_corpora(_examples_train(args, config))
    examples = task_examples(folder, info, args.examples_dir, train)
    groups = llm_pp_prompts(table, info, tasks, prompts, examples)
    texts = [text for group in groups for text in group.texts]
    return LabellingJob(provider, cache, prompts, predict, prices, texts, {"groups": groups})


def _examples_train(args: argparse.Namespace, config: dict | None) -> list[str] | None:
    """`--examples-train`, else the config's llm.task_example_corpora of the tasks asked for
    (every named one without --task), as `TASK=DIR` words."""
    if args.examples_train is not None or config is None:
        return args.examples_train
    corpora = config["llm"].get("task_example_corpora") or {}
    tasks = args.task if args.task is not None else list(corpora)
    words = [f"{task}={corpora[task]}" for task in tasks if task in corpora]
    return words or None


# `nasflow distill dataset`


def add_dataset_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `nasflow distill dataset` before its outputs."""
    parser.add_argument("--tfs-eval", type=Path, required=True, help="TFS-Eval folder")
    add_config_options(parser, sections=DATASET_SECTIONS)
    parser.add_argument("--task", help="task whose prompts are used (default: experiment)")
    parser.add_argument("--seed", type=int, required=True, help="TFS-Eval seed (demonstrations)")
    parser.add_argument(
        "--n", type=int, help="architectures sampled from the space (none of the TFS-Eval set)"
    )
    parser.add_argument(
        "--sample-seed",
        type=int,
        help="experiment seed (the sample's own stream; default: the config's seed, else 1)",
    )
    parser.add_argument("--archs", type=Path, help="or: a JSONL file of architectures")
    add_llm_options(parser)
    parser.add_argument(
        "--batch-api",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="send the requests not cached through the OpenAI Batch API (default: the "
        "config's distill.batch_api, else no)",
    )


def prepare_dataset(args: argparse.Namespace) -> LabellingJob:
    """`distill dataset` up to its prompts; `extra` holds `archs`, `task` and
    `task_examples` (where the prompt's task examples came from)."""
    from nasflow.predictors.distill_dataset import labelling_prompts, read_arch_file
    from nasflow.space.hat import get_space, held_out_sample
    from nasflow.tfs.format import read_tfs_eval, read_tfs_eval_info

    _resolve_dataset_options(args)
    if (args.n is None) == (args.archs is None):
        raise ConfigError("pass exactly one of --n (sample from the space) and --archs FILE")
    info = read_tfs_eval_info(args.tfs_eval)
    table = read_tfs_eval(args.tfs_eval, tasks=[args.task], seeds=[args.seed])
    provider, cache, prompts, predict, prices = llm_setup(args)
    if args.batch_api and provider.name != "openai":
        raise ConfigError(
            f"distill.batch_api (--batch-api) needs the openai provider; the setup "
            f"{args.llm or args.provider!r} uses {provider.name!r}"
        )
    tfs_ids = set(table["arch_id"])  # each split seed holds the whole set (train + test)
    if args.archs is not None:
        archs = read_arch_file(args.archs, info.space)
    else:
        space = get_space(info.space)
        archs = held_out_sample(space, args.n, args.sample_seed, "distill", exclude=tfs_ids)
    leaked = [arch.id for arch in archs if arch.id in tfs_ids]
    if leaked:
        raise DataError(
            f"{args.archs}: {len(leaked)} architecture(s) of the TFS-Eval set {args.tfs_eval} "
            f"(e.g. {leaked[0]}); a distillation set must not hold the architectures its MLP "
            "is scored on"
        )
    examples = task_examples(args.tfs_eval, info, args.examples_dir)(args.task)
    texts, about = labelling_prompts(archs, table, info, args.task, args.seed, prompts, examples)
    extra = {"archs": archs, "task": args.task, "task_examples": about}
    return LabellingJob(provider, cache, prompts, predict, prices, texts, extra)


def _resolve_dataset_options(args: argparse.Namespace) -> None:
    """Fill what `distill dataset`'s flags leave unset from the config (when given): the task
    (`experiment`), the LLM-PP setup (`--llm`, default distill.llm, and the `llm` section),
    the prompt (distill.variant, distill.demonstrations), the architectures
    (distill.archs_file, else distill.num_archs sampled with the experiment `seed`) and
    distill.batch_api."""
    config = read_config(args) if config_given(args) else None
    extra: dict[str, Any] = {}
    if config is not None:
        distill = config["distill"]
        if args.task is None:
            args.task = config["experiment"]
        if args.llm is None:
            args.llm = distill["llm"]
        extra = {"variant": distill["variant"], "demonstrations": distill["demonstrations"]}
        if args.n is None and args.archs is None:
            if distill["archs_file"]:
                args.archs = Path(str(distill["archs_file"]))
            else:
                args.n = int(str(distill["num_archs"]))
        if args.sample_seed is None:
            args.sample_seed = int(str(config["seed"]))
        if args.batch_api is None:
            args.batch_api = bool(distill.get("batch_api", False))
    if args.task is None:
        raise ConfigError("pass --task (or the config: its experiment is the task)")
    if args.sample_seed is None:
        args.sample_seed = 1
    args.batch_api = bool(args.batch_api)
    resolve_llm_options(args, config, extra)

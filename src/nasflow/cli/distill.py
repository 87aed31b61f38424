"""`nasflow distill dataset|train`: LLM-Distill-PP's labelled architectures and its MLP."""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nasflow.config.resolve import parse_json_object
from nasflow.core.errors import ConfigError, DataError
from nasflow.core.io import atomic_path, read_state_rows, write_json_atomic
from nasflow.predictors.base import Predictor
from nasflow.predictors.distilled import sidecar
from nasflow.space.hat import Arch

logger = logging.getLogger(__name__)


def _cmd_dataset(args: argparse.Namespace) -> int:
    from nasflow.predictors.distill_dataset import label_archs
    from nasflow.predictors.llm import usage_summary
    from nasflow.predictors.llm_jobs import prepare_dataset

    job = prepare_dataset(args)
    logger.info(job.estimate().line())  # before any request
    batches = None
    if args.batch_api:
        from nasflow.llm.batch import run_batches

        batches = run_batches(job.provider, job.cache, job.texts, job.predict, logger.info)
    progress = job.progress(logger.info)
    extra = job.extra
    frame, usage = label_archs(
        extra["archs"], job.texts, extra["task"], extra["task_examples"], job.provider,
        job.cache, job.prompts, job.predict, progress,
    )  # fmt: skip
    progress.finish()
    with atomic_path(args.out) as tmp:
        frame.to_csv(tmp, index=False)
    summary = usage_summary(usage, job.provider, job.prompts, job.predict, job.prices)
    summary.update({"task": args.task, "tfs_seed": args.seed, "tfs_eval": str(args.tfs_eval)})
    if batches is not None:  # requests answered through the Batch API (then read from the cache)
        summary["batch_api"] = batches.to_dict()
    write_json_atomic(args.usage or args.out.with_suffix(".usage.json"), summary)
    logger.info(
        f"{len(frame)} architectures labelled ({summary['failed']} failed): "
        f"{summary['requests']} requests, {summary['cache_hits']} cache hits -> {args.out}"
    )
    return 0


def _cmd_score_supernet(args: argparse.Namespace) -> int:
    """Supernet scores of sampled archs, as a distillation dataset (the paper's distilled-hat).

    Each scored arch is appended to a state file beside the output first, so a killed run
    resumes without rescoring."""
    import pandas as pd
    import torch

    from nasflow.config.options import read_config
    from nasflow.predictors.distill_dataset import DATASET_COLUMNS
    from nasflow.search.runner import supernet_predictor
    from nasflow.space.hat import get_space, held_out_sample, tfs_sample

    config = read_config(args)
    torch.set_num_threads(int(config["threads"]))
    space = get_space(config["space"])
    tfs_ids = {arch.id for arch in tfs_sample(space, config["tfs"]["num_archs"], config["seed"])}
    n = args.n if args.n is not None else config.get("distill", {}).get("supernet_archs")
    if n is None:
        raise ConfigError("pass --n (or a config with distill.supernet_archs)")
    archs = held_out_sample(space, n, config["seed"], "supernet-mlp", exclude=tfs_ids)
    state = args.out.with_suffix(".partial.jsonl")
    done: dict[str, float] = {}
    hint = "delete it to score again"
    # A torn last line from a kill is dropped; any other damaged row names the file and line.
    for number, row in read_state_rows(state, "supernet score", ("arch_id", "score"), hint):
        try:
            done[str(row["arch_id"])] = float(row["score"])
        except (TypeError, ValueError):
            raise DataError(
                f"{state}:{number}: the supernet score row's score is {row['score']!r}, not a "
                f"number; {hint}"
            ) from None
    todo = [arch for arch in archs if arch.id not in done]
    if todo:
        predictor = supernet_predictor(config, args.supernet, args.data, args.device)
        with state.open("a", encoding="utf-8") as handle:
            for number, arch in enumerate(todo, start=1):
                score = float(predictor.predict([arch])[0])
                handle.write(json.dumps({"arch_id": arch.id, "score": score}) + "\n")
                handle.flush()
                done[arch.id] = score
                if number % 25 == 0 or number == len(todo):
                    logger.info(f"supernet scores: {len(archs) - len(todo) + number}/{len(archs)}")
    rows = [
        {
            "arch_id": arch.id,
            "arch": arch.to_json(),
            "prediction": done[arch.id],
            "failed": False,
            "requests": 0,
            "cache_hits": 0,
        }
        for arch in archs
    ]
    with atomic_path(args.out) as tmp:
        pd.DataFrame(rows, columns=list(DATASET_COLUMNS)).to_csv(tmp, index=False)
    state.unlink()
    logger.info(f"{len(rows)} supernet scores ({len(archs) - len(todo)} resumed) -> {args.out}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    import torch

    from nasflow.predictors.distill_dataset import read_distill_dataset
    from nasflow.predictors.distilled import DistillSettings, evaluate_on, train_distill_mlp

    torch.set_num_threads(args.threads)
    settings = DistillSettings.from_mapping(_train_settings(args))
    archs, labels, failed = read_distill_dataset(args.dataset)
    predictor = train_distill_mlp(archs, labels, settings, name=args.name)
    predictor.save(args.out)
    meta: dict[str, Any] = {
        "name": args.name,
        "task": args.task,
        "tfs_seed": args.seed,
        "dataset": str(args.dataset),
        "architectures": len(archs),
        "failed_labels_skipped": failed,
        "settings": settings.to_dict(),
        "training": predictor.training_summary,
    }
    if args.tfs_eval is not None:
        meta["tfs_eval"] = _evaluate_on_tfs(predictor, args, evaluate_on)
    speed = _throughput(predictor, archs)
    meta["throughput_archs_per_s"] = speed
    write_json_atomic(sidecar(args.out), meta)
    logger.info(f"{args.name}: trained on {len(archs)} architectures -> {args.out}")
    if "tfs_eval" in meta:
        logger.info(f"on the TFS-Eval test split: {meta['tfs_eval']}")
    return 0


def _train_settings(args: argparse.Namespace) -> dict[str, Any] | None:
    """The config's `distill.mlp` (when a config is given), overlaid with `--settings-json`."""
    from nasflow.config.options import config_given, read_config

    values: dict[str, Any] | None = None
    if config_given(args):
        values = dict(read_config(args).get("distill", {}).get("mlp", {}))
    if args.settings_json:
        values = {**(values or {}), **parse_json_object(args.settings_json, "--settings-json")}
    return values


def _evaluate_on_tfs(predictor: Predictor, args: argparse.Namespace, evaluate_on) -> dict:
    from nasflow.tfs.format import read_tfs_eval

    if args.task is None or args.seed is None:
        raise ConfigError("--tfs-eval needs --task and --seed (the split to evaluate on)")
    table = read_tfs_eval(args.tfs_eval, tasks=[args.task], seeds=[args.seed])
    test = table[table["split"] == "test"]
    return evaluate_on(predictor, list(test["arch"]), test["gold"].to_numpy(dtype=float))


def _throughput(predictor: Predictor, archs: Sequence[Arch]) -> float:
    """Architectures per second of one batched prediction (at least 10,000 archs)."""
    import time

    batch = list(archs) * max(1, -(-10_000 // len(archs)))
    started = time.perf_counter()
    predictor.predict(batch)
    return round(len(batch) / (time.perf_counter() - started), 1)


# The config sections each command reads (what the rules pass as --config-json).
TRAIN_SECTIONS = ("distill.mlp",)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `distill dataset` and `distill train`."""
    from nasflow.config.options import BASE_SECTIONS, add_config_options
    from nasflow.predictors.llm_jobs import add_dataset_arguments

    group = subparsers.add_parser("distill", help="LLM-Distill-PP: distil LLM-PP into an MLP")
    sub = group.add_subparsers(dest="distill_command", required=True, metavar="SUBCOMMAND")

    dataset = sub.add_parser("dataset", help="architectures labelled by LLM-PP (cached)")
    add_dataset_arguments(dataset)
    dataset.add_argument("--out", type=Path, required=True, help="dataset CSV")
    dataset.add_argument("--usage", type=Path, help="usage JSON (default OUT.usage.json)")
    dataset.set_defaults(func=_cmd_dataset)

    scores = sub.add_parser(
        "score-supernet", help="supernet scores of sampled archs (dataset of distilled-hat)"
    )
    add_config_options(
        scores, sections=(*BASE_SECTIONS, "train", "evaluate", "tfs", "distill.supernet_archs")
    )
    scores.add_argument("--supernet", type=Path, required=True, help="trained supernet (.pt)")
    scores.add_argument("--data", type=Path, required=True, help="prepared data folder")
    scores.add_argument(
        "--n",
        type=int,
        help="architectures sampled (none of the TFS-Eval set; default distill.supernet_archs)",
    )
    scores.add_argument("--device", help="override train.device")
    scores.add_argument("--out", type=Path, required=True, help="dataset CSV")
    scores.set_defaults(func=_cmd_score_supernet)

    train = sub.add_parser("train", help="the MLP on a distillation dataset")
    train.add_argument("--dataset", type=Path, required=True, help="dataset CSV")
    add_config_options(train, sections=TRAIN_SECTIONS)
    train.add_argument(
        "--settings-json",
        help="DistillSettings as a JSON object (over the config's distill.mlp)",
    )
    train.add_argument("--name", default="LLM-Distill-PP", help="row label in tables")
    train.add_argument("--tfs-eval", type=Path, help="evaluate on this folder's test split")
    train.add_argument("--task", help="task of the model (and of the evaluation)")
    train.add_argument("--seed", type=int, help="TFS-Eval seed of the model's labels")
    train.add_argument("--threads", type=int, default=1, help="torch threads")
    train.add_argument("--out", type=Path, required=True, help="model .pt (sidecar .json beside)")
    train.set_defaults(func=_cmd_train)

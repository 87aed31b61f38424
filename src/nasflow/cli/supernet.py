"""`nasflow supernet train|quality`: train the SuperTransformer; score it as a predictor."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from nasflow.config.options import (
    BASE_SECTIONS,
    add_config_options,
    declare_config_sections,
    read_config,
)
from nasflow.core.errors import ConfigError
from nasflow.core.io import write_json_atomic
from nasflow.train.job import add_training_options, train_job

logger = logging.getLogger(__name__)


def _cmd_supernet_train(args: argparse.Namespace) -> int:
    return train_job(args, "supernet")


def _cmd_supernet_quality(args: argparse.Namespace) -> int:
    import time

    import torch

    from nasflow.core.device import environment
    from nasflow.predictors.supernet_quality import supernet_quality
    from nasflow.search.runner import supernet_predictor
    from nasflow.tfs.format import read_tfs_scores

    config = read_config(args)
    torch.set_num_threads(int(config["threads"]))
    records = read_tfs_scores(args.scores)
    started = time.perf_counter()
    summaries, names, env = [], set(), {}
    for model in args.model:
        predictor = supernet_predictor(config, model, args.data, args.device)
        if predictor.name in names:
            raise ConfigError(f"--model {model}: a second {predictor.name} supernet")
        names.add(predictor.name)
        summary = supernet_quality(predictor, records)
        summary = {"kind": predictor.model.kind, "model": str(model), **summary}
        summary["seconds_per_arch"] = round(predictor.seconds_per_arch, 4)
        summaries.append(summary)
        env = environment(predictor.device, predictor.dtype)
        logger.info(
            f"{summary['predictor']} over {summary['architectures']} architectures: "
            f"Kendall tau vs valid BLEU {summary['kendall_valid_bleu']}"
        )
        del predictor
    result = {
        "supernets": summaries,
        "total_seconds": round(time.perf_counter() - started, 3),
        "environment": env,
    }
    write_json_atomic(args.out, result)
    logger.info(f"{args.out}: {len(summaries)} supernet(s)")
    return 0


# The config sections each command reads (what the rules pass as --config-json).
TRAIN_SECTIONS = (*BASE_SECTIONS, "supernet")
QUALITY_SECTIONS = (*BASE_SECTIONS, "train", "evaluate")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `supernet train` and `supernet quality`."""
    supernet = subparsers.add_parser("supernet", help="train the SuperTransformer")
    sub = supernet.add_subparsers(dest="supernet_command", required=True, metavar="SUBCOMMAND")
    train = add_training_options(
        sub, "train", "train the weight-sharing SuperTransformer (SPOS or sandwich)", False
    )
    declare_config_sections(train, TRAIN_SECTIONS)
    train.set_defaults(func=_cmd_supernet_train)
    quality = sub.add_parser(
        "quality",
        help="Kendall tau / MAE of each supernet as a predictor of from-scratch BLEU",
    )
    add_config_options(quality, sections=QUALITY_SECTIONS)
    quality.add_argument(
        "--model",
        type=Path,
        nargs="+",
        required=True,
        help="trained supernets (.pt), each of its own kind (hat, layer-mos, neuron-mos)",
    )
    quality.add_argument("--data", type=Path, required=True, help="prepared data folder")
    quality.add_argument(
        "--scores", type=Path, nargs="+", required=True, help="score.json of from-scratch runs"
    )
    quality.add_argument("--out", type=Path, required=True, help="quality JSON")
    quality.add_argument("--device", help="override the config's device")
    quality.set_defaults(func=_cmd_supernet_quality)

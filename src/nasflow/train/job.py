"""One training job from an experiment config: the `supernet` section (weight-sharing training)
or the `train` section (one architecture from scratch), and the command-line options both take."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from nasflow.config.options import add_config_options, read_config
from nasflow.config.resolve import Config
from nasflow.space.hat import parse_arch

logger = logging.getLogger(__name__)


def _settings_for(config: Config, section: str, device: str | None) -> Any:
    from nasflow.train.settings import TrainSettings

    settings = TrainSettings.from_config(config, section)
    if device:
        settings = TrainSettings.from_mapping({**settings.to_dict(), "device": device})
    return settings


def train_job(args: argparse.Namespace, section: str) -> int:
    """Train as `args` (see `add_training_options`) and the config's `section` say; under
    torchrun, as one of `gpus x nodes` data-parallel processes (rank 0 writes and logs)."""
    import torch

    from nasflow.model.supertransformer import ModelConfig
    from nasflow.train import distributed
    from nasflow.train.loop import Trainer

    config = read_config(args)
    settings = _settings_for(config, section, args.device)
    arch = parse_arch(args.arch, config["space"]) if section == "train" else None
    dist = distributed.from_environment()
    distributed.check_world_size(dist, settings.gpus, settings.nodes)
    # The node's cores are shared by its processes.
    torch.set_num_threads(max(1, int(config["threads"]) // dist.local_world_size))
    with distributed.process_group(dist, settings.device) as dist:
        trainer = Trainer(
            args.data,
            settings,
            space=config["space"],
            model_config=ModelConfig.from_mapping(config.get("model")),
            state_dir=args.state_dir,
            arch=arch,
            progress=not args.no_progress,
            dist=dist,
        )
        if args.fresh and dist.is_main:
            trainer.state.clear()
        dist.barrier()
        result = trainer.run(args.out, args.curve)
    if dist.is_main:
        logger.info(
            f"done: {result.updates} updates in {result.train_seconds:.1f} s "
            f"({result.wps:.0f} target tokens/s) on {dist.world_size} process(es), "
            f"valid {result.valid}"
        )
    return 0


def add_training_options(
    sub: Any, name: str, text: str, with_arch: bool
) -> argparse.ArgumentParser:
    """Add the `name` subcommand with the options of a training job (`train_job`)."""
    parser = sub.add_parser(name, help=text, description=text)
    add_config_options(parser)
    if with_arch:
        parser.add_argument("--arch", required=True, help="architecture JSON text or file")
    parser.add_argument("--data", type=Path, required=True, help="prepared data folder")
    parser.add_argument("--out", type=Path, required=True, help="trained model (.pt)")
    parser.add_argument("--curve", type=Path, help="training curve CSV")
    parser.add_argument(
        "--state-dir", type=Path, required=True, help="resumable state (outside declared outputs)"
    )
    parser.add_argument("--fresh", action="store_true", help="discard saved state first")
    parser.add_argument("--device", help="override the config's device (cpu, cuda, auto)")
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bar or progress lines"
    )
    return parser

"""`nasflow zero-cost score`: grad-norm, snip and synflow of every architecture of a TFS-Eval set
at initialisation (the zero-cost baselines of Table 1 / Table 8)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from nasflow.config.options import add_config_options, config_given, read_config
from nasflow.core.errors import ConfigError
from nasflow.tfs.format import add_task_option

logger = logging.getLogger(__name__)

SECTIONS = ("model",)
"""The config sections `zero-cost score` reads (the model's dropout is off in eval mode;
`max_positions` sizes the position table)."""


def _cmd_score(args: argparse.Namespace) -> int:
    import torch

    from nasflow.model.supertransformer import ModelConfig
    from nasflow.zero_cost.batches import ScoringBatch, newstest_batch, prepared_batch
    from nasflow.zero_cost.scores import score_tfs_eval, write_scores

    if args.threads < 1:
        raise ConfigError(f"--threads must be at least 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    config = ModelConfig.from_mapping(
        read_config(args).get("model") if config_given(args) else None
    )
    positions = config.max_positions
    if args.data is not None:
        batch = prepared_batch(
            args.data, batch_tokens=args.batch_tokens, seed=args.seed, max_positions=positions
        )

        def batch_for(task: str) -> ScoringBatch:
            return batch
    else:
        work = args.work or args.out.parent / "zero_cost_work"

        def batch_for(task: str) -> ScoringBatch:
            return newstest_batch(
                task,
                args.newstest,
                work,
                batch_tokens=args.batch_tokens,
                bpe_vocab=args.bpe_vocab,
                max_positions=positions,
            )

    frame, sidecar = score_tfs_eval(
        args.tfs_eval, args.task, batch_for, model_config=config, seed=args.seed
    )
    json_path = write_scores(frame, sidecar, args.out, args.json)
    logger.info(f"{args.out}: {len(frame)} scores ({json_path})")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `nasflow zero-cost score`."""
    group = subparsers.add_parser("zero-cost", help="zero-cost proxies (grad-norm, snip, synflow)")
    sub = group.add_subparsers(dest="zero_cost_command", required=True, metavar="SUBCOMMAND")
    score = sub.add_parser(
        "score", help="zero-cost proxies of every architecture of a TFS-Eval set, per task"
    )
    add_config_options(score, sections=SECTIONS)
    score.add_argument("--tfs-eval", type=Path, required=True, help="TFS-Eval folder")
    add_task_option(score, help="tasks, or all (default all)")
    source = score.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", type=Path, help="prepared data folder (its train split)")
    source.add_argument(
        "--newstest", type=Path, help="folder of {pair}.newstest2013.{lang}.gz (released tasks)"
    )
    score.add_argument("--out", type=Path, required=True, help="scores CSV")
    score.add_argument("--json", type=Path, help="sidecar JSON (default <out>.json)")
    score.add_argument(
        "--work", type=Path, help="cache of the newstest BPE (default <out dir>/zero_cost_work)"
    )
    score.add_argument("--batch-tokens", type=int, default=1024, help="token budget of the batch")
    score.add_argument("--bpe-vocab", type=int, default=8000, help="newstest BPE pieces")
    score.add_argument("--seed", type=int, default=1, help="initialisation (and shuffle) seed")
    score.add_argument("--threads", type=int, default=1, help="torch threads")
    score.set_defaults(func=_cmd_score)

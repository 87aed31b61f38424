"""`nasflow tfs-eval build`: a TFS-Eval folder from this workflow's own from-scratch runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from nasflow.tfs.build import PAPER_SPLIT_SEEDS, SplitSettings, build_tfs_eval


def _cmd_build(args: argparse.Namespace) -> int:
    split = SplitSettings(tuple(args.seeds), args.train, args.example_pool)
    info = build_tfs_eval(
        args.scores,
        args.data,
        args.out,
        args.task,
        split,
        supernet_quality=args.supernet_quality,
        pool_seed=args.pool_seed,
        dataset=args.dataset,
    )
    meta = info.tasks[args.task]
    print(
        f"TFS-Eval {args.task} ({meta.dataset} {meta.source_language}-{meta.target_language}, "
        f"space {info.space}): {len(args.scores)} architectures, seeds "
        f"{', '.join(map(str, args.seeds))} -> {args.out}"
    )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `nasflow tfs-eval build`."""
    group = subparsers.add_parser("tfs-eval", help="TFS-Eval sets built from this workflow")
    sub = group.add_subparsers(dest="tfs_eval_command", required=True, metavar="SUBCOMMAND")
    build = sub.add_parser("build", help="a TFS-Eval folder (llmas layout) from score.json files")
    build.add_argument("--scores", type=Path, nargs="+", required=True, help="score.json files")
    build.add_argument("--data", type=Path, required=True, help="prepared data folder")
    build.add_argument("--task", required=True, help="task name (e.g. the experiment)")
    build.add_argument("--seeds", type=int, nargs="+", default=list(PAPER_SPLIT_SEEDS))
    build.add_argument("--train", type=int, help="train-split size (default: a third)")
    build.add_argument("--example-pool", type=int, default=1000, help="task example pairs kept")
    build.add_argument("--pool-seed", type=int, default=1, help="seed of the example pool")
    build.add_argument("--dataset", help="dataset name in prompts (default: from the corpus)")
    build.add_argument("--supernet-quality", type=Path, help="supernet_quality.json to store")
    build.add_argument("--out", type=Path, required=True, help="output folder")
    build.set_defaults(func=_cmd_build)

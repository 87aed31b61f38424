"""`nasflow space sample|show`: a search space's choices and seeded samples.

`--space` takes a name (built-in, registered, or a `nasflow.spaces` entry point) or a YAML/JSON
space file (`nasflow.space.registry`); `show` prints the space's mapping, which is such a file.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from nasflow.core.io import write_jsonl_atomic
from nasflow.space.hat import SPACES, get_space
from nasflow.space.registry import space_to_mapping


def _cmd_sample(args: argparse.Namespace) -> int:

    space = get_space(args.space)
    archs = space.sample_unique(args.n, seed=args.seed)
    write_jsonl_atomic(args.out, [{"id": a.id, "arch": a.to_dict()} for a in archs])
    print(
        f"wrote {len(archs)} architectures of space {space.name!r} (seed {args.seed}) to {args.out}"
    )
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    space = get_space(args.space)
    print(json.dumps({**space_to_mapping(space), "super_dims": space.super_dims()}, indent=2))
    return 0


SPACE_HELP = f"{', '.join(SPACES)}, a nasflow.spaces entry point or a YAML/JSON space file"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `nasflow space {sample,show}`."""
    group = subparsers.add_parser("space", help="search spaces and architecture sampling")
    sub = group.add_subparsers(dest="space_command", required=True, metavar="SUBCOMMAND")
    sample = sub.add_parser("sample", help="write N distinct seeded architectures as jsonl")
    sample.add_argument("--space", required=True, help=SPACE_HELP)
    sample.add_argument("--n", type=int, required=True)
    sample.add_argument("--seed", type=int, default=1)
    sample.add_argument("--out", type=Path, required=True)
    sample.set_defaults(func=_cmd_sample)
    show = sub.add_parser("show", help="print a space's super dims and choice sets")
    show.add_argument("--space", required=True, help=SPACE_HELP)
    show.set_defaults(func=_cmd_show)

"""`nasflow data ...` subcommands."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from nasflow.core.flags import add_flag
from nasflow.data.corpora import CORPORA, SOURCES
from nasflow.data.prepare import MODEL_TYPES, prepare_corpus
from nasflow.data.recipes import (
    DEFAULT_CACHE,
    DEFAULT_HOLDOUT_EVERY,
    RECIPES,
    CleanSettings,
    fetch_wmt,
    optional_sources,
)

logger = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    """Add the `data` command group with its `prepare` and `fetch-wmt` subcommands."""
    data = subparsers.add_parser("data", help="prepare translation corpora")
    commands = data.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")
    prepare = commands.add_parser(
        "prepare",
        help="train a joint SentencePiece model and encode a corpus",
        description="Resolve, check and encode a parallel corpus into a prepared data folder.",
    )
    add = prepare.add_argument
    add("--corpus", required=True, choices=sorted(CORPORA))
    add("--source-lang", required=True)
    add("--target-lang", required=True)
    add("--train", required=True, metavar="SPLIT", help="corpus split for training")
    add("--valid", metavar="SPLIT", help="corpus split for validation")
    add("--test", metavar="SPLIT", help="corpus split for testing")
    add("--vocab-size", type=int, default=8000)
    add("--character-coverage", type=float, default=1.0)
    add("--model-type", default="bpe", choices=MODEL_TYPES)
    add("--source", default="auto", choices=SOURCES)
    add("--local-dir", help="folder with {split}.{lang}[.gz] files")
    add_flag(
        prepare,
        "--cache",
        "--cache-dir",
        dest="cache_dir",
        default="resources/corpora",
        help="download cache folder (default resources/corpora)",
    )
    add("--url-template", help="override the download URL ({split}, {lang}, {name}, {path})")
    add("--seed", type=int, default=1)
    add("--threads", type=int, default=1)
    add("--out", required=True, help="output folder")
    prepare.set_defaults(func=run_prepare)
    _register_fetch(commands)


def _register_fetch(commands: Any) -> None:
    defaults = CleanSettings()
    fetch = commands.add_parser(
        "fetch-wmt",
        help="download and clean a WMT training corpus",
        description="Download the statmt.org archives of a WMT training corpus, extract, split "
        "and clean it into {split}.{lang}.gz files plus recipe.json (nasflow.data.recipes).",
    )
    add = fetch.add_argument
    add("--corpus", required=True, choices=sorted(RECIPES))
    add("--out", required=True, help="output folder (data.local_dir)")
    add("--cache", default=DEFAULT_CACHE, help=f"archive cache (default {DEFAULT_CACHE})")
    add("--url-base", help="replace everything before the file name of each archive URL")
    add(
        "--max-tokens",
        type=int,
        default=defaults.max_tokens,
        help="longest side in tokens (%(default)s)",
    )
    add(
        "--ratio",
        type=float,
        default=defaults.ratio,
        help="largest token-count ratio (%(default)s)",
    )
    add("--no-dedupe", dest="dedupe", action="store_false", help="keep exact duplicate pairs")
    add(
        "--holdout-every",
        type=int,
        metavar="N",
        help=f"valid = every N-th pair, for corpora with a held-out valid split "
        f"(default {DEFAULT_HOLDOUT_EVERY})",
    )
    add(
        "--include",
        action="append",
        default=[],
        choices=optional_sources(),
        metavar="SOURCE",
        help=f"also take an optional source ({', '.join(optional_sources())})",
    )
    fetch.set_defaults(func=run_fetch)


def run_fetch(args: argparse.Namespace) -> int:
    """Run `nasflow data fetch-wmt` and print one summary line per split."""
    settings = CleanSettings(max_tokens=args.max_tokens, ratio=args.ratio, dedupe=args.dedupe)
    manifest = fetch_wmt(
        args.corpus,
        args.out,
        cache_dir=args.cache,
        url_base=args.url_base,
        settings=settings,
        holdout_every=args.holdout_every,
        include=args.include,
        progress=logger.info,
    )
    for name, split in manifest["splits"].items():
        counts = split["counts"]
        dropped = ", ".join(f"{f['filter']} {f['dropped']}" for f in split["filters"])
        print(f"{name}: {counts['output']} of {counts['input']} pairs kept ({dropped})")
    print(f"{manifest['corpus']} -> {args.out}")
    return 0


def run_prepare(args: argparse.Namespace) -> int:
    """Run `nasflow data prepare` and print one summary line per split."""
    roles = {"train": args.train, "valid": args.valid, "test": args.test}
    manifest = prepare_corpus(
        corpus=args.corpus,
        source_lang=args.source_lang,
        target_lang=args.target_lang,
        splits={role: split for role, split in roles.items() if split},
        out_dir=args.out,
        source=args.source,
        local_dir=args.local_dir,
        cache_dir=args.cache_dir,
        vocab_size=args.vocab_size,
        character_coverage=args.character_coverage,
        model_type=args.model_type,
        seed=args.seed,
        threads=args.threads,
        url_template=args.url_template,
    )
    for role, entry in manifest["splits"].items():
        print(
            f"{role}: {manifest['corpus']} {entry['split']} {args.source_lang}-{args.target_lang} "
            f"{entry['lines']} lines, {entry['source']['tokens']}+{entry['target']['tokens']} "
            f"tokens ({entry['source']['origin']})"
        )
    print(f"vocab: {manifest['vocab_size']} pieces -> {args.out}")
    return 0

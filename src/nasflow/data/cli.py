"""`nasflow data ...` subcommands."""

from __future__ import annotations

import argparse
from typing import Any

from nasflow.data.corpora import CORPORA, SOURCES
from nasflow.data.prepare import MODEL_TYPES, prepare_corpus


def register(subparsers: Any) -> None:
    """Add the `data` command group with its `prepare` subcommand."""
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
    add("--cache-dir", default="resources/corpora")
    add("--url-template", help="override the download URL ({split}, {lang}, {name}, {path})")
    add("--seed", type=int, default=1)
    add("--threads", type=int, default=1)
    add("--out", required=True, help="output folder")
    prepare.set_defaults(func=run_prepare)


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

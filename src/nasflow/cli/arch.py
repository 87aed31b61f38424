"""`nasflow arch train|score` and `nasflow translate`: one architecture trained from scratch,
scored (loss and BLEU), or used to translate raw text."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from nasflow.config.options import (
    BASE_SECTIONS,
    add_config_options,
    declare_config_sections,
    read_config,
)
from nasflow.config.schema import schema_defaults
from nasflow.core.errors import ConfigError
from nasflow.core.flags import add_flag
from nasflow.core.io import write_json_atomic
from nasflow.space.hat import parse_arch
from nasflow.train.job import add_training_options, train_job

logger = logging.getLogger(__name__)


def _cmd_arch_train(args: argparse.Namespace) -> int:
    return train_job(args, "train")


def _cmd_arch_score(args: argparse.Namespace) -> int:
    import torch

    from nasflow.core.device import resolve_device, resolve_precision
    from nasflow.evaluate.score import score_model
    from nasflow.model.checkpoint import load_model

    config = read_config(args)
    torch.set_num_threads(int(config["threads"]))
    device = resolve_device(args.device or config["train"]["device"])
    dtype = resolve_precision(config["train"]["precision"], device)
    model, meta = load_model(args.model, device)
    if args.arch:
        model.set_arch(parse_arch(args.arch, model.space.name))
    elif model.is_supernet:
        raise ConfigError(f"{args.model}: a supernet needs --arch to say which subnet to score")
    decode = config["evaluate"]
    scores = score_model(
        model,
        args.data,
        roles=tuple(args.roles.split(",")),
        beam=decode["beam"],
        lenpen=decode["lenpen"],
        max_len_a=decode["max_len_a"],
        max_len_b=decode["max_len_b"],
        batch_sentences=decode["batch_sentences"],
        max_tokens=config["train"]["max_tokens"],
        label_smoothing=config["train"]["label_smoothing"],
        device=device,
        dtype=dtype,
        hypotheses_dir=args.hypotheses,
    )
    scores["model"] = {
        "path": str(args.model),
        "training": {k: meta.get(k) for k in ("mode", "updates", "train_seconds", "wps", "valid")},
    }
    write_json_atomic(args.out, scores)
    summary = {role: scores[role]["bleu"] for role in args.roles.split(",") if role in scores}
    logger.info(f"{args.out}: BLEU {summary}")
    return 0


def _cmd_translate(args: argparse.Namespace) -> int:
    import torch

    from nasflow.core.device import resolve_device
    from nasflow.core.io import read_lines, write_text_atomic
    from nasflow.evaluate.translate import translate_text
    from nasflow.model.checkpoint import load_model
    from nasflow.space.hat import parse_arch

    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    model, _ = load_model(args.model, device)
    if args.arch:
        model.set_arch(parse_arch(args.arch, model.space.name))
    elif model.is_supernet:
        raise ConfigError(f"{args.model}: a supernet needs --arch to say which subnet translates")
    spm_path = args.data / "spm.model"
    if not spm_path.is_file():
        raise ConfigError(f"{spm_path}: SentencePiece model not found (is --data prepared?)")
    lines = sys.stdin.read().splitlines() if args.input == "-" else read_lines(args.input)
    outputs = translate_text(
        model,
        lines,
        spm_path,
        beam=args.beam,
        lenpen=args.lenpen,
        max_len_a=args.max_len_a,
        max_len_b=args.max_len_b,
        batch_sentences=args.batch_sentences,
        device=device,
    )
    text = "".join(line + "\n" for line in outputs)
    if args.output == "-":
        sys.stdout.write(text)
    else:
        write_text_atomic(args.output, text)
    return 0


# The config sections each command reads (what the rules pass as --config-json).
TRAIN_SECTIONS = (*BASE_SECTIONS, "train")
SCORE_SECTIONS = (*BASE_SECTIONS, "train", "evaluate")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `arch train`, `arch score` and `translate`."""
    arch = subparsers.add_parser("arch", help="train or score one architecture")
    sub = arch.add_subparsers(dest="arch_command", required=True, metavar="SUBCOMMAND")
    train = add_training_options(sub, "train", "train one architecture from scratch", True)
    declare_config_sections(train, TRAIN_SECTIONS)
    train.set_defaults(func=_cmd_arch_train)
    score = sub.add_parser(
        "score", help="validation loss and BLEU of a trained model (or a supernet subnet)"
    )
    add_config_options(score, sections=SCORE_SECTIONS)
    score.add_argument("--model", type=Path, required=True, help="model (.pt)")
    score.add_argument("--arch", help="subnet to score when --model is a supernet")
    score.add_argument("--data", type=Path, required=True, help="prepared data folder")
    score.add_argument("--roles", default="valid,test", help="comma-separated roles")
    score.add_argument("--out", type=Path, required=True, help="scores JSON")
    score.add_argument("--hypotheses", type=Path, help="folder for {role}.hyp translations")
    score.add_argument("--device", help="override the config's device")
    score.set_defaults(func=_cmd_arch_score)

    parser = subparsers.add_parser(
        "translate",
        help="translate raw text with a trained model",
        description="Translate one sentence per line with beam search.",
    )
    add = parser.add_argument
    add("--model", type=Path, required=True, help="trained model (.pt)")
    add("--data", type=Path, required=True, help="prepared data folder (for spm.model)")
    add("--arch", help="subnet to use when --model is a supernet (JSON text or file)")
    add("--input", default="-", help="input text file (.gz allowed), - for stdin")
    add_flag(
        parser, "--out", "--output", dest="output", default="-", help="output file, - for stdout"
    )
    decode = schema_defaults("evaluate")  # the workflow's decoding (HAT: beam 4, lenpen 0.6)
    add("--beam", type=int, default=decode["beam"])
    add("--lenpen", type=float, default=decode["lenpen"])
    add("--max-len-a", type=float, default=decode["max_len_a"], help="max length a * src + b")
    add("--max-len-b", type=int, default=decode["max_len_b"])
    add("--batch-sentences", type=int, default=decode["batch_sentences"])
    add("--device", default="auto", help="auto, cpu or cuda")
    add("--threads", type=int, default=2, help="CPU threads")
    parser.set_defaults(func=_cmd_translate)

"""`nasflow translate`: translate raw text with a trained model (beam search)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nasflow.core.errors import ConfigError


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


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `nasflow translate`."""
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
    add("--output", default="-", help="output file, - for stdout")
    add("--beam", type=int, default=4)
    add("--lenpen", type=float, default=0.6)
    add("--max-len-a", type=float, default=1.2)
    add("--max-len-b", type=int, default=10)
    add("--batch-sentences", type=int, default=64)
    add("--device", default="auto", help="auto, cpu or cuda")
    add("--threads", type=int, default=2, help="CPU threads")
    parser.set_defaults(func=_cmd_translate)

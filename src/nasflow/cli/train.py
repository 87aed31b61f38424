"""`nasflow supernet train`, `nasflow arch train` and `nasflow arch score`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from nasflow.config.options import add_config_options, read_config
from nasflow.config.resolve import Config
from nasflow.core.errors import ConfigError
from nasflow.core.io import write_json_atomic
from nasflow.space.hat import parse_arch


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _settings_for(config: Config, section: str, device: str | None) -> Any:
    from nasflow.train.settings import TrainSettings

    settings = TrainSettings.from_config(config, section)
    if device:
        settings = TrainSettings.from_mapping({**settings.to_dict(), "device": device})
    return settings


def _train(args: argparse.Namespace, section: str) -> int:
    import torch

    from nasflow.model.supertransformer import ModelConfig
    from nasflow.train.loop import Trainer

    config = read_config(args)
    torch.set_num_threads(int(config["threads"]))
    settings = _settings_for(config, section, args.device)
    arch = parse_arch(args.arch, config["space"]) if section == "train" else None
    trainer = Trainer(
        args.data,
        settings,
        space=config["space"],
        model_config=ModelConfig.from_mapping(config.get("model")),
        state_dir=args.state_dir,
        arch=arch,
        progress=not args.no_progress,
    )
    if args.fresh:
        trainer.state.clear()
    result = trainer.run(args.out, args.curve, log=_log)
    _log(
        f"done: {result.updates} updates in {result.train_seconds:.1f} s "
        f"({result.wps:.0f} target tokens/s), valid {result.valid}"
    )
    return 0


def _cmd_supernet_train(args: argparse.Namespace) -> int:
    return _train(args, "supernet")


def _cmd_arch_train(args: argparse.Namespace) -> int:
    return _train(args, "train")


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
    _log(f"{args.out}: BLEU {summary}")
    return 0


def _cmd_supernet_quality(args: argparse.Namespace) -> int:
    import time

    import torch

    from nasflow.core.device import environment
    from nasflow.predictors.supernet import SupernetPredictor
    from nasflow.predictors.supernet_quality import supernet_quality
    from nasflow.tfs.format import read_tfs_scores

    config = read_config(args)
    torch.set_num_threads(int(config["threads"]))
    records = read_tfs_scores(args.scores)
    evaluate, train = config["evaluate"], config["train"]
    started = time.perf_counter()
    predictor = SupernetPredictor.from_file(
        args.model,
        args.data,
        device=args.device or train["device"],
        precision=train["precision"],
        metric=evaluate["predictor_metric"],
        valid_sentences=evaluate["valid_sentences"],
        max_tokens=train["max_tokens"],
        label_smoothing=train["label_smoothing"],
        beam=evaluate["beam"],
        lenpen=evaluate["lenpen"],
        max_len_a=evaluate["max_len_a"],
        max_len_b=evaluate["max_len_b"],
        batch_sentences=evaluate["batch_sentences"],
    )
    summary = supernet_quality(predictor, records)
    summary["seconds_per_arch"] = round(predictor.seconds_per_arch, 4)
    summary["total_seconds"] = round(time.perf_counter() - started, 3)
    summary["environment"] = environment(predictor.device, predictor.dtype)
    write_json_atomic(args.out, summary)
    _log(
        f"{args.out}: {summary['predictor']} over {summary['architectures']} architectures, "
        f"Kendall tau vs valid BLEU {summary['kendall_valid_bleu']}"
    )
    return 0


def _training_parser(sub: Any, name: str, text: str, with_arch: bool) -> argparse.ArgumentParser:
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
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `supernet train`, `arch train` and `arch score`."""
    supernet = subparsers.add_parser("supernet", help="train the SuperTransformer")
    sub = supernet.add_subparsers(dest="supernet_command", required=True, metavar="SUBCOMMAND")
    _training_parser(
        sub, "train", "train the weight-sharing SuperTransformer (SPOS or sandwich)", False
    ).set_defaults(func=_cmd_supernet_train)
    quality = sub.add_parser(
        "quality",
        help="Kendall tau / MAE of the supernet as a predictor of from-scratch BLEU",
    )
    add_config_options(quality)
    quality.add_argument("--model", type=Path, required=True, help="trained supernet (.pt)")
    quality.add_argument("--data", type=Path, required=True, help="prepared data folder")
    quality.add_argument(
        "--scores", type=Path, nargs="+", required=True, help="score.json of from-scratch runs"
    )
    quality.add_argument("--out", type=Path, required=True, help="quality JSON")
    quality.add_argument("--device", help="override the config's device")
    quality.set_defaults(func=_cmd_supernet_quality)

    arch = subparsers.add_parser("arch", help="train or score one architecture")
    sub = arch.add_subparsers(dest="arch_command", required=True, metavar="SUBCOMMAND")
    _training_parser(sub, "train", "train one architecture from scratch", True).set_defaults(
        func=_cmd_arch_train
    )
    score = sub.add_parser(
        "score", help="validation loss and BLEU of a trained model (or a supernet subnet)"
    )
    add_config_options(score)
    score.add_argument("--model", type=Path, required=True, help="model (.pt)")
    score.add_argument("--arch", help="subnet to score when --model is a supernet")
    score.add_argument("--data", type=Path, required=True, help="prepared data folder")
    score.add_argument("--roles", default="valid,test", help="comma-separated roles")
    score.add_argument("--out", type=Path, required=True, help="scores JSON")
    score.add_argument("--hypotheses", type=Path, help="folder for {role}.hyp translations")
    score.add_argument("--device", help="override the config's device")
    score.set_defaults(func=_cmd_arch_score)

"""`nasflow latency train-predictor`: fit HAT's latency MLP on a measured latency dataset."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from nasflow.config import parse_json_object
from nasflow.errors import ConfigError

# setting flags: each argparse destination is the PredictorSettings field it overrides
_OVERRIDES = ("steps", "lr", "hidden_dim", "hidden_layers", "batch_size", "seed", "target")


def settings_mapping(args: argparse.Namespace) -> dict[str, Any]:
    """`--settings-json` overlaid with the explicit setting flags."""
    values: dict[str, Any] = {}
    if args.settings_json:
        values = parse_json_object(args.settings_json, "--settings-json")
    for name in _OVERRIDES:
        value = getattr(args, name)
        if value is not None:
            values[name] = value
    return values


def _cmd_train_predictor(args: argparse.Namespace) -> int:
    import torch

    from nasflow.efficiency.latency_predictor import PredictorSettings, train_latency_predictor

    if args.threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {args.threads}")
    settings = PredictorSettings.from_mapping(settings_mapping(args))
    torch.set_num_threads(args.threads)
    report = train_latency_predictor(args.dataset, args.space, settings, args.out)
    test = report["test"]
    tau = "n/a" if test["kendall"] is None else f"{test['kendall']:.3f}"
    print(
        f"latency predictor ({report['target']}, space {report['space']!r}): test relative MAE "
        f"{test['rel_mae']:.2%}, Kendall {tau} on {test['n']} architectures "
        f"({report['train_seconds']:.1f} s training); wrote {args.out}"
    )
    return 0


def register(latency_subparsers: argparse._SubParsersAction) -> None:
    """Add `train-predictor` to the `nasflow latency` subcommands."""
    parser = latency_subparsers.add_parser(
        "train-predictor", help="train HAT's latency predictor (MLP) on a latency dataset CSV"
    )
    parser.add_argument("--dataset", type=Path, required=True, help="latency dataset CSV")
    parser.add_argument("--space", required=True, help="search space of the architectures")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--hidden-dim", type=int)
    parser.add_argument("--hidden-layers", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--target", choices=("total_ms", "encoder_ms", "decoder_ms"))
    parser.add_argument(
        "--settings-json", help="JSON object of predictor settings (flags override it)"
    )
    parser.set_defaults(func=_cmd_train_predictor)

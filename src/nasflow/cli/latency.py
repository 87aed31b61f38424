"""`nasflow latency measure|dataset|train-predictor` and `nasflow export-onnx`."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from nasflow.config.options import (
    BASE_SECTIONS,
    add_config_options,
    config_given,
    read_config,
)
from nasflow.config.resolve import Config, parse_json_object
from nasflow.core.errors import ConfigError
from nasflow.core.flags import add_flag
from nasflow.core.io import write_json_atomic
from nasflow.efficiency.robust import PROTOCOLS
from nasflow.space.hat import Arch, parse_arch

logger = logging.getLogger(__name__)


def target_settings(config: Config, target: str) -> dict[str, Any]:
    """The config's `latency.targets[target]` (device, backend, threads), or a clear error;
    its `slurm` placement is the workflow's, not the measurement's."""
    targets = config["latency"]["targets"]
    if target not in targets:
        raise ConfigError(
            f"config key latency.targets has no target {target!r} (known: {sorted(targets)})"
        )
    return {key: value for key, value in targets[target].items() if key != "slurm"}


def dataset_settings(config: Config, target: str, overrides: dict[str, Any]) -> Any:
    """`DatasetSettings` from the experiment config, one target and command-line overrides."""
    from nasflow.efficiency.latency_dataset import DatasetSettings

    latency = config["latency"]
    values: dict[str, Any] = {
        "space": config["space"],
        "size": latency["dataset_size"],
        "seed": config["seed"],
        "sampling": latency["sampling"],
        "vocab_size": config["data"]["vocab_size"],
        "length": latency["length"],
        "beam": latency["beam"],
        "warmup": latency["warmup"],
        "runs": latency["runs"],
        "passes": latency["passes"],
        "drift_correction": latency["drift_correction"],
        "protocol": latency["protocol"],
        "robust": latency["robust"],
        **target_settings(config, target),
    }
    values.update({key: value for key, value in overrides.items() if value is not None})
    return DatasetSettings(**values)


def _cmd_dataset(args: argparse.Namespace) -> int:
    from nasflow.core.logs import progress
    from nasflow.efficiency.latency_dataset import collect_latency_dataset

    config = read_config(args)
    overrides = {
        "size": args.size,
        "backend": args.backend,
        "threads": args.threads,
        "runs": args.runs,
        "passes": args.passes,
        "device": args.device,
        "protocol": args.protocol,
    }
    settings = dataset_settings(config, args.target, overrides)
    state = args.state or args.out.parent / "state"
    with progress(settings.size, "latency dataset", unit="arch", log=logger) as bar:
        frame = collect_latency_dataset(
            settings, args.out, state, fresh=args.fresh, progress=bar.set_progress
        )
    total = frame["total_ms"]
    logger.info(
        f"{len(frame)} architectures on {settings.device}/{settings.backend} "
        f"({settings.threads} threads, {settings.protocol} protocol, "
        f"{int(frame['retries'].sum())} re-measurements): "
        f"{total.min():.2f}-{total.max():.2f} ms -> {args.out}"
    )
    return 0


def _load_for_measure(args: argparse.Namespace, config: Config) -> tuple[Any, Arch]:
    """The model to time and its arch: a checkpoint, or random weights of `--arch`."""
    import torch

    from nasflow.model import SuperTransformer
    from nasflow.model.checkpoint import load_model
    from nasflow.space.hat import get_space

    device = torch.device(args.device or "cpu")
    if args.model is not None:
        model, _ = load_model(args.model, device)
        if model.is_supernet:
            if not args.arch:
                raise ConfigError(f"--model {args.model} is a supernet: pass --arch")
            model.set_arch(parse_arch(args.arch, model.space.name))
        elif args.arch:
            model.set_arch(parse_arch(args.arch, model.space.name))
        assert model.arch is not None
        return model, model.arch
    space = get_space(config["space"])
    if args.arch == "largest" or args.arch is None:
        arch = space.largest()
    elif args.arch == "smallest":
        arch = space.smallest()
    else:
        arch = parse_arch(args.arch, space.name)
    model = SuperTransformer(space, config["data"]["vocab_size"], layout=arch).to(device)
    return model, arch


def _cmd_measure(args: argparse.Namespace) -> int:
    import json
    import tempfile

    import torch

    from nasflow.efficiency.latency_dataset import measure_like_dataset
    from nasflow.efficiency.robust import pinned

    config = read_config(args)
    overrides = {
        "backend": args.backend,
        "threads": args.threads,
        "runs": args.runs,
        "device": args.device,
        "protocol": args.protocol,
    }
    # The latency dataset's settings object of this target: the same protocol as its labels.
    settings = dataset_settings(config, args.target, overrides)
    args.device = settings.device
    torch.set_num_threads(settings.threads)
    pin = settings.protocol == "robust" and settings.robust.pin
    meta = None
    if args.dataset_meta is not None:
        try:
            meta = json.loads(Path(args.dataset_meta).read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise ConfigError(
                f"{args.dataset_meta}: cannot read the dataset meta ({error})"
            ) from None
    with pinned(settings.threads, pin) as cores, tempfile.TemporaryDirectory() as scratch:
        model, arch = _load_for_measure(args, config)
        result, drift = measure_like_dataset(model, settings, Path(scratch), meta)
    record = {
        **result.to_dict(),
        **drift,
        "protocol": {**settings.protocol_record(cores), **result.protocol},
        "arch": arch.to_dict(),
        "target": args.target,
    }
    predicted = ""
    if args.predictor is not None:
        from nasflow.predictors.latency import LatencyPredictor

        predictor = LatencyPredictor.from_file(args.predictor)
        record["predicted_ms"] = float(predictor.predict_ms([arch])[0])
        record["predicted_target"] = predictor.target
        record["predictor"] = str(args.predictor)
        predicted = f" (predicted {record['predicted_ms']:.2f} ms)"
    if args.out:
        write_json_atomic(args.out, record)
    logger.info(
        f"{arch.id} {settings.backend} ({settings.protocol} protocol): encoder "
        f"{result.encoder_ms:.2f} ± {result.encoder_std_ms:.2f} ms, decoder "
        f"{result.decoder_ms:.2f} ± {result.decoder_std_ms:.2f} ms, "
        f"total {result.total_ms:.2f} ms{predicted}"
    )
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    import torch

    from nasflow.efficiency.onnx_export import export_onnx, verify_export
    from nasflow.model.checkpoint import load_model

    torch.set_num_threads(args.threads)
    model, _ = load_model(args.model, torch.device("cpu"))
    if args.arch:
        model.set_arch(parse_arch(args.arch, model.space.name))
    elif model.is_supernet:
        raise ConfigError(f"--model {args.model} is a supernet: pass --arch to export one subnet")
    exported = export_onnx(model, args.out, meta={"source_model": str(args.model)})
    difference = verify_export(model, exported)
    if difference > args.tolerance:
        raise ConfigError(
            f"ONNX Runtime and PyTorch disagree by {difference:.2e} (> {args.tolerance:g}) "
            f"for {args.model}"
        )
    logger.info(
        f"exported {exported.meta['arch_id']} to {args.out} (max |ORT - torch| {difference:.1e})"
    )
    return 0


# The config sections each command reads (what the rules pass as --config-json).
MEASURE_SECTIONS = (*BASE_SECTIONS, "latency", "data")
PREDICTOR_SECTIONS = ("space", "latency.predictor")

# setting flags: each argparse destination is the PredictorSettings field it overrides
_OVERRIDES = ("steps", "lr", "hidden_dim", "hidden_layers", "batch_size", "seed", "target")


def settings_mapping(
    args: argparse.Namespace, config: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The config's `latency.predictor`, overlaid with `--settings-json`, then with the
    explicit setting flags."""
    values: dict[str, Any] = {}
    if config is not None:
        values = dict(config.get("latency", {}).get("predictor", {}))
    if args.settings_json:
        values.update(parse_json_object(args.settings_json, "--settings-json"))
    for name in _OVERRIDES:
        value = getattr(args, name)
        if value is not None:
            values[name] = value
    return values


def _cmd_train_predictor(args: argparse.Namespace) -> int:
    import torch

    from nasflow.predictors.latency import PredictorSettings, train_latency_predictor
    from nasflow.space.hat import get_space

    if args.threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {args.threads}")
    # The config is read only when given (without it: the settings' own defaults).
    config = read_config(args) if config_given(args) else None
    space = args.space or (config or {}).get("space")
    if space is None:
        raise ConfigError("pass --space NAME (or a config with `space`: --config/--config-json)")
    space = get_space(space).name  # a space file: its name, as the architectures carry it
    settings = PredictorSettings.from_mapping(settings_mapping(args, config))
    torch.set_num_threads(args.threads)
    report = train_latency_predictor(args.dataset, space, settings, args.out)
    test = report["test"]
    tau = "n/a" if test["kendall"] is None else f"{test['kendall']:.3f}"
    print(
        f"latency predictor ({report['target']}, space {report['space']!r}): test relative MAE "
        f"{test['rel_mae']:.2%}, Kendall {tau} on {test['n']} architectures "
        f"({report['train_seconds']:.1f} s training); wrote {args.out}"
    )
    return 0


def _add_train_predictor(latency_subparsers: argparse._SubParsersAction) -> None:
    """Add `train-predictor` to the `nasflow latency` subcommands."""
    parser = latency_subparsers.add_parser(
        "train-predictor", help="train HAT's latency predictor (MLP) on a latency dataset CSV"
    )
    parser.add_argument("--dataset", type=Path, required=True, help="latency dataset CSV")
    add_config_options(parser, sections=PREDICTOR_SECTIONS)
    parser.add_argument(
        "--space",
        help="search space of the architectures: a name or a YAML/JSON space file "
        "(default: the config's `space`)",
    )
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
        "--settings-json",
        help="JSON object of predictor settings (over the config's latency.predictor; flags "
        "override it)",
    )
    parser.set_defaults(func=_cmd_train_predictor)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `latency measure|dataset|train-predictor` and `export-onnx`."""
    latency = subparsers.add_parser("latency", help="latency measurement, dataset and predictor")
    sub = latency.add_subparsers(dest="latency_command", required=True, metavar="SUBCOMMAND")

    measure = sub.add_parser(
        "measure", help="latency of one architecture (the target's latency dataset protocol)"
    )
    add_config_options(measure, sections=MEASURE_SECTIONS)
    measure.add_argument("--target", default="cpu", help="latency.targets entry (default cpu)")
    measure.add_argument("--model", type=Path, help="trained model (.pt); default random weights")
    measure.add_argument("--arch", help="arch JSON/file, or largest/smallest (default largest)")
    measure.add_argument("--backend", choices=["torch", "onnxruntime"], help="override")
    measure.add_argument("--threads", type=int, help="override the target's threads")
    measure.add_argument("--device", choices=["cpu", "cuda"], help="override the target's device")
    measure.add_argument("--runs", type=int, help="override latency.runs")
    measure.add_argument("--protocol", choices=PROTOCOLS, help="override latency.protocol")
    measure.add_argument(
        "--dataset-meta",
        type=Path,
        help="the target's dataset.json: with latency.drift_correction, scale to its reference",
    )
    measure.add_argument("--out", type=Path, help="write the result as JSON")
    measure.add_argument(
        "--predictor", type=Path, help="latency predictor (.pt): report its estimate beside"
    )
    measure.set_defaults(func=_cmd_measure)

    dataset = sub.add_parser("dataset", help="measure sampled architectures into a CSV")
    add_config_options(dataset, sections=MEASURE_SECTIONS)
    dataset.add_argument("--target", default="cpu", help="latency.targets entry (default cpu)")
    dataset.add_argument("--out", type=Path, required=True, help="dataset CSV")
    add_flag(
        dataset,
        "--state-dir",
        "--state",
        dest="state",
        type=Path,
        help="resumable state folder (default OUT/../state)",
    )
    dataset.add_argument("--fresh", action="store_true", help="discard rows measured before")
    add_flag(
        dataset,
        "--n",
        "--size",
        dest="size",
        type=int,
        help="architectures measured (override latency.dataset_size)",
    )
    dataset.add_argument("--backend", choices=["torch", "onnxruntime"], help="override")
    dataset.add_argument("--threads", type=int, help="override the target's threads")
    dataset.add_argument("--device", choices=["cpu", "cuda"], help="override the target's device")
    dataset.add_argument("--runs", type=int, help="override latency.runs")
    dataset.add_argument("--passes", type=int, help="override latency.passes")
    dataset.add_argument("--protocol", choices=PROTOCOLS, help="override latency.protocol")
    dataset.set_defaults(func=_cmd_dataset)

    _add_train_predictor(sub)

    export = subparsers.add_parser(
        "export-onnx", help="export a trained model as ONNX encoder and decoder-step graphs"
    )
    export.add_argument("--model", type=Path, required=True, help="trained model (.pt)")
    export.add_argument("--arch", help="subnet to export when --model is a supernet")
    export.add_argument("--out", type=Path, required=True, help="export folder")
    export.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    export.add_argument(
        "--tolerance", type=float, default=1e-3, help="max |ORT - torch| logit difference"
    )
    export.set_defaults(func=_cmd_export)

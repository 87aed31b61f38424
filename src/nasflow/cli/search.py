"""`nasflow search run` (one method, constraint and seed) and `nasflow search tables`."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from nasflow.config.options import BASE_SECTIONS, add_config_options, read_config
from nasflow.core.errors import DataError
from nasflow.core.flags import add_flag

logger = logging.getLogger(__name__)


def _cmd_run(args: argparse.Namespace) -> int:
    import time

    import torch

    from nasflow.core.io import write_text_atomic
    from nasflow.data.prepare import load_vocab_size
    from nasflow.search import runner
    from nasflow.search.evolution import run_search, write_outputs
    from nasflow.space.hat import get_space

    config = read_config(args)
    # --state-root: a state folder per settings read (keyed before anything reads the config).
    state_dir = (
        args.state_dir if args.state_root is None else runner.state_folder(args.state_root, config)
    )
    have = {
        "supernet": args.supernet,
        "calibration": args.calibration,
        "distill": args.distill,
        "supernet-mlp": args.supernet_mlp,
        "latency": args.latency_predictor,
    }
    plan = runner.plan_search(
        config,
        args.method,
        args.constraint,
        args.seed,
        have={k: v is not None for k, v in have.items()},
    )
    used = set(plan.files)
    files = runner.check_files(
        {
            "supernet": args.supernet if "supernet" in used else None,
            "distill": args.distill if "distill" in used else None,
            "supernet-mlp": args.supernet_mlp if "supernet-mlp" in used else None,
            "latency-predictor": args.latency_predictor,
        }
    )
    calibration = None
    if "calibration" in used:
        if not args.calibration.is_dir():
            raise DataError(f"--calibration {args.calibration}: TFS-Eval folder not found")
        files["calibration"] = args.calibration
        calibration = runner.Calibration(args.calibration_seed, args.calibration_demonstrations)
    vocab = load_vocab_size(args.data)
    torch.set_num_threads(int(config["threads"]))
    started = time.perf_counter()
    predictors = runner.load_predictors(plan, config, files, args.data, args.device, calibration)
    latency = (
        runner.load_latency(files["latency-predictor"], plan) if args.latency_predictor else None
    )
    logger.info(f"loaded {', '.join(predictors)} in {time.perf_counter() - started:.1f} s")
    # The models that shape the search (a latency model that only reports is not one of them).
    searched = {
        k: v
        for k, v in files.items()
        if k != "calibration" and (k != "latency-predictor" or plan.needs_latency)
    }
    result = run_search(
        get_space(plan.space),
        predictors,
        plan.schedule,
        runner.build_constraints(plan, vocab, latency if plan.needs_latency else None),
        plan.settings,
        state_dir,
        lambda row: logger.info(runner.progress_line(plan, row)),
        fresh=args.fresh,
        fingerprint_extra=runner.fingerprint_extra(
            searched, args.data, config, plan, calibration, args.calibration
        ),
        protocol=plan.protocol,
        valid_subset=plan.valid_subset,
    )
    extra = {
        "method": plan.method,
        "constraint": plan.constraint,
        "constraint_limits": plan.limits,
        "seed": plan.settings.seed,
        "space": plan.space,
        "schedule": plan.schedule.to_dict(),
        **runner.supernet_record(predictors),
        **runner.describe_arch(result.best_arch, vocab, latency),
    }
    if latency is not None:
        extra["latency_target"] = plan.latency_target
    result.scored = runner.add_predicted_latency(result.scored, latency)
    write_outputs(result, args.out_dir, extra)
    write_text_atomic(args.out_dir / "best_arch.json", result.best_arch.to_json() + "\n")
    for name, check in (result.valid_subset or {}).items():
        logger.info(runner.subset_line(name, check))
    resumed = f" (resumed after iteration {result.resumed_from})" if result.resumed_from else ""
    logger.info(
        f"{args.out_dir}: best {result.best_arch.id} score {result.best_score:.4f} "
        f"[{result.predictor}] after {result.timing['search_seconds']:.1f} s of search "
        f"({result.protocol} protocol){resumed}"
    )
    return 0


def _cmd_tables(args: argparse.Namespace) -> int:
    from nasflow.report.search_tables import write_tables

    paths = write_tables(
        args.runs,
        args.out_dir,
        hsnas_methods=args.hsnas_methods,
        bleu=args.bleu,
        log=logger.warning,
    )
    logger.info(f"{args.out_dir}: {', '.join(sorted(p.name for p in paths))}")
    return 0


# The config sections `search run` reads (the rule passes only its method and constraint).
RUN_SECTIONS = (*BASE_SECTIONS, "train", "evaluate", "latency", "search")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `nasflow search run` and `nasflow search tables`."""
    search = subparsers.add_parser("search", help="evolutionary architecture search (HAT, HS-NAS)")
    sub = search.add_subparsers(dest="search_command", required=True, metavar="SUBCOMMAND")

    run = sub.add_parser(
        "run",
        help="one search: a search.methods entry under a search.constraints entry, one seed",
    )
    add_config_options(run, sections=RUN_SECTIONS)
    run.add_argument("--method", required=True, help="search.methods entry (e.g. hat, hsnas)")
    run.add_argument("--constraint", required=True, help="search.constraints entry")
    run.add_argument("--seed", type=int, required=True, help="evolution seed")
    run.add_argument(
        "--supernet", type=Path, help="trained supernet (.pt), if the schedule uses it"
    )
    run.add_argument("--data", type=Path, required=True, help="prepared data folder")
    run.add_argument(
        "--distill", type=Path, help="LLM-Distill-PP MLP (.pt), if the schedule uses it"
    )
    run.add_argument(
        "--supernet-mlp",
        type=Path,
        help="MLP distilled from supernet scores (.pt; `distilled-hat`), if the schedule uses it",
    )
    run.add_argument(
        "--calibration",
        type=Path,
        metavar="TFS_EVAL_DIR",
        help="the experiment's TFS-Eval set, if the schedule uses supernet-calibrated",
    )
    run.add_argument(
        "--calibration-seed",
        type=int,
        default=123,
        help="split seed whose demonstrations calibrate the supernet (123)",
    )
    run.add_argument(
        "--calibration-demonstrations",
        type=int,
        metavar="K",
        help="the first K train architectures of that seed (default: all)",
    )
    run.add_argument(
        "--latency-predictor", type=Path, help="latency predictor model.pt (latency_ms constraints)"
    )
    add_flag(
        run,
        "--out",
        "--out-dir",
        dest="out_dir",
        type=Path,
        required=True,
        help="folder for the search outputs",
    )
    state = run.add_mutually_exclusive_group(required=True)
    state.add_argument("--state-dir", type=Path, help="resumable state (outside declared outputs)")
    state.add_argument(
        "--state-root",
        type=Path,
        help="or: a root of resumable states, one subfolder per fingerprint of the settings "
        "read (changed settings start afresh; what the rule passes)",
    )
    run.add_argument("--fresh", action="store_true", help="discard saved state first")
    run.add_argument("--device", help="override the config's device for the supernet")
    run.set_defaults(func=_cmd_run)

    tables = sub.add_parser("tables", help="results, Table 3/5/16 layouts and convergence plot")
    tables.add_argument(
        "--runs",
        type=Path,
        nargs="+",
        required=True,
        help="run folders .../{method}/{constraint}/seed{S}",
    )
    add_flag(
        tables,
        "--out",
        "--out-dir",
        dest="out_dir",
        type=Path,
        required=True,
        help="folder for tables and plot",
    )
    tables.add_argument(
        "--hsnas-methods", nargs="+", help="Table 5 rows (default: methods with a distill segment)"
    )
    tables.add_argument(
        "--bleu",
        choices=["sacrebleu", "tokenized"],
        default="sacrebleu",
        help="test BLEU shown in the tables (default sacrebleu)",
    )
    tables.set_defaults(func=_cmd_tables)

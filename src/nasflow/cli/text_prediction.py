"""`nasflow text-prediction data | pretrain | finetune | suggest | latency | tables | inner-ratio`.

The text-prediction case study's quality side, one subcommand per step of the stage (the
`text_prediction` rules call them in this order): the experiment's vocabulary and encoded
corpora; pretraining of the baseline and of the case study's candidates; finetuning of the
baseline and of the best candidate; the suggestion engine's greedy continuations on the dev and
test splits; ONNX Runtime latency of the trained checkpoints; threshold tuning and Tables 2 and 3;
and the optional d_inner/d_model analysis.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from nasflow.core.errors import DataError
from nasflow.core.flags import add_flag

logger = logging.getLogger(__name__)

SECTIONS = ("experiment", "seed", "threads", "text_prediction")


def _config(args: argparse.Namespace) -> dict[str, Any]:
    from nasflow.config.options import read_config

    return dict(read_config(args))


def _data(args: argparse.Namespace) -> Any:
    from nasflow.text_prediction.corpus import load_data

    return load_data(args.data)


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise DataError(f"{path}: unreadable {what} ({error})") from None


def _cmd_data(args: argparse.Namespace) -> int:
    from nasflow.text_prediction.corpus import build_data
    from nasflow.text_prediction.sources import corpora

    config = _config(args)
    section = config["text_prediction"]
    # The config names the corpora only where the options leave them out (the rule passes both).
    if args.pretrain_corpus is None or args.finetune_corpus is None:
        pretrain, finetune = corpora(section, config.get("lts") or {})
    data = build_data(
        args.pretrain_corpus or pretrain,
        args.finetune_corpus or finetune,
        args.out_dir,
        section["vocab_size"],
    )
    logger.info(f"{args.out_dir}: {data.vocab_size}-piece vocabulary; {data.describe()}")
    return 0


def _cmd_pretrain(args: argparse.Namespace) -> int:
    from nasflow.text_prediction.models import group_specs
    from nasflow.text_prediction.training import pretrain

    config = _config(args)
    specs = group_specs(args.group, config["lts"], args.case_study)
    logger.info(f"pretraining {len(specs)} model(s): {', '.join(s.name for s in specs)}")
    pretrain(
        specs,
        _data(args),
        config["text_prediction"],
        int(config["seed"]),
        args.out_dir,
        args.state_root,
        threads=int(config["threads"]),
        progress=logger.info,
    )
    return 0


def _cmd_finetune(args: argparse.Namespace) -> int:
    from nasflow.text_prediction.models import read_models
    from nasflow.text_prediction.training import finetune

    config = _config(args)
    finetune(
        read_models(args.pretrained),
        _data(args),
        config["text_prediction"],
        int(config["seed"]),
        args.out_dir,
        args.state_dir,
        threads=int(config["threads"]),
        progress=logger.info,
    )
    return 0


def _cmd_suggest(args: argparse.Namespace) -> int:
    import torch

    from nasflow.lts.lm_train import load_checkpoint
    from nasflow.text_prediction.suggest import collect

    config = _config(args)
    suggest = config["text_prediction"]["suggest"]
    torch.set_num_threads(int(config["threads"]))
    finetuned = _read_json(args.finetuned, "finetune summary")
    model, _ = load_checkpoint(finetuned["checkpoint"])
    model.eval()
    data = _data(args)
    for split, out in (("valid", args.dev), ("test", args.test)):
        records = collect(
            model,
            data.processor,
            data.eos_id,
            data.sentences("finetune", split),
            max_tokens=suggest["max_tokens"],
            max_sentences=suggest["max_sentences"],
        )
        records.save(out)
        logger.info(
            f"{out}: {finetuned['name']}, {len(records)} positions in {records.sentences} sentences"
        )
    return 0


def _cmd_latency(args: argparse.Namespace) -> int:
    from nasflow.core.io import atomic_path
    from nasflow.text_prediction.deploy import entries_of, measure_checkpoints
    from nasflow.text_prediction.models import read_models

    config = _config(args)
    data = _data(args)
    pretrained = [m for path in args.pretrained for m in read_models(path)]
    finetuned = [_read_json(path, "finetune summary") for path in args.finetuned]
    table = measure_checkpoints(
        entries_of(pretrained, finetuned, data),
        data,
        config["lts"],
        config["text_prediction"],
        progress=logger.info,
    )
    with atomic_path(args.out) as tmp:
        table.to_csv(tmp, index=False)
    return 0


def _cmd_tables(args: argparse.Namespace) -> int:
    import pandas as pd

    from nasflow.core.io import atomic_path, write_json_atomic, write_text_atomic
    from nasflow.report.text_prediction_tables import (
        table2_markdown,
        table3_markdown,
        tuning_markdown,
    )
    from nasflow.text_prediction.models import read_models
    from nasflow.text_prediction.results import compare

    config = _config(args)
    result = compare(
        config["text_prediction"],
        [m for path in args.pretrained for m in read_models(path)],
        {
            "baseline": _read_json(args.finetuned_baseline, "finetune summary"),
            "candidate": _read_json(args.finetuned_candidate, "finetune summary"),
        },
        {
            "baseline": (args.dev_baseline, args.test_baseline),
            "candidate": (args.dev_candidate, args.test_candidate),
        },
        pd.read_csv(args.latency),
    )
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, table in (
        ("table2", result.table2),
        ("table3", result.table3),
        ("tuning", result.grid),
    ):
        with atomic_path(out / f"{name}.csv") as tmp:
            table.to_csv(tmp, index=False)
    write_json_atomic(out / "tuning.json", result.tuning)
    markdown = "\n".join(
        (
            table2_markdown(result.table2, result.note2),
            table3_markdown(result.table3, result.names, result.note3),
            tuning_markdown(result.tuning, result.grid),
        )
    )
    write_text_atomic(out / "text_prediction.md", markdown)
    print(markdown, end="")
    return 0


def _cmd_inner_ratio(args: argparse.Namespace) -> int:
    from nasflow.core.io import atomic_path, write_text_atomic
    from nasflow.report.text_prediction_tables import inner_ratio_markdown
    from nasflow.text_prediction.inner_ratio import inner_ratio

    table = inner_ratio(
        _config(args), _data(args), args.out_dir, args.state_root, progress=logger.info
    )
    out = Path(args.out_dir)
    with atomic_path(out / "inner_ratio.csv") as tmp:
        table.to_csv(tmp, index=False)
    markdown = inner_ratio_markdown(table)
    write_text_atomic(out / "inner_ratio.md", markdown)
    print(markdown, end="")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `nasflow text-prediction {data,pretrain,finetune,suggest,latency,tables,inner-ratio}`."""
    from nasflow.config.options import add_config_options

    group = subparsers.add_parser(
        "text-prediction", help="the LTS case study's quality side: pretrain, finetune, suggest"
    )
    sub = group.add_subparsers(dest="text_prediction_command", required=True, metavar="STEP")
    data_help = "the folder of `nasflow text-prediction data`"

    data = sub.add_parser("data", help="build the vocabulary and encode both corpora")
    add_config_options(data, sections=(*SECTIONS, "lts.text", "lts.proxy_check"))
    data.add_argument("--pretrain-corpus", type=Path, help="default: text_prediction.corpus")
    data.add_argument(
        "--finetune-corpus", type=Path, help="default: text_prediction.finetune_corpus"
    )
    add_flag(data, "--out", "--out-dir", dest="out_dir", type=Path, required=True, help="folder")
    data.set_defaults(func=_cmd_data)

    pre = sub.add_parser("pretrain", help="pretrain the baseline or the case study's candidates")
    add_config_options(pre, sections=(*SECTIONS, "lts.baseline"))
    pre.add_argument("--data", type=Path, required=True, help=data_help)
    pre.add_argument("--group", choices=("baseline", "candidates"), required=True)
    pre.add_argument("--case-study", type=Path, help="case_study.csv (group candidates)")
    add_flag(
        pre,
        "--out",
        "--out-dir",
        dest="out_dir",
        type=Path,
        required=True,
        help="folder: models.json and one folder per model",
    )
    pre.add_argument("--state-root", type=Path, required=True, help="resumable state per model")
    pre.set_defaults(func=_cmd_pretrain)

    fine = sub.add_parser("finetune", help="finetune a group's model for sentence completion")
    add_config_options(fine, sections=SECTIONS)
    fine.add_argument("--data", type=Path, required=True, help=data_help)
    fine.add_argument("--pretrained", type=Path, required=True, help="the group's models.json")
    add_flag(fine, "--out", "--out-dir", dest="out_dir", type=Path, required=True, help="folder")
    fine.add_argument("--state-dir", type=Path, required=True, help="resumable training state")
    fine.set_defaults(func=_cmd_finetune)

    sug = sub.add_parser("suggest", help="the suggestion engine's continuations (dev and test)")
    add_config_options(sug, sections=SECTIONS)
    sug.add_argument("--data", type=Path, required=True, help=data_help)
    sug.add_argument("--finetuned", type=Path, required=True, help="finetune.json")
    sug.add_argument("--dev", type=Path, required=True, help="records of the dev (val) split")
    sug.add_argument("--test", type=Path, required=True, help="records of the test split")
    sug.set_defaults(func=_cmd_suggest)

    lat = sub.add_parser("latency", help="ONNX Runtime latency of the trained checkpoints")
    add_config_options(lat, sections=(*SECTIONS, "lts.measure"))
    lat.add_argument("--data", type=Path, required=True, help=data_help)
    lat.add_argument("--pretrained", type=Path, nargs="+", required=True, help="models.json files")
    lat.add_argument("--finetuned", type=Path, nargs="+", required=True, help="finetune.json files")
    lat.add_argument("--out", type=Path, required=True, help="latency CSV")
    lat.set_defaults(func=_cmd_latency)

    tab = sub.add_parser("tables", help="tune the thresholds; write Tables 2 and 3")
    add_config_options(tab, sections=SECTIONS)
    tab.add_argument("--pretrained", type=Path, nargs="+", required=True, help="models.json files")
    tab.add_argument("--finetuned-baseline", type=Path, required=True)
    tab.add_argument("--finetuned-candidate", type=Path, required=True)
    for who in ("baseline", "candidate"):
        for split in ("dev", "test"):
            tab.add_argument(f"--{split}-{who}", type=Path, required=True)
    tab.add_argument("--latency", type=Path, required=True, help="latency CSV")
    add_flag(tab, "--out", "--out-dir", dest="out_dir", type=Path, required=True, help="folder")
    tab.set_defaults(func=_cmd_tables)

    ratio = sub.add_parser("inner-ratio", help="d_inner/d_model < 2 vs >= 2 at equal parameters")
    add_config_options(ratio, sections=(*SECTIONS, "lts.baseline"))
    ratio.add_argument("--data", type=Path, required=True, help=data_help)
    add_flag(ratio, "--out", "--out-dir", dest="out_dir", type=Path, required=True, help="folder")
    ratio.add_argument("--state-root", type=Path, required=True)
    ratio.set_defaults(func=_cmd_inner_ratio)

"""TFS-Eval sets (llmas `train-test_seedarchs` layout) as one pandas table.

Layout: `{root}/{seed}/{task}/{train,test}.jsonl[.gz]`. Each record holds the from-scratch result
of one architecture (`scratch`; its `valid_BLEU` is the gold label) and, per supernet-based
predictor, that predictor's `valid_BLEU` for the architecture (reference §8), or a rank-only
`score` (e.g. a supernet's negated validation loss).

The released sets (WMT tasks, `hat-wmt` space) need nothing else. A set this workflow builds
(`nasflow tfs-eval build`) also has `{root}/tfs_eval.json` naming its space and describing each
task (vocabulary size, dataset, languages), read by `read_tfs_eval_info`.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nasflow.core.errors import DataError, NasflowError
from nasflow.core.io import iter_jsonl
from nasflow.efficiency.counts import count_embedding_params, count_params
from nasflow.space.hat import Arch, get_space

if TYPE_CHECKING:  # pandas is imported on use, keeping `nasflow` start-up fast
    import pandas as pd

TASK_VOCAB_SIZES: dict[str, int] = {
    "wmt14ende": 32768,
    "wmt14enfr": 44512,
    "wmt19ende": 49600,
}
"""Shared source/target vocabulary size of each released TFS-Eval task."""

ExamplePairs = tuple[list[str], list[str]]

INFO_FILE = "tfs_eval.json"
"""Description of a built TFS-Eval folder (space and tasks); absent in the released sets."""


@dataclass(frozen=True)
class TaskMeta:
    """One TFS-Eval task: its shared vocabulary size and what prompts say about it."""

    vocab_size: int
    dataset: str
    source_language: str
    target_language: str
    examples: str | None = None
    """JSONL of `{"source", "target"}` sentence pairs of the corpus's train split (relative to
    the folder) that prompts draw task examples from; None for the released sets (their pairs
    come from a named training corpus, else newstest2013: `nasflow.llm.examples`)."""


@dataclass(frozen=True)
class TfsEvalInfo:
    """The search space of a TFS-Eval folder and its tasks, in their canonical order."""

    space: str
    tasks: dict[str, TaskMeta]

    def to_dict(self) -> dict[str, Any]:
        return {"space": self.space, "tasks": {n: asdict(m) for n, m in self.tasks.items()}}


RELEASED = TfsEvalInfo(
    "hat-wmt",
    {
        "wmt14ende": TaskMeta(TASK_VOCAB_SIZES["wmt14ende"], "WMT'14", "English", "German"),
        "wmt14enfr": TaskMeta(TASK_VOCAB_SIZES["wmt14enfr"], "WMT'14", "English", "French"),
        "wmt19ende": TaskMeta(TASK_VOCAB_SIZES["wmt19ende"], "WMT'19", "English", "German"),
    },
)
"""The released llmas sets: `hat-wmt` archs on three WMT tasks."""

STORED_PREDICTORS: tuple[str, ...] = (
    "HAT",
    "Supernet (Sandwich)",
    "Layer-wise MoS",
    "Neuron-wise MoS",
)
"""The supernet-based predictors stored in the released records, in the paper's order."""

SPLITS: tuple[str, ...] = ("train", "test")

SCRATCH_KEYS: tuple[str, ...] = (
    "valid_BLEU",
    "test_BLEU",
    "arch_info",
    "num_parameters_without_embedding_weights",
    "num_embedding_parameters",
    "total_flops",
    "overall_latency",
)

COLUMNS: tuple[str, ...] = (
    "seed",
    "task",
    "vocab_size",
    "split",
    "arch_id",
    "arch",
    "gold",
    "test_bleu",
    "params_nonemb",
    "params_emb",
    "flops",
    "latency_ms",
)


def parse_task_list(text: str) -> list[str] | None:
    """A `--task` word: `all` (None: every task of the folder) or comma-separated distinct
    task names, in order; names are checked against the folder when it is read."""
    if text == "all":
        return None
    tasks = [t.strip() for t in text.split(",") if t.strip()]
    if not tasks or len(set(tasks)) != len(tasks):
        raise argparse.ArgumentTypeError(f"{text!r}: expected 'all' or distinct task names")
    return tasks


class TaskListAction(argparse.Action):
    """`--task T [T ...]`: task names as separate words (commas also split them), or `all`
    (None: every task of the folder); each word goes through `parse_task_list`."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: Any = None) -> None:
        if None in values and len(values) > 1:
            parser.error(f"{option_string}: 'all' cannot be combined with task names")
        tasks = None if None in values else [task for word in values for task in word]
        if tasks is not None and len(set(tasks)) != len(tasks):
            parser.error(f"{option_string} {' '.join(tasks)}: expected distinct task names")
        setattr(namespace, self.dest, tasks)


def add_task_option(parser: Any, **kwargs: Any) -> argparse.Action:
    """The `--task T [T ...]` option of the commands that read several tasks (`TaskListAction`);
    the value is a list of names, or None (`all` or not given: every task)."""
    kwargs.setdefault("metavar", "TASK")
    return parser.add_argument(
        "--task", nargs="+", type=parse_task_list, action=TaskListAction, **kwargs
    )


def read_tfs_eval_info(root: str | Path) -> TfsEvalInfo:
    """The folder's `tfs_eval.json` description, or `RELEASED` when it has none."""
    path = Path(root) / INFO_FILE
    if not path.is_file():
        return RELEASED
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        tasks = {
            str(name): TaskMeta(
                int(meta["vocab_size"]),
                str(meta["dataset"]),
                str(meta["source_language"]),
                str(meta["target_language"]),
                meta.get("examples"),
            )
            for name, meta in data["tasks"].items()
        }
        info = TfsEvalInfo(str(data["space"]), tasks)
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as e:
        raise DataError(f"{path}: not a TFS-Eval description ({e!r})") from None
    if not tasks:
        raise DataError(f"{path}: 'tasks' is empty")
    try:
        get_space(info.space)
    except NasflowError as error:
        raise DataError(f"{path}: {error}") from None
    return info


def read_task_examples(root: str | Path, info: TfsEvalInfo, task: str) -> ExamplePairs | None:
    """The task's example pool of a built folder (sources, targets), or None if it has none."""
    name = info.tasks[task].examples if task in info.tasks else None
    if name is None:
        return None
    path = Path(root) / name
    sources, targets = [], []
    for number, record in iter_jsonl(path):
        if not isinstance(record.get("source"), str) or not isinstance(record.get("target"), str):
            raise DataError(f"{path}:{number}: expected string 'source' and 'target'")
        sources.append(record["source"])
        targets.append(record["target"])
    return sources, targets


def read_tfs_eval(
    root: str | Path,
    tasks: Iterable[str] | None = None,
    seeds: Iterable[int] | None = None,
) -> pd.DataFrame:
    """One row per (seed, task, split, arch) of a TFS-Eval folder.

    Columns: `COLUMNS`, then one column per stored predictor block (named by its key, paper order
    first) holding that predictor's predicted valid BLEU (or rank-only score: such columns are
    listed in `frame.attrs["rank_only"]`). `tasks`/`seeds` default to every task and seed folder
    found. Stored parameter counts are checked against `count_params` and
    `count_embedding_params`; any disagreement is a `DataError` naming file and line.
    """
    root = Path(root)
    info = read_tfs_eval_info(root)
    seed_dirs = _seed_dirs(root, seeds)
    task_names = list(tasks) if tasks is not None else _discover_tasks(root, seed_dirs, info)
    for task in task_names:
        if task not in info.tasks:
            raise DataError(
                f"{root}: unknown TFS-Eval task {task!r}; known: {', '.join(info.tasks)}"
            )
    rows: list[dict[str, Any]] = []
    rank_only: set[str] = set()
    for seed, seed_dir in seed_dirs.items():
        for task in task_names:
            task_dir = seed_dir / task
            if not task_dir.is_dir():
                raise DataError(f"{seed_dir}: task folder {task!r} is missing")
            vocab = info.tasks[task].vocab_size
            for split in SPLITS:
                path = _split_file(task_dir, split)
                for row in _read_split(path, info.space, vocab, rank_only):
                    rows.append(
                        {"seed": seed, "task": task, "vocab_size": vocab, "split": split, **row}
                    )
    return _to_frame(rows, rank_only)


def unique_archs(table: pd.DataFrame, task: str) -> pd.DataFrame:
    """The distinct architectures of one task: its first row per `arch_id` (seeds share archs)."""
    return table[table["task"] == task].drop_duplicates("arch_id").reset_index(drop=True)


def _seed_dirs(root: Path, seeds: Iterable[int] | None) -> dict[int, Path]:
    """Seed folders (all-digit names) in ascending order, or exactly the requested ones."""
    if not root.is_dir():
        raise DataError(f"{root}: TFS-Eval folder not found")
    found = {int(p.name): p for p in root.iterdir() if p.is_dir() and p.name.isdigit()}
    if not found:
        raise DataError(f"{root}: holds no seed folders (expected e.g. {root}/123/wmt14ende/)")
    if seeds is None:
        return dict(sorted(found.items()))
    wanted = [int(s) for s in seeds]
    missing = [s for s in wanted if s not in found]
    if missing:
        raise DataError(
            f"{root}: seed folder(s) {', '.join(map(str, missing))} missing; "
            f"found {', '.join(map(str, sorted(found)))}"
        )
    return {s: found[s] for s in wanted}


def _discover_tasks(root: Path, seed_dirs: Mapping[int, Path], info: TfsEvalInfo) -> list[str]:
    """Task folder names found under any seed, known tasks in the description's order."""
    names = {p.name for d in seed_dirs.values() for p in d.iterdir() if p.is_dir()}
    if not names:
        raise DataError(f"{root}: seed folders hold no task folders (expected e.g. wmt14ende/)")
    order = list(info.tasks)
    return sorted(names, key=lambda n: (order.index(n) if n in order else len(order), n))


def _split_file(task_dir: Path, split: str) -> Path:
    """`{split}.jsonl` or `{split}.jsonl.gz`; exactly one of them must exist."""
    candidates = (task_dir / f"{split}.jsonl", task_dir / f"{split}.jsonl.gz")
    present = [p for p in candidates if p.is_file()]
    if not present:
        raise DataError(f"{task_dir}: neither {split}.jsonl nor {split}.jsonl.gz exists")
    if len(present) > 1:
        raise DataError(f"{task_dir}: both {split}.jsonl and {split}.jsonl.gz exist; keep one")
    return present[0]


def _read_split(
    path: Path, space: str, vocab_size: int, rank_only: set[str]
) -> list[dict[str, Any]]:
    """Parse and check every record of one split file (rank-only block names go to
    `rank_only`)."""
    rows: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for number, record in iter_jsonl(path):
        where = f"{path}:{number}"
        row = _parse_record(record, where, space, vocab_size, rank_only)
        if row["arch_id"] in seen:
            raise DataError(
                f"{where}: architecture {row['arch_id']} already listed on line "
                f"{seen[row['arch_id']]}"
            )
        seen[row["arch_id"]] = number
        rows.append(row)
    if not rows:
        raise DataError(f"{path}: holds no records")
    return rows


def _parse_record(
    record: dict[str, Any], where: str, space: str, vocab_size: int, rank_only: set[str]
) -> dict:
    scratch = record.get("scratch")
    if not isinstance(scratch, dict):
        raise DataError(f"{where}: missing 'scratch' object")
    missing = [k for k in SCRATCH_KEYS if k not in scratch]
    if missing:
        raise DataError(f"{where}: 'scratch' lacks key(s) {', '.join(missing)}")
    arch = _parse_arch(scratch["arch_info"], where, space)
    row: dict[str, Any] = {
        "arch_id": arch.id,
        "arch": arch,
        "gold": _number(scratch, "valid_BLEU", where, "scratch"),
        "test_bleu": _number(scratch, "test_BLEU", where, "scratch"),
        "params_nonemb": _integer(scratch, "num_parameters_without_embedding_weights", where),
        "params_emb": _integer(scratch, "num_embedding_parameters", where),
        "flops": _integer(scratch, "total_flops", where),
        "latency_ms": _optional_number(scratch, "overall_latency", where),
    }
    _check_counts(row, arch, where, vocab_size)
    for key, block in record.items():
        if key == "scratch":
            continue
        if isinstance(block, dict) and "valid_BLEU" in block:
            row[key] = _number(block, "valid_BLEU", where, key)
        elif isinstance(block, dict) and "score" in block:
            row[key] = _number(block, "score", where, key)
            rank_only.add(key)
        else:
            raise DataError(
                f"{where}: predictor block {key!r} must be an object with valid_BLEU "
                "(or a rank-only score)"
            )
    return row


def _parse_arch(arch_info: Any, where: str, space: str) -> Arch:
    if not isinstance(arch_info, list) or not all(isinstance(s, str) for s in arch_info):
        raise DataError(f"{where}: scratch.arch_info must be a list of 'key: value' strings")
    try:
        return get_space(space).validate(Arch.from_arch_info(arch_info, space=space))
    except NasflowError as error:
        raise DataError(f"{where}: bad arch_info: {error}") from None


def _number(block: dict[str, Any], key: str, where: str, name: str) -> float:
    value = block[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise DataError(f"{where}: {name}.{key} must be a finite number, got {value!r}")
    return float(value)


def _optional_number(block: dict[str, Any], key: str, where: str) -> float:
    """A finite number, or NaN where the set has no value (null: e.g. not measured)."""
    return math.nan if block[key] is None else _number(block, key, where, "scratch")


def _integer(scratch: dict[str, Any], key: str, where: str) -> int:
    value = scratch[key]
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise DataError(f"{where}: scratch.{key} must be a non-negative integer, got {value!r}")
    return value


def _check_counts(row: dict[str, Any], arch: Arch, where: str, vocab_size: int) -> None:
    """The stored parameter counts must equal our closed-form counts exactly."""
    expected = {
        "num_parameters_without_embedding_weights": (row["params_nonemb"], count_params(arch)),
        "num_embedding_parameters": (
            row["params_emb"],
            count_embedding_params(arch, vocab_size),
        ),
    }
    for key, (stored, ours) in expected.items():
        if stored != ours:
            raise DataError(
                f"{where}: scratch.{key} is {stored} but nasflow counts {ours} "
                f"(vocabulary {vocab_size})"
            )


def _to_frame(rows: Sequence[dict[str, Any]], rank_only: set[str]) -> pd.DataFrame:
    """Rows as a DataFrame: fixed columns, then predictor columns (paper order first)."""
    import pandas as pd

    extra: list[str] = []
    for row in rows:
        extra.extend(k for k in row if k not in COLUMNS and k not in extra)
    predictors = [p for p in STORED_PREDICTORS if p in extra]
    predictors += [p for p in extra if p not in STORED_PREDICTORS]
    frame = pd.DataFrame(list(rows), columns=[*COLUMNS, *predictors])
    frame["seed"] = frame["seed"].astype(int)
    frame.attrs["rank_only"] = sorted(rank_only)
    return frame


def read_tfs_scores(paths: Sequence[str | Path]) -> list[dict[str, Any]]:
    """Architecture and from-scratch BLEU of each `score.json` (errors name the file)."""
    records = []
    for path in paths:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            records.append(
                {
                    "path": str(path),
                    "arch": Arch.from_dict(data["arch"]),
                    "valid_bleu": float(data["valid"]["bleu"]),
                    "test_bleu": float(data["test"]["bleu"]),
                    "valid_loss": float(data["valid"]["loss_bits"]),
                }
            )
        except FileNotFoundError:
            raise DataError(f"{path}: score file not found") from None
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            raise DataError(f"{path}: not a nasflow score file ({error!r})") from None
    if len(records) < 2:
        raise DataError(f"need at least 2 from-scratch scores to rank, got {len(records)}")
    return records

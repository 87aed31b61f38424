"""The released TFS-Eval sets (llmas `train-test_seedarchs`) as one pandas table.

Layout: `{root}/{seed}/{task}/{train,test}.jsonl[.gz]`. Each record holds the from-scratch result
of one architecture (`scratch`; its `valid_BLEU` is the gold label) and, per supernet-based
predictor, that predictor's `valid_BLEU` for the architecture (reference §8).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nasflow.efficiency.counts import count_embedding_params, count_params
from nasflow.errors import DataError, NasflowError
from nasflow.io import iter_jsonl
from nasflow.space import Arch, get_space

if TYPE_CHECKING:  # pandas is imported on use, keeping `nasflow` start-up fast
    import pandas as pd

TASK_VOCAB_SIZES: dict[str, int] = {
    "wmt14ende": 32768,
    "wmt14enfr": 44512,
    "wmt19ende": 49600,
}
"""Shared source/target vocabulary size of each TFS-Eval task."""

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


def read_tfs_eval(
    root: str | Path,
    tasks: Iterable[str] | None = None,
    seeds: Iterable[int] | None = None,
    space: str = "hat-wmt",
) -> pd.DataFrame:
    """One row per (seed, task, split, arch) of a TFS-Eval folder.

    Columns: `COLUMNS`, then one column per stored predictor block (named by its key, paper order
    first) holding that predictor's predicted valid BLEU. `tasks`/`seeds` default to every task
    and seed folder found. Stored parameter counts are checked against `count_params` and
    `count_embedding_params`; any disagreement is a `DataError` naming file and line.
    """
    root = Path(root)
    search_space = get_space(space)
    seed_dirs = _seed_dirs(root, seeds)
    task_names = list(tasks) if tasks is not None else _discover_tasks(root, seed_dirs)
    for task in task_names:
        if task not in TASK_VOCAB_SIZES:
            raise DataError(
                f"{root}: unknown TFS-Eval task {task!r}; known: {', '.join(TASK_VOCAB_SIZES)}"
            )
    rows: list[dict[str, Any]] = []
    for seed, seed_dir in seed_dirs.items():
        for task in task_names:
            task_dir = seed_dir / task
            if not task_dir.is_dir():
                raise DataError(f"{seed_dir}: task folder {task!r} is missing")
            for split in SPLITS:
                path = _split_file(task_dir, split)
                for row in _read_split(path, search_space.name, TASK_VOCAB_SIZES[task]):
                    rows.append({"seed": seed, "task": task, "split": split, **row})
    return _to_frame(rows)


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


def _discover_tasks(root: Path, seed_dirs: Mapping[int, Path]) -> list[str]:
    """Task folder names found under any seed, known tasks in `TASK_VOCAB_SIZES` order."""
    names = {p.name for d in seed_dirs.values() for p in d.iterdir() if p.is_dir()}
    if not names:
        raise DataError(f"{root}: seed folders hold no task folders (expected e.g. wmt14ende/)")
    order = list(TASK_VOCAB_SIZES)
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


def _read_split(path: Path, space: str, vocab_size: int) -> list[dict[str, Any]]:
    """Parse and check every record of one split file."""
    rows: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for number, record in iter_jsonl(path):
        where = f"{path}:{number}"
        row = _parse_record(record, where, space, vocab_size)
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


def _parse_record(record: dict[str, Any], where: str, space: str, vocab_size: int) -> dict:
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
        "latency_ms": _number(scratch, "overall_latency", where, "scratch"),
    }
    _check_counts(row, arch, where, vocab_size)
    for key, block in record.items():
        if key == "scratch":
            continue
        if not isinstance(block, dict) or "valid_BLEU" not in block:
            raise DataError(f"{where}: predictor block {key!r} must be an object with valid_BLEU")
        row[key] = _number(block, "valid_BLEU", where, key)
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


def _to_frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Rows as a DataFrame: fixed columns, then predictor columns (paper order first)."""
    import pandas as pd

    extra: list[str] = []
    for row in rows:
        extra.extend(k for k in row if k not in COLUMNS and k not in extra)
    predictors = [p for p in STORED_PREDICTORS if p in extra]
    predictors += [p for p in extra if p not in STORED_PREDICTORS]
    frame = pd.DataFrame(list(rows), columns=[*COLUMNS, *predictors])
    frame["seed"] = frame["seed"].astype(int)
    return frame

"""Build a TFS-Eval folder from this workflow's own from-scratch runs (`nasflow tfs-eval build`).

The folder has the released llmas layout, so everything that reads the released sets (predictor
tables, LLM-PP) reads it too: `{out}/{seed}/{task}/{train,test}.jsonl`, each seed re-splitting
the same architectures (the paper: 10 train + 20 test of 30), plus `tfs_eval.json` describing
the space and task, and `examples/{task}.jsonl`, a seeded pool of training sentence pairs that
LLM-PP prompts draw their task examples from. A supernet's scores of the same architectures
(`nasflow supernet quality`, one block per supernet kind) become stored predictor blocks, as the
released supernets' are.
"""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nasflow.core.errors import ConfigError, DataError
from nasflow.core.io import read_lines, write_json_atomic
from nasflow.data.checks import refuse_test_set
from nasflow.data.prepare import read_manifest
from nasflow.efficiency.counts import count_embedding_params, count_flops, count_params
from nasflow.tfs.format import INFO_FILE, TaskMeta, TfsEvalInfo, read_tfs_scores

LANGUAGE_NAMES = {
    "ar": "Arabic",
    "cs": "Czech",
    "de": "German",
    "en": "English",
    "es": "Spanish",
    "fi": "Finnish",
    "fr": "French",
    "it": "Italian",
    "ja": "Japanese",
    "ro": "Romanian",
    "ru": "Russian",
    "tr": "Turkish",
    "zh": "Chinese",
}
"""Language names prompts use for ISO codes (unknown codes are shown as given)."""

DATASET_NAMES = {
    "multi30k": "Multi30k",
    "wmt14_en_de": "WMT'14",
    "wmt14_en_fr": "WMT'14",
    "wmt19_en_de": "WMT'19",
}
"""How prompts name each registered corpus (others: the corpus name)."""

PAPER_SPLIT_SEEDS = (123, 456, 789)


@dataclass(frozen=True)
class SplitSettings:
    """How architectures are split per seed: `train_size` demonstrations-side, the rest test."""

    seeds: tuple[int, ...] = PAPER_SPLIT_SEEDS
    train_size: int | None = None
    """None: a third of the architectures (the paper's 10 of 30), at least 1."""
    example_pool: int = 1000
    """Training sentence pairs kept for task examples (0: none)."""

    def __post_init__(self) -> None:
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"tfs.split_seeds: need distinct seeds, got {list(self.seeds)}")
        if self.example_pool < 0:
            raise ConfigError(f"example pool size must be >= 0, got {self.example_pool}")

    def resolve_train_size(self, n_archs: int) -> int:
        """The train-split size for `n_archs` architectures (both splits non-empty)."""
        size = max(1, round(n_archs / 3)) if self.train_size is None else self.train_size
        if n_archs < 2 or not 1 <= size < n_archs:
            raise ConfigError(
                f"tfs.train_archs: cannot split {n_archs} architectures into {size} train and "
                f"{n_archs - size} test; both splits need at least one"
            )
        return size


def _score_records(paths: Sequence[str | Path]) -> list[dict[str, Any]]:
    """The from-scratch results of `score.json` files: distinct archs of one space."""
    records = read_tfs_scores(paths)
    ids = [r["arch"].id for r in records]
    duplicated = sorted({i for i in ids if ids.count(i) > 1})
    if duplicated:
        raise DataError(f"architecture {duplicated[0]} has more than one score file")
    spaces = sorted({r["arch"].space for r in records})
    if len(spaces) > 1:
        raise DataError(f"score files mix search spaces: {', '.join(spaces)}")
    return records


def _supernet_blocks(path: str | Path | None) -> dict[str, dict[str, dict[str, float]]]:
    """Per supernet of a `supernet_quality.json`, its name and per-arch block (valid_BLEU, or
    rank-only score). The file holds `supernets` (one summary per kind) or, as older versions
    wrote it, one summary."""
    if path is None:
        return {}
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        summaries = data.get("supernets", [data])
        blocks = {}
        for summary in summaries:
            bleu = bool(summary.get("bleu_scale", "mae_valid_bleu" in summary))
            key = "valid_BLEU" if bleu else "score"
            blocks[str(summary["predictor"])] = {
                str(row["arch_id"]): {key: float(row["predicted"])} for row in summary["rows"]
            }
        return blocks
    except FileNotFoundError:
        raise DataError(f"{path}: supernet quality file not found") from None
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise DataError(f"{path}: not a `nasflow supernet quality` file ({error!r})") from None


def _record(score: dict[str, Any], vocab: int, blocks: dict[str, dict]) -> dict[str, Any]:
    arch = score["arch"]
    flops = count_flops(arch, vocab)
    last = flops - count_flops(arch, vocab, include_last_layer=False)
    record: dict[str, Any] = {
        "scratch": {
            "arch_info": arch.to_arch_info(),
            "valid_BLEU": score["valid_bleu"],
            "test_BLEU": score["test_bleu"],
            "valid_loss_bits": score["valid_loss"],
            "num_parameters_without_embedding_weights": count_params(arch),
            "num_embedding_parameters": count_embedding_params(arch, vocab),
            "total_flops": flops,
            "last_layer_flops": last,
            "total_flops_without_last_layer": flops - last,
            "overall_latency": None,  # not measured for TFS runs; see the latency dataset
        }
    }
    for name, values in blocks.items():
        if arch.id not in values:
            raise DataError(f"{name}: no supernet score for architecture {arch.id}")
        record[name] = values[arch.id]
    return record


def _train_split(manifest: dict[str, Any]) -> str:
    """The corpus split prepared as the `train` role (the task-example pool's source)."""
    entry = (manifest.get("splits") or {}).get("train") if isinstance(manifest, dict) else None
    return str(entry.get("split") or "train") if isinstance(entry, dict) else "train"


def _example_pool(data_dir: Path, langs: tuple[str, str], size: int, seed: int) -> list[dict]:
    """Up to `size` training pairs (the prepared folder's `train` role) drawn with `seed`, in
    corpus order; none for size 0."""
    if size == 0:
        return []
    sources = read_lines(data_dir / f"train.{langs[0]}")
    targets = read_lines(data_dir / f"train.{langs[1]}")
    if len(sources) != len(targets):
        raise DataError(f"{data_dir}: train.{langs[0]} and train.{langs[1]} differ in length")
    picked = sorted(random.Random(seed).sample(range(len(sources)), min(size, len(sources))))
    return [{"source": sources[i].strip(), "target": targets[i].strip()} for i in picked]


def _write_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows), encoding="utf-8")


def build_tfs_eval(
    score_paths: Sequence[str | Path],
    data_dir: str | Path,
    out_dir: str | Path,
    task: str,
    split: SplitSettings = SplitSettings(),
    supernet_quality: str | Path | None = None,
    pool_seed: int = 1,
    dataset: str | None = None,
) -> TfsEvalInfo:
    """Write the TFS-Eval folder of one task; return its description.

    Everything is checked before writing; the folder is assembled beside `out_dir` and renamed
    into place, so an interrupted build leaves no partial folder.
    """
    if not task or "/" in task or task.startswith("."):
        raise ConfigError(f"bad TFS-Eval task name {task!r}")
    data_dir, out = Path(data_dir), Path(out_dir)
    manifest = read_manifest(data_dir)
    try:
        vocab = int(manifest["vocab_size"])
        langs = (str(manifest["languages"]["source"]), str(manifest["languages"]["target"]))
        corpus = str(manifest["corpus"])
    except (KeyError, TypeError, ValueError) as error:
        raise DataError(f"{data_dir}/manifest.json: incomplete ({error!r})") from None
    scores = _score_records(score_paths)
    train_size = split.resolve_train_size(len(scores))
    blocks = _supernet_blocks(supernet_quality)
    records = {s["arch"].id: _record(s, vocab, blocks) for s in scores}
    # Task examples come from the training data: refuse a train role that is a known test set.
    pool_split = _train_split(manifest)
    refuse_test_set(pool_split, f"{data_dir}: the train role (task-example pool)")
    pool = _example_pool(data_dir, langs, split.example_pool, pool_seed)
    meta = TaskMeta(
        vocab,
        dataset or DATASET_NAMES.get(corpus, corpus),
        LANGUAGE_NAMES.get(langs[0], langs[0]),
        LANGUAGE_NAMES.get(langs[1], langs[1]),
        f"examples/{task}.jsonl" if pool else None,
    )
    info = TfsEvalInfo(scores[0]["arch"].space, {task: meta})

    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    ids = sorted(records)
    for seed in split.seeds:
        order = random.Random(seed).sample(ids, len(ids))
        folder = staging / str(seed) / task
        _write_jsonl(folder / "train.jsonl", [records[i] for i in order[:train_size]])
        _write_jsonl(folder / "test.jsonl", [records[i] for i in order[train_size:]])
    if pool:
        _write_jsonl(staging / "examples" / f"{task}.jsonl", pool)
    description = {
        **info.to_dict(),
        "built_from": {
            "scores": [str(p) for p in score_paths],
            "data": str(data_dir),
            "supernet_quality": str(supernet_quality) if supernet_quality else None,
            "split_seeds": list(split.seeds),
            "train_size": train_size,
            "test_size": len(ids) - train_size,
            "example_pool_seed": pool_seed,
            "example_pool_split": pool_split,
        },
    }
    write_json_atomic(staging / INFO_FILE, description)
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
    return info

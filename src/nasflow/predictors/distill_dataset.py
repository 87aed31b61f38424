"""The distillation dataset: architectures labelled by LLM-PP through the reply cache.

Architectures are sampled from the space with a seed, or read from a file (an `archs.jsonl` of
arch dicts, or llmas `bleu_predictor_data` records with `scratch.arch_info`). Each one is asked
for with the prompt of one TFS-Eval (task, seed): that seed's demonstrations and task examples,
then the architecture with its GFLOPs. Replies go through the cache, so a rerun (or another
seed's run sharing prompts) reuses paid answers and a killed run resumes where it stopped.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from nasflow.core.errors import DataError, NasflowError
from nasflow.core.io import iter_jsonl
from nasflow.efficiency.counts import count_flops
from nasflow.llm.cache import ReplyCache
from nasflow.llm.examples import examples_metadata
from nasflow.llm.predict import PredictSettings, predict_many
from nasflow.llm.progress import Progress
from nasflow.llm.prompts import Demonstration, PromptTemplate, render_prompt
from nasflow.llm.providers import Provider
from nasflow.predictors.llm import (
    ExamplePairs,
    PromptSettings,
    predictor_label,
    prompt_context,
    task_info,
)
from nasflow.space.hat import Arch, get_space
from nasflow.tfs.format import TfsEvalInfo

DATASET_COLUMNS = ("arch_id", "arch", "prediction", "failed", "requests", "cache_hits")


def read_arch_file(path: str | Path, space: str) -> list[Arch]:
    """Distinct architectures of a JSONL file (arch dicts, `{"arch": ...}` or llmas records)."""
    search_space = get_space(space)
    archs: dict[str, Arch] = {}
    for number, record in iter_jsonl(path):
        try:
            if isinstance(record.get("scratch"), dict):
                arch = Arch.from_arch_info(record["scratch"]["arch_info"], space=space)
            else:
                arch = Arch.from_dict(record.get("arch", record))
            arch = search_space.validate(arch)
        except (NasflowError, KeyError, TypeError, ValueError) as error:
            where = f"{path}:{number}"
            raise DataError(f"{where}: not an architecture of {space!r} ({error})") from None
        archs.setdefault(arch.id, arch)
    if not archs:
        raise DataError(f"{path}: holds no architectures")
    return list(archs.values())


def labelling_prompts(
    archs: Sequence[Arch],
    table: pd.DataFrame,
    info: TfsEvalInfo,
    task: str,
    seed: int,
    prompts: PromptSettings,
    examples: ExamplePairs | None,
) -> tuple[list[str], dict[str, Any]]:
    """The prompt of each arch (the TFS-Eval seed's demonstrations and task examples, then the
    arch with its GFLOPs) and where the task examples came from, before any request."""
    template = PromptTemplate.load(prompts.template)
    demos, pairs, _ = prompt_context(table, task, seed, prompts, examples)
    about = task_info(info, task)
    vocab = info.tasks[task].vocab_size
    texts = [
        render_prompt(
            template,
            prompts.variant,
            about,
            pairs,
            demos,
            Demonstration(arch, count_flops(arch, vocab) / 1e9),
        )
        for arch in archs
    ]
    return texts, examples_metadata(examples, len(pairs))


def label_archs(
    archs: Sequence[Arch],
    texts: Sequence[str],
    task: str,
    task_examples: dict[str, Any],
    provider: Provider,
    cache: ReplyCache,
    prompts: PromptSettings,
    predict: PredictSettings,
    progress: Progress | None = None,
) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """LLM-PP's predicted BLEU of each arch from its prompt in `texts` (`labelling_prompts`;
    columns `DATASET_COLUMNS`) and per-arch usage; each arch is counted in `progress`."""
    label = predictor_label(provider, prompts)
    rows: list[dict[str, Any]] = []
    usage: list[dict[str, Any]] = []
    results = predict_many(provider, cache, texts, predict, progress)
    for arch, result in zip(archs, results, strict=True):
        rows.append(
            {
                "arch_id": arch.id,
                "arch": arch.to_json(),
                "prediction": result.value,
                "failed": result.failed,
                "requests": result.requests,
                "cache_hits": result.cache_hits,
            }
        )
        usage.append(
            {
                "predictor": label,
                "task": task,
                "task_examples": task_examples,
                "failed": result.failed,
                "requests": result.requests,
                "cache_hits": result.cache_hits,
                "prompt_tokens": result.prompt_tokens,
                "completion_tokens": result.completion_tokens,
            }
        )
    return pd.DataFrame(rows, columns=list(DATASET_COLUMNS)), usage


def read_distill_dataset(path: str | Path) -> tuple[list[Arch], list[float], int]:
    """Architectures and labels of a dataset CSV, skipping failed rows (their count returned)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: distillation dataset not found")
    frame = pd.read_csv(path)
    missing = [c for c in ("arch", "prediction", "failed") if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}")
    ok = ~frame["failed"].astype(bool) & frame["prediction"].notna()
    archs, labels = [], []
    for line, row in zip(frame.index[ok] + 2, frame[ok].itertuples(index=False), strict=True):
        try:
            archs.append(Arch.from_dict(json.loads(row.arch)))
        except (NasflowError, ValueError, TypeError) as error:
            raise DataError(f"{path}:{line}: bad arch ({error})") from None
        labels.append(float(row.prediction))
    if not archs:
        raise DataError(f"{path}: no labelled architectures (all {len(frame)} failed)")
    return archs, labels, int((~ok).sum())

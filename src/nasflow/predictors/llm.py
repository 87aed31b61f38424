"""LLM-PP on a TFS-Eval table: one prompt per test architecture, demonstrations from the
seed's train split, predictions through the cache, usage and cost per step.

For each (seed, task), the first `demonstrations` architectures of the seed's `train` split are
shown with their GFLOPs (output layer included, as llmas) and from-scratch valid BLEU; each
architecture of the seed's `test` split is then asked for. Task examples are sentence pairs of
the task's training data (or, for the released tasks without one, a development set) drawn with
the seed (`nasflow.llm.examples`); each record says where they came from (`task_examples`). What
the prompt says about a task comes from the folder's `TfsEvalInfo` (`task_info`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nasflow.core.errors import ConfigError, DataError
from nasflow.core.io import iter_jsonl
from nasflow.llm.cache import ReplyCache
from nasflow.llm.examples import TaskExamples, examples_metadata
from nasflow.llm.predict import PredictSettings, predict_many
from nasflow.llm.progress import Progress
from nasflow.llm.prompts import (
    VARIANTS,
    Demonstration,
    PromptTemplate,
    TaskInfo,
    render_prompt,
    sample_task_examples,
)
from nasflow.llm.providers import Provider
from nasflow.predictors.base import Predictor
from nasflow.space.hat import Arch
from nasflow.tfs.format import TfsEvalInfo

ExamplePairs = tuple[Sequence[str], Sequence[str]]
"""A pool of (sources, targets); `TaskExamples` says where its pairs come from too."""


@dataclass(frozen=True)
class PromptSettings:
    """Which prompt: the ablation variant, demonstrations, task examples, template file."""

    variant: str = "full"
    demonstrations: int = 10
    task_examples: int = 5
    template: str | None = None

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ConfigError(
                f"unknown prompt variant {self.variant!r}; choose one of {list(VARIANTS)}"
            )
        if self.demonstrations < 1 or self.task_examples < 0:
            raise ConfigError("need demonstrations >= 1 and task_examples >= 0")


OFFLINE_SETUP = "offline stand-in (no LLM)"
"""The `setup` of predictions made by the offline stand-in (deterministic, no language model)."""


def setup_name(provider: Provider) -> str:
    """`provider/model`, or the stand-in's label."""
    if provider.name == "offline":
        return OFFLINE_SETUP
    return f"{provider.name}/{provider.model}"


def predictor_label(provider: Provider, prompts: PromptSettings) -> str:
    """Row label in the tables, e.g. `LLM-PP openai/gpt-4`; the stand-in says so."""
    label = f"LLM-PP {setup_name(provider)}"
    if prompts.variant != "full":
        label += f" [{prompts.variant}]"
    if prompts.demonstrations != 10:
        label += f" k={prompts.demonstrations}"
    return label


def task_info(info: TfsEvalInfo, task: str) -> TaskInfo:
    """What the prompt says about `task` of a TFS-Eval folder."""
    if task not in info.tasks:
        raise DataError(f"no description of task {task!r}; known: {', '.join(info.tasks)}")
    meta = info.tasks[task]
    return TaskInfo(meta.dataset, meta.source_language, meta.target_language)


def _demonstration(row: pd.Series, with_score: bool) -> Demonstration:
    return Demonstration(row["arch"], row["flops"] / 1e9, row["gold"] if with_score else None)


def prompt_context(
    table: pd.DataFrame,
    task: str,
    seed: int,
    settings: PromptSettings,
    examples: TaskExamples | ExamplePairs | None,
) -> tuple[list[Demonstration], list[tuple[str, str]], pd.DataFrame]:
    """The seed's demonstrations (first `demonstrations` train archs), task example pairs and
    test rows of `task`. Pairs are drawn only for variants that show them."""
    rows = table[(table["task"] == task) & (table["seed"] == seed)]
    train, test = rows[rows["split"] == "train"], rows[rows["split"] == "test"]
    if train.empty or test.empty:
        raise DataError(f"TFS-Eval seed {seed} task {task}: needs train and test architectures")
    demos = [_demonstration(r, True) for _, r in train.head(settings.demonstrations).iterrows()]
    pairs: list[tuple[str, str]] = []
    if examples is not None and settings.task_examples and "examples" in VARIANTS[settings.variant]:
        if isinstance(examples, TaskExamples):
            pairs = examples.sample(settings.task_examples, seed)
        else:
            pairs = sample_task_examples(*examples, settings.task_examples, seed)
    return demos, pairs, test


def build_prompts(
    table: pd.DataFrame,
    task: str,
    seed: int,
    template: PromptTemplate,
    settings: PromptSettings,
    examples: TaskExamples | ExamplePairs | None,
    info: TaskInfo,
) -> tuple[pd.DataFrame, list[str], int]:
    """The seed's test rows of `task`, one prompt per row and the number of task examples shown."""
    demos, pairs, test = prompt_context(table, task, seed, settings, examples)
    prompts = [
        render_prompt(template, settings.variant, info, pairs, demos, _demonstration(r, False))
        for _, r in test.iterrows()
    ]
    return test, prompts, len(pairs)


@dataclass(frozen=True)
class PromptGroup:
    """The prompts of one (task, split seed): its test rows, one prompt each, and where the
    task examples shown came from."""

    task: str
    seed: int
    test: pd.DataFrame
    texts: list[str]
    task_examples: dict[str, Any]


def llm_pp_prompts(
    table: pd.DataFrame,
    info: TfsEvalInfo,
    tasks: Sequence[str],
    prompts: PromptSettings,
    examples_for_task: Callable[[str], TaskExamples | None],
) -> list[PromptGroup]:
    """Every prompt `llm_pp_predictions` asks, per (task, split seed), before any request."""
    template = PromptTemplate.load(prompts.template)
    groups: list[PromptGroup] = []
    for task in tasks:
        examples = examples_for_task(task)
        for seed in sorted(table.loc[table["task"] == task, "seed"].unique()):
            test, texts, shown = build_prompts(
                table, task, int(seed), template, prompts, examples, task_info(info, task)
            )
            about = examples_metadata(examples, shown)
            groups.append(PromptGroup(task, int(seed), test, texts, about))
    return groups


def llm_pp_predictions(
    groups: Sequence[PromptGroup],
    provider: Provider,
    cache: ReplyCache,
    prompts: PromptSettings,
    predict: PredictSettings,
    progress: Progress | None = None,
) -> list[dict[str, Any]]:
    """One record per (seed, task, test architecture) of `groups` (`llm_pp_prompts`):
    prediction, replies (with each sample's value and each reply's recorded request latency),
    cache use, usage, and where the prompt's task examples came from (`task_examples`: origin
    `train`, `dev fallback` or `none`, corpus split, files, number shown). Each architecture
    is counted in `progress` as it finishes."""
    label = predictor_label(provider, prompts)
    records: list[dict[str, Any]] = []
    for group in groups:
        results = predict_many(provider, cache, group.texts, predict, progress)
        for (_, row), result in zip(group.test.iterrows(), results, strict=True):
            records.append(
                {
                    "predictor": label,
                    "setup": setup_name(provider),
                    "variant": prompts.variant,
                    "demonstrations": prompts.demonstrations,
                    "task_examples": group.task_examples,
                    "seed": group.seed,
                    "task": group.task,
                    "arch_id": row["arch_id"],
                    "arch": row["arch"].to_dict(),
                    "gold": float(row["gold"]),
                    "prediction": result.value,
                    "failed": result.failed,
                    "replies": result.replies,
                    "sample_values": result.sample_values,
                    "latencies_s": result.latencies_s,
                    "requests": result.requests,
                    "timeouts": result.timeouts,
                    "errors": result.errors,
                    "cache_hits": result.cache_hits,
                    "prompt_tokens": result.prompt_tokens,
                    "completion_tokens": result.completion_tokens,
                }
            )
    return records


def usage_summary(
    records: Sequence[Mapping[str, Any]],
    provider: Provider,
    prompts: PromptSettings,
    predict: PredictSettings,
    prices_per_million: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """Requests, cache hits, tokens and the estimated cost (USD) of a prediction step; the prompt
    block says, per task, where its task examples came from (`examples_from`, from records that
    carry `task_examples`).

    `requests` counts every request sent, timed-out and failed attempts that were retried
    included (providers usually bill a request that timed out); `attempts` splits them into
    `replied`, `timeouts` and `errors` by kind, from the provider's log of this process (else
    from the records). Tokens are those of the replies: a timed-out request reports none, so
    with timeouts the cost estimate is a lower bound."""
    prompt_tokens = sum(int(r["prompt_tokens"]) for r in records)
    completion_tokens = sum(int(r["completion_tokens"]) for r in records)
    requests = sum(int(r["requests"]) for r in records)
    log = getattr(provider, "attempt_log", None)
    if log is not None:
        attempts = log.summary()
    else:
        timeouts = sum(int(r.get("timeouts", 0)) for r in records)
        errors = sum(int(r.get("errors", 0)) for r in records)
        attempts = {
            "sent": requests,
            "replied": requests - timeouts - errors,
            "timeouts": timeouts,
            "errors": {"retried": errors} if errors else {},
        }
    cost = None
    if prices_per_million:
        cost = (
            prompt_tokens * prices_per_million.get("prompt", 0.0)
            + completion_tokens * prices_per_million.get("completion", 0.0)
        ) / 1e6
    return {
        "provider": provider.name,
        "endpoint": provider.endpoint,
        "model": provider.model,
        "prompt": {**asdict(prompts), "examples_from": _examples_from(records)},
        "predict": asdict(predict),
        "architectures": len(records),
        "failed": sum(bool(r["failed"]) for r in records),
        "requests": requests,
        "attempts": attempts,
        "cache_hits": sum(int(r["cache_hits"]) for r in records),
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "estimated_cost_usd": cost,
    }


def _examples_from(records: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per task, the task-example metadata of its records (origin, split, corpus, shown)."""
    found: dict[str, dict[str, Any]] = {}
    for record in records:
        if "task_examples" in record and "task" in record:
            found.setdefault(str(record["task"]), dict(record["task_examples"]))
    return found


class SeedPredictions(Predictor):
    """Stored LLM-PP predictions, looked up per (seed, arch): each seed has its own prompts."""

    bleu_scale = True

    def __init__(self, name: str, records: Sequence[Mapping[str, Any]], seed: int | None = None):
        self.name = name
        self.records = records
        self.seed = seed
        self._values = {
            (int(r["seed"]), str(r["arch_id"])): r["prediction"]
            for r in records
            if r["predictor"] == name
        }

    def for_seed(self, seed: int) -> SeedPredictions:
        return SeedPredictions(self.name, self.records, seed)

    def predict(self, archs: Sequence[Arch]) -> np.ndarray:
        if self.seed is None:
            raise ValueError(f"{self.name}: predictions are per seed; call for_seed(seed) first")
        missing = [a.id for a in archs if (self.seed, a.id) not in self._values]
        if missing:
            raise DataError(
                f"{self.name}: no prediction for seed {self.seed}, architectures {missing[:5]}"
            )
        failed = [a.id for a in archs if self._values[(self.seed, a.id)] is None]
        if failed:
            raise DataError(
                f"{self.name}: {len(failed)} failed prediction(s) for seed {self.seed} "
                f"(e.g. {failed[0]}); see their replies in the predictions file and rerun with "
                "more parse retries or another model"
            )
        return np.array([self._values[(self.seed, a.id)] for a in archs], dtype=float)


PER_ARCH_COLUMNS = ("predictor", "arch_id", "gold", "predicted", "n_seeds")


def per_arch_predictions(
    table: pd.DataFrame,
    task: str,
    records: Sequence[Mapping[str, Any]],
    predictors: Sequence[Predictor] = (),
) -> pd.DataFrame:
    """Columns `PER_ARCH_COLUMNS`: per (predictor, test architecture of `task`), the gold
    from-scratch BLEU and the prediction averaged over the split seeds whose test split holds the
    architecture and that predicted it (`n_seeds`).

    LLM-PP predictions come from `records` (failed ones, `prediction` None, are left out; so are
    records outside the table's test splits); `predictors` (e.g. LLM-Distill-PP's per-seed MLPs)
    score each seed's test architectures. Predictors in first-seen order, architectures in the
    order they first appear in a test split.
    """
    test = table[(table["task"] == task) & (table["split"] == "test")]
    rows: list[tuple[str, int, str, float]] = [
        (str(r["predictor"]), int(r["seed"]), str(r["arch_id"]), float(r["prediction"]))
        for r in records
        if r["task"] == task and r["prediction"] is not None
    ]
    for predictor in predictors:
        for seed, split in test.groupby("seed", sort=True):
            scores = predictor.for_seed(int(seed)).predict(list(split["arch"]))
            rows.extend(
                (predictor.name, int(seed), str(arch_id), float(score))
                for arch_id, score in zip(split["arch_id"], scores, strict=True)
            )
    predicted = pd.DataFrame(rows, columns=["predictor", "seed", "arch_id", "predicted"])
    gold = pd.DataFrame(
        {
            "seed": test["seed"].astype(int).to_numpy(),
            "arch_id": test["arch_id"].astype(str).to_numpy(),
            "gold": test["gold"].astype(float).to_numpy(),
        }
    )
    merged = predicted.merge(gold, on=["seed", "arch_id"], how="inner", sort=False)
    if merged.empty:
        return pd.DataFrame(columns=list(PER_ARCH_COLUMNS))
    averaged = (
        merged.groupby(["predictor", "arch_id"], sort=False)
        .agg(gold=("gold", "first"), predicted=("predicted", "mean"), n_seeds=("seed", "nunique"))
        .reset_index()
    )
    positions = {
        "predictor": _positions(predicted["predictor"]),
        "arch_id": _positions(gold["arch_id"]),
    }
    averaged = averaged.sort_values(
        ["predictor", "arch_id"], key=lambda column: column.map(positions[column.name])
    )
    return averaged[list(PER_ARCH_COLUMNS)].reset_index(drop=True)


def _positions(values: pd.Series) -> dict[str, int]:
    """Each distinct value's rank of first appearance."""
    return {value: index for index, value in enumerate(dict.fromkeys(values))}


def read_predictions(paths: list[Path]) -> list[dict[str, Any]]:
    """Records of `llm-pp predict` files (errors name file and line)."""
    records = []
    for path in paths:
        if not path.is_file():
            raise DataError(f"{path}: no such predictions file")
        for line, record in iter_jsonl(path):
            missing = {"predictor", "seed", "task", "arch_id", "prediction"} - set(record)
            if missing:
                raise DataError(f"{path}:{line}: missing {', '.join(sorted(missing))}")
            records.append(record)
    return records

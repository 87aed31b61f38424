"""Task examples of LLM-PP prompts (instruction 2): sentence pairs of the task, never its test set.

The paper (llmas `gpt_scorer.py`) shows 5 pairs drawn after `random.seed(seed)`, without
replacement and sorted by index, from the *train* split of WMT'16 De-En (English to German) for
every task (`randint` until 5 distinct indices; `sample_indices` draws the same). Here each
task's pool of pairs is, in this order:

1. its training corpus when one is named (`nasflow llm-pp predict --examples-train TASK=DIR`,
   config `llm.task_example_corpora`): `DIR/train.{src}` and `DIR/train.{tgt}`, plain or gzip,
   e.g. the folder `data.fetch` writes (`train.{en,de}.gz`) or a `nasflow data prepare` folder.
   Only the released WMT tasks, whose language codes are known (`TASK_LANGUAGES`);
2. the example pool of a TFS-Eval set built by `nasflow tfs-eval build` (`examples/{task}.jsonl`,
   drawn from the train split of the experiment's prepared corpus);
3. for the released WMT tasks without a training corpus, newstest2013, the development set of
   WMT'14 En-De and En-Fr, from `$NASFLOW_MIRROR/newstest` (origin "dev fallback": the WMT
   training corpora are not in the mirror).

Pools and the metadata written beside predictions say which (`TaskExamples.metadata`). A pool
that is a known test set (`TEST_SETS`) is refused with a `ConfigError` (`refuse_test_set`).
Sampling (`TaskExamples.sample`) is `sample_task_examples` on the whole pool; a training corpus
on disk is streamed rather than read, with the same indices.
"""

from __future__ import annotations

import gzip
import json
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nasflow.core.errors import ConfigError, DataError
from nasflow.core.io import gzip_errors
from nasflow.data.checks import refuse_test_set

logger = logging.getLogger(__name__)

ORIGIN_TRAIN = "train"
ORIGIN_DEV = "dev fallback"
ORIGIN_NONE = "none"

TASK_LANGUAGES: dict[str, tuple[str, str]] = {
    "wmt14ende": ("en", "de"),
    "wmt14enfr": ("en", "fr"),
    "wmt19ende": ("en", "de"),
}
"""Source and target language codes of the released tasks."""

DEV_FALLBACK: dict[str, tuple[str, str]] = {
    "wmt14ende": ("en-de", "newstest2013"),
    "wmt14enfr": ("en-fr", "newstest2013"),
    "wmt19ende": ("en-de", "newstest2013"),
}
"""The released tasks' non-test pool when no training corpus is given: newstest2013 (the WMT'14
development set of both pairs; no test set of WMT'14 or WMT'19), `{pair}.{name}.{lang}.gz`."""


def sample_indices(n: int, k: int, seed: int) -> list[int]:
    """`min(k, n)` distinct indices of `range(n)`, sorted, drawn as llmas `gpt_scorer.py` draws
    its task examples after `random.seed(seed)`: `randint(0, n - 1)` until `k` distinct ones, so
    the same corpus in the same order gives the paper's pairs."""
    rng, picked = random.Random(seed), set[int]()
    while len(picked) < min(k, n):
        picked.add(rng.randint(0, n - 1))
    return sorted(picked)


def sample_task_examples(
    sources: Sequence[str], targets: Sequence[str], k: int, seed: int
) -> list[tuple[str, str]]:
    """`k` sentence pairs drawn without replacement with `seed`, in corpus order."""
    if len(sources) != len(targets):
        raise ValueError(f"{len(sources)} source but {len(targets)} target sentences")
    return [(sources[i].strip(), targets[i].strip()) for i in sample_indices(len(sources), k, seed)]


def _open_binary(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def count_lines(path: Path) -> int:
    """Lines of a (gzipped) text file, as `nasflow.core.io.read_lines` splits them."""
    count, last = 0, b"\n"
    with gzip_errors(path), _open_binary(path) as handle:
        while chunk := handle.read(1 << 20):
            count += chunk.count(b"\n")
            last = chunk[-1:]
    return count + (last != b"\n")


def _pick_lines(path: Path, indices: Sequence[int]) -> list[str]:
    wanted, picked = set(indices), []
    with gzip_errors(path), _open_binary(path) as handle:
        for number, raw in enumerate(handle):
            if number in wanted:
                try:
                    picked.append(raw.decode("utf-8").rstrip("\r\n"))
                except UnicodeDecodeError as error:
                    raise DataError(
                        f"{path}:{number + 1}: not valid UTF-8 ({error.reason})"
                    ) from None
                if len(picked) == len(wanted):
                    break
    return picked


@dataclass(frozen=True)
class TaskExamples:
    """A task's pool of sentence pairs: in memory (`pairs`) or two line-aligned files (`files`),
    with where it came from (`origin`: `ORIGIN_TRAIN` or `ORIGIN_DEV`), the corpus split
    (`split`) and a description of the files (`corpus`)."""

    origin: str
    split: str
    corpus: str
    pairs: tuple[Sequence[str], Sequence[str]] | None = None
    files: tuple[Path, Path] | None = None
    _size: list[int] = field(default_factory=list, compare=False, repr=False)

    def __post_init__(self) -> None:
        if (self.pairs is None) == (self.files is None):
            raise ValueError("TaskExamples needs exactly one of pairs and files")
        if self.origin not in (ORIGIN_TRAIN, ORIGIN_DEV):
            raise ValueError(f"unknown task-example origin {self.origin!r}")
        refuse_test_set(self.split, f"task examples from {self.corpus}")

    def __len__(self) -> int:
        if self.pairs is not None:
            return len(self.pairs[0])
        if not self._size:
            assert self.files is not None
            sizes = [count_lines(path) for path in self.files]
            if sizes[0] != sizes[1]:
                raise DataError(
                    f"{self.files[0]} ({sizes[0]} lines) and {self.files[1]} ({sizes[1]} lines) "
                    "are not line-aligned"
                )
            self._size.append(sizes[0])
        return self._size[0]

    def sample(self, k: int, seed: int) -> list[tuple[str, str]]:
        """`k` pairs drawn with `seed` without replacement, in corpus order (empty for k = 0)."""
        if k <= 0:
            return []
        if self.pairs is not None:
            return sample_task_examples(*self.pairs, k, seed)
        assert self.files is not None
        indices = sample_indices(len(self), k, seed)
        sources, targets = (_pick_lines(path, indices) for path in self.files)
        return [(s.strip(), t.strip()) for s, t in zip(sources, targets, strict=True)]

    def metadata(self, shown: int) -> dict[str, Any]:
        """What the predictions record about the examples shown."""
        return {"origin": self.origin, "split": self.split, "corpus": self.corpus, "shown": shown}


NO_EXAMPLES: dict[str, Any] = {"origin": ORIGIN_NONE, "split": None, "corpus": None, "shown": 0}
"""The metadata of prompts without task examples."""


def examples_metadata(examples: object, shown: int) -> dict[str, Any]:
    """`TaskExamples.metadata`, or `NO_EXAMPLES` when nothing was shown (a bare pool of pairs
    passed by a library caller has origin "unspecified")."""
    if examples is None or shown == 0:
        return dict(NO_EXAMPLES)
    if isinstance(examples, TaskExamples):
        return examples.metadata(shown)
    return {**NO_EXAMPLES, "origin": "unspecified", "shown": shown}


def parse_train_corpora(values: Sequence[str] | None) -> dict[str, Path]:
    """`TASK=DIR` arguments as a mapping; tasks must be released ones (known language codes)."""
    corpora: dict[str, Path] = {}
    for value in values or ():
        task, sep, folder = value.partition("=")
        if not sep or not task or not folder:
            raise ConfigError(f"--examples-train: expected TASK=DIR, got {value!r}")
        if task not in TASK_LANGUAGES:
            raise ConfigError(
                f"--examples-train: no language codes for task {task!r} (known: "
                f"{', '.join(TASK_LANGUAGES)}); a built TFS-Eval set takes its examples from its "
                "own training split"
            )
        corpora[task] = Path(folder)
    return corpora


def _json_field(path: Path, keys: Sequence[str]) -> str | None:
    """The string at `keys` in a JSON file, or None when the file or a key is absent."""
    try:
        value: Any = json.loads(path.read_text(encoding="utf-8"))
        for key in keys:
            value = value[key]
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
        return None
    return str(value) if value is not None else None


def train_corpus_files(folder: Path, languages: tuple[str, str]) -> tuple[Path, Path]:
    """`folder/train.{lang}`, else `folder/train.{lang}.gz`, for both languages."""
    files = []
    for lang in languages:
        plain = folder / f"train.{lang}"
        files.append(plain if plain.is_file() else folder / f"train.{lang}.gz")
    return files[0], files[1]


def train_corpus(task: str, folder: Path) -> TaskExamples:
    """The pool of a task's training corpus folder (see the module docstring)."""
    refuse_test_set(str(folder), f"training corpus of {task}")
    files = train_corpus_files(folder, TASK_LANGUAGES[task])
    missing = [str(path) for path in files if not path.is_file()]
    if missing:
        raise DataError(
            f"training corpus of {task}: {', '.join(missing)} not found (expected "
            f"train.{{lang}} or train.{{lang}}.gz for {'/'.join(TASK_LANGUAGES[task])})"
        )
    # A `nasflow data prepare` folder names the corpus split it prepared as `train`.
    split = _json_field(folder / "manifest.json", ("splits", "train", "split")) or "train"
    corpus = f"{files[0]} + {files[1].name}"
    return TaskExamples(ORIGIN_TRAIN, split, corpus, files=files)


def dev_fallback(task: str, folder: Path) -> TaskExamples | None:
    """The released task's development-set pool in `folder`, or None when its files are absent."""
    pair, name = DEV_FALLBACK[task]
    refuse_test_set(name, f"development-set fallback of {task}")
    files = tuple(folder / f"{pair}.{name}.{lang}.gz" for lang in TASK_LANGUAGES[task])
    if not all(path.is_file() for path in files):
        return None
    from nasflow.core.io import read_lines

    pairs = (read_lines(files[0]), read_lines(files[1]))
    corpus = f"{files[0]} + {files[1].name}"
    return TaskExamples(ORIGIN_DEV, name, corpus, pairs=pairs)


def built_pool(tfs_eval: Path, info, task: str) -> TaskExamples | None:
    """The example pool of a built TFS-Eval set (drawn from its corpus's train split)."""
    from nasflow.tfs.format import INFO_FILE, read_task_examples

    pairs = read_task_examples(tfs_eval, info, task)
    if pairs is None:
        return None
    # `nasflow tfs-eval build` draws the pool from the prepared train role (and records its split
    # since the test-set guard; older folders were built the same way).
    split = _json_field(tfs_eval / INFO_FILE, ("built_from", "example_pool_split")) or "train"
    corpus = str(tfs_eval / info.tasks[task].examples)
    return TaskExamples(ORIGIN_TRAIN, split, corpus, pairs=pairs)


def example_source(
    tfs_eval: Path,
    info,
    dev_folder: Path | None,
    train_corpora: Mapping[str, Path] | None = None,
) -> Callable[[str], TaskExamples | None]:
    """Per task, its pool: a named training corpus, a built set's pool, else the released task's
    dev fallback in `dev_folder`; None (and a logged warning) when none is available."""
    corpora = dict(train_corpora or {})

    def examples(task: str) -> TaskExamples | None:
        if task in corpora:
            return train_corpus(task, corpora[task])
        pool = built_pool(tfs_eval, info, task)
        if pool is not None:
            return pool
        if task not in DEV_FALLBACK:
            logger.warning("no task examples for %s: its TFS-Eval set has no example pool", task)
            return None
        fallback = dev_fallback(task, dev_folder) if dev_folder is not None else None
        if fallback is None:
            where = dev_folder or "$NASFLOW_MIRROR/newstest (NASFLOW_MIRROR is unset)"
            logger.warning(
                f"no task examples for {task}: no training corpus (--examples-train "
                f"{task}=DIR) and no {DEV_FALLBACK[task][1]} in {where}; the prompt leaves the "
                "examples instruction out"
            )
            return None
        logger.info(
            f"task examples for {task} from {fallback.split} (dev fallback: no training "
            f"corpus given with --examples-train {task}=DIR / llm.task_example_corpora)"
        )
        return fallback

    return examples

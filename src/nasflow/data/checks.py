"""Checks of a corpus: each failure is a `DataError` naming the file, line or counts; a known test
set named where training data belongs is refused (`refuse_test_set`)."""

from __future__ import annotations

import re
from pathlib import Path

from nasflow.core.errors import ConfigError, DataError
from nasflow.core.io import read_lines


def check_exists(path: str | Path) -> Path:
    """Return `path` if it is a file; otherwise raise naming it."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    return path


def check_not_empty(path: str | Path, lines: list[str]) -> None:
    """A corpus with no lines, or only blank ones, is empty."""
    if not any(line.strip() for line in lines):
        what = "no lines" if not lines else f"{len(lines)} lines, all blank"
        raise DataError(f"{path}: empty corpus ({what})")


def check_same_length(
    source_path: str | Path, source: list[str], target_path: str | Path, target: list[str]
) -> None:
    """Source and target sides must have as many lines each."""
    if len(source) != len(target):
        raise DataError(
            f"line counts differ: {source_path} has {len(source)} lines, "
            f"{target_path} has {len(target)} lines"
        )


def read_parallel(source_path: str | Path, target_path: str | Path) -> tuple[list[str], list[str]]:
    """Read and check both sides of a parallel corpus (UTF-8, non-empty, aligned).

    A blank line facing a non-blank one is accepted; only an all-blank side counts as empty.
    """
    source_path, target_path = check_exists(source_path), check_exists(target_path)
    source, target = read_lines(source_path), read_lines(target_path)
    check_not_empty(source_path, source)
    check_not_empty(target_path, target)
    check_same_length(source_path, source, target_path, target)
    return source, target


TEST_SETS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"newstest-?2014"), "newstest2014, the WMT'14 test set"),
    (re.compile(r"newstest-?2018"), "newstest2018, the WMT'19 En-De test set of HAT and LLM-PP"),
    (re.compile(r"newstest-?2019"), "newstest2019, the WMT'19 test set"),
    (re.compile(r"(?<![a-z])test_201[678]"), "a Multi30k test set (test_2016/2017/2018)"),
)
"""Names of known test sets (matched in lower case) and what they are."""


def refuse_test_set(name: str, what: str) -> None:
    """Raise a `ConfigError` when `name` (a file, folder or corpus split) is a known test set."""
    lowered = name.lower()
    for pattern, description in TEST_SETS:
        if pattern.search(lowered):
            raise ConfigError(
                f"{what}: {name!r} is {description}; task examples must come from the task's "
                "training data (or a development set), never from a test set"
            )

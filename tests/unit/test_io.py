"""Atomic writes and line-numbered reading."""

from __future__ import annotations

import gzip
import os
import stat

import pytest

from nasflow.core.errors import DataError
from nasflow.core.io import atomic_path, iter_jsonl, read_lines, write_json_atomic


def test_atomic_path_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_uses_the_umask_mode(tmp_path):
    target = tmp_path / "nested" / "out.json"
    write_json_atomic(target, {"a": 1})
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask
    assert target.read_text().strip() == '{\n  "a": 1\n}'


def test_reading_names_the_bad_line(tmp_path):
    bad = tmp_path / "bad.txt.gz"
    with gzip.open(bad, "wb") as handle:
        handle.write(b"ok\n\xff\xfe broken\n")
    with pytest.raises(DataError, match=r"bad.txt.gz:2: not valid UTF-8"):
        read_lines(bad)
    jsonl = tmp_path / "x.jsonl"
    jsonl.write_text('{"a": 1}\n\n[1, 2]\n')
    with pytest.raises(DataError, match=r"x.jsonl:3: expected a JSON object"):
        list(iter_jsonl(jsonl))
    jsonl.write_text('{"a": 1}\n{"a": \n')
    with pytest.raises(DataError, match=r"x.jsonl:2: invalid JSON"):
        list(iter_jsonl(jsonl))
    with pytest.raises(DataError, match="file not found"):
        read_lines(tmp_path / "absent.txt")

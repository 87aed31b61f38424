"""Small file helpers: atomic writes, line-numbered reading of (gzipped) text and jsonl, and
guarded opening of files that must never run code or be overwritten when damaged (torch files,
SQLite caches). Every failure is one line that names the file."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import pickle
import re
import sqlite3
import tempfile
import warnings
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from nasflow.core.errors import DataError


def read_lines(path: str | Path) -> list[str]:
    """Read all lines (without trailing newlines); an undecodable line is named in the error."""
    lines: list[str] = []
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    if not path.exists():
        raise DataError(f"{path}: file not found")
    with gzip_errors(path), opener(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise DataError(
                    f"{path}:{number}: not valid UTF-8 ({error.reason} at byte {error.start})"
                ) from None
            lines.append(text.rstrip("\r\n"))
    return lines


@contextlib.contextmanager
def gzip_errors(path: str | Path) -> Iterator[None]:
    """Turn the decompression errors of reading `path` inside the block (a truncated or
    non-gzip `.gz` file) into a one-line DataError that names the file."""
    try:
        yield
    except EOFError:
        raise DataError(
            f"{path}: truncated gzip file (the compressed data ends early: an interrupted "
            "download or copy?); fetch or copy it again"
        ) from None
    except gzip.BadGzipFile as error:
        raise DataError(f"{path}: not a gzip file ({error}), though its name ends in .gz") from None
    except zlib.error as error:
        raise DataError(f"{path}: corrupt gzip data ({error})") from None


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield `(line_number, record)` for every non-blank line of a jsonl(.gz) file."""
    for number, line in enumerate(read_lines(path), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(f"{path}:{number}: invalid JSON ({error.msg})") from None
        if not isinstance(record, dict):
            raise DataError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
        yield number, record


def read_state_rows(
    path: str | Path, what: str, required: Iterable[str] = (), hint: str = ""
) -> list[tuple[int, dict[str, Any]]]:
    """`(line number, row)` of an append-only jsonl state file (one JSON object appended per
    finished item), `[]` when it does not exist.

    A torn last line (a kill mid-append: no newline at its end and not a JSON object) is
    dropped, and the file rewritten without it so that the next row starts on a line of its
    own. Any other damage (an earlier line that is not valid UTF-8 or JSON, not an object, or
    lacks a `required` key) raises DataError naming the file, the line and `what` it holds;
    `hint` (what to do about it) ends the message. Nothing is rewritten then.
    """
    path = Path(path)
    if not path.is_file():
        return []
    data = path.read_bytes()
    raw_lines = data.split(b"\n")
    if raw_lines and raw_lines[-1] == b"":
        raw_lines.pop()
    complete = data.endswith(b"\n")
    end = f"; {hint}" if hint else ""
    rows: list[tuple[int, dict[str, Any]]] = []
    torn = False
    for number, raw in enumerate(raw_lines, start=1):
        last_unfinished = number == len(raw_lines) and not complete
        try:
            line = raw.decode("utf-8")
            row = json.loads(line) if line.strip() else None
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            if last_unfinished:
                torn = True
                break
            reason = error.msg if isinstance(error, json.JSONDecodeError) else "not UTF-8"
            raise DataError(f"{path}:{number}: damaged {what} row ({reason}){end}") from None
        if row is None:
            continue
        if not isinstance(row, dict):
            if last_unfinished:
                torn = True
                break
            raise DataError(
                f"{path}:{number}: a {what} row must be a JSON object, not "
                f"{type(row).__name__}{end}"
            )
        missing = [key for key in required if key not in row]
        if missing:
            raise DataError(f"{path}:{number}: the {what} row lacks {', '.join(missing)}{end}")
        rows.append((number, row))
    if data and not complete:  # a torn line dropped, or a whole last row without its newline
        kept = raw_lines[:-1] if torn else raw_lines
        with atomic_path(path) as tmp:
            tmp.write_bytes(b"".join(line + b"\n" for line in kept))
    return rows


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    Nothing half-written is ever left at `path`: on error the temporary file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if tmp.exists():  # mkstemp creates 0600; give the file the usual umask-based mode
            os.chmod(tmp, 0o666 & ~_current_umask())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write `text` to `path` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_jsonl_atomic(path: str | Path, records: list[dict[str, Any]]) -> None:
    """Write one JSON object per line to `path` atomically."""
    body = "".join(json.dumps(record, sort_keys=False) + "\n" for record in records)
    write_text_atomic(path, body)


def write_json_atomic(path: str | Path, obj: Any) -> None:
    """Write `obj` as indented JSON to `path` atomically."""
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


# ---- files that must not run code or be overwritten ----------------------------------------------


def one_line(error: BaseException) -> str:
    """`Type: first sentence of the message` (torch's messages span many lines)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    first = lines[0]
    if len(first) > 120 and ". " in first:
        first = first[: first.index(". ")]
    return f"{type(error).__name__}: {first}"


def _refused_import(error: BaseException) -> str | None:
    """The global (`module.name`) the weights-only unpickler refused to import, if that was it."""
    found = re.search(r"GLOBAL ([\w.]+)", str(error))
    return found.group(1) if found else None


def _unpickler_complaint(error: BaseException) -> str:
    """The weights-only unpickler's own complaint, from its many-line message."""
    found = re.search(r"(Unsupported [^\n]*)", str(error))
    return found.group(1).strip().rstrip(".") if found else one_line(error)


def load_torch(
    path: str | Path,
    what: str,
    *,
    error: type[Exception] = DataError,
    allow: Iterable[Any] = (),
    hint: str = "",
) -> Any:
    """`torch.load(path, weights_only=True)`: tensors and plain containers only, never code.

    A file that would need any other Python object (a crafted pickle, a foreign checkpoint) is
    refused before anything in it runs; that and every other failure (missing, empty, truncated,
    not a torch file) raise `error` with one line naming `path` and `what` it should hold.
    `allow` adds types this one call may rebuild (`torch.serialization.safe_globals`); `hint`
    (what to do about it) ends every message.
    """
    import torch

    path = Path(path)
    end = f"; {hint}" if hint else ""
    if not path.is_file():
        raise error(f"{path}: {what} not found{end}")
    if path.stat().st_size == 0:
        raise error(f"{path}: cannot read {what} (the file is empty){end}")
    try:
        with warnings.catch_warnings(), torch.serialization.safe_globals(list(allow)):
            warnings.simplefilter("ignore")  # e.g. "Detected pickle protocol 4"
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as failure:
        name = _refused_import(failure)
        if name is not None:
            raise error(
                f"{path}: refused to read {what}: it would import {name}, and nasflow loads only "
                "tensors and plain data, so nothing in the file was run (a file from elsewhere, "
                f"or crafted){end}"
            ) from None
        raise error(
            f"{path}: cannot read {what} (not a torch file, or damaged: "
            f"{_unpickler_complaint(failure)}; nothing in it was run){end}"
        ) from None
    except Exception as failure:  # torch raises many types for truncated or foreign files
        with open(path, "rb") as handle:
            zipped = handle.read(4) == b"PK\x03\x04"  # what torch.save writes
        kind = "a truncated or damaged torch file" if zipped else "not a torch file"
        raise error(f"{path}: cannot read {what} ({kind}: {one_line(failure)}){end}") from None


def connect_sqlite(
    path: str | Path,
    what: str,
    *,
    setup: Iterable[str] = (),
    **connect: Any,
) -> sqlite3.Connection:
    """Open the SQLite file at `path` (created when absent) and run the `setup` statements.

    A damaged file (not a database, malformed) is refused, never rewritten: it may hold data
    that cost money or hours. The error is one line that names the file, what is wrong and how
    to move it aside; any other SQLite failure at open names the file too.
    """
    name = str(path)
    db: sqlite3.Connection | None = None
    try:
        db = sqlite3.connect(name, **connect)
        db.execute("PRAGMA schema_version").fetchone()  # reads the header: damage shows here
        for statement in setup:
            db.execute(statement)
        db.commit()
        return db
    except sqlite3.Error as failure:
        if db is not None:
            db.close()
        code = getattr(failure, "sqlite_errorname", "")
        if code in ("SQLITE_NOTADB", "SQLITE_CORRUPT") or "not a database" in str(failure):
            raise DataError(
                f"{name}: the {what} is damaged ({failure}); it was left as it is. Move it "
                f"aside (with any -wal/-shm file beside it), e.g. `mv {name} {name}.damaged`, "
                "to start a new one, or restore a copy"
            ) from None
        raise DataError(f"{name}: cannot open the {what} ({one_line(failure)})") from None

"""Persistent SQLite cache of LLM replies, safe under concurrent writers.

One row per request, keyed by the sha256 of (provider, endpoint, model, full prompt, sampling
parameters, sample index, attempt). It stores the reply, the parsed value, token usage, latency
and a timestamp. WAL journaling plus a busy timeout let several Snakemake jobs read and write
the same file; every write is a single autocommitted statement, so a killed run keeps every
reply it received. Never stores the API key.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS replies (
    key TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    model TEXT NOT NULL,
    prompt TEXT NOT NULL,
    params TEXT NOT NULL,
    sample INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    reply TEXT NOT NULL,
    value REAL,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    latency_s REAL,
    created REAL NOT NULL
)
"""


@dataclass(frozen=True)
class RequestKey:
    """Everything a reply depends on."""

    provider: str
    endpoint: str
    model: str
    prompt: str
    params: Mapping[str, Any]
    sample: int
    attempt: int = 0

    @property
    def digest(self) -> str:
        canonical = json.dumps(
            [self.provider, self.endpoint, self.model, self.prompt, dict(self.params),
             self.sample, self.attempt],
            sort_keys=True,
            separators=(",", ":"),
        )  # fmt: skip
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CachedReply:
    """A stored reply."""

    reply: str
    value: float | None
    prompt_tokens: int | None
    completion_tokens: int | None
    latency_s: float | None


class ReplyCache:
    """The cache file at `path` (created on first use)."""

    def __init__(self, path: str | Path, timeout_s: float = 120.0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            self.path, timeout=timeout_s, isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA busy_timeout={int(timeout_s * 1000)}")
        self._db.execute(SCHEMA)
        self._lock = threading.Lock()  # one connection shared by the request threads

    def get(self, key: RequestKey) -> CachedReply | None:
        with self._lock:
            row = self._db.execute(
                "SELECT reply, value, prompt_tokens, completion_tokens, latency_s FROM replies "
                "WHERE key = ?",
                (key.digest,),
            ).fetchone()
        return CachedReply(*row) if row else None

    def put(self, key: RequestKey, entry: CachedReply) -> None:
        with self._lock:
            self._insert(key, entry)

    def _insert(self, key: RequestKey, entry: CachedReply) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO replies VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                key.digest,
                key.provider,
                key.endpoint,
                key.model,
                key.prompt,
                json.dumps(dict(key.params), sort_keys=True),
                key.sample,
                key.attempt,
                entry.reply,
                entry.value,
                entry.prompt_tokens,
                entry.completion_tokens,
                entry.latency_s,
                time.time(),
            ),
        )

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM replies").fetchone()[0])

    def close(self) -> None:
        self._db.close()

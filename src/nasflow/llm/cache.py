"""Persistent SQLite cache of LLM replies, safe under concurrent writers.

One row per request, keyed by the sha256 of (provider, endpoint, model, full prompt, sampling
parameters, sample index, attempt). It stores the reply, the parsed value, token usage, latency
and a timestamp. WAL journaling plus a busy timeout let several Snakemake jobs read and write
the same file; every reply is committed as soon as it arrives, so a killed run keeps every reply
it received. Never stores the API key.

A stored reply is never replaced: the first one kept is the one every later reader gets
(`INSERT OR IGNORE`), so predictions written earlier agree with the cache. `fetch` asks for a
missing reply at most once across processes: it claims the key first (a row in `claims` with an
owner and an expiry that a heartbeat thread keeps pushing forward while the owner works), and a
process that finds a live claim waits for the owner's reply instead of paying for it again. A
claim whose owner died (killed run) stops being renewed and is taken over once it expires.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nasflow.core.io import connect_sqlite

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

CLAIMS_SCHEMA = """
CREATE TABLE IF NOT EXISTS claims (
    key TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    expires REAL NOT NULL
)
"""

BATCHES_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    fingerprint TEXT PRIMARY KEY,
    batch_id TEXT NOT NULL,
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


def open_cache_db(path: Path, timeout_s: float) -> sqlite3.Connection:
    """The cache file's connection (WAL, busy timeout, the replies table). A damaged file (not
    a database, malformed) is refused with one line that names it and says how to move it
    aside; it is never rewritten, since it holds paid replies (`nasflow.core.io.connect_sqlite`)."""
    return connect_sqlite(
        path,
        "LLM reply cache",
        setup=("PRAGMA journal_mode=WAL", f"PRAGMA busy_timeout={int(timeout_s * 1000)}", SCHEMA),
        timeout=timeout_s,
        isolation_level=None,
        check_same_thread=False,
    )


class ReplyCache:
    """The cache file at `path` (created on first use)."""

    def __init__(self, path: str | Path, timeout_s: float = 120.0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = open_cache_db(self.path, timeout_s)
        self._lock = threading.Lock()  # one connection shared by the request threads

    def get(self, key: RequestKey) -> CachedReply | None:
        with self._lock:
            row = self._db.execute(
                "SELECT reply, value, prompt_tokens, completion_tokens, latency_s FROM replies "
                "WHERE key = ?",
                (key.digest,),
            ).fetchone()
        return CachedReply(*row) if row else None

    def put(self, key: RequestKey, entry: CachedReply) -> bool:
        """Store `entry` unless a reply is stored already (the first one is kept); whether it
        was stored."""
        with self._lock:
            return self._insert(key, entry)

    def _insert(self, key: RequestKey, entry: CachedReply) -> bool:
        inserted = self._db.execute(
            "INSERT OR IGNORE INTO replies VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        ).rowcount
        return inserted > 0

    # Claims: one request per key across processes (module doc).

    claim_ttl_s: float = 60.0  # a claim not renewed for this long is taken over
    poll_s: float = 0.1  # how often a waiting process looks for the owner's reply

    def fetch(self, key: RequestKey, ask: Callable[[], CachedReply]) -> tuple[CachedReply, bool]:
        """The stored reply of `key`, else the one `ask()` gets under a claim (or the one the
        process that holds a live claim stores meanwhile); and whether `ask` was called. The
        reply returned is always the stored one: the first stored wins, also over ours. If `ask`
        raises, the claim is released for the next process and the error propagates."""
        while True:
            entry, token = self._get_or_claim(key)
            if entry is not None:
                return entry, False
            if token is not None:
                break
            time.sleep(self.poll_s)
        try:
            mine = ask()
        except BaseException:
            self._release(key.digest, token)
            raise
        with self._lock:  # the reply and the end of the claim in one transaction
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._insert(key, mine)
                self._db.execute(
                    "DELETE FROM claims WHERE key = ? AND owner = ?", (key.digest, token)
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                self._held.pop(key.digest, None)
                raise
            self._held.pop(key.digest, None)
            return self._stored(key.digest) or mine, True

    def _get_or_claim(self, key: RequestKey) -> tuple[CachedReply | None, str | None]:
        """(stored reply, None), (None, our claim token), or (None, None): someone else's live
        claim."""
        digest = key.digest
        with self._lock:
            self._ensure_claims()
            entry = self._stored(digest)
            if entry is not None:
                return entry, None
            if self._live_claim(digest):
                return None, None  # checked without the write lock first: waiters poll cheaply
            self._db.execute("BEGIN IMMEDIATE")  # the write lock: check and claim in one step
            try:
                entry = self._stored(digest)
                if entry is not None or self._live_claim(digest):
                    self._db.execute("COMMIT")
                    return entry, None
                token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex}"
                self._db.execute(
                    "INSERT OR REPLACE INTO claims VALUES (?, ?, ?)",  # ours, or an expired one
                    (digest, token, time.time() + self.claim_ttl_s),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._held[digest] = token
            self._start_heartbeat()
        return None, token

    def _stored(self, digest: str) -> CachedReply | None:
        row = self._db.execute(
            "SELECT reply, value, prompt_tokens, completion_tokens, latency_s FROM replies "
            "WHERE key = ?",
            (digest,),
        ).fetchone()
        return CachedReply(*row) if row else None

    def _live_claim(self, digest: str) -> bool:
        row = self._db.execute("SELECT expires FROM claims WHERE key = ?", (digest,)).fetchone()
        return row is not None and row[0] > time.time()

    def _release(self, digest: str, token: str) -> None:
        with self._lock:
            self._held.pop(digest, None)
            self._db.execute("DELETE FROM claims WHERE key = ? AND owner = ?", (digest, token))

    def _ensure_claims(self) -> None:
        """The claims table and this cache's claim state (callers hold `_lock`)."""
        if getattr(self, "_held", None) is None:
            self._db.execute(CLAIMS_SCHEMA)
            self._held: dict[str, str] = {}
            self._stop = threading.Event()
            self._heartbeat: threading.Thread | None = None

    def _start_heartbeat(self) -> None:
        if self._heartbeat is None:
            self._heartbeat = threading.Thread(
                target=self._renew, name="llm-cache-claims", daemon=True
            )
            self._heartbeat.start()

    def _renew(self) -> None:
        """Push the expiry of every claim this cache holds forward while the process lives."""
        while not self._stop.wait(self.claim_ttl_s / 4):
            with self._lock:
                if self._stop.is_set():
                    return
                expires = time.time() + self.claim_ttl_s
                for digest, token in list(self._held.items()):
                    self._db.execute(
                        "UPDATE claims SET expires = ? WHERE key = ? AND owner = ?",
                        (expires, digest, token),
                    )

    # Batches (OpenAI Batch API) in flight: a killed job's rerun resumes its batch.

    def open_batch(self, fingerprint: str) -> str | None:
        """The id of the batch recorded for this set of requests, if one is in flight."""
        with self._lock:
            self._db.execute(BATCHES_SCHEMA)
            row = self._db.execute(
                "SELECT batch_id FROM batches WHERE fingerprint = ?", (fingerprint,)
            ).fetchone()
        return row[0] if row else None

    def record_batch(self, fingerprint: str, batch_id: str) -> None:
        """Remember the batch created for this set of requests."""
        with self._lock:
            self._db.execute(BATCHES_SCHEMA)
            self._db.execute(
                "INSERT OR REPLACE INTO batches VALUES (?, ?, ?)",
                (fingerprint, batch_id, time.time()),
            )

    def close_batch(self, fingerprint: str) -> None:
        """Forget the batch of this set of requests (its replies are stored, or it failed)."""
        with self._lock:
            self._db.execute(BATCHES_SCHEMA)
            self._db.execute("DELETE FROM batches WHERE fingerprint = ?", (fingerprint,))

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM replies").fetchone()[0])

    def close(self) -> None:
        stop = getattr(self, "_stop", None)
        if stop is not None:
            stop.set()
            with self._lock:
                for digest, token in list(self._held.items()):
                    self._db.execute(
                        "DELETE FROM claims WHERE key = ? AND owner = ?", (digest, token)
                    )
                self._held.clear()
        self._db.close()

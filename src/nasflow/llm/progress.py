"""Progress of a labelling job as plain log lines (one per `interval_s`, and a last one).

Each line stands alone, ends with a newline and holds no carriage return, so a job's log file
reads the same as a terminal: architectures done of the total, replies served from the cache,
failed architectures, requests sent, tokens so far, elapsed time and, while requests go out,
the time left at the rate so far.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

PROGRESS_INTERVAL_S = 30.0
"""Seconds between two progress lines of a running job."""


class _Result(Protocol):
    requests: int
    cache_hits: int
    prompt_tokens: int
    completion_tokens: int

    @property
    def failed(self) -> bool: ...


def format_duration(seconds: float) -> str:
    """`42s`, `3m05s` or `2h07m`."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Progress:
    """Tallies finished predictions (thread-safe) and prints a line through `emit` at most
    every `interval_s` seconds; `finish()` prints the last one."""

    def __init__(
        self,
        label: str,
        total: int,
        emit: Callable[[str], None],
        interval_s: float | None = None,
    ):
        self.label = label
        self.total = total
        self.emit = emit
        self.interval_s = PROGRESS_INTERVAL_S if interval_s is None else interval_s
        self.done = self.cached = self.failed = self.requests = 0
        self.prompt_tokens = self.completion_tokens = 0
        self._sent_done = 0  # architectures that needed at least one request
        self._start = self._last = time.monotonic()
        self._lock = threading.Lock()

    def update(self, result: _Result) -> None:
        """Count one finished architecture; print a line when `interval_s` has passed."""
        with self._lock:
            self.done += 1
            self.cached += result.cache_hits
            self.failed += int(result.failed)
            self.requests += result.requests
            self._sent_done += int(result.requests > 0)
            self.prompt_tokens += result.prompt_tokens
            self.completion_tokens += result.completion_tokens
            now = time.monotonic()
            if now - self._last < self.interval_s:
                return
            self._last = now
            line = self.line(now)
        self.emit(line)

    def finish(self) -> None:
        """Print the last line (every architecture done)."""
        with self._lock:
            line = self.line(time.monotonic())
        self.emit(line)

    def line(self, now: float) -> str:
        elapsed = now - self._start
        text = (
            f"{self.label}: {self.done}/{self.total} architectures, {self.cached} replies "
            f"from the cache, {self.failed} failed, {self.requests} requests sent, "
            f"{self.prompt_tokens:,} prompt + {self.completion_tokens:,} completion tokens, "
            f"{format_duration(elapsed)} elapsed"
        )
        left = self.total - self.done
        if left > 0 and self._sent_done:  # requests go out: the rate so far
            text += f", about {format_duration(elapsed / self.done * left)} left"
        return text

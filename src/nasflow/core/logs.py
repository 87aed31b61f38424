"""Logging of the `nasflow` command: one format on standard error, and progress of long loops.

`setup_logging(level)` (called once by the command's entry point) sends every record to standard
error (a job's log file under Snakemake) as `time LEVEL logger: message`; library modules log
through `logging.getLogger(__name__)`. Records of the `nasflow` loggers pass at `level`, those of
other libraries at WARNING and above (no HTTP-client chatter in the logs).

`progress(...)` reports a loop: a tqdm bar when standard error is a terminal, otherwise one log
line every `every_s` seconds (no carriage returns in log files).
"""

from __future__ import annotations

import logging
import sys
import time
from abc import ABC, abstractmethod
from typing import Any, TextIO

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
PROGRESS_SECONDS = 30.0

logger = logging.getLogger(__name__)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A handler that writes to the current `sys.stderr` (so later redirections hold)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:  # StreamHandler.__init__ assigns it
        pass


def setup_logging(level: str | int = "INFO") -> None:
    """Log `nasflow` records at `level` and other libraries' at WARNING, to standard error.

    Calling it again replaces the handler it installed (idempotent).
    """
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(handler)
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter(FORMAT, DATE_FORMAT))
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("nasflow").setLevel(level.upper() if isinstance(level, str) else level)


def stderr_is_terminal() -> bool:
    """Whether standard error is an interactive terminal (progress bars make sense there)."""
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())


class _Reporter(ABC):
    """Context-manager support shared by the two reporters: leaving the block closes."""

    @abstractmethod
    def close(self) -> None:
        """Finish: the last progress line, or the bar closed."""

    def __enter__(self) -> _Reporter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Progress(_Reporter):
    """Progress of a loop of `total` items, logged every `every_s` seconds (see `progress`)."""

    def __init__(
        self,
        total: int | None,
        desc: str,
        unit: str,
        initial: int,
        every_s: float,
        log: logging.Logger | None,
    ) -> None:
        self.total, self.desc, self.unit, self.n = total, desc, unit, initial
        self.every_s, self.log, self.postfix = every_s, log, ""
        self._start = self._last = time.monotonic()
        self._start_n = initial

    def update(self, n: int = 1) -> None:
        """Count `n` more items; log a line when `every_s` seconds passed since the last."""
        self.n += n
        if time.monotonic() - self._last >= self.every_s:
            self._emit()

    def set_progress(self, done: int, total: int | None = None) -> None:
        """Set the count (and the total) outright."""
        if total is not None:
            self.total = total
        self.update(done - self.n)

    def set_postfix(self, **values: Any) -> None:
        """Values shown after the count (as tqdm's `set_postfix`)."""
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def close(self) -> None:
        """Log the final count."""
        self._emit()

    def _emit(self) -> None:
        if self.log is None:  # disabled
            return
        now = time.monotonic()
        self._last = now
        rate = (self.n - self._start_n) / max(now - self._start, 1e-9)
        of = f"/{self.total}" if self.total else ""
        percent = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        tail = f", {self.postfix}" if self.postfix else ""
        self.log.info(
            "%s: %d%s %s%s, %.2f %s/s%s", self.desc, self.n, of, self.unit, percent, rate,
            self.unit, tail,
        )  # fmt: skip


class _Bar(_Reporter):
    """A tqdm bar with `Progress`'s interface."""

    def __init__(self, bar: Any) -> None:
        self.bar = bar

    def update(self, n: int = 1) -> None:
        self.bar.update(n)

    def set_progress(self, done: int, total: int | None = None) -> None:
        if total is not None:
            self.bar.total = total
        self.bar.n = done
        self.bar.refresh()

    def set_postfix(self, **values: Any) -> None:
        self.bar.set_postfix(**values)

    def close(self) -> None:
        self.bar.close()


def progress(
    total: int | None,
    desc: str,
    *,
    unit: str = "it",
    initial: int = 0,
    disable: bool = False,
    every_s: float = PROGRESS_SECONDS,
    log: logging.Logger | None = None,
) -> Progress | _Bar:
    """A reporter of a loop's progress: `update(n)`, `set_progress(done, total)`,
    `set_postfix(...)`, `close()` (or use it as a context manager).

    A tqdm bar when standard error is a terminal; otherwise a line through `log` (default this
    module's logger) every `every_s` seconds and one at `close()`. `disable` reports nothing.
    """
    if disable:
        return Progress(total, desc, unit, initial, float("inf"), None)
    if stderr_is_terminal():
        from tqdm import tqdm

        bar = tqdm(
            total=total, initial=initial, desc=desc, unit=unit, file=sys.stderr,
            mininterval=2.0, dynamic_ncols=True,
        )  # fmt: skip
        return _Bar(bar)
    return Progress(total, desc, unit, initial, every_s, log or logger)

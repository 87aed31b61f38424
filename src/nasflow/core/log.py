"""One line of progress for the user, on standard error (a job's log file under Snakemake)."""

from __future__ import annotations

import sys


def log(message: str) -> None:
    """Print `message` to standard error and flush, so that logs follow a running job."""
    print(message, file=sys.stderr, flush=True)

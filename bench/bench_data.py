"""Benchmark SentencePiece encoding of Multi30k train: per-sentence Python loop vs one batched call.

Usage: `python bench/bench_data.py` (reads `$NASFLOW_MIRROR`, else `<repo>/../shared/data`).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sentencepiece as spm

from nasflow.data.checks import read_parallel
from nasflow.data.prepare import train_sentencepiece

REPO = Path(__file__).resolve().parents[1]
VOCAB_SIZE = 8000
THREADS = 2


def _mirror() -> Path | None:
    folder = Path(os.environ.get("NASFLOW_MIRROR") or REPO.parent / "shared" / "data")
    return folder if (folder / "multi30k" / "train.en.gz").is_file() else None


def _time(label: str, func: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = func()
    seconds = time.perf_counter() - start
    print(f"{label:<40} {seconds:8.3f} s")
    return seconds, result


def main() -> int:
    """Train a small model, then time both ways of encoding the train split (en + de)."""
    mirror = _mirror()
    if mirror is None:
        print("skipped: shared data mirror not found (set NASFLOW_MIRROR)")
        return 0
    source, target = read_parallel(mirror / "multi30k/train.en.gz", mirror / "multi30k/train.de.gz")
    lines = source + target
    print(f"Multi30k train en+de: {len(lines)} sentences, vocab {VOCAB_SIZE} (bpe)")
    with tempfile.TemporaryDirectory() as tmp:
        _time("train spm", lambda: train_sentencepiece(lines, tmp, vocab_size=VOCAB_SIZE))
        processor = spm.SentencePieceProcessor(model_file=str(Path(tmp) / "spm.model"))
    loop_s, looped = _time(
        "per-sentence loop", lambda: [processor.encode(line, out_type=int) for line in lines]
    )
    batch_s, batched = _time(
        f"batched encode (num_threads={THREADS})",
        lambda: processor.encode(lines, out_type=int, num_threads=THREADS),
    )
    if looped != batched:
        print("error: batched ids differ from per-sentence ids", file=sys.stderr)
        return 1
    tokens = sum(len(ids) for ids in batched)
    print(f"tokens: {tokens}; speed-up batched/loop: {loop_s / batch_s:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

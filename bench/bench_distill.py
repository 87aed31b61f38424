"""Benchmark LLM-Distill-PP inference: `DistilledPredictor.predict` throughput (archs/s).

An MLP of the default shape (10 -> 400, 3 x 400, -> 1) is trained for `--train-steps` steps on
random BLEU labels of `hat-wmt` architectures (throughput does not depend on the weights). Then,
for batches of 10, 1,000 and 100,000 architectures, in the same run:

- **batched**: one `predict(batch)` call (vectorised features, chunked forward passes);
- **per-arch loop** (the baseline): `predict([arch])` for each arch, timed on at most
  `--loop-cap` archs of the batch and reported as archs/s;
- the speedup batched / per-arch loop, and the share of the batched time spent building features.

Each figure is the best of `--repeats` timings. Target: >= 100,000 archs/s for the 100,000 batch
on CPU.

Usage: `python bench/bench_distill.py [--threads 2] [--device cpu] [--repeats 5]`.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch

from nasflow.predictors.distilled import DistillSettings, distill_feature_matrix, train_distill_mlp
from nasflow.space.hat import Arch, get_space

SPACE = "hat-wmt"
SIZES = (10, 1_000, 100_000)
TARGET = 100_000


def _best_seconds(run: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def _archs(n: int, seed: int) -> list[Arch]:
    """`n` sampled architectures (duplicates allowed: only throughput is measured)."""
    space, rng = get_space(SPACE), random.Random(seed)
    return [space.sample(rng) for _ in range(n)]


def _per_arch_loop(predict: Callable[[Sequence[Arch]], np.ndarray], archs: list[Arch]) -> None:
    for arch in archs:
        predict([arch])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--train-archs", type=int, default=512)
    parser.add_argument("--train-steps", type=int, default=50)
    parser.add_argument("--loop-cap", type=int, default=1000, help="archs timed one at a time")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    start = time.perf_counter()
    train = _archs(args.train_archs, args.seed)
    labels = 20 + 5 * np.random.default_rng(args.seed).random(len(train))
    settings = DistillSettings(steps=args.train_steps, device=args.device)
    predictor = train_distill_mlp(train, labels, settings, name="bench")
    pool = _archs(max(SIZES), args.seed + 1)
    print(
        f"-- DistilledPredictor.predict on {SPACE}: MLP 10->{settings.hidden_dim}, "
        f"{settings.hidden_layers} x {settings.hidden_dim}, ->1, {args.threads} threads, "
        f"device {args.device}, "
        f"best of {args.repeats} (setup {time.perf_counter() - start:.1f} s)"
    )
    space = get_space(SPACE)
    batched_rate = 0.0
    for size in SIZES:
        batch = pool[:size]
        predictor.predict(batch)  # warm-up
        batched = _best_seconds(lambda b=batch: predictor.predict(b), args.repeats)
        features = _best_seconds(lambda b=batch: distill_feature_matrix(b, space), args.repeats)
        looped = batch[: args.loop_cap]
        loop = _best_seconds(lambda b=looped: _per_arch_loop(predictor.predict, b), args.repeats)
        batched_rate, loop_rate = size / batched, len(looped) / loop
        print(
            f"batch {size:>7,}: batched {batched_rate:>11,.0f} archs/s "
            f"(features {100 * features / batched:4.1f}% of the time) | per-arch loop "
            f"{loop_rate:>7,.0f} archs/s (on {len(looped):,}) | "
            f"speedup {batched_rate / loop_rate:7.1f}x"
        )
    verdict = "meets" if batched_rate >= TARGET else "misses"
    print(f"largest batch: {batched_rate:,.0f} archs/s ({verdict} the >= {TARGET:,} target)")
    print(f"total {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

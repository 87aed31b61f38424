"""Benchmark latency measurement: ONNX Runtime vs PyTorch eager, stability, predictor error.

1. **ORT vs eager**: the same architectures (largest, smallest, `--samples` sampled) measured
   with both backends, HAT's protocol (batch 1, beam 5, the space's length), `--threads` intra-op
   threads, in one run; the ratio ORT/eager per arch and its geometric mean (target <= 0.7 on
   CPU).
2. **Stability**: the coefficient of variation (std/mean) of `--repeats` full measurements of
   the same architecture, per backend.
3. **Predictor error**: a latency dataset of `--dataset-size` architectures of the widened space
   measured with ONNX Runtime (median of `--passes` passes in shuffled orders; with
   `--drift-correction`, each measurement scaled by a reference architecture's speed at that
   moment), then the latency
   predictor with its default settings; relative MAE and Kendall tau on the held-out 10%
   (target relative MAE <= 5% on the demo space).

Nothing else should run on the machine meanwhile: latency is what is measured.

Usage: `python bench/bench_latency.py [--space demo] [--threads 1] [--dataset-size 300] [--passes 3]
[--skip-predictor]`.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from nasflow.efficiency.latency import measure
from nasflow.model import SuperTransformer
from nasflow.space.hat import SPACES, Arch, get_space

ORT_TARGET = 0.7
PREDICTOR_TARGET = 0.05


def _archs(space_name: str, samples: int, seed: int) -> list[Arch]:
    space = get_space(space_name)
    rng = random.Random(seed)
    return [space.largest(), space.smallest(), *(space.sample(rng) for _ in range(samples))]


def bench_backends(args: argparse.Namespace) -> None:
    space = get_space(args.space)
    print(
        f"-- ORT vs eager: space {space.name}, length {space.measure_len}, beam 5, "
        f"{args.threads} threads, {args.runs} runs (ms, trimmed mean)"
    )
    ratios = []
    for arch in _archs(args.space, args.samples, args.seed):
        model = SuperTransformer(space, args.vocab, layout=arch).eval()
        result = {}
        for backend in ("torch", "onnxruntime"):
            result[backend] = measure(
                model, backend=backend, runs=args.runs, warmup=5, threads=args.threads
            ).total_ms
        ratio = result["onnxruntime"] / result["torch"]
        ratios.append(ratio)
        print(
            f"{arch.id}  eager {result['torch']:8.2f}  ort {result['onnxruntime']:8.2f}  "
            f"ratio {ratio:.2f}"
        )
    geomean = math.exp(statistics.fmean(math.log(r) for r in ratios))
    verdict = "meets" if geomean <= ORT_TARGET else "misses"
    print(f"ORT/eager geometric mean {geomean:.2f} ({verdict} the <= {ORT_TARGET} target)")


def bench_stability(args: argparse.Namespace) -> None:
    space = get_space(args.space)
    print(f"-- stability: {args.repeats} full measurements of the same arch, CV = std/mean")
    for arch in (space.largest(), space.smallest()):
        model = SuperTransformer(space, args.vocab, layout=arch).eval()
        for backend in ("torch", "onnxruntime"):
            totals = [
                measure(
                    model, backend=backend, runs=args.runs, warmup=5, threads=args.threads
                ).total_ms
                for _ in range(args.repeats)
            ]
            mean = statistics.fmean(totals)
            cv = statistics.stdev(totals) / mean
            print(f"{arch.id} {backend:12s} mean {mean:8.2f} ms  CV {100 * cv:5.2f}%")


def bench_predictor(args: argparse.Namespace) -> None:
    from nasflow.efficiency.latency_dataset import DatasetSettings, collect_latency_dataset
    from nasflow.predictors.latency import PredictorSettings, train_latency_predictor

    settings = DatasetSettings(
        space=args.space,
        size=args.dataset_size,
        seed=args.seed,
        backend="onnxruntime",
        threads=args.threads,
        vocab_size=args.vocab,
        runs=args.runs,
        passes=args.passes,
        drift_correction=args.drift_correction,
    )
    print(
        f"-- predictor: {settings.size} archs of the widened {args.space} space, "
        f"onnxruntime, {args.runs} runs each, median of {args.passes} passes, "
        f"drift correction {'on' if args.drift_correction else 'off'}"
    )
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        start = time.perf_counter()
        frame = collect_latency_dataset(settings, folder / "dataset.csv", folder / "state")
        measured = time.perf_counter() - start
        print(
            f"dataset: {measured:.0f} s ({measured / len(frame):.2f} s/arch), "
            f"{frame['total_ms'].min():.2f}-{frame['total_ms'].max():.2f} ms"
        )
        start = time.perf_counter()
        report = train_latency_predictor(
            frame, args.space, PredictorSettings(), folder / "predictor"
        )
        trained = time.perf_counter() - start
    test = report["test"]
    verdict = "meets" if test["rel_mae"] <= PREDICTOR_TARGET else "misses"
    print(
        f"held-out test (n={test['n']}): relative MAE {100 * test['rel_mae']:.2f}% "
        f"({verdict} the <= {100 * PREDICTOR_TARGET:.0f}% target), MAE {test['mae_ms']:.3f} ms, "
        f"RMSE {test['rmse_ms']:.3f} ms, Kendall {test['kendall']:.3f}; trained in {trained:.1f} s"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="demo", choices=sorted(SPACES))
    parser.add_argument("--vocab", type=int, default=8000, help="vocabulary size")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=20, help="timed runs per measurement")
    parser.add_argument("--samples", type=int, default=3, help="sampled archs besides the ends")
    parser.add_argument("--repeats", type=int, default=5, help="measurements for the CV")
    parser.add_argument("--dataset-size", type=int, default=300)
    parser.add_argument("--passes", type=int, default=3, help="dataset passes (median)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--drift-correction", action=argparse.BooleanOptionalAction, default=False)
    parser.add_argument("--skip-predictor", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    bench_backends(args)
    bench_stability(args)
    if not args.skip_predictor:
        bench_predictor(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())

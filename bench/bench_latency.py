"""Benchmark latency measurement: ONNX Runtime vs PyTorch eager, stability, predictor error.

1. **ORT vs eager**: the same architectures (largest, smallest, `--samples` sampled) measured
   with both backends, HAT's protocol (batch 1, beam 5, the space's length), `--threads` intra-op
   threads, in one run; the ratio ORT/eager per arch and its geometric mean (target <= 0.7 on
   CPU).
2. **Stability**: the coefficient of variation (std/mean) of `--repeats` full measurements of
   the same architecture, per backend.
3. **Predictor error** (issue 21: labels robust to load): for each `--protocols` entry (default
   HAT's trimmed mean and the demo's robust protocol with drift correction, `robust+drift`), a
   latency dataset of
   `--dataset-size` architectures of the widened space (the same seeded architectures for every
   protocol) measured with ONNX Runtime (median of `--passes` passes; with `--drift-correction`,
   scaled by a reference architecture measured alongside), then the latency predictor
   (`--predictor-steps`); relative MAE and Kendall tau on the held-out 10%. Targets: <= 3% on a
   quiet machine, <= 5% with `--busy` (one process spinning on a core for the whole collection,
   `common.busy_cpu`); `--load both` runs quiet, then busy. The load average is printed before
   and after: other work on the machine counts as load too.

Usage: `python bench/bench_latency.py [--space demo] [--threads 1] [--dataset-size 100]
[--busy | --load both] [--protocols hat,robust,robust+drift] [--skip-backends] [--skip-predictor]`.
The defaults are the demo's (100 architectures, 10 runs, 1 thread, 2000 predictor steps):
a few minutes with `--skip-backends`.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from common import busy_cpu
from nasflow.efficiency.latency import measure
from nasflow.efficiency.robust import PROTOCOLS
from nasflow.model import SuperTransformer
from nasflow.space.hat import SPACES, Arch, get_space

ORT_TARGET = 0.7
PREDICTOR_TARGETS = {"quiet": 0.03, "busy": 0.05}  # issue 21


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


def _predictor_error(args: argparse.Namespace, variant: str, load: str) -> dict[str, float]:
    """Collect a latency dataset under `variant` (a protocol, `+drift` for drift correction)
    and fit the predictor: held-out figures."""
    protocol, _, extra = variant.partition("+")
    from nasflow.efficiency.latency_dataset import DatasetSettings, collect_latency_dataset
    from nasflow.predictors.latency import PredictorSettings, train_latency_predictor

    settings = DatasetSettings(
        space=args.space,
        size=args.dataset_size,
        seed=args.seed,
        backend="onnxruntime",
        threads=args.threads,
        vocab_size=args.vocab,
        runs=args.dataset_runs,
        passes=args.passes,
        drift_correction=args.drift_correction or extra == "drift",
        protocol=protocol,
    )
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        start = time.perf_counter()
        with busy_cpu(load == "busy"):
            frame = collect_latency_dataset(settings, folder / "dataset.csv", folder / "state")
        measured = time.perf_counter() - start
        report = train_latency_predictor(
            frame, args.space, PredictorSettings(steps=args.predictor_steps), folder / "predictor"
        )
    test = report["test"]
    target = PREDICTOR_TARGETS[load]
    verdict = "meets" if test["rel_mae"] <= target else "misses"
    tau = "n/a" if test["kendall"] is None else f"{test['kendall']:.3f}"
    print(
        f"{load:5s} {variant:12s}: held-out relative MAE {100 * test['rel_mae']:5.2f}% "
        f"({verdict} <= {100 * target:.0f}%), Kendall {tau}, n={test['n']}; "
        f"dataset {measured:.0f} s ({measured / len(frame):.2f} s/arch, "
        f"{frame['total_ms'].min():.2f}-{frame['total_ms'].max():.2f} ms, "
        f"{int(frame['retries'].sum())} re-measurements)"
    )
    return {"rel_mae": test["rel_mae"], "kendall": test["kendall"], "seconds": measured}


def bench_predictor(args: argparse.Namespace) -> None:
    loads = ("quiet", "busy") if args.load == "both" else (args.load,)
    print(
        f"-- predictor: {args.dataset_size} archs of the widened {args.space} space (seed "
        f"{args.seed}, the same for every protocol), onnxruntime, {args.threads} thread(s), "
        f"{args.dataset_runs} runs each, median of {args.passes} pass(es), drift correction "
        f"{'on' if args.drift_correction else 'off'}, predictor {args.predictor_steps} steps; "
        f"busy = one spinning process for the whole collection"
    )
    print(f"load before: {_load_average()}")
    for load in loads:
        for protocol in args.protocols:
            _predictor_error(args, protocol, load)
    print(f"load after: {_load_average()}")


def _load_average() -> str:
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "unknown"
    return f"{one:.2f} {five:.2f} {fifteen:.2f} (1, 5, 15 min) on {os.cpu_count()} cores"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="demo", choices=sorted(SPACES))
    parser.add_argument("--vocab", type=int, default=8000, help="vocabulary size")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=20, help="timed runs per measurement")
    parser.add_argument("--samples", type=int, default=3, help="sampled archs besides the ends")
    parser.add_argument("--repeats", type=int, default=5, help="measurements for the CV")
    parser.add_argument("--dataset-size", type=int, default=100, help="the demo's 100")
    parser.add_argument(
        "--dataset-runs", type=int, default=10, help="timed runs per dataset arch (demo: 10)"
    )
    parser.add_argument("--passes", type=int, default=1, help="dataset passes (median)")
    parser.add_argument("--predictor-steps", type=int, default=2000, help="the demo's 2000")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--drift-correction", action=argparse.BooleanOptionalAction, default=False)
    parser.add_argument(
        "--protocols",
        type=lambda text: text.split(","),
        default=["hat", "robust+drift"],
        help="comma-separated latency.protocol values compared, `+drift` for drift correction "
        "(default hat,robust+drift: HAT's and the demo's)",
    )
    parser.add_argument(
        "--load",
        choices=("quiet", "busy", "both"),
        default="quiet",
        help="busy: one spinning process during the whole dataset collection",
    )
    parser.add_argument("--busy", action="store_true", help="same as --load busy")
    parser.add_argument("--skip-predictor", action="store_true")
    parser.add_argument(
        "--skip-backends", action="store_true", help="skip the ORT-vs-eager and stability parts"
    )
    args = parser.parse_args()
    unknown = sorted({p.removesuffix("+drift") for p in args.protocols} - set(PROTOCOLS))
    if unknown:
        parser.error(f"--protocols: unknown {unknown}; choose from {list(PROTOCOLS)}")
    if args.busy:
        args.load = "busy"
    torch.set_num_threads(args.threads)
    if not args.skip_backends:
        bench_backends(args)
        bench_stability(args)
    if not args.skip_predictor:
        bench_predictor(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())

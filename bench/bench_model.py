"""Benchmark the elastic overhead: a subnet run inside the supernet vs the extracted dense model.

The issue's metric: the time of one forward+backward step of a subnet selected in the supernet
(`set_arch`, weights sliced on the fly) divided by the same step of `supernet.extract(arch)` (a
dense model with exactly the subnet's shapes), same batch, same run; target <= 1.05. A second
line per architecture gives the same ratio for an eval-mode forward under `torch.no_grad()`
(the inference overhead).

Architectures: the space's largest and smallest, then `--samples` drawn with
`random.Random(--seed)`. Dropout is switched off (`ModelConfig(dropout=0.0,
attention_dropout=0.0)`), so both models compute exactly the same thing and the eval logits can
be compared; its cost would be the same in both models anyway. A step is `zero_grad` + forward +
cross-entropy + backward (no optimizer). After `--warmup` steps, the two models are timed in
turns, the order swapped every round (AB BA ...) to cancel drift; the median is reported, and
beside it the ratio of the load-robust statistic of `nasflow.efficiency.robust` (the
`QUANTILE` quantile of each model's steps, the minimum by default): a disturbance only adds time,
so under load that ratio compares the undisturbed steps, as the latency labels do.

`--busy` keeps one CPU-burning process running meanwhile (a user's laptop is rarely quiet).

Usage: `python bench/bench_model.py [--space demo|hat-wmt] [--threads 2] [--device cpu|cuda]
[--busy]`.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from common import bench_device, busy_cpu, clock, random_batch
from nasflow.efficiency.robust import QUANTILE
from nasflow.model.supertransformer import ModelConfig, SuperTransformer
from nasflow.space.hat import SPACES, Arch, get_space

TARGET = 1.05
# Per space: vocabulary size, sentences, tokens per sentence, timed repetitions (other HAT
# spaces use the small hat-wmt batch).
DEFAULTS = {"demo": (8000, 64, 20, 12), "hat-wmt": (32768, 8, 20, 5)}


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="demo", choices=sorted(SPACES))
    parser.add_argument("--vocab", type=int, help="vocabulary size (8000 demo, 32768 hat-wmt)")
    parser.add_argument("--batch", type=int, help="sentences per batch (64 demo, 8 hat-wmt)")
    parser.add_argument("--length", type=int, help="tokens per sentence, source and target")
    parser.add_argument("--repeats", type=int, help="timed steps per model and arch")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per model and arch")
    parser.add_argument("--samples", type=int, default=4, help="sampled archs besides the extremes")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--busy", action="store_true", help="one CPU-burning process meanwhile")
    args = parser.parse_args(argv)
    vocab, batch, length, repeats = DEFAULTS.get(args.space, DEFAULTS["hat-wmt"])
    args.vocab = args.vocab or vocab
    args.batch = args.batch or batch
    args.length = args.length or length
    args.repeats = args.repeats or repeats
    return args


def _archs(space_name: str, samples: int, seed: int) -> list[tuple[str, Arch]]:
    space = get_space(space_name)
    archs = [("largest", space.largest()), ("smallest", space.smallest())]
    seen = {arch.id for _, arch in archs}
    rng = random.Random(seed)
    for _ in range(1000 * max(samples, 1)):
        if len(archs) >= 2 + samples:
            break
        arch = space.sample(rng)
        if arch.id not in seen:
            seen.add(arch.id)
            archs.append((f"sample {len(archs) - 1}", arch))
    return archs


def _describe(arch: Arch) -> str:
    """`E<dim>x<layers> D<dim>x<layers> ffn<mean>`: enough to tell the archs apart."""
    ffn = arch.encoder_ffn_embed_dim + arch.decoder_ffn_embed_dim
    return (
        f"E{arch.encoder_embed_dim}x{arch.encoder_layer_num} "
        f"D{arch.decoder_embed_dim}x{arch.decoder_layer_num} ffn{sum(ffn) // len(ffn)}"
    )


def _time_pair(
    first: Callable[[], object],
    second: Callable[[], object],
    warmup: int,
    repeats: int,
    device: torch.device,
) -> tuple[float, float, float]:
    """Median seconds of `first` and `second`, timed in turns with the order swapped each round,
    and the ratio of their load-robust statistic (`QUANTILE` quantile)."""
    for _ in range(warmup):
        first()
        second()
    times: tuple[list[float], list[float]] = ([], [])
    for round_ in range(repeats):
        order = (0, 1) if round_ % 2 == 0 else (1, 0)
        for which in order:
            start = clock(device)
            (first, second)[which]()
            times[which].append(clock(device) - start)
    low = [float(np.quantile(t, QUANTILE)) for t in times]
    return statistics.median(times[0]), statistics.median(times[1]), low[0] / low[1]


def _geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def main(argv: list[str] | None = None) -> int:
    """Time fwd+bwd and eval fwd of each arch inside the supernet and as an extracted model."""
    started = time.perf_counter()
    args = _arguments(argv)
    device = bench_device(args.device, args.threads)
    if device is None:
        return 0
    torch.manual_seed(args.seed)
    space = get_space(args.space)
    archs = _archs(args.space, args.samples, args.seed)
    src, prev, tgt = random_batch(args, device)
    config = ModelConfig(dropout=0.0, attention_dropout=0.0, activation_dropout=0.0)
    supernet = SuperTransformer(space, args.vocab, config).to(device)
    print(
        f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}; "
        f"space {space.name}, vocab {args.vocab}, batch {args.batch}x{args.length} tokens "
        f"(src and tgt), dropout off; {len(archs)} archs, warmup {args.warmup}, "
        f"median of {args.repeats}{'; one CPU-burning process running' if args.busy else ''}"
    )

    def train_step(model: SuperTransformer) -> None:
        model.zero_grad(set_to_none=True)
        logits = model(src, prev)
        F.cross_entropy(logits.view(-1, logits.shape[-1]), tgt.view(-1)).backward()

    def eval_forward(model: SuperTransformer) -> Tensor:
        with torch.no_grad():
            return model(src, prev)

    header = (
        f"{'arch':<34} {'step':<9} {'supernet ms':>11} {'dense ms':>9} {'ratio':>6} {'robust':>6}"
    )
    print(header)
    print("-" * len(header))
    train_ratios, eval_ratios, train_robust, eval_robust = [], [], [], []
    with busy_cpu(args.busy):
        for label, arch in archs:
            supernet.set_arch(arch)
            dense = supernet.extract(arch)
            supernet.eval()
            dense.eval()
            difference = (eval_forward(supernet) - eval_forward(dense)).abs().max().item()
            if difference > 1e-3:
                print(f"error: {arch.id} logits differ by {difference:.2e}", file=sys.stderr)
                return 1
            sup_s, dense_s, robust = _time_pair(
                partial(eval_forward, supernet),
                partial(eval_forward, dense),
                args.warmup,
                args.repeats,
                device,
            )
            eval_ratios.append(sup_s / dense_s)
            eval_robust.append(robust)
            eval_line = (sup_s * 1e3, dense_s * 1e3, sup_s / dense_s, robust)
            supernet.train()
            dense.train()
            sup_s, dense_s, robust = _time_pair(
                partial(train_step, supernet),
                partial(train_step, dense),
                args.warmup,
                args.repeats,
                device,
            )
            train_ratios.append(sup_s / dense_s)
            train_robust.append(robust)
            name = f"{label} {_describe(arch)}"
            print(
                f"{name:<34} {'fwd+bwd':<9} {sup_s * 1e3:11.1f} {dense_s * 1e3:9.1f} "
                f"{sup_s / dense_s:6.3f} {robust:6.3f}"
            )
            print(
                f"{arch.id:>34} {'fwd eval':<9} {eval_line[0]:11.1f} {eval_line[1]:9.1f} "
                f"{eval_line[2]:6.3f} {eval_line[3]:6.3f}"
            )
            del dense
    count = len(archs)
    print(
        f"inference overhead (fwd eval, geo-mean over {count} archs): median "
        f"{_geomean(eval_ratios):.3f}x, robust {_geomean(eval_robust):.3f}x"
    )
    print(
        f"elastic overhead (fwd+bwd, geo-mean over {count} archs): median "
        f"{_geomean(train_ratios):.3f}x, robust (quantile {QUANTILE:g} of the steps) "
        f"{_geomean(train_robust):.3f}x (target <= {TARGET:.2f})"
    )
    print(f"total {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

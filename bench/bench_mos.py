"""Benchmark one SPOS training step of the Mixture-of-Supernets kinds against the HAT supernet.

Three supernets of the same space and seed (HAT, layer-wise MoS and neuron-wise MoS with
`--experts` experts) each take the same training step: `set_arch` of the round's sampled subnet,
`zero_grad` + forward + cross-entropy + backward + AdamW step, on the same random batch. Each
round samples one subnet (`random.Random(--seed)`) and times the three models in turns, the
order reversed every other round (ABC CBA ...) to cancel drift; after `--warmup` untimed rounds
the median seconds per step are printed, and for each MoS kind the median over rounds of its
step time divided by HAT's in the same round (the MoS training overhead).

`--busy` starts one CPU-burning subprocess for the duration (a loaded machine).

Usage: `python bench/bench_mos.py [--space demo] [--threads 2] [--experts 2] [--busy]`.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time

import torch
import torch.nn.functional as F

from common import bench_device, busy_cpu, clock, random_batch
from nasflow.model import KINDS, MixtureConfig, ModelConfig, SuperTransformer, build_supernet
from nasflow.space.hat import SPACES, Arch, get_space

# Per space: vocabulary size, sentences, tokens per sentence (other spaces: the hat-wmt row).
DEFAULTS = {"demo": (8000, 64, 20), "hat-wmt": (32768, 8, 20)}


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="demo", choices=sorted(SPACES))
    parser.add_argument("--vocab", type=int, help="vocabulary size (8000 demo, 32768 hat-wmt)")
    parser.add_argument("--batch", type=int, help="sentences per batch (64 demo, 8 hat-wmt)")
    parser.add_argument("--length", type=int, help="tokens per sentence, source and target")
    parser.add_argument("--experts", type=int, default=2, help="experts per FFN of the MoS kinds")
    parser.add_argument("--rounds", type=int, default=15, help="timed rounds (one subnet each)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed rounds")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--busy", action="store_true", help="run a CPU-burning process meanwhile")
    args = parser.parse_args(argv)
    vocab, batch, length = DEFAULTS.get(args.space, DEFAULTS["hat-wmt"])
    args.vocab = args.vocab or vocab
    args.batch = args.batch or batch
    args.length = args.length or length
    return args


def main(argv: list[str] | None = None) -> int:
    """Time a SPOS step of HAT, layer-wise and neuron-wise MoS supernets on the same subnets."""
    started = time.perf_counter()
    args = _arguments(argv)
    device = bench_device(args.device, args.threads)
    if device is None:
        return 0
    space = get_space(args.space)
    src, prev, tgt = random_batch(args, device)
    config = ModelConfig()
    models: dict[str, SuperTransformer] = {}
    optimizers: dict[str, torch.optim.Optimizer] = {}
    for kind in KINDS:
        torch.manual_seed(args.seed)
        mixture = MixtureConfig(kind, args.experts)
        models[kind] = build_supernet(space, args.vocab, config, mixture).to(device).train()
        optimizers[kind] = torch.optim.AdamW(models[kind].parameters(), lr=1e-4)
    params = {kind: sum(p.numel() for p in m.parameters()) for kind, m in models.items()}

    def step(kind: str, arch: Arch) -> float:
        model, optimizer = models[kind], optimizers[kind]
        start = clock(device)
        model.set_arch(arch)
        optimizer.zero_grad(set_to_none=True)
        logits = model(src, prev)
        F.cross_entropy(logits.view(-1, logits.shape[-1]), tgt.view(-1)).backward()
        optimizer.step()
        return clock(device) - start

    print(
        f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}; "
        f"space {space.name}, vocab {args.vocab}, batch {args.batch}x{args.length} tokens; "
        f"experts {args.experts}; warmup {args.warmup}, median of {args.rounds} rounds"
        f"{'; one CPU-burning process running' if args.busy else ''}"
    )
    rng = random.Random(args.seed)
    times: dict[str, list[float]] = {kind: [] for kind in KINDS}
    with busy_cpu(args.busy):
        for round_ in range(args.warmup + args.rounds):
            arch = space.sample(rng)
            order = KINDS if round_ % 2 == 0 else KINDS[::-1]
            seconds = {kind: step(kind, arch) for kind in order}
            if round_ >= args.warmup:
                for kind in KINDS:
                    times[kind].append(seconds[kind])
    header = f"{'supernet':<12} {'params':>10} {'s/step':>8} {'vs hat':>7}"
    print(header)
    print("-" * len(header))
    for kind in KINDS:
        ratios = [t / h for t, h in zip(times[kind], times["hat"], strict=True)]
        print(
            f"{kind:<12} {params[kind]:>10,} {statistics.median(times[kind]):8.4f} "
            f"{statistics.median(ratios):7.3f}"
        )
    print(f"total {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

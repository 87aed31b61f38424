"""Benchmark the search time of HS-NAS against HAT on the same supernet, in the same run.

A demo-space supernet (random weights: search time does not depend on what it learnt) scores
subnets by validation loss on a synthetic prepared corpus (`--valid` sentences of 5-20 words);
LLM-Distill-PP is an MLP of the default shape trained briefly on random labels. Both searches
use the same population settings, seed and params constraint:

- **HAT**: the supernet scores all `--iterations` iterations (the baseline);
- **HS-NAS (1, N/2)**: LLM-Distill-PP scores iterations 1..N/2, the supernet the rest.

Printed: search seconds (excluding model loading, as the paper's "search hours"), the seconds
spent in each predictor, architectures scored by each, and the ratio HS-NAS / HAT (the paper
reports about 0.5 for (1, 15) of 30 iterations on WMT), under each scoring protocol
(`reference` = HAT's, every population member scored every iteration, the paper's search hours;
`cached` = elites and duplicates never re-scored), and the cached / reference ratio of HAT.

Usage: `python bench/bench_search.py [--iterations 30] [--population 12] [--threads 2]
[--protocols reference cached]`.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from pathlib import Path

import torch

from nasflow.data import prepare_corpus
from nasflow.data.prepare import load_vocab_size
from nasflow.model import SuperTransformer
from nasflow.predictors.distilled import DistillSettings, train_distill_mlp
from nasflow.predictors.supernet import SupernetPredictor
from nasflow.search import EvolutionSettings, PredictorSchedule, run_search
from nasflow.search.constraints import constraints_from_mapping
from nasflow.space.hat import get_space

WORDS = [f"w{i}" for i in range(400)]


def _corpus(folder: Path, valid: int) -> Path:
    """A synthetic parallel corpus (train for the vocabulary, `valid` validation pairs)."""
    rng = random.Random(0)
    folder.mkdir(parents=True)
    for split, count in (("train", 2000), ("val", valid), ("test", 10)):
        lines = [" ".join(rng.choices(WORDS, k=rng.randint(5, 20))) for _ in range(count)]
        for lang in ("en", "de"):
            (folder / f"{split}.{lang}").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--population", type=int, default=12, help="parents = population / 6")
    parser.add_argument("--valid", type=int, default=100, help="validation sentences")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--protocols",
        nargs="+",
        choices=("reference", "cached"),
        default=["reference", "cached"],
        help="search.protocol values to time (reference = HAT's, the paper's search hours)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    space = get_space("demo")
    parents = max(2, args.population // 6)
    children = args.population - parents
    settings = {
        "population": args.population,
        "parents": parents,
        "mutations": children // 2,
        "crossovers": children - children // 2,
        "iterations": args.iterations,
        "seed": 1,
    }
    with tempfile.TemporaryDirectory() as tmp:
        corpus = _corpus(Path(tmp) / "corpus", args.valid)
        data = Path(tmp) / "data"
        prepare_corpus(
            corpus="custom",
            source_lang="en",
            target_lang="de",
            splits={"train": "train", "valid": "val", "test": "test"},
            out_dir=data,
            source="local",
            local_dir=corpus,
            vocab_size=400,
        )
        torch.manual_seed(0)
        model = SuperTransformer(space, load_vocab_size(data)).eval()
        supernet = SupernetPredictor(model, data, max_tokens=4096)
        archs = space.sample_unique(200, seed=2)
        labels = [random.Random(a.id).uniform(5, 30) for a in archs]
        distill = train_distill_mlp(archs, labels, DistillSettings(steps=200))
        constraints = constraints_from_mapping({"params_m": 1.5}, vocab_size=400)
        half = args.iterations // 2
        schedules = {
            "HAT": PredictorSchedule.single(args.iterations, "supernet"),
            f"HS-NAS (1, {half})": PredictorSchedule.hsnas(args.iterations, 1, half),
        }
        seconds: dict[tuple[str, str], float] = {}
        print(
            f"demo space, population {args.population}, {args.iterations} iterations, "
            f"{args.valid} validation sentences, {args.threads} threads"
        )
        for protocol in args.protocols:
            for name, schedule in schedules.items():
                result = run_search(
                    space,
                    {"supernet": supernet, "distill": distill},
                    schedule,
                    constraints,
                    EvolutionSettings.from_mapping(settings),
                    protocol=protocol,
                )
                timing = result.timing
                seconds[protocol, name] = timing["search_seconds"]
                per_predictor = ", ".join(
                    f"{p} {s:.1f} s / {timing['scored'][p]} archs"
                    for p, s in timing["predictor_seconds"].items()
                )
                print(
                    f"{protocol:9s} {name:16s} search {timing['search_seconds']:7.1f} s "
                    f"({per_predictor})"
                )
        hsnas = f"HS-NAS (1, {half})"
        for protocol in args.protocols:
            ratio = seconds[protocol, hsnas] / seconds[protocol, "HAT"]
            print(f"{protocol}: ratio HS-NAS / HAT search time: {ratio:.2f} (paper: about 0.5)")
        if len(args.protocols) == 2:
            ratio = seconds["cached", "HAT"] / seconds["reference", "HAT"]
            print(f"HAT search time, cached / reference protocol: {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

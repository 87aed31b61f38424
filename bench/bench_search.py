"""Benchmark search cost: HAT's reference protocol against the cached and fast protocols and
HS-NAS, on the same supernet, constraint and seed, in one run.

A demo-space supernet is trained briefly (`--train-updates` SPOS updates on a synthetic copy task:
a random-weight supernet ranks subnets by noise, so a rank-fidelity check on it would mean
nothing; 0 = random weights) and scores subnets by validation loss on `--valid` synthetic
sentences (`--valid-words` words each). LLM-Distill-PP is an MLP of the default shape trained
briefly on random labels. Every search uses the same population settings, seed and params
constraint; the methods are

- **HAT**: the supernet scores all `--iterations` iterations;
- **HS-NAS (1, N/2)**: LLM-Distill-PP scores iterations 1..N/2, the supernet the rest;

each under every `--protocols` entry: `reference` (HAT's: every population member scored every
iteration, the paper's search hours), `cached` (elites and duplicates never re-scored), `fast`
(cached, on a validation subset chosen by a rank-fidelity check whose seconds are counted).

Printed: search seconds (model loading excluded, as the paper's "search hours"), seconds and
architectures per predictor, each run's ratio to HAT under the reference protocol (issue 21's
target: the fastest at most 0.10), the fast protocol's check (sizes tried, Kendall taus, chosen
subset, seconds), each winner's reference-protocol score (the supernet's loss score on the full
valid set), and the supernet's own noise: the standard error of the reference winner's full-set
score from a bootstrap over validation sentences (and the paired standard error of the gap). A
winner is "within noise" when it is HAT's reference winner or its full-set score is at most one
standard error below it.

Usage: `python bench/bench_search.py [--iterations 30] [--population 12] [--valid 3000]
[--train-updates 300] [--threads 2] [--protocols reference fast]`.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from nasflow.data import prepare_corpus
from nasflow.data.prepare import load_vocab_size
from nasflow.model import SuperTransformer
from nasflow.model.supertransformer import ModelConfig
from nasflow.predictors.distilled import DistillSettings, train_distill_mlp
from nasflow.predictors.supernet import SupernetPredictor
from nasflow.search import EvolutionSettings, PredictorSchedule, SearchResult, run_search
from nasflow.search.constraints import constraints_from_mapping
from nasflow.search.subset import SubsetSettings
from nasflow.space.hat import Arch, get_space
from nasflow.train.loop import Trainer
from nasflow.train.settings import TrainSettings

WORDS = [f"w{i}" for i in range(400)]
BOOTSTRAP = 1000


def _corpus(folder: Path, valid: int, valid_words: tuple[int, int]) -> Path:
    """A synthetic copy task: `{split}.en` = `{split}.de`; train 5-20 words, valid as asked."""
    rng = random.Random(0)
    folder.mkdir(parents=True)
    for split, count, (low, high) in (
        ("train", 4000, (5, 20)),
        ("val", valid, valid_words),
        ("test", 10, (5, 20)),
    ):
        lines = [" ".join(rng.choices(WORDS, k=rng.randint(low, high))) for _ in range(count)]
        for lang in ("en", "de"):
            (folder / f"{split}.{lang}").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def _supernet(data: Path, folder: Path, updates: int) -> tuple[SuperTransformer, float]:
    """The demo supernet, trained `updates` SPOS updates (0: random weights), and the seconds."""
    start = time.perf_counter()
    if updates == 0:
        torch.manual_seed(0)
        return SuperTransformer(get_space("demo"), load_vocab_size(data)).eval(), 0.0
    settings = TrainSettings(
        mode="spos",
        max_updates=updates,
        max_tokens=1024,
        lr=1e-3,
        warmup_updates=min(50, updates - 1),
        warmup_init_lr=1e-7,
        device="cpu",
        save_interval_updates=updates,
        valid_interval_updates=0,
        valid_sentences=50,
        log_interval_updates=updates,
    )
    trainer = Trainer(
        data,
        settings,
        space="demo",
        model_config=ModelConfig(dropout=0.1),
        state_dir=folder / "state",
        progress=False,
    )
    trainer.run(folder / "supernet.pt")
    predictor = SupernetPredictor.from_file(folder / "supernet.pt", data, device="cpu")
    return predictor.model.eval(), time.perf_counter() - start


def _bootstrap(
    supernet: SupernetPredictor, best: Arch, other: Arch, rng: np.random.Generator
) -> tuple[float, float]:
    """Bootstrap (over sentences) standard errors of `best`'s full-set score and of the gap
    `score(best) - score(other)` (paired: the same resampled sentences for both)."""
    _, loss_a, tokens = supernet.sentence_losses(best)
    _, loss_b, _ = supernet.sentence_losses(other)
    picks = rng.integers(0, len(tokens), size=(BOOTSTRAP, len(tokens)))
    count = tokens[picks].sum(1)
    score_a = -loss_a[picks].sum(1) / count / math.log(2)
    score_b = -loss_b[picks].sum(1) / count / math.log(2)
    return float(score_a.std(ddof=1)), float((score_a - score_b).std(ddof=1))


def _line(label: str, result: SearchResult, baseline: float) -> str:
    timing = result.timing
    per_predictor = ", ".join(
        f"{p} {s:.1f} s / {timing['scored'][p]} archs"
        for p, s in timing["predictor_seconds"].items()
    )
    subset = f", check {timing['subset_seconds']:.1f} s" if "subset_seconds" in timing else ""
    return (
        f"{label:26s} search {timing['search_seconds']:7.1f} s ({per_predictor}{subset}); "
        f"ratio to HAT reference {timing['search_seconds'] / baseline:.3f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--population", type=int, default=12, help="parents = population / 6")
    parser.add_argument("--valid", type=int, default=3000, help="validation sentences")
    parser.add_argument(
        "--valid-words", type=int, nargs=2, default=(1, 4), metavar=("MIN", "MAX"),
        help="words per validation sentence (1 4)",
    )  # fmt: skip
    parser.add_argument(
        "--train-updates", type=int, default=150, help="SPOS updates of the supernet (0: random)"
    )
    parser.add_argument("--sample", type=int, default=20, help="the fast protocol's check sample")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--protocols",
        nargs="+",
        choices=("reference", "cached", "fast"),
        default=["fast"],
        help="search.protocol values to time (HAT under reference always runs: the baseline)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    space = get_space("demo")
    parents = max(2, args.population // 6)
    children = args.population - parents
    settings = EvolutionSettings.from_mapping(
        {
            "population": args.population,
            "parents": parents,
            "mutations": children // 2,
            "crossovers": children - children // 2,
            "iterations": args.iterations,
            "seed": 1,
        }
    )
    subset = SubsetSettings(sample=args.sample)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = _corpus(Path(tmp) / "corpus", args.valid, tuple(args.valid_words))
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
        model, train_seconds = _supernet(data, Path(tmp), args.train_updates)
        archs = space.sample_unique(200, seed=2)
        labels = [random.Random(a.id).uniform(5, 30) for a in archs]
        distill = train_distill_mlp(archs, labels, DistillSettings(steps=200))
        constraints = constraints_from_mapping({"params_m": 1.5}, vocab_size=400)
        half = args.iterations // 2
        schedules = {
            "HAT": PredictorSchedule.single(args.iterations, "supernet"),
            f"HS-NAS (1, {half})": PredictorSchedule.hsnas(args.iterations, 1, half),
        }
        tokens = sum(b.ntokens for b in SupernetPredictor(model, data).batches)
        print(
            f"demo space, population {args.population}, {args.iterations} iterations, "
            f"{args.valid} validation sentences ({tokens} target tokens), {args.threads} threads, "
            f"supernet: {args.train_updates} SPOS updates ({train_seconds:.0f} s)"
        )
        runs = [("reference", "HAT")] + [
            (p, name)
            for p in args.protocols
            for name in schedules
            if (p, name) != ("reference", "HAT")
        ]
        results: dict[tuple[str, str], SearchResult] = {}
        for protocol, name in runs:
            # A fresh predictor per run: `fast` restricts its own to the chosen subset.
            supernet = SupernetPredictor(model, data)
            results[protocol, name] = run_search(
                space,
                {"supernet": supernet, "distill": distill},
                schedules[name],
                constraints,
                settings,
                protocol=protocol,
                valid_subset=subset,
            )
            baseline = results["reference", "HAT"].timing["search_seconds"]
            print(_line(f"{protocol} {name}", results[protocol, name], baseline), flush=True)
        for (protocol, name), result in results.items():
            for check in (result.valid_subset or {}).values():
                tried = ", ".join(
                    f"{row['fraction']:g} ({row['sentences']} sentences): tau {row['kendall']:.3f}"
                    for row in check["tried"]
                )
                chosen = check["chosen_fraction"]
                print(
                    f"{protocol} {name} check ({check['seconds']:.1f} s, "
                    f"{len(check['sample_ids'])} "
                    f"archs): {tried}; chosen {chosen:g}"
                    + ("" if check["passed"] else " (no subset passed: the full set)")
                )
        full = SupernetPredictor(model, data)
        reference = results["reference", "HAT"].best_arch
        ref_score = float(full.predict([reference])[0])
        rng = np.random.default_rng(0)
        print(f"HAT reference winner {reference.id}: full-set score {ref_score:.4f}")
        fastest = min(results, key=lambda key: results[key].timing["search_seconds"])
        for key, result in results.items():
            if key == ("reference", "HAT"):
                continue
            winner = result.best_arch
            score = float(full.predict([winner])[0])
            se, paired = _bootstrap(full, reference, winner, rng)
            gap = ref_score - score
            verdict = (
                "same winner"
                if winner.id == reference.id
                else ("within noise" if gap <= se else "OUTSIDE noise")
            )
            print(
                f"{key[0]} {key[1]} winner {winner.id}: full-set score {score:.4f}, gap "
                f"{gap:+.4f} vs noise (bootstrap SE) {se:.4f}, paired SE {paired:.4f}: {verdict}"
            )
        ratio = results[fastest].timing["search_seconds"] / baseline
        print(
            f"fastest: {fastest[0]} {fastest[1]}, search time / HAT reference = {ratio:.3f} "
            f"(target <= 0.10)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

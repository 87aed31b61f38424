"""Benchmark the demo: the whole default workflow on a fresh copy of this checkout, timed.

Copies the committed tree (`git archive HEAD`, so local results and caches do not help), links
this virtualenv, and runs `snakemake --cores N` with the default config, as `make demo` does.
Printed: the wall time and its ratio to the 15-minute budget of the demo; the sum of the job
times Snakemake's `benchmark:` files recorded and its ratio to the wall time (how well the jobs
overlapped on the cores); the slowest jobs; and the demo's numbers: the final test BLEU
(sacreBLEU on test_2016_flickr), measured and predicted latency of each search's winner.

Usage: `python bench/bench_demo.py [--cores 2] [--keep DIR]`. With `NASFLOW_MIRROR` set (as
`.ci/run` does) the corpora and the released data are read offline; without it the demo
downloads Multi30k and skips the released-data tables.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUDGET_S = 15 * 60


def copy_checkout(dest: Path) -> None:
    """The committed tree of this checkout in `dest`, with this virtualenv linked in."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", "HEAD"], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    venv = Path(sys.executable).parent.parent
    (dest / ".venv").symlink_to(venv)


def job_seconds(folder: Path) -> dict[str, float]:
    """Job name -> wall seconds from the Snakemake benchmark files below `folder`."""
    times = {}
    for path in sorted(folder.rglob("*.tsv")):
        with open(path) as handle:
            rows = list(csv.DictReader(handle, delimiter="\t"))
        if rows:
            times[str(path.relative_to(folder).with_suffix(""))] = float(rows[-1]["s"])
    return times


def demo_numbers(results: Path) -> list[dict[str, str]]:
    """Rows of the search results table (one per method, constraint and seed)."""
    table = results / "tables" / "search" / "results.csv"
    if not table.is_file():
        return []
    with open(table) as handle:
        return list(csv.DictReader(handle))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", default="2")
    parser.add_argument("--keep", type=Path, help="run in this (new) folder and keep it")
    args = parser.parse_args()
    if args.keep:
        work = args.keep
        work.mkdir(parents=True)  # a new folder: an old run's files would be reused
    else:
        work = Path(tempfile.mkdtemp(prefix="nasflow-demo-bench-"))
    copy_checkout(work)
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    print(f"demo in {work} (--cores {args.cores}, NASFLOW_MIRROR={env.get('NASFLOW_MIRROR')})")
    start = time.perf_counter()
    with open(work / "snakemake.log", "w") as log:
        result = subprocess.run(
            ["snakemake", "--cores", args.cores], cwd=work, env=env, stdout=log, stderr=log
        )
    wall = time.perf_counter() - start
    if result.returncode != 0:
        print(f"the demo failed (exit {result.returncode}); see {work / 'snakemake.log'}")
        return 1
    jobs = job_seconds(work / "benchmarks")
    total = sum(jobs.values())
    print(f"wall time            {wall:8.1f} s  ({wall / 60:.1f} min)")
    print(f"ratio to the budget  {wall / BUDGET_S:8.2f}  (15 min = 1.00)")
    print(f"sum of job times     {total:8.1f} s over {len(jobs)} benchmarked jobs")
    print(f"overlap (sum / wall) {total / wall:8.2f}  (2 cores: 2.00 at best)")
    print("slowest jobs:")
    for name, seconds in sorted(jobs.items(), key=lambda item: -item[1])[:8]:
        print(f"  {seconds:7.1f} s  {name}")
    print("demo numbers (results/demo/tables/search/results.csv):")
    for row in demo_numbers(work / "results" / "demo"):
        print(
            f"  {row['method']:6s} {row['constraint']}: test BLEU {float(row['test_bleu']):.2f}, "
            f"latency {float(row['latency_ms']):.2f} ms measured / "
            f"{float(row['predicted_latency_ms']):.2f} ms predicted, "
            f"{float(row['params_m']):.2f} M params, search {float(row['search_seconds']):.0f} s"
        )
    if not args.keep:
        shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The LTS chain from the `lts` config section: the Pareto search and the case study.

`lts_search` runs the evolutionary Pareto search (maximise decoder parameters, minimise measured
latency and peak memory) through the persistent measurement cache and writes the frontier, every
architecture seen, the history and the frontier-evolution plot. `case_study` follows the
text-prediction paper: frontier candidates with slightly more decoder parameters than a baseline,
and their `n_head` variants, measured against the baseline (prompt/token latency, latency and P95
latency per character).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from nasflow.errors import ConfigError, DataError
from nasflow.lts.space import GPTArch, LTSSpace, resolve_space

Progress = Callable[[str], None]

CASE_COLUMNS = (
    "role",
    "arch_id",
    "n_layer",
    "d_model",
    "d_inner",
    "n_head",
    "decoder_params_m",
    "prompt_ms",
    "token_ms",
    "latency_per_char_ms",
    "p95_ms_per_char",
    "memory_mb",
    "p95_per_char_vs_baseline",
)


def lts_space(section: Mapping[str, Any]) -> LTSSpace:
    """The configured space (name or mapping), errors naming `lts.space`."""
    try:
        return resolve_space(section["space"])
    except (ConfigError, DataError, KeyError, ValueError) as error:
        raise ConfigError(f"config key lts.space: {error}") from None


def _evaluator(section: Mapping[str, Any], workdir: Path | None):
    from nasflow.lts.evaluator import LTSEvaluator
    from nasflow.lts.measure import LTSMeasureSettings

    try:
        settings = LTSMeasureSettings.from_mapping(section.get("measure") or {})
    except ConfigError as error:
        raise ConfigError(f"config key lts.{error}") from None
    return LTSEvaluator(settings, workdir=workdir)


def _cache(path: str | Path, evaluator: Any):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return evaluator.measurement_cache(path)


def lts_search(
    section: Mapping[str, Any],
    out_dir: str | Path,
    state_dir: str | Path | None,
    cache_path: str | Path,
    *,
    fresh: bool = False,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Run the configured Pareto search; write its outputs and plot; return its timing."""
    from nasflow.lts.plots import plot_outputs
    from nasflow.lts.search import LTS_OBJECTIVES, ParetoSettings, run_pareto_search, write_outputs

    space = lts_space(section)
    settings = ParetoSettings.from_mapping(section.get("search") or {})
    evaluator = _evaluator(section, None)

    def report(row: Mapping[str, Any]) -> None:
        if progress is not None:
            progress(
                f"iteration {row['iteration']}: frontier {row['frontier_size']}, seen "
                f"{row['seen']}, measured {row['measured']}, cache hits {row['cache_hits']} "
                f"({row['seconds']:.1f} s)"
            )

    with _cache(cache_path, evaluator) as cache:
        result = run_pareto_search(
            space,
            evaluator,
            LTS_OBJECTIVES,
            settings,
            cache,
            state_dir,
            report,
            fresh=fresh,
            fingerprint_extra={"space": space.fingerprint},
        )
    write_outputs(result, out_dir)
    plot_outputs(out_dir)
    return {**result.timing, "frontier_size": len(result.frontier)}


def baseline_arch(section: Mapping[str, Any]) -> GPTArch:
    """The case study's homogeneous baseline (`lts.baseline`)."""
    values = dict(section.get("baseline") or {})
    try:
        return GPTArch.uniform(
            int(values["n_layer"]),
            int(values["d_model"]),
            int(values["d_inner"]),
            int(values["n_head"]),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise ConfigError(
            f"config key lts.baseline needs n_layer, d_model, d_inner, n_head ({error})"
        ) from None


def case_study(
    section: Mapping[str, Any],
    frontier_csv: str | Path,
    cache_path: str | Path,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """The baseline, the selected frontier candidates and their head variants, measured.

    Columns `CASE_COLUMNS`; `p95_per_char_vs_baseline` is each row's P95 latency per character
    divided by the baseline's (0.77 = 23% lower, the paper's headline).
    """
    from nasflow.lts.params import decoder_params
    from nasflow.lts.select import head_variants, select_candidates

    frontier_csv = Path(frontier_csv)
    if not frontier_csv.is_file():
        raise DataError(f"{frontier_csv}: frontier not found (run `nasflow lts search` first)")
    frontier = pd.read_csv(frontier_csv, dtype={"arch_id": str})
    space = lts_space(section)
    baseline = baseline_arch(section)
    selection = dict(section.get("selection") or {})
    picked = select_candidates(
        frontier,
        decoder_params(baseline),
        margin=float(selection.get("margin", 0.1)),
        limit=selection.get("limit"),
    )
    archs: list[tuple[str, GPTArch]] = [("baseline", baseline)]
    for row in picked:
        arch = space.arch_from_dict(_arch_dict(row["arch"]))
        archs.append(("candidate", arch))
        variants = head_variants(
            arch,
            lambda a, n: a.replace(n_head=(n,) * a.n_layer),
            tuple(selection.get("heads", (8, 16))),
        )
        archs += [(f"candidate n_head={n}", variant) for n, variant in variants]
    evaluator = _evaluator(section, None)
    with _cache(cache_path, evaluator) as cache:
        metrics = _measure_through(cache, evaluator, [a for _, a in archs])
    if progress is not None:
        progress(f"case study: baseline + {len(archs) - 1} architectures measured")
    base_p95 = metrics[0]["p95_ms_per_char"]
    rows = [
        {
            "role": role,
            "arch_id": arch.id,
            "n_layer": arch.n_layer,
            "d_model": arch.d_model,
            "d_inner": _compact(arch.d_inner),
            "n_head": _compact(arch.n_head),
            "decoder_params_m": decoder_params(arch) / 1e6,
            **{k: m[k] for k in CASE_COLUMNS[7:12]},
            "p95_per_char_vs_baseline": m["p95_ms_per_char"] / base_p95,
        }
        for (role, arch), m in zip(archs, metrics, strict=True)
    ]
    return pd.DataFrame(rows, columns=list(CASE_COLUMNS))


def _arch_dict(text: str) -> dict[str, Any]:
    import json

    return json.loads(text)


def _compact(values: tuple[int, ...]) -> str:
    """`4096` when every layer agrees, else the per-layer list."""
    return str(values[0]) if len(set(values)) == 1 else ",".join(map(str, values))


def _measure_through(cache: Any, evaluator: Any, archs: list[GPTArch]) -> list[dict]:
    """Metrics of each arch: cached ones reused, the others measured and stored."""
    known = cache.get_many([a.id for a in archs])
    todo = list({a.id: a for a in archs if a.id not in known}.values())
    if todo:
        for arch, values in zip(todo, evaluator.evaluate(todo), strict=True):
            cache.put(arch.id, dict(values))
            known[arch.id] = dict(values)
    return [known[a.id] for a in archs]

"""Search result tables (`nasflow search tables`): one row per run, the paper's Table 3/4, 5, 15
and 16 layouts, search-time ratios to HAT and a convergence plot.

Run folders are read by `nasflow.report.search_runs`; the plot is
`nasflow.report.plots.plot_convergence`. Tables show the mean over seeds, with the sample
standard deviation when there are several.

Search hours depend on the scoring protocol (`search.protocol`: `reference` = HAT's, every
population member scored every iteration; `cached` = a per-run score cache; `fast` = the cache
and a validation subset chosen by a rank-fidelity check), so every table has
a `protocol` column (per method) and a caption line naming the protocol, or saying that the
tabulated runs mix protocols.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from nasflow.core.errors import ConfigError, DataError
from nasflow.core.io import atomic_path, write_json_atomic, write_text_atomic
from nasflow.report.plots import plot_convergence
from nasflow.report.search_runs import Run, read_runs, results_frame
from nasflow.search.schedule import PredictorSchedule

REFERENCE = "hat"
TABLE16_METHODS = ("hat", "hat-15", "distilled-hat", "hsnas")
TABLE16_LABELS = {
    "hat": "HAT",
    "hat-15": "HAT (num-iter.=15)",
    "distilled-hat": "Distilled HAT (num-iter.=15)",
    "hsnas": "HS-NAS",
}
"""The paper's Table 16 row of each method (its schedule column says what the run used)."""
TABLE15_KIND = "neuron-mos"
"""Table 15 compares the search over the Neuron-wise MoS supernet with HS-NAS over it."""
PROTOCOL_TEXT = {
    "reference": (
        "HAT's: every population member scored by the iteration's predictor every iteration, "
        "elites and duplicates included"
    ),
    "cached": (
        "a per-run score cache: surviving elites and duplicates never re-scored, so faster than "
        "HAT's and not comparable with the paper's hours"
    ),
    "fast": (
        "the score cache, with the supernet scoring a validation subset chosen by a "
        "rank-fidelity check (counted in the hours): the fastest, not comparable with the "
        "paper's hours"
    ),
}
BLEU_COLUMNS = {"sacrebleu": "test_bleu", "tokenized": "test_tokenized_bleu"}
# (label, results column, number format) of the table columns, per constraint.
FULL_METRICS = (
    ("BLEU", "bleu", ".2f"),
    ("latency (ms)", "latency_ms", ".1f"),
    ("GFLOPs", "gflops", ".2f"),
    ("size (M params)", "params_m", ".1f"),
    ("search hours", "search_hours", ".3g"),
)
TABLE5_METRICS = tuple(m for m in FULL_METRICS if m[1] != "params_m")
Log = Callable[[str], None]


# ---- tables -------------------------------------------------------------------------------------


def _cell(mean: float, std: float, fmt: str) -> str:
    if math.isnan(mean):
        return ""
    return f"{mean:{fmt}}" if math.isnan(std) else f"{mean:{fmt}} ± {std:{fmt}}"


def wide_table(
    results: pd.DataFrame,
    methods: Sequence[str],
    constraints: Sequence[str],
    metrics: Sequence[tuple[str, str, str]],
    lead: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows = methods; per constraint, each metric's mean over seeds (and std when > 1 seed).

    Returns the CSV form (`{constraint} {label}`, `... std` and `{constraint} seeds` columns) and
    the markdown form (`mean ± std` text, empty where there is no value). `lead` adds columns
    right after `method`.
    """
    csv_rows, md_rows = [], []
    for method in methods:
        first = {"method": method, **(lead or {}).get(method, {})}
        csv_row, md_row = dict(first), {k: "" if _missing(v) else str(v) for k, v in first.items()}
        for constraint in constraints:
            runs = results[(results["method"] == method) & (results["constraint"] == constraint)]
            csv_row[f"{constraint} seeds"] = len(runs)
            for label, column, fmt in metrics:
                values = runs[column].dropna().astype(float)
                mean = float(values.mean()) if len(values) else math.nan
                std = float(values.std(ddof=1)) if len(values) > 1 else math.nan
                csv_row[f"{constraint} {label}"] = mean
                csv_row[f"{constraint} {label} std"] = std
                md_row[f"{constraint} {label}"] = _cell(mean, std, fmt)
        csv_rows.append(csv_row)
        md_rows.append(md_row)
    csv = pd.DataFrame(csv_rows)
    for key in next(iter((lead or {}).values()), {}):
        csv[key] = pd.Series([row[key] for row in csv_rows], dtype=object)  # ints stay ints
    return csv, pd.DataFrame(md_rows)


def flops_constraints(runs: Sequence[Run]) -> list[str]:
    """Constraints that limit GFLOPs and not latency (Tables 13/14), in order of appearance."""
    limits = {run.row["constraint"]: run.limits for run in runs}
    return [
        name
        for name, limit in limits.items()
        if limit.get("gflops") is not None and limit.get("latency_ms") is None
    ]


def per_seed_table(
    results: pd.DataFrame,
    methods: Sequence[str],
    constraints: Sequence[str],
    metrics: Sequence[tuple[str, str, str]],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows = each seed of each method, then the method's mean ± std over its seeds (Table 12)."""
    frames, rows = [], []
    for method in methods:
        runs = results[results["method"] == method]
        for seed in sorted(set(runs["seed"])):
            frames.append(runs[runs["seed"] == seed].assign(method=f"{method} (seed {seed})"))
            rows.append(f"{method} (seed {seed})")
        frames.append(runs.assign(method=f"{method} (mean ± std)"))
        rows.append(f"{method} (mean ± std)")
    if not frames:
        return pd.DataFrame(), pd.DataFrame()
    return wide_table(pd.concat(frames), rows, constraints, metrics)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def distill_segments(schedule: Mapping[str, Any]) -> list[tuple[int, int]]:
    """(start, end) of each iteration span a schedule (its `to_dict`) scores with `distill`."""
    return [
        (int(s["start"]), int(s["end"]))
        for s in schedule.get("segments") or []
        if s.get("predictor") == "distill"
    ]


def _span_columns(segments: list[tuple[int, int]]) -> dict[str, Any]:
    if not segments:
        return {"start": None, "end": None}
    if len(segments) == 1:
        return {"start": segments[0][0], "end": segments[0][1]}
    return {
        "start": ";".join(str(s) for s, _ in segments),
        "end": ";".join(str(e) for _, e in segments),
    }


def table5_methods(
    methods: Sequence[str], schedules: Mapping[str, Mapping[str, Any]], chosen: Sequence[str] | None
) -> list[str]:
    """HAT (reference) first, then `chosen` or else the methods with a distill segment, by span."""
    if chosen is None:
        hsnas = [m for m in methods if distill_segments(schedules[m])]
        hsnas.sort(key=lambda m: distill_segments(schedules[m]))
    else:
        hsnas = [m for m in chosen if m in schedules and m != REFERENCE]
    return ([REFERENCE] if REFERENCE in schedules else []) + hsnas


def paper_lead(
    methods: Sequence[str],
    labels: Mapping[str, str],
    schedules: Mapping[str, Mapping[str, Any]],
    protocols: Mapping[str, str],
) -> dict[str, dict[str, str]]:
    """The leading columns of a table that names the paper's rows: `paper` (the row's name in
    the paper), `schedule` (what the run used) and `protocol`, per method."""
    return {
        m: {
            "paper": labels[m],
            "schedule": schedule_label(schedules[m]),
            "protocol": protocols[m],
        }
        for m in methods
    }


def table15_methods(
    results: pd.DataFrame, methods: Sequence[str], schedules: Mapping[str, Mapping[str, Any]]
) -> list[str]:
    """Methods whose runs used the Neuron-wise MoS supernet: without distill iterations first,
    then HS-NAS-style ones by their distill span."""
    used = set(results.loc[results["supernet_kind"] == TABLE15_KIND, "method"])
    chosen = [m for m in methods if m in used]
    return sorted(chosen, key=lambda m: (bool(distill_segments(schedules[m])), chosen.index(m)))


def table15_label(schedule: Mapping[str, Any]) -> str:
    """The paper's Table 15 row name of a schedule over the Neuron-wise MoS supernet."""
    segments = distill_segments(schedule)
    if not segments:
        return "Neuron-wise MoS"
    spans = ", ".join(f"{start}, {end}" for start, end in segments)
    return f"HS-NAS (LLM-Distill-PP, Neuron-wise MoS, {spans})"


def search_time_ratios(results: pd.DataFrame) -> dict[str, Any]:
    """Search seconds / HAT's per constraint and seed, and their mean over seeds per method."""
    per_seed: dict[str, dict[str, dict[str, float]]] = {}
    means: dict[str, dict[str, float]] = {}
    reference = results[results["method"] == REFERENCE]
    for _, ref in reference.iterrows():
        constraint, seed = ref["constraint"], ref["seed"]
        same = results[(results["constraint"] == constraint) & (results["seed"] == seed)]
        per_seed.setdefault(constraint, {})[str(seed)] = {
            row["method"]: row["search_seconds"] / ref["search_seconds"]
            for _, row in same.iterrows()
        }
    for constraint, seeds in per_seed.items():
        frame = pd.DataFrame(list(seeds.values()))
        means[constraint] = {m: float(frame[m].mean()) for m in frame.columns}
    return {"per_seed": per_seed, "mean": means}


def method_protocols(results: pd.DataFrame, methods: Sequence[str]) -> dict[str, str]:
    """Each method's scoring protocol(s) over its runs, e.g. `reference` or `cached, reference`."""
    return {
        method: ", ".join(sorted(set(results.loc[results["method"] == method, "protocol"])))
        for method in methods
    }


def protocol_note(results: pd.DataFrame, methods: Sequence[str]) -> str:
    """The caption line naming the protocol of the search hours of `methods`' runs."""
    used = sorted(set(results.loc[results["method"].isin(methods), "protocol"]))
    if not used:
        return "Search hours: no runs."
    if len(used) == 1:
        text = PROTOCOL_TEXT.get(used[0])
        return f"Search hours: `{used[0]}` scoring protocol" + (f" ({text})." if text else ".")
    return (
        f"Search hours: **mixed scoring protocols** ({', '.join(f'`{p}`' for p in used)}; see "
        "the protocol column): hours of runs with different protocols are not comparable."
    )


def schedule_label(schedule: Mapping[str, Any]) -> str:
    """A schedule (its `to_dict`) in words, e.g. `supernet-mlp 1..15, else supernet (30
    iterations)`; empty when the run recorded none."""
    if not schedule:
        return ""
    try:
        return str(PredictorSchedule.from_mapping(schedule))
    except ConfigError:
        return json.dumps(schedule, sort_keys=True)  # not ours to judge: shown as recorded


# ---- writing ------------------------------------------------------------------------------------


def _write_table(
    out: Path, stem: str, title: str, csv: pd.DataFrame, md: pd.DataFrame, note: str
) -> list[Path]:
    csv_path, md_path = out / f"{stem}.csv", out / f"{stem}.md"
    with atomic_path(csv_path) as tmp:
        csv.to_csv(tmp, index=False, na_rep="")
    body = md.to_markdown(index=False, disable_numparse=True) if len(md) else "_no runs_"
    write_text_atomic(md_path, f"# {title}\n\n{note}\n\n{body}\n")
    return [csv_path, md_path]


def write_tables(
    folders: Sequence[str | Path],
    out_dir: str | Path,
    *,
    hsnas_methods: Sequence[str] | None = None,
    bleu: str = "sacrebleu",
    log: Log | None = None,
) -> list[Path]:
    """Write results.csv, table3/5/15/16 (latency budgets), table13 (GFLOPs-only constraints),
    table12 (per search seed) as .csv and .md, summary.json and convergence.png.

    Methods and constraints keep their order of first appearance in `folders`.
    """
    if bleu not in BLEU_COLUMNS:
        raise ValueError(f"bleu must be one of {', '.join(BLEU_COLUMNS)}, got {bleu!r}")
    runs = read_runs(folders)
    if not runs:
        raise DataError("no run folders given")
    out = Path(out_dir)
    results = results_frame(runs)
    results["bleu"] = results[BLEU_COLUMNS[bleu]]
    methods = list(dict.fromkeys(results["method"]))
    constraints = list(dict.fromkeys(results["constraint"]))
    schedules: dict[str, dict[str, Any]] = {}
    for run in runs:
        schedules.setdefault(run.row["method"], run.schedule)
    written = [out / "results.csv"]
    with atomic_path(written[0]) as tmp:
        results.drop(columns="bleu").to_csv(tmp, index=False, na_rep="")
    note = (
        f"Test BLEU ({bleu}) and measured latency of the searched architectures trained from "
        "scratch; mean ± sample std over seeds."
    )
    protocols = method_protocols(results, methods)
    if log is not None and len(set(results["protocol"])) > 1:
        log(
            "note: the runs mix scoring protocols ("
            + "; ".join(f"{m}: {p}" for m, p in protocols.items())
            + "): their search hours are not comparable"
        )
    flops = flops_constraints(runs)
    budgets = [c for c in constraints if c not in flops]
    lead3 = {m: {"protocol": protocols[m]} for m in methods}
    table3 = wide_table(results, methods, budgets, FULL_METRICS, lead3)
    written += _write_table(
        out,
        "table3",
        "Search results (Table 3/4 layout)",
        *table3,
        f"{note}\n\n{protocol_note(results, methods)}",
    )
    if hsnas_methods is not None and log is not None:
        for method in hsnas_methods:
            if method not in schedules:
                log(f"note: --hsnas-methods {method}: no run of this method; skipped")
    rows5 = table5_methods(methods, schedules, hsnas_methods)
    lead5 = {
        m: {**_span_columns(distill_segments(schedules[m])), "protocol": protocols[m]}
        for m in rows5
    }
    table5 = wide_table(results, rows5, budgets, TABLE5_METRICS, lead5)
    written += _write_table(
        out,
        "table5",
        "HS-NAS start/end iterations of the distill predictor (Table 5 layout)",
        *table5,
        f"{note}\n\n{protocol_note(results, rows5)}",
    )
    rows16 = [m for m in TABLE16_METHODS if m in schedules]
    lead16 = paper_lead(rows16, {m: TABLE16_LABELS[m] for m in rows16}, schedules, protocols)
    table16 = wide_table(results, rows16, budgets, FULL_METRICS, lead16)
    note16 = (
        "The paper's rows: HAT = hat, HAT (num-iter.=15) = hat-15 (HAT with 15 iterations), "
        "Distilled HAT (num-iter.=15) = distilled-hat (an MLP distilled from supernet scores, "
        "`supernet-mlp`, for iterations 1-15, then the supernet), HS-NAS = hsnas; the schedule "
        "column shows what each run used."
    )
    written += _write_table(
        out,
        "table16",
        "Trivial adaptations (Table 16 layout)",
        *table16,
        f"{note}\n\n{note16}\n\n{protocol_note(results, rows16)}",
    )
    rows15 = table15_methods(results, methods, schedules)
    labels15 = {m: table15_label(schedules[m]) for m in rows15}
    lead15 = paper_lead(rows15, labels15, schedules, protocols)
    table15 = wide_table(results, rows15, budgets, FULL_METRICS, lead15)
    note15 = (
        "Runs whose supernet iterations used the Neuron-wise MoS supernet (best.json "
        "`supernet_kind`): the search over it (the paper's Neuron-wise MoS row) and HS-NAS over "
        "it (distill iterations first, then the MoS supernet); the schedule column shows what "
        "each run used."
    )
    written += _write_table(
        out,
        "table15",
        "HS-NAS over Neuron-wise MoS (Table 15 layout)",
        *table15,
        f"{note}\n\n{note15}\n\n{protocol_note(results, rows15)}",
    )
    table13 = wide_table(results, methods, flops, FULL_METRICS, lead3)
    written += _write_table(
        out,
        "table13",
        "FLOPs-constrained search (Tables 13/14 layout)",
        *(table13 if flops else (pd.DataFrame(), pd.DataFrame())),
        f"{note}\n\nConstraints that limit GFLOPs only: {', '.join(flops) or 'none in this run'}"
        " (Table 14 is the 3.0-GFLOPs column of the three WMT experiments).\n\n"
        f"{protocol_note(results, methods)}",
    )
    seeded = [m for m in methods if results[results["method"] == m]["seed"].nunique() > 1]
    written += _write_table(
        out,
        "table12",
        "Search over several seeds (Table 12 layout)",
        *per_seed_table(results, seeded, constraints, FULL_METRICS),
        f"{note}\n\nMethods searched with more than one seed: {', '.join(seeded) or 'none'} "
        "(search.seeds, search.method_seeds); one row per seed, then mean ± sample std.",
    )
    ratios = search_time_ratios(results)
    summary = {
        "runs": len(runs),
        "methods": methods,
        "constraints": constraints,
        "bleu": bleu,
        "reference_method": REFERENCE if REFERENCE in schedules else None,
        "search_time_ratio": ratios["per_seed"],
        "search_time_ratio_mean": ratios["mean"],
        "protocols": protocols,
        "mixed_protocols": len(set(results["protocol"])) > 1,
    }
    written.append(out / "summary.json")
    write_json_atomic(written[-1], summary)
    written.append(out / "convergence.png")
    plot_convergence(runs, methods, constraints, written[-1])
    return written

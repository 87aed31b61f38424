"""The results page (`nasflow report results-page`): one self-contained HTML file saying what
was run and what won, with every table (pandas `to_html`, readable labels, architectures as
readable columns) and every plot (PNG embedded as base64).

The workflow's report shows it first: it is the `0 Results` entry, and the report's landing
page (workflow/report/workflow.rst) includes it. `nasflow report check --results` requires its
winner table (`table#winners`) and its plots (`figure.nasflow-plot` images) in the rendered DOM.
"""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from nasflow.core.errors import DataError
from nasflow.core.io import write_text_atomic
from nasflow.report import results_plots
from nasflow.report.search_runs import Run, read_runs
from nasflow.report.search_tables import schedule_label
from nasflow.space.hat import Arch

WINNERS_ID = "winners"
PLOT_CLASS = "nasflow-plot"
# Words of snake_case column names and how a reader expects them.
WORDS = {
    "bleu": "BLEU",
    "ms": "(ms)",
    "mb": "(MiB)",
    "gflops": "GFLOPs",
    "mae": "MAE",
    "std": "std",
    "id": "id",
    "llm": "LLM",
    "pp": "PP",
    "p95": "P95",
    "n": "number of",
    "m": "(M)",
    "s": "(s)",
    "tfs": "TFS",
}
LABELS = {
    "arch_id": "architecture id",
    "n_seeds": "seeds",
    "kendall": "Kendall tau",
    "kendall_std": "Kendall tau std",
    "params_m": "size (M params)",
    "params_total_m": "size with embeddings (M params)",
    "decoder_params_m": "decoder params (M)",
    "n_layer": "layers",
    "d_model": "model dim",
    "d_inner": "FFN dims",
    "n_head": "heads",
}
STYLE = """
.nasflow-results { font-family: system-ui, sans-serif; font-size: 14px; color: #1f2937;
  max-width: 100%; }
.nasflow-results h1 { font-size: 1.5em; margin: 0.2em 0 0.4em; }
.nasflow-results h2 { font-size: 1.2em; margin: 1.2em 0 0.4em; border-bottom: 1px solid #ddd; }
.nasflow-results h3 { font-size: 1.0em; margin: 1em 0 0.3em; }
.nasflow-results table { border-collapse: collapse; margin: 0.3em 0 0.8em; font-size: 12px; }
.nasflow-results th, .nasflow-results td { border: 1px solid #d1d5db; padding: 2px 6px;
  text-align: right; white-space: nowrap; }
.nasflow-results th { background: #f3f4f6; }
.nasflow-results td.text, .nasflow-results tbody th { text-align: left; }
.nasflow-results figure { margin: 0.5em 0 1em; }
.nasflow-results figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
.nasflow-results figcaption, .nasflow-results .note { font-size: 12px; color: #4b5563;
  max-width: 70em; }
.nasflow-results .scroll { overflow-x: auto; max-width: 100%; }
"""


@dataclass
class PageInputs:
    """What the page shows; every file is optional but the search runs."""

    experiment: str
    runs: list[Path] = field(default_factory=list)
    supernet_curves: dict[str, Path] = field(default_factory=dict)
    tfs_curves: list[Path] = field(default_factory=list)
    supernet_quality: Path | None = None
    tables: list[tuple[str, Path]] = field(default_factory=list)
    figures: list[tuple[str, Path]] = field(default_factory=list)


# ---- labels and architectures -------------------------------------------------------------------


def readable_label(name: str) -> str:
    """A column name as a reader expects it: snake_case words spelled out (`test_bleu` ->
    `test BLEU`, `latency_ms` -> `latency (ms)`); other names unchanged."""
    if name in LABELS:
        return LABELS[name]
    if not re.fullmatch(r"[a-z0-9_]+", name):
        return name
    return " ".join(WORDS.get(word, word) for word in name.split("_"))


def _layers(values: Sequence[int]) -> str:
    return " · ".join(str(v) for v in values)


def _attends(value: int) -> str:
    """HAT's arbitrary encoder-decoder attention gene: -1 = the last encoder layer, k = the
    last k + 1 (`SuperTransformer`)."""
    return str(1 if value == -1 else value + 1)


def arch_columns(arch: Arch) -> dict[str, Any]:
    """An MT architecture as readable columns (per-layer values joined with `·`)."""
    return {
        "encoder layers": arch.encoder_layer_num,
        "encoder embed dim": arch.encoder_embed_dim,
        "encoder FFN dims": _layers(arch.encoder_ffn_embed_dim),
        "encoder heads": _layers(arch.encoder_self_attention_heads),
        "decoder layers": arch.decoder_layer_num,
        "decoder embed dim": arch.decoder_embed_dim,
        "decoder FFN dims": _layers(arch.decoder_ffn_embed_dim),
        "decoder self-attn heads": _layers(arch.decoder_self_attention_heads),
        "decoder enc-dec heads": _layers(arch.decoder_ende_attention_heads),
        "encoder layers each decoder layer attends": _layers(
            [_attends(v) for v in arch.decoder_arbitrary_ende_attn]
        ),
    }


def _expand_arch_json(frame: pd.DataFrame) -> pd.DataFrame:
    """A column `arch` of JSON objects replaced by one column per key (lists joined with `·`)."""
    if "arch" not in frame.columns:
        return frame
    try:
        parsed = [json.loads(text) for text in frame["arch"].astype(str)]
    except json.JSONDecodeError:
        return frame
    if not all(isinstance(p, dict) for p in parsed):
        return frame
    expanded = pd.DataFrame(
        [{k: _layers(v) if isinstance(v, list) else v for k, v in p.items()} for p in parsed],
        index=frame.index,
    ).drop(columns=["space"], errors="ignore")
    return pd.concat([frame.drop(columns=["arch"]), expanded], axis=1)


def _merge_std(frame: pd.DataFrame, decimals: int) -> pd.DataFrame:
    """Each `X` with an `X std` / `X_std` column shown once as `mean ± std` (text)."""
    out = frame.copy()
    for column in list(frame.columns):
        for std in (f"{column} std", f"{column}_std"):
            if std in frame.columns and pd.api.types.is_numeric_dtype(frame[column]):
                mean, spread = frame[column], pd.to_numeric(frame[std], errors="coerce")
                out[column] = [
                    ""
                    if pd.isna(m)
                    else f"{m:.{decimals}f}" + ("" if pd.isna(s) else f" ± {s:.{decimals}f}")
                    for m, s in zip(mean, spread, strict=True)
                ]
                out = out.drop(columns=[std])
    return out


# ---- tables -------------------------------------------------------------------------------------


def table_html(frame: pd.DataFrame, table_id: str | None = None, decimals: int = 3) -> str:
    """`frame` as an HTML table: readable column labels, `decimals` decimals, `–` for missing
    cells, text cells left-aligned."""
    shown = frame.rename(columns=readable_label)
    text = [c for c in shown.columns if not pd.api.types.is_numeric_dtype(shown[c])]
    body = shown.to_html(
        index=False,
        na_rep="–",
        float_format=lambda value: f"{value:.{decimals}f}",
        border=0,
        table_id=table_id,
        escape=True,
    )
    for column in text:  # to_html has no per-column classes: mark text cells after the fact
        for value in shown[column].astype(str).unique():
            cell = f"<td>{html.escape(value)}</td>"
            body = body.replace(cell, f'<td class="text">{html.escape(value)}</td>')
    return f'<div class="scroll">{body}</div>'


def markdown_notes(path: Path) -> str:
    """The prose of a table's markdown sibling (its lines outside the title and the table), as
    HTML paragraphs with `code` spans; empty without a sibling."""
    if not path.is_file():
        return ""
    paragraphs, current = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith(("|", "#")) or not line.strip():
            if current:
                paragraphs.append(" ".join(current))
                current = []
            continue
        current.append(line.strip())
    if current:
        paragraphs.append(" ".join(current))
    rendered = []
    for text in paragraphs:
        escaped = html.escape(text)
        escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
        escaped = re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", escaped)
        rendered.append(f'<p class="note">{escaped}</p>')
    return "\n".join(rendered)


def read_table(path: Path, allow_empty: bool = False) -> pd.DataFrame:
    """A results CSV; DataError naming the file when it cannot be read. With `allow_empty`, a
    table written without rows or columns (e.g. Table 12 of a one-seed run) is an empty frame."""
    try:
        return pd.read_csv(path)
    except FileNotFoundError:
        raise DataError(f"{path}: table not found") from None
    except pd.errors.EmptyDataError as error:
        if allow_empty:
            return pd.DataFrame()
        raise DataError(f"{path}: unreadable CSV ({error})") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: unreadable CSV ({error})") from None


def winners_frames(runs: Sequence[Run]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(results, architectures) of each search's winner: one row per method x constraint x
    seed, readable labels."""
    results, archs = [], []
    for run in runs:
        row = run.row
        key = {"search": row["method"], "constraint": row["constraint"], "seed": row["seed"]}
        results.append(
            {
                **key,
                "valid BLEU": row["valid_bleu"],
                "test BLEU": row["test_bleu"],
                "latency measured (ms)": row["latency_ms"],
                "latency predicted (ms)": row["predicted_latency_ms"],
                "GFLOPs": row["gflops"],
                "size (M params)": row["params_m"],
                "search hours": row["search_hours"],
                "predictor of the final pick": row["score_predictor"],
                "architecture id": row["arch_id"],
            }
        )
        best = json.loads((Path(row["run_dir"]) / "best.json").read_text(encoding="utf-8"))
        archs.append({**key, **arch_columns(Arch.from_dict(best["arch"]))})
    return pd.DataFrame(results), pd.DataFrame(archs)


def scored_frame(runs: Sequence[Run]) -> pd.DataFrame:
    """Every architecture each search scored (`scored.csv`), one row per run, architecture and
    predictor (its last score), with the run's method and constraint."""
    frames = []
    for run in runs:
        path = Path(run.row["run_dir"]) / "scored.csv"
        if not path.is_file():
            continue
        scored = read_table(path)
        missing = {"predictor", "arch_id", "score", "predicted_latency_ms"} - set(scored.columns)
        if missing:
            raise DataError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        scored = scored.drop_duplicates(["predictor", "arch_id"], keep="last")
        frames.append(scored.assign(method=run.row["method"], constraint=run.row["constraint"]))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def latency_budgets(runs: Sequence[Run]) -> dict[str, float]:
    """Constraint name -> latency budget (ms) of the runs whose constraint has one."""
    return {
        run.row["constraint"]: float(run.limits["latency_ms"])
        for run in runs
        if run.limits.get("latency_ms") is not None
    }


# ---- the page -----------------------------------------------------------------------------------


def figure_html(title: str, png: bytes, caption: str = "") -> str:
    """A PNG embedded as base64 in a `figure.nasflow-plot` with its title."""
    data = base64.b64encode(png).decode("ascii")
    note = f"<figcaption>{caption}</figcaption>" if caption else ""
    return (
        f'<figure class="{PLOT_CLASS}"><h3>{html.escape(title)}</h3>'
        f'<img alt="{html.escape(title)}" src="data:image/png;base64,{data}">{note}</figure>'
    )


def _what_was_run(experiment: str, runs: Sequence[Run]) -> str:
    items = []
    for run in runs:
        row = run.row
        limits = ", ".join(f"{k} ≤ {v:g}" for k, v in run.limits.items() if v is not None)
        items.append(
            f"<li><b>{html.escape(row['method'])}</b> under {html.escape(row['constraint'])}"
            f"{f' ({html.escape(limits)})' if limits else ''}, seed {row['seed']}: "
            f"{html.escape(schedule_label(run.schedule) or str(row['score_predictor']))}, "
            f"{html.escape(str(row['protocol']))} protocol, {row['search_seconds']:.0f} s of "
            "search</li>"
        )
    runs_html = f"<ul>{''.join(items)}</ul>" if items else "<p>No MT search ran.</p>"
    return (
        f"<p>Experiment <b>{html.escape(experiment)}</b>. Searches (method × constraint × "
        f"seed), each winner then trained from scratch, scored (sacrebleu) and its latency "
        f"measured:</p>{runs_html}"
    )


def _curve(path: Path) -> pd.DataFrame:
    curve = read_table(path)
    missing = {"update", "train_loss"} - set(curve.columns)
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
    if "valid_loss" not in curve.columns:
        curve["valid_loss"] = float("nan")
    return curve


def build_page(inputs: PageInputs) -> str:
    """The results page as one HTML document (no external resources)."""
    runs = read_runs(inputs.runs) if inputs.runs else []
    parts = [f"<h1>nasflow results: {html.escape(inputs.experiment)}</h1>"]
    parts.append("<h2>What was run</h2>" + _what_was_run(inputs.experiment, runs))
    if runs:
        results, archs = winners_frames(runs)
        parts.append("<h2>What won</h2>")
        parts.append(
            '<p class="note">The winner of each search trained from scratch: BLEU (sacrebleu, '
            "valid and test), latency measured on the search's latency target and predicted by "
            "the latency predictor the search used, GFLOPs, size (non-embedding parameters) and "
            "search hours.</p>"
        )
        parts.append(table_html(results, WINNERS_ID))
        parts.append("<h3>Winning architectures</h3>")
        parts.append(table_html(archs, "winner-architectures"))
        parts.append("<h2>Plots</h2>")
        scored = scored_frame(runs)
        if len(scored):
            parts.append(
                figure_html(
                    "Search: every scored architecture, score against predicted latency",
                    results_plots.search_scatter(
                        scored, pd.DataFrame([r.row for r in runs]), latency_budgets(runs)
                    ),
                    "One panel per predictor (their scales differ: the supernet's score is "
                    "minus its validation loss, LLM-Distill-PP's a BLEU estimate); stars: the "
                    "winners; dashed lines: latency budgets. Last panel: the winners trained "
                    "from scratch, test BLEU against measured latency.",
                )
            )
        winners = {
            f"{r.row['method']} {r.row['constraint']} seed {r.row['seed']}": _curve(path)
            for r in runs
            if (path := Path(r.row["run_dir"]) / "final" / "curve.csv").is_file()
        }
        supernets = {label: _curve(path) for label, path in inputs.supernet_curves.items()}
        if winners or supernets:
            others = {str(path): _curve(path) for path in inputs.tfs_curves}
            parts.append(
                figure_html(
                    "Training curves",
                    results_plots.training_curves(supernets, winners, others),
                )
            )
    if inputs.supernet_quality is not None:
        quality = json.loads(inputs.supernet_quality.read_text(encoding="utf-8"))
        entries = [e for e in quality.get("supernets", []) if e.get("rows")]
        if entries:
            parts.append(
                figure_html(
                    "Supernet prediction against from-scratch BLEU (TFS-Eval)",
                    results_plots.supernet_vs_scratch(entries),
                    "Each dot is a TFS-Eval architecture trained from scratch; dashed: a "
                    "least-squares line.",
                )
            )
    for title, path in inputs.figures:
        if not path.is_file():
            raise DataError(f"{path}: figure not found")
        parts.append(figure_html(title, path.read_bytes()))
    if inputs.tables:
        parts.append("<h2>Tables</h2>")
    for title, path in inputs.tables:
        frame = read_table(path, allow_empty=True)
        parts.append(f"<h3>{html.escape(title)}</h3>")
        parts.append(markdown_notes(path.with_suffix(".md")))
        if frame.empty:  # its notes say why (one seed, no such runs configured...)
            parts.append('<p class="note">No rows in this run.</p>')
            continue
        parts.append(table_html(_merge_std(_expand_arch_json(frame), 3)))
    body = "\n".join(parts)
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>nasflow results: {html.escape(inputs.experiment)}</title></head><body>"
        f'<div class="nasflow-results"><style>{STYLE}</style>\n{body}\n</div></body></html>\n'
    )


def write_page(inputs: PageInputs, out: str | Path) -> Path:
    """Build the page and write it atomically to `out`."""
    out = Path(out)
    write_text_atomic(out, build_page(inputs))
    return out


def parse_pairs(values: Sequence[str] | None, option: str) -> list[tuple[str, Path]]:
    """`TITLE=PATH` command-line values as (title, path); a value without `=` is an error."""
    pairs = []
    for value in values or []:
        title, sep, path = value.rpartition("=")
        if not sep or not title or not path:
            raise DataError(f"{option} {value!r}: expected TITLE=PATH")
        pairs.append((title, Path(path)))
    return pairs


def page_inputs(experiment: str, **options: Any) -> PageInputs:
    """`PageInputs` from the command's options (lists of strings and paths)."""
    return PageInputs(
        experiment=experiment,
        runs=[Path(p) for p in options.get("runs") or []],
        supernet_curves=dict(parse_pairs(options.get("supernet_curve"), "--supernet-curve")),
        tfs_curves=[Path(p) for p in options.get("tfs_curve") or []],
        supernet_quality=options.get("supernet_quality"),
        tables=parse_pairs(options.get("table"), "--table"),
        figures=parse_pairs(options.get("figure"), "--figure"),
    )

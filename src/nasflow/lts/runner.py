"""The LTS chain from the `lts` config section: the Pareto search and the case study.

`build_text` trains the tokenizer and encodes the held-out text once per experiment (the text
set, `nasflow.lts.text`); both steps below measure on its prompts, loaded from `text_dir`, or,
without one, built from the configured corpus first (a `ConfigError` naming `lts.text.corpus`
before any measurement when there is none). `lts_search` runs the evolutionary Pareto search
(maximise decoder parameters, minimise measured latency and peak memory) through the persistent
measurement cache and writes the frontier, every architecture seen, the history and the
frontier-evolution plot. `case_study` follows the text-prediction paper: frontier candidates
with slightly more decoder parameters than a baseline, and their `n_head` variants, measured
against the baseline (PL, TL, latency_char per token and per character, their P95).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from nasflow.core.errors import ConfigError, DataError
from nasflow.lts.text import TextSet, build_text_set, load_text_set, text_corpus, tokenizer_vocab
from nasflow.space.gpt import GPTArch, LTSSpace, resolve_space

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
    "latency_char_ms_per_token",
    "p95_latency_char_ms_per_token",
    "ms_per_char",
    "p95_ms_per_char",
    "memory_mb",
    "p95_latency_char_vs_baseline",
)
MEASURED = CASE_COLUMNS[7:14]


def lts_space(section: Mapping[str, Any]) -> LTSSpace:
    """The configured space (name or mapping), errors naming `lts.space`."""
    try:
        return resolve_space(section["space"])
    except (ConfigError, DataError, KeyError, ValueError) as error:
        raise ConfigError(f"config key lts.space: {error}") from None


def build_text(
    section: Mapping[str, Any],
    out_dir: str | Path,
    corpus: str | Path | None = None,
    vocab_size: int | None = None,
) -> TextSet:
    """Train the tokenizer on `corpus` with `vocab_size` pieces (defaults: the configured
    ones) and write the text set to `out_dir`."""
    source = Path(corpus) if corpus is not None else text_corpus(section)
    vocab = tokenizer_vocab(section) if vocab_size is None else vocab_size
    return build_text_set(source, out_dir, vocab)


def text_set(section: Mapping[str, Any], text_dir: str | Path | None) -> TextSet:
    """The text set in `text_dir` (checked against `lts.text.vocab_size`), or one built now
    from the configured corpus."""
    vocab = tokenizer_vocab(section)
    if text_dir is None:
        with tempfile.TemporaryDirectory(prefix="lts-text-") as scratch:
            return build_text_set(text_corpus(section), scratch, vocab)
    text = load_text_set(text_dir)
    if text.vocab_size != vocab:
        raise ConfigError(
            f"config key lts.text.vocab_size: {vocab}, but the text set in {text_dir} has "
            f"{text.vocab_size} pieces; rebuild it with `nasflow lts text`"
        )
    return text


def _evaluator(section: Mapping[str, Any], text_dir: str | Path | None, backbone: str = "gpt2"):
    from nasflow.lts.evaluator import LTSEvaluator
    from nasflow.lts.measure import LTSMeasureSettings

    try:
        settings = LTSMeasureSettings.from_mapping(section.get("measure") or {})
    except ConfigError as error:
        raise ConfigError(f"config key lts.{error}") from None
    text = text_set(section, text_dir)
    try:
        return LTSEvaluator(text, settings, backbone=backbone)
    except (ConfigError, DataError) as error:
        raise ConfigError(f"config key lts.{error}") from None


def _cache(path: str | Path, evaluator: Any):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return evaluator.measurement_cache(path)


def state_folder(root: str | Path, section: Mapping[str, Any]) -> Path:
    """The search's state folder under `root`: one per fingerprint of the `lts` section, so a
    search with changed settings starts afresh while a killed one with the same settings
    resumes."""
    from nasflow.core.state import fingerprint

    return Path(root) / fingerprint(dict(section))


def lts_search(
    section: Mapping[str, Any],
    out_dir: str | Path,
    state_dir: str | Path | None,
    cache_path: str | Path,
    *,
    text_dir: str | Path | None = None,
    fresh: bool = False,
    progress: Progress | None = None,
    state_root: str | Path | None = None,
) -> dict[str, Any]:
    """Run the configured Pareto search and write its outputs (`report.lts_plots` plots them);
    return its timing. The resumable state lives in `state_dir`, or with `state_root` in its
    subfolder `state_folder(state_root, section)`."""
    from nasflow.lts.screen import ScreenSettings, gpt_screen
    from nasflow.lts.search import LTS_OBJECTIVES, ParetoSettings, run_pareto_search, write_outputs

    space = lts_space(section)
    settings = ParetoSettings.from_mapping(section.get("search") or {})
    screen = gpt_screen(ScreenSettings.from_mapping(section.get("screen")), space.backbone)
    evaluator = _evaluator(section, text_dir, space.backbone)
    if progress is not None:
        progress(_describe(evaluator))

    def report(row: Mapping[str, Any]) -> None:
        if progress is not None:
            progress(
                f"iteration {row['iteration']}: frontier {row['frontier_size']}, seen "
                f"{row['seen']}, measured {row['measured']}, cache hits {row['cache_hits']}, "
                f"screened out {row['screened_out']} ({row['seconds']:.1f} s)"
            )

    with evaluator, _cache(cache_path, evaluator) as cache:
        result = run_pareto_search(
            space,
            evaluator,
            LTS_OBJECTIVES,
            settings,
            cache,
            state_dir if state_root is None else state_folder(state_root, section),
            report,
            fresh=fresh,
            fingerprint_extra={"space": space.fingerprint},
            screen=screen,
        )
    write_outputs(result, out_dir)
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


@dataclass(frozen=True)
class CaseStudy:
    """The case-study table (columns `CASE_COLUMNS`) and a note on how it was measured."""

    table: pd.DataFrame
    note: str


def _describe(evaluator: Any) -> str:
    """How latency_char and the per-character figures were measured, in one paragraph."""
    s, text = evaluator.settings, evaluator.text
    info = text.info
    corpus = info.get("corpus", "?")
    return (
        f"latency_char(n) = (PL + (n - 1) TL) / n in ms per generated token, n = {s.new_tokens}; "
        f"per character = latency_char / {text.chars_per_token:.3f} characters per token "
        f"(SentencePiece BPE with {text.vocab_size} pieces trained on {corpus}, decoded "
        f"held-out text: {info.get('heldout_chars', text.chars)} characters / {text.tokens} "
        f"tokens); medians and P95 over {s.runs} held-out prompts of {s.min_prompt_tokens}-"
        f"{s.prompt_tokens} tokens (seed {s.seed}), {s.backend} on {s.device}, "
        f"{s.threads} thread(s); the model's head has {s.vocab_size} outputs."
    )


def case_study(
    section: Mapping[str, Any],
    frontier_csv: str | Path,
    cache_path: str | Path,
    progress: Progress | None = None,
    *,
    text_dir: str | Path | None = None,
) -> CaseStudy:
    """The baseline, the selected frontier candidates and their head variants, measured.

    Columns `CASE_COLUMNS`; `p95_latency_char_vs_baseline` is each row's P95 latency_char
    divided by the baseline's (the same ratio per character; 0.77 = 23% lower, the paper's
    headline).
    """
    from nasflow.lts.select import head_variants, select_candidates
    from nasflow.space.gpt_params import decoder_params

    frontier_csv = Path(frontier_csv)
    if not frontier_csv.is_file():
        raise DataError(f"{frontier_csv}: frontier not found (run `nasflow lts search` first)")
    frontier = pd.read_csv(frontier_csv, dtype={"arch_id": str})
    space = lts_space(section)
    baseline = baseline_arch(section)
    evaluator = _evaluator(section, text_dir, space.backbone)
    selection = dict(section.get("selection") or {})
    picked = select_candidates(
        frontier,
        decoder_params(baseline, space.backbone),
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
    with evaluator, _cache(cache_path, evaluator) as cache:
        metrics = _measure_through(cache, evaluator, [a for _, a in archs])
    if progress is not None:
        progress(f"case study: baseline + {len(archs) - 1} architectures measured")
    base_p95 = metrics[0]["p95_latency_char_ms_per_token"]
    rows = [
        {
            "role": role,
            "arch_id": arch.id,
            "n_layer": arch.n_layer,
            "d_model": arch.d_model,
            "d_inner": _compact(arch.d_inner),
            "n_head": _compact(arch.n_head),
            "decoder_params_m": decoder_params(arch, space.backbone) / 1e6,
            **{k: m[k] for k in MEASURED},
            "p95_latency_char_vs_baseline": m["p95_latency_char_ms_per_token"] / base_p95,
        }
        for (role, arch), m in zip(archs, metrics, strict=True)
    ]
    return CaseStudy(pd.DataFrame(rows, columns=list(CASE_COLUMNS)), _describe(evaluator))


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

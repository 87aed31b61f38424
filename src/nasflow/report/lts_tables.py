"""The LTS case study's table as markdown (the CSV is the table itself)."""

from __future__ import annotations

from nasflow.lts.runner import CaseStudy

#: Headers of the case study's markdown table.
HEADERS = {
    "decoder_params_m": "decoder params (M)",
    "prompt_ms": "PL (ms)",
    "token_ms": "TL (ms)",
    "latency_char_ms_per_token": "latency_char (ms/token)",
    "p95_latency_char_ms_per_token": "P95 latency_char (ms/token)",
    "ms_per_char": "latency (ms/char)",
    "p95_ms_per_char": "P95 latency (ms/char)",
    "memory_mb": "peak memory (MiB)",
    "p95_latency_char_vs_baseline": "P95 vs baseline",
}


def case_study_markdown(study: CaseStudy) -> str:
    """The case-study table with readable headers (rounded to 3 decimals), then its note."""
    shown = study.table.round(3).rename(columns=HEADERS)
    return f"{shown.to_markdown(index=False)}\n\n{study.note}\n"

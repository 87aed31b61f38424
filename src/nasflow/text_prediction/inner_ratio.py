"""The d_inner/d_model finding, checked on the user's corpus.

The case study's first candidate (d_inner/d_model < 1) was much faster but clearly worse after
pretraining, which led to the constraint d_inner/d_model >= 2. Here, for each size (a multiple of
the baseline's decoder parameters), a decoder at the low ratio and one at the high ratio with
(as nearly as the d_model grid allows) equal decoder parameters (`models.inner_ratio_pairs`) are
pretrained exactly like the case study's models, and their held-out perplexities compared.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from nasflow.text_prediction.models import baseline_arch, inner_ratio_pairs
from nasflow.text_prediction.training import pretrain

COLUMNS = (
    "size",
    "ratio",
    "model",
    "architecture",
    "decoder_params_m",
    "word_ppl",
    "token_ppl",
    "ppl_vs_high_ratio",
)


def inner_ratio(
    config: Mapping[str, Any],
    data: Any,
    out_dir: str | Path,
    state_root: str | Path,
    *,
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Pretrain the pairs; one row per decoder (columns `COLUMNS`); `ppl_vs_high_ratio` is its
    word perplexity divided by that of the pair's high-ratio decoder."""
    section = config["text_prediction"]
    settings = section["inner_ratio"]
    specs = inner_ratio_pairs(baseline_arch(config["lts"]), settings["ratios"], settings["sizes"])
    summary = pretrain(
        specs,
        data,
        section,
        int(config["seed"]),
        out_dir,
        state_root,
        threads=int(config["threads"]),
        progress=progress,
    )
    rows = []
    for size, (low, high) in zip(
        settings["sizes"],
        zip(summary["models"][0::2], summary["models"][1::2], strict=True),
        strict=True,
    ):
        for model, ratio in ((low, settings["ratios"][0]), (high, settings["ratios"][1])):
            rows.append(
                {
                    "size": float(size),
                    "ratio": float(ratio),
                    "model": model["name"],
                    "architecture": model["label"],
                    "decoder_params_m": model["decoder_params"] / 1e6,
                    "word_ppl": model["quality"]["word_ppl"],
                    "token_ppl": model["quality"]["token_ppl"],
                    "ppl_vs_high_ratio": model["quality"]["word_ppl"] / high["quality"]["word_ppl"],
                }
            )
    return pd.DataFrame(rows, columns=list(COLUMNS))

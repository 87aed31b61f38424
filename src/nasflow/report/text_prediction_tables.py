"""The text-prediction case study's tables as markdown (their CSVs are the tables themselves).

Table 2 and Table 3 follow the layouts of the case study ("Can NAS help us find faster LLM
architectures?"): quality and latency of every pretrained model, then the finetuned baseline
against the finetuned candidate on the suggestion metrics and the P95 latency per character.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

TABLE2_HEADERS = {
    "model": "model",
    "role": "role",
    "architecture": "architecture",
    "decoder_params_m": "decoder params (M)",
    "word_ppl": "PPL (word)",
    "token_ppl": "PPL (token)",
    "last_word_accuracy": "last-word accuracy",
    "prompt_ms": "PL (ms)",
    "token_ms": "TL (ms)",
}


def table2_markdown(table: pd.DataFrame, note: str) -> str:
    """Table 2 (after pretraining) with readable headers, then how it was measured."""
    shown = table.round(
        {
            "decoder_params_m": 3,
            "word_ppl": 2,
            "token_ppl": 2,
            "last_word_accuracy": 4,
            "prompt_ms": 3,
            "token_ms": 3,
        }
    )
    shown = shown.rename(columns=TABLE2_HEADERS)
    return f"## Table 2: pretrained models\n\n{shown.to_markdown(index=False)}\n\n{note}\n"


def table3_markdown(table: pd.DataFrame, names: Mapping[str, str], note: str) -> str:
    """Table 3 (after finetuning): baseline vs candidate and the relative change in percent."""
    shown = table.copy()
    shown["relative_change"] = [
        "" if pd.isna(v) else f"{100.0 * v:+.2f}%" for v in shown["relative_change"]
    ]
    shown = shown.round({"baseline": 4, "candidate": 4}).rename(
        columns={
            "baseline": f"baseline ({names['baseline']})",
            "candidate": f"candidate ({names['candidate']})",
            "relative_change": "change",
        }
    )
    body = shown.to_markdown(index=False)
    return f"## Table 3: finetuned baseline vs candidate\n\n{body}\n\n{note}\n"


def tuning_markdown(tuning: Mapping[str, Any], grid: pd.DataFrame) -> str:
    """The threshold tuning on the dev split: targets, the choice and every grid row."""
    chosen = tuning["chosen"]
    target = tuning["target"]
    head = (
        f"Dev split: the baseline's trigger rate {target['trigger_rate']:.4f} and saving rate "
        f"{target['saving_rate']:.4f} at trigger {target['trigger']:g} / stop {target['stop']:g}; "
        f"the candidate's trigger {chosen['trigger']:.4g} and stop {chosen['stop']:g} give "
        f"{chosen['trigger_rate']:.4f} (tolerance {tuning['tolerance']:g})."
    )
    if not tuning.get("matched", True):
        head += (
            " **Not matched:** no stop value reaches the baseline's rate within the tolerance "
            "(text_prediction.suggest.unmatched: closest), so the closest rate is used."
        )
    return f"## Threshold tuning\n\n{head}\n\n{grid.round(4).to_markdown(index=False)}\n"


def inner_ratio_markdown(table: pd.DataFrame) -> str:
    """The d_inner/d_model pairs and their perplexities."""
    return (
        "## d_inner/d_model at equal decoder parameters\n\n"
        f"{table.round(3).to_markdown(index=False)}\n"
    )

"""The case study's comparison: thresholds tuned on the dev split, then Tables 2 and 3.

- Tuning (as the case study did): the baseline's suggestion engine runs with the configured
  thresholds (`text_prediction.suggest.trigger` / `stop`); on the dev split (the
  sentence-completion corpus's val split) its trigger rate and saving rate are the targets; the
  candidate's trigger threshold is chosen so its dev trigger rate equals the baseline's within
  `suggest.tolerance`, and its stop threshold (from `suggest.stops`) so its dev saving rate comes
  closest to the baseline's, saving rates within `suggest.saving_tolerance` of it counting as
  equal and the best ASC - AEC among them winning (`nasflow.text_prediction.tuning`). Both are
  then scored on the test split.
- Table 2 (after pretraining, one row per model): decoder parameters, held-out perplexity
  (word level, and token level), last-word accuracy, prompt latency PL and token latency TL.
- Table 3 (after finetuning, baseline vs candidate): trigger rate, ASC, AEC and the P95 latency
  per character on the test split, and the candidate's relative change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

TABLE2_COLUMNS = (
    "model",
    "role",
    "architecture",
    "decoder_params_m",
    "word_ppl",
    "token_ppl",
    "last_word_accuracy",
    "prompt_ms",
    "token_ms",
)
TABLE3_COLUMNS = ("metric", "baseline", "candidate", "relative_change")


def tune(
    baseline_dev: Any, candidate_dev: Any, suggest: Mapping[str, Any]
) -> tuple[dict[str, Any], Any]:
    """The baseline's dev metrics at its thresholds and the candidate's tuning result."""
    from nasflow.text_prediction.metrics import score
    from nasflow.text_prediction.tuning import tune_thresholds

    base = score(baseline_dev, suggest["trigger"], suggest["stop"])
    tuned = tune_thresholds(
        candidate_dev,
        base.trigger_rate,
        stops=list(suggest["stops"]),
        tolerance=suggest["tolerance"],
        target_saving=base.saving_rate,
        saving_tolerance=suggest["saving_tolerance"],
        unmatched=suggest.get("unmatched", "error"),
    )
    return base.to_dict(), tuned


def table2(pretrained: Sequence[Mapping[str, Any]], latency: pd.DataFrame) -> pd.DataFrame:
    """One row per pretrained model (columns `TABLE2_COLUMNS`)."""
    measured = latency[latency["phase"] == "pretrain"].set_index("name")
    rows = []
    for model in pretrained:
        q = model["quality"]
        lat = measured.loc[model["name"]]
        rows.append(
            {
                "model": model["name"],
                "role": model["role"],
                "architecture": model["label"],
                "decoder_params_m": model["decoder_params"] / 1e6,
                "word_ppl": q["word_ppl"],
                "token_ppl": q["token_ppl"],
                "last_word_accuracy": q["last_word_accuracy"],
                "prompt_ms": float(lat["prompt_ms"]),
                "token_ms": float(lat["token_ms"]),
            }
        )
    return pd.DataFrame(rows, columns=list(TABLE2_COLUMNS))


def table3(
    baseline: Mapping[str, Any],
    candidate: Mapping[str, Any],
    latency: pd.DataFrame,
    baseline_name: str,
    candidate_name: str,
) -> pd.DataFrame:
    """Baseline vs candidate on the test split (columns `TABLE3_COLUMNS`); `relative_change`
    is (candidate - baseline) / baseline."""
    measured = latency[latency["phase"] == "finetune"].set_index("name")
    p95 = {
        "baseline": float(measured.loc[baseline_name, "p95_ms_per_char"]),
        "candidate": float(measured.loc[candidate_name, "p95_ms_per_char"]),
    }
    metrics = [
        ("trigger rate", baseline["trigger_rate"], candidate["trigger_rate"]),
        ("ASC (characters saved per suggestion)", baseline["asc"], candidate["asc"]),
        ("AEC (extra characters per suggestion)", baseline["aec"], candidate["aec"]),
        ("saving rate", baseline["saving_rate"], candidate["saving_rate"]),
        ("P95 latency per character (ms)", p95["baseline"], p95["candidate"]),
    ]
    rows = [
        {
            "metric": name,
            "baseline": float(b),
            "candidate": float(c),
            "relative_change": (float(c) - float(b)) / float(b) if b else float("nan"),
        }
        for name, b, c in metrics
    ]
    return pd.DataFrame(rows, columns=list(TABLE3_COLUMNS))


@dataclass(frozen=True)
class Comparison:
    """Everything the stage's tables show (the report formats it)."""

    table2: pd.DataFrame
    table3: pd.DataFrame
    tuning: dict[str, Any]
    grid: pd.DataFrame
    names: dict[str, str]
    note2: str
    note3: str


def compare(
    section: Mapping[str, Any],
    pretrained: Sequence[Mapping[str, Any]],
    finetuned: Mapping[str, Mapping[str, Any]],
    suggestions: Mapping[str, tuple[str | Path, str | Path]],
    latency: pd.DataFrame,
) -> Comparison:
    """Tune the candidate's thresholds on dev, score both on test, build Tables 2 and 3.

    `finetuned` and `suggestions` are keyed `baseline` / `candidate`; each suggestion entry is
    the (dev, test) records of that model."""
    from nasflow.text_prediction.metrics import score
    from nasflow.text_prediction.suggest import SuggestionRecords

    suggest = section["suggest"]
    records = {
        who: tuple(SuggestionRecords.load(path) for path in paths)
        for who, paths in suggestions.items()
    }
    target, tuned = tune(records["baseline"][0], records["candidate"][0], suggest)
    tested = {
        "baseline": score(records["baseline"][1], suggest["trigger"], suggest["stop"]).to_dict(),
        "candidate": score(records["candidate"][1], tuned.trigger, tuned.stop).to_dict(),
    }
    names = {who: str(finetuned[who]["name"]) for who in ("baseline", "candidate")}
    chosen = {**tuned.metrics.to_dict(), "trigger": tuned.trigger, "stop": tuned.stop}
    tuning = {
        "target": {"trigger": suggest["trigger"], "stop": suggest["stop"], **target},
        "chosen": chosen,
        "tolerance": suggest["tolerance"],
        "matched": tuned.matched,
        "test": tested,
        "names": names,
    }
    latency_note = _latency_note(latency)
    note2 = (
        "PPL: perplexity on the pretraining corpus's held-out split, per word (total NLL / "
        "(words + one end of sentence per line), comparable across vocabularies) and per token; "
        "last-word accuracy: greedy prediction of each held-out sentence's last word from its "
        f"context, whole-word match. {latency_note}"
    )
    note3 = (
        f"Test split of the sentence-completion corpus. Baseline thresholds trigger "
        f"{suggest['trigger']:g} / stop {suggest['stop']:g} (configured); the candidate's were "
        f"tuned on the dev split to the baseline's trigger rate (trigger {tuned.trigger:.4g}, "
        f"stop {tuned.stop:g}{'' if tuned.matched else _UNMATCHED}). ASC: characters kept per "
        "suggestion shown (the longest prefix of whole words matching the real continuation); "
        f"AEC: characters shown but rejected per suggestion. {latency_note}"
    )
    return Comparison(
        table2(pretrained, latency),
        table3(
            tested["baseline"], tested["candidate"], latency, names["baseline"], names["candidate"]
        ),
        tuning,
        tuned.table(),
        names,
        note2,
        note3,
    )


_UNMATCHED = (
    "; NOT matched within the tolerance at any stop value: the closest rate is used, so the "
    "two models' suggestion metrics are not at an equal trigger rate"
)


def _latency_note(latency: pd.DataFrame) -> str:
    cpt = ", ".join(
        f"{phase} {value:.3f}"
        for phase, value in latency.groupby("phase")["chars_per_token"].first().items()
    )
    return (
        "PL / TL: medians of the prompt latency and of the per-token latency with the key/value "
        "cache, the trained checkpoints exported to ONNX and run by ONNX Runtime under the LTS "
        "chain's protocol (lts.measure), each the median over text_prediction.latency_rounds "
        "interleaved measurements; P95 latency per character: the P95 of latency_char over the "
        f"timed inferences / characters per token of the held-out text ({cpt})."
    )

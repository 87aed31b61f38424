"""Deployment latency of the trained decoders: their own weights, exported to ONNX and run by
ONNX Runtime with graph optimisation, under the LTS chain's latency protocol.

Each checkpoint is measured by `nasflow.lts.measure.measure_arch(..., checkpoint=...)` with the
settings of `lts.measure` except the vocabulary and the positions, which are the trained model's
(`text_prediction.vocab_size`, `text_prediction.seq_len`). Prompts are held-out text of the
corpus the model was last trained on (pretrained models: the pretraining corpus's held-out
split; finetuned ones: the sentence-completion test split), encoded with the experiment's
vocabulary, and the characters per token of that text turn latency_char into latency per
character. So PL, TL, latency_char and its P95 mean exactly what they mean in the LTS chain;
each is the median over `text_prediction.latency_rounds` interleaved measurements.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nasflow.core.errors import ConfigError
from nasflow.lts.runner import MEASURED

Progress = Callable[[str], None]

#: The LTS case study's measured columns, per phase and model.
COLUMNS = ("phase", "name", *MEASURED, "chars_per_token")


def measure_settings(lts: Mapping[str, Any], section: Mapping[str, Any], vocab_size: int) -> Any:
    """`lts.measure` with the trained models' vocabulary and positions; a prompt plus its new
    tokens must fit in `text_prediction.seq_len`."""
    from nasflow.lts.measure import LTSMeasureSettings

    try:
        settings = LTSMeasureSettings.from_mapping(lts.get("measure") or {})
    except ConfigError as error:
        raise ConfigError(f"config key lts.{error}") from None
    settings = replace(settings, vocab_size=vocab_size, n_positions=int(section["seq_len"]))
    if settings.prompt_tokens + settings.new_tokens > settings.n_positions:
        raise ConfigError(
            f"config key text_prediction.seq_len ({settings.n_positions}) is shorter than "
            f"lts.measure.prompt_tokens + new_tokens ({settings.prompt_tokens} + "
            f"{settings.new_tokens}): the measured prompts would not fit the trained models"
        )
    return settings


def text_set(data: Any, corpus: str, split: str) -> Any:
    """The LTS `TextSet` of one encoded split (prompts and characters per token)."""
    from nasflow.lts.text import TextSet

    ids = np.asarray(data.ids(corpus, split), dtype=np.int32)
    cpt = float(data.chars_per_token(corpus, split))
    info = {"corpus": f"{corpus}/{split}", "heldout_chars": round(cpt * ids.size)}
    fingerprint = f"{data.fingerprint}-{corpus}-{split}"
    return TextSet(ids, round(cpt * ids.size), data.vocab_size, fingerprint, info)


def measure_checkpoints(
    entries: Sequence[Mapping[str, Any]],
    data: Any,
    lts: Mapping[str, Any],
    section: Mapping[str, Any],
    *,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """One row per entry (`phase`, `name`, `checkpoint`, `arch`, `corpus`, `split`) with the
    measured figures (columns `COLUMNS`).

    The entries are measured `text_prediction.latency_rounds` times, interleaved (every entry
    once per round, in order), and each figure is the median over the rounds: a model's figures
    do not hinge on what the machine did during its one measurement."""
    from nasflow.lts.measure import measure_arch
    from nasflow.space.gpt import GPTArch

    settings = measure_settings(lts, section, data.vocab_size)
    rounds = int(section["latency_rounds"])
    texts = [text_set(data, entry["corpus"], entry["split"]) for entry in entries]
    measured: list[list[dict[str, float]]] = [[] for _ in entries]
    for number in range(rounds):
        for entry, text, figures in zip(entries, texts, measured, strict=True):
            arch = GPTArch.from_dict(entry["arch"])
            metrics = measure_arch(arch, text, settings, checkpoint=entry["checkpoint"]).metrics()
            figures.append(metrics)
            if progress is not None:
                progress(
                    f"round {number + 1}/{rounds}, {entry['phase']} {entry['name']}: PL "
                    f"{metrics['prompt_ms']:.2f} ms, TL {metrics['token_ms']:.2f} ms, P95 "
                    f"{metrics['p95_ms_per_char']:.3f} ms/char"
                )
    rows = [
        {
            "phase": entry["phase"],
            "name": entry["name"],
            **{key: float(np.median([f[key] for f in figures])) for key in MEASURED},
            "chars_per_token": text.chars_per_token,
        }
        for entry, text, figures in zip(entries, texts, measured, strict=True)
    ]
    return pd.DataFrame(rows, columns=list(COLUMNS))


def entries_of(
    pretrained: Sequence[Mapping[str, Any]], finetuned: Sequence[Mapping[str, Any]], data: Any
) -> list[dict[str, Any]]:
    """What `measure_checkpoints` measures: every pretrained model on the pretraining held-out
    text and every finetuned one on the sentence-completion test text."""
    out = [
        {
            **_keys(m),
            "phase": "pretrain",
            "corpus": "pretrain",
            "split": data.heldout_split("pretrain"),
        }
        for m in pretrained
    ]
    out += [
        {
            **_keys(m),
            "phase": "finetune",
            "corpus": "finetune",
            "split": data.heldout_split("finetune"),
        }
        for m in finetuned
    ]
    return out


def _keys(model: Mapping[str, Any]) -> dict[str, Any]:
    checkpoint = Path(model["checkpoint"])
    return {"name": model["name"], "arch": model["arch"], "checkpoint": str(checkpoint)}

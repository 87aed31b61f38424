"""Score a trained model on a prepared folder: validation loss, beam search and BLEU per role.

References are the raw `{role}.{target_lang}` text files of the prepared folder; hypotheses are
SentencePiece-decoded beam search outputs. Both sacreBLEU and HAT's tokenised BLEU are reported.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from nasflow.core.device import environment
from nasflow.core.errors import DataError
from nasflow.core.io import read_lines, write_text_atomic
from nasflow.data.prepare import load_split, read_manifest
from nasflow.efficiency.counts import count_params
from nasflow.evaluate.bleu import corpus_bleu, tokenized_bleu
from nasflow.evaluate.loss import model_device, validation_loss
from nasflow.evaluate.translate import translate_split
from nasflow.model import SuperTransformer


def prepared_languages(data_dir: str | Path) -> tuple[str, str]:
    """`(source_lang, target_lang)` of a prepared folder, from its manifest."""
    manifest = read_manifest(data_dir)
    try:
        languages = manifest["languages"]
        return str(languages["source"]), str(languages["target"])
    except (KeyError, TypeError):
        raise DataError(f"{Path(data_dir) / 'manifest.json'}: missing 'languages'") from None


def read_references(data_dir: str | Path, role: str, count: int) -> list[str]:
    """The first `count` raw target lines of `role` (all of them must exist)."""
    path = Path(data_dir) / f"{role}.{prepared_languages(data_dir)[1]}"
    lines = read_lines(path)
    if len(lines) < count:
        raise DataError(f"{path}: {len(lines)} reference lines, expected at least {count}")
    return lines[:count]


def score_model(
    model: SuperTransformer,
    data_dir: str | Path,
    *,
    roles: Sequence[str] = ("valid", "test"),
    beam: int = 4,
    lenpen: float = 0.6,
    max_len_a: float = 0.0,
    max_len_b: int = 200,
    batch_sentences: int = 128,
    max_tokens: int = 4096,
    label_smoothing: float = 0.1,
    sentences: int = 0,
    device: torch.device | None = None,
    dtype: torch.dtype = torch.float32,
    hypotheses_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Loss and BLEU of the model's current architecture on each role (first `sentences` if > 0).

    The model is moved to `device` when given. With `hypotheses_dir`, the detokenised
    hypotheses of each role are written to `{hypotheses_dir}/{role}.hyp.{target_lang}`.
    """
    if device is not None:
        model.to(device)
    device = model_device(model)
    arch = model.arch
    assert arch is not None
    source_lang, target_lang = prepared_languages(data_dir)
    spm_path = Path(data_dir) / "spm.model"
    decode = {
        "beam": beam,
        "lenpen": lenpen,
        "max_len_a": max_len_a,
        "max_len_b": max_len_b,
        "batch_sentences": batch_sentences,
    }
    result: dict[str, Any] = {
        "arch": arch.to_dict(),
        "arch_id": arch.id,
        "params": count_params(arch),
        "decode": decode,
        "loss_settings": {"max_tokens": max_tokens, "label_smoothing": label_smoothing},
        "data": {"dir": str(data_dir), "source_lang": source_lang, "target_lang": target_lang},
        "environment": environment(device, dtype),
    }
    for role in roles:
        split = load_split(data_dir, role)
        count = min(sentences, len(split)) if sentences else len(split)
        loss = validation_loss(
            model,
            split,
            max_tokens=max_tokens,
            label_smoothing=label_smoothing,
            sentences=count,
            dtype=dtype,
        )
        start = time.perf_counter()
        hyps = translate_split(model, split, spm_path, sentences=count, dtype=dtype, **decode)
        seconds = time.perf_counter() - start
        refs = read_references(data_dir, role, count)
        sacre, tokenized = corpus_bleu(hyps, refs), tokenized_bleu(hyps, refs)
        entry: dict[str, Any] = {
            "loss_bits": loss.loss_bits,
            "nll_bits": loss.nll_bits,
            "ntokens": loss.ntokens,
            "loss_sentences": loss.nsentences,
            "bleu": sacre.score,
            "bleu_signature": sacre.signature,
            "bleu_details": sacre.to_dict(),
            "tokenized_bleu": tokenized.score,
            "tokenized_bleu_signature": tokenized.signature,
            "sentences": count,
            "decode_seconds": seconds,
        }
        if hypotheses_dir is not None:
            path = Path(hypotheses_dir) / f"{role}.hyp.{target_lang}"
            write_text_atomic(path, "".join(line + "\n" for line in hyps))
            entry["hypotheses"] = str(path)
        result[role] = entry
    return result

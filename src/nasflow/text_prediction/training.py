"""Pretraining and finetuning of the case study's decoders, each followed by its quality metrics.

Every decoder is a `nasflow.lts.model.GPTDecoder` with the experiment's vocabulary and
`text_prediction.seq_len` positions, built under `torch.manual_seed(seed)` and trained by the one
decoder training loop (`nasflow.lts.lm_train.train_lm`, resumable in a state folder per model).

- `pretrain`: every model of a group on the pretraining corpus (train split; the validation
  split feeds the curve), then perplexity (token and word level) and last-word accuracy on the
  pretraining corpus's held-out split. Writes `<out>/<name>/model.pt` and `curve.csv` per model
  and `<out>/models.json` (last).
- `finetune`: the group's model to finetune (the baseline; among the candidates the one with the
  lowest held-out word perplexity after pretraining, as the case study finetuned its best
  candidate) continues training from its pretrained weights on the sentence-completion corpus
  (train split; val feeds the curve), then its perplexity and last-word accuracy on the
  corpus's test split. Writes `<out>/model.pt`, `curve.csv` and `finetune.json` (last).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from nasflow.core.errors import DataError
from nasflow.core.io import write_json_atomic
from nasflow.text_prediction.models import ModelSpec

Progress = Callable[[str], None]
PRETRAIN, FINETUNE = "pretrain", "finetune"


def train_settings(section: Mapping[str, Any], phase: str, seed: int) -> Any:
    """`LMTrainSettings` of `text_prediction.<phase>` with the section's seq_len and `seed`."""
    from nasflow.lts.lm_train import LMTrainSettings

    values = {**dict(section.get(phase) or {}), "seq_len": section["seq_len"], "seed": seed}
    return LMTrainSettings.from_mapping(values, f"text_prediction.{phase}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def quality(model: Any, data: Any, corpus: str, section: Mapping[str, Any]) -> dict[str, Any]:
    """Perplexity and last-word accuracy of `model` on the corpus's held-out split."""
    from nasflow.text_prediction.quality import last_word_accuracy, perplexity

    split = data.heldout_split(corpus)
    q = section["quality"]
    started = time.perf_counter()
    ppl = perplexity(model, data, corpus, split, section["seq_len"], max_tokens=q["max_tokens"])
    accuracy = last_word_accuracy(
        model,
        data,
        corpus,
        split,
        min_context_words=q["min_context_words"],
        max_sentences=q["max_sentences"],
        max_new_tokens=q["max_new_tokens"],
    )
    return {
        "corpus": corpus,
        "split": split,
        "token_ppl": ppl["token_ppl"],
        "word_ppl": ppl["word_ppl"],
        "nll": ppl["nll"],
        "tokens": ppl["tokens"],
        "words": ppl["words"],
        "last_word_accuracy": accuracy["accuracy"],
        "last_word_sentences": accuracy["n"],
        "seconds": round(time.perf_counter() - started, 3),
    }


def _train_one(
    model: Any,
    data: Any,
    corpus: str,
    settings: Any,
    out: Path,
    state_dir: Path,
    extra: Mapping[str, Any],
    threads: int,
    progress: Progress | None,
) -> dict[str, Any]:
    from nasflow.lts.lm_train import train_lm

    result = train_lm(
        model,
        data.ids(corpus, "train"),
        data.ids(corpus, "valid"),
        settings,
        state_dir=state_dir,
        fingerprint_extra=dict(extra),
        curve_path=out / "curve.csv",
        threads=threads,
        progress=progress,
    )
    return result.to_dict()


def pretrain(
    specs: Sequence[ModelSpec],
    data: Any,
    section: Mapping[str, Any],
    seed: int,
    out_dir: str | Path,
    state_root: str | Path,
    *,
    threads: int = 1,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Pretrain every model of `specs`, score it, write the group's files; return models.json."""
    import torch

    from nasflow.lts.lm_train import save_checkpoint
    from nasflow.lts.model import GPTDecoder

    settings = train_settings(section, PRETRAIN, seed)
    out_dir, state_root = Path(out_dir), Path(state_root)
    rows = []
    for spec in specs:
        if progress is not None:
            progress(f"pretraining {spec.name} ({spec.arch.describe()})")
        torch.manual_seed(seed)
        model = GPTDecoder(spec.arch, data.vocab_size, section["seq_len"], dropout=settings.dropout)
        out = out_dir / spec.name
        out.mkdir(parents=True, exist_ok=True)
        extra = {"data": data.fingerprint, "arch": spec.arch.to_dict(), "phase": PRETRAIN}
        trained = _train_one(
            model, data, PRETRAIN, settings, out, state_root / spec.name, extra, threads, progress
        )
        model.eval()
        scores = quality(model, data, PRETRAIN, section)
        checkpoint = out / "model.pt"
        save_checkpoint(checkpoint, model, {"name": spec.name, "phase": PRETRAIN, "seed": seed})
        row = {
            **spec.to_dict(),
            "checkpoint": str(checkpoint),
            "checkpoint_sha256": _sha256(checkpoint),
            "train": trained,
            "quality": scores,
        }
        rows.append(row)
        if progress is not None:
            progress(
                f"{spec.name}: word ppl {scores['word_ppl']:.2f}, token ppl "
                f"{scores['token_ppl']:.2f}, last-word accuracy {scores['last_word_accuracy']:.4f}"
            )
    summary = {
        "phase": PRETRAIN,
        "data": data.fingerprint,
        "settings": settings.to_dict(),
        "seed": seed,
        "models": rows,
    }
    write_json_atomic(out_dir / "models.json", summary)
    return summary


def pick_for_finetuning(models: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    """The baseline, or the candidate with the lowest held-out word perplexity (ties: the
    earlier one, i.e. the faster in the case study's order)."""
    if not models:
        raise DataError("no pretrained model to finetune")
    return min(models, key=lambda m: float(m["quality"]["word_ppl"]))


def finetune(
    pretrained: Sequence[Mapping[str, Any]],
    data: Any,
    section: Mapping[str, Any],
    seed: int,
    out_dir: str | Path,
    state_dir: str | Path,
    *,
    threads: int = 1,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Finetune the group's chosen model (see the module docstring); return finetune.json."""
    from nasflow.lts.lm_train import load_checkpoint, save_checkpoint

    chosen = pick_for_finetuning(pretrained)
    source = Path(chosen["checkpoint"])
    if not source.is_file():
        raise DataError(f"{source}: pretrained checkpoint of {chosen['name']} not found")
    if _sha256(source) != chosen["checkpoint_sha256"]:
        raise DataError(f"{source}: changed since it was pretrained (sha256 differs)")
    settings = train_settings(section, FINETUNE, seed)
    model, _ = load_checkpoint(source, dropout=settings.dropout)
    if progress is not None:
        progress(f"finetuning {chosen['name']} ({model.arch.describe()}) from {source}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    extra = {"data": data.fingerprint, "init": chosen["checkpoint_sha256"], "phase": FINETUNE}
    trained = _train_one(
        model, data, FINETUNE, settings, out_dir, Path(state_dir), extra, threads, progress
    )
    model.eval()
    scores = quality(model, data, FINETUNE, section)
    checkpoint = out_dir / "model.pt"
    save_checkpoint(checkpoint, model, {"name": chosen["name"], "phase": FINETUNE, "seed": seed})
    summary = {
        "phase": FINETUNE,
        "name": chosen["name"],
        "role": chosen["role"],
        "arch": chosen["arch"],
        "label": chosen["label"],
        "decoder_params": chosen["decoder_params"],
        "pretrained": {"checkpoint": str(source), "quality": chosen["quality"]},
        "data": data.fingerprint,
        "settings": settings.to_dict(),
        "seed": seed,
        "checkpoint": str(checkpoint),
        "checkpoint_sha256": _sha256(checkpoint),
        "train": trained,
        "quality": scores,
    }
    write_json_atomic(out_dir / "finetune.json", summary)
    if progress is not None:
        progress(
            f"{chosen['name']} finetuned: word ppl {scores['word_ppl']:.2f}, last-word accuracy "
            f"{scores['last_word_accuracy']:.4f}"
        )
    return summary

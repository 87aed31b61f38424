"""Evaluation of trained models: validation loss, translation, BLEU and full scoring.

Names are imported on first use, so that `nasflow.cli.arch` (and the `nasflow` command)
loads without torch.
"""

from importlib import import_module
from typing import Any

_EXPORTS = {
    "BleuResult": "bleu",
    "corpus_bleu": "bleu",
    "hat_tokenize": "bleu",
    "tokenized_bleu": "bleu",
    "LossResult": "loss",
    "prepare_batches": "loss",
    "validation_loss": "loss",
    "score_model": "score",
    "translate_ids": "translate",
    "translate_split": "translate",
    "translate_text": "translate",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f"nasflow.evaluate.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

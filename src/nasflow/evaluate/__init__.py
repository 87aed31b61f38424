"""Evaluation of trained models: validation loss, translation, BLEU and full scoring."""

from nasflow.evaluate.bleu import BleuResult, corpus_bleu, hat_tokenize, tokenized_bleu
from nasflow.evaluate.loss import LossResult, prepare_batches, validation_loss
from nasflow.evaluate.score import score_model
from nasflow.evaluate.translate import translate_ids, translate_split, translate_text

__all__ = [
    "BleuResult",
    "LossResult",
    "corpus_bleu",
    "hat_tokenize",
    "prepare_batches",
    "score_model",
    "tokenized_bleu",
    "translate_ids",
    "translate_split",
    "translate_text",
    "validation_loss",
]

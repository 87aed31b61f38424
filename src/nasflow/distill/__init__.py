"""LLM-Distill-PP: the MLP that distils LLM-PP's BLEU predictions into a fast predictor."""

from nasflow.distill.mlp import (
    DistilledPredictor,
    DistillSettings,
    FeatureNormalization,
    distill_feature_matrix,
    evaluate_on,
    train_distill_mlp,
)

__all__ = [
    "DistillSettings",
    "DistilledPredictor",
    "FeatureNormalization",
    "distill_feature_matrix",
    "evaluate_on",
    "train_distill_mlp",
]

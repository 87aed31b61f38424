"""Performance predictors behind one interface: `predict(archs) -> scores`, higher is better."""

from nasflow.predictors.base import Predictor, check_scores
from nasflow.predictors.baselines import FlopsPredictor, ParamsPredictor, StoredPredictor

__all__ = ["FlopsPredictor", "ParamsPredictor", "Predictor", "StoredPredictor", "check_scores"]

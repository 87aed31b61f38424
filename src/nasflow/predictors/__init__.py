"""Performance predictors behind one interface: `predict(archs) -> scores`, higher is better.

`SupernetPredictor` is imported on first use, so that importing this package stays free of torch.
"""

from typing import Any

from nasflow.predictors.base import Predictor, check_scores
from nasflow.predictors.baselines import FlopsPredictor, ParamsPredictor, StoredPredictor

__all__ = [
    "FlopsPredictor",
    "ParamsPredictor",
    "Predictor",
    "StoredPredictor",
    "SupernetPredictor",
    "check_scores",
]


def __getattr__(name: str) -> Any:
    if name == "SupernetPredictor":
        from nasflow.predictors.supernet import SupernetPredictor

        return SupernetPredictor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

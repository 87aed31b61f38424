"""The one interface every performance predictor implements (supernet, MLP, LLM, baselines).

A predictor maps architectures to **scores: higher means better predicted quality**. Predictors
whose scores are BLEU estimates (`bleu_scale = True`) are judged by MAE and Kendall's tau against
from-scratch BLEU; the others (e.g. #Params, #FLOPs) only rank architectures, so only Kendall's
tau applies to them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

from nasflow.space.hat import Arch


class Predictor(ABC):
    """Scores architectures; higher scores mean better predicted quality.

    Attributes:
        name: label used in tables and plots (e.g. `HAT`, `#Params`).
        bleu_scale: True when scores are BLEU estimates (MAE applies); False when only their
            ranking is meaningful (Kendall's tau only).
    """

    name: str
    bleu_scale: bool = False

    @abstractmethod
    def predict(self, archs: Sequence[Arch]) -> np.ndarray:
        """One float score per architecture, in the order given (shape `(len(archs),)`)."""

    def for_seed(self, seed: int) -> Predictor:
        """The predictor for one TFS-Eval seed (itself, unless predictions depend on the seed's
        demonstrations, as LLM-PP's do)."""
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, bleu_scale={self.bleu_scale})"


def check_scores(predictor: Predictor, archs: Sequence[Arch], scores: object) -> np.ndarray:
    """`scores` as a finite float vector with one entry per arch, else a clear ValueError."""
    values = np.asarray(scores, dtype=float)
    if values.shape != (len(archs),):
        raise ValueError(
            f"predictor {predictor.name!r} returned shape {values.shape} "
            f"for {len(archs)} architectures"
        )
    if not np.isfinite(values).all():
        raise ValueError(f"predictor {predictor.name!r} returned NaN or infinite scores")
    return values

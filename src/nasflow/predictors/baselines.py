"""Baseline predictors: model size and FLOPs (rank only), and released supernet predictions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from nasflow.core.errors import DataError
from nasflow.efficiency.counts import count_embedding_params, count_flops, count_params
from nasflow.predictors.base import Predictor
from nasflow.space.hat import Arch

if TYPE_CHECKING:
    import pandas as pd


class ParamsPredictor(Predictor):
    """#Params: total parameters (non-embedding + embedding) by nasflow's closed-form counts."""

    name = "#Params"
    bleu_scale = False

    def __init__(self, vocab_size: int) -> None:
        self.vocab_size = vocab_size

    def predict(self, archs: Sequence[Arch]) -> np.ndarray:
        return np.array(
            [count_params(a) + count_embedding_params(a, self.vocab_size) for a in archs],
            dtype=float,
        )


class FlopsPredictor(Predictor):
    """#FLOPs: forward FLOPs of one sentence pair, output projection included (`count_flops`)."""

    name = "#FLOPs"
    bleu_scale = False

    def __init__(self, vocab_size: int) -> None:
        self.vocab_size = vocab_size

    def predict(self, archs: Sequence[Arch]) -> np.ndarray:
        return np.array([count_flops(a, self.vocab_size) for a in archs], dtype=float)


class StoredPredictor(Predictor):
    """Predictions looked up by architecture id (e.g. the released supernet valid BLEU)."""

    bleu_scale = True

    def __init__(
        self, name: str, predictions: Mapping[str, float], bleu_scale: bool = True
    ) -> None:
        self.name = name
        self.predictions = dict(predictions)
        self.bleu_scale = bleu_scale

    def predict(self, archs: Sequence[Arch]) -> np.ndarray:
        missing = [a.id for a in archs if a.id not in self.predictions]
        if missing:
            raise DataError(
                f"predictor {self.name!r} has no stored prediction for architecture(s) "
                f"{', '.join(missing[:5])}" + (" ..." if len(missing) > 5 else "")
            )
        return np.array([self.predictions[a.id] for a in archs], dtype=float)

    @classmethod
    def from_table(
        cls, table: pd.DataFrame, name: str, task: str, bleu_scale: bool = True
    ) -> StoredPredictor:
        """The predictions in column `name` for `task` of a `read_tfs_eval` table.

        Every architecture must carry one value for the task across seeds and splits.
        `bleu_scale=False` for rank-only columns (e.g. a supernet's negated loss).
        """
        if name not in table.columns:
            raise DataError(f"the TFS-Eval table has no predictor column {name!r}")
        rows = table.loc[table["task"] == task, ["arch_id", name]].dropna()
        values = rows.groupby("arch_id")[name].unique()
        conflicting = [arch_id for arch_id, v in values.items() if len(v) > 1]
        if conflicting:
            raise DataError(
                f"predictor {name!r} on {task}: architecture {conflicting[0]} has different "
                f"stored predictions across seeds/splits: {sorted(values[conflicting[0]])}"
            )
        return cls(name, {a: float(v[0]) for a, v in values.items()}, bleu_scale=bleu_scale)

"""How well the trained supernet ranks architectures trained from scratch (TFS).

Reads the `score.json` files of from-scratch runs (`nasflow arch score`), scores the same
architectures with a `SupernetPredictor`, and reports Kendall's tau (and MAE when the supernet
predicts BLEU) against the from-scratch valid BLEU, the gold value of the paper, and test BLEU.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nasflow.core.metrics import kendall, mae
from nasflow.predictors.base import Predictor


def _finite(value: float) -> float | None:
    """Rounded value, or None where it is undefined (e.g. Kendall's tau of constant gold)."""
    return round(float(value), 4) if np.isfinite(value) else None


def supernet_quality(predictor: Predictor, records: list[dict[str, Any]]) -> dict[str, Any]:
    """Kendall's tau (and MAE for BLEU-scale predictors) of `predictor` on the TFS records."""
    archs = [record["arch"] for record in records]
    predicted = np.asarray(predictor.predict(archs), dtype=float)
    summary: dict[str, Any] = {
        "predictor": predictor.name,
        "bleu_scale": predictor.bleu_scale,
        "architectures": len(records),
    }
    golds = {
        "valid_bleu": [record["valid_bleu"] for record in records],
        "test_bleu": [record["test_bleu"] for record in records],
        # From-scratch validation loss, negated so that higher is better like the scores.
        "neg_tfs_valid_loss": [-record["valid_loss"] for record in records],
    }
    for gold, values in golds.items():
        summary[f"kendall_{gold}"] = _finite(kendall(np.array(values), predicted))
        if predictor.bleu_scale and gold != "neg_tfs_valid_loss":
            summary[f"mae_{gold}"] = _finite(mae(np.array(values), predicted))
    summary["rows"] = [
        {
            "arch_id": record["arch"].id,
            "predicted": round(float(score), 4),
            "valid_bleu": record["valid_bleu"],
            "test_bleu": record["test_bleu"],
            "tfs_valid_loss": record["valid_loss"],
        }
        for record, score in zip(records, predicted, strict=True)
    ]
    return summary

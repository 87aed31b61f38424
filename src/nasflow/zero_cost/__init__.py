"""Zero-cost proxies (grad-norm, snip, synflow) of HAT architectures at initialisation.

Modules: `proxies` (the proxies over any `torch.nn.Module`), `predictor` (the Transformer at
initialisation, its loss and synflow input, `score_archs`, `ZeroCostPredictor`), `batches` (the
fixed batch: a prepared folder's train split, or newstest2013 for the released WMT tasks),
`scores` (scores of a TFS-Eval set as CSV + JSON sidecar, `read_scores`).
"""

from nasflow.zero_cost.proxies import NAMES

__all__ = ["NAMES"]

"""Efficiency of an architecture: closed-form parameter and FLOP counts (here), latency on the
device (`latency`, `onnx_export`, `latency_dataset`). The latency predictor is
`nasflow.predictors.latency`, the search constraints `nasflow.search.constraints`."""

from nasflow.efficiency.counts import (
    count_embedding_params,
    count_flops,
    count_params,
    last_layer_flops,
)

__all__ = ["count_embedding_params", "count_flops", "count_params", "last_layer_flops"]

"""Efficiency of an architecture: closed-form parameter and FLOP counts (here), latency on the
device (`latency`, `onnx_export`, `latency_dataset`), the latency predictor and constraints."""

from nasflow.efficiency.counts import (
    count_embedding_params,
    count_flops,
    count_params,
    last_layer_flops,
)

__all__ = ["count_embedding_params", "count_flops", "count_params", "last_layer_flops"]

"""ONNX Runtime sessions with the one set of options every latency measurement uses.

Full graph optimisation, `threads` intra-op threads, one inter-op thread, sequential execution,
warnings off. Importing this module does not import torch, so lean measurement workers use it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nasflow.core.errors import NasflowError


class OrtProviderError(NasflowError, ValueError):
    """The asked-for execution provider is not in this onnxruntime build."""


def ort_options(threads: int, device: str = "cpu") -> tuple[Any, list[str]]:
    """The session options and providers of every latency measurement (module docstring)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    providers = ["CPUExecutionProvider"]
    if device == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise OrtProviderError(
                "device cuda asked for ONNX Runtime, but this onnxruntime has no CUDA provider "
                "(install onnxruntime-gpu)"
            )
        providers.insert(0, "CUDAExecutionProvider")
    return options, providers


def ort_session(path: str | Path, threads: int, device: str = "cpu") -> Any:
    """An ONNX Runtime session with full graph optimisation and `threads` intra-op threads."""
    import onnxruntime as ort

    options, providers = ort_options(threads, device)
    return ort.InferenceSession(str(path), options, providers=providers)

"""nasflow's stable Python API: what a script needs to search MT (HAT-style) spaces without the
workflow. Names are imported on first use, so `import nasflow.api` stays light (torch loads
with the first name that needs it). Walk-through: docs/api.md.

Spaces (`nasflow.space.hat`, `nasflow.space.registry`)
    `Arch`, `SearchSpace`; `get_space(name | file | mapping)`, `register_space(name, space)`,
    `load_space_file(path)`, `space_from_mapping`, `space_to_mapping`, `available_spaces()`;
    packages ship spaces through the `nasflow.spaces` entry-point group.
Predictors (`nasflow.predictors`): higher scores are better
    `Predictor` (the interface of custom ones: a `name` and `predict(archs) -> array`),
    `check_scores`; `SupernetPredictor` (a trained supernet's subnets on the valid split),
    `LatencyPredictor` (`.from_file`, `.predict_ms`) and `train_latency_predictor`,
    `DistilledPredictor` (LLM-Distill-PP's MLP: `.load`) and `train_distill_mlp`,
    `ParamsPredictor`, `FlopsPredictor`.
Constraints (`nasflow.search.constraints`): upper bounds on one quantity
    `Constraint` (custom ones: `name`, `unit`, `values(archs) -> array`), `LatencyConstraint`,
    `FlopsConstraint`, `ParamsConstraint`, `constraints_from_mapping`, `satisfies_all`.
Search (`nasflow.search`)
    `run_search(space, predictors, schedule, constraints, settings, ...) -> SearchResult`,
    `EvolutionSettings` (HAT's defaults), `PredictorSchedule` (`.single`, `.hsnas`), `Segment`,
    `SearchResult`, `ScoredArch`, `PROTOCOLS`, `write_outputs`.
Models and measurement (`nasflow.model`, `nasflow.efficiency`)
    `SuperTransformer`, `load_model`; `measure` (latency of an arch: torch or ONNX Runtime,
    HAT's or the robust protocol) -> `LatencyResult`; `count_params`, `count_flops`.
Errors: `NasflowError` (base; the CLI prints these without a traceback), `ConfigError`,
`ArchError`.
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> module that defines it
_EXPORTS: dict[str, str] = {
    # spaces
    "Arch": "nasflow.space.hat",
    "SearchSpace": "nasflow.space.hat",
    "get_space": "nasflow.space.hat",
    "register_space": "nasflow.space.registry",
    "load_space_file": "nasflow.space.registry",
    "space_from_mapping": "nasflow.space.registry",
    "space_to_mapping": "nasflow.space.registry",
    "available_spaces": "nasflow.space.registry",
    # predictors
    "Predictor": "nasflow.predictors.base",
    "check_scores": "nasflow.predictors.base",
    "SupernetPredictor": "nasflow.predictors.supernet",
    "LatencyPredictor": "nasflow.predictors.latency",
    "train_latency_predictor": "nasflow.predictors.latency",
    "DistilledPredictor": "nasflow.predictors.distilled",
    "train_distill_mlp": "nasflow.predictors.distilled",
    "ParamsPredictor": "nasflow.predictors.baselines",
    "FlopsPredictor": "nasflow.predictors.baselines",
    # constraints
    "Constraint": "nasflow.search.constraints",
    "LatencyConstraint": "nasflow.search.constraints",
    "FlopsConstraint": "nasflow.search.constraints",
    "ParamsConstraint": "nasflow.search.constraints",
    "constraints_from_mapping": "nasflow.search.constraints",
    "satisfies_all": "nasflow.search.constraints",
    # search
    "run_search": "nasflow.search.evolution",
    "EvolutionSettings": "nasflow.config.sections",
    "PredictorSchedule": "nasflow.search.schedule",
    "Segment": "nasflow.search.schedule",
    "SearchResult": "nasflow.search.evolution",
    "ScoredArch": "nasflow.search.evolution",
    "PROTOCOLS": "nasflow.search.evolution",
    "write_outputs": "nasflow.search.evolution",
    # models and measurement
    "SuperTransformer": "nasflow.model.supertransformer",
    "load_model": "nasflow.model.checkpoint",
    "measure": "nasflow.efficiency.latency",
    "LatencyResult": "nasflow.efficiency.latency",
    "count_params": "nasflow.efficiency.counts",
    "count_flops": "nasflow.efficiency.counts",
    # errors
    "NasflowError": "nasflow.core.errors",
    "ConfigError": "nasflow.core.errors",
    "ArchError": "nasflow.space.hat",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})

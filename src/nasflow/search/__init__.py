"""Evolutionary architecture search: HAT's algorithm with a per-iteration predictor schedule."""

from nasflow.core.state import SearchStateError
from nasflow.search.evolution import (
    DEFAULT_PROTOCOL,
    HISTORY_COLUMNS,
    PROTOCOLS,
    SCORED_COLUMNS,
    EvolutionSettings,
    ScoredArch,
    SearchError,
    SearchResult,
    run_search,
    write_outputs,
)
from nasflow.search.schedule import PredictorSchedule, Segment

__all__ = [
    "DEFAULT_PROTOCOL",
    "HISTORY_COLUMNS",
    "PROTOCOLS",
    "SCORED_COLUMNS",
    "EvolutionSettings",
    "PredictorSchedule",
    "ScoredArch",
    "SearchError",
    "SearchResult",
    "SearchStateError",
    "Segment",
    "run_search",
    "write_outputs",
]

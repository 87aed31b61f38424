"""Evolutionary architecture search: HAT's algorithm with a per-iteration predictor schedule."""

from nasflow.search.evolution import (
    HISTORY_COLUMNS,
    EvolutionSettings,
    ScoredArch,
    SearchError,
    SearchResult,
    run_search,
    write_outputs,
)
from nasflow.search.schedule import PredictorSchedule, Segment
from nasflow.search.state import SearchStateError

__all__ = [
    "HISTORY_COLUMNS",
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

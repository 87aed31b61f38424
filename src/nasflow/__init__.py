"""nasflow: hardware-aware neural architecture search for Transformers.

The stable Python API is `nasflow.api` (spaces, predictors, constraints, the evolutionary search,
latency measurement); see its docstring and docs/api.md.
"""

__version__ = "0.1.0"

"""A validation subset chosen by a rank-fidelity check: the search's `fast` protocol.

Before the search, `sample` distinct architectures of the space that satisfy the constraints
(drawn from their own seeded stream, so the search's initial population is unchanged) are scored
by the supernet once on the full validation set, and from the same pass on growing nested
seeded subsets (`fractions` of the target tokens, `SupernetPredictor.valid_subsets`). The
smallest subset whose Kendall tau against the full-set scores is at least `min_kendall` is used
by every later scoring of the run; if none passes, the full set is (and the record says so). The
check's seconds count in the search's. Its full-set scores do not seed the score cache: the
search scores on the subset.

Config (`search.valid_subset`, read under `search.protocol: fast` only): `fractions`
([1/16, 1/8, 1/4, 1/2]), `min_kendall` (0.9), `sample` (20), `seed` (0: the subsets'
permutation and the sample's stream).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from nasflow.core.checks import is_int
from nasflow.core.errors import ConfigError
from nasflow.core.metrics import kendall
from nasflow.space.hat import Arch

SUBSET_KEYS = ("fractions", "min_kendall", "sample", "seed")


@runtime_checkable
class SubsetScorer(Protocol):
    """A predictor that can score subsets of its validation set (the supernet, loss metric)."""

    def valid_subsets(self, fractions: Sequence[float], seed: int) -> list[np.ndarray]:
        """Nested seeded subsets of sentence indices, one per fraction in (0, 1] (1: all)."""

    def subset_scores(
        self, archs: Sequence[Arch], subsets: Sequence[np.ndarray | None]
    ) -> np.ndarray:
        """Scores [len(subsets), len(archs)]; a subset of None is the full set."""

    def restrict(self, subset: np.ndarray | None) -> None:
        """Score only `subset` from now on (None: the full set)."""


@dataclass(frozen=True)
class SubsetSettings:
    """The rank-fidelity check's settings (`search.valid_subset`)."""

    fractions: tuple[float, ...] = (0.0625, 0.125, 0.25, 0.5)
    min_kendall: float = 0.9
    sample: int = 20
    seed: int = 0

    def __post_init__(self) -> None:
        where = "search.valid_subset"
        fractions = self.fractions
        if not isinstance(fractions, list | tuple) or not fractions:
            raise ConfigError(f"{where}.fractions must be a non-empty list, got {fractions!r}")
        for value in fractions:
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
                raise ConfigError(f"{where}.fractions: each must lie in (0, 1), got {value!r}")
        if list(fractions) != sorted(set(fractions)):
            raise ConfigError(f"{where}.fractions must be increasing, got {list(fractions)}")
        object.__setattr__(self, "fractions", tuple(float(v) for v in fractions))
        tau = self.min_kendall
        if isinstance(tau, bool) or not isinstance(tau, int | float) or not -1 <= tau <= 1:
            raise ConfigError(f"{where}.min_kendall must be a number in [-1, 1], got {tau!r}")
        object.__setattr__(self, "min_kendall", float(tau))
        if not is_int(self.sample) or self.sample < 3:
            raise ConfigError(f"{where}.sample must be an integer >= 3, got {self.sample!r}")
        if not is_int(self.seed):
            raise ConfigError(f"{where}.seed must be an integer, got {self.seed!r}")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> SubsetSettings:
        values = dict(values or {})
        unknown = sorted(set(values) - set(SUBSET_KEYS))
        if unknown:
            raise ConfigError(
                f"unknown search.valid_subset key(s): {', '.join(map(str, unknown))}; "
                f"known: {', '.join(SUBSET_KEYS)}"
            )
        if "fractions" in values and isinstance(values["fractions"], list):
            values["fractions"] = tuple(values["fractions"])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["fractions"] = list(self.fractions)
        return out


@dataclass
class SubsetCheck:
    """What the check found: per fraction, the subset's sentences, tokens share and Kendall tau
    against the full set; the chosen fraction (1.0: the full set) and its sentence indices."""

    settings: SubsetSettings
    predictor: str
    sample_ids: list[str]
    full_sentences: int
    sentences: list[int]
    taus: list[float]
    chosen: float
    passed: bool
    seconds: float = 0.0
    indices: list[int] | None = field(default=None, repr=False)

    def to_dict(self, with_indices: bool = True) -> dict[str, Any]:
        """JSON-able; `with_indices` keeps the chosen sentence indices (for a resumed state)."""
        out = {
            "settings": self.settings.to_dict(),
            "predictor": self.predictor,
            "sample_ids": list(self.sample_ids),
            "full_sentences": self.full_sentences,
            "tried": [
                {"fraction": f, "sentences": n, "kendall": t}
                for f, n, t in zip(self.settings.fractions, self.sentences, self.taus, strict=True)
            ],
            "chosen_fraction": self.chosen,
            "chosen_sentences": len(self.indices) if self.indices is not None else None,
            "passed": self.passed,
            "seconds": self.seconds,
        }
        if with_indices:
            out["indices"] = self.indices
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SubsetCheck:
        tried = data["tried"]
        return cls(
            settings=SubsetSettings.from_mapping(data["settings"]),
            predictor=str(data["predictor"]),
            sample_ids=[str(i) for i in data["sample_ids"]],
            full_sentences=int(data["full_sentences"]),
            sentences=[int(row["sentences"]) for row in tried],
            taus=[float(row["kendall"]) for row in tried],
            chosen=float(data["chosen_fraction"]),
            passed=bool(data["passed"]),
            seconds=float(data["seconds"]),
            indices=None if data.get("indices") is None else [int(i) for i in data["indices"]],
        )

    @property
    def subset(self) -> np.ndarray | None:
        """The chosen sentences (None: the full set)."""
        return None if self.indices is None else np.asarray(self.indices, dtype=np.int64)


def choose_fraction(
    full: Sequence[float], per_fraction: Sequence[Sequence[float]], min_kendall: float
) -> tuple[list[float], int | None]:
    """Kendall tau of each subset's scores against the full-set scores, and the index of the
    first (smallest) subset reaching `min_kendall` (None: none does; an undefined tau, constant
    scores, never passes)."""
    taus = [kendall(full, scores) for scores in per_fraction]
    for index, tau in enumerate(taus):
        if np.isfinite(tau) and tau >= min_kendall:
            return taus, index
    return taus, None


def check_subsets(
    scorer: SubsetScorer, name: str, archs: Sequence[Arch], settings: SubsetSettings
) -> SubsetCheck:
    """Score `archs` on the full set and every subset (one pass each) and choose the subset."""
    *subsets, full = scorer.valid_subsets([*settings.fractions, 1.0], settings.seed)
    scores = scorer.subset_scores(archs, [*subsets, None])
    taus, chosen = choose_fraction(scores[-1], scores[:-1], settings.min_kendall)
    return SubsetCheck(
        settings=settings,
        predictor=name,
        sample_ids=[arch.id for arch in archs],
        full_sentences=len(full),
        sentences=[len(s) for s in subsets],
        taus=[float(t) for t in taus],
        chosen=1.0 if chosen is None else settings.fractions[chosen],
        passed=chosen is not None,
        indices=None if chosen is None else [int(i) for i in subsets[chosen]],
    )

"""HAT's evolutionary search with a per-iteration predictor schedule (HAT, HS-NAS), seeded and
resumable.

Per HAT (`evo_search.py`, reference §6): the initial population is sampled gene by gene and
rejection-sampled until every constraint holds. Each iteration `i` scores the whole population
with the one predictor `schedule.predictor_for(i)` (higher is better; scores of different
predictors are never mixed), keeps the top `parents` (stable: ties keep population order) as
elites, and adds `mutations` mutants (a parent drawn uniformly with replacement, each gene
redrawn with `mutation_prob`) and `crossovers` children (two distinct parents, each gene from
either with probability 0.5). Children violating a constraint are redrawn. Duplicates in the
population are kept, as in HAT.

Differences from HAT, all deliberate:
- One `random.Random(seed)` drives every draw, so a search is reproducible and resumable.
- HAT also breeds offspring in the last iteration but never scores them; here they are not
  bred at all. The result is the same: the best of the last *scored* population under the last
  iteration's predictor (so with an HS-NAS schedule ending on the supernet, the supernet picks).
- The best of an iteration is the true top candidate (llmas reports the 25th-best in predictor
  iterations, a quirk).
- Rejection sampling is bounded (HAT retries forever; see `EvolutionSettings.max_resample_tries`).
- Optionally (`protocol="cached"` or `"fast"`), scores are cached for the run (below).

Scoring protocol (`protocol`, config key `search.protocol`): how an iteration's scores are looked
up; the evolution itself is the same under all three.
- `reference` (the default, HAT's): every population member is sent to the iteration's predictor
  every iteration, elites and duplicates included, so a search of `iterations` iterations asks
  its predictors `population x iterations` times and its search hours compare with the paper's.
- `cached`: scores are cached per (predictor, arch id) for the run, so an architecture is never
  sent twice to the same predictor (surviving elites and duplicates are not re-scored). A real
  speed-up, but its search hours are not HAT's.
- `fast`: `cached`, and the supernet scores a validation subset chosen before the search by a
  rank-fidelity check (`nasflow.search.subset`; settings `search.valid_subset`), whose seconds
  count in the search's. The fastest supported protocol; its winner can differ from the
  reference protocol's (the bench compares them against the supernet's own noise).
Each iteration sends what it scores in one `predict` batch. With a deterministic predictor the two
protocols find the same architectures; only the predictor calls and the hours differ.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nasflow.config.sections import EvolutionSettings
from nasflow.core.errors import ConfigError, NasflowError
from nasflow.core.io import atomic_path, write_json_atomic
from nasflow.core.state import StateFolder, rng_from_json, rng_to_json
from nasflow.predictors.base import Predictor, check_scores
from nasflow.search.constraints import Constraint
from nasflow.search.schedule import PredictorSchedule
from nasflow.search.subset import SubsetCheck, SubsetScorer, SubsetSettings, check_subsets
from nasflow.space.hat import SPACES, Arch, Genome, SearchSpace, stream_seed
from nasflow.space.registry import register_space

HISTORY_COLUMNS = (
    "iteration",
    "predictor",
    "best_score",
    "mean_score",
    "best_arch_id",
    "best_arch",
    "seconds",
    "scored",
    "protocol",
)
SCORED_COLUMNS = ("iteration", "predictor", "arch_id", "score", "arch")
"""`scored.csv`: every distinct architecture of each iteration's population with its score (the
report's score-vs-latency scatter); `nasflow search run` adds `predicted_latency_ms`."""
PROTOCOLS = ("reference", "cached", "fast")
"""Scoring protocols: `reference` = HAT's (every population member scored every iteration),
`cached` = a per-run score cache (elites and duplicates never re-scored), `fast` = `cached` on a
validation subset chosen by a rank-fidelity check."""
DEFAULT_PROTOCOL = "reference"

Progress = Callable[[dict[str, Any]], None]


class SearchError(NasflowError):
    """The search cannot go on (e.g. the constraints look infeasible)."""


@dataclass(frozen=True)
class ScoredArch:
    """An architecture, the genome that expressed it and its score."""

    arch: Arch
    score: float
    genome: Genome

    def to_dict(self) -> dict[str, Any]:
        return {
            "arch_id": self.arch.id,
            "score": self.score,
            "arch": self.arch.to_dict(),
            "genome": list(self.genome),
        }


@dataclass
class SearchResult:
    """The outcome of `run_search`.

    Attributes:
        best: the top candidate of the last scored population.
        predictor: the predictor name that scored the final selection (last iteration's).
        parents: the final `parents` elites, best first.
        population: the last scored population's genomes (in population order).
        history: one row per iteration (`HISTORY_COLUMNS`; `scored` = architectures sent to the
            predictor that iteration).
        timing: `search_seconds` (initial sampling plus every iteration, up to the last
            selection; no model loading, state writes or callbacks), `initial_seconds`,
            `predictor_seconds` {name: s inside `predict`}, `constraint_seconds` (inside
            constraint evaluation), `scored` {name: architectures sent to `predict`}, and
            under `fast` `subset_seconds` (the rank-fidelity check, inside `search_seconds`).
            After a resume these sum the completed iterations of every session (work lost to a
            kill is not counted).
        protocol: the scoring protocol (`PROTOCOLS`).
        resumed_from: iterations already done in a saved state when this call began.
        valid_subset: under `fast`, each checked predictor's `SubsetCheck.to_dict()` (without
            the sentence indices); else None.
        scored: one row per distinct architecture of each iteration's population
            (`SCORED_COLUMNS`), in iteration and population order.
    """

    best: ScoredArch
    predictor: str
    parents: list[ScoredArch]
    population: list[Genome]
    history: list[dict[str, Any]]
    timing: dict[str, Any]
    protocol: str = DEFAULT_PROTOCOL
    resumed_from: int = 0
    valid_subset: dict[str, Any] | None = None
    scored: list[dict[str, Any]] = field(default_factory=list)

    @property
    def best_arch(self) -> Arch:
        return self.best.arch

    @property
    def best_score(self) -> float:
        return self.best.score


class Evolution(ABC):
    """The evolutionary loop shared by HAT's search (`run_search`) and LTS's Pareto search.

    One `random.Random(settings.seed)` drives every draw. `run` samples the initial population
    (or restores a saved state), then per iteration `evaluate`s the population (its history
    row), and unless it is the last, `select`s parents and breeds `mutations` mutants (a parent
    drawn uniformly, each gene redrawn with `mutation_prob`) and `crossovers` children (two
    distinct parents). `fill` draws candidates in batches and redraws those `screen` rejects,
    at most `max_resample_tries` in a row. The state is saved (JSON) after the initial sampling
    and after every iteration.

    Subclasses give the selection strategy and the rest: `sample`, `evaluate`, `select`,
    `screen`, `rejections`, `exhausted`, `inputs`, `state`, `restore` and `result`; optionally
    `prepare` (work before the initial population that the clock counts).
    """

    clock = "search_seconds"  # the timing key that sums the search's seconds

    def __init__(self, space: Any, settings: Any, fingerprint_extra: Mapping[str, Any] | None):
        self.space = space
        self.settings = settings
        self.fingerprint_extra = dict(fingerprint_extra or {})
        self.rng = random.Random(settings.seed)
        self.population: list[Any] = []
        self.done = 0
        self.history: list[dict[str, Any]] = []
        self.timing: dict[str, Any] = {}

    def run(self, state_dir: Path | None, progress: Progress | None, fresh: bool) -> Any:
        folder = StateFolder(state_dir, self.inputs(), "json") if state_dir is not None else None
        if folder is not None and fresh:
            folder.clear()
        state = folder.load() if folder is not None else None
        resumed_from = 0
        if folder is not None and state is not None:
            with folder.restoring():
                self.restore(state)
            resumed_from = self.done
        else:
            prepared = self.prepare()
            start = time.perf_counter()
            self.population = self.fill(self.settings.population, self.sample, "initial population")
            self.timing["initial_seconds"] = time.perf_counter() - start
            self.timing[self.clock] = prepared + self.timing["initial_seconds"]
            self.save(folder)
        while self.done < self.settings.iterations:
            row = self.iterate(self.done + 1)
            self.done += 1
            self.save(folder)
            if progress is not None:
                progress(dict(row))
        return self.result(resumed_from)

    def iterate(self, iteration: int) -> dict[str, Any]:
        """Evaluate, and (unless last) select and breed; returns the history row."""
        start = time.perf_counter()
        row = self.evaluate(iteration)
        if iteration < self.settings.iterations:
            parents = self.select()
            s = self.settings
            mutants = self.fill(
                s.mutations,
                lambda: self.space.mutate(self.rng.choice(parents), s.mutation_prob, self.rng),
                f"iteration {iteration} mutation",
            )
            children = self.fill(
                s.crossovers,
                lambda: self.space.crossover(*self.rng.sample(parents, 2), self.rng),
                f"iteration {iteration} crossover",
            )
            self.population = parents + mutants + children
        seconds = time.perf_counter() - start
        self.timing[self.clock] += seconds
        row["seconds"] = seconds
        self.history.append(row)
        return row

    def fill(self, count: int, draw: Callable[[], Any], phase: str) -> list[Any]:
        """`count` candidates from `draw` that `screen` accepts (bounded redraws)."""
        accepted: list[Any] = []
        rejections = self.rejections()
        while len(accepted) < count:
            batch = [draw() for _ in range(count - len(accepted))]
            for candidate, reason in zip(batch, self.screen(batch), strict=True):
                if reason is None:
                    accepted.append(candidate)
                    rejections.reset()
                    continue
                rejections.add(reason)
                if rejections.run >= self.settings.max_resample_tries:
                    raise self.exhausted(rejections, phase)
        return accepted

    def save(self, folder: StateFolder | None) -> None:
        if folder is not None:
            folder.save(self.state())

    # ---- the strategy ---------------------------------------------------------------------------
    def prepare(self) -> float:
        """Work before the initial population of a fresh run; its seconds (counted by the
        clock). None by default."""
        return 0.0

    @abstractmethod
    def sample(self) -> Any:
        """A random candidate of the initial population."""

    @abstractmethod
    def evaluate(self, iteration: int) -> dict[str, Any]:
        """Score the population; the iteration's history row (its `seconds` is filled in)."""

    @abstractmethod
    def select(self) -> list[Any]:
        """The parents of the next population (after `evaluate`)."""

    @abstractmethod
    def screen(self, batch: list[Any]) -> Iterator[Any]:
        """Per candidate, lazily: None to accept it, else the reason passed to `rejections`."""

    @abstractmethod
    def rejections(self) -> Any:
        """A tracker of consecutive rejections: `run`, `reset()`, `add(reason)`."""

    @abstractmethod
    def exhausted(self, rejections: Any, phase: str) -> Exception:
        """The error when `max_resample_tries` candidates in a row were rejected."""

    @abstractmethod
    def inputs(self) -> dict[str, Any]:
        """What a saved state must match."""

    @abstractmethod
    def state(self) -> dict[str, Any]:
        """The state to save (JSON-able)."""

    @abstractmethod
    def restore(self, state: dict[str, Any]) -> None:
        """Take up a saved state (after `inputs` matched)."""

    @abstractmethod
    def result(self, resumed_from: int) -> Any:
        """The search's result (`resumed_from`: the iteration a resumed run started at)."""


def run_search(
    space: SearchSpace,
    predictors: Mapping[str, Predictor],
    schedule: PredictorSchedule,
    constraints: Sequence[Constraint],
    settings: EvolutionSettings,
    state_dir: Path | None = None,
    progress: Progress | None = None,
    *,
    fresh: bool = False,
    fingerprint_extra: Mapping[str, Any] | None = None,
    protocol: str = DEFAULT_PROTOCOL,
    valid_subset: SubsetSettings | None = None,
) -> SearchResult:
    """Run (or resume) the evolutionary search.

    Args:
        space: the search space whose genomes are evolved.
        predictors: predictors by the names the schedule uses (extra entries are ignored).
        schedule: the predictor of each iteration; its iterations must equal the settings'.
        constraints: every population member satisfies all of them.
        settings: hyperparameters and seed.
        state_dir: when given, the state is saved there after the initial sampling and after
            every iteration, and a saved state of the same inputs is resumed; a resumed search
            ends exactly as an uninterrupted one (timings aside). A state of other inputs is an
            error.
        progress: called with each iteration's history row after its state is saved.
        fresh: discard a saved state instead of resuming it.
        fingerprint_extra: JSON-able values the state must also match (e.g. checkpoint paths),
            for what predictor names alone cannot tell apart.
        protocol: `reference` (HAT: every population member scored every iteration),
            `cached` (per-run score cache) or `fast` (cached, on a validation subset chosen by
            a rank-fidelity check); see the module docstring. A saved state of another
            protocol is refused.
        valid_subset: the check's settings under `fast` (default `SubsetSettings()`).

    A space whose name is not registered yet is registered (`register_space`), so that the
    efficiency counts of its architectures find it by name.
    """
    if space.name not in SPACES:
        register_space(space.name, space)
    return _Search(
        space,
        predictors,
        schedule,
        constraints,
        settings,
        fingerprint_extra,
        protocol,
        valid_subset,
    ).run(state_dir, progress, fresh)


class _Search(Evolution):
    """HAT's selection: the top `parents` by the iteration's predictor score."""

    def __init__(
        self,
        space: SearchSpace,
        predictors: Mapping[str, Predictor],
        schedule: PredictorSchedule,
        constraints: Sequence[Constraint],
        settings: EvolutionSettings,
        fingerprint_extra: Mapping[str, Any] | None,
        protocol: str = DEFAULT_PROTOCOL,
        valid_subset: SubsetSettings | None = None,
    ) -> None:
        if protocol not in PROTOCOLS:
            raise ConfigError(
                f"search.protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}"
            )
        if schedule.iterations != settings.iterations:
            raise ConfigError(
                f"the predictor schedule has {schedule.iterations} iterations but "
                f"search.iterations is {settings.iterations}"
            )
        missing = [name for name in schedule.names() if name not in predictors]
        if missing:
            raise ConfigError(
                f"the schedule uses predictor(s) {', '.join(map(repr, missing))} that were not "
                f"given; given: {', '.join(map(repr, predictors)) or 'none'}"
            )
        super().__init__(space, settings, fingerprint_extra)
        self.predictors = {name: predictors[name] for name in schedule.names()}
        self.schedule = schedule
        self.constraints = list(constraints)
        self.protocol = protocol
        self.subset_settings = (valid_subset or SubsetSettings()) if protocol == "fast" else None
        self.checks: dict[str, SubsetCheck] = {}  # by predictor name, under `fast`
        self.scores: list[float] = []  # of the last scored population
        self.order: list[int] = []  # its indices, best first
        self.scored: list[dict[str, Any]] = []  # `SCORED_COLUMNS` rows of every iteration
        # Scores by predictor and arch id; filled under the cached protocol only.
        self.cache: dict[str, dict[str, float]] = {name: {} for name in self.predictors}
        self.timing = {
            "search_seconds": 0.0,
            "initial_seconds": 0.0,
            "predictor_seconds": {name: 0.0 for name in self.predictors},
            "constraint_seconds": 0.0,
            "scored": {name: 0 for name in self.predictors},
        }

    # ---- the validation subset (`fast`) ---------------------------------------------------------
    def prepare(self) -> float:
        """Under `fast`: the rank-fidelity check of each supernet-like predictor (one check per
        predictor object), which then scores its chosen subset; the check's seconds."""
        if self.subset_settings is None:
            return 0.0
        start = time.perf_counter()
        checked: dict[int, SubsetCheck] = {}
        for name, predictor in self.predictors.items():
            if not isinstance(predictor, SubsetScorer):
                continue
            if id(predictor) not in checked:
                began = time.perf_counter()
                archs = self.check_sample(self.subset_settings)
                check = check_subsets(predictor, name, archs, self.subset_settings)
                check.seconds = time.perf_counter() - began
                predictor.restrict(check.subset)
                checked[id(predictor)] = check
            self.checks[name] = checked[id(predictor)]
        seconds = time.perf_counter() - start
        self.timing["subset_seconds"] = seconds
        return seconds

    def check_sample(self, subset: SubsetSettings) -> list[Arch]:
        """`subset.sample` distinct architectures satisfying the constraints, from their own
        seeded stream (the search's random draws are untouched)."""
        rng = random.Random(stream_seed(self.settings.seed, f"valid-subset/{subset.seed}"))
        found: dict[str, Arch] = {}
        for _ in range(100 * subset.sample):
            genome = self.fill(1, lambda: self.space.sample_genome(rng), "valid-subset check")[0]
            arch = self.space.decode(genome)
            found.setdefault(arch.id, arch)
            if len(found) == subset.sample:
                return list(found.values())
        raise SearchError(
            f"search.valid_subset.sample: found only {len(found)} distinct architectures "
            f"satisfying the constraints in {100 * subset.sample} draws; lower the sample"
        )

    # ---- selection ------------------------------------------------------------------------------
    def sample(self) -> Genome:
        return self.space.sample_genome(self.rng)

    def evaluate(self, iteration: int) -> dict[str, Any]:
        """Score the population with the iteration's predictor."""
        name = self.schedule.predictor_for(iteration)
        archs = [self.space.decode(genome) for genome in self.population]
        scores, scored = self.score(name, archs)
        self.scores = scores.tolist()
        self.order = _top(scores, self.settings.parents)
        best = archs[self.order[0]]
        distinct = {
            arch.id: (arch, float(value)) for arch, value in zip(archs, scores, strict=True)
        }
        self.scored.extend(
            {
                "iteration": iteration,
                "predictor": name,
                "arch_id": key,
                "score": value,
                "arch": arch.to_json(),
            }
            for key, (arch, value) in distinct.items()
        )
        return {
            "iteration": iteration,
            "predictor": name,
            "best_score": float(scores[self.order[0]]),
            "mean_score": float(np.mean(scores)),
            "best_arch_id": best.id,
            "best_arch": best.to_json(),
            "seconds": 0.0,
            "scored": scored,
            "protocol": self.protocol,
        }

    def select(self) -> list[Genome]:
        return [self.population[k] for k in self.order]

    # ---- scoring --------------------------------------------------------------------------------
    def score(self, name: str, archs: Sequence[Arch]) -> tuple[np.ndarray, int]:
        """Scores of `archs` by predictor `name` and how many were sent to `predict`.

        `reference`: all of them, in population order (elites and duplicates included).
        `cached`: only those the predictor has not scored in this run, each once.
        """
        if self.protocol == "reference":
            return self.predict(name, list(archs)), len(archs)
        cache = self.cache[name]
        new: dict[str, Arch] = {}
        for arch in archs:
            if arch.id not in cache:
                new.setdefault(arch.id, arch)
        if new:
            values = self.predict(name, list(new.values()))
            cache.update(zip(new, values.tolist(), strict=True))
        return np.array([cache[arch.id] for arch in archs], dtype=float), len(new)

    def predict(self, name: str, batch: list[Arch]) -> np.ndarray:
        """One `predict` batch of predictor `name`, timed and counted."""
        predictor = self.predictors[name]
        start = time.perf_counter()
        raw = predictor.predict(batch)
        self.timing["predictor_seconds"][name] += time.perf_counter() - start
        values = check_scores(predictor, batch, raw)
        self.timing["scored"][name] += len(batch)
        return values

    # ---- constrained sampling -------------------------------------------------------------------
    def screen(self, batch: list[Genome]) -> Iterator[list[float] | None]:
        """None for a genome satisfying every constraint, else its constraint values."""
        if not self.constraints:
            yield from (None for _ in batch)
            return
        values = self.constraint_values([self.space.decode(g) for g in batch])
        for j in range(len(batch)):
            column = [v[j] for v in values]
            ok = all(value <= c.limit for value, c in zip(column, self.constraints, strict=True))
            yield None if ok else column

    def rejections(self) -> _Rejections:
        return _Rejections(self.constraints)

    def exhausted(self, rejections: _Rejections, phase: str) -> SearchError:
        return SearchError(rejections.message(phase, self.space.name))

    def constraint_values(self, archs: Sequence[Arch]) -> list[np.ndarray]:
        start = time.perf_counter()
        try:
            return [np.asarray(c.values(archs), dtype=float) for c in self.constraints]
        finally:
            self.timing["constraint_seconds"] += time.perf_counter() - start

    # ---- state ----------------------------------------------------------------------------------
    def inputs(self) -> dict[str, Any]:
        """What a saved state must match (the resample bound may change between runs)."""
        settings = self.settings.to_dict()
        settings.pop("max_resample_tries")
        genes = json.dumps([list(c) for c in self.space.gene_choices()])
        return {
            "space": self.space.name,
            "protocol": self.protocol,
            "space_genes": hashlib.sha1(genes.encode()).hexdigest()[:12],
            "settings": settings,
            "schedule": self.schedule.to_dict(),
            "constraints": [
                {"name": c.name, "limit": c.limit, "unit": c.unit, "type": type(c).__name__}
                for c in self.constraints
            ],
            "predictors": {
                key: getattr(predictor, "name", type(predictor).__name__)
                for key, predictor in self.predictors.items()
            },
            "extra": self.fingerprint_extra,
        } | ({"valid_subset": self.subset_settings.to_dict()} if self.subset_settings else {})

    def state(self) -> dict[str, Any]:
        return {
            "iteration": self.done,
            "population": [list(genome) for genome in self.population],
            "rng": rng_to_json(self.rng),
            "scores": self.scores,
            "cache": self.cache,
            "history": self.history,
            "scored": self.scored,
            "timing": self.timing,
            "valid_subset": {name: check.to_dict() for name, check in self.checks.items()},
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.done = int(state["iteration"])
        self.population = [tuple(genome) for genome in state["population"]]
        self.rng = rng_from_json(state["rng"])
        self.scores = [float(value) for value in state["scores"]]
        for name, scores in state["cache"].items():
            self.cache[name] = {key: float(value) for key, value in scores.items()}
        self.history = [dict(row) for row in state["history"]]
        # A state saved before `scored` existed resumes with the later iterations' rows only.
        self.scored = [dict(row) for row in state.get("scored", [])]
        saved = state["timing"]
        self.timing.update(
            search_seconds=float(saved["search_seconds"]),
            initial_seconds=float(saved["initial_seconds"]),
            constraint_seconds=float(saved["constraint_seconds"]),
        )
        self.timing["predictor_seconds"].update(saved["predictor_seconds"])
        self.timing["scored"].update(saved["scored"])
        if "subset_seconds" in saved:
            self.timing["subset_seconds"] = float(saved["subset_seconds"])
        for name, data in (state.get("valid_subset") or {}).items():
            self.checks[name] = SubsetCheck.from_dict(data)
            predictor = self.predictors[name]
            if isinstance(predictor, SubsetScorer):
                predictor.restrict(self.checks[name].subset)

    # ---- result ---------------------------------------------------------------------------------
    def result(self, resumed_from: int) -> SearchResult:
        name = self.schedule.predictor_for(self.settings.iterations)
        archs = [self.space.decode(genome) for genome in self.population]
        # The last iteration breeds nothing: the population is the one it scored.
        scores = np.array(self.scores, dtype=float)
        parents = [
            ScoredArch(archs[k], float(scores[k]), self.population[k])
            for k in _top(scores, self.settings.parents)
        ]
        return SearchResult(
            best=parents[0],
            predictor=name,
            parents=parents,
            population=list(self.population),
            history=[dict(row) for row in self.history],
            scored=[dict(row) for row in self.scored],
            timing=json.loads(json.dumps(self.timing)),
            protocol=self.protocol,
            resumed_from=resumed_from,
            valid_subset=(
                {name: check.to_dict(with_indices=False) for name, check in self.checks.items()}
                if self.subset_settings is not None
                else None
            ),
        )


@dataclass
class _Rejections:
    """Statistics of the current run of consecutive rejected candidates."""

    constraints: list[Constraint]
    run: int = 0
    violated: list[int] = field(default_factory=list)
    smallest: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.run = 0
        self.violated = [0] * len(self.constraints)
        self.smallest = [float("inf")] * len(self.constraints)

    def add(self, values: Sequence[float]) -> None:
        self.run += 1
        for index, (value, constraint) in enumerate(zip(values, self.constraints, strict=True)):
            self.smallest[index] = min(self.smallest[index], float(value))
            if not value <= constraint.limit:
                self.violated[index] += 1

    def message(self, phase: str, space: str) -> str:
        parts = [
            f"{c.name} <= {c.limit:g} {c.unit} was violated by {count} of them (smallest value "
            f"seen: {smallest:.6g} {c.unit})"
            for c, count, smallest in zip(
                self.constraints, self.violated, self.smallest, strict=True
            )
            if count
        ]
        always = [
            c.name
            for c, count in zip(self.constraints, self.violated, strict=True)
            if count == self.run
        ]
        verdict = (
            f"constraint {', '.join(always)} looks infeasible"
            if always
            else "the constraints look jointly infeasible"
        )
        return (
            f"{phase}: {self.run} candidates in a row violated the constraints "
            f"(search.max_resample_tries = {self.run}); " + "; ".join(parts) + ". "
            f"The {verdict} in search space {space!r}: raise the limit (or max_resample_tries)."
        )


def _top(scores: np.ndarray, count: int) -> list[int]:
    """Indices of the `count` highest scores, best first; ties keep population order."""
    return [int(k) for k in np.argsort(-scores, kind="stable")[:count]]


# ---- outputs ------------------------------------------------------------------------------------


def write_outputs(
    result: SearchResult, out_dir: str | Path, extra_best: Mapping[str, Any] | None = None
) -> dict[str, Path]:
    """Write `history.csv`, `scored.csv`, `best.json`, `parents.json` and `timing.json`
    atomically.

    `best.json` holds the arch dict, id, predicted score, predictor and scoring protocol, plus
    `extra_best` (e.g. predicted latency, GFLOPs, params); an extra key may not shadow one of
    those. `timing.json` and every history row name the protocol too (the search hours depend
    on it). Under `fast`, `timing.json` holds each rank-fidelity check (`valid_subset`: sizes
    tried, taus, chosen fraction, seconds) and `best.json` the chosen fraction per predictor.
    """
    out = Path(out_dir)
    best = {
        "arch_id": result.best.arch.id,
        "arch": result.best.arch.to_dict(),
        "score": result.best.score,
        "predictor": result.predictor,
        "protocol": result.protocol,
        "genome": list(result.best.genome),
        "arch_info": result.best.arch.to_arch_info(),
    }
    if result.valid_subset is not None:
        best["valid_subset"] = {
            name: {k: check[k] for k in ("chosen_fraction", "chosen_sentences", "passed")}
            for name, check in result.valid_subset.items()
        }
    clash = sorted(set(best) & set(extra_best or {}))
    if clash:
        raise ValueError(f"extra_best may not redefine {', '.join(clash)}")
    best.update(extra_best or {})
    names = ("history.csv", "scored.csv", "best.json", "parents.json", "timing.json")
    paths = {name: out / name for name in names}
    frame = pd.DataFrame(result.history, columns=list(HISTORY_COLUMNS))
    with atomic_path(paths["history.csv"]) as tmp:
        frame.to_csv(tmp, index=False)
    extra = [
        c for c in dict.fromkeys(k for row in result.scored for k in row) if c not in SCORED_COLUMNS
    ]
    scored = pd.DataFrame(result.scored, columns=[*SCORED_COLUMNS, *extra])
    with atomic_path(paths["scored.csv"]) as tmp:
        scored.to_csv(tmp, index=False)
    write_json_atomic(paths["best.json"], best)
    write_json_atomic(
        paths["parents.json"],
        {
            "predictor": result.predictor,
            "protocol": result.protocol,
            "parents": [{"rank": r, **p.to_dict()} for r, p in enumerate(result.parents, 1)],
        },
    )
    timing = {
        "protocol": result.protocol,
        **result.timing,
        "search_hours": result.timing["search_seconds"] / 3600.0,
    }
    if result.valid_subset is not None:
        timing["valid_subset"] = result.valid_subset
    write_json_atomic(paths["timing.json"], timing)
    return paths

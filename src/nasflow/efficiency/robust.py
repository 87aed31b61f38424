"""One latency statistic for a machine that is doing something else (MT and LTS alike).

HAT's protocol (`hat`) times one long series and averages it after dropping the lowest and
highest 10% (`TRIM`). When another process shares the cores, a series picks up slow runs
(preempted, cache evicted) in proportions that vary from one architecture to the next, and the
mean follows them: the labels, and the predictor fit on them, become noisy.

The `robust` protocol estimates the same quantity, the machine's undisturbed speed:

- **interleaved rounds**: the timed runs are split into `rounds` short rounds; the caller's
  round alternates the parts it times (encoder, decoder, a reference architecture), so a slow
  spell of the machine touches a few rounds of everything instead of one whole series;
- **a low quantile** (`quantile`, default 0: the minimum; numpy's linear interpolation) of all
  timed runs instead of the trimmed mean: a disturbance only ever adds time, so under
  contention the lower tail is the undisturbed speed, and on a quiet machine, where the runs
  barely differ, it lies within their spread below HAT's trimmed mean. A run may be timed in
  components (the decoder's steps): the quantile is then taken per component and summed, so a
  sentence with one preempted step of twenty still counts with its nineteen others;
- **a stability check** (split halves): the estimate from the odd rounds and the one from the
  even rounds must agree within `tolerance` (relative); if not, `rounds` more rounds are
  measured, at most `max_retries` times (every round is kept; the number of retries, the final
  spread and verdict are recorded);
- **pinning** (`pin`, where `os.sched_setaffinity` exists): the measuring thread, and the threads
  it starts afterwards (ONNX Runtime sessions, torch's pool if not started yet), run on the last
  `threads` cores allowed to the process; the cores are recorded.

Normalisation by a reference architecture measured alongside is the latency dataset's
`drift_correction` (`nasflow.efficiency.latency_dataset.ReferenceProbe`): with `robust`, the
reference's runs are one more part of every round.

API for other measurements (pure, numpy only, no torch): `robust_estimate(rounds, quantile,
tolerance) -> Estimate(value, spread, stable, round_values)`, `measure_until_stable(take_round,
settings) -> Rounds(rounds, estimate, retries)`, `runs_per_round(runs, rounds)`, `pinned(threads,
enabled)`, and `RobustSettings` (the config's `latency.robust`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from nasflow.core.errors import ConfigError

PROTOCOLS = ("hat", "robust")
TRIM = 0.1  # HAT: the lowest and highest 10% of the runs are dropped before averaging
ROUNDS = 5
QUANTILE = 0.0
TOLERANCE = 0.03
MAX_RETRIES = 2


def check_protocol(name: str, key: str = "latency.protocol") -> str:
    """`name` if it is a known protocol, else a ConfigError naming `key` and the choices."""
    if name not in PROTOCOLS:
        raise ConfigError(f"config key {key}: unknown protocol {name!r}; choose one of {PROTOCOLS}")
    return name


@dataclass(frozen=True)
class RobustSettings:
    """The `robust` protocol's knobs (config `latency.robust`)."""

    rounds: int = ROUNDS
    quantile: float = QUANTILE
    tolerance: float = TOLERANCE
    max_retries: int = MAX_RETRIES
    pin: bool = False

    def __post_init__(self) -> None:
        problems = []
        if not isinstance(self.rounds, int) or self.rounds < 1:
            problems.append(f"rounds must be an integer >= 1, got {self.rounds!r}")
        if not isinstance(self.quantile, int | float) or not 0 <= self.quantile <= 1:
            problems.append(f"quantile must be in [0, 1], got {self.quantile!r}")
        if not isinstance(self.tolerance, int | float) or not self.tolerance >= 0:
            problems.append(f"tolerance must be >= 0, got {self.tolerance!r}")
        if not isinstance(self.max_retries, int) or self.max_retries < 0:
            problems.append(f"max_retries must be an integer >= 0, got {self.max_retries!r}")
        if not isinstance(self.pin, bool):
            problems.append(f"pin must be true or false, got {self.pin!r}")
        if problems:
            raise ConfigError("config key latency.robust: " + "; ".join(problems))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> RobustSettings:
        """Settings from a mapping (None: defaults); unknown keys are an error naming them."""
        values = dict(values or {})
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise ConfigError(f"config key latency.robust: unknown key(s) {', '.join(unknown)}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Estimate:
    """`value`: the `quantile` of all runs; `spread`: the relative difference between the
    values of the odd and the even rounds; `stable`: spread <= tolerance; `round_values`: the
    value of each round alone."""

    value: float
    spread: float
    stable: bool
    round_values: tuple[float, ...]

    @property
    def round_std(self) -> float:
        """Standard deviation of the per-round quantiles (0 for one round)."""
        return float(np.std(self.round_values))


@dataclass(frozen=True)
class Rounds:
    """Every round measured, the estimate over all of them and the re-measurements it took."""

    rounds: list[list[Run]]
    estimate: Estimate
    retries: int


def runs_per_round(runs: int, rounds: int) -> int:
    """Timed runs in each round so that the rounds hold at least `runs` in all."""
    return max(1, math.ceil(runs / rounds))


Run = float | Sequence[float]  # one timed run: its time, or the times of its components


def _runs_matrix(runs: Sequence[Run]) -> np.ndarray:
    return np.asarray([[r] if isinstance(r, int | float) else list(r) for r in runs], dtype=float)


def _value(matrix: np.ndarray, quantile: float) -> float:
    return float(np.quantile(matrix, quantile, axis=0).sum())


def robust_estimate(
    samples_per_round: Sequence[Sequence[Run]],
    quantile: float = QUANTILE,
    tolerance: float = TOLERANCE,
) -> Estimate:
    """The robust statistic of timed runs grouped by round (see the module docstring).

    A run is a time, or the times of its consecutive components (the steps of a decoded
    sentence, each run with the same number): the value is then the sum over components of
    their `quantile` across runs, the undisturbed time of a run even when most runs had one
    step preempted."""
    rounds = [_runs_matrix(r) for r in samples_per_round if len(r)]
    if not rounds:
        raise ValueError("no latency samples")
    widths = {r.shape[1] for r in rounds}
    if len(widths) != 1:
        raise ValueError(f"runs with different numbers of components: {sorted(widths)}")
    value = _value(np.concatenate(rounds), quantile)
    per_round = tuple(_value(r, quantile) for r in rounds)
    spread = 0.0
    if len(rounds) > 1:
        halves = [_value(np.concatenate(rounds[start::2]), quantile) for start in (0, 1)]
        spread = abs(halves[0] - halves[1]) / min(halves) if min(halves) > 0 else 0.0
    return Estimate(value, float(spread), spread <= tolerance, per_round)


def measure_until_stable(
    take_round: Callable[[], Sequence[Run]], settings: RobustSettings
) -> Rounds:
    """Call `take_round` (one round's timed runs, the quantity the check judges) `rounds` times,
    and `rounds` times more while the estimate is unstable, at most `max_retries` times."""
    rounds = [list(take_round()) for _ in range(settings.rounds)]
    estimate = robust_estimate(rounds, settings.quantile, settings.tolerance)
    retries = 0
    while not estimate.stable and retries < settings.max_retries:
        rounds += [list(take_round()) for _ in range(settings.rounds)]
        retries += 1
        estimate = robust_estimate(rounds, settings.quantile, settings.tolerance)
    return Rounds(rounds, estimate, retries)


@contextmanager
def pinned(threads: int, enabled: bool) -> Iterator[list[int] | None]:
    """Run the block on the last `threads` cores allowed to this thread (the cores, or None
    where pinning is off or unsupported); the previous affinity is restored afterwards."""
    if not enabled or not hasattr(os, "sched_setaffinity"):
        yield None
        return
    before = os.sched_getaffinity(0)
    cores = sorted(before)[-max(1, threads) :]
    os.sched_setaffinity(0, cores)
    try:
        yield cores
    finally:
        os.sched_setaffinity(0, before)

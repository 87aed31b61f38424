"""Which predictor scores the population in each iteration of the evolutionary search.

HAT scores every iteration with the supernet. HS-NAS (llmas `--bleu-predictor-start-idx/-end-idx`)
scores iterations `start..end` (1-based, both inclusive) with a fast predictor (LLM-Distill-PP)
and the rest with the supernet; the paper writes this `(GPT-4, HAT, 1, 15)`. Scores of different
predictors are never mixed: each iteration uses exactly one.

Config form: `{"iterations": 30, "default": "supernet",
"segments": [{"predictor": "distill", "start": 1, "end": 15}]}`.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nasflow.core.checks import is_int
from nasflow.core.errors import ConfigError

SCHEDULE_KEYS = ("iterations", "default", "segments")
SEGMENT_KEYS = ("predictor", "start", "end")


@dataclass(frozen=True)
class Segment:
    """Iterations `start..end` (1-based, inclusive) scored by `predictor`."""

    predictor: str
    start: int
    end: int

    def to_dict(self) -> dict[str, Any]:
        return {"predictor": self.predictor, "start": self.start, "end": self.end}

    def __str__(self) -> str:
        return f"{self.predictor} {self.start}..{self.end}"


@dataclass(frozen=True)
class PredictorSchedule:
    """Predictor name per 1-based iteration: `segments` where they apply, else `default`."""

    iterations: int
    default: str
    segments: tuple[Segment, ...] = ()

    def __post_init__(self) -> None:
        if not is_int(self.iterations) or self.iterations < 1:
            raise ConfigError(
                f"schedule.iterations must be a positive integer, got {self.iterations!r}"
            )
        _check_name("schedule.default", self.default)
        for index, segment in enumerate(self.segments):
            where = f"schedule.segments[{index}]"
            _check_name(f"{where}.predictor", segment.predictor)
            for key in ("start", "end"):
                value = getattr(segment, key)
                if not is_int(value) or not 1 <= value <= self.iterations:
                    raise ConfigError(
                        f"{where}.{key} must be an iteration in 1..{self.iterations}, got {value!r}"
                    )
            if segment.start > segment.end:
                raise ConfigError(f"{where}: start ({segment.start}) is after end ({segment.end})")
        ordered = sorted(enumerate(self.segments), key=lambda item: (item[1].start, item[1].end))
        for (i, before), (j, after) in itertools.pairwise(ordered):
            if after.start <= before.end:
                raise ConfigError(
                    f"schedule.segments[{j}] ({after}) overlaps schedule.segments[{i}] "
                    f"({before}); each iteration must have exactly one predictor"
                )
        object.__setattr__(self, "segments", tuple(segment for _, segment in ordered))

    # ---- constructors ---------------------------------------------------------------------------
    @classmethod
    def single(cls, iterations: int, name: str = "supernet") -> PredictorSchedule:
        """One predictor for every iteration (HAT: the supernet)."""
        return cls(iterations, name)

    @classmethod
    def hsnas(
        cls,
        iterations: int,
        start: int,
        end: int,
        fast: str = "distill",
        slow: str = "supernet",
    ) -> PredictorSchedule:
        """HS-NAS `(fast, slow, start, end)`: `fast` for iterations start..end (1-based,
        inclusive), `slow` for the rest; e.g. `hsnas(30, 1, 15)` is the paper's (GPT-4, HAT, 1, 15).
        """
        return cls(iterations, slow, (Segment(fast, start, end),))

    @classmethod
    def from_llmas_flags(
        cls,
        iterations: int,
        start_idx: int,
        end_idx: int,
        fast: str = "distill",
        slow: str = "supernet",
    ) -> PredictorSchedule:
        """llmas' 0-based `--bleu-predictor-start-idx/-end-idx` (start -1 = HAT, no switch)."""
        if start_idx == -1:
            return cls.single(iterations, slow)
        return cls.hsnas(iterations, start_idx + 1, end_idx + 1, fast, slow)

    @classmethod
    def from_mapping(
        cls,
        mapping: Mapping[str, Any],
        *,
        iterations: int | None = None,
        known: Collection[str] | None = None,
    ) -> PredictorSchedule:
        """Parse the config form; `iterations` fills (or must match) `schedule.iterations`,
        and `known`, when given, is the set of allowed predictor names."""
        if not isinstance(mapping, Mapping):
            raise ConfigError(f"schedule must be a mapping, got {type(mapping).__name__}")
        unknown = sorted(set(mapping) - set(SCHEDULE_KEYS))
        if unknown:
            raise ConfigError(
                f"unknown schedule key(s): {', '.join(map(str, unknown))}; "
                f"known: {', '.join(SCHEDULE_KEYS)}"
            )
        count = mapping.get("iterations")
        if count is None:
            count = iterations
        if count is None:
            raise ConfigError("schedule.iterations is missing")
        if iterations is not None and count != iterations:
            raise ConfigError(
                f"schedule.iterations ({count}) differs from the search iterations ({iterations})"
            )
        if "default" not in mapping:
            raise ConfigError("schedule.default is missing (the predictor of unlisted iterations)")
        raw_segments = mapping.get("segments") or []
        if not isinstance(raw_segments, list | tuple):
            raise ConfigError(
                f"schedule.segments must be a list, got {type(raw_segments).__name__}"
            )
        segments = [_parse_segment(item, index) for index, item in enumerate(raw_segments)]
        schedule = cls(count, mapping["default"], tuple(segments))
        if known is not None:
            _check_known(known, schedule.default, segments)
        return schedule

    # ---- queries --------------------------------------------------------------------------------
    def predictor_for(self, iteration: int) -> str:
        """The predictor name of 1-based `iteration`."""
        if not is_int(iteration) or not 1 <= iteration <= self.iterations:
            raise ValueError(f"iteration must be in 1..{self.iterations}, got {iteration!r}")
        for segment in self.segments:
            if segment.start <= iteration <= segment.end:
                return segment.predictor
        return self.default

    def sequence(self) -> list[str]:
        """Predictor names of iterations 1..iterations."""
        return [self.predictor_for(i) for i in range(1, self.iterations + 1)]

    def names(self) -> list[str]:
        """Distinct predictor names in order of first use."""
        return list(dict.fromkeys(self.sequence()))

    def to_dict(self) -> dict[str, Any]:
        """The config form (inverse of `from_mapping`)."""
        return {
            "iterations": self.iterations,
            "default": self.default,
            "segments": [segment.to_dict() for segment in self.segments],
        }

    def __str__(self) -> str:
        if not self.segments:
            return f"{self.default} x{self.iterations}"
        parts = ", ".join(str(segment) for segment in self.segments)
        return f"{parts}, else {self.default} ({self.iterations} iterations)"


def _parse_segment(item: Any, index: int) -> Segment:
    where = f"schedule.segments[{index}]"
    if not isinstance(item, Mapping):
        raise ConfigError(f"{where} must be a mapping, got {type(item).__name__}")
    unknown = sorted(set(item) - set(SEGMENT_KEYS))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(map(str, unknown))}; "
            f"known: {', '.join(SEGMENT_KEYS)}"
        )
    missing = [key for key in SEGMENT_KEYS if key not in item]
    if missing:
        raise ConfigError(f"{where}: missing key(s) {', '.join(missing)}")
    return Segment(item["predictor"], item["start"], item["end"])


def _check_known(known: Collection[str], default: str, segments: Sequence[Segment]) -> None:
    allowed = ", ".join(sorted(known))
    if default not in known:
        raise ConfigError(f"schedule.default: unknown predictor {default!r}; known: {allowed}")
    for index, segment in enumerate(segments):
        if segment.predictor not in known:
            raise ConfigError(
                f"schedule.segments[{index}].predictor: unknown predictor "
                f"{segment.predictor!r}; known: {allowed}"
            )


def _check_name(where: str, name: Any) -> None:
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{where} must be a non-empty predictor name, got {name!r}")

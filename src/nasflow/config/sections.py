"""Typed config sections: the settings classes built from free-form config sections, validated
here once, so that `nasflow.config.resolve` checks them before any job and every stage builds its
settings from the same class (`EvolutionSettings` for `search`, `ParetoSettings` for
`lts.search`, `MeasureSettings` for `lts.measure`, `DistillSettings` for `distill.mlp`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, Self

from nasflow.config.schema import schema_defaults
from nasflow.core.checks import is_int, is_number
from nasflow.core.errors import ConfigError

_SEARCH = schema_defaults("search")  # HAT's evolution settings, stated once in the schema


@dataclass(frozen=True)
class EvolutionSettings:
    """Evolutionary-search hyperparameters (defaults: HAT's `evo_search/*.yml`).

    `max_resample_tries` bounds rejection sampling: a phase (the initial population, or one
    iteration's mutants or crossovers) fails with `SearchError` after this many *consecutive*
    candidates violated the constraints. With an acceptance rate `p` a feasible search trips the
    default 10 000 with probability about `(1 - p) ** 10000` per accepted child (< 5e-5 for
    p = 0.1 %), while an infeasible constraint is reported after 10 000 cheap draws.
    """

    population: int = _SEARCH["population"]
    parents: int = _SEARCH["parents"]
    mutations: int = _SEARCH["mutations"]
    crossovers: int = _SEARCH["crossovers"]
    mutation_prob: float = _SEARCH["mutation_prob"]
    iterations: int = 30
    seed: int = 1
    max_resample_tries: int = _SEARCH["max_resample_tries"]

    def __post_init__(self) -> None:
        for name, low in (
            ("population", 1),
            ("parents", 1),
            ("mutations", 0),
            ("crossovers", 0),
            ("iterations", 1),
            ("max_resample_tries", 1),
        ):
            value = getattr(self, name)
            if not is_int(value) or value < low:
                raise ConfigError(f"search.{name} must be an integer >= {low}, got {value!r}")
        if not is_int(self.seed):
            raise ConfigError(f"search.seed must be an integer, got {self.seed!r}")
        prob = self.mutation_prob
        if isinstance(prob, bool) or not isinstance(prob, int | float) or not 0 <= prob <= 1:
            raise ConfigError(f"search.mutation_prob must be a number in [0, 1], got {prob!r}")
        object.__setattr__(self, "mutation_prob", float(prob))
        total = self.parents + self.mutations + self.crossovers
        if self.population != total:
            raise ConfigError(
                f"search.population ({self.population}) must equal parents + mutations + "
                f"crossovers ({self.parents} + {self.mutations} + {self.crossovers} = {total})"
            )
        if self.crossovers and self.parents < 2:
            raise ConfigError(
                f"search.parents must be >= 2 for crossover (two distinct parents), "
                f"got {self.parents}"
            )

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Self:
        """Settings from a flat mapping; unknown keys are an error naming them."""
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise ConfigError(
                f"unknown search setting(s): {', '.join(map(str, unknown))}; "
                f"known: {', '.join(names)}"
            )
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ParetoSettings(EvolutionSettings):
    """Pareto-search hyperparameters (defaults: the LTS paper, 100 = 20 + 40 + 40, p = 0.3, 30).

    `max_resample_tries` bounds rejection sampling: a phase (the initial population, or one
    iteration's mutants or crossovers) fails after this many *consecutive* rejected candidates
    (invalid or already seen). `eval_batch` is the most architectures handed to one
    `Evaluator.evaluate` call; results are written to the cache after each call, so a kill loses
    at most one batch of measurements. Neither enters the resume fingerprint.
    """

    population: int = 100
    parents: int = 20
    mutations: int = 40
    crossovers: int = 40
    eval_batch: int = 10

    def __post_init__(self) -> None:
        super().__post_init__()
        if not is_int(self.eval_batch) or self.eval_batch < 1:
            raise ConfigError(f"search.eval_batch must be an integer >= 1, got {self.eval_batch!r}")


BACKENDS = ("onnxruntime", "torch")


DEVICES = ("cpu", "cuda")

#: How the measured ONNX graphs are made: `export` = `torch.onnx.export` of the weighted model,
#: `template` = the same graphs from a weightless export (`nasflow.lts.graph_template`).
GRAPHS = ("export", "template")

#: `fresh` = one worker process per measurement; `persistent` = one long-lived worker per
#: evaluator (peak memory still reset and read per measurement).
WORKERS = ("fresh", "persistent")

#: `median` = one pass over the `runs` prompts (the statistics are medians over them);
#: `robust` = `rounds` interleaved passes, each prompt's time the minimum over the passes, more
#: passes while the odd and even ones disagree (`nasflow.efficiency.robust`, as the MT latency
#: dataset's `robust` protocol).
LTS_PROTOCOLS = ("median", "robust")


@dataclass(frozen=True)
class MeasureSettings:
    """How latency and memory are measured (see the module docstring for the definitions).

    Defaults: ONNX Runtime on the CPU with one intra-op thread (the reference's protocol);
    prompts of `min_prompt_tokens` to `prompt_tokens` tokens (`None` = a quarter of
    `prompt_tokens`, at least 1: 16-64 tokens, the short contexts of text prediction) and 8 new
    tokens; 3 warm-up and 20 timed inferences (20 prompts); GPT-2's vocabulary (50257, the head
    is a large part of a step's cost) and 1024 positions; weights and prompt draw from `seed`.
    `timeout_s` bounds one worker process and is not part of the protocol fingerprint.
    `graphs` and `worker` choose the fast paths (`GRAPHS`, `WORKERS`; defaults: an export and a
    fresh process per measurement, as before they existed). `timing` (`LTS_PROTOCOLS`;
    default `median`, one pass) and `rounds` (passes under `robust`, at least 2).
    """

    backend: str = "onnxruntime"
    device: str = "cpu"
    threads: int = 1
    prompt_tokens: int = 64
    new_tokens: int = 8
    min_prompt_tokens: int | None = None
    warmup: int = 3
    runs: int = 20
    vocab_size: int = 50257
    n_positions: int = 1024
    seed: int = 0
    timeout_s: float = 3600.0
    graphs: str = "export"
    worker: str = "fresh"
    timing: str = "median"
    rounds: int = 3

    def __post_init__(self) -> None:
        if self.timing not in LTS_PROTOCOLS:
            raise ConfigError(
                f"measure.timing must be one of {', '.join(LTS_PROTOCOLS)}, got {self.timing!r}"
            )
        if self.graphs not in GRAPHS:
            raise ConfigError(
                f"measure.graphs must be one of {', '.join(GRAPHS)}, got {self.graphs!r}"
            )
        if self.worker not in WORKERS:
            raise ConfigError(
                f"measure.worker must be one of {', '.join(WORKERS)}, got {self.worker!r}"
            )
        if self.graphs == "template" and self.backend != "onnxruntime":
            raise ConfigError(
                "measure.graphs: template builds ONNX graphs; it needs backend onnxruntime"
            )
        if self.backend not in BACKENDS:
            raise ConfigError(
                f"measure.backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}"
            )
        if self.device not in DEVICES:
            raise ConfigError(
                f"measure.device must be one of {', '.join(DEVICES)}, got {self.device!r}"
            )
        if self.backend == "onnxruntime" and self.device != "cpu":
            raise ConfigError(
                "measure.device: backend onnxruntime measures on the cpu only (its GPU memory has "
                "no host high-water mark); use backend torch for cuda"
            )
        for name, low in (
            ("threads", 1),
            ("prompt_tokens", 1),
            ("new_tokens", 2),
            ("warmup", 0),
            ("runs", 1),
            ("rounds", 2),
            ("vocab_size", 1),
            ("n_positions", 1),
        ):
            value = getattr(self, name)
            if not is_int(value) or value < low:
                raise ConfigError(f"measure.{name} must be an integer >= {low}, got {value!r}")
        if not is_int(self.seed):
            raise ConfigError(f"measure.seed must be an integer, got {self.seed!r}")
        if not is_number(self.timeout_s) or self.timeout_s <= 0:
            raise ConfigError(f"measure.timeout_s must be a number > 0, got {self.timeout_s!r}")
        object.__setattr__(self, "timeout_s", float(self.timeout_s))
        low = self.min_prompt_tokens
        if low is None:
            object.__setattr__(self, "min_prompt_tokens", max(1, self.prompt_tokens // 4))
        elif not is_int(low) or not 1 <= low <= self.prompt_tokens:
            raise ConfigError(
                f"measure.min_prompt_tokens must be an integer in [1, measure.prompt_tokens = "
                f"{self.prompt_tokens}], got {low!r}"
            )
        fed = self.prompt_tokens + self.new_tokens - 1  # the last new token is never fed back
        if fed > self.n_positions:
            raise ConfigError(
                f"measure.prompt_tokens + measure.new_tokens - 1 ({fed}) exceeds "
                f"measure.n_positions ({self.n_positions})"
            )

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Self:
        """Settings from a flat mapping; unknown keys are an error naming them."""
        if not isinstance(values, Mapping):
            raise ConfigError(f"measure settings must be a mapping, got {type(values).__name__}")
        names = [f.name for f in fields(cls)]
        if "chars_per_token" in values:
            raise ConfigError(
                "measure.chars_per_token is no longer a setting: characters per token come from "
                "the tokenizer trained on the text corpus (config key lts.text)"
            )
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise ConfigError(
                f"unknown measure setting(s): {', '.join(map(str, unknown))}; "
                f"known: {', '.join(names)}"
            )
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DistillSettings:
    """LLM-Distill-PP MLP hyperparameters; the defaults are llmas's (`bleu_predictor.py`).

    `valid_fraction` > 0 holds out that share of the labels (at least one) for early stopping:
    the held-out MSE is computed every `eval_interval` steps, training stops after `patience`
    evaluations without improvement (0: never stops early) and the best state is kept.
    `standardize` standardises features with the training mean/std (llmas: off).
    """

    hidden_dim: int = 400
    hidden_layers: int = 3
    lr: float = 1e-5
    steps: int = 5000
    batch_size: int = 128
    seed: int = 123
    valid_fraction: float = 0.0
    eval_interval: int = 100
    patience: int = 10
    standardize: bool = False
    device: str = "cpu"

    def __post_init__(self) -> None:
        for name in ("hidden_dim", "steps", "batch_size", "eval_interval"):
            _require(
                is_int(getattr(self, name)) and getattr(self, name) >= 1, name, "an integer >= 1"
            )
        _require(
            is_int(self.hidden_layers) and self.hidden_layers >= 0,
            "hidden_layers",
            "an integer >= 0",
        )
        _require(is_int(self.patience) and self.patience >= 0, "patience", "an integer >= 0")
        _require(is_int(self.seed), "seed", "an integer")
        _require(is_number(self.lr) and self.lr > 0, "lr", "a finite number > 0")
        _require(
            is_number(self.valid_fraction) and 0 <= self.valid_fraction < 1,
            "valid_fraction",
            "a number in [0, 1)",
        )
        _require(isinstance(self.standardize, bool), "standardize", "true or false")
        import torch

        try:
            torch.device(self.device)
        except (RuntimeError, TypeError):
            _require(False, "device", "a torch device such as 'cpu' or 'cuda'")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> DistillSettings:
        """Settings from a flat mapping (None: defaults); unknown keys are an error naming them."""
        values = dict(values or {})
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise ConfigError(f"unknown distill MLP setting(s): {', '.join(unknown)}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _require(ok: bool, name: str, expected: str) -> None:
    if not ok:
        raise ConfigError(f"distill MLP setting {name}: must be {expected}")

"""One configured search (`nasflow search run`): the `search` config section checked up front,
only the predictors the method's schedule uses loaded, and the best architecture described.

Config section (`search`): evolution settings (`population`, `parents`, `mutations`,
`crossovers`, `mutation_prob`, `max_resample_tries`), the scoring `protocol` (`reference` or
`cached`, see `nasflow.search.evolution`), `constraints` {name: limits mapping}, `methods` {name:
predictor schedule mapping} and, for the workflow, `seeds`, `latency_target` and `run`. A
method's `iterations` is the search's; the seed comes from the command line.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nasflow.config.resolve import Config
from nasflow.core.errors import ConfigError, DataError
from nasflow.efficiency.counts import count_embedding_params, count_flops, count_params
from nasflow.search.constraints import CONSTRAINT_KEYS, Constraint, constraints_from_mapping
from nasflow.search.evolution import DEFAULT_PROTOCOL, PROTOCOLS, EvolutionSettings
from nasflow.search.schedule import PredictorSchedule
from nasflow.space.hat import Arch

if TYPE_CHECKING:
    from nasflow.predictors.base import Predictor
    from nasflow.predictors.latency import LatencyPredictor
    from nasflow.predictors.supernet import SupernetPredictor

PREDICTORS = ("supernet", "distill", "supernet-mlp")
"""Schedule predictor names: the supernet, LLM-Distill-PP, and an MLP distilled from supernet
scores (the paper's Distilled HAT, method `distilled-hat` of Table 16: the MLP for iterations
1-15, then the supernet)."""
# Keys of the `search` section that are not `EvolutionSettings` fields.
SECTION_KEYS = (
    "seeds",
    "method_seeds",
    "latency_target",
    "constraints",
    "methods",
    "run",
    "final_train",
    "protocol",
)


# ---- config -------------------------------------------------------------------------------------


def search_section(config: Config) -> dict[str, Any]:
    """The config's `search` mapping (empty when absent)."""
    section = config.get("search") or {}
    if not isinstance(section, Mapping):
        raise ConfigError(f"config key search must be a mapping, got {type(section).__name__}")
    return dict(section)


def _entry(section: Mapping[str, Any], group: str, name: str) -> Any:
    entries = section.get(group) or {}
    if not isinstance(entries, Mapping):
        raise ConfigError(f"config key search.{group} must be a mapping of names")
    if name not in entries:
        known = ", ".join(map(str, entries)) or "none"
        raise ConfigError(f"config key search.{group}.{name} does not exist (known: {known})")
    return entries[name]


@dataclass(frozen=True)
class SearchPlan:
    """A checked search: which method, constraint, schedule and settings."""

    method: str
    constraint: str
    limits: dict[str, Any]
    schedule: PredictorSchedule
    settings: EvolutionSettings
    space: str
    latency_target: str
    protocol: str = DEFAULT_PROTOCOL

    @property
    def needs_latency(self) -> bool:
        return self.limits.get("latency_ms") is not None


class _UnloadedLatency:
    """Stands in for the latency predictor while limits are checked (never asked to predict)."""

    def predict_ms(self, archs: Any) -> Any:  # pragma: no cover - never called
        raise RuntimeError("latency predictor not loaded")


def plan_search(
    config: Config,
    method: str,
    constraint: str,
    seed: int,
    *,
    have: Mapping[str, bool],
) -> SearchPlan:
    """Check the method, constraint and settings before any model is loaded.

    `have` says which inputs were given: `supernet`, `distill`, `latency` (a latency predictor).
    """
    section = search_section(config)
    raw_schedule = _entry(section, "methods", method)
    limits = _entry(section, "constraints", constraint)
    where = f"search.methods.{method}"
    try:
        schedule = PredictorSchedule.from_mapping(raw_schedule, known=PREDICTORS)
    except ConfigError as error:
        raise ConfigError(f"config key {where}: {error}") from None
    options = {
        "supernet": "--supernet MODEL.pt",
        "distill": "--distill MLP.pt",
        "supernet-mlp": "--supernet-mlp MLP.pt",
    }
    for name in schedule.names():
        if not have.get(name):
            iterations = [i for i, p in enumerate(schedule.sequence(), 1) if p == name]
            raise ConfigError(
                f"config key {where} scores iteration(s) {_spans(iterations)} with the {name} "
                f"predictor: pass {options[name]}"
            )
    if not isinstance(limits, Mapping):
        raise ConfigError(f"config key search.constraints.{constraint} must be a mapping")
    limits = dict(limits)
    latency_target = str(section.get("latency_target", "cpu"))
    if limits.get("latency_ms") is not None and not have.get("latency"):
        raise ConfigError(
            f"config key search.constraints.{constraint} limits latency_ms: pass "
            f"--latency-predictor (model.pt of latency target {latency_target!r})"
        )
    try:
        constraints_from_mapping(limits, vocab_size=1, latency_predictor=_UnloadedLatency())  # type: ignore[arg-type]
    except ConfigError as error:
        raise ConfigError(
            f"config key search.constraints.{constraint}: {error} (keys: "
            f"{', '.join(CONSTRAINT_KEYS)})"
        ) from None
    protocol = section.get("protocol", DEFAULT_PROTOCOL)
    if protocol not in PROTOCOLS:
        raise ConfigError(
            f"config key search.protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}"
        )
    values = {k: v for k, v in section.items() if k not in SECTION_KEYS}
    settings = EvolutionSettings.from_mapping(
        {**values, "iterations": schedule.iterations, "seed": seed}
    )
    return SearchPlan(
        method,
        constraint,
        limits,
        schedule,
        settings,
        str(config["space"]),
        latency_target,
        protocol,
    )


def _spans(iterations: list[int]) -> str:
    """`[1, 2, 3, 7]` -> `1..3, 7`."""
    spans: list[list[int]] = []
    for i in iterations:
        if spans and spans[-1][1] == i - 1:
            spans[-1][1] = i
        else:
            spans.append([i, i])
    return ", ".join(str(a) if a == b else f"{a}..{b}" for a, b in spans)


# ---- predictors ---------------------------------------------------------------------------------


def supernet_options(config: Config) -> dict[str, Any]:
    """The `SupernetPredictor` options of a config (its `evaluate` and `train` sections)."""
    evaluate, train = config["evaluate"], config["train"]
    return {
        "metric": evaluate["predictor_metric"],
        "valid_sentences": evaluate["valid_sentences"],
        "max_tokens": train["max_tokens"],
        "label_smoothing": train["label_smoothing"],
        "beam": evaluate["beam"],
        "lenpen": evaluate["lenpen"],
        "max_len_a": evaluate["max_len_a"],
        "max_len_b": evaluate["max_len_b"],
        "batch_sentences": evaluate["batch_sentences"],
    }


def supernet_predictor(
    config: Config, model: str | Path, data: str | Path, device: str | None = None
) -> SupernetPredictor:
    """The supernet predictor as the config describes it (as `nasflow supernet quality`)."""
    from nasflow.predictors.supernet import SupernetPredictor

    train = config["train"]
    return SupernetPredictor.from_file(
        model,
        data,
        device=device or train["device"],
        precision=train["precision"],
        **supernet_options(config),
    )


def load_predictors(
    plan: SearchPlan,
    config: Config,
    files: Mapping[str, Path],
    data: Path,
    device: str | None = None,
) -> dict[str, Predictor]:
    """The predictors the schedule uses, checked to belong to the config's space."""
    predictors: dict[str, Predictor] = {}
    for name in plan.schedule.names():
        if name == "supernet":
            supernet = supernet_predictor(config, files[name], data, device)
            space = supernet.model.space.name
            predictors[name] = supernet
        else:
            from nasflow.predictors.distilled import DistilledPredictor

            distilled = DistilledPredictor.load(files[name])
            space = distilled.space_name
            predictors[name] = distilled
        _check_space(f"--{name} {files[name]}", space, plan.space)
    return predictors


def load_latency(path: Path, plan: SearchPlan) -> LatencyPredictor:
    from nasflow.predictors.latency import LatencyPredictor

    predictor = LatencyPredictor.from_file(path)
    _check_space(f"--latency-predictor {path}", predictor.space_name, plan.space)
    return predictor


def _check_space(what: str, space: str, expected: str) -> None:
    if space != expected:
        raise ConfigError(f"{what} is for search space {space!r}, the config's is {expected!r}")


def build_constraints(
    plan: SearchPlan, vocab_size: int, latency: LatencyPredictor | None
) -> list[Constraint]:
    return constraints_from_mapping(plan.limits, vocab_size=vocab_size, latency_predictor=latency)


# ---- files --------------------------------------------------------------------------------------


def check_files(files: Mapping[str, Path | None]) -> dict[str, Path]:
    """The given files (None dropped), each checked to exist; DataError names the option."""
    found: dict[str, Path] = {}
    for option, path in files.items():
        if path is None:
            continue
        if not Path(path).is_file():
            raise DataError(f"--{option} {path}: file not found")
        found[option] = Path(path)
    return found


def sha256_file(path: str | Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def state_folder(root: str | Path, config: Config) -> Path:
    """The search's state folder under `root`: one per fingerprint of the config sections the
    search read, so a search with changed settings starts afresh while a killed one with the
    same settings resumes."""
    from nasflow.core.state import fingerprint

    return Path(root) / fingerprint(dict(config))


def fingerprint_extra(
    files: Mapping[str, Path], data: Path, config: Config, plan: SearchPlan
) -> dict[str, Any]:
    """What a resumed state must also match: model files (path, sha256), data, supernet options.

    `files` holds only the models the search uses (predictors, the constraining latency model).
    """
    from nasflow.data.prepare import MANIFEST

    manifest = data / MANIFEST
    extra: dict[str, Any] = {
        "files": {
            name: {"path": str(path), "sha256": sha256_file(path)}
            for name, path in sorted(files.items())
        },
        "data": {
            "path": str(data),
            "manifest_sha256": sha256_file(manifest) if manifest.is_file() else None,
        },
    }
    if "supernet" in plan.schedule.names():
        extra["supernet_options"] = supernet_options(config)
    return extra


# ---- outputs ------------------------------------------------------------------------------------


def describe_arch(
    arch: Arch, vocab_size: int, latency: LatencyPredictor | None = None
) -> dict[str, Any]:
    """GFLOPs, non-embedding and total parameters (millions) and, if given, predicted latency."""
    params = count_params(arch)
    out: dict[str, Any] = {
        "gflops": count_flops(arch, vocab_size) / 1e9,
        "params_m": params / 1e6,
        "params_total_m": (params + count_embedding_params(arch, vocab_size)) / 1e6,
    }
    if latency is not None:
        out["predicted_latency_ms"] = float(latency.predict_ms([arch])[0])
    return out


def progress_line(plan: SearchPlan, row: Mapping[str, Any]) -> str:
    """One line of search progress for an iteration's history row."""
    return (
        f"{plan.method}/{plan.constraint}/seed{plan.settings.seed}: iteration "
        f"{row['iteration']}/{plan.settings.iterations} [{row['predictor']}] best "
        f"{row['best_score']:.4f} mean {row['mean_score']:.4f} ({row['scored']} scored, "
        f"{plan.protocol} protocol, {row['seconds']:.2f} s)"
    )

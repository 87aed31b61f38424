"""One configured search (`nasflow search run`): the `search` config section checked up front,
only the predictors the method's schedule uses loaded, and the best architecture described.

Config section (`search`): evolution settings (`population`, `parents`, `mutations`,
`crossovers`, `mutation_prob`, `max_resample_tries`), the scoring `protocol` (`reference`,
`cached` or `fast`, see `nasflow.search.evolution`), `valid_subset` (the rank-fidelity check of
`fast`, `nasflow.search.subset`), `constraints` {name: limits mapping}, `methods` {name:
predictor schedule mapping, plus an optional `supernet` kind} and, for the workflow, `seeds`,
`latency_target` and `run`. A method's `iterations` is the search's; the seed comes from the
command line.

`supernet-calibrated` is the supernet with its scores mapped to from-scratch BLEU by an affine
fit on the LLM-PP demonstrations of one TFS-Eval split seed
(`nasflow.predictors.calibration`): monotone, so it ranks (and selects) exactly as the supernet
does, but its scores, the history's and the winner's, are BLEU estimates.
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
from nasflow.search.subset import SubsetSettings
from nasflow.space.hat import Arch

if TYPE_CHECKING:
    from nasflow.predictors.base import Predictor
    from nasflow.predictors.latency import LatencyPredictor
    from nasflow.predictors.supernet import SupernetPredictor

PREDICTORS = ("supernet", "supernet-calibrated", "distill", "supernet-mlp")
"""Schedule predictor names: the supernet, the supernet calibrated on the demonstrations,
LLM-Distill-PP, and an MLP distilled from supernet scores (the paper's Distilled HAT, method
`distilled-hat` of Table 16: the MLP for iterations 1-15, then the supernet)."""
# The files each schedule predictor loads (keys of `have` and of the files mapping).
PREDICTOR_FILES = {
    "supernet": ("supernet",),
    "supernet-calibrated": ("supernet", "calibration"),
    "distill": ("distill",),
    "supernet-mlp": ("supernet-mlp",),
}
FILE_OPTIONS = {
    "supernet": "--supernet MODEL.pt",
    "calibration": "--calibration TFS_EVAL_DIR",
    "distill": "--distill MLP.pt",
    "supernet-mlp": "--supernet-mlp MLP.pt",
}
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
    "valid_subset",
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
    supernet_kind: str | None = None
    """The supernet kind the method names (None: whichever `--supernet` is given)."""
    valid_subset: SubsetSettings | None = None
    """The rank-fidelity check's settings (protocol `fast` only)."""

    @property
    def files(self) -> tuple[str, ...]:
        """The model files the schedule's predictors load (`PREDICTOR_FILES`)."""
        names = self.schedule.names()
        return tuple(dict.fromkeys(f for n in names for f in PREDICTOR_FILES[n]))

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

    `have` says which inputs were given: `supernet`, `calibration`, `distill`, `supernet-mlp`,
    `latency` (a latency predictor).
    """
    section = search_section(config)
    raw_schedule = _entry(section, "methods", method)
    limits = _entry(section, "constraints", constraint)
    where = f"search.methods.{method}"
    if not isinstance(raw_schedule, Mapping):
        raise ConfigError(f"config key {where} must be a mapping")
    from nasflow.model.mos import KINDS

    raw_schedule = dict(raw_schedule)
    kind = raw_schedule.pop("supernet", None)
    if kind is not None and kind not in KINDS:
        raise ConfigError(
            f"config key {where}.supernet must be one of {', '.join(KINDS)}, got {kind!r}"
        )
    try:
        schedule = PredictorSchedule.from_mapping(raw_schedule, known=PREDICTORS)
    except ConfigError as error:
        raise ConfigError(f"config key {where}: {error}") from None
    for name in schedule.names():
        for needed in PREDICTOR_FILES[name]:
            if not have.get(needed):
                iterations = [i for i, p in enumerate(schedule.sequence(), 1) if p == name]
                raise ConfigError(
                    f"config key {where} scores iteration(s) {_spans(iterations)} with the "
                    f"{name} predictor: pass {FILE_OPTIONS[needed]}"
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
    valid_subset = _valid_subset(config, section, schedule, protocol, where)
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
        kind,
        valid_subset,
    )


def _valid_subset(
    config: Config,
    section: Mapping[str, Any],
    schedule: PredictorSchedule,
    protocol: str,
    where: str,
) -> SubsetSettings | None:
    """`search.valid_subset` under the `fast` protocol (None otherwise), checked to fit the
    method: the supernet must score by loss, and a calibrated supernet (fitted on full-set
    scores) cannot score a subset."""
    if protocol != "fast":
        return None
    raw = section.get("valid_subset") or {}
    if not isinstance(raw, Mapping):
        raise ConfigError("config key search.valid_subset must be a mapping")
    settings = SubsetSettings.from_mapping(raw)
    names = schedule.names()
    if "supernet-calibrated" in names:
        raise ConfigError(
            f"config key {where} uses supernet-calibrated, which search.protocol fast cannot "
            "score on a validation subset (its calibration is fitted on full-set scores); use "
            "protocol cached"
        )
    metric = (config.get("evaluate") or {}).get("predictor_metric", "loss")
    if "supernet" in names and metric != "loss":
        raise ConfigError(
            f"search.protocol fast scores the supernet on a validation subset by loss; "
            f"config key evaluate.predictor_metric is {metric!r}"
        )
    return settings


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


@dataclass(frozen=True)
class Calibration:
    """Where `supernet-calibrated` takes its demonstrations: the first `demonstrations` train
    architectures (all when None) of split seed `seed` of the only task of a TFS-Eval folder."""

    seed: int
    demonstrations: int | None = None


def load_predictors(
    plan: SearchPlan,
    config: Config,
    files: Mapping[str, Path],
    data: Path,
    device: str | None = None,
    calibration: Calibration | None = None,
) -> dict[str, Predictor]:
    """The predictors the schedule uses, checked to belong to the config's space (and the
    supernet to be of the kind the method names)."""
    predictors: dict[str, Predictor] = {}
    supernet: SupernetPredictor | None = None
    for name in plan.schedule.names():
        if name in ("supernet", "supernet-calibrated"):
            if supernet is None:
                supernet = supernet_predictor(config, files["supernet"], data, device)
                _check_space(
                    f"--supernet {files['supernet']}", supernet.model.space.name, plan.space
                )
                kind = supernet.model.kind
                if plan.supernet_kind is not None and kind != plan.supernet_kind:
                    raise ConfigError(
                        f"--supernet {files['supernet']} is a {kind} supernet; config key "
                        f"search.methods.{plan.method}.supernet names {plan.supernet_kind}"
                    )
            predictors[name] = (
                supernet
                if name == "supernet"
                else calibrated_supernet(supernet, files["calibration"], calibration)
            )
        else:
            from nasflow.predictors.distilled import DistilledPredictor

            distilled = DistilledPredictor.load(files[name])
            _check_space(f"--{name} {files[name]}", distilled.space_name, plan.space)
            predictors[name] = distilled
    return predictors


def calibrated_supernet(
    supernet: Predictor, folder: Path, calibration: Calibration | None
) -> Predictor:
    """The supernet calibrated (affine) on one split seed's demonstrations of a TFS-Eval set."""
    from nasflow.predictors.calibration import CalibratedPredictor
    from nasflow.tfs.format import read_tfs_eval

    if calibration is None:
        raise ConfigError("supernet-calibrated needs the split seed of its demonstrations")
    table = read_tfs_eval(folder, seeds=[calibration.seed])
    tasks = list(dict.fromkeys(table["task"]))
    if len(tasks) != 1:
        raise DataError(
            f"--calibration {folder}: expected the experiment's own set (one task), found "
            f"{', '.join(tasks)}"
        )
    calibrated = CalibratedPredictor(
        supernet, table, tasks[0], mode="affine", demonstrations=calibration.demonstrations
    )
    return calibrated.for_seed(calibration.seed)


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
    files: Mapping[str, Path],
    data: Path,
    config: Config,
    plan: SearchPlan,
    calibration: Calibration | None = None,
    calibration_folder: Path | None = None,
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
    if "supernet" in plan.files:
        extra["supernet_options"] = supernet_options(config)
    if "calibration" in plan.files and calibration is not None:
        extra["calibration"] = {
            "seed": calibration.seed,
            "demonstrations": calibration.demonstrations,
            "folder_sha256": sha256_folder(calibration_folder),
        }
    return extra


def sha256_folder(folder: Path | None) -> str | None:
    """One digest of every file under `folder` (relative names and contents, sorted)."""
    if folder is None:
        return None
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode() + b"\0")
        digest.update(sha256_file(path).encode())
    return digest.hexdigest()


# ---- outputs ------------------------------------------------------------------------------------


def supernet_record(predictors: Mapping[str, Predictor]) -> dict[str, Any]:
    """`supernet_kind` of the supernet the search used (empty when it used none), for best.json
    and the tables (Table 15 picks the Neuron-wise MoS runs by it)."""
    from nasflow.predictors.supernet import SupernetPredictor

    for predictor in predictors.values():
        if isinstance(predictor, SupernetPredictor):
            return {"supernet_kind": predictor.model.kind}
        base = getattr(predictor, "base", None)
        if isinstance(base, SupernetPredictor):
            return {"supernet_kind": base.model.kind}
    return {}


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


def add_predicted_latency(
    rows: list[dict[str, Any]], latency: LatencyPredictor | None
) -> list[dict[str, Any]]:
    """`rows` (the search's `scored` rows) with `predicted_latency_ms` (NaN without a latency
    predictor); each distinct architecture is predicted once."""
    archs = {row["arch_id"]: Arch.from_json(row["arch"]) for row in rows}
    ms: dict[str, float] = {}
    if latency is not None and archs:
        ms = dict(zip(archs, map(float, latency.predict_ms(list(archs.values()))), strict=True))
    return [{**row, "predicted_latency_ms": ms.get(row["arch_id"], float("nan"))} for row in rows]


def progress_line(plan: SearchPlan, row: Mapping[str, Any]) -> str:
    """One line of search progress for an iteration's history row."""
    return (
        f"{plan.method}/{plan.constraint}/seed{plan.settings.seed}: iteration "
        f"{row['iteration']}/{plan.settings.iterations} [{row['predictor']}] best "
        f"{row['best_score']:.4f} mean {row['mean_score']:.4f} ({row['scored']} scored, "
        f"{plan.protocol} protocol, {row['seconds']:.2f} s)"
    )


def subset_line(name: str, check: Mapping[str, Any]) -> str:
    """One line naming the validation subset a `fast` search's rank-fidelity check chose."""
    tried = ", ".join(f"{row['fraction']:g}: tau {row['kendall']:.3f}" for row in check["tried"])
    chosen = (
        f"{check['chosen_fraction']:g} of the tokens ({check['chosen_sentences']} of "
        f"{check['full_sentences']} sentences)"
        if check["passed"]
        else f"the full set (no subset reached tau {check['settings']['min_kendall']:g})"
    )
    return f"{name}: validation subset {chosen}; tried {tried}; check took {check['seconds']:.1f} s"

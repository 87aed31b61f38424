"""Experiment configuration: YAML loading, JSON-Schema validation with defaults, and a config hash.

The schema is `workflow/schemas/config.schema.yaml` (the Snakefile validates with this module at
parse time, the CLI with the same function), so a bad key fails before any job runs, with a
message that names the key.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import fields
from functools import partial
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from nasflow.config.schema import load_schema
from nasflow.config.sections import (
    DistillSettings,
    EvolutionSettings,
    MeasureSettings,
    ParetoSettings,
)
from nasflow.core.errors import ConfigError

Config = dict[str, Any]

# The experiment run when no config file is given (`snakemake`, `nasflow config show`).
DEFAULT_CONFIG = Path("config/config.yaml")
# What each chain needs from the config file itself (never from the schema defaults).
CHAIN_KEYS = {"hsnas": ("space", "data"), "lts": ()}


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys instead of keeping the last one."""


def _construct_unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise ConfigError(f"line {key_node.start_mark.line + 1}: duplicate key {key!r}")
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping
)


def read_yaml(path: str | Path) -> Config:
    """Parse a YAML config file; syntax errors and duplicate keys name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None
    except yaml.MarkedYAMLError as error:
        line = error.problem_mark.line + 1 if error.problem_mark else "?"
        raise ConfigError(f"{path}:{line}: invalid YAML ({error.problem})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the config must be a mapping of keys to values")
    return data


def _key_path(parts: Any) -> str:
    return ".".join(str(p) for p in parts) or "<top level>"


def _describe(error: jsonschema.ValidationError) -> str:
    where = _key_path(error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        keys = ", ".join(_key_path([*error.absolute_path, k]) for k in extra)
        return f"unknown config key {keys} (allowed under {where}: {', '.join(allowed)})"
    if error.validator == "required":
        missing = error.message.split("'")[1]
        return f"missing required config key {_key_path([*error.absolute_path, missing])}"
    if error.validator == "enum":
        return f"config key {where}: {error.instance!r} is not one of {error.validator_value}"
    return f"config key {where}: {error.message}"


def _fill_defaults(instance: Any, schema: dict[str, Any]) -> None:
    """Insert schema defaults for absent keys, recursing into objects (in place)."""
    if not isinstance(instance, dict):
        return
    for key, sub in schema.get("properties", {}).items():
        if key not in instance and "default" in sub:
            instance[key] = copy.deepcopy(sub["default"])
        if key in instance:
            _fill_defaults(instance[key], sub)


def _check_semantics(config: Config) -> list[str]:
    """Rules that span several keys (JSON Schema alone says them poorly)."""
    problems = []
    data = config.get("data", {})
    if data.get("source_lang") == data.get("target_lang"):
        problems.append("config keys data.source_lang and data.target_lang must differ")
    if data.get("source") == "local" and not data.get("local_dir"):
        problems.append("config key data.local_dir is required when data.source is 'local'")
    if data.get("corpus") == "custom" and not data.get("local_dir"):
        problems.append("config key data.local_dir is required when data.corpus is 'custom'")
    if data.get("fetch"):
        from nasflow.data.recipes import RECIPES

        if data.get("corpus") not in RECIPES:
            problems.append(
                f"config key data.fetch: corpus {data.get('corpus')!r} has no download recipe "
                f"(recipes: {', '.join(sorted(RECIPES))}); set data.fetch: false"
            )
        if not data.get("local_dir"):
            problems.append(
                "config key data.local_dir is required when data.fetch is true (the corpus is "
                "written there)"
            )
    if config.get("experiment") == "paper":
        problems.append(
            "config key experiment must not be 'paper' (results/paper/ holds the released-data "
            "tables)"
        )
    tfs = config.get("tfs", {})
    n, train = tfs.get("num_archs", 0), tfs.get("train_archs")
    if train is not None and n >= 2 and train >= n:
        problems.append(
            f"config key tfs.train_archs ({train}) must be less than tfs.num_archs ({n}): "
            "each seed's test split needs architectures"
        )
    if "hsnas" in config.get("chains", ()):
        problems += _check_demonstrations(config)
    problems += _check_search(config)
    if not problems:
        problems += _check_settings(config)
    problems += _check_final_train(config)
    for section in ("supernet", "train"):
        settings = config.get(section, {})
        warmup, updates = settings.get("warmup_updates", 0), settings.get("max_updates", 1)
        if warmup > 0 and warmup >= updates:
            problems.append(
                f"config key {section}.warmup_updates ({warmup}) must be less than "
                f"{section}.max_updates ({updates})"
            )
    return problems


def tfs_train_size(config: Config) -> int:
    """Demonstration (train) architectures per split seed of the experiment's TFS-Eval set:
    `tfs.train_archs`, else a third of `tfs.num_archs` (the paper: 10 of 30)."""
    n, size = config["tfs"]["num_archs"], config["tfs"].get("train_archs")
    return max(1, round(n / 3)) if size is None else size


def _check_demonstrations(config: Config) -> list[str]:
    """LLM-PP and the distillation prompts cannot ask for more demonstrations than the
    experiment's TFS-Eval set has train architectures (no silent cap)."""
    if config["tfs"]["num_archs"] < 2:
        return []  # no TFS-Eval set: nothing is prompted with its demonstrations
    size = tfs_train_size(config)
    asked = {
        "llm.demonstrations": max(config["llm"]["demonstrations"]),
        "distill.demonstrations": config["distill"]["demonstrations"],
    }
    return [
        f"config key {key} asks for {k} demonstrations, but the TFS-Eval set has {size} "
        f"demonstration architectures per split seed (tfs.num_archs {config['tfs']['num_archs']}"
        f", tfs.train_archs {config['tfs'].get('train_archs')}): lower {key} or raise "
        "tfs.num_archs"
        for key, k in asked.items()
        if k > size
    ]


def final_train_settings(config: Config) -> dict[str, Any]:
    """The train section with `search.final_train`'s overrides: how the winners are trained."""
    return {**config.get("train", {}), **config.get("search", {}).get("final_train", {})}


def _check_final_train(config: Config) -> list[str]:
    """`search.final_train` may only override train keys, with values the train schema allows."""
    overrides = config.get("search", {}).get("final_train", {})
    if not overrides:
        return []
    train_schema = load_schema()["properties"]["train"]
    allowed = train_schema.get("properties", {})
    unknown = sorted(set(overrides) - set(allowed))
    if unknown:
        keys = ", ".join(f"search.final_train.{key}" for key in unknown)
        return [f"unknown config key {keys} (allowed: the train keys {', '.join(sorted(allowed))})"]
    validator = jsonschema.Draft202012Validator(train_schema)
    problems = [
        f"config key search.final_train.{_key_path(error.absolute_path)}: {error.message}"
        for error in validator.iter_errors(overrides)
        if error.validator != "required"
    ]
    merged = final_train_settings(config)
    warmup, updates = merged.get("warmup_updates", 0), merged.get("max_updates", 1)
    if not problems and warmup > 0 and warmup >= updates:
        problems.append(
            f"config key search.final_train: warmup_updates ({warmup}) must be less than "
            f"max_updates ({updates})"
        )
    return problems


def _check_search(config: Config) -> list[str]:
    """Cross-references of the distill and search sections."""
    problems = []
    search, distill = config.get("search", {}), config.get("distill", {})
    methods = search.get("methods", {})
    unknown = [m for m in search.get("run", []) if m not in methods]
    if unknown:
        problems.append(
            f"config key search.run names unknown method(s) {', '.join(unknown)}; "
            f"search.methods has {', '.join(methods)}"
        )
    unknown = [m for m in search.get("method_seeds", {}) if m not in methods]
    if unknown:
        problems.append(
            f"config key search.method_seeds names unknown method(s) {', '.join(unknown)}; "
            f"search.methods has {', '.join(methods)}"
        )
    llms = [entry.get("name") for entry in config.get("llm", {}).get("predictors", [])]
    if distill.get("llm") not in llms:
        problems.append(
            f"config key distill.llm ({distill.get('llm')!r}) must name an llm.predictors entry "
            f"({', '.join(map(str, llms))})"
        )
    split_seed = distill.get("search_split_seed")
    split_seeds = config.get("tfs", {}).get("split_seeds", [])
    if split_seed is not None and split_seed not in split_seeds:
        problems.append(
            f"config key distill.search_split_seed ({split_seed}) is not in tfs.split_seeds"
        )
    targets = config.get("latency", {}).get("targets", {})
    if search.get("latency_target") is None and targets:
        search["latency_target"] = next(iter(targets))  # null: the first target
    if search.get("latency_target") not in targets:
        problems.append(
            f"config key search.latency_target ({search.get('latency_target')!r}) must name a "
            f"latency.targets entry ({', '.join(targets)})"
        )
    placed = [name for name, spec in targets.items() if (spec.get("slurm") or {}).get("partition")]
    if placed and len(placed) < len(targets):
        unplaced = ", ".join(
            f"latency.targets.{name}.slurm.partition" for name in targets if name not in placed
        )
        problems.append(
            f"config key {unplaced}: needed because latency.targets.{placed[0]}.slurm.partition "
            "is set (rule latency_dataset serves every target: where one names a partition, "
            "the others cannot fall back to the profile's)"
        )
    for name, method in methods.items():
        iterations = method.get("iterations", 0)
        for i, segment in enumerate(method.get("segments", [])):
            if not segment["start"] <= segment["end"] <= iterations:
                problems.append(
                    f"config key search.methods.{name}.segments[{i}]: need start <= end <= "
                    f"iterations ({iterations}), got {segment['start']}..{segment['end']}"
                )
    return problems


def _check_chains(config: Config) -> list[str]:
    """Keys an enabled chain needs, given in the config itself (before defaults are filled)."""
    chains = config.get("chains", load_schema()["properties"]["chains"]["default"])
    return [
        f"missing required config key {key} (the {chain} chain, enabled by chains, needs it)"
        for chain in chains
        for key in CHAIN_KEYS.get(chain, ())
        if key not in config
    ]


def _settings_problem(key: str, check: Callable[[], object]) -> list[str]:
    """The error of one settings class's own validation, as a problem naming the config key."""
    try:
        check()
    except (ConfigError, TypeError, ValueError) as error:
        text = str(error)
        return [text if text.startswith("config key ") else f"config key {key}: {text}"]
    return []


def _check_settings(config: Config) -> list[str]:
    """The settings the jobs build from free-form sections, validated by the library's own
    settings classes now, so that a value only a job would reject stops the run before any job
    (e.g. search.parents > search.population, an unknown LTS space)."""
    problems = []
    chains = config.get("chains", ())
    if "hsnas" in chains:
        search = config["search"]
        names = {f.name for f in fields(EvolutionSettings)} - {"iterations", "seed"}
        evolution = {k: v for k, v in search.items() if k in names}
        for method in search["run"]:
            problems += _settings_problem(
                "search",
                partial(
                    EvolutionSettings,
                    **evolution,
                    iterations=search["methods"][method]["iterations"],
                ),
            )
        if config["tfs"]["num_archs"] >= 2:  # the MLPs are trained only with a TFS-Eval set
            problems += _settings_problem(
                "distill.mlp", lambda: DistillSettings.from_mapping(config["distill"]["mlp"])
            )
    if "lts" in chains:
        from nasflow.space.gpt import get_space, resolve_space

        lts = config["lts"]
        problems += _settings_problem("lts.space", lambda: resolve_space(lts["space"]))
        problems += _settings_problem(
            "lts.proxy_check.space", lambda: get_space(lts["proxy_check"]["space"])
        )
        problems += _settings_problem(
            "lts.search", lambda: ParetoSettings.from_mapping(lts["search"])
        )
        problems += _settings_problem(
            "lts.measure", lambda: MeasureSettings.from_mapping(lts["measure"])
        )
        problems += _check_text_prediction(config)
    return list(dict.fromkeys(problems))


def _check_text_prediction(config: Config) -> list[str]:
    """What the schema cannot say about the text_prediction section (checked before any job)."""
    section = config.get("text_prediction")
    if not section or not section.get("enabled", True):
        return []
    problems = []
    seq_len = section["seq_len"]
    for phase in ("pretrain", "finetune"):
        settings = section[phase]
        if settings["warmup"] > settings["steps"]:
            problems.append(
                f"config key text_prediction.{phase}.warmup ({settings['warmup']}) exceeds "
                f"text_prediction.{phase}.steps ({settings['steps']})"
            )
        if settings["batch_tokens"] < seq_len:
            problems.append(
                f"config key text_prediction.{phase}.batch_tokens ({settings['batch_tokens']}) "
                f"is smaller than one window of text_prediction.seq_len ({seq_len}) tokens"
            )
    ratios = section["inner_ratio"]["ratios"]
    if section["inner_ratio"]["enabled"] and not ratios[0] < 2.0 <= ratios[1]:
        problems.append(
            f"config key text_prediction.inner_ratio.ratios must be [< 2, >= 2], got {ratios}"
        )
    try:
        measure = MeasureSettings.from_mapping((config.get("lts") or {}).get("measure") or {})
    except (ConfigError, TypeError, ValueError):
        return problems  # reported as lts.measure
    if measure.prompt_tokens + measure.new_tokens > seq_len:
        problems.append(
            f"config key text_prediction.seq_len ({seq_len}) is shorter than "
            f"lts.measure.prompt_tokens + lts.measure.new_tokens ({measure.prompt_tokens} + "
            f"{measure.new_tokens}): the trained models could not be measured"
        )
    return problems


def _resolve_space(config: Config) -> list[str]:
    """Check the `space` key; a space file's path is replaced by the space's mapping (so the
    jobs receive the definition itself and rerun when it changes)."""
    value = config.get("space")
    if value is None:
        return []
    from nasflow.space.files import looks_like_file
    from nasflow.space.hat import get_space
    from nasflow.space.registry import space_to_mapping

    try:
        space = get_space(value)
    except (ConfigError, ValueError) as error:
        return [f"config key space: {error}"]
    if isinstance(value, str) and looks_like_file(value):
        config["space"] = space_to_mapping(space)
    return []


def validate_config(config: Config, source: str = "config", *, complete: bool = True) -> Config:
    """Validate `config` in place against the schema, fill defaults, and return it.

    `complete=False` is for the slice of a config a rule passes to one job: the keys its chains
    need are not required there. Raises `ConfigError` listing every problem, each naming its key
    (e.g. `data.vocab_size`).
    """
    schema = load_schema()
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    problems = [_describe(error) for error in errors]
    if not any(list(error.absolute_path)[:1] == ["space"] for error in errors):
        problems += _resolve_space(config)
    if complete and not problems:
        problems = _check_chains(config)
    if not problems:
        _fill_defaults(config, schema)
        problems = _check_semantics(config)
    if problems:
        raise ConfigError(f"{source}: " + "; ".join(problems))
    return config


def load_config(path: str | Path) -> Config:
    """Read, validate and default-fill a config file."""
    return resolve_config([path])


def merge_config(base: Config, update: Config) -> Config:
    """`update` merged into `base` in place, mappings key by key (as Snakemake merges configs)."""
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge_config(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def resolve_config(files: Sequence[str | Path], overrides: Config | None = None) -> Config:
    """The config an experiment runs: the given files merged in order (`DEFAULT_CONFIG` when
    none is given, and only then), `overrides` (Snakemake's `--config`) on top, validated with
    the schema's defaults filled in. The workflow and `nasflow config` both resolve with this.
    """
    paths = [Path(f) for f in files] or [DEFAULT_CONFIG]
    if not files and not DEFAULT_CONFIG.is_file():
        raise ConfigError(
            f"no config file given and the default {DEFAULT_CONFIG} is not in "
            f"{Path.cwd()}: run from the repository root or pass --configfile"
        )
    config: Config = {}
    for path in paths:
        merge_config(config, read_yaml(path))
    if overrides:
        merge_config(config, dict(overrides))
    source = " + ".join(map(str, paths)) + (" + --config" if overrides else "")
    return validate_config(config, source=source)


def config_hash(config: Config) -> str:
    """Short sha256 of the canonical JSON of a config (stored with every figure nasflow writes)."""
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def parse_json_object(text: str, option: str) -> dict[str, Any]:
    """A JSON object given on the command line (`option` names it in errors)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(f"{option}: invalid JSON ({error.msg})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{option}: expected a JSON object")
    return data


def resolve_tfs_eval_dir(config: Config, mirror: str | None) -> Path | None:
    """The released TFS-Eval folder: `paper.tfs_eval_dir`, else `$NASFLOW_MIRROR/llmas/...`."""
    configured = config.get("paper", {}).get("tfs_eval_dir")
    if configured:
        return Path(configured)
    if mirror:
        candidate = Path(mirror) / "llmas" / "train-test_seedarchs"
        if candidate.is_dir():
            return candidate
    return None

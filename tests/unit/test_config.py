"""Config schema: defaults, and bad configs that fail with a message naming the key."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

from nasflow.cli import main
from nasflow.config.resolve import (
    config_hash,
    load_config,
    load_schema,
    read_yaml,
    resolve_config,
    validate_config,
)
from nasflow.core.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
MINIMAL = {
    "experiment": "t",
    "space": "demo",
    "data": {"corpus": "multi30k", "source_lang": "en", "target_lang": "de"},
}


def _with(path: str, value):
    """MINIMAL with `value` set at dotted `path` (value `...` deletes the key)."""
    config = copy.deepcopy(MINIMAL)
    *parents, last = path.split(".")
    node = config
    for key in parents:
        node = node.setdefault(key, {})
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return config


BAD_CONFIGS = [
    (_with("seed", "one"), "config key seed: 'one' is not of type 'integer'"),
    (_with("seed", -1), "config key seed: -1 is less than the minimum of 0"),
    (_with("space", "hat-big"), "config key space: unknown search space 'hat-big'; known: hat-wmt"),
    (_with("experiment", "bad name/with slash"), "config key experiment: .* does not match"),
    (_with("experiment", ...), "missing required config key experiment"),
    (_with("data.corpus", ...), "missing required config key data.corpus"),
    (_with("data.vocab_size", "8k"), "config key data.vocab_size: '8k' is not of type 'integer'"),
    (_with("data.vocab_size", 10), "config key data.vocab_size: 10 is less than the minimum"),
    (_with("data.vocab", 8000), "unknown config key data.vocab "),
    (_with("trainer", {}), "unknown config key trainer "),
    (_with("data.splits.dev", "val"), "unknown config key data.splits.dev "),
    (_with("data.source", "ftp"), "config key data.source: 'ftp' is not one of"),
    (_with("data.character_coverage", 0), "config key data.character_coverage: 0 is less than or"),
    (_with("data.target_lang", "EN"), "config key data.target_lang: 'EN' does not match"),
    (_with("paper.tasks", []), "config key paper.tasks: \\[\\] should be non-empty"),
    (_with("paper.tasks", ["wmt14ende", "wmt14ende"]), "config key paper.tasks: .* non-unique"),
    (_with("paper.enabled", "yes"), "config key paper.enabled: 'yes' is not of type 'boolean'"),
    (_with("data.source", "local"), "data.local_dir is required when data.source is 'local'"),
    (_with("data.corpus", "custom"), "data.local_dir is required when data.corpus is 'custom'"),
    (_with("data.target_lang", "en"), "data.source_lang and data.target_lang must differ"),
    (_with("data", "multi30k"), "config key data: 'multi30k' is not of type 'object'"),
    (_with("model.dropout", 1.0), "config key model.dropout: 1.0 is greater than or equal"),
    (_with("model.max_positions", 8), "config key model.max_positions: 8 is less than the mini"),
    (_with("supernet.max_tokens", 15), "config key supernet.max_tokens: 15 is less than the mi"),
    (_with("supernet.lr", 0), "config key supernet.lr: 0 is less than or equal to the minimum"),
    (_with("supernet.sampling", "fair"), "config key supernet.sampling: 'fair' is not one of"),
    (_with("supernet.average_last", 5), "unknown config key supernet.average_last "),
    (_with("train.sampling", "spos"), "unknown config key train.sampling "),
    (_with("train.lr_scheduler", "step"), "config key train.lr_scheduler: 'step' is not one of"),
    (_with("train.adam_betas", [0.9]), "config key train.adam_betas: \\[0.9\\] is too short"),
    (_with("train.adam_betas", [0.9, 1.0]), "config key train.adam_betas.1: 1.0 is greater than"),
    (_with("train.precision", "fp8"), "config key train.precision: 'fp8' is not one of"),
    (_with("train.max_updates", 0), "config key train.max_updates: 0 is less than the minimum"),
    (
        _with("supernet.warmup_updates", 40000),
        "supernet.warmup_updates \\(40000\\) must be less than supernet.max_updates \\(40000\\)",
    ),
    (
        _with("train", {"max_updates": 100, "warmup_updates": 200}),
        "train.warmup_updates \\(200\\) must be less than train.max_updates \\(100\\)",
    ),
    (_with("evaluate.beam", 65), "config key evaluate.beam: 65 is greater than the maximum of 64"),
    (_with("evaluate.predictor_metric", "kendall"), "config key evaluate.predictor_metric: "),
    (_with("tfs.num_archs", -1), "config key tfs.num_archs: -1 is less than the minimum of 0"),
]


@pytest.mark.parametrize(("config", "message"), BAD_CONFIGS)
def test_bad_config_names_the_key(config, message):
    with pytest.raises(ConfigError, match=message):
        validate_config(config)


def test_every_problem_is_reported_at_once():
    config = _with("seed", "x")
    config["space"] = "nope"
    with pytest.raises(ConfigError) as error:
        validate_config(config)
    assert "seed" in str(error.value) and "space" in str(error.value)


def test_defaults_are_filled_from_the_schema():
    config = validate_config(copy.deepcopy(MINIMAL))
    assert config["seed"] == 1 and config["threads"] == 2
    assert config["data"]["splits"] == {
        "train": "train",
        "valid": "val",
        "test": "test_2016_flickr",
    }
    assert config["data"]["vocab_size"] == 8000 and config["data"]["source"] == "auto"
    assert config["paper"]["tasks"] == ["wmt14ende", "wmt14enfr", "wmt19ende"]


def test_training_defaults_are_hat_wmt():
    config = validate_config(copy.deepcopy(MINIMAL))
    assert config["model"] == {
        "dropout": 0.3, "attention_dropout": 0.1, "activation_dropout": 0.0, "max_positions": 1024,
    }  # fmt: skip
    supernet, train = config["supernet"], config["train"]
    assert supernet["warmup_updates"] == 10000 and train["warmup_updates"] == 4000
    assert supernet["sampling"] == "spos" and train["average_last"] == 0
    shared = set(supernet) & set(train)
    mixture = {"kind", "compare", "experts", "router_hidden", "router_dropout"}
    assert set(supernet) - shared == {"sampling", "sandwich_random", *mixture}
    assert (supernet["kind"], supernet["compare"]) == ("hat", [])  # HAT's supernet by default
    assert set(train) - shared == {"average_last"}
    for settings in (supernet, train):
        assert settings["max_updates"] == 40000 and settings["max_tokens"] == 4096
        assert settings["lr"] == 1e-3 and settings["lr_scheduler"] == "cosine"
        assert settings["warmup_init_lr"] == 1e-7 and settings["min_lr"] == 1e-7
        assert isinstance(settings["min_lr"], float) and isinstance(settings["adam_eps"], float)
        assert settings["adam_betas"] == [0.9, 0.98] and settings["label_smoothing"] == 0.1
        assert settings["precision"] == "auto" and settings["device"] == "auto"
    assert all(supernet[k] == train[k] for k in shared - {"warmup_updates"})
    assert config["evaluate"] == {
        "beam": 4, "lenpen": 0.6, "max_len_a": 0, "max_len_b": 200, "batch_sentences": 128,
        "valid_sentences": 0, "predictor_metric": "loss",
    }  # fmt: skip
    assert config["tfs"] == {
        "num_archs": 30,
        "split_seeds": [123, 456, 789],
        "train_archs": None,
        "example_pool": 1000,
    }


def test_warmup_zero_is_allowed_with_one_update():
    config = _with("train", {"max_updates": 1, "warmup_updates": 0})
    assert validate_config(config)["train"]["warmup_updates"] == 0


def test_wmt_configs_use_hat_training_settings():
    for name in ("wmt14_en_de", "wmt14_en_fr", "wmt19_en_de"):
        config = load_config(REPO / "config" / f"{name}.yaml")
        assert config["supernet"]["warmup_updates"] == 10000, name
        assert config["train"]["warmup_updates"] == 4000, name
        assert config["supernet"]["max_tokens"] * config["supernet"]["update_freq"] == 4096 * 16
        assert config["evaluate"]["beam"] == 4 and config["evaluate"]["max_len_b"] == 200


def test_every_schema_key_has_a_description_and_default():
    def walk(schema, path):
        for key, sub in schema.get("properties", {}).items():
            where = f"{path}.{key}" if path else key
            assert sub.get("description"), f"{where} has no description"
            assert "default" in sub, f"{where} has no default"
            yield where
            yield from walk(sub, where)

    keys = list(walk(load_schema(), ""))
    assert "data.splits.train" in keys and "paper.tfs_eval_dir" in keys
    readme = (REPO / "config" / "README.md").read_text()
    missing = [k for k in keys if f"`{k}`" not in readme]
    assert not missing, f"config/README.md does not document {missing}"


def test_shipped_configs_are_valid():
    for path in sorted((REPO / "config").glob("*.yaml")):
        load_config(path)


def test_config_hash_is_stable_and_sensitive():
    a = validate_config(copy.deepcopy(MINIMAL))
    b = validate_config(copy.deepcopy(MINIMAL))
    assert config_hash(a) == config_hash(b) and len(config_hash(a)) == 16
    b["seed"] = 2
    assert config_hash(a) != config_hash(b)


def test_yaml_errors_name_file_and_line(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("experiment: demo\ndata: [unclosed\n")
    with pytest.raises(ConfigError, match=r"broken.yaml:\d+: invalid YAML"):
        read_yaml(broken)
    dup = tmp_path / "dup.yaml"
    dup.write_text("experiment: a\nspace: demo\nexperiment: b\n")
    with pytest.raises(ConfigError, match=r"dup.yaml: line 3: duplicate key 'experiment'"):
        read_yaml(dup)
    with pytest.raises(ConfigError, match="config file not found"):
        read_yaml(tmp_path / "absent.yaml")
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just a string\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        read_yaml(scalar)


def test_cli_validate_and_show(tmp_path, capsys):
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(MINIMAL))
    assert main(["config", "validate", "--config", str(good)]) == 0
    assert "valid (experiment 't'" in capsys.readouterr().out
    assert main(["config", "show", "--config", str(good)]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["data"]["vocab_size"] == 8000
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(_with("data.vocab_size", "big")))
    assert main(["config", "validate", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "data.vocab_size" in err and "Traceback" not in err


def test_experiment_paper_and_an_oversized_train_split_are_refused() -> None:
    with pytest.raises(ConfigError, match="experiment must not be 'paper'"):
        validate_config(_with("experiment", "paper"))
    with pytest.raises(ConfigError, match=r"tfs.train_archs \(8\) must be less than"):
        validate_config(_with("tfs", {"num_archs": 8, "train_archs": 8}))


BAD_METHOD = {
    "iterations": 5,
    "default": "supernet",
    "segments": [{"predictor": "distill", "start": 2, "end": 9}],
}


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("search.run", ["hat", "nope"], "search.run names unknown method(s) nope"),
        ("distill.llm", "gpt", "distill.llm ('gpt') must name an llm.predictors entry"),
        ("distill.search_split_seed", 7, "distill.search_split_seed (7) is not in"),
        ("search.latency_target", "gpu", "search.latency_target ('gpu') must name"),
        ("search.methods", {"hat": BAD_METHOD}, "search.methods.hat.segments[0]: need start"),
    ],
)
def test_search_and_distill_cross_references_are_checked(path, value, message) -> None:
    config = _with(path, value)
    if path == "search.methods":
        config["search"]["run"] = ["hat"]
    with pytest.raises(ConfigError) as error:
        validate_config(config)
    assert message in str(error.value)


def test_partial_lts_mappings_keep_the_other_defaults() -> None:
    config = _with("lts", {"proxy_check": {"k": 4}, "selection": {"margin": 0.1}})
    lts = validate_config(config)["lts"]
    assert lts["proxy_check"]["k"] == 4 and lts["proxy_check"]["space"] == "lts-demo"
    assert lts["selection"] == {"margin": 0.1, "limit": 3, "heads": [2, 4]}
    assert lts["baseline"] == {"n_layer": 2, "d_model": 128, "d_inner": 256, "n_head": 4}


def test_more_demonstrations_than_train_archs_names_both_numbers():
    config = _with("tfs", {"num_archs": 6})
    with pytest.raises(ConfigError) as error:
        validate_config(config)
    message = str(error.value)
    assert "llm.demonstrations asks for 10 demonstrations" in message
    assert "has 2 demonstration architectures per split seed (tfs.num_archs 6" in message
    assert "distill.demonstrations asks for 10" in message
    config = _with("tfs", {"num_archs": 6})
    config["llm"] = {"demonstrations": [2]}
    config["distill"] = {"demonstrations": 2}
    assert validate_config(config)["tfs"]["num_archs"] == 6


def test_a_chain_needs_its_keys_in_the_file(tmp_path):
    lts_only = tmp_path / "lts.yaml"
    lts_only.write_text("experiment: x\nchains: [lts]\n")
    assert "data" in resolve_config([lts_only])  # defaults filled, nothing required
    mt = tmp_path / "mt.yaml"
    mt.write_text("experiment: x\n")
    with pytest.raises(ConfigError, match=r"missing required config key space \(the hsnas chain"):
        resolve_config([mt])


def test_resolve_merges_files_in_order_and_overrides_on_top(tmp_path):
    base, extra = tmp_path / "a.yaml", tmp_path / "b.yaml"
    base.write_text(
        "experiment: a\nspace: demo\ndata: {corpus: multi30k, source_lang: en, "
        "target_lang: de}\nsearch: {population: 20, parents: 4, mutations: 8, crossovers: 8}\n"
    )
    extra.write_text("search: {population: 21}\n")
    config = resolve_config([base, extra], {"search": {"parents": 5}})
    assert config["search"]["population"] == 21 and config["search"]["parents"] == 5
    assert config["experiment"] == "a" and config["search"]["mutations"] == 8


@pytest.mark.parametrize(
    ("section", "values", "message"),
    [
        (
            "search",
            {"population": 10, "parents": 20},
            "config key search: search.population (10) must equal parents + mutations",
        ),
        ("distill", {"mlp": {"step": 10}}, "config key distill.mlp: "),
    ],
)
def test_settings_only_a_job_checked_fail_at_validation(section, values, message):
    """What a job's settings class would reject later stops the run at validation."""
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate_config(_with(section, values))


@pytest.mark.parametrize(
    ("lts", "message"),
    [
        ({"space": "no-such-space"}, "config key lts.space: unknown LTS space 'no-such-space'"),
        ({"proxy_check": {"space": "nope"}}, "config key lts.proxy_check.space: unknown LTS"),
        ({"space": {"min_decoder_params": 5}}, "config key lts.space: space: unknown key(s)"),
        (
            {"search": {"populaton": 5}},
            "config key lts.search: unknown search setting(s): populaton",
        ),
        ({"measure": {"runz": 3}}, "config key lts.measure: unknown measure setting(s): runz"),
    ],
)
def test_lts_settings_fail_at_validation(lts, message):
    config = {"experiment": "x", "chains": ["lts"], "lts": lts}
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate_config(config)


@pytest.mark.parametrize("section", ["constraints", "methods"])
def test_search_names_used_in_paths_are_restricted(section):
    entry = (
        {"gflops": 1.0} if section == "constraints" else {"iterations": 2, "default": "supernet"}
    )
    config = _with("search", {section: {"a b;$(touch x)": entry}})
    with pytest.raises(ConfigError, match=f"config key search.{section}: 'a b;"):
        validate_config(config)

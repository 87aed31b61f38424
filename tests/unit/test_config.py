"""Config schema: defaults, and bad configs that fail with a message naming the key."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from nasflow.cli import main
from nasflow.config import config_hash, load_config, load_schema, read_yaml, validate_config
from nasflow.errors import ConfigError

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
    (_with("space", "hat-big"), "config key space: 'hat-big' is not one of"),
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

"""MT search spaces from files, mappings, `register_space`, entry points and `NASFLOW_SPACES`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import pytest
import yaml

from nasflow.cli import main
from nasflow.config.options import read_config
from nasflow.config.resolve import validate_config
from nasflow.core.errors import ConfigError
from nasflow.efficiency.counts import count_params
from nasflow.space.hat import SPACES, ArchError, get_space, tfs_sample
from nasflow.space.registry import (
    ENTRY_POINT_GROUP,
    SPACES_ENV,
    available_spaces,
    load_space_file,
    register_space,
    space_to_mapping,
    spaces_env_value,
)

SMALL = {
    "name": "small",
    "embed": [128, 96],
    "encoder_layers": [2],
    "decoder_layers": [2, 1],
    "ffn": [256, 192],
    "heads": [4, 2],
    "arbitrary_ende_attn": [-1, 1],
    "qkv_dim": 96,
}


@pytest.fixture(autouse=True)
def _registry():
    """Each test starts from the built-in spaces and leaves them so."""
    saved = dict(SPACES)
    yield
    SPACES.clear()
    SPACES.update(saved)


def write(path: Path, data: object) -> Path:
    path.write_text(yaml.safe_dump(data) if path.suffix != ".json" else json.dumps(data))
    return path


@pytest.mark.parametrize("name", ["demo", "hat-wmt", "hat-iwslt", "m30k"])
def test_a_file_equal_to_a_built_in_space_gives_the_same_architectures(tmp_path, name):
    builtin = SPACES[name]
    path = write(tmp_path / "space.json", space_to_mapping(builtin))
    loaded = load_space_file(path)
    assert loaded == builtin and loaded is not builtin
    assert get_space(str(path)) is builtin  # resolves to the registered one
    ids = [a.id for a in tfs_sample(builtin, 20, seed=3)]
    assert [a.id for a in tfs_sample(loaded, 20, seed=3)] == ids


def test_a_hand_written_demo_file_is_the_demo_space(tmp_path):
    text = """
space:
  name: demo
  embed: [160, 128]
  encoder_layers: 3
  decoder_layers: [3, 2, 1]
  ffn: [512, 384, 256]
  heads: [4, 2]
  qkv_dim: 128
"""
    (tmp_path / "demo.yaml").write_text(text)
    assert load_space_file(tmp_path / "demo.yaml") == SPACES["demo"]


def test_a_file_space_is_registered_and_its_archs_are_counted(tmp_path):
    path = write(tmp_path / "small.yaml", {**SMALL, "ffn": {"min": 192, "max": 256, "step": 64}})
    space = get_space(str(path))
    assert space.name == "small" and space.ffn_choices == (192, 256)
    assert space.latency_feature_scale == (128, 2, 256, 4, 128, 2, 256, 4, 4, 2)
    arch = space.sample_unique(1, seed=1)[0]
    assert arch.space == "small" and get_space("small") is space
    assert count_params(arch) > 0  # finds the space by the name the arch carries


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ffns": [1]}, r"small.yaml: unknown space key\(s\) ffns"),
        ({"ffn": [256, -3]}, "small.yaml: space key ffn: choices must be positive integers"),
        ({"ffn": [256, 256]}, "small.yaml: space key ffn: choices must not repeat"),
        ({"ffn": "wide"}, "small.yaml: space key ffn: expected an integer, a list"),
        ({"arbitrary_ende_attn": [0]}, r"space key arbitrary_ende_attn: choices must be among"),
        ({"arbitrary_ende_attn": [2]}, "arbitrary_ende_attn: 2 attends 3 encoder layers"),
        ({"heads": [5]}, r"small.yaml: space key heads: \[5\] do not divide qkv_dim \(96\)"),
        ({"qkv_dim": 0}, "small.yaml: space key qkv_dim must be a positive integer"),
        ({"share_embeddings": "yes"}, "space key share_embeddings must be true or false"),
        ({"latency_feature_scale": [1, 2]}, "space key latency_feature_scale must be 10"),
        ({"name": "a b"}, "small.yaml: space key name: a name of letters"),
        ({"base": "nope"}, "small.yaml: space key base: unknown search space 'nope'"),
    ],
)
def test_bad_space_files_name_the_file_and_key(tmp_path, change, message):
    path = write(tmp_path / "small.yaml", {**SMALL, **change})
    with pytest.raises((ConfigError, ArchError), match=message):
        load_space_file(path)


def test_missing_keys_and_files_are_named(tmp_path):
    data = {k: v for k, v in SMALL.items() if k != "heads"}
    with pytest.raises(ConfigError, match=r"small\.yaml: space key heads is missing"):
        load_space_file(write(tmp_path / "small.yaml", data))
    with pytest.raises(ConfigError, match=r"nothere\.yaml: space file not found"):
        get_space(str(tmp_path / "nothere.yaml"))
    (tmp_path / "broken.yaml").write_text("name: x\nembed: [1, 2\n")
    with pytest.raises(ConfigError, match=r"broken.yaml:\d+: invalid YAML/JSON"):
        load_space_file(tmp_path / "broken.yaml")


def test_base_overrides_only_what_the_file_gives(tmp_path):
    path = write(tmp_path / "wide.yaml", {"base": "demo", "name": "demo-wide", "ffn": [768, 512]})
    space = load_space_file(path)
    assert space.ffn_choices == (768, 512) and space.embed_choices == SPACES["demo"].embed_choices
    assert space.latency_feature_scale == SPACES["demo"].latency_feature_scale


def test_register_space_refuses_a_taken_name_with_other_choices():
    small = register_space("small", SMALL)
    assert register_space("small", dict(SMALL)) is small  # the same again: a no-op
    assert "small" in available_spaces()
    with pytest.raises(ArchError, match="'small' is taken by another registered space"):
        register_space("small", {**SMALL, "ffn": [256]})
    with pytest.raises(ArchError, match="'demo' is taken by a built-in space"):
        register_space("demo", small)
    renamed = register_space("tiny2", small)  # a space takes the name it is registered under
    assert renamed.name == "tiny2" and renamed.ffn_choices == small.ffn_choices


def test_entry_points_ship_spaces(tmp_path, monkeypatch):
    (tmp_path / "shipped_spaces.py").write_text(
        f"SMALL = {SMALL!r}\n\ndef make():\n    return {{**SMALL, 'ffn': [256]}}\nBAD = 3\n"
    )
    dist = tmp_path / "shipped_spaces-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: shipped-spaces\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\nsmall = shipped_spaces:SMALL\nsmall-ffn = shipped_spaces:make\n"
        "bad = shipped_spaces:BAD\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert {"small", "small-ffn", "bad"} <= set(available_spaces())
    assert get_space("small").name == "small" and "small" in SPACES
    assert get_space("small-ffn").ffn_choices == (256,)
    with pytest.raises(ArchError, match=r"entry point bad = shipped_spaces:BAD \(nasflow.spaces\)"):
        get_space("bad")


def test_nasflow_spaces_lets_other_processes_find_a_space_by_name(tmp_path):
    path = write(tmp_path / "small.yaml", SMALL)
    get_space(str(path))
    value = spaces_env_value()
    assert value is not None and json.loads(value)[0]["name"] == "small"
    code = "from nasflow.space.hat import get_space; print(get_space('small').ffn_choices)"
    for env_value in (value, str(path)):  # the workflow's JSON, or a user's file list
        env = {**os.environ, SPACES_ENV: env_value}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        assert out.stdout.strip() == "(256, 192)", out.stderr


def test_config_space_file_is_resolved_to_its_definition(tmp_path):
    path = write(tmp_path / "small.yaml", SMALL)
    config = validate_config({"experiment": "x", "space": str(path), "chains": ["lts"]})
    assert config["space"] == {**space_to_mapping(SPACES["small"])}
    with pytest.raises(ConfigError, match=r"config key space: .*nothere\.yaml: space file not"):
        validate_config({"experiment": "x", "space": str(tmp_path / "nothere.yaml")})
    # A job receives the definition and reads the space by its name.
    sections = ("seed", "space")
    args = Namespace(
        config_json=json.dumps({"space": config["space"]}), config=None, config_sections=sections
    )
    assert read_config(args)["space"] == "small"


def test_cli_samples_and_shows_a_space_file(tmp_path, capsys):
    path = write(tmp_path / "small.yaml", SMALL)
    out = tmp_path / "archs.jsonl"
    assert main(["space", "sample", "--space", str(path), "--n", "3", "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 3 and {row["arch"]["space"] for row in rows} == {"small"}
    capsys.readouterr()
    assert main(["space", "show", "--space", str(path)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["name"] == "small" and shown["super_dims"]["qkv_dim"] == 96

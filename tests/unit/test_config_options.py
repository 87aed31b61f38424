"""`--config` / `--config-json` with declared sections: a command reads exactly its sections,
validated once, and the same values whichever way the config arrives."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import yaml

from nasflow.cli import build_parser
from nasflow.config.options import BASE_SECTIONS, add_config_options, read_config
from nasflow.config.resolve import resolve_config
from nasflow.core.errors import ConfigError

SECTIONS = (*BASE_SECTIONS, "train", "evaluate", "distill.mlp")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    add_config_options(parser, sections=SECTIONS)
    return parser


def test_config_json_with_an_undeclared_section_is_refused_naming_it() -> None:
    args = _parser().parse_args(["--config-json", json.dumps({"seed": 1, "search": {}})])
    with pytest.raises(ConfigError, match=r"--config-json: config key\(s\) search are not read"):
        read_config(args)


def test_config_json_with_an_undeclared_entry_is_refused_naming_it() -> None:
    text = json.dumps({"distill": {"mlp": {}, "num_archs": 10}})
    with pytest.raises(ConfigError, match=r"distill\.num_archs are not read"):
        read_config(_parser().parse_args(["--config-json", text]))


def test_config_json_is_validated_once_with_defaults_filled_in() -> None:
    config = read_config(
        _parser().parse_args(["--config-json", '{"experiment": "t", "train": {"lr": 0.5}}'])
    )
    assert config["train"]["lr"] == 0.5
    assert config["train"]["max_tokens"] == 4096  # the schema's default
    assert set(config) <= {key.partition(".")[0] for key in SECTIONS}
    with pytest.raises(ConfigError, match="train"):
        read_config(
            _parser().parse_args(["--config-json", '{"experiment": "t", "train": {"lr": "fast"}}'])
        )


def test_a_config_file_and_its_slice_give_the_command_the_same_values(tmp_path: Path) -> None:
    path = tmp_path / "experiment.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "experiment": "opts",
                "space": "demo",
                "data": {"corpus": "multi30k", "source_lang": "en", "target_lang": "de"},
                "train": {"max_updates": 10, "warmup_updates": 2},
                "distill": {"mlp": {"steps": 7}},
            }
        )
    )
    from_file = read_config(_parser().parse_args(["--config", str(path)]))
    full = resolve_config([path])
    sliced = {key: full[key] for key in ("seed", "space", "threads", "model", "train", "evaluate")}
    sliced["distill"] = {"mlp": full["distill"]["mlp"]}
    sliced["experiment"] = full["experiment"]
    assert from_file == sliced
    from_json = read_config(_parser().parse_args(["--config-json", json.dumps(sliced)]))
    assert from_json == from_file


def test_every_config_reading_command_declares_its_sections() -> None:
    parser = build_parser()
    for argv in (
        ["arch", "score", "--model", "m", "--data", "d", "--out", "o"],
        ["supernet", "quality", "--model", "m", "--data", "d", "--scores", "s", "--out", "o"],
        ["distill", "train", "--dataset", "d", "--out", "o"],
        ["latency", "dataset", "--out", "o"],
        [
            "search",
            "run",
            "--method",
            "hat",
            "--constraint",
            "c",
            "--seed",
            "1",
            "--data",
            "d",
            "--out",
            "o",
            "--state-root",
            "s",
        ],
    ):
        args = parser.parse_args(argv)
        assert args.config_sections, argv

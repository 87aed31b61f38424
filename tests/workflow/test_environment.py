"""The conda environment of `--sdm conda` pins every dependency nasflow declares, within range."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]


def conda_pins() -> dict[str, Version]:
    environment = yaml.safe_load((REPO / "envs" / "nasflow.yaml").read_text())
    pip = next(item["pip"] for item in environment["dependencies"] if isinstance(item, dict))
    pins = {}
    for line in pip:
        if line.startswith("-"):
            continue
        requirement = Requirement(line)
        (spec,) = requirement.specifier
        assert spec.operator == "==", f"envs/nasflow.yaml: {line} is not pinned with =="
        pins[requirement.name.lower()] = Version(spec.version)
    return pins


def test_every_declared_dependency_is_pinned_within_its_range():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = conda_pins()
    for line in project["dependencies"]:
        requirement = Requirement(line)
        name = requirement.name.lower()
        assert name in pins, f"envs/nasflow.yaml does not pin {name}"
        assert requirement.specifier.contains(pins[name]), (line, str(pins[name]))


def test_the_environment_installs_this_checkout_and_python_311():
    environment = yaml.safe_load((REPO / "envs" / "nasflow.yaml").read_text())
    assert "python=3.11" in environment["dependencies"]
    pip = next(item["pip"] for item in environment["dependencies"] if isinstance(item, dict))
    assert "-e .." in pip and pip[0] == "torch==2.13.0"

"""LICENSE and CITATION.cff agree with pyproject.toml; the citation holds the method papers."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def test_license_is_the_declared_mit_license() -> None:
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert _project()["license"] == "MIT" and text.startswith("MIT License\n")
    assert "Permission is hereby granted, free of charge" in text


def test_citation_parses_with_the_required_keys() -> None:
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    for key in ("cff-version", "message", "title", "authors"):  # required by CFF 1.2.0
        assert cff.get(key), key
    assert cff["cff-version"] == "1.2.0" and cff["type"] == "software"
    assert cff["version"] == _project()["version"] and cff["license"] == _project()["license"]
    papers = {ref["title"].split(":")[0]: ref for ref in cff["references"]}
    expected = {"LLM Performance Predictors are good initializers for Architecture Search": 2024,
                "HAT": 2020, "LiteTransformerSearch": 2022}  # fmt: skip
    assert {title: ref["year"] for title, ref in papers.items()} == expected
    for ref in papers.values():
        assert ref["type"] and ref["authors"] and ref["collection-title"]
    first_authors = [ref["authors"][0]["family-names"] for ref in cff["references"]]
    assert first_authors == ["Jawahar", "Wang", "Javaheripi"]

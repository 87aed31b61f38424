"""The paper-settings table (config/paper-settings.md) holds for every shipped paper config."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from nasflow.config.resolve import resolve_config

REPO = Path(__file__).resolve().parents[2]
TABLE = REPO / "config" / "paper-settings.md"
GROUPS = {"WMT": ("wmt14_en_de", "wmt14_en_fr", "wmt19_en_de")}


def table_rows() -> list[dict[str, str]]:
    """The table's rows as {setting, source, configs, key, value} (backticks stripped)."""
    lines = [
        line for line in TABLE.read_text(encoding="utf-8").splitlines() if line.startswith("|")
    ]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    rows = []
    for line in lines[2:]:
        cells = [cell.strip().strip("`") for cell in line.strip().strip("|").split("|")]
        rows.append(dict(zip(header, cells, strict=True)))
    return rows


def lookup(config: dict, key: str):
    value = config
    for part in key.split("."):
        assert isinstance(value, dict) and part in value, f"no config key {key}"
        value = value[part]
    return value


ROWS = table_rows()


def test_the_table_covers_the_paper_configs():
    assert len(ROWS) >= 40
    configs = {name for row in ROWS for name in GROUPS.get(row["configs"], [row["configs"]])}
    assert configs >= {"wmt14_en_de", "wmt14_en_fr", "wmt19_en_de", "lts_text_prediction"}


@pytest.mark.parametrize("row", ROWS, ids=[f"{r['configs']}:{r['key']}" for r in ROWS])
def test_shipped_configs_hold_the_paper_setting(row):
    expected = yaml.safe_load(row["value"])
    for name in GROUPS.get(row["configs"], row["configs"].split(",")):
        config = resolve_config([REPO / "config" / f"{name.strip()}.yaml"])
        assert lookup(config, row["key"]) == expected, (name, row["setting"])

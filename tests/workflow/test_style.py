"""Style gates that `make lint` runs, enforced in CI: ruff (lint and format) and snakefmt."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", "src", "tests", "bench"],
        ["ruff", "format", "--check", "src", "tests", "bench"],
        ["snakefmt", "--check", "Snakefile", "workflow"],
    ],
    ids=["ruff-check", "ruff-format", "snakefmt"],
)
def test_style_is_clean(command):
    result = subprocess.run(
        [str(BIN / command[0]), *command[1:]], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


# Rules that only gather tables or copy small files may skip `benchmark:`; every other rule
# that runs a command records its time and memory.
CHEAP_RULES = {
    "table1_baselines",
    "search_tables",
    "table15_tables",
    "tfs_eval",
    "llm_pp_evaluate",
    "results_page",
}


def test_every_rule_logs_and_expensive_rules_are_benchmarked():
    rules = {}
    for path in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        text = path.read_text()
        for match in re.finditer(r"^( *)rule (\w+):\n(.*?)(?=^ *rule |\Z)", text, re.S | re.M):
            rules[match.group(2)] = match.group(3)
    commands = {name: body for name, body in rules.items() if "shell:" in body}
    assert len(commands) >= 20, sorted(commands)
    for name, body in commands.items():
        assert "log:" in body, f"rule {name} has no log:"
        if name not in CHEAP_RULES:
            assert "benchmark:" in body, f"rule {name} has no benchmark:"

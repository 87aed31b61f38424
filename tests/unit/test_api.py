"""The documented Python API: every name of `nasflow.api` loads, and the README's example runs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import nasflow.api as api

DOC = Path(__file__).resolve().parents[2] / "README.md"


def python_blocks(markdown: str) -> list[str]:
    """The ```python blocks of a markdown text, in order."""
    return re.findall(r"^```python\n(.*?)^```$", markdown, flags=re.DOTALL | re.MULTILINE)


def test_every_api_name_loads_and_is_listed_in_the_docstring():
    for name in api.__all__:
        assert getattr(api, name) is not None
        assert f"`{name}" in api.__doc__, name


def test_importing_the_api_does_not_import_torch():
    code = "import sys, nasflow.api; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_readme_example_runs_as_written():
    blocks = python_blocks(DOC.read_text(encoding="utf-8"))
    example = blocks[0]
    assert len(example.strip().splitlines()) <= 30
    out = subprocess.run(
        [sys.executable, "-c", example], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    arch_id, score, arch = out.stdout.strip().split(" ", 2)
    assert re.fullmatch(r"[0-9a-f]{12}", arch_id) and float(score) > 0
    assert "'decoder_layer_num': 1" in arch or "'decoder_layer_num': 2" in arch  # the constraint

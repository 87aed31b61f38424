"""One logging format on standard error; progress lines (not bars) when it is not a terminal."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from nasflow.cli import main
from nasflow.core import logs
from nasflow.core.logs import progress, setup_logging

SRC = Path(__file__).resolve().parents[2] / "src" / "nasflow"
LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (INFO|WARNING) [\w.]+: .+$")


def test_one_format_one_handler(capsys) -> None:
    setup_logging("INFO")
    setup_logging("INFO")  # idempotent: still one line per record
    logging.getLogger("nasflow.some.module").info("hello %d", 1)
    logging.getLogger("httpx").info("chatter of another library")
    logging.getLogger("httpx").warning("a warning of another library")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2 and all(LINE.match(line) for line in lines), lines
    assert lines[0].endswith("INFO nasflow.some.module: hello 1")


def test_progress_lines_without_carriage_returns(capsys, monkeypatch) -> None:
    setup_logging("INFO")
    monkeypatch.setattr(logs, "stderr_is_terminal", lambda: False)
    with progress(3, "toy loop", unit="arch", every_s=0.0) as bar:
        for _ in range(3):
            bar.update()
        bar.set_postfix(loss="0.5")
    err = capsys.readouterr().err
    assert "\r" not in err and all(LINE.match(line) for line in err.splitlines())
    assert "toy loop: 1/3 arch (33%)" in err and "toy loop: 3/3 arch (100%)" in err
    assert err.splitlines()[-1].endswith("loss=0.5")
    with progress(10, "quiet", every_s=3600.0) as bar:  # only the final line
        bar.set_progress(7)
    assert capsys.readouterr().err.count("quiet: 7/10") == 1
    with progress(3, "off", disable=True) as bar:
        bar.update(3)
    assert capsys.readouterr().err == ""


def test_progress_bar_on_a_terminal(capsys, monkeypatch) -> None:
    monkeypatch.setattr(logs, "stderr_is_terminal", lambda: True)
    with progress(2, "bar loop") as bar:
        bar.update(2)
    assert "bar loop" in capsys.readouterr().err and type(bar).__name__ == "_Bar"


def test_log_level_flag(capsys) -> None:
    argv = ["lts", "space", "--space", "lts-demo", "--sample", "1"]
    assert main(argv) == 0
    assert "WARNING nasflow.cli: --sample is deprecated" in capsys.readouterr().err
    assert main(["--log-level", "ERROR", *argv]) == 0
    assert capsys.readouterr().err == ""
    setup_logging("INFO")


@pytest.mark.parametrize(
    "pattern", [r"\btqdm\b", r"print\([^)]*sys\.stderr", r"sys\.stderr\.write"]
)
def test_no_hand_made_logging_left(pattern: str) -> None:
    """tqdm only behind `progress`; standard error written only by logging (and the one-line
    error of the entry point)."""
    allowed = {SRC / "core" / "logs.py", SRC / "cli" / "__init__.py"}
    found = [
        str(path.relative_to(SRC))
        for path in SRC.rglob("*.py")
        if path not in allowed and re.search(pattern, path.read_text(encoding="utf-8"))
    ]
    assert not found, found

"""Check that an HTML report renders: headless Chromium loads it, screenshots it and dumps the DOM.

Snakemake's report is a single-file JavaScript application, so the HTML text alone says little:
the check lets the page's scripts run (a virtual-time budget), then requires a screenshot that is
not blank and a rendered DOM that holds the expected texts (e.g. the result categories).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from nasflow.core.errors import NasflowError

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# Flags for a closed network: no background connections, no first-run or update traffic.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


class RenderError(NasflowError):
    """The report did not render (no browser, a blank page, or missing content)."""


@dataclass
class RenderResult:
    """What the browser produced: the screenshot, its ink statistics and the rendered text."""

    screenshot: Path
    width: int
    height: int
    distinct_colors: int
    ink_fraction: float
    dom_chars: int
    found: list[str] = field(default_factory=list)


def find_chromium(explicit: str | None = None) -> str | None:
    """The browser to use: `explicit`, $NASFLOW_CHROMIUM, or the first Chromium on PATH."""
    for candidate in (explicit, os.environ.get("NASFLOW_CHROMIUM"), *CHROMIUM_NAMES):
        if candidate and (path := shutil.which(candidate)):
            return path
    return None


def _run_chromium(browser: str, args: list[str], timeout: float) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="nasflow-chromium-") as profile:
        cmd = [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise RenderError(f"{browser}: no answer within {timeout:.0f} s") from None


def visible_markup(dom: str) -> str:
    """The rendered DOM without scripts and styles (the report embeds its data in scripts, so
    only what the page's code rendered counts)."""
    return re.sub(r"<(script|style)\b.*?</\1>", "", dom, flags=re.DOTALL | re.IGNORECASE)


def image_ink(png: Path) -> tuple[int, int, int, float]:
    """(width, height, distinct colours, fraction of pixels that are not the background)."""
    from PIL import Image  # matplotlib's dependency

    with Image.open(png) as image:
        rgb = image.convert("RGB")
        width, height = rgb.size
        colors = rgb.getcolors(maxcolors=width * height) or []
    if not colors:
        return width, height, 0, 0.0
    background = max(colors)[0]
    return width, height, len(colors), 1.0 - background / (width * height)


def check_report(
    report: Path,
    screenshot: Path,
    *,
    expect: list[str] | None = None,
    browser: str | None = None,
    width: int = 1400,
    height: int = 1000,
    budget_ms: int = 15000,
    timeout: float = 180.0,
    min_ink: float = 0.01,
) -> RenderResult:
    """Render `report` headless, write `screenshot` (PNG) and check it; raise RenderError."""
    report = Path(report).resolve()
    if not report.is_file():
        raise RenderError(f"{report}: no such report (build it with snakemake --report)")
    path = find_chromium(browser)
    if path is None:
        raise RenderError(
            "no Chromium found (install Debian's chromium, or set NASFLOW_CHROMIUM to a browser)"
        )
    url = report.as_uri()
    common = [f"--window-size={width},{height}", f"--virtual-time-budget={budget_ms}"]
    screenshot = Path(screenshot).resolve()
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    partial = screenshot.with_name(screenshot.name + ".part.png")
    shot = _run_chromium(path, [*common, f"--screenshot={partial}", url], timeout)
    if not partial.is_file():
        raise RenderError(f"{path} wrote no screenshot of {report}: {shot.stderr.strip()[-500:]}")
    dom = visible_markup(_run_chromium(path, [*common, "--dump-dom", url], timeout).stdout)
    w, h, colors, ink = image_ink(partial)
    if ink < min_ink or colors < 8:
        partial.unlink()
        raise RenderError(
            f"{report}: the rendered page is blank ({colors} colours, {ink:.2%} non-background)"
        )
    missing = [text for text in expect or [] if text not in dom]
    if missing:
        partial.unlink()
        raise RenderError(f"{report}: the rendered page lacks {', '.join(map(repr, missing))}")
    partial.replace(screenshot)
    return RenderResult(screenshot, w, h, colors, ink, len(dom), list(expect or []))

"""Check that an HTML report renders: headless Chromium loads it, screenshots it and dumps the DOM.

Snakemake's report is a single-file JavaScript application, so the HTML text alone says little:
the check lets the page's scripts run (a virtual-time budget), then requires a screenshot that is
not blank and a rendered DOM that holds the expected texts (e.g. the result categories) and,
with `results`, the results page's content: its winner table with at least one row and its plots,
each a PNG that decodes (`nasflow.report.results_page`; the report's landing page includes it).
"""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from html.parser import HTMLParser
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
    winner_rows: int = 0
    plots: list[tuple[int, int]] = field(default_factory=list)


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


class _ResultsContent(HTMLParser):
    """The winner table's body rows and the plot images (PNG data URIs) of a rendered DOM."""

    def __init__(self, table_id: str, plot_class: str) -> None:
        super().__init__()
        self.table_id, self.plot_class = table_id, plot_class
        self.in_table = self.in_body = self.in_plot = 0
        self.tables = self.rows = 0
        self.images: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = dict(attrs)
        if tag == "table" and attr.get("id") == self.table_id:
            self.in_table, self.tables = 1, self.tables + 1
        elif tag == "tbody" and self.in_table:
            self.in_body = 1
        elif tag == "tr" and self.in_body:
            self.rows += 1
        elif tag == "figure" and self.plot_class in (attr.get("class") or "").split():
            self.in_plot = 1
        elif tag == "img" and self.in_plot:
            self.images.append(attr.get("src") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self.in_table = self.in_body = 0
        elif tag == "tbody":
            self.in_body = 0
        elif tag == "figure":
            self.in_plot = 0


def results_content(dom: str, source: str = "the page") -> tuple[int, list[tuple[int, int]]]:
    """(winner-table rows, (width, height) of each plot) of the results page in `dom`;
    RenderError when the table is missing or empty, no plot is there or a plot does not decode.
    """
    from PIL import Image

    from nasflow.report.results_page import PLOT_CLASS, WINNERS_ID

    parser = _ResultsContent(WINNERS_ID, PLOT_CLASS)
    parser.feed(dom)
    if not parser.tables or not parser.rows:
        raise RenderError(
            f"{source}: the rendered page has no winner table (table#{WINNERS_ID} rows)"
        )
    if not parser.images:
        raise RenderError(f"{source}: the rendered page has no plots (figure.{PLOT_CLASS} img)")
    sizes = []
    prefix = "data:image/png;base64,"
    for k, src in enumerate(parser.images, 1):
        try:
            if not src.startswith(prefix):
                raise ValueError("not an embedded PNG")
            with Image.open(io.BytesIO(base64.b64decode(src[len(prefix) :]))) as image:
                image.load()
                sizes.append(image.size)
        except (ValueError, OSError) as error:
            raise RenderError(f"{source}: plot {k} does not decode ({error})") from None
    return parser.rows, sizes


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
    results: bool = False,
    browser: str | None = None,
    width: int = 1400,
    height: int = 1000,
    budget_ms: int = 15000,
    timeout: float = 180.0,
    min_ink: float = 0.01,
) -> RenderResult:
    """Render `report` headless, write `screenshot` (PNG) and check it (with `results`: the
    results page's winner table and plots too); raise RenderError."""
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
    rows, plots = 0, []
    if results:
        try:
            rows, plots = results_content(dom, str(report))
        except RenderError:
            partial.unlink()
            raise
    partial.replace(screenshot)
    return RenderResult(screenshot, w, h, colors, ink, len(dom), list(expect or []), rows, plots)

"""The report render check: ink statistics, visible DOM, and a real headless Chromium run."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from nasflow.report.render_check import (
    RenderError,
    check_report,
    find_chromium,
    image_ink,
    visible_markup,
)

needs_chromium = pytest.mark.skipif(
    find_chromium() is None, reason="no Chromium on this machine (apt-get install chromium)"
)


def test_image_ink_tells_a_blank_page_from_a_drawn_one(tmp_path):
    blank = tmp_path / "blank.png"
    Image.new("RGB", (200, 100), "white").save(blank)
    assert image_ink(blank) == (200, 100, 1, 0.0)
    drawn = tmp_path / "drawn.png"
    image = Image.new("RGB", (200, 100), "white")
    ImageDraw.Draw(image).rectangle((0, 0, 99, 49), fill="black")
    image.save(drawn)
    width, height, colors, ink = image_ink(drawn)
    assert (width, height, colors) == (200, 100, 2)
    assert ink == pytest.approx(0.25)


def test_visible_markup_drops_scripts_and_styles():
    dom = '<html><style>p{}</style><p>Tables</p><script type="x">{"secret":1}</script></html>'
    assert visible_markup(dom) == "<html><p>Tables</p></html>"


def test_a_missing_report_is_named(tmp_path):
    with pytest.raises(RenderError, match="no such report"):
        check_report(tmp_path / "none.html", tmp_path / "shot.png")


def test_no_browser_is_a_clear_error(tmp_path, monkeypatch):
    page = tmp_path / "page.html"
    page.write_text("<p>x</p>")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("NASFLOW_CHROMIUM", raising=False)
    with pytest.raises(RenderError, match="no Chromium found"):
        check_report(page, tmp_path / "shot.png")


def _page(path: Path, body: str) -> Path:
    path.write_text(f"<!doctype html><html><body>{body}</body></html>")
    return path


@needs_chromium
def test_chromium_renders_what_scripts_draw_and_refuses_a_blank_page(tmp_path):
    # The table is written by a script, as Snakemake's report app writes its pages.
    script = (
        "<script>document.body.innerHTML = '<h1 style=\"font-size:64px\">Search tables</h1>'"
        " + '<table border=1>' + '<tr><td>HAT</td><td>23.1</td></tr>'.repeat(12)"
        " + '</table>';</script>"
    )
    page = _page(tmp_path / "report.html", script)
    shot = tmp_path / "out" / "report.png"
    result = check_report(page, shot, expect=["Search tables", "HAT"], width=800, height=600)
    assert shot.is_file() and (result.width, result.height) == (800, 600)
    assert result.ink_fraction > 0.01 and result.distinct_colors >= 8
    with pytest.raises(RenderError, match="lacks 'Pareto'"):
        check_report(page, tmp_path / "second.png", expect=["Pareto"], width=800, height=600)
    assert not (tmp_path / "second.png").exists()
    blank = _page(tmp_path / "blank.html", "")
    with pytest.raises(RenderError, match="blank"):
        check_report(blank, tmp_path / "blank.png", width=800, height=600)
    assert not list(tmp_path.glob("blank.png*"))

"""`nasflow report results-page`: the HTML results page; `nasflow report check`: render the
Snakemake report (or the results page) in headless Chromium and check it."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from nasflow.report.render_check import check_report, find_chromium

logger = logging.getLogger(__name__)


def _cmd_results_page(args: argparse.Namespace) -> int:
    from nasflow.report.results_page import page_inputs, write_page

    inputs = page_inputs(
        args.experiment,
        runs=args.runs,
        supernet_curve=args.supernet_curve,
        tfs_curve=args.tfs_curve,
        supernet_quality=args.supernet_quality,
        table=args.table,
        figure=args.figure,
    )
    out = write_page(inputs, args.out)
    logger.info(
        f"{out}: {len(inputs.runs)} searches, {len(inputs.tables)} tables, "
        f"{len(inputs.figures)} figures"
    )
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    if args.skip_without_browser and find_chromium(args.browser) is None:
        logger.info(
            f"{args.report}: not checked: no Chromium found (install chromium, or set "
            "NASFLOW_CHROMIUM)"
        )
        return 0
    result = check_report(
        Path(args.report),
        Path(args.screenshot),
        expect=args.expect,
        results=args.results,
        browser=args.browser,
        width=args.width,
        height=args.height,
    )
    print(
        f"{args.report}: rendered {result.width}x{result.height}, {result.distinct_colors} "
        f"colours, {result.ink_fraction:.1%} non-background, {result.dom_chars} DOM chars; "
        f"screenshot {result.screenshot}"
        + (
            f"; winner table {result.winner_rows} rows, {len(result.plots)} plots"
            if args.results
            else ""
        )
    )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `nasflow report results-page` and `nasflow report check`."""
    parser = subparsers.add_parser("report", help="the results page and the report check")
    sub = parser.add_subparsers(dest="report_command", required=True)
    page = sub.add_parser(
        "results-page",
        help="one HTML page: what was run, the winners, every table and plot",
    )
    page.add_argument("--experiment", required=True)
    page.add_argument("--out", type=Path, required=True, metavar="RESULTS.html")
    page.add_argument("--runs", nargs="*", default=[], metavar="DIR", help="search run folders")
    page.add_argument(
        "--supernet-curve", action="append", metavar="LABEL=CURVE.csv", help="a supernet's curve"
    )
    page.add_argument(
        "--tfs-curve", action="append", type=Path, metavar="CURVE.csv",
        help="a TFS-Eval architecture's training curve (grey in the training plot)",
    )  # fmt: skip
    page.add_argument("--supernet-quality", type=Path, metavar="SUPERNET_QUALITY.json")
    page.add_argument(
        "--table", action="append", metavar="TITLE=TABLE.csv",
        help="a table (its .md sibling's prose becomes the note)",
    )  # fmt: skip
    page.add_argument("--figure", action="append", metavar="TITLE=PLOT.png")
    page.set_defaults(func=_cmd_results_page)
    check = sub.add_parser(
        "check", help="render the report in headless Chromium, screenshot it, check the content"
    )
    check.add_argument("--report", default="report.html")
    check.add_argument("--screenshot", default="report.png")
    check.add_argument(
        "--expect", action="append", default=None, help="text the rendered page must hold"
    )
    check.add_argument(
        "--results", action="store_true",
        help="require the results page's winner table and plots in the rendered page",
    )  # fmt: skip
    check.add_argument(
        "--skip-without-browser", action="store_true",
        help="exit 0, saying so, when no Chromium is found (the demo's check)",
    )  # fmt: skip
    check.add_argument("--browser", default=None, help="browser binary (default: Chromium)")
    check.add_argument("--width", type=int, default=1400)
    check.add_argument("--height", type=int, default=1000)
    check.set_defaults(func=_cmd_check)

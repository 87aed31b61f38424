"""`nasflow report check`: render the Snakemake report in headless Chromium and check it."""

from __future__ import annotations

import argparse
from pathlib import Path

from nasflow.report.render_check import check_report


def _cmd_check(args: argparse.Namespace) -> int:
    result = check_report(
        Path(args.report),
        Path(args.screenshot),
        expect=args.expect,
        browser=args.browser,
        width=args.width,
        height=args.height,
    )
    print(
        f"{args.report}: rendered {result.width}x{result.height}, {result.distinct_colors} "
        f"colours, {result.ink_fraction:.1%} non-background, {result.dom_chars} DOM chars; "
        f"screenshot {result.screenshot}"
    )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `nasflow report check`."""
    parser = subparsers.add_parser("report", help="checks of the Snakemake HTML report")
    sub = parser.add_subparsers(dest="report_command", required=True)
    check = sub.add_parser(
        "check", help="render the report in headless Chromium, screenshot it, check the content"
    )
    check.add_argument("--report", default="report.html")
    check.add_argument("--screenshot", default="report.png")
    check.add_argument(
        "--expect", action="append", default=None, help="text the rendered page must hold"
    )
    check.add_argument("--browser", default=None, help="browser binary (default: Chromium)")
    check.add_argument("--width", type=int, default=1400)
    check.add_argument("--height", type=int, default=1000)
    check.set_defaults(func=_cmd_check)

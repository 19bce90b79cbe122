"""`monitor figures` and `monitor report`: a visa's figures over the years, and the shareable HTML report."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from monitor.commands import db_path, load
from monitor.config import ConfigError, find_config_path
from monitor.output import FORMATS, write_rows
from storage import open_readonly

FIGURE_FORMATS = (*FORMATS, "vega")
REPORT_DAYS = 30
"""What `monitor report` covers when --since is not given."""


def register(subparsers: argparse._SubParsersAction) -> None:
    figures = subparsers.add_parser("figures", help="a visa's figures over the years, one row per fact")
    figures.add_argument("--visa", metavar="ID", required=True, help="visa id such as JP:HSP, or JP:* for a country")
    figures.add_argument("--unit", metavar="U", help="only figures in this unit (count, percent, KRW, ...)")
    figures.add_argument("--metric", metavar="M",
                         help="only figures that count this (recognitions, quota, salary_threshold, ...)")
    figures.add_argument("--since", metavar="YEAR", type=_year, help="only figures for this year or later")
    figures.add_argument("--format", choices=FIGURE_FORMATS, default="table",
                         help="table, json, csv, or vega (a Vega-Lite spec with the data inlined)")
    figures.set_defaults(handler=handle_figures)

    report = subparsers.add_parser("report", help="write a self-contained HTML report of recent news")
    report.add_argument("--since", metavar="DATE", type=_iso_date,
                        help=f"start of the period, YYYY-MM-DD (default: {REPORT_DAYS} days ago)")
    report.add_argument("--out", metavar="FILE", type=Path, default=Path("report.html"),
                        help="where to write the HTML (default: report.html)")
    report.set_defaults(handler=handle_report)


def handle_figures(args: argparse.Namespace) -> int:
    from monitor.alerts import expand_visa, visa_id_problem
    from monitor.analyst.figures import build_timeline, chart_with_data, timeline_chart_values, timeline_table
    from pipelines.tagging import Tagger
    from storage.analyst import figure_rows

    tagger = Tagger.load(_taxonomy_files(args))
    problem = visa_id_problem(args.visa, tagger)
    if problem:
        raise ConfigError(f"--visa: {problem}")
    conn = open_readonly(db_path(args))
    timeline = build_timeline(figure_rows(conn, expand_visa(args.visa, tagger), args.unit, args.since, args.metric))
    conn.close()
    if args.format == "vega":
        spec = chart_with_data("figure_timeline", timeline_chart_values(timeline),
                               title=f"{args.visa} figures by year")
        json.dump(spec, sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
        return 0
    columns, rows = timeline_table(timeline, args.format)
    write_rows(columns, rows, args.format)
    if not rows and args.format == "table":
        print(f"no figures with a year for {args.visa}" + (f" in unit {args.unit!r}" if args.unit else ""),
              file=sys.stderr)
    return 0


def handle_report(args: argparse.Namespace) -> int:
    from monitor.analyst.report import write_report

    since = args.since or (datetime.now(UTC).date() - timedelta(days=REPORT_DAYS)).isoformat()
    conn = open_readonly(db_path(args))
    try:
        summary = write_report(conn, since, args.out, taxonomy_files=_taxonomy_files(args))
        newest = conn.execute("SELECT max(substr(coalesce(published_at, fetched_at), 1, 10)) FROM articles"
                              ).fetchone()[0]
    except OSError as exc:
        raise ConfigError(f"cannot write {args.out}: {exc.strerror or exc}") from None
    finally:
        conn.close()
    print(f"wrote {args.out}: {summary}", file=sys.stderr)
    if newest and newest < since:
        print(f"monitor: no article is dated since {since}; the newest is dated {newest} (see --since)",
              file=sys.stderr)
    return 0


def _taxonomy_files(args: argparse.Namespace) -> tuple[Path, ...]:
    """The config's extra taxonomy files; with --db and no config file at all, the bundled taxonomy alone."""
    if args.db and not find_config_path(args.config).exists():
        return ()
    return tuple(load(args).taxonomy_files)


def _iso_date(text: str) -> str:
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date like 2025-03-01, got {text!r}") from None


def _year(text: str) -> int:
    if not (text.isdigit() and len(text) == 4):
        raise argparse.ArgumentTypeError(f"expected a year like 2015, got {text!r}")
    return int(text)

"""`monitor sources`: the health of every configured source at a glance;
`monitor sources check NAME`: what one source would give a crawl, stored nowhere."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from monitor.commands import load
from monitor.health import assess_sources
from monitor.output import write_rows
from storage import open_readonly, utc_now
from storage.queries import source_health_rows
from storage.target import is_database_url

COLUMNS = ("name", "status", "last_success", "last_error", "new_7d", "new_30d", "next_due")
CHECK_COLUMNS = ("store", "published_at", "title", "url", "why")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("sources", help="show the health of every source")
    parser.add_argument("--format", choices=("table", "json"), default="table")
    parser.set_defaults(handler=handle)
    actions = parser.add_subparsers(dest="sources_command", metavar="check", parser_class=type(parser))
    check = actions.add_parser(
        "check", help="fetch one source (or read a saved response) and show the items a crawl would store",
        description="Parse a source with its configured selectors, fields and filter; print each item and a"
                    " verdict. Stores nothing. Exit 0: items found; 1: none; 2: configuration error.")
    check.add_argument("name", metavar="NAME", help="the source's name in the config")
    check.add_argument("--file", metavar="PATH", type=Path,
                       help="read this saved response instead of fetching the source's URL")
    check.add_argument("--format", dest="check_format", choices=("table", "json"), default=None)
    check.set_defaults(handler=handle_check)


def handle(args: argparse.Namespace) -> int:
    config = load(args)
    rows = []
    if is_database_url(config.db_path) or config.db_path.exists():
        conn = open_readonly(config.db_path)
        rows = source_health_rows(conn, utc_now())
        conn.close()
    report = assess_sources(config, rows)
    if args.format == "json":
        json.dump([h.to_json() for h in report], sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
        return 0
    table = [
        (h.name, h.status + (f" ({h.reason})" if h.reason else ""), h.last_success or "-",
         (h.last_error or "")[:60], h.new_7d, h.new_30d, h.next_due or "-")
        for h in report
    ]
    write_rows(COLUMNS, table, "table")
    return 0


def handle_check(args: argparse.Namespace) -> int:
    from monitor.sourcecheck import check_source, fetch_for_check, read_saved_response

    config = load(args)
    source = config.source(args.name)
    result = read_saved_response(source, args.file) if args.file else fetch_for_check(config, source)
    report = check_source(source, result)
    if (args.check_format or args.format) == "json":
        json.dump(report.to_json(), sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
        return report.exit_code
    rows = [("yes" if item.kept else "no", item.published_at or (f"? {item.date_text}" if item.date_text else "-"),
             item.title or "-", item.url, item.reason) for item in report.items]
    if rows:
        write_rows(CHECK_COLUMNS, rows, "table")
    print(f"{source.name} ({source.kind}, {result.final_url}): {report.verdict}")
    return report.exit_code

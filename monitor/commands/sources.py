"""`monitor sources`: the health of every configured source at a glance."""

from __future__ import annotations

import argparse
import json
import sys

from monitor.commands import load
from monitor.health import assess_sources
from monitor.output import write_rows
from storage import open_readonly, utc_now
from storage.queries import source_health_rows

COLUMNS = ("name", "status", "last_success", "last_error", "new_7d", "new_30d", "next_due")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("sources", help="show the health of every source")
    parser.add_argument("--format", choices=("table", "json"), default="table")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    config = load(args)
    rows = []
    if config.db_path.exists():
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

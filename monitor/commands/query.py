"""`monitor search` and `monitor sql`: read-only questions to the database."""

from __future__ import annotations

import argparse
import sys
from datetime import date

from monitor.commands import db_path
from monitor.output import FORMATS, write_rows
from storage import open_readonly
from storage.queries import HIGHLIGHT_END, HIGHLIGHT_START, QueryError, SearchFilters, run_sql, search_articles

SEARCH_COLUMNS = ("id", "published_at", "source", "lang", "title", "snippet", "url")


def register(subparsers: argparse._SubParsersAction) -> None:
    search = subparsers.add_parser("search", help="full-text search with tag filters")
    search.add_argument("query", metavar="QUERY", help="SQLite FTS5 query ('' for all); phrases, AND/OR/NOT, prefix*")
    search.add_argument("--visa", metavar="ID", help="visa id such as KR:E-7, or KR:* for a whole country")
    search.add_argument("--sector", metavar="ID", help="sector id such as semiconductors")
    search.add_argument("--country", metavar="CC", help="source country, country mention or visa country")
    search.add_argument("--lang", metavar="L", help="article language, e.g. en, ko, ja")
    search.add_argument("--since", metavar="DATE", type=_iso_date, help="published on or after YYYY-MM-DD")
    search.add_argument("--limit", metavar="N", type=_positive_int, default=20)
    search.add_argument("--format", choices=FORMATS, default="table")
    search.set_defaults(handler=handle_search)

    sql = subparsers.add_parser("sql", help="run a read-only SQL query")
    sql.add_argument("sql", metavar="SQL")
    sql.add_argument("--format", choices=FORMATS, default="table")
    sql.set_defaults(handler=handle_sql)


def handle_search(args: argparse.Namespace) -> int:
    conn = open_readonly(db_path(args))
    filters = SearchFilters(visa=args.visa, sector=args.sector, country=args.country, lang=args.lang,
                            since=args.since, **_subtypes(args))
    results = search_articles(conn, args.query, filters, limit=args.limit)
    rows = [tuple(result[column] for column in SEARCH_COLUMNS) for result in results]
    if args.format != "json":
        rows = [row[:1] + ((row[1] or "")[:10],) + row[2:] for row in rows]
    write_rows(SEARCH_COLUMNS, rows, args.format, highlight=(HIGHLIGHT_START, HIGHLIGHT_END))
    if not results and args.format == "table":
        print("no matching articles", file=sys.stderr)
    return 0


def _subtypes(args: argparse.Namespace) -> dict[str, tuple[str, ...]]:
    """The sub-types of the --visa and finer fields of the --sector asked for, which match as well."""
    if not (args.visa and not args.visa.endswith("*")) and not args.sector:
        return {}
    from monitor.commands.tag import load_tagger  # the taxonomy, only when a filter needs it

    tagger = load_tagger(args)
    found: dict[str, tuple[str, ...]] = {}
    if args.visa and not args.visa.endswith("*"):
        found["visa_subtypes"] = tagger.subtypes("visa", args.visa)
    if args.sector:
        found["sector_subtypes"] = tagger.subtypes("sector", args.sector)
    return found


def handle_sql(args: argparse.Namespace) -> int:
    conn = open_readonly(db_path(args))
    try:
        columns, rows = run_sql(conn, args.sql)
    except QueryError as exc:
        raise QueryError(f"SQL error: {exc}") from None
    write_rows(columns, rows, args.format)
    return 0


def _iso_date(text: str) -> str:
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date like 2025-03-01, got {text!r}") from None


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return int(text)

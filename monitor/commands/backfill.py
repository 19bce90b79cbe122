"""`monitor backfill`: read news archives (WARC files) into the database, resumably."""

from __future__ import annotations

import argparse
import json
import sys

from monitor.backfill import (
    BackfillError,
    BackfillSummary,
    DaskEngine,
    Engine,
    InlineEngine,
    ProcessPoolEngine,
    default_workers,
    expand_inputs,
    make_options,
    run_backfill,
)
from monitor.commands import load
from pipelines.tagging import Tagger
from storage import open_db

USAGE_ERROR = 2


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "backfill", help="read news archives (WARC files, warc.paths listings) into the database",
        description="Extract, tag and store the news pages of WARC files (local paths, http(s) URLs, or "
                    "warc.paths[.gz] listings such as Common Crawl's CC-NEWS). A re-run skips finished files "
                    "and resumes a stopped one (the backfill_files ledger).")
    parser.add_argument("inputs", nargs="+", metavar="WARC_OR_PATHS",
                        help="a .warc / .warc.gz file or URL, or a warc.paths[.gz] listing")
    parser.add_argument("--since", metavar="DATE", help="only pages published on or after DATE (YYYY-MM-DD)")
    parser.add_argument("--until", metavar="DATE", help="only pages published on or before DATE (YYYY-MM-DD)")
    parser.add_argument("--lang", action="append", default=[], metavar="CODES",
                        help="only pages in these languages (e.g. en,ko,ja; repeatable)")
    parser.add_argument("--host", action="append", default=[], metavar="PATTERN",
                        help="only pages of hosts matching PATTERN (e.g. '*.go.kr'; repeatable)")
    parser.add_argument("--keep-filter", action="store_true",
                        help="only pages naming a keyword: [backfill] keep_any, the sources' filters, visa names")
    parser.add_argument("--base-url", metavar="URL",
                        help="what relative lines of a listing are relative to (e.g. https://data.commoncrawl.org/)")
    engine = parser.add_mutually_exclusive_group()
    engine.add_argument("--workers", type=int, metavar="N",
                        help="local worker processes (default: one per core; 1 runs in this process)")
    engine.add_argument("--dask-scheduler", metavar="ADDRESS", help="run on a Dask cluster (tcp://host:8786)")
    engine.add_argument("--dask-local", type=int, metavar="N", help="run on a local Dask cluster of N workers")
    parser.add_argument("--chunk-records", type=int, default=1000, metavar="N",
                        help="records per task (default 1000): what a stop may have to read again")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    config = load(args)
    target = args.db or str(config.db_path)  # the store: a SQLite path or a PostgreSQL URL
    try:
        for name in ("workers", "dask_local", "chunk_records"):
            value = getattr(args, name)
            if value is not None and value < 1:
                raise BackfillError(f"--{name.replace('_', '-')} must be at least 1")
        tagger = Tagger.load(config.taxonomy_files)
        options = make_options(config, tagger, since=args.since, until=args.until, langs=args.lang,
                               hosts=args.host, keep_filter=args.keep_filter, chunk_records=args.chunk_records)
        files = expand_inputs(args.inputs, args.base_url, config.fetch.user_agent)
        engine = _engine(args)
    except BackfillError as exc:
        print(f"monitor: {exc}", file=sys.stderr)
        return USAGE_ERROR
    db = open_db(target)
    try:
        summary = run_backfill(db, files, options, engine, store_target=target,
                               progress=None if args.json else _show_progress)
    finally:
        engine.close()
        db.close()
    if args.json:
        json.dump(summary.to_json(), sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
    else:
        print(file=sys.stderr)
        print(summary_text(summary))
    return 0 if not summary.files_failed else 1


def _engine(args: argparse.Namespace) -> Engine:
    if args.dask_scheduler:
        return DaskEngine(scheduler=args.dask_scheduler)
    if args.dask_local:
        return DaskEngine(local_workers=args.dask_local)
    workers = args.workers or default_workers()
    return InlineEngine() if workers == 1 else ProcessPoolEngine(workers)


def _show_progress(summary: BackfillSummary) -> None:
    c = summary.counts
    rate = c.records / summary.elapsed if summary.elapsed else 0.0
    done = summary.files_done + summary.files_skipped + summary.files_failed
    sys.stderr.write(f"\rfiles {done}/{summary.files} · records {c.records:,} ({rate:,.0f}/s) · pages {c.pages:,}"
                     f" · extracted {c.extracted:,} · stored {c.stored:,} · broken {c.broken:,}   ")
    sys.stderr.flush()


def summary_text(summary: BackfillSummary) -> str:
    """What a backfill did, a few lines."""
    c = summary.counts
    lines = [
        f"files: {summary.files} ({summary.files_done} done, {summary.files_skipped} skipped as finished before,"
        f" {summary.files_failed} failed)",
        f"records read: {c.records:,} ({c.pages:,} HTML pages, {c.broken:,} broken)",
        f"filtered out: host {c.filtered_host:,}, date {c.filtered_date:,}, keywords {c.filtered_keyword:,},"
        f" language {c.filtered_lang:,}",
        f"extracted: {c.extracted:,} ({c.no_text:,} without article text); stored: {c.stored:,};"
        f" skipped as already stored: {c.known:,}",
        f"in {summary.elapsed:.1f}s",
    ]
    lines += [f"failed: {error}" for error in summary.errors]
    return "\n".join(lines)

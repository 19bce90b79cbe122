"""`monitor crawl`: one crawl cycle now, with progress and a summary."""

from __future__ import annotations

import argparse
import json
import sys

from rich.console import Console
from rich.markup import escape

from monitor.commands import load
from monitor.crawl import CycleSummary, SourceOutcome, run_crawl
from pipelines.tagging import Tagger
from storage import open_db
from storage.db import DiskFull

DISK_FULL = 1


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("crawl", help="crawl every enabled source once, now")
    parser.add_argument("--source", action="append", metavar="NAME", default=[],
                        help="crawl only this source (repeatable; disabled sources may be named)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    config = load(args)
    sources = [config.source(name) for name in args.source] if args.source else None
    tagger = Tagger.load(config.taxonomy_files)
    try:
        db = open_db(config.db_path)
    except DiskFull as exc:
        print(f"monitor: {exc}", file=sys.stderr)
        return DISK_FULL
    console = Console(stderr=True, soft_wrap=True)
    total = len(sources) if sources is not None else sum(s.enabled for s in config.sources)
    done = 0

    def show(outcome: SourceOutcome) -> None:
        nonlocal done
        done += 1
        if args.json:
            return
        mark = "[green]ok[/]" if outcome.ok else "[red]failed[/]"
        detail = f"{outcome.new_articles} new" if outcome.ok else outcome.error
        if outcome.ok and outcome.filtered_out:
            detail += f", {outcome.filtered_out} left out by its filter"
        if outcome.not_modified:
            detail = "not modified"
        # Names come from the config and errors from servers: escaped, they are never read as markup.
        console.print(f"\\[{done}/{total}] {escape(outcome.name)}: {mark} {escape(detail)} "
                      f"({outcome.elapsed:.1f}s)", highlight=False, markup=True)

    try:
        summary = run_crawl(config, db, tagger, sources, progress=show)
    except DiskFull as exc:
        print(f"monitor: {exc}", file=sys.stderr)
        return DISK_FULL
    finally:
        db.close()
    if args.json:
        json.dump(summary.to_json(), sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
    else:
        print(summary_line(summary))
    return 0


def summary_line(summary: CycleSummary) -> str:
    """One line that says what a cycle did."""
    return (f"{summary.sources_ok} sources ok, {summary.sources_failed} failed; "
            f"{len(summary.new_article_ids)} new articles, {summary.mentions} mentions, "
            f"{summary.figures} figures in {summary.elapsed:.1f}s")

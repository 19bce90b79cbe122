"""`monitor demo`: crawl the bundled offline sample site into a database and show what was found."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from monitor.config import Config, config_from_dict
from monitor.crawl import CycleSummary, SourceOutcome, run_crawl
from monitor.demo_server import DemoServer, demo_sources, serve_demo_site
from monitor.output import format_figure
from pipelines.tagging import Tagger
from storage import open_db, open_readonly
from storage.queries import article_tags
from storage.target import is_database_url, redact


def demo_config(base_url: str, db_path: Path | str, outbox: Path) -> Config:
    """The configuration that crawls the demo site at `base_url` (on loopback, so private addresses allowed)."""
    data = {
        "storage": {"path": str(db_path)},
        "crawl": {"allow_private_addresses": True, "per_host_delay": 0, "per_host_concurrency": 4,
                  "timeout": 10},
        "email": {"outbox": str(outbox)},
        "sources": demo_sources(base_url),
    }
    return config_from_dict(data, path=None, base_dir=Path.cwd())


def run_demo(db_path: Path | str = Path("demo.db"), outbox: Path = Path("demo-outbox"),
             out: TextIO | None = None) -> int:
    """Serve the sample site on 127.0.0.1, crawl it into `db_path`, print the articles and their tags."""
    out = out or sys.stdout
    with _serve_on_stable_port() as server:
        config = demo_config(server.base_url, db_path, outbox)
        print(f"Serving the offline sample site at {server.base_url}", file=out)
        tagger = Tagger.load(config.taxonomy_files)
        db = open_db(config.db_path)

        def show(outcome: SourceOutcome) -> None:
            state = "ok" if outcome.ok else f"FAILED {outcome.error}"
            print(f"  crawled {outcome.name:<24} {state}: {outcome.items_seen} items, {outcome.new_articles} new",
                  file=out)

        summary = run_crawl(config, db, tagger, progress=show)
        db.close()
    print_findings(config.db_path, summary, out)
    return 0


DEMO_PORT = 8741
"""The demo serves here when it can, so that a second run sees the same URLs; else on any free port."""


def _serve_on_stable_port() -> DemoServer:
    try:
        return serve_demo_site(port=DEMO_PORT)
    except OSError:
        return serve_demo_site()


def print_findings(db_path: Path | str, summary: CycleSummary, out: TextIO) -> None:
    """Every stored article with its visa, sector and figure tags, then commands to explore further."""
    conn = open_readonly(db_path)
    shown = redact(db_path)  # a PostgreSQL URL's password stays out of the terminal and its scrollback
    rows = conn.execute(
        "SELECT id, source, lang, title, text_origin FROM articles ORDER BY coalesce(published_at, fetched_at), id"
    ).fetchall()
    print(f"\n{len(summary.new_article_ids)} new articles this run; {len(rows)} articles in {shown}:\n", file=out)
    for article_id, source, lang, title, origin in rows:
        tags = article_tags(conn, article_id)
        print(f"#{article_id} [{lang}] {title}  ({source}{', feed summary only' if origin != 'page' else ''})",
              file=out)
        visas = sorted({m["label"] for m in tags["visa"]})
        sectors = sorted({m["label"] for m in tags["sector"]})
        figures = [f"{f['text']} → {format_figure(f)}" for f in tags["figures"][:6]]
        print(f"    visas:   {', '.join(visas) or '-'}", file=out)
        print(f"    sectors: {', '.join(sectors) or '-'}", file=out)
        more = len(tags["figures"]) - len(figures)
        print(f"    figures: {'; '.join(figures) or '-'}{f' (+{more} more)' if more > 0 else ''}", file=out)
    conn.close()
    print("\nExplore further:", file=out)
    print(f"  .venv/bin/monitor --db {shown} search '高度専門職'", file=out)
    print(f"  .venv/bin/monitor --db {shown} search 'semiconduct* OR 반도체' --visa 'KR:*'", file=out)
    print(f"  .venv/bin/monitor --db {shown} sql \"SELECT visa, year, value, unit, text FROM figures"
          " WHERE visa IS NOT NULL ORDER BY visa, year\"", file=out)
    if not is_database_url(db_path):
        print(f"  .venv/bin/monitor --db {shown} serve    # web UI and dashboard on http://127.0.0.1:8001/",
              file=out)

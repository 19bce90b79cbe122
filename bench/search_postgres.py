"""Search on PostgreSQL at scale: the same query kinds and synthetic articles as bench/search_scale.py.

    MONITOR_DATABASE_URL=postgresql://monitor@127.0.0.1:5432/bench .venv/bin/python bench/search_postgres.py
    .venv/bin/python bench/search_postgres.py --n 20000 --url postgresql://monitor:monitor@127.0.0.1:5432/bench

The database (UTF-8, C.UTF-8 character type, empty or holding an earlier run's articles) is filled
through `storage.writes.store_article` with tagging off, one transaction per article, as a crawl stores
them; then every query kind of bench/search_scale.py is timed through `storage.queries.search_articles`
on a read-only connection, p50/p95 printed, with the database's size, the build rate and alert candidate
selection after a few new articles. Figures depend on the machine's load.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.search_scale import alert_candidates, build, time_queries  # noqa: E402
from storage import open_db, open_readonly  # noqa: E402
from storage.postgres.connection import redact  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--url", default=os.environ.get("MONITOR_DATABASE_URL"),
                        help="PostgreSQL URL (default $MONITOR_DATABASE_URL)")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    if not args.url:
        parser.error("give --url or set MONITOR_DATABASE_URL")
    print(f"database {redact(args.url)}, {args.n:,} articles (tagging off: synthetic gold mentions)")
    seconds, stored = build(args.url, args.n)
    if stored:
        print(f"build: {stored:,} articles in {seconds:.0f} s ({stored / seconds:,.0f} articles/s)")
    db = open_db(args.url)
    db.execute("ANALYZE")  # fresh planner statistics after a bulk load (autovacuum would get there later)
    db.close()
    conn = open_readonly(args.url)
    size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
    conn.close()
    print(f"database size: {size / 1e6:,.0f} MB")
    started = time.perf_counter()
    rows = time_queries(args.url, args.repeat)
    print(f"\n{'query kind':<40} {'p50 ms':>8} {'p95 ms':>8} {'results':>8}")
    for kind, p50, p95, count in rows:
        print(f"{kind:<40} {p50:>8.1f} {p95:>8.1f} {count:>8}")
    print(f"(timed in {time.perf_counter() - started:.0f} s)")
    print("\nalert candidates after new articles:")
    for name, ms, count in alert_candidates(args.url):
        print(f"  {name:<40} {ms:>8.1f} ms {count:>6}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

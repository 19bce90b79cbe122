"""Power loss while storing: `monitor crawl` killed with SIGKILL at many instants, the database checked after each.

Each round deletes a few stored articles (and the feed's cache entry) so the next crawl has
articles to store again, starts `monitor crawl` as its own process, waits until it stores,
kills it at a random instant and checks: `integrity_check` ok, both FTS indexes sound, no
article without its tags, no tag or URL without its article. The next round's crawl starts
from what the kill left, and every tenth round runs one to completion. The number of
instants is MONITOR_KILL_POINTS (default 50); the test prints how many it tried and where
they fell.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from storage.maintenance import fts_problems
from tests.conftest import ROOT
from tests.test_data_safety import Site

ARTICLES = 30
KILL_POINTS = int(os.environ.get("MONITOR_KILL_POINTS", "50"))


def count_articles(db_path: Path) -> int:
    try:
        conn = sqlite3.connect(db_path, timeout=5)
        try:
            return conn.execute("SELECT count(*) FROM articles").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return -1


def damage_report(db_path: Path) -> list[str]:
    """What is wrong with the database after a kill (empty when nothing)."""
    conn = sqlite3.connect(db_path, timeout=30, isolation_level=None)
    try:
        problems = [row[0] for row in conn.execute("PRAGMA integrity_check")]
        problems = [] if problems == ["ok"] else problems
        problems += fts_problems(conn)
        for query, what in [
            ("SELECT count(*) FROM articles a WHERE NOT EXISTS (SELECT 1 FROM mentions m WHERE m.article_id = a.id)",
             "articles without their tags"),
            ("SELECT count(*) FROM articles a WHERE NOT EXISTS (SELECT 1 FROM figures f WHERE f.article_id = a.id)",
             "articles without their figures"),
            ("SELECT count(*) FROM mentions WHERE article_id NOT IN (SELECT id FROM articles)",
             "mentions without their article"),
            ("SELECT count(*) FROM figures WHERE article_id NOT IN (SELECT id FROM articles)",
             "figures without their article"),
            ("SELECT count(*) FROM article_urls WHERE article_id NOT IN (SELECT id FROM articles)",
             "URLs without their article"),
        ]:
            found = conn.execute(query).fetchone()[0]
            if found:
                problems.append(f"{found} {what}")
        return problems
    finally:
        conn.close()


def forget_some(db_path: Path, rng: random.Random, how_many: int = 20) -> None:
    """Delete a few articles (their tags and URLs go with them) and the feed's cache entry."""
    conn = sqlite3.connect(db_path, timeout=30)
    conn.execute("PRAGMA foreign_keys = ON")
    ids = [row[0] for row in conn.execute("SELECT id FROM articles")]
    doomed = rng.sample(ids, min(how_many, len(ids)))
    conn.executemany("DELETE FROM articles WHERE id = ?", [(i,) for i in doomed])
    conn.execute("DELETE FROM http_cache")
    conn.execute("DELETE FROM deferred_items")
    conn.commit()
    conn.close()


def test_sigkill_at_many_instants_while_storing_never_damages_the_database(tmp_path: Path, record_property):
    rng = random.Random(12)
    db_path = tmp_path / "power.db"
    with Site(ARTICLES, repeat=3, dated=False) as site:
        config = tmp_path / "config.toml"
        config.write_text(site.config_text(db_path), encoding="utf-8")
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        command = [sys.executable, "-m", "monitor", "--config", str(config), "crawl"]

        def crawl_to_completion() -> None:
            done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stderr
            assert count_articles(db_path) == ARTICLES
            assert damage_report(db_path) == []

        crawl_to_completion()
        mid_store = finished_first = 0
        for point in range(1, KILL_POINTS + 1):
            forget_some(db_path, rng)
            before = count_articles(db_path)
            process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 60
            while count_articles(db_path) == before and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)
            # Storing has begun: the kill lands somewhere in the rest of it.
            time.sleep(rng.uniform(0, 0.25))
            still_running = process.poll() is None
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
            after = count_articles(db_path)
            if still_running and after < ARTICLES:
                mid_store += 1
            else:
                finished_first += 1
            problems = damage_report(db_path)
            assert problems == [], f"after kill point {point}: {problems}"
            if point % 10 == 0:
                crawl_to_completion()
        crawl_to_completion()
    summary = (f"kill points tried: {KILL_POINTS}; {mid_store} landed while articles were still to store,"
               f" {finished_first} after the crawl had stored everything; the database was sound after each")
    print(summary)
    record_property("kill_points", KILL_POINTS)
    record_property("kill_points_mid_store", mid_store)
    assert mid_store >= KILL_POINTS // 3, summary

"""Crash safety (kill -9 in the middle of a crawl) and feedparser's real-world corpus served one file per source."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from monitor.config import config_from_dict
from monitor.crawl import run_crawl
from pipelines.tagging import Tagger
from storage import open_db
from tests.conftest import ROOT, shared_path
from tests.hostile_server import HostileServer, Static

PAGE = ("<html><head><title>Notice {n}</title></head><body><article><h1>Notice {n}</h1>"
        + "<p>Notice {n}: Korea's E-7 visa quota for semiconductor engineers rose to {n},000 in 2024.</p>" * 4
        + "</article></body></html>")


def _count(db_path: Path) -> int:
    try:
        conn = sqlite3.connect(db_path, timeout=5)
        try:
            return conn.execute("SELECT count(*) FROM articles").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def test_kill_9_mid_crawl_then_the_next_crawl_completes_without_duplicates(tmp_path: Path):
    articles = 30
    static = {f"/n/{n}": Static(PAGE.format(n=n), delay=0.15) for n in range(articles)}
    with HostileServer(static=static, robots_txt="") as server:
        items = "".join(f"<item><title>Notice {n}</title><link>{server.url(f'/n/{n}')}</link></item>"
                        for n in range(articles))
        server.static["/feed.xml"] = Static(
            f"<?xml version='1.0'?><rss version='2.0'><channel><title>t</title><link>{server.base_url}</link>"
            f"<description>d</description>{items}</channel></rss>", "application/rss+xml")
        config = tmp_path / "config.toml"
        config.write_text(
            '[storage]\npath = "crash.db"\n[crawl]\nallow_private_addresses = true\nper_host_delay = 0\n'
            'per_host_concurrency = 2\narticle_concurrency = 2\n'
            f'[[sources]]\nname = "notices"\nkind = "feed"\nurl = "{server.url("/feed.xml")}"\n', encoding="utf-8")
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        command = [sys.executable, "-m", "monitor", "--config", str(config), "crawl"]
        process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while _count(tmp_path / "crash.db") < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        stored_before = _count(tmp_path / "crash.db")
        assert 5 <= stored_before < articles, "the crawl was to be killed in the middle"
        finished = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert finished.returncode == 0, finished.stderr
        fetched = [seen.path for seen in server.requests if seen.path.startswith("/n/")]
    conn = sqlite3.connect(tmp_path / "crash.db")
    rows = conn.execute("SELECT url, (SELECT count(*) FROM mentions m WHERE m.article_id = a.id),"
                        " (SELECT count(*) FROM figures f WHERE f.article_id = a.id) FROM articles a").fetchall()
    assert len(rows) == articles and len({url for url, _, _ in rows}) == articles
    assert all(mentions > 0 and figures > 0 for _, mentions, figures in rows), "an article lost its tags"
    # Pages stored before the kill were not fetched again.
    assert len(fetched) <= articles + 2 * 2


def test_every_feedparser_corpus_file_is_ingested_or_recorded_as_a_parse_error(tmp_path: Path):
    corpus = shared_path("corpora", "feedparser-cases")
    files = sorted(p for p in corpus.rglob("*") if p.suffix in (".xml", ".json", ".rdf", ".atom") and p.is_file())
    assert len(files) > 2000
    static = {f"/c/{i}": Static(p.read_bytes(), "application/json" if p.suffix == ".json" else "application/xml",
                                validators="none") for i, p in enumerate(files)}
    with HostileServer(static=static, robots_txt="") as server:
        # fetch_articles = false: the corpus links to the public web, and tests stay on loopback.
        config = config_from_dict({
            "crawl": {"allow_private_addresses": True, "per_host_delay": 0, "per_host_concurrency": 8,
                      "timeout": 10},
            "sources": [{"name": f"case-{i}", "kind": "feed", "url": server.url(f"/c/{i}"), "fetch_articles": False}
                        for i in range(len(files))],
        }, path=None, base_dir=tmp_path)
        db = open_db(tmp_path / "corpus.db")
        summary = run_crawl(config, db, Tagger.load())
    assert len(summary.outcomes) == len(files)
    unexpected = [(o.name, o.error) for o in summary.outcomes if not o.ok and not o.error.startswith("ParseError")]
    assert unexpected == []
    ingested = sum(o.ok for o in summary.outcomes)
    parse_errors = len(files) - ingested
    assert ingested > 1500 and parse_errors > 0
    recorded = db.execute("SELECT count(DISTINCT source) FROM fetches WHERE error = 'ParseError'").fetchone()[0]
    assert recorded == parse_errors
    assert db.execute("SELECT count(*) FROM articles").fetchone()[0] > 50

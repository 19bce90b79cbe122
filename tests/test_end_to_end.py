"""The whole pipeline on real parts: the demo site served over HTTP on 127.0.0.1, crawled into a real
SQLite file, then searched. No traffic leaves loopback."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.crawl import run_crawl
from monitor.demo import demo_config
from monitor.demo_server import serve_demo_site
from pipelines.tagging import Tagger
from storage import open_db, open_readonly
from storage.queries import SearchFilters, search_articles


@pytest.fixture(scope="module")
def tagger() -> Tagger:
    return Tagger.load()


@pytest.fixture(scope="module")
def crawled(tmp_path_factory, tagger):
    """The demo site crawled twice into one database: (db path, first summary, second summary, server log)."""
    folder = tmp_path_factory.mktemp("e2e")
    with serve_demo_site() as server:
        config = demo_config(server.base_url, folder / "e2e.db", folder / "outbox")
        db = open_db(config.db_path)
        first = run_crawl(config, db, tagger)
        requests_before_second = len(server.request_log)
        second = run_crawl(config, db, tagger)
        second_requests = server.request_log[requests_before_second:]
        db.close()
    return config.db_path, first, second, second_requests


@pytest.fixture
def conn(crawled):
    connection = open_readonly(crawled[0])
    yield connection
    connection.close()


def test_every_source_is_crawled_and_articles_in_three_languages_are_stored(crawled, conn):
    _, first, _, _ = crawled
    assert first.sources_failed == 0, [o.error for o in first.outcomes]
    langs = dict(conn.execute("SELECT lang, count(*) FROM articles GROUP BY lang").fetchall())
    assert langs["en"] >= 5 and langs["ko"] >= 4 and langs["ja"] >= 4
    assert len(first.new_article_ids) == sum(langs.values())


def test_recrawl_adds_nothing_and_fetches_no_stored_article(crawled, conn):
    _, first, second, second_requests = crawled
    assert second.new_article_ids == []
    assert conn.execute("SELECT count(*) FROM articles").fetchone()[0] == len(first.new_article_ids)
    article_paths = [path for _method, path, _status in second_requests if "/articles/" in path
                     or path.startswith(("/government/news/", "/ja/press/1"))]
    assert article_paths == [p for p in article_paths if "niw-guidance" in p] == []


def test_tracking_parameters_and_fragments_do_not_make_a_second_article(conn):
    urls = [row[0] for row in conn.execute("SELECT url FROM articles")]
    assert not [u for u in urls if "utm_" in u or "#" in u]
    assert len(urls) == len(set(urls))
    hashes = [row[0] for row in conn.execute("SELECT content_hash FROM articles")]
    assert len(hashes) == len(set(hashes))


def test_a_page_that_cannot_be_fetched_keeps_the_feed_summary_and_says_so(conn):
    row = conn.execute(
        "SELECT text_origin, extraction_note, length(text) FROM articles WHERE link LIKE '%niw-guidance%'"
    ).fetchone()
    assert row is not None
    origin, note, length = row
    assert origin == "feed_summary" and "404" in note and length > 50


def test_article_text_is_the_extracted_main_text_without_page_chrome(conn):
    for (text,) in conn.execute("SELECT text FROM articles WHERE text_origin = 'page'"):
        assert len(text) > 200
        assert "cookie" not in text.lower()


def test_every_request_is_recorded_in_fetches(crawled, conn):
    statuses = dict(conn.execute("SELECT status, count(*) FROM fetches GROUP BY status").fetchall())
    assert statuses.get(404) == 1
    assert statuses.get(200, 0) >= 17
    assert statuses.get(304, 0) >= 4  # the second cycle's conditional GETs of feeds, boards and APIs


def test_japanese_korean_and_english_search(conn):
    assert any("高度専門職" in (r["title"] or "") + r["snippet"] for r in search_articles(conn, "高度専門職"))
    assert search_articles(conn, "톱티어")
    assert search_articles(conn, '"top tier"') or search_articles(conn, "톱티어 비자")
    assert search_articles(conn, "semiconduct*")


def test_tags_are_stored_with_the_articles(conn):
    visas = {row[0] for row in conn.execute("SELECT DISTINCT label FROM mentions WHERE kind = 'visa'")}
    assert {"JP:HSP", "KR:TOP-TIER", "KR:E-7", "US:H-1B", "EU:BLUE-CARD", "JP:J-SKIP"} <= visas
    sectors = {row[0] for row in conn.execute("SELECT DISTINCT label FROM mentions WHERE kind = 'sector'")}
    assert {"semiconductors", "ai"} <= sectors
    figures = {tuple(row) for row in conn.execute("SELECT value, year FROM figures")}
    assert {(313.0, 2012), (46946.0, 2023)} <= figures
    hits = search_articles(conn, "", SearchFilters(visa="KR:TOP-TIER"))
    assert hits and all(r["lang"] in ("ko", "en") for r in hits)


def test_negative_articles_get_no_visa_tags(conn):
    rows = conn.execute(
        "SELECT a.title FROM articles a JOIN mentions m ON m.article_id = a.id AND m.kind = 'visa'"
        " WHERE a.title LIKE '%pole vault%' OR a.title LIKE '%気温%'"
    ).fetchall()
    assert rows == []


def test_demo_command_runs_twice_and_adds_nothing_the_second_time(tmp_path: Path, capsys):
    from monitor.demo import run_demo

    assert run_demo(tmp_path / "demo.db", tmp_path / "outbox") == 0
    first = capsys.readouterr().out
    assert run_demo(tmp_path / "demo.db", tmp_path / "outbox") == 0
    second = capsys.readouterr().out
    assert "0 new articles this run" in second and "0 new articles this run" not in first
    assert "Explore further" in second

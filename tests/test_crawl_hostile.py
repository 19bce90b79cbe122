"""The crawl against a hostile server: every failure recorded, good articles kept, nothing hangs.

Each test crawls real HTTP on 127.0.0.1 into a real SQLite file with short timeouts,
and asserts a bound on the time the crawl took.
"""

from __future__ import annotations

import json
import resource
import time
from pathlib import Path

import pytest

from monitor.config import Config, config_from_dict
from monitor.crawl import run_crawl
from pipelines.tagging import Tagger
from storage import open_db
from tests.hostile_server import BILLION_LAUGHS, JA_TEXT, KO_TEXT, HostileServer, Static

ARTICLE = ("<html><head><title>{title}</title></head><body><nav>Menu</nav><article><h1>{title}</h1>"
           + "<p>The ministry said the skilled worker visa quota for 2025 rises to 12,000 nurses and engineers."
             " Employers welcomed the decision and said more changes were expected.</p>" * 4
           + "</article><footer>Footer</footer></body></html>")

HOSTILE_ROUTES = ["/500", "/redirect-loop", "/redirect-file", "/big?size=50000000", "/gzip-bomb?size=1100000000",
                  "/stall", "/png-as-html", "/drop?length=100000&send=1000", "/trickle?interval=2&length=100",
                  "/429-long"]


def rss(server: HostileServer, paths: list[str]) -> str:
    items = "".join(f"<item><title>Item {i}</title><link>{server.url(p).replace('&', '&amp;')}</link>"
                    f"<description>Summary of item {i} about visas.</description></item>"
                    for i, p in enumerate(paths))
    return (f"<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>t</title>"
            f"<link>{server.base_url}/</link><description>d</description>{items}</channel></rss>")


def crawl_config(tmp_path: Path, sources: list[dict], **crawl: object) -> Config:
    config = config_from_dict({
        "crawl": {"allow_private_addresses": True, "per_host_delay": 0, "per_host_concurrency": 4,
                  "timeout": 2, "connect_timeout": 1, "max_bytes": 2_000_000, "max_tries": 2, **crawl},
        "sources": sources,
    }, path=None, base_dir=tmp_path)
    config.fetch.backoff_base = 0.05
    return config


@pytest.fixture(scope="module")
def tagger() -> Tagger:
    return Tagger.load()


def crawl(config: Config, tagger: Tagger):
    db = open_db(config.db_path)
    started = time.monotonic()
    summary = run_crawl(config, db, tagger)
    return db, summary, time.monotonic() - started


def test_hostile_links_are_recorded_and_good_articles_from_the_same_feed_are_kept(tmp_path, tagger):
    good = {f"/good/{i}": Static(ARTICLE.format(title=f"Good article {i}")) for i in range(3)}
    with HostileServer(static=good, robots_txt="") as server:
        server.static["/feed.xml"] = Static(rss(server, [*good, *HOSTILE_ROUTES]), "application/rss+xml")
        config = crawl_config(tmp_path, [{"name": "f", "kind": "feed", "url": server.url("/feed.xml")}])
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        db, summary, elapsed = crawl(config, tagger)
        grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    assert elapsed < 30
    assert grown_mb < 150, f"peak memory grew by {grown_mb:.0f} MB"
    assert summary.sources_failed == 0
    from_pages = {r[0].split("/", 3)[3] for r in db.execute("SELECT link FROM articles WHERE text_origin = 'page'")}
    assert from_pages == {"good/0", "good/1", "good/2"}
    errors = {url.split("/", 3)[3]: error for url, error in db.execute(
        "SELECT url, error FROM fetches WHERE error != ''")}
    errors["redirect-loop"] = errors.pop("redirect-loop-b", errors.get("redirect-loop"))
    assert errors["500"] == "HTTPStatus"
    assert errors["redirect-loop"] == "TooManyRedirects"
    assert errors["redirect-file"] == "RedirectRefused"
    assert errors["big?size=50000000"] == "TooLarge"
    assert errors["gzip-bomb?size=1100000000"] == "TooLarge"
    assert errors["stall"] == "Timeout"
    assert errors["trickle?interval=2&length=100"] == "Timeout"
    assert errors["png-as-html"] == "UnexpectedContentType"
    assert errors["drop?length=100000&send=1000"] in {"ConnectionDropped", "RemoteProtocolError", "ReadError"}
    # Failed pages keep the feed's summary and say why; the Retry-After: 3600 item waits for the next cycle.
    notes = dict(db.execute("SELECT link, extraction_note FROM articles WHERE text_origin = 'feed_summary'"))
    assert any("TooLarge" in note for note in notes.values())
    assert not [link for link in notes if "429-long" in link]
    assert db.execute("SELECT count(*) FROM http_cache WHERE url LIKE '%feed.xml'").fetchone()[0] == 0


def test_the_deferred_item_is_fetched_by_the_next_cycle_and_nothing_is_duplicated(tmp_path, tagger):
    with HostileServer(robots_txt="") as server:
        server.static["/feed.xml"] = Static(rss(server, ["/ok", "/429-long"]), "application/rss+xml")
        config = crawl_config(tmp_path, [{"name": "f", "kind": "feed", "url": server.url("/feed.xml")}])
        db, first, _ = crawl(config, tagger)
        assert len(first.new_article_ids) == 1 and first.outcomes[0].deferred == 1
        db.close()
        db, second, _ = crawl(config, tagger)
        assert len(server.hits("/ok")) == 1, "a stored article's page is never fetched again"
        assert len(server.hits("/429-long")) == 2
    assert db.execute("SELECT count(*) FROM articles").fetchone()[0] == 1


def test_hostile_feeds_fail_their_source_only(tmp_path, tagger):
    with HostileServer(robots_txt="", static={"/good.xml": Static("", "application/rss+xml")}) as server:
        server.static["/good.xml"] = Static(rss(server, ["/ok"]), "application/rss+xml")
        server.static["/laughs.xml"] = Static(BILLION_LAUGHS, "application/rss+xml")
        sources = [{"name": "good", "kind": "feed", "url": server.url("/good.xml")},
                   {"name": "laughs", "kind": "feed", "url": server.url("/laughs.xml")},
                   {"name": "bomb", "kind": "feed", "url": server.url("/gzip-bomb?size=1100000000")},
                   {"name": "huge", "kind": "feed", "url": server.url("/big?size=50000000")},
                   {"name": "down", "kind": "feed", "url": server.url("/500")}]
        config = crawl_config(tmp_path, sources)
        db, summary, elapsed = crawl(config, tagger)
    assert elapsed < 30
    outcome = {o.name: o for o in summary.outcomes}
    assert outcome["good"].ok and outcome["good"].new_articles == 1
    assert "entity" in outcome["laughs"].error.lower()
    assert outcome["bomb"].error.startswith("TooLarge") and outcome["huge"].error.startswith("TooLarge")
    assert outcome["down"].error.startswith("HTTPStatus")
    health = dict(db.execute("SELECT name, consecutive_failures FROM sources"))
    assert health == {"good": 0, "laughs": 1, "bomb": 1, "huge": 1, "down": 1}


def test_pages_in_legacy_encodings_are_stored_as_unicode(tmp_path, tagger):
    with HostileServer(robots_txt="") as server:
        server.static["/feed.xml"] = Static(rss(server, ["/sjis-meta", "/euckr-meta", "/invalid-utf8"]),
                                            "application/rss+xml")
        config = crawl_config(tmp_path, [{"name": "f", "kind": "feed", "url": server.url("/feed.xml")}])
        db, summary, _ = crawl(config, tagger)
    texts = {link.rsplit("/", 1)[1]: (text, lang) for link, text, lang in
             db.execute("SELECT link, text, lang FROM articles")}
    assert JA_TEXT[:20] in texts["sjis-meta"][0] and texts["sjis-meta"][1] == "ja"
    assert KO_TEXT[:20] in texts["euckr-meta"][0] and texts["euckr-meta"][1] == "ko"
    assert "\ufffd" in texts["invalid-utf8"][0] or texts["invalid-utf8"][0]


def test_private_addresses_are_refused_at_crawl_time_not_as_a_config_error(tmp_path, tagger):
    with HostileServer(robots_txt="") as server:
        server.static["/feed.xml"] = Static(rss(server, ["/ok"]), "application/rss+xml")
        config = crawl_config(tmp_path, [{"name": "f", "kind": "feed", "url": server.url("/feed.xml")}],
                              allow_private_addresses=False)
        db, summary, _ = crawl(config, tagger)
        assert server.hits("/feed.xml") == []
    assert summary.sources_failed == 1 and summary.outcomes[0].error.startswith("PrivateAddress")
    assert db.execute("SELECT error FROM fetches").fetchall() == [("PrivateAddress",)]


def test_unchanged_feed_costs_a_304_and_no_parsing(tmp_path, tagger):
    with HostileServer(robots_txt="") as server:
        server.static["/feed.xml"] = Static(rss(server, ["/ok"]), "application/rss+xml")
        config = crawl_config(tmp_path, [{"name": "f", "kind": "feed", "url": server.url("/feed.xml")}])
        db, _, _ = crawl(config, tagger)
        db.close()
        db, second, _ = crawl(config, tagger)
        feed_requests = server.hits("/feed.xml")
    assert second.outcomes[0].not_modified
    assert "If-None-Match" in feed_requests[1].headers or "if-none-match" in {
        k.lower() for k in feed_requests[1].headers}
    statuses = [row[0] for row in db.execute("SELECT status FROM fetches WHERE url LIKE '%feed.xml' ORDER BY id")]
    assert statuses == [200, 304]


def test_stale_validators_are_counted_and_save_the_parse(tmp_path, tagger):
    with HostileServer(robots_txt="") as server:
        server.static["/feed.xml"] = Static(rss(server, ["/ok"]), "application/rss+xml", validators="unstable")
        config = crawl_config(tmp_path, [{"name": "f", "kind": "feed", "url": server.url("/feed.xml")}])
        for _ in range(3):
            db, summary, _ = crawl(config, tagger)
            db.close()
    db = open_db(config.db_path)
    assert db.execute("SELECT unchanged_200s FROM http_cache").fetchone()[0] == 2
    assert db.execute("SELECT count(*) FROM articles").fetchone()[0] == 1


def test_passing_failures_wait_a_few_cycles_then_the_feed_summary_stands_in(tmp_path, tagger):
    from monitor.crawl import MAX_DEFERRALS

    with HostileServer(robots_txt="") as server:
        server.static["/feed.xml"] = Static(rss(server, ["/500"]), "application/rss+xml")
        config = crawl_config(tmp_path, [{"name": "f", "kind": "feed", "url": server.url("/feed.xml")}])
        for cycle in range(MAX_DEFERRALS):
            db, summary, _ = crawl(config, tagger)
            assert summary.outcomes[0].deferred == 1 and summary.new_article_ids == [], cycle
            db.close()
        db, summary, _ = crawl(config, tagger)
    assert len(summary.new_article_ids) == 1
    origin, note = db.execute("SELECT text_origin, extraction_note FROM articles").fetchone()
    assert origin == "feed_summary" and "HTTP 500" in note
    assert db.execute("SELECT count(*) FROM deferred_items").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM http_cache WHERE url LIKE '%feed.xml'").fetchone()[0] == 1


def test_a_poisoned_item_neither_fails_its_source_nor_blocks_the_others(tmp_path, tagger, monkeypatch):
    """An item that cannot be processed is recorded and retried a few cycles, then passed over; a lone
    surrogate in a title (as JSON and broken feeds carry) is stored as U+FFFD."""
    from monitor import crawl as crawl_module

    real_build = crawl_module._Crawler._build_article

    def build_failing_on_item_2(self, source, item, page):
        if item.url.endswith("/good/2"):
            raise RuntimeError("a bug met by one item")
        return real_build(self, source, item, page)

    monkeypatch.setattr(crawl_module._Crawler, "_build_article", build_failing_on_item_2)
    with HostileServer(robots_txt="") as server:
        paths = [f"/good/{i}" for i in range(4)]
        for i, path in enumerate(paths):
            server.static[path] = Static(ARTICLE.format(title=f"Good article {i}"))
        server.static["/feed.xml"] = Static(json.dumps({
            "version": "https://jsonfeed.org/version/1.1", "title": "t",
            "items": [{"id": p, "url": server.url(p), "title": f"Item {i}" + (" \ud800" if i == 1 else "")}
                      for i, p in enumerate(paths)]}, ensure_ascii=True), "application/feed+json")
        config = crawl_config(tmp_path, [{"name": "f", "kind": "feed", "url": server.url("/feed.xml")}])
        from monitor.crawl import MAX_DEFERRALS

        for _ in range(MAX_DEFERRALS + 1):
            db, summary, _ = crawl(config, tagger)
            assert summary.sources_failed == 0, summary.outcomes[0].error
            db.close()
    db = open_db(config.db_path)
    titles = {row[0] for row in db.execute("SELECT title FROM articles")}
    assert titles == {"Item 0", "Item 1 \ufffd", "Item 3"}
    errors = db.execute("SELECT count(*) FROM fetches WHERE error = 'ItemError'").fetchone()[0]
    assert errors == MAX_DEFERRALS + 1
    assert db.execute("SELECT count(*) FROM http_cache WHERE url LIKE '%feed.xml'").fetchone()[0] == 1


def _conditional_requests(server: HostileServer, path: str) -> list[bool]:
    return [any(k.lower() in ("if-none-match", "if-modified-since") for k in seen.headers)
            for seen in server.hits(path)]


def test_changed_source_settings_read_an_unchanged_feed_again(tmp_path, tagger):
    with HostileServer(robots_txt="") as server:
        server.static["/feed.xml"] = Static(rss(server, [f"/ok?n={i}" for i in range(5)]), "application/rss+xml")
        source = {"name": "f", "kind": "feed", "url": server.url("/feed.xml"), "max_items": 2}
        db, first, _ = crawl(crawl_config(tmp_path, [source]), tagger)
        db.close()
        db, second, _ = crawl(crawl_config(tmp_path, [{**source, "max_items": 5}]), tagger)
        assert _conditional_requests(server, "/feed.xml") == [False, False]
    assert (len(first.new_article_ids), len(second.new_article_ids)) == (2, 3)


def test_validators_that_keep_failing_or_grow_old_are_not_sent(tmp_path, tagger):
    from monitor.crawl import STALE_VALIDATOR_LIMIT

    with HostileServer(robots_txt="") as server:
        server.static["/feed.xml"] = Static(rss(server, ["/ok"]), "application/rss+xml", validators="unstable")
        config = crawl_config(tmp_path, [{"name": "f", "kind": "feed", "url": server.url("/feed.xml")}])
        for _ in range(STALE_VALIDATOR_LIMIT + 2):
            db, _, _ = crawl(config, tagger)
            db.close()
        sent = _conditional_requests(server, "/feed.xml")
        assert sent == [False] + [True] * STALE_VALIDATOR_LIMIT + [False]
        server.static["/stable.xml"] = Static(rss(server, ["/ok"]), "application/rss+xml")
        stable = crawl_config(tmp_path, [{"name": "s", "kind": "feed", "url": server.url("/stable.xml")}])
        db, _, _ = crawl(stable, tagger)
        db.execute("BEGIN")
        db.execute("UPDATE http_cache SET updated_at = '2000-01-01T00:00:00+00:00' WHERE url LIKE '%stable.xml'")
        db.execute("COMMIT")
        db.close()
        db, _, _ = crawl(stable, tagger)
        db.close()
        db, _, _ = crawl(stable, tagger)
        assert _conditional_requests(server, "/stable.xml") == [False, False, True]


def test_a_feed_that_parses_to_nothing_is_one_recorded_request(tmp_path, tagger):
    with HostileServer(robots_txt="") as server:
        server.static["/feed.xml"] = Static("<html><body>We moved our feed.</body></html>", "application/rss+xml")
        config = crawl_config(tmp_path, [{"name": "f", "kind": "feed", "url": server.url("/feed.xml")}])
        db, summary, _ = crawl(config, tagger)
    assert summary.outcomes[0].error.startswith("ParseError")
    assert db.execute("SELECT status, error FROM fetches WHERE url LIKE '%feed.xml'").fetchall() == [
        (200, "ParseError")]


def test_daily_full_fetches_do_not_wear_out_working_validators(tmp_path, tagger):
    with HostileServer(robots_txt="") as server:
        server.static["/stable.xml"] = Static(rss(server, ["/ok"]), "application/rss+xml")
        config = crawl_config(tmp_path, [{"name": "s", "kind": "feed", "url": server.url("/stable.xml")}])
        db, _, _ = crawl(config, tagger)
        db.close()
        for _day in range(4):
            db = open_db(config.db_path)
            db.execute("BEGIN")
            db.execute("UPDATE http_cache SET updated_at = '2000-01-01T00:00:00+00:00'")
            db.execute("COMMIT")
            db.close()
            for _ in range(2):
                db, _, _ = crawl(config, tagger)
                db.close()
        assert _conditional_requests(server, "/stable.xml") == [False] + [False, True] * 4

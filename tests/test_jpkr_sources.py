"""The Korean and Japanese sources (and USCIS) config.toml ships enabled, each crawled as configured (its own
selectors and keep-filter) from a recorded response served on 127.0.0.1; and RSS 1.0 in Shift_JIS with CRLF."""

from __future__ import annotations

import tomllib
from datetime import timedelta, timezone
from pathlib import Path

import pytest

from monitor.config import config_from_dict, load_config
from monitor.crawl import run_crawl
from pipelines.feeds import parse_feed
from pipelines.tagging import Tagger
from storage import open_db
from tests.conftest import ROOT, shared_path
from tests.hostile_server import HostileServer, Static

FIXTURES = ROOT / "tests" / "fixtures" / "sources"
SHIPPED = ROOT / "config.toml"

# name -> (fixture, Content-Type served, items in the fixture, items the keep-filter keeps)
RECORDED = {
    "korea-kr-moj": ("korea_kr_dept_moj.xml", "application/xml", 3, 2),
    "korea-kr-moel": ("korea_kr_dept_moel.xml", "application/xml", 2, 1),
    "korea-kr-press-releases": ("korea_kr_press_release_list.html", "text/html;charset=UTF-8", 5, 3),
    # Served with no charset: the document's own Shift_JIS declaration must decide.
    "japan-moj-news": ("moj_news.xml", "text/xml", 4, 2),
    "japan-mhlw-news": ("mhlw_news.rdf", "application/rss+xml", 4, 2),
    "japan-egov-public-comments": ("egov_pcm_list.xml", "application/rss+xml", 3, 2),
    "japan-egov-public-comment-results": ("egov_pcm_result.xml", "application/rss+xml", 2, 1),
    "uscis-news": ("uscis_news_rss.xml", "application/rss+xml; charset=utf-8", 2, 2),
}


def shipped_source(name: str) -> dict:
    """The [[sources]] table of config.toml named `name`, as written there."""
    data = tomllib.loads(SHIPPED.read_text(encoding="utf-8"))
    return next(raw for raw in data["sources"] if raw["name"] == name)


def test_config_toml_ships_three_korean_and_three_japanese_sources_each_with_a_recording():
    config = load_config(SHIPPED)
    enabled = [s for s in config.sources if s.enabled and s.country in ("KR", "JP")]
    assert sum(s.country == "KR" for s in enabled) >= 3
    assert sum(s.country == "JP" for s in enabled) >= 3
    # A source switched on without a recorded response to test it against fails here.
    assert {s.name for s in enabled} <= set(RECORDED)
    assert {s.kind for s in enabled} == {"feed", "html_list"}


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_shipped_source_is_crawled_from_its_recording(name: str, tmp_path: Path):
    fixture, content_type, items, kept = RECORDED[name]
    raw = shipped_source(name)
    assert raw.get("enabled", True), f"{name} is recorded here but not enabled in config.toml"
    with HostileServer(robots_txt="") as server:
        server.static["/source"] = Static((FIXTURES / fixture).read_bytes(), content_type)
        # fetch_articles = false: the items link to the public web, and tests stay on loopback.
        source = {**raw, "url": server.url("/source"), "fetch_articles": False}
        config = config_from_dict({"crawl": {"allow_private_addresses": True, "per_host_delay": 0},
                                   "sources": [source]}, path=None, base_dir=tmp_path)
        db = open_db(tmp_path / "crawl.db")
        summary = run_crawl(config, db, Tagger.load())
    (outcome,) = summary.outcomes
    assert outcome.ok, outcome.error
    assert (outcome.items_seen, outcome.new_articles, outcome.filtered_out) == (items, kept, items - kept)
    rows = db.execute("SELECT url, link, title, published_at, lang, country, text FROM articles").fetchall()
    assert len(rows) == kept
    for url, link, title, published_at, lang, country, text in rows:
        assert url.startswith("https://") and "127.0.0.1" not in url
        assert link.startswith("https://") and title and text
        assert published_at and published_at.startswith("2026-")
        assert lang == raw["lang"] and country == raw["country"]
    assert "call_from" not in " ".join(r[0] for r in rows), "korea.kr's feed marker is not part of the key"


def test_korea_kr_feed_items_keep_the_release_body_and_their_publication_time(tmp_path: Path):
    """The description is the release (fetch_articles = false), without the 'view text' button's link."""
    with HostileServer(robots_txt="") as server:
        server.static["/rss"] = Static((FIXTURES / "korea_kr_dept_moj.xml").read_bytes(), "application/xml")
        config = config_from_dict({"crawl": {"allow_private_addresses": True, "per_host_delay": 0},
                                   "sources": [{**shipped_source("korea-kr-moj"), "url": server.url("/rss")}]},
                                  path=None, base_dir=tmp_path)
        db = open_db(tmp_path / "crawl.db")
        run_crawl(config, db, Tagger.load())
    url, published_at, text, origin = db.execute(
        "SELECT url, published_at, text, text_origin FROM articles WHERE title LIKE '%톱티어%'").fetchone()
    assert url == "https://www.korea.kr/briefing/pressReleaseView.do?newsId=156739901"
    assert published_at == "2026-01-20T01:00:00+00:00"  # 10:00 KST
    assert origin == "feed_summary" and "체류 기간을 최대 5년" in text and "btn_textview" not in text


def test_the_same_release_from_the_feed_and_the_list_page_is_stored_once(tmp_path: Path):
    with HostileServer(robots_txt="") as server:
        server.static["/rss"] = Static((FIXTURES / "korea_kr_dept_moj.xml").read_bytes(), "application/xml")
        server.static["/list"] = Static((FIXTURES / "korea_kr_press_release_list.html").read_bytes())
        sources = [{**shipped_source("korea-kr-moj"), "url": server.url("/rss")},
                   {**shipped_source("korea-kr-press-releases"), "url": server.url("/list")}]
        config = config_from_dict({"crawl": {"allow_private_addresses": True, "per_host_delay": 0},
                                   "sources": sources}, path=None, base_dir=tmp_path)
        db = open_db(tmp_path / "crawl.db")
        run_crawl(config, db, Tagger.load(), sources=config.sources[:1])
        run_crawl(config, db, Tagger.load(), sources=config.sources[1:])
    (count,) = db.execute("SELECT count(*) FROM articles WHERE url LIKE '%newsId=156739901'").fetchone()
    assert count == 1


def test_real_korea_kr_list_page_reads_with_the_shipped_selectors(tmp_path: Path):
    """The browser-saved real page: 20 rows, permalinks by newsId, dates, ministries' leads as summaries."""
    from monitor.crawl import parse_source, select_items
    from monitor.sourcecheck import read_saved_response

    page = shared_path("corpora", "real-sources-jpkr",
                       "korea-kr_briefing_pressReleaseList_rendered-dom_2026-01-07.html")
    config = config_from_dict({"sources": [shipped_source("korea-kr-press-releases")]}, path=None,
                              base_dir=tmp_path)
    (source,) = config.sources
    parsed = parse_source(source, read_saved_response(source, page))
    assert parsed.problem is None and len(parsed.items) == 20
    assert all(i.url.startswith("https://www.korea.kr/briefing/pressReleaseView.do?newsId=") for i in parsed.items)
    assert all(i.published_at and i.published_at.date().isoformat() == "2026-01-07" for i in parsed.items)
    assert all(i.title and i.summary for i in parsed.items)
    kept, _ = select_items(source, parsed.items)
    assert [i.url for i in kept] == ["https://www.korea.kr/briefing/pressReleaseView.do?newsId=156738791"]
    assert kept[0].title == "법무부, 국제이주기구(IOM) 사무차장과 면담"


def test_rss10_in_shift_jis_with_crlf_parses_real_soumu_feed():
    raw = shared_path("corpora", "real-sources-jpkr", "soumu-go-jp_news-rdf_shift-jis_2021-07-19.rdf").read_bytes()
    assert b"\r\n" in raw and b'encoding="Shift_JIS"' in raw
    # Served as text/xml without a charset, as many ministries do: the XML declaration decides.
    parsed = parse_feed(raw, "https://www.soumu.go.jp/news.rdf", "text/xml")
    assert parsed.problem is None
    assert parsed.title == "総務省 ホームページ新着情報"
    assert len(parsed.items) == 20
    assert all(i.url.startswith("https://www.soumu.go.jp/") and i.published_at for i in parsed.items)
    jst = timezone(timedelta(hours=9))
    assert {i.published_at.astimezone(jst).date().isoformat() for i in parsed.items} == {"2021-07-16", "2021-07-19"}
    assert all("\ufffd" not in (i.title or "") and "\r" not in (i.title or "") for i in parsed.items)


def test_rss10_in_shift_jis_with_crlf_parses_own_fixture():
    raw = (FIXTURES / "moj_news.xml").read_bytes()
    assert raw.count(b"\r\n") > 40 and b'encoding="Shift_JIS"' in raw
    for content_type in (None, "text/xml", "application/rss+xml; charset=Shift_JIS"):
        parsed = parse_feed(raw, "https://www.moj.go.jp/news.xml", content_type)
        assert parsed.problem is None and len(parsed.items) == 4
        # ① and ～ exist only in Windows' Shift_JIS (CP932): a strict decoder would turn them to mojibake.
        assert parsed.items[1].title == "①相続登記の申請義務化～よくある質問を更新しました"
        assert parsed.items[0].published_at.isoformat() == "2026-03-13T05:00:00+00:00"

"""Real responses from sources the monitor reads (../shared/corpora/real-sources), served on loopback and
crawled as configured sources: a Federal Register API page and a Google News RSS feed."""

from __future__ import annotations

import json
from pathlib import Path

from monitor.config import config_from_dict
from monitor.crawl import run_crawl
from pipelines.tagging import Tagger
from storage import open_db
from tests.conftest import shared_path
from tests.hostile_server import HostileServer, Static


def test_federal_register_and_google_news_responses_are_crawled(tmp_path: Path):
    folder = shared_path("corpora", "real-sources")
    register = (folder / "federalregister-api-v1-documents-json_dhs-subset_2024-01.json").read_bytes()
    news = (folder / "google-news-rss_headlines_fr-BE_2020-03-08.xml").read_bytes()
    expected = json.loads(register)["results"]
    with HostileServer(robots_txt="") as server:
        server.static["/api/v1/documents.json"] = Static(register, "application/json")
        server.static["/rss"] = Static(news, "application/rss+xml; charset=UTF-8")
        # fetch_articles = false: the items link to the public web, and tests stay on loopback.
        config = config_from_dict({
            "crawl": {"allow_private_addresses": True, "per_host_delay": 0},
            "sources": [
                {"name": "federal-register", "kind": "json_api", "url": server.url("/api/v1/documents.json"),
                 "country": "US", "items_path": "results", "fetch_articles": False,
                 "fields": {"url": "html_url", "title": "title", "date": "publication_date",
                            "summary": "abstract", "guid": "document_number"}},
                {"name": "google-news", "kind": "feed", "url": server.url("/rss"), "fetch_articles": False},
            ],
        }, path=None, base_dir=tmp_path)
        db = open_db(tmp_path / "real.db")
        summary = run_crawl(config, db, Tagger.load())
    assert summary.sources_failed == 0, [o.error for o in summary.outcomes]
    rows = db.execute("SELECT url, title, published_at, guid, text_origin, lang FROM articles"
                      " WHERE source = 'federal-register'").fetchall()
    # Distinct documents sharing a boilerplate abstract stay distinct rows.
    assert len(rows) == len({d["html_url"] for d in expected}) == 39
    first = next(r for r in rows if r[3] == expected[0]["document_number"])
    assert first[0] == expected[0]["html_url"] and first[1] == expected[0]["title"]
    assert first[2].startswith(expected[0]["publication_date"]) and first[4] == "feed_summary"
    assert {r[5] for r in rows} == {"en"}
    (url, title, lang), = db.execute("SELECT url, title, lang FROM articles WHERE source = 'google-news'")
    assert title.startswith("Coronavirus en Belgique") and lang == "fr"
    assert "oc=" not in url, "Google News' tracking parameter is dropped from the stored URL"

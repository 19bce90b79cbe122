"""The bundled demo site over real HTTP on 127.0.0.1: content types, validators, sources and their articles."""

from __future__ import annotations

import json
import re
import socket
from email.utils import formatdate
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import feedparser
import httpx
import pytest
from bs4 import BeautifulSoup
from protego import Protego

from monitor.demo_server import SITE_DIR, demo_sources, resolve_site_path, serve_demo_site

# What each source is meant to list: article paths (query and fragment dropped), in the order served.
EXPECTED = {
    "demo-desk-rss": [
        "/articles/en-us-h1b-fee.html",
        "/articles/en-us-niw-guidance.html",  # the deliberate 404
        "/articles/en-sport-athletics.html",
        "/articles/en-eu-blue-card.html",
        "/articles/en-ca-express-entry.html",
        "/articles/en-sg-employment-pass.html",
    ],
    "demo-govuk-atom": [
        "/government/news/en-uk-skilled-worker.html",
        "/ja/press/1022.html",
    ],
    "demo-moj-press": [
        "/articles/ko-top-tier-visa.html",  # pinned notice row
        "/articles/ko-e7-professional-visas.html",
        "/articles/ko-top-tier-visa.html",
        "/articles/ko-f2r-regional-visa.html",
        "/articles/ko-eps-e9-quota.html",
    ],
    "demo-isa-press": [
        "/ja/press/1025.html",
        "/ja/press/1021.html",
        "/ja/press/1023.html",
        "/ja/press/1022.html",
        "/ja/press/1024.html",
    ],
    "demo-federal-register": ["/articles/en-us-h1b-fee.html"],
    "demo-govuk-search": [
        "/government/news/en-uk-skilled-worker.html",
        "/government/news/en-uk-global-talent.html",
    ],
}
MISSING = "/articles/en-us-niw-guidance.html"

CONTENT_TYPES = {
    "demo-desk-rss": "application/rss+xml",
    "demo-govuk-atom": "application/atom+xml",
    "demo-moj-press": "text/html",
    "demo-isa-press": "text/html",
    "demo-federal-register": "application/json",
    "demo-govuk-search": "application/json",
}


@pytest.fixture(scope="module")
def server():
    with serve_demo_site() as srv:
        yield srv


@pytest.fixture(scope="module")
def client():
    with httpx.Client(timeout=10, trust_env=False) as c:
        yield c


@pytest.fixture(scope="module")
def sources(server):
    return {s["name"]: s for s in demo_sources(server.base_url)}


def _dig(data: object, dotted: str) -> object:
    for key in dotted.split("."):
        data = data[key]  # type: ignore[index]
    return data


def source_links(source: dict, response: httpx.Response) -> list[str]:
    """The article URLs a source lists, found the way its config says (independent of the pipelines)."""
    if source["kind"] == "feed":
        parsed = feedparser.parse(response.content)
        assert not parsed.bozo, parsed.get("bozo_exception")
        return [e.link for e in parsed.entries]
    if source["kind"] == "json_api":
        fields = source["fields"]
        base = source.get("base_url", source["url"])
        return [urljoin(base, item[fields["url"]]) for item in _dig(response.json(), source["items_path"])]
    sel = source["selectors"]
    soup = BeautifulSoup(response.text, "html.parser")
    links = []
    for item in soup.select(sel["item"]):
        anchor = item.select_one(sel["link"])
        value = anchor.get(sel.get("link_attr", "href"))
        if "link_regex" in sel:
            m = re.search(sel["link_regex"], value)
            value = sel["link_template"].replace("{1}", m.group(1))
        links.append(urljoin(source["url"], value))
    return links


def test_sources_file_is_substituted_plain_dicts(server, sources):
    assert list(sources) == list(EXPECTED)
    for s in sources.values():
        assert type(s) is dict
        assert s["kind"] in {"feed", "html_list", "json_api"}
        assert s["url"].startswith(server.base_url + "/")
        assert "{{BASE}}" not in json.dumps(s)
        assert s["country"] in {"US", "GB", "KR", "JP"} and s["lang"] in {"en", "ko", "ja"}
    assert sources["demo-govuk-search"]["base_url"] == server.base_url
    assert sources["demo-isa-press"]["selectors"]["link_template"] == server.base_url + "/ja/press/{1}.html"


def test_base_url_is_loopback_with_a_real_port(server):
    parts = urlsplit(server.base_url)
    assert parts.scheme == "http" and parts.hostname == "127.0.0.1" and parts.port > 0
    assert not server.base_url.endswith("/")


@pytest.mark.parametrize("name", list(EXPECTED))
def test_each_source_serves_its_content_type_with_base_substituted(server, client, sources, name):
    r = client.get(sources[name]["url"])
    assert r.status_code == 200
    assert r.headers["content-type"].split(";")[0] == CONTENT_TYPES[name]
    if r.headers["content-type"].startswith(("text/", "application/rss", "application/atom")):
        assert "charset=utf-8" in r.headers["content-type"]
    assert "{{BASE}}" not in r.text
    assert r.headers["etag"] and r.headers["last-modified"]


@pytest.mark.parametrize("name", list(EXPECTED))
def test_each_source_lists_the_intended_articles(server, client, sources, name):
    links = source_links(sources[name], client.get(sources[name]["url"]))
    assert [urlsplit(u).path for u in links] == EXPECTED[name]
    for u in links:
        assert u.startswith(server.base_url + "/"), u


def test_every_linked_article_exists_except_the_deliberate_404(client, sources):
    seen: dict[str, int] = {}
    for source in sources.values():
        for url in source_links(source, client.get(source["url"])):
            seen[urlsplit(url).path] = client.get(url).status_code
    assert seen.pop(MISSING) == 404
    assert set(seen.values()) == {200}
    assert len(seen) == 16  # every article file is reachable from some source
    on_disk = {"/" + p.relative_to(SITE_DIR).as_posix() for p in _article_files()}
    assert set(seen) == on_disk


def test_dedup_overlap_tracking_params_and_fragment(client, sources):
    rss = source_links(sources["demo-desk-rss"], client.get(sources["demo-desk-rss"]["url"]))
    fr = source_links(sources["demo-federal-register"], client.get(sources["demo-federal-register"]["url"]))
    tracked = urlsplit(rss[0])
    assert "utm_source=rss" in tracked.query and tracked.fragment == "fee-details"
    assert tracked._replace(query="", fragment="").geturl() == fr[0]
    # the tracked URL still serves the same page as the clean one
    assert client.get(rss[0]).text == client.get(fr[0]).text


def test_deliberate_404_item_has_a_summary_to_stand_in(client, sources):
    parsed = feedparser.parse(client.get(sources["demo-desk-rss"]["url"]).content)
    entry = next(e for e in parsed.entries if e.link.endswith(MISSING))
    assert "National Interest Waiver" in entry.summary and "EB-2" in entry.summary


def test_atom_ids_are_timestamped_and_one_entry_is_japanese(client, sources):
    parsed = feedparser.parse(client.get(sources["demo-govuk-atom"]["url"]).content)
    assert all(re.search(r"#\d{4}-\d\d-\d\dT", e.id) for e in parsed.entries)
    ja = [e for e in parsed.entries if "高度" in e.title or "J-Skip" in e.title]
    assert len(ja) == 1 and ja[0].title_detail.language == "ja"


def test_board_dates_are_in_the_formats_boards_use(client, sources):
    for name, pattern in [("demo-moj-press", r"^\d{4}\.\d\d\.\d\d$"), ("demo-isa-press", r"^令和\d+年\d+月\d+日$")]:
        soup = BeautifulSoup(client.get(sources[name]["url"]).text, "html.parser")
        sel = sources[name]["selectors"]
        dates = [item.select_one(sel["date"]).get_text(strip=True) for item in soup.select(sel["item"])]
        assert dates and all(re.match(pattern, d) for d in dates), dates


def test_etag_gives_304(server, client):
    url = server.base_url + "/feeds/news.rss"
    first = client.get(url)
    again = client.get(url, headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == first.headers["etag"]
    changed = client.get(url, headers={"If-None-Match": '"something-else"'})
    assert changed.status_code == 200 and changed.content == first.content


def test_if_modified_since_gives_304_and_if_none_match_wins(server, client):
    url = server.base_url + "/api/search.json"
    first = client.get(url)
    lm = first.headers["last-modified"]
    assert client.get(url, headers={"If-Modified-Since": lm}).status_code == 304
    assert client.get(url, headers={"If-Modified-Since": formatdate(0, usegmt=True)}).status_code == 200
    assert client.get(url, headers={"If-Modified-Since": "not a date"}).status_code == 200
    both = client.get(url, headers={"If-Modified-Since": lm, "If-None-Match": '"stale"'})
    assert both.status_code == 200


def test_etag_differs_per_base_url(client):
    with serve_demo_site() as a, serve_demo_site() as b:
        ra, rb = client.get(a.base_url + "/feeds/news.rss"), client.get(b.base_url + "/feeds/news.rss")
        assert a.base_url in ra.text and b.base_url in rb.text
        assert ra.headers["etag"] != rb.headers["etag"]


@pytest.mark.parametrize(
    "path",
    ["/nope.html", "/articles/missing.html", "/sources.toml", "/../pyproject.toml", "/%2e%2e/demo_server.py"],
)
def test_unknown_paths_are_404(server, client, path):
    r = client.get(server.base_url + path)
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")


def test_resolve_site_path_stays_inside_the_site():
    assert resolve_site_path("/") == SITE_DIR / "index.html"
    assert resolve_site_path("/articles/en-us-h1b-fee.html?utm_source=x#y") == SITE_DIR / "articles/en-us-h1b-fee.html"
    assert resolve_site_path("/../demo_server.py") is None
    assert resolve_site_path("/sources.toml") is None


def test_robots_txt_allows_everything(server, client):
    r = client.get(server.base_url + "/robots.txt")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    robots = Protego.parse(r.text)
    assert robots.can_fetch(server.base_url + "/articles/en-us-h1b-fee.html", "policy-monitor")


def test_head_has_headers_and_no_body(server, client):
    r = client.head(server.base_url + "/ja/press/index.html")
    assert r.status_code == 200 and r.content == b"" and int(r.headers["content-length"]) > 1000


def test_request_log_records_method_path_status(client):
    with serve_demo_site() as srv:
        client.get(srv.base_url + "/feeds/news.rss?x=1")
        client.get(srv.base_url + "/gone.html")
        assert srv.request_log == [("GET", "/feeds/news.rss?x=1", 200), ("GET", "/gone.html", 404)]


def test_close_releases_the_port_and_nothing_goes_to_stderr(client, capfd):
    srv = serve_demo_site()
    client.get(srv.base_url + "/")
    client.get(srv.base_url + "/missing")
    srv.close()
    srv.close()  # idempotent
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is not "in use"
        s.bind(("127.0.0.1", srv.port))  # free again
    with pytest.raises(httpx.ConnectError):
        client.get(srv.base_url + "/")
    out, err = capfd.readouterr()
    assert err == ""


def _article_files() -> list[Path]:
    return [p for p in SITE_DIR.rglob("*.html") if p.name != "index.html" and p.parent.name != "bbs"]


def test_articles_have_lang_title_h1_date_and_page_chrome():
    langs: dict[str, int] = {}
    for p in _article_files():
        soup = BeautifulSoup(p.read_text(encoding="utf-8"), "html.parser")
        lang = soup.html["lang"]
        langs[lang] = langs.get(lang, 0) + 1
        assert soup.title.string.strip() and soup.h1.get_text(strip=True), p
        assert re.match(r"\d{4}-\d\d-\d\d$", soup.find("time")["datetime"]), p
        assert soup.find("time").get_text(strip=True), p
        assert soup.find("nav") and soup.find("footer") and soup.find("aside"), p
        assert soup.find(string=re.compile("(?i)cookie|쿠키")), p
    assert langs == {"en": 7, "ko": 4, "ja": 5}


@pytest.mark.parametrize(
    ("path", "needles"),
    [
        ("ja/press/1021.html", ["高度専門職", "46,946", "313", "2012"]),
        ("ja/press/1022.html", ["J-Skip", "J-Find", "2,000万円", "週28時間"]),
        ("ja/press/1023.html", ["特定技能", "育成就労", "2027年4月1日", "82万人"]),
        ("ja/press/1024.html", ["230万2,587人", "146万463人", "週28時間", "12.4%"]),
        ("articles/ko-top-tier-visa.html", ["톱티어", "반도체", "F-2", "1억 4,986만 원"]),
        ("articles/ko-e7-professional-visas.html", ["E-7-4", "E-1", "3만 5천 명"]),
        ("articles/ko-eps-e9-quota.html", ["고용허가제", "E-9", "13만 명", "16만 5천 명"]),
        ("articles/en-us-h1b-fee.html", ["H-1B", "$100,000", "85,000", "O-1", "EB-2"]),
        ("articles/en-sg-employment-pass.html", ["Employment Pass", "COMPASS", "S$5,600 a month"]),
    ],
)
def test_key_facts_are_on_the_pages(path, needles):
    text = (SITE_DIR / path).read_text(encoding="utf-8")
    for needle in needles:
        assert needle in text, (path, needle)


def test_json_apis_have_their_real_shapes(client, sources):
    fr = client.get(sources["demo-federal-register"]["url"]).json()
    assert fr["count"] == len(fr["results"])
    assert {"title", "html_url", "publication_date", "abstract", "document_number"} <= set(fr["results"][0])
    gs = client.get(sources["demo-govuk-search"]["url"]).json()
    assert all(r["link"].startswith("/") and "://" not in r["link"] for r in gs["results"])


def test_demo_sources_pass_the_config_loader_and_the_source_parsers(server, client):
    """sources.toml is in the config format: the loader accepts it and each parser finds the intended links."""
    from monitor.config import config_from_dict
    from pipelines.feeds import parse_feed
    from pipelines.jsonapi import parse_json_api
    from pipelines.listing import parse_listing

    config = config_from_dict({"sources": demo_sources(server.base_url)}, path=None, base_dir=Path.cwd())
    for source in config.sources:
        r = client.get(source.url)
        if source.kind == "html_list":
            parsed = parse_listing(r.text, source.url, source.listing)
        elif source.kind == "json_api":
            parsed = parse_json_api(r.content, source.base_url or source.url, source.json_api)
        else:
            parsed = parse_feed(r.content, source.url, r.headers["content-type"])
        assert parsed.problem is None, (source.name, parsed.problem)
        paths = [urlsplit(item.url).path for item in parsed.items]
        assert paths == list(dict.fromkeys(EXPECTED[source.name])), source.name  # board's pinned duplicate dropped
        assert all(item.published_at is not None for item in parsed.items), source.name

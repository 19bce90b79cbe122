"""canonicalize_url, url_host and is_http_url on a table of cases."""

from __future__ import annotations

import pytest

from pipelines.urls import canonicalize_url, is_http_url, is_tracking_param, resolve_http_url, url_host

CANONICAL_CASES = [
    # scheme and host lower-cased, path case kept
    ("HTTPS://WWW.Example.COM/News/Item", "https://www.example.com/News/Item"),
    # default ports dropped, others kept
    ("http://example.com:80/a", "http://example.com/a"),
    ("https://example.com:443/a", "https://example.com/a"),
    ("https://example.com:8443/a", "https://example.com:8443/a"),
    ("http://example.com:443/a", "http://example.com:443/a"),
    # fragment dropped (GOV.UK organisation feeds put the update time there)
    ("https://www.gov.uk/government/news/x#2025-07-20T10:00:00+01:00", "https://www.gov.uk/government/news/x"),
    # tracking parameters dropped, the rest sorted
    (
        "https://example.com/p?utm_source=rss&utm_medium=feed&id=7&fbclid=abc&gclid=1",
        "https://example.com/p?id=7",
    ),
    ("https://example.com/p?UTM_Campaign=x&b=2&a=1", "https://example.com/p?a=1&b=2"),
    ("https://example.com/p?mc_cid=1&mc_eid=2&_ga=3&yclid=4&igshid=5&ref_src=6&dclid=7&msclkid=8", "https://example.com/p"),
    # Google News per-request token
    ("https://news.google.com/rss/articles/CBMiK2h0?oc=5", "https://news.google.com/rss/articles/CBMiK2h0"),
    ("https://news.google.com/rss/articles/CBMiK2h0?hl=ko&OC=5", "https://news.google.com/rss/articles/CBMiK2h0?hl=ko"),
    # ... which elsewhere may select a document (a board's category, an office code)
    ("https://www.example.go.kr/board/list.do?oc=5&page=2", "https://www.example.go.kr/board/list.do?oc=5&page=2"),
    # parameters without a name are dropped, as the docstring says
    ("https://example.com/p?=x&a=1&=&&b", "https://example.com/p?a=1&b"),
    ("https://example.com/p?=x", "https://example.com/p"),
    # lone surrogates (JSON "\ud800") become U+FFFD, the same key Item's scrubbing gives
    ("https://example.com/a\ud800b?q=\udc00", "https://example.com/a%EF%BF%BDb?q=%EF%BF%BD"),
    ("https://example.com/a\ufffdb?q=\ufffd", "https://example.com/a%EF%BF%BDb?q=%EF%BF%BD"),
    # empty query / lone "?" removed; empty path becomes "/"
    ("https://example.com/a?", "https://example.com/a"),
    ("https://example.com", "https://example.com/"),
    ("https://example.com?utm_source=x", "https://example.com/"),
    # percent-encoding: unreserved decoded, hex upper-cased, reserved escapes kept,
    # raw spaces and non-ASCII encoded
    ("https://example.com/%7euser/%41b%2fc", "https://example.com/~user/Ab%2Fc"),
    ("https://example.com/a b/é", "https://example.com/a%20b/%C3%A9"),
    ("https://example.com/s?q=a%2bb&x=%e2%82%ac", "https://example.com/s?q=a%2Bb&x=%E2%82%AC"),
    ("https://example.com/100%/x", "https://example.com/100%25/x"),
    # repeated parameters keep their relative order; valueless parameters keep their form
    ("https://example.com/p?f=b&a=1&f=a&flag", "https://example.com/p?a=1&f=b&f=a&flag"),
    # Korean board URL with a path id: unchanged apart from the host case
    ("https://www.MOJ.go.kr/bbs/moj/182/581234/artclView.do", "https://www.moj.go.kr/bbs/moj/182/581234/artclView.do"),
    # trailing dot of a fully-qualified host dropped
    ("https://example.com./a", "https://example.com/a"),
    # user info kept, host part lower-cased
    ("https://User@Example.com/a", "https://User@example.com/a"),
    # IPv6 literal
    ("http://[::1]:80/a", "http://[::1]/a"),
    # surrounding whitespace
    ("  https://example.com/a \n", "https://example.com/a"),
    # not absolute: returned stripped, unchanged
    ("/relative/path?utm_source=x", "/relative/path?utm_source=x"),
    ("not a url", "not a url"),
]


@pytest.mark.parametrize(("url", "expected"), CANONICAL_CASES)
def test_canonicalize_url(url: str, expected: str) -> None:
    assert canonicalize_url(url) == expected


@pytest.mark.parametrize(("url", "_expected"), CANONICAL_CASES)
def test_canonicalize_url_is_idempotent(url: str, _expected: str) -> None:
    once = canonicalize_url(url)
    assert canonicalize_url(once) == once


def test_same_article_variants_share_one_key() -> None:
    variants = [
        "https://www.uscis.gov/newsroom/news-releases/x",
        "HTTPS://www.uscis.gov:443/newsroom/news-releases/x#main",
        "https://www.uscis.gov/newsroom/news-releases/x?utm_source=rss&utm_medium=rss",
        "https://www.uscis.gov/newsroom/news-releases/x?",
    ]
    assert len({canonicalize_url(v) for v in variants}) == 1


def test_malformed_urls_do_not_raise() -> None:
    for url in ["http://[::1", "http://example.com:99999/a", "http://exa mple.com/", "", "https://", "http://x/\udfff"]:
        assert isinstance(canonicalize_url(url), str)


def test_tracking_params_come_from_the_data_file() -> None:
    assert is_tracking_param("utm_content")
    assert is_tracking_param("FBCLID")
    assert not is_tracking_param("id")
    assert not is_tracking_param("page")


def test_host_scoped_tracking_params() -> None:
    # "news.google.com:oc" in the data file: oc is Google News's token, not a parameter of every site
    assert is_tracking_param("oc", "news.google.com")
    assert is_tracking_param("OC", "News.Google.com.")
    assert is_tracking_param("oc", "eu.news.google.com")
    assert not is_tracking_param("oc", "www.google.com")
    assert not is_tracking_param("oc", "notnews.google.com")
    assert not is_tracking_param("oc")
    assert is_tracking_param("utm_source", "news.google.com")  # global names apply on every host


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("https://WWW.GOV.UK/government/news", "www.gov.uk"),
        ("http://user:pw@example.com:8080/x", "example.com"),
        ("http://[::1]:8000/", "::1"),
        ("/relative", ""),
        ("http://[::1", ""),
    ],
)
def test_url_host(url: str, host: str) -> None:
    assert url_host(url) == host


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://example.com/", True),
        ("HTTP://example.com", True),
        ("ftp://example.com/", False),
        ("file:///etc/passwd", False),
        ("javascript:void(0)", False),
        ("/relative", False),
        ("https://", False),
        ("", False),
        (None, False),
    ],
)
def test_is_http_url(url: str | None, ok: bool) -> None:
    assert is_http_url(url) is ok


@pytest.mark.parametrize(
    ("link", "expected"),
    [
        ("/government/news/x", "https://www.gov.uk/government/news/x"),
        ("  https://e.org/a  ", "https://e.org/a"),
        ("javascript:void(0)", None),
        ("mailto:press@example.org", None),
        ("", None),
        (None, None),
        (123, None),
    ],
)
def test_resolve_http_url(link, expected):
    assert resolve_http_url(link, "https://www.gov.uk/search") == expected

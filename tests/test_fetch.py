"""pipelines.fetch against the hostile server on 127.0.0.1: every test bounds its time and checks the record."""

from __future__ import annotations

import asyncio
import gzip
import json
import resource
import socket
import time
import tracemalloc
import zlib
from collections.abc import Iterator
from datetime import UTC

import pytest

from pipelines.fetch import Fetcher, FetchResult, FetchSettings, host_key
from tests.hostile_server import (
    CONDITIONAL_ETAG,
    CONDITIONAL_LAST_MODIFIED,
    EN_CP1252_TEXT,
    JA_TEXT,
    KO_TEXT,
    ZH_TEXT,
    HostileServer,
    Static,
)

ROBOTS_NO_DELAY = "User-agent: *\nDisallow: /private/\n"


@pytest.fixture(scope="module")
def server() -> Iterator[HostileServer]:
    with HostileServer(robots_txt=ROBOTS_NO_DELAY) as hostile:
        yield hostile


def settings(**overrides: object) -> FetchSettings:
    """Fast settings for loopback tests."""
    values: dict[str, object] = dict(timeout=2.0, connect_timeout=1.0, per_host_delay=0.0, backoff_base=0.05,
                                     allow_private_addresses=True, max_tries=3)
    values.update(overrides)
    return FetchSettings(**values)  # type: ignore[arg-type]


def fetch(url: str, expect: str = "any", *, within: float, fetch_settings: FetchSettings | None = None,
          **kwargs: object) -> FetchResult:
    """Fetch one URL with a fresh Fetcher and assert it took less than `within` seconds."""

    async def go() -> FetchResult:
        async with Fetcher(fetch_settings or settings()) as fetcher:
            return await fetcher.fetch(url, expect=expect, **kwargs)  # type: ignore[arg-type]

    started = time.monotonic()
    result = asyncio.run(go())
    elapsed = time.monotonic() - started
    assert elapsed < within, f"{url} took {elapsed:.2f} s"
    return result


def page_records(result: FetchResult) -> list:
    return [r for r in result.records if not r.url.endswith("/robots.txt")]


# -- success, validators, headers ------------------------------------------------------------

def test_ok_page_is_decoded_and_every_request_recorded(server: HostileServer) -> None:
    result = fetch(server.url("/ok"), "html", within=3)
    assert result.ok and result.status == 200 and result.error == ""
    assert "skilled worker visa" in (result.text or "") and result.encoding == "utf-8"
    assert [r.url for r in result.records] == [server.url("/robots.txt"), server.url("/ok")]
    record = result.records[-1]
    assert record.status == 200 and record.error == "" and record.message == ""
    assert record.bytes == len(result.content) > 0
    assert record.fetched_at.tzinfo is UTC and record.elapsed > 0


def test_user_agent_from_settings_is_sent(server: HostileServer) -> None:
    ua = "policy-monitor-test/9 (+https://example.org/contact)"
    result = fetch(server.url("/echo"), "json", within=3, fetch_settings=settings(user_agent=ua))
    assert json.loads(result.text or "{}")["User-Agent"] == ua


def test_conditional_get_gives_not_modified_without_body(server: HostileServer) -> None:
    first = fetch(server.url("/conditional"), "html", within=3)
    assert first.ok and first.etag == CONDITIONAL_ETAG and first.last_modified == CONDITIONAL_LAST_MODIFIED
    second = fetch(server.url("/conditional"), "html", within=3, etag=first.etag, last_modified=first.last_modified)
    assert second.not_modified and second.status == 304 and not second.ok and second.error == ""
    assert second.content == b"" and second.text is None
    assert second.etag == CONDITIONAL_ETAG
    assert server.hits("/conditional")[-1].headers.get("If-None-Match") == CONDITIONAL_ETAG
    only_date = fetch(server.url("/conditional"), "html", within=3, last_modified=CONDITIONAL_LAST_MODIFIED)
    assert only_date.not_modified


def test_static_pages_answer_conditional_gets_and_can_change(server: HostileServer) -> None:
    server.static["/feed-static.xml"] = Static("<rss version='2.0'><channel/></rss>", "application/rss+xml")
    first = fetch(server.url("/feed-static.xml"), "feed", within=3)
    assert first.ok and first.etag
    again = fetch(server.url("/feed-static.xml"), "feed", within=3, etag=first.etag, last_modified=first.last_modified)
    assert again.not_modified
    server.static["/feed-static.xml"] = Static("<rss version='2.0'><channel><title>new</title></channel></rss>",
                                               "application/rss+xml")
    changed = fetch(server.url("/feed-static.xml"), "feed", within=3, etag=first.etag)
    assert changed.ok and "new" in (changed.text or "") and changed.etag != first.etag


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "raw-deflate"])
def test_compressed_bodies_are_decoded(server: HostileServer, encoding: str) -> None:
    page = ("<html><body><p>" + "Visa quota news. " * 500 + "</p></body></html>").encode()
    if encoding == "gzip":
        body = gzip.compress(page)
    elif encoding == "deflate":
        body = zlib.compress(page)
    else:
        compressor = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
        body = compressor.compress(page) + compressor.flush()
    header = "gzip" if encoding == "gzip" else "deflate"
    server.static[f"/compressed-{encoding}"] = Static(body, headers={"Content-Encoding": header})
    result = fetch(server.url(f"/compressed-{encoding}"), "html", within=3)
    assert result.ok and result.content == page
    assert result.records[-1].bytes == len(body) < len(page)


# -- retries ---------------------------------------------------------------------------------

def test_500_is_retried_up_to_max_tries(server: HostileServer) -> None:
    before = len(server.hits("/500"))
    result = fetch(server.url("/500"), "html", within=3)
    assert result.error == "HTTPStatus" and result.status == 500 and result.transient
    assert [r.status for r in page_records(result)] == [500, 500, 500]
    assert all(r.error == "HTTPStatus" for r in page_records(result))
    assert len(server.hits("/500")) - before == 3


def test_503_then_200_succeeds_within_the_call(server: HostileServer) -> None:
    result = fetch(server.url("/503-then-200?key=retry-test"), "html", within=3)
    assert result.ok and "skilled worker visa" in (result.text or "")
    assert [(r.status, r.error) for r in page_records(result)] == [(503, "HTTPStatus"), (200, "")]


def test_429_retry_after_is_honoured(server: HostileServer) -> None:
    started = time.monotonic()
    result = fetch(server.url("/429-then-200?key=ra-test&retry_after=1"), "html", within=3)
    assert result.ok
    assert time.monotonic() - started >= 0.95  # waited for Retry-After: 1, not the 0.05 s backoff
    hits = server.hits("/429-then-200")[-2:]
    assert hits[1].started - hits[0].started >= 0.95


def test_retry_after_as_http_date_is_understood(server: HostileServer) -> None:
    result = fetch(server.url("/503-date-then-200?key=date-test"), "html", within=3)
    assert result.ok and [r.status for r in page_records(result)] == [503, 200]


def test_long_retry_after_gives_up_at_once_and_backs_off_the_host(server: HostileServer) -> None:
    async def go() -> tuple[FetchResult, FetchResult]:
        async with Fetcher(settings()) as fetcher:
            first = await fetcher.fetch(server.url("/429-long"), expect="html")
            second = await fetcher.fetch(server.url("/ok"), expect="html")
            return first, second

    before = len(server.requests)
    started = time.monotonic()
    first, second = asyncio.run(go())
    assert time.monotonic() - started < 1.5
    assert first.error == "HTTPStatus" and first.status == 429 and first.retry_later and first.retry_after == 3600
    assert len(page_records(first)) == 1
    # The host said "an hour": the same Fetcher doesn't knock again, and says so in the record.
    assert second.error == "HostBackoff" and second.retry_later and second.records[0].status is None
    assert [s.path for s in server.requests[before:]] == ["/robots.txt", "/429-long"]


def test_retry_after_with_non_ascii_digits_is_ignored_not_raised() -> None:
    with HostileServer(static={"/odd-503": Static("busy", status=503, headers={"Retry-After": "\u00b2"})}) as hostile:
        result = fetch(hostile.url("/odd-503"), "html", within=3)
    assert result.error == "HTTPStatus" and result.status == 503 and result.retry_after is None
    assert len(page_records(result)) == 3


def test_short_retry_after_holds_the_host_for_later_fetchers_too() -> None:
    from pipelines.fetch import HostMemory

    memory = HostMemory()
    with HostileServer(robots_txt="") as hostile:
        async def one(path: str) -> FetchResult:
            async with Fetcher(settings(max_tries=1), memory=memory) as fetcher:
                return await fetcher.fetch(hostile.url(path))

        assert asyncio.run(one("/429")).status == 429  # Retry-After: 1
        assert asyncio.run(one("/ok")).ok
        gap = hostile.hits("/ok")[0].started - hostile.hits("/429")[0].started
    assert gap >= 0.9, f"the next Fetcher waited out the Retry-After (gap {gap:.2f} s)"


def test_404_is_not_retried(server: HostileServer) -> None:
    result = fetch(server.url("/404"), "html", within=2)
    assert result.error == "HTTPStatus" and result.status == 404 and not result.transient
    assert len(page_records(result)) == 1


def test_connection_refused_is_retried_and_recorded() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = fetch(f"http://127.0.0.1:{port}/ok", "html", within=3,
                   fetch_settings=settings(max_tries=2, obey_robots=False))
    assert result.error == "ConnectError" and result.transient and result.status is None
    assert [r.error for r in result.records] == ["ConnectError", "ConnectError"]


# -- redirects -------------------------------------------------------------------------------

def test_redirect_chain_within_limit_is_followed(server: HostileServer) -> None:
    result = fetch(server.url("/redirect-chain?n=5"), "html", within=3)
    assert result.ok and result.final_url == server.url("/ok")
    assert [r.status for r in page_records(result)] == [302] * 5 + [200]


def test_too_many_redirects_are_cut(server: HostileServer) -> None:
    result = fetch(server.url("/redirect-chain?n=6"), "html", within=3)
    assert result.error == "TooManyRedirects" and len(page_records(result)) == 6
    assert page_records(result)[-1].error == "TooManyRedirects"


def test_redirect_loop_is_cut(server: HostileServer) -> None:
    result = fetch(server.url("/redirect-loop"), "html", within=2)
    assert result.error == "TooManyRedirects" and "loop" in result.message
    assert len(page_records(result)) == 2


def test_redirect_to_file_is_refused(server: HostileServer) -> None:
    result = fetch(server.url("/redirect-file"), "html", within=2)
    assert result.error == "RedirectRefused" and "file" in result.message
    assert result.final_url == server.url("/redirect-file") and result.content == b""


@pytest.mark.parametrize("location", ["ftp://example.org/x", "javascript:alert(1)", "http://[bad"])
def test_redirect_to_other_schemes_or_garbage_is_refused(server: HostileServer, location: str) -> None:
    from urllib.parse import quote

    result = fetch(server.url(f"/redirect?to={quote(location, safe='')}"), "html", within=2)
    assert result.error == "RedirectRefused"


# -- size, time, broken connections ----------------------------------------------------------

def _peak_memory(run) -> tuple[FetchResult, int]:  # type: ignore[no-untyped-def]
    tracemalloc.start()
    try:
        result = run()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_declared_50mb_body_is_refused_before_download(server: HostileServer) -> None:
    result = fetch(server.url("/big"), "html", within=2)
    assert result.error == "TooLarge" and "Content-Length" in result.message
    assert result.records[-1].bytes < 1_000_000


def test_undeclared_50mb_body_is_cut_while_streaming(server: HostileServer) -> None:
    limit = 2_000_000
    result, peak = _peak_memory(lambda: fetch(server.url("/big-chunked"), "html", within=5,
                                              fetch_settings=settings(max_bytes=limit)))
    assert result.error == "TooLarge" and result.content == b""
    assert limit < result.records[-1].bytes < limit + 1_000_000
    assert peak < 4 * limit, f"peak {peak} bytes"


def test_gzip_bomb_is_cut_on_decompressed_size_with_little_memory(server: HostileServer) -> None:
    limit = 10_000_000  # the default max_bytes
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    result, peak = _peak_memory(lambda: fetch(server.url("/gzip-bomb"), "html", within=5,
                                              fetch_settings=settings(max_bytes=limit)))
    assert result.error == "TooLarge" and "decompress" in result.message
    assert result.records[-1].bytes < 100_000  # a few KB on the wire were enough to cross 10 MB expanded
    assert peak < 3 * limit, f"peak {peak} bytes"  # over 1 GB was on offer
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before < 100_000


def test_stall_after_headers_times_out_at_the_deadline(server: HostileServer) -> None:
    result = fetch(server.url("/stall"), "html", within=2.5, fetch_settings=settings(timeout=1.0, max_tries=1))
    assert result.error == "Timeout" and result.transient and result.status == 200


def test_stall_before_headers_times_out(server: HostileServer) -> None:
    result = fetch(server.url("/stall-headers"), "html", within=2.5, fetch_settings=settings(timeout=1.0, max_tries=1))
    assert result.error == "Timeout" and result.status is None


def test_trickle_is_bounded_by_the_whole_request_deadline(server: HostileServer) -> None:
    # Each byte arrives well within the read timeout; only the whole-request deadline can stop it.
    s = settings(timeout=1.0, read_timeout=10.0, max_tries=2)
    result = fetch(server.url("/trickle?interval=0.2&length=100"), "html", within=1.6, fetch_settings=s)
    assert result.error == "Timeout" and "1 s" in result.message and result.transient
    assert [r.error for r in page_records(result)] == ["Timeout"]
    assert 0.9 < page_records(result)[0].elapsed < 1.2


@pytest.mark.parametrize("path", ["/trickle?interval=0.5&length=100", "/stall", "/stall-headers"])
def test_timeout_is_one_budget_for_the_whole_call_retries_included(server: HostileServer, path: str) -> None:
    """Issue 4: a slow server must not hold a worker beyond `timeout`, however many tries are allowed."""
    result = fetch(server.url(path), "html", within=1.5 + 0.4, fetch_settings=settings(timeout=1.5, max_tries=3))
    assert result.error == "Timeout" and len(page_records(result)) == 1


def test_slow_robots_txt_and_page_share_one_budget() -> None:
    with HostileServer(static={"/robots.txt": Static("User-agent: *\nAllow: /\n", content_type="text/plain",
                                                     delay=0.8)}) as hostile:
        result = fetch(hostile.url("/stall"), "html", within=1.5 + 0.4, fetch_settings=settings(timeout=1.5))
        assert result.error == "Timeout" and [r.error for r in result.records] == ["", "Timeout"]
        assert result.records[1].elapsed < 0.9  # only what robots.txt left of the 1.5 s


def test_fast_failures_are_retried_within_the_budget(server: HostileServer) -> None:
    s = settings(timeout=1.5, max_tries=3, backoff_base=0.2)
    result = fetch(server.url("/503-then-200?key=budget-test&times=2"), "html", within=1.5, fetch_settings=s)
    assert result.ok and [r.status for r in page_records(result)] == [503, 503, 200]


def test_a_retry_after_beyond_the_budget_is_not_waited_for(server: HostileServer) -> None:
    s = settings(timeout=1.5)
    result = fetch(server.url("/429-then-200?key=over-budget&retry_after=5"), "html", within=1.0, fetch_settings=s)
    assert result.status == 429 and result.retry_later and result.retry_after == 5
    assert len(page_records(result)) == 1


def test_connection_dropped_mid_body_is_an_error(server: HostileServer) -> None:
    result = fetch(server.url("/drop"), "html", within=3, fetch_settings=settings(max_tries=2))
    assert result.error == "ConnectionDropped" and not result.ok and result.content == b""
    assert [r.error for r in page_records(result)] == ["ConnectionDropped", "ConnectionDropped"]
    assert page_records(result)[0].bytes == 1000


# -- content types and charsets --------------------------------------------------------------

@pytest.mark.parametrize("path", ["/png-as-html", "/html-as-png", "/png-untyped", "/pdf"])
def test_non_html_where_html_expected_is_recorded_not_parsed(server: HostileServer, path: str) -> None:
    result = fetch(server.url(path), "html", within=2)
    assert result.error == "UnexpectedContentType" and result.text is None and result.content == b""
    assert result.content_type == {"/png-untyped": "", "/pdf": "application/pdf"}.get(path, "image/png")
    assert result.records[-1].error == "UnexpectedContentType" and result.records[-1].status == 200


def test_expect_any_takes_images_as_bytes(server: HostileServer) -> None:
    result = fetch(server.url("/png-as-html"), "any", within=2)
    assert result.ok and result.content.startswith(b"\x89PNG") and result.text is None


def test_feed_and_json_expectations(server: HostileServer) -> None:
    assert fetch(server.url("/json"), "json", within=2).ok
    assert fetch(server.url("/billion-laughs.xml"), "feed", within=2).ok
    assert fetch(server.url("/png-as-html"), "feed", within=2).error == "UnexpectedContentType"
    assert fetch(server.url("/png-as-html"), "json", within=2).error == "UnexpectedContentType"


def test_invalid_utf8_is_decoded_with_replacement_characters(server: HostileServer) -> None:
    result = fetch(server.url("/invalid-utf8"), "html", within=2)
    assert result.ok and result.encoding == "utf-8"
    assert "\ufffd" in (result.text or "") and "café" in (result.text or "") and "— ok" in (result.text or "")


@pytest.mark.parametrize(("path", "expected", "encoding"), [
    ("/sjis-meta", JA_TEXT, "cp932"),
    ("/eucjp-meta", JA_TEXT, "euc_jp"),
    ("/euckr-meta", KO_TEXT, "cp949"),
    ("/gb18030-meta", ZH_TEXT, "gb18030"),
    ("/latin1-cp1252", EN_CP1252_TEXT, "cp1252"),
    ("/sjis-xml", JA_TEXT, "cp932"),
])
def test_legacy_charsets_are_stored_as_correct_unicode(
    server: HostileServer, path: str, expected: str, encoding: str
) -> None:
    result = fetch(server.url(path), "feed" if path.endswith("xml") else "html", within=2)
    assert result.ok and result.encoding == encoding
    assert expected in (result.text or "") and "\ufffd" not in (result.text or "")


@pytest.mark.parametrize(("content_type", "head"), [
    ("text/html; charset=base64", ""), ("text/html; charset=undefined", ""), ("text/html; charset=idna", ""),
    ("text/html", "<meta charset=rot13>"), ("text/html", "<meta charset=hex>"),
])
def test_unusable_charset_labels_never_break_a_fetch(content_type: str, head: str) -> None:
    body = f"<html><head>{head}</head><body><p>caf\u00e9 \u2460</p></body></html>".encode()
    with HostileServer(static={"/odd": Static(body, content_type=content_type)}) as hostile:
        result = fetch(hostile.url("/odd"), "html", within=2)
    assert result.ok and result.encoding == "utf-8" and "caf\u00e9 \u2460" in (result.text or "")


def test_euc_jp_page_with_nec_specials_is_read_whole() -> None:
    body = f'<html><head><meta charset="EUC-JP"></head><body><p>\u2460 {JA_TEXT}</p></body></html>'
    with HostileServer(static={"/nec": Static(body.encode("euc_jis_2004"), content_type="text/html")}) as hostile:
        result = fetch(hostile.url("/nec"), "html", within=2)
    assert result.ok and f"\u2460 {JA_TEXT}" in (result.text or "") and "\ufffd" not in (result.text or "")


# -- robots.txt and politeness ---------------------------------------------------------------

def test_robots_disallow_is_obeyed_without_requesting_the_page(server: HostileServer) -> None:
    result = fetch(server.url("/private/report.html"), "html", within=2)
    assert result.error == "RobotsDisallowed" and not result.retry_later
    assert result.records[-1].status is None and result.records[-1].url == server.url("/private/report.html")
    assert server.hits("/private/report.html") == []


def test_robots_is_fetched_once_per_host_even_under_concurrency() -> None:
    with HostileServer(robots_txt=ROBOTS_NO_DELAY) as hostile:
        async def go() -> list[FetchResult]:
            async with Fetcher(settings(per_host_concurrency=4)) as fetcher:
                return await asyncio.gather(*(fetcher.fetch(hostile.url(f"/slow?delay=0.05&n={i}"), expect="html")
                                              for i in range(6)))

        results = asyncio.run(go())
        assert all(r.ok for r in results)
        assert len(hostile.hits("/robots.txt")) == 1
        assert sum(r.url.endswith("/robots.txt") for res in results for r in res.records) == 1


@pytest.mark.parametrize(("status", "allowed"), [(404, True), (403, True), (500, False), (503, False), (429, False)])
def test_robots_status_semantics_follow_rfc_9309(status: int, allowed: bool) -> None:
    with HostileServer(robots_txt="User-agent: *\nDisallow: /\n", robots_status=status) as hostile:
        result = fetch(hostile.url("/ok"), "html", within=3)
        if allowed:
            assert result.ok
        else:
            assert result.error == "RobotsDisallowed" and result.retry_later and result.transient
            assert "unreachable" in result.message and hostile.hits("/ok") == []


def test_robots_for_other_user_agents_does_not_bind_us() -> None:
    robots = "User-agent: otherbot\nDisallow: /\n\nUser-agent: policy-monitor\nDisallow: /secret\n"
    with HostileServer(robots_txt=robots) as hostile:
        assert fetch(hostile.url("/ok"), "html", within=2).ok
        assert fetch(hostile.url("/secret"), "html", within=2).error == "RobotsDisallowed"


def test_crawl_delay_spaces_requests_to_a_host() -> None:
    with HostileServer() as hostile:  # default robots.txt: Crawl-delay: 0.2
        async def go() -> list[FetchResult]:
            async with Fetcher(settings(per_host_concurrency=4)) as fetcher:
                return await asyncio.gather(*(fetcher.fetch(hostile.url(f"/ok?n={i}"), expect="html")
                                              for i in range(3)))

        assert all(r.ok for r in asyncio.run(go()))
        starts = [s.started for s in hostile.hits("/ok")]
        assert len(starts) == 3
        assert all(b - a >= 0.15 for a, b in zip(starts, starts[1:], strict=False)), starts


def test_per_host_delay_spaces_request_starts() -> None:
    with HostileServer(robots_txt="") as hostile:
        async def go() -> None:
            async with Fetcher(settings(per_host_delay=0.25, per_host_concurrency=3, obey_robots=False)) as fetcher:
                await asyncio.gather(*(fetcher.fetch(hostile.url(f"/ok?n={i}")) for i in range(3)))

        asyncio.run(go())
        starts = sorted(s.started for s in hostile.hits("/ok"))
        assert all(b - a >= 0.2 for a, b in zip(starts, starts[1:], strict=False)), starts


def test_per_host_concurrency_is_never_exceeded() -> None:
    with HostileServer(robots_txt="") as hostile, HostileServer(robots_txt="") as other:
        async def go() -> Fetcher:
            async with Fetcher(settings(per_host_concurrency=2)) as fetcher:
                urls = [h.url(f"/slow?delay=0.15&n={i}") for h in (hostile, other) for i in range(6)]
                results = await asyncio.gather(*(fetcher.fetch(u, expect="html") for u in urls))
                assert all(r.ok for r in results)
                return fetcher

        started = time.monotonic()
        fetcher = asyncio.run(go())
        assert time.monotonic() - started >= 0.4  # 6 requests, 2 at a time, 0.15 s each
        assert fetcher.max_in_flight[host_key(hostile.base_url)] == 2
        assert fetcher.max_in_flight[host_key(other.base_url)] == 2
        assert hostile.max_in_flight <= 2 and other.max_in_flight <= 2


# -- URL and SSRF guard ----------------------------------------------------------------------

@pytest.mark.parametrize("url", ["ftp://example.org/feed", "file:///etc/passwd", "not a url", "http://", "/relative"])
def test_invalid_urls_are_recorded(url: str) -> None:
    result = fetch(url, "html", within=1, fetch_settings=settings(allow_private_addresses=False))
    assert result.error == "InvalidURL" and len(result.records) == 1 and result.records[0].status is None


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::ffff:127.0.0.1]", "0.0.0.0", "2130706433"])
def test_private_addresses_are_refused_before_connecting(server: HostileServer, host: str) -> None:
    before = len(server.requests)
    result = fetch(f"http://{host}:{server.port}/ok", "html", within=2,
                   fetch_settings=settings(allow_private_addresses=False))
    assert result.error == "PrivateAddress" and not result.transient
    assert result.records[-1].status is None and "non-public" in result.message
    assert len(server.requests) == before


def test_host_labels_over_63_characters_are_invalid_not_raised(server: HostileServer) -> None:
    result = fetch(f"http://{'a' * 64}.example.com:{server.port}/ok", "html", within=2,
                   fetch_settings=settings(allow_private_addresses=False, max_tries=1))
    assert result.error == "InvalidURL" and "63" in result.message and result.records[-1].status is None


def test_guard_turns_names_the_resolver_cannot_encode_into_invalid_url() -> None:
    import httpx

    async def go() -> tuple[str, str] | None:
        async with Fetcher(settings(allow_private_addresses=False)) as fetcher:
            return await fetcher._guard(httpx.URL(f"http://{'b' * 64}.example/"))

    refusal = asyncio.run(go())
    assert refusal is not None and refusal[0] == "InvalidURL"


def test_allow_private_addresses_lifts_the_guard(server: HostileServer) -> None:
    assert fetch(f"http://localhost:{server.port}/ok", "html", within=2).ok


def _fake_dns(table: dict[str, list[list[str]]]):  # type: ignore[no-untyped-def]
    """A resolver answering from table; a host with several answers gives them in turn (DNS rebinding)."""
    calls: dict[str, int] = {}

    async def resolve(host: str, port: int) -> list[str]:
        answers = table.get(host)
        if answers is None:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        n = calls[host] = calls.get(host, 0) + 1
        return answers[min(n, len(answers)) - 1]

    return resolve


def test_every_redirect_hop_is_checked_through_a_proxy(server: HostileServer, monkeypatch: pytest.MonkeyPatch) -> None:
    # The hostile server doubles as the HTTP proxy, so made-up public names can be "fetched".
    monkeypatch.setenv("HTTP_PROXY", server.base_url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    resolver = _fake_dns({"news.example": [["93.184.216.34"]], "intranet.example": [["10.1.2.3"]]})

    async def go() -> FetchResult:
        async with Fetcher(settings(allow_private_addresses=False, obey_robots=False), resolver=resolver) as fetcher:
            return await fetcher.fetch("http://news.example/redirect?to=http://intranet.example/ok", expect="html")

    before = len(server.requests)
    result = asyncio.run(go())
    assert result.error == "PrivateAddress" and "10.1.2.3" in result.message
    assert [(r.status, r.error) for r in result.records] == [(302, ""), (None, "PrivateAddress")]
    assert result.final_url == "http://intranet.example/ok"
    assert [s.target for s in server.requests[before:]] == ["http://news.example/redirect?to=http://intranet.example/ok"]


def test_proxy_only_names_still_go_through_the_proxy(server: HostileServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", server.base_url)
    monkeypatch.delenv("NO_PROXY", raising=False)

    async def go() -> FetchResult:
        async with Fetcher(settings(allow_private_addresses=False, obey_robots=False),
                           resolver=_fake_dns({})) as fetcher:
            return await fetcher.fetch("http://only-the-proxy-knows.example/ok", expect="html")

    result = asyncio.run(go())
    assert result.ok and server.requests[-1].target == "http://only-the-proxy-knows.example/ok"


def _through_proxy(monkeypatch: pytest.MonkeyPatch, proxy: HostileServer, no_proxy: str, url: str) -> FetchResult:
    """Fetch url with the given server as HTTP_PROXY and the given NO_PROXY."""
    for name in ("HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", proxy.base_url)
    monkeypatch.setenv("NO_PROXY", no_proxy)
    return fetch(url, "html", within=3, fetch_settings=settings(obey_robots=False))


@pytest.mark.parametrize(("no_proxy", "host"), [
    ("192.168.0.0/16,127.0.0.0/8", "127.0.0.1"),  # CIDR, which httpx's trust_env doesn't know
    (".gov.uk, .localhost", "localhost"),  # a leading dot covers the domain itself, as in curl
    ("example.org,localhost:{port}", "localhost"),  # a port given must match
    ("*", "127.0.0.1"),
])
def test_no_proxy_bypasses_the_proxy_as_curl_does(monkeypatch: pytest.MonkeyPatch, no_proxy: str, host: str) -> None:
    with HostileServer() as proxy, HostileServer(robots_txt="") as target:
        result = _through_proxy(monkeypatch, proxy, no_proxy.format(port=target.port),
                                f"http://{host}:{target.port}/ok")
        assert result.ok, result.message
        assert [s.target for s in target.requests] == ["/ok"] and proxy.requests == []


@pytest.mark.parametrize("no_proxy", ["192.168.0.0/16,.gov.uk", "localhost:1", "10.0.0.0/8", ""])
def test_hosts_not_in_no_proxy_go_through_the_proxy(monkeypatch: pytest.MonkeyPatch, no_proxy: str) -> None:
    with HostileServer() as proxy, HostileServer(robots_txt="") as target:
        result = _through_proxy(monkeypatch, proxy, no_proxy, f"http://localhost:{target.port}/ok")
        assert result.ok and target.requests == []
        assert [s.target for s in proxy.requests] == [f"http://localhost:{target.port}/ok"]


def test_unusable_proxy_setting_is_a_proxy_error_not_a_crash(monkeypatch: pytest.MonkeyPatch,
                                                              server: HostileServer) -> None:
    monkeypatch.setenv("HTTP_PROXY", "gopher://proxy.invalid:70")
    monkeypatch.delenv("NO_PROXY", raising=False)
    result = fetch(server.url("/ok"), "html", within=3, fetch_settings=settings(obey_robots=False, max_tries=1))
    assert result.error == "ProxyError" and "proxy" in result.message


def test_dns_rebinding_is_caught_at_connect_time(server: HostileServer) -> None:
    # First answer (the pre-flight check) is public, the one at connect time is loopback.
    resolver = _fake_dns({"rebind.example": [["93.184.216.34"], ["127.0.0.1"]]})

    async def go() -> tuple[FetchResult, bool]:
        async with Fetcher(settings(allow_private_addresses=False, obey_robots=False, max_tries=1),
                           resolver=resolver) as fetcher:
            return await fetcher.fetch(f"http://rebind.example:{server.port}/ok", expect="html"), fetcher.pinned

    before = len(server.requests)
    result, pinned = asyncio.run(go())
    assert pinned, "the connect-time guard could not be installed under httpx (httpx internals changed?)"
    assert result.error == "PrivateAddress" and "127.0.0.1" in result.message
    assert len(server.requests) == before


def test_pinned_connections_reach_checked_public_names(server: HostileServer) -> None:
    # A name whose every answer is public passes both checks; here "public" is faked as the loopback
    # server by letting the pinned backend connect where the table says, so we check the plumbing works.
    async def go() -> FetchResult:
        async with Fetcher(settings(allow_private_addresses=False, obey_robots=False)) as fetcher:
            fetcher.resolver = _fake_dns({"pinned.example": [["93.184.216.34"]]})
            # Swap in a backend resolver that maps the public answer back to loopback at connect time only.
            backend = fetcher._router.direct._pool._network_backend  # type: ignore[attr-defined]
            inner = backend.inner

            class ToLoopback:
                async def connect_tcp(self, host, port, **kwargs):  # type: ignore[no-untyped-def]
                    assert host == "93.184.216.34"  # the pinned, checked address, not the name
                    return await inner.connect_tcp("127.0.0.1", port, **kwargs)

            backend.inner = ToLoopback()
            return await fetcher.fetch(f"http://pinned.example:{server.port}/ok", expect="html")

    result = asyncio.run(go())
    assert result.ok and server.requests[-1].headers["Host"] == f"pinned.example:{server.port}"


def test_unreachable_host_is_reported_as_such_not_as_robots() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = fetch(f"http://127.0.0.1:{port}/ok", "html", within=3)
    assert result.error == "ConnectError" and result.transient and result.retry_later
    assert "robots.txt unreachable" in result.message
    assert [r.url.rsplit("/", 1)[1] for r in result.records] == ["robots.txt"] * 3 + ["ok"]


def test_stalling_robots_txt_times_out_and_disallows_for_now() -> None:
    with HostileServer(static={"/robots.txt": Static("", delay=5)}) as hostile:
        result = fetch(hostile.url("/ok"), "html", within=3, fetch_settings=settings(timeout=0.5, max_tries=2))
        assert result.error == "Timeout" and result.retry_later and hostile.hits("/ok") == []


def test_host_memory_carries_robots_timing_and_blocks_over_to_the_next_fetcher():
    """The daemon gives each job a new Fetcher: robots.txt, per_host_delay and a long Retry-After must outlive it."""
    from pipelines.fetch import HostMemory

    memory = HostMemory()
    settings = FetchSettings(allow_private_addresses=True, per_host_delay=0.5, timeout=5, backoff_base=0.01)
    with HostileServer(robots_txt="User-agent: *\nDisallow: /private/\n") as server:
        async def one(path: str) -> tuple[FetchResult, float]:
            async with Fetcher(settings, memory=memory) as fetcher:
                started = time.monotonic()
                return await fetcher.fetch(server.url(path)), started

        first, _ = asyncio.run(one("/ok"))
        second, started = asyncio.run(one("/ok"))
        assert first.ok and second.ok
        assert len(server.hits("/robots.txt")) == 1, "robots.txt is fetched once, not per Fetcher"
        gap = server.hits("/ok")[1].started - server.hits("/ok")[0].started
        assert gap >= 0.45, f"per_host_delay held across Fetchers (gap {gap:.2f} s)"
        assert asyncio.run(one("/private/x"))[0].error == "RobotsDisallowed"
        assert asyncio.run(one("/429-long"))[0].retry_later
        blocked, _ = asyncio.run(one("/ok"))
        assert blocked.error == "HostBackoff" and blocked.retry_later
        assert len(server.hits("/ok")) == 2, "a host that asked for a long Retry-After is not asked again"


def test_a_call_that_reaches_an_origin_late_does_not_poison_its_robots_txt():
    """robots.txt has a timeout of its own: a call whose budget ran low must not cache 'disallow all'."""
    settings = FetchSettings(allow_private_addresses=True, per_host_delay=0, timeout=1, backoff_base=0.01)
    with HostileServer(robots_txt="") as target, HostileServer(robots_txt="") as origin:
        target.static["/robots.txt"] = Static("User-agent: *\nAllow: /\n", "text/plain", delay=0.2)
        origin.static["/go"] = Static("", status=302, headers={"Location": target.url("/ok")}, delay=0.9)

        async def both() -> tuple[FetchResult, FetchResult]:
            async with Fetcher(settings) as fetcher:
                late = await fetcher.fetch(origin.url("/go"))
                fresh = await fetcher.fetch(target.url("/ok"))
                return late, fresh

        late, fresh = asyncio.run(both())
    assert late.error == "Timeout"
    assert fresh.ok, f"{fresh.error}: {fresh.message}"


def test_proxy_passwords_never_reach_messages(monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "socks5://user:s3cret@127.0.0.1:1")
    monkeypatch.setenv("NO_PROXY", "")
    settings = FetchSettings(allow_private_addresses=True, per_host_delay=0, timeout=2, max_tries=1,
                             obey_robots=False)

    async def one() -> FetchResult:
        async with Fetcher(settings) as fetcher:
            return await fetcher.fetch("http://policy.example/feed")

    result = asyncio.run(one())
    assert result.error == "ProxyError"
    assert "s3cret" not in result.message and all("s3cret" not in r.message for r in result.records)


def test_no_proxy_entries_in_punycode_match_international_hosts(monkeypatch):
    import httpx

    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "xn--bcher-kva.example")
    fetcher = Fetcher(FetchSettings())
    try:
        assert fetcher._router.proxy_for(httpx.URL("https://xn--bcher-kva.example/")) is None
        assert fetcher._router.proxy_for(httpx.URL("https://bücher.example/")) is None
        assert fetcher._router.proxy_for(httpx.URL("https://other.example/")) == "http://proxy.example:3128"
    finally:
        asyncio.run(fetcher.aclose())

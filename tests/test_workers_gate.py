"""The per-host gate of crawl workers on a real PostgreSQL: two gates are two workers' connections.

What one worker takes (a request slot, a host's turn, a Retry-After, a job lock) the other sees at
once, and what a closed (or killed) connection held is free again.
"""

from __future__ import annotations

import asyncio
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pipelines.fetch import Fetcher, FetchSettings

pytest.importorskip("procrastinate", reason="the 'distributed' extra is not installed")

from monitor.workers import PostgresHostGate, prepare_queue  # noqa: E402

HOST = "news.example.org:8080"


@pytest.fixture
def gates(postgres_url):
    prepare_queue(postgres_url)
    first, second = PostgresHostGate.connect(postgres_url), PostgresHostGate.connect(postgres_url)
    yield first, second
    first.close()
    second.close()


def test_slots_are_shared_a_second_request_waits_for_a_free_one(gates):
    first, second = gates

    async def scenario() -> float:
        await first.enter(HOST, 2, 0)
        await first.enter(HOST, 2, 0)  # the same worker takes both slots: locks stack, slots don't
        waiter = asyncio.create_task(second.enter(HOST, 2, 0))
        await asyncio.sleep(0.4)
        assert not waiter.done(), "a third request got in while two were in flight"
        released = time.monotonic()
        await first.leave(HOST)
        await asyncio.wait_for(waiter, 5)
        waited = time.monotonic() - released
        await second.leave(HOST)
        await first.leave(HOST)
        return waited

    assert asyncio.run(scenario()) < 1.0


def test_turns_space_request_starts_by_the_delay_across_connections(gates):
    first, second = gates

    async def scenario() -> list[float]:
        starts = []
        for gate in (first, second, first, second):
            await gate.enter(HOST, 4, 0.3)
            starts.append(time.monotonic())
            await gate.leave(HOST)
        return starts

    starts = asyncio.run(scenario())
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert min(gaps) >= 0.25, gaps


def test_a_retry_after_published_by_one_worker_holds_and_blocks_the_host_for_the_other(gates):
    first, second = gates

    async def scenario() -> tuple[float, tuple[float, str] | None, tuple[float, str] | None]:
        await first.hold(HOST, 0.8)  # a short Retry-After: no start before then, but not refused
        assert await second.blocked(HOST) is None
        started = time.monotonic()
        await second.enter(HOST, 2, 0)
        waited = time.monotonic() - started
        await second.leave(HOST)
        await first.hold("other.example.org", 120, "other.example.org asked to retry after 120 s")
        return waited, await second.blocked("other.example.org"), await second.blocked(HOST)

    waited, blocked, free = asyncio.run(scenario())
    assert waited >= 0.6
    assert blocked is not None and 100 < blocked[0] <= 120 and "retry after 120" in blocked[1]
    assert free is None
    assert second.host_wait("other.example.org") > 100


def test_job_lock_is_exclusive_and_freed_when_its_connection_goes(postgres_url, gates):
    first, second = gates
    assert first.try_job_lock(HOST)
    assert not second.try_job_lock(HOST)
    assert second.try_job_lock("another.example.org")
    first.close()  # as when a worker is killed: the server ends the session and its locks
    deadline = time.monotonic() + 5
    while not second.try_job_lock(HOST):
        assert time.monotonic() < deadline, "the closed connection's job lock was never freed"
        time.sleep(0.05)


class RetryAfterSite:
    """One host whose /busy answers 429 with a Retry-After the first time; records when each request came."""

    def __init__(self, retry_after: int) -> None:
        self.times: list[tuple[float, str]] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                site.times.append((time.monotonic(), self.path))
                first_busy = self.path == "/busy" and sum(p == "/busy" for _, p in site.times) == 1
                status, body = (429, b"slow down") if first_busy else (200, b"ok")
                self.send_response(status)
                if first_busy:
                    self.send_header("Retry-After", str(retry_after))
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _settings(**overrides: object) -> FetchSettings:
    return FetchSettings(allow_private_addresses=True, obey_robots=False, per_host_delay=0, timeout=10,
                         backoff_base=0.01, **overrides)  # type: ignore[arg-type]


def test_a_short_retry_after_one_fetcher_gets_holds_the_host_for_a_fetcher_of_another_worker(gates):
    first, second = gates
    site = RetryAfterSite(retry_after=1)

    async def scenario() -> None:
        async with Fetcher(_settings(), gate=first) as one, Fetcher(_settings(), gate=second) as other:
            busy = asyncio.create_task(one.fetch(f"{site.base}/busy"))
            while not site.times:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.1)  # the 429 is in: the other worker now asks the same host
            result = await other.fetch(f"{site.base}/other")
            assert result.ok and (await busy).ok

    try:
        asyncio.run(scenario())
    finally:
        site.close()
    refused_at = site.times[0][0]
    later = [(when - refused_at, path) for when, path in site.times[1:]]
    assert sorted(path for _, path in later) == ["/busy", "/other"]
    assert min(offset for offset, _ in later) >= 0.9, later  # nobody asked before the Retry-After ran out


def test_a_long_retry_after_blocks_the_host_for_every_worker_without_a_request(gates):
    first, second = gates
    site = RetryAfterSite(retry_after=300)

    async def scenario() -> tuple[str, str, bool]:
        async with Fetcher(_settings(max_retry_after=5), gate=first) as one:
            busy = await one.fetch(f"{site.base}/busy")
        async with Fetcher(_settings(max_retry_after=5), gate=second) as other:
            refused = await other.fetch(f"{site.base}/other")
        return busy.error, refused.error, refused.retry_later

    try:
        busy_error, refused_error, retry_later = asyncio.run(scenario())
    finally:
        site.close()
    assert busy_error == "HTTPStatus" and refused_error == "HostBackoff" and retry_later
    assert [path for _, path in site.times] == ["/busy"]


def test_a_job_whose_host_is_busy_or_held_is_queued_again_not_slept(postgres_url, gates, tmp_path):
    from monitor.workers import CrawlWorker
    from tests.test_alerts_fixtures import make_config

    first, _ = gates
    config = make_config(tmp_path, sources=[{"name": "wire", "kind": "feed", "url": f"http://{HOST}/feed.xml"}])
    worker = CrawlWorker(config, tagger=None, url=postgres_url)
    source = config.source("wire")
    assert first.try_job_lock(HOST)  # another job crawls this host right now
    result = worker.crawl(source)
    assert result.outcome is None and result.again_in == config.workers.busy_retry and "another job" in result.reason
    first.close()  # that job ends; now the host asked everyone to wait two minutes
    held = PostgresHostGate.connect(postgres_url)
    asyncio.run(held.hold(HOST, 120, "asked to retry after 120 s"))
    held.close()
    result = worker.crawl(source)
    assert result.outcome is None and 100 < (result.again_in or 0) <= 120

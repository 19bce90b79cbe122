"""Polite, hardened HTTP fetching. Placeholder body; the interface below is final (issue 4).

    async with Fetcher(settings) as fetcher:
        result = await fetcher.fetch(url, expect="feed", etag=..., last_modified=...)

`fetch` never raises for network or server trouble: every problem is a
`FetchResult` with `error` set, and every HTTP request made (retries and
redirect hops included) is in `result.records`, which the caller stores in
the `fetches` table.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import httpx

Expect = Literal["html", "feed", "json", "any"]


@dataclass
class FetchSettings:
    user_agent: str = "policy-monitor/0.1 (+https://github.com/policy-monitor/policy-monitor)"
    timeout: float = 30.0
    """Deadline in seconds for the whole request, retries excluded (connect + headers + body)."""
    connect_timeout: float = 10.0
    max_bytes: int = 10_000_000
    """Bound on the body, compressed and decompressed alike."""
    max_redirects: int = 5
    per_host_concurrency: int = 2
    per_host_delay: float = 1.0
    """Seconds between the starts of two requests to one host; 0 means none."""
    max_tries: int = 3
    """Tries for timeouts, connection errors, 5xx and 429 within one call."""
    max_retry_after: float = 60.0
    """A Retry-After longer than this is not waited for: the result says `retry_later`."""
    allow_private_addresses: bool = False
    obey_robots: bool = True


@dataclass
class RequestRecord:
    """One HTTP request as it goes into the `fetches` table."""

    url: str
    status: int | None
    error: str
    """"" on success, else an error class name such as "Timeout", "TooLarge", "PrivateAddress"."""
    message: str
    fetched_at: datetime
    bytes: int
    elapsed: float


@dataclass
class FetchResult:
    url: str
    final_url: str
    status: int | None = None
    content: bytes = b""
    text: str | None = None
    """The body decoded (header charset, BOM, meta/XML declaration, detection) for text types."""
    encoding: str | None = None
    content_type: str = ""
    etag: str | None = None
    last_modified: str | None = None
    not_modified: bool = False
    error: str = ""
    message: str = ""
    retry_later: bool = False
    records: list[RequestRecord] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.error and not self.not_modified and self.status is not None and self.status < 300


class Fetcher:
    def __init__(self, settings: FetchSettings, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.settings = settings
        self._client = httpx.AsyncClient(
            transport=transport, follow_redirects=True, timeout=settings.timeout,
            headers={"User-Agent": settings.user_agent},
        )
        self.max_in_flight: dict[str, int] = {}

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._client.aclose()

    async def fetch(
        self, url: str, *, expect: Expect = "any", etag: str | None = None, last_modified: str | None = None
    ) -> FetchResult:
        started = time.monotonic()
        headers = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        try:
            response = await self._client.get(url, headers=headers)
        except httpx.HTTPError as exc:
            record = RequestRecord(url, None, type(exc).__name__, str(exc)[:200], datetime.now(UTC), 0,
                                   time.monotonic() - started)
            return FetchResult(url, url, error=type(exc).__name__, message=str(exc)[:200], records=[record])
        record = RequestRecord(url, response.status_code, "", "", datetime.now(UTC), len(response.content),
                               time.monotonic() - started)
        result = FetchResult(
            url, str(response.url), response.status_code, response.content, response.text,
            response.encoding, response.headers.get("content-type", ""), response.headers.get("etag"),
            response.headers.get("last-modified"), response.status_code == 304, records=[record],
        )
        if response.status_code >= 400:
            result.error = record.error = "HTTPStatus"
            result.message = record.message = f"HTTP {response.status_code}"
        return result

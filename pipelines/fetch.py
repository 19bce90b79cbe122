"""Polite, hardened HTTP fetching (issue 4).

    async with Fetcher(settings) as fetcher:
        result = await fetcher.fetch(url, expect="feed", etag=..., last_modified=...)

`fetch` never raises for network or server trouble: every problem is a `FetchResult` with
`error` set, and every HTTP request made (retries, redirect hops and robots.txt included) is in
`result.records`, which the caller stores in the `fetches` table. A URL refused before any
request (bad URL, private address, robots.txt, host back-off) still gets one record, with
status None, so every fetch leaves a trace.

Error classes (`FetchResult.error`, `RequestRecord.error`; "" means success):

- Timeout: the call's `timeout` ran out (see below), or httpx's connect/read timeout struck.
- ConnectError: connection refused, DNS failure, TLS handshake trouble other than certificates.
- ConnectionDropped: the server closed the connection mid-response (a truncated body is never a success).
- ProxyError: the HTTP(S)_PROXY in use failed.
- TLSError: certificate verification failed (not retried).
- TooLarge: body over `max_bytes`, on the wire or after decompression (cut off while streaming).
- DecodingError: broken or unsupported Content-Encoding.
- HTTPStatus: a 4xx/5xx answer (status in `status`), or a 3xx without a usable Location.
- UnexpectedContentType: e.g. an image or PDF where HTML was expected; not downloaded / not decoded.
- RobotsDisallowed: robots.txt forbids the URL, or robots.txt is unreachable (then `retry_later`).
- PrivateAddress: the host resolves to a non-public address (SSRF guard).
- RedirectRefused: a redirect to a non-HTTP(S) scheme (file:, ftp:, ...) or to an invalid URL.
- TooManyRedirects: more than `max_redirects` hops, or a loop.
- InvalidURL: not an absolute http(s) URL.
- HostBackoff: not requested, because the host recently asked for a Retry-After over `max_retry_after`.
- InvalidRequest: httpx refused to send the request (e.g. a validator with illegal characters).

Deadline: `timeout` bounds one `fetch` call as a whole. Every try, every redirect hop, the
robots.txt fetch it may need and the sleeps between tries draw from that one budget, so a server
that trickles a byte every few seconds holds a worker for `timeout`, not for tries x hops x
`timeout`. Time spent queuing for a host (`per_host_concurrency`, `per_host_delay`, Crawl-delay,
another call fetching the same robots.txt) is not charged: that is politeness, not the server.

Retries: Timeout, ConnectError, ConnectionDropped, ProxyError, 5xx and 429 are retried with
exponential backoff and jitter, `max_tries` tries in all, while the budget lasts: a wait that
would not leave time for another try ends the call with the last try's outcome. A Retry-After on
429/503 is waited for when it is at most `max_retry_after` and fits the budget; otherwise the
result says `retry_later` at once.

SSRF and proxies: unless `allow_private_addresses`, the host of every hop is resolved first and
refused if any address is not public. Direct connections are also pinned (see
`pipelines.netguard.GuardedBackend`): the connection pool re-resolves, re-checks and connects to
the checked address. HTTP(S)_PROXY / ALL_PROXY / NO_PROXY are honoured as curl honours them
(`pipelines.netguard.ProxyConfig`, read when the Fetcher is made; NO_PROXY CIDR ranges and
leading-dot domains included, which httpx's `trust_env` gets wrong). When a proxy applies the
target is still resolved locally and refused if it resolves to a private address; if it cannot be
resolved locally (proxy-only DNS) it is let through to the proxy, which is trusted configuration.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import re
import ssl
import time
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, Protocol

import httpcore
import httpx

from pipelines import robots as robotstxt
from pipelines.charset import decode_body
from pipelines.netguard import (
    GuardedBackend,
    PrivateAddressError,
    ProxyConfig,
    Resolver,
    check_host,
    effective_port,
    resolve_host,
)
from pipelines.text import single_line

Expect = Literal["html", "feed", "json", "any"]

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
TRANSIENT_ERRORS = frozenset({"Timeout", "ConnectError", "ConnectionDropped", "ProxyError"})
"""Error classes retried within a call (besides HTTPStatus 5xx and 429)."""
MESSAGE_MAX = 200
_DRAIN_MAX = 65_536
_DECODE_IN_THREAD = 256_000
_LOCATION = "policy_monitor.location"
_HOST_RE = re.compile(rb"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.?|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*")

ACCEPT = {
    "html": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.5",
    "feed": "application/rss+xml,application/atom+xml,application/feed+json,application/xml;q=0.9,"
            "text/xml;q=0.9,application/json;q=0.8,*/*;q=0.5",
    "json": "application/json,text/javascript;q=0.9,*/*;q=0.5",
    "any": "*/*",
}


@dataclass
class FetchSettings:
    user_agent: str = "policy-monitor/0.1 (+https://github.com/policy-monitor/policy-monitor)"
    timeout: float = 30.0
    """Deadline in seconds for one fetch() call as a whole: connect, headers and body of every try and
    redirect hop, the robots.txt fetch it needs, and the backoff sleeps between tries. Queuing for a
    host (per-host concurrency and delay, Crawl-delay) is not charged. When it runs out the result is
    Timeout, or the last try's outcome if the budget ran out between tries."""
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
    read_timeout: float | None = None
    """Longest wait for any single read; None means `timeout` (which still bounds the call)."""
    backoff_base: float = 1.0
    """First retry waits about this long (jittered), doubling for each further try."""
    backoff_max: float = 30.0
    max_crawl_delay: float = 60.0
    """A robots.txt Crawl-delay is honoured up to this many seconds (a larger one is clamped)."""
    robots_ttl: float = 86_400.0
    """How long a fetched robots.txt (or a 4xx for it) is trusted."""
    robots_error_ttl: float = 300.0
    """How long an unreachable robots.txt keeps its host disallowed before it is asked for again."""


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
    """Bytes received on the wire for the body (before decompression)."""
    elapsed: float


@dataclass
class FetchResult:
    url: str
    final_url: str
    status: int | None = None
    content: bytes = b""
    text: str | None = None
    """The body decoded (BOM, header charset, meta/XML declaration, detection) for text types."""
    encoding: str | None = None
    content_type: str = ""
    etag: str | None = None
    last_modified: str | None = None
    not_modified: bool = False
    error: str = ""
    message: str = ""
    retry_later: bool = False
    records: list[RequestRecord] = field(default_factory=list)
    transient: bool = False
    """The failure may go away by itself (timeouts, connection trouble, 5xx, 429, robots unreachable)."""
    retry_after: float | None = None
    """Seconds the server asked us to wait (Retry-After on 429/503), when it said so."""

    @property
    def ok(self) -> bool:
        return not self.error and not self.not_modified and self.status is not None and self.status < 300


def host_key(url: str | httpx.URL) -> str:
    """The key of per-host limits and `Fetcher.max_in_flight`: host, plus ":port" when not the default."""
    url = httpx.URL(url) if isinstance(url, str) else url
    return f"{url.host}:{url.port}" if url.port is not None else url.host


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date); None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # not "²" or "٣", which str.isdigit also accepts
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def media_type(content_type: str | None) -> str:
    """The lower-cased type/subtype of a Content-Type header, "" if none."""
    return (content_type or "").split(";", 1)[0].strip().lower()


_UNTYPED = frozenset({"", "application/octet-stream", "binary/octet-stream", "application/unknown",
                      "unknown/unknown", "application/x-unknown", "application/download"})
_BINARY_MAJORS = frozenset({"image", "audio", "video", "font", "model"})
_BINARY_TYPES = frozenset({"application/pdf", "application/zip", "application/gzip", "application/x-gzip",
                           "application/x-tar", "application/msword", "application/x-7z-compressed",
                           "application/x-rar-compressed", "application/wasm", "application/x-shockwave-flash",
                           "application/postscript", "application/x-msdownload"})
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})


def content_type_verdict(expect: Expect, media: str) -> Literal["accept", "sniff", "reject"]:
    """Whether a declared media type fits what the caller expects; "sniff" = judge by the body."""
    if expect == "any":
        return "accept"
    if media in _UNTYPED:
        return "sniff"
    major = media.split("/", 1)[0]
    if major in _BINARY_MAJORS or media in _BINARY_TYPES or media.startswith("application/vnd."):
        return "reject"
    xmlish = "xml" in media or "rss" in media or "atom" in media
    jsonish = "json" in media
    if expect == "html":
        if media in _HTML_TYPES:
            return "accept"
        return "sniff" if major == "text" or xmlish else "reject"
    if expect == "feed":
        return "accept" if xmlish or jsonish or major == "text" else "reject"
    # json
    return "accept" if jsonish or "javascript" in media or major == "text" else "reject"


_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "PNG image"), (b"GIF87a", "GIF image"), (b"GIF89a", "GIF image"),
    (b"\xff\xd8\xff", "JPEG image"), (b"%PDF-", "PDF"), (b"PK\x03\x04", "ZIP archive"),
    (b"\x1f\x8b", "gzip data"), (b"\x7fELF", "executable"), (b"OggS", "Ogg media"), (b"ID3", "MP3 audio"),
    (b"\x00\x00\x01\x00", "icon"), (b"wOFF", "font"), (b"wOF2", "font"),
)


def sniff_binary(content: bytes) -> str | None:
    """Name the binary format the body looks like, or None if it looks like text."""
    head = content[:1024]
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    if head[:4] == b"RIFF" and head[8:12] in (b"WEBP", b"WAVE", b"AVI "):
        return "RIFF media"
    if b"\x00" in head and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "binary data"
    return None


def is_textual(media: str) -> bool:
    """Whether a media type carries text worth decoding."""
    return (media.startswith("text/") or "xml" in media or "json" in media or "javascript" in media
            or "ecmascript" in media or "rss" in media or "atom" in media)


class _Refusal(Exception):
    """Raised inside a request to stop it with a given error class."""

    def __init__(self, error: str, message: str) -> None:
        super().__init__(message)
        self.error = error
        self.message = message


class _Inflater:
    """One Content-Encoding layer (gzip or deflate), decompressed incrementally with bounded output."""

    def __init__(self, coding: str) -> None:
        self.coding = coding
        self.decompressor: zlib._Decompress | None = None
        self.started = False
        self.done = False

    def _new(self, raw_deflate: bool = False) -> zlib._Decompress:
        if self.coding in ("gzip", "x-gzip"):
            return zlib.decompressobj(16 + zlib.MAX_WBITS)
        return zlib.decompressobj(-zlib.MAX_WBITS if raw_deflate else zlib.MAX_WBITS)

    def feed(self, data: bytes, limit: int) -> bytes:
        """Decompress data, producing at most `limit` bytes (the caller treats reaching it as too large)."""
        out = bytearray()
        while data and not self.done and len(out) < limit:
            if self.decompressor is None:
                self.decompressor = self._new()
            try:
                out += self.decompressor.decompress(data, limit - len(out))
            except zlib.error:
                if self.coding == "deflate" and not self.started:
                    # "deflate" is sent both zlib-wrapped (per the RFC) and raw (per IIS); try raw.
                    self.decompressor = self._new(raw_deflate=True)
                    out += self.decompressor.decompress(data, limit - len(out))
                else:
                    raise
            self.started = True
            if self.decompressor.eof:
                data = self.decompressor.unused_data
                if self.coding in ("gzip", "x-gzip") and data.startswith(b"\x1f\x8b"):
                    self.decompressor = None  # another gzip member follows
                else:
                    self.done = True  # trailing garbage after the stream is ignored, as browsers do
            else:
                data = self.decompressor.unconsumed_tail
        return bytes(out)

    def flush(self) -> bytes:
        """Whatever output zlib still buffers at the end of the body."""
        if self.decompressor is None or self.done:
            return b""
        return self.decompressor.flush()


class _BodyReader:
    """Reads a streamed body, counting wire bytes, decoding Content-Encoding, enforcing max_bytes."""

    def __init__(self, content_encoding: str, max_bytes: int, truncate: bool) -> None:
        codings = [c.strip().lower() for c in content_encoding.split(",") if c.strip()]
        codings = [c for c in codings if c != "identity"]
        for coding in codings:
            if coding not in ("gzip", "x-gzip", "deflate"):
                raise _Refusal("DecodingError", f"unsupported Content-Encoding {coding!r}")
        self.layers = [_Inflater(c) for c in reversed(codings)]
        self.max_bytes = max_bytes
        self.truncate = truncate
        self.raw = 0
        self.body = bytearray()

    def _decode(self, data: bytes, final: bool = False) -> bytes:
        limit = self.max_bytes - len(self.body) + 1
        for layer in self.layers:
            data = layer.feed(data, limit)
            if final:
                data += layer.flush()
            if len(data) >= limit:
                break
        return data

    def feed(self, chunk: bytes, final: bool = False) -> bool:
        """Take one raw chunk; False once the body is complete because truncation kicked in."""
        self.raw += len(chunk)
        if self.raw > self.max_bytes and not self.truncate:
            raise _Refusal("TooLarge", f"more than {self.max_bytes} bytes on the wire")
        self.body += self._decode(chunk, final)
        if len(self.body) > self.max_bytes:
            if self.truncate:
                del self.body[self.max_bytes:]
                return False
            raise _Refusal("TooLarge", f"body decompresses to more than {self.max_bytes} bytes")
        return True


@dataclass
class _HostState:
    semaphore: asyncio.Semaphore
    key: str = ""
    next_start: float = 0.0
    in_flight: int = 0
    crawl_delay: float = 0.0
    blocked_until: float = 0.0
    blocked_reason: str = ""


class HostGate(Protocol):
    """Per-host politeness shared with other processes (crawl workers on several machines).

    A Fetcher given a gate still keeps its own limits; the gate adds those of everyone sharing it:
    `enter` before every request waits for one of the host's `per_host_concurrency` slots and
    for the host's turn (`per_host_delay` after the last start anywhere), `leave` gives the slot
    back, and a Retry-After is published with `hold` so that no one asks the host before then.
    """

    async def enter(self, key: str, concurrency: int, delay: float) -> None: ...

    async def leave(self, key: str) -> None: ...

    async def hold(self, key: str, seconds: float, reason: str | None = None) -> None:
        """No request to `key` starts within `seconds` anywhere; with a `reason`, requests are refused till then."""

    async def blocked(self, key: str) -> tuple[float, str] | None:
        """(seconds left, why) while someone published a long Retry-After for `key`, else None."""


class HostMemory:
    """What Fetchers learn about hosts that should outlive one crawl: robots.txt policies (until they
    expire), when each host may next be asked (per_host_delay, Crawl-delay) and hosts that asked for a
    long Retry-After.

    A daemon crawls each source in its own short-lived Fetcher; sharing one HostMemory between them
    means robots.txt is fetched once a day, not before every poll of every feed, and the delay between
    requests to a host holds across jobs. Safe to share between threads: each entry is replaced whole.
    """

    def __init__(self) -> None:
        self.robots: dict[str, robotstxt.RobotsPolicy] = {}
        self.next_start: dict[str, float] = {}
        self.blocked: dict[str, tuple[float, str]] = {}
        """host key -> (monotonic time until which it is not asked, why)."""


def _without_password(proxy: str) -> str:
    """A proxy URL fit for messages and logs: any password replaced by ***."""
    try:
        parsed = httpx.URL(proxy)
    except (httpx.InvalidURL, ValueError, TypeError):
        return "(unparseable proxy URL)"
    return str(parsed.copy_with(password="***")) if parsed.password else str(parsed)


class _Budget:
    """What is left of one fetch() call's `timeout`; time spent queuing for a host is given back."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def give_back(self, seconds: float) -> None:
        """Don't charge these seconds (spent waiting for our turn at a host, not on the server)."""
        self.deadline += max(0.0, seconds)


@dataclass
class _Attempt:
    record: RequestRecord
    headers: httpx.Headers = field(default_factory=httpx.Headers)
    content: bytes = b""
    textual: bool = False
    location: str | None = None
    retry_after: float | None = None
    retry_later: bool = False
    reader: _BodyReader | None = None


def _now() -> datetime:
    return datetime.now(UTC)


def _short(message: str) -> str:
    """A record message: one line (pipelines.text.single_line), at most MESSAGE_MAX characters."""
    message = single_line(message)
    return message if len(message) <= MESSAGE_MAX else message[: MESSAGE_MAX - 1] + "…"


def _classify(exc: BaseException) -> tuple[str, str]:
    """Error class and message for an exception raised while talking to a server."""
    message = str(exc) or type(exc).__name__
    cause = exc.__cause__ or exc.__context__
    if isinstance(exc, PrivateAddressError) or isinstance(cause, PrivateAddressError):
        return "PrivateAddress", str(cause if isinstance(cause, PrivateAddressError) else exc)
    if isinstance(exc, httpx.TimeoutException):
        return "Timeout", f"{type(exc).__name__}: {message}"
    if isinstance(exc, httpx.ProxyError):
        return "ProxyError", message
    if isinstance(exc, httpx.ConnectError):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return "TLSError", message
        return "ConnectError", message
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError | httpx.CloseError):
        return "ConnectionDropped", f"{type(exc).__name__}: {message}"
    if isinstance(exc, httpx.DecodingError | zlib.error):
        return "DecodingError", message
    if isinstance(exc, httpx.InvalidURL | httpx.UnsupportedProtocol | UnicodeError):
        return "InvalidURL", message
    if isinstance(exc, httpx.LocalProtocolError):
        return "InvalidRequest", message
    if isinstance(exc, ssl.SSLCertVerificationError):
        return "TLSError", message
    if isinstance(exc, OSError):
        return "ConnectError", f"{type(exc).__name__}: {message}"
    return "TransportError", f"{type(exc).__name__}: {message}"


def _http_url(url: str | httpx.URL) -> httpx.URL | str:
    """The URL parsed and without fragment, or a message saying why it is not an absolute http(s) URL."""
    try:
        parsed = httpx.URL(url) if isinstance(url, str) else url
    except (httpx.InvalidURL, UnicodeError, ValueError) as exc:
        return f"invalid URL: {exc}"
    if parsed.scheme not in ("http", "https"):
        return f"scheme {parsed.scheme + ':' if parsed.scheme else '(none)'} not allowed, only http and https"
    if not parsed.host:
        return "URL has no host"
    if not _HOST_RE.fullmatch(parsed.raw_host):
        return f"invalid host {parsed.raw_host.decode('ascii', 'replace')!r}"
    name = parsed.raw_host.rstrip(b".")
    if any(len(label) > 63 for label in name.split(b".")) or len(name) > 253:
        # DNS limits (RFC 1035); the resolver's IDNA codec would raise on such a name.
        return f"invalid host {name[:80].decode('ascii', 'replace')!r}: a label over 63 or a name over 253 characters"
    return parsed.copy_with(fragment=None)


class _ProxyRouter(httpx.AsyncBaseTransport):
    """Sends each request direct or through the proxy that `ProxyConfig` names for its URL."""

    def __init__(self, direct: httpx.AsyncBaseTransport, proxies: ProxyConfig) -> None:
        self.direct = direct
        self.proxies = proxies
        self._through: dict[str, httpx.AsyncBaseTransport | Exception] = {}

    def proxy_for(self, url: httpx.URL) -> str | None:
        # The ASCII (punycode) host, as curl compares NO_PROXY entries.
        host = url.raw_host.decode("ascii", "replace")
        return self.proxies.proxy_for(url.scheme, host, effective_port(url.scheme, url.port))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        proxy = self.proxy_for(request.url)
        if proxy is None:
            return await self.direct.handle_async_request(request)
        transport = self._through.get(proxy)
        if transport is None:
            try:
                transport = httpx.AsyncHTTPTransport(proxy=proxy, trust_env=True)
            except Exception as exc:  # noqa: BLE001 - a bad proxy setting (socks without socksio, garbage URL)
                transport = exc
            self._through[proxy] = transport
        if isinstance(transport, Exception):
            raise httpx.ProxyError(f"unusable proxy {_without_password(proxy)}: {transport}", request=request)
        return await transport.handle_async_request(request)

    async def aclose(self) -> None:
        await self.direct.aclose()
        for transport in self._through.values():
            if isinstance(transport, httpx.AsyncBaseTransport):
                await transport.aclose()


class Fetcher:
    """Fetches URLs politely (robots.txt, per-host limits) and defensively (limits, SSRF guard).

    One Fetcher per crawl: its per-host limits span all its calls. Use it from one event loop, as
    an async context manager (or call `aclose`). What should outlive it (robots.txt, per-host timing,
    long Retry-After blocks) lives in its `memory`, which a later Fetcher can be given.
    """

    def __init__(
        self, settings: FetchSettings, transport: httpx.AsyncBaseTransport | None = None, *,
        resolver: Resolver | None = None, memory: HostMemory | None = None, gate: HostGate | None = None,
    ) -> None:
        self.settings = settings
        self.gate = gate
        """Per-host limits shared with other processes, on top of this Fetcher's own (None: this process only)."""
        self.memory = memory or HostMemory()
        """robots.txt policies and per-host timing, shareable with later Fetchers."""
        self.resolver: Resolver = resolver or resolve_host
        """Name resolution for the SSRF guard (replaceable in tests)."""
        timeout = httpx.Timeout(settings.timeout, connect=settings.connect_timeout,
                                read=settings.read_timeout or settings.timeout)
        self.proxies = ProxyConfig.from_env()
        """HTTP(S)_PROXY / NO_PROXY from the environment, as curl reads them."""
        # trust_env stays on for the transports (SSL_CERT_FILE / SSL_CERT_DIR); proxies are ours.
        self._router = _ProxyRouter(transport or httpx.AsyncHTTPTransport(trust_env=True), self.proxies)
        self._client = httpx.AsyncClient(
            transport=self._router, follow_redirects=False, timeout=timeout, trust_env=False,
            headers={"User-Agent": settings.user_agent, "Accept-Encoding": "gzip, deflate"},
            event_hooks={"response": [_take_location]},
        )
        self.max_in_flight: dict[str, int] = {}
        """Largest number of requests ever in flight at once, per `host_key`."""
        self._hosts: dict[str, _HostState] = {}
        self._robots_locks: dict[str, asyncio.Lock] = {}
        self.pinned = (not settings.allow_private_addresses and transport is None
                       and self._pin_connections())
        """True when direct connections go through the connect-time SSRF guard."""

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close all connections."""
        await self._client.aclose()

    # -- public ------------------------------------------------------------------------------

    async def fetch(
        self, url: str, *, expect: Expect = "any", etag: str | None = None, last_modified: str | None = None
    ) -> FetchResult:
        """GET url, following redirects hop by hop, and return the outcome; never raises for web trouble.

        etag / last_modified (from an earlier result) make it a conditional GET; a 304 gives
        `not_modified=True` with nothing parsed.
        """
        if expect not in ACCEPT:
            raise ValueError(f"expect must be one of {sorted(ACCEPT)}, not {expect!r}")
        result = FetchResult(url=url, final_url=url)
        target = _http_url(url)
        if isinstance(target, str):
            return self._refuse(result, url, "InvalidURL", target)
        headers = {"Accept": ACCEPT[expect]}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        seen = {str(target)}
        redirects = 0
        budget = _Budget(self.settings.timeout)
        while True:
            result.final_url = str(target)
            if not await self._admit(target, result, budget):
                return result
            attempt = await self._request_with_retries(target, headers, expect, result, budget)
            record = attempt.record
            if not record.error and attempt.location is not None:
                following = _follow(target, attempt.location)
                redirects += 1
                if isinstance(following, str):
                    record.error = "RedirectRefused"
                    record.message = _short(f"redirect to {attempt.location!r} refused: {following}")
                elif str(following) in seen:
                    record.error = "TooManyRedirects"
                    record.message = _short(f"redirect loop back to {following}")
                elif redirects > self.settings.max_redirects:
                    record.error = "TooManyRedirects"
                    record.message = f"more than {self.settings.max_redirects} redirects"
                else:
                    seen.add(str(following))
                    target = following
                    continue
            return await self._conclude(result, attempt, etag, last_modified)

    # -- one hop -----------------------------------------------------------------------------

    async def _admit(self, url: httpx.URL, result: FetchResult, budget: _Budget) -> bool:
        """Host back-off, SSRF guard and robots.txt for one hop; on refusal fill result and return False."""
        state = self._host(host_key(url))
        now = time.monotonic()
        if state.blocked_until > now:
            self._refuse(result, str(url), "HostBackoff", state.blocked_reason, retry_later=True)
            return False
        if self.gate is not None:
            shared = await self.gate.blocked(host_key(url))
            if shared is not None:
                seconds, reason = shared
                state.blocked_until, state.blocked_reason = now + seconds, reason
                self._refuse(result, str(url), "HostBackoff", reason, retry_later=True)
                return False
        refusal = await self._guard(url, budget)
        if refusal is not None:
            error, message = refusal
            self._refuse(result, str(url), error, message, transient=error == "ConnectError")
            return False
        if self.settings.obey_robots:
            policy = await self._robots_policy(url, result, budget)
            if not policy.allows(str(url), self.settings.user_agent):
                if not policy.unreachable:
                    self._refuse(result, str(url), "RobotsDisallowed", "disallowed by robots.txt")
                elif policy.error:
                    # The host itself is unreachable: say so, rather than blame robots.txt.
                    transient = policy.error in TRANSIENT_ERRORS
                    self._refuse(result, str(url), policy.error, f"robots.txt unreachable, not fetched: "
                                 f"{policy.reason}", transient=transient, retry_later=transient)
                else:
                    self._refuse(result, str(url), "RobotsDisallowed", f"robots.txt unreachable ({policy.reason}); "
                                 "everything disallowed for now (RFC 9309)", transient=True, retry_later=True)
                return False
        return True

    async def _guard(self, url: httpx.URL, budget: _Budget | None = None) -> tuple[str, str] | None:
        """SSRF check before any connection: (error, message) to refuse, None to go ahead."""
        if self.settings.allow_private_addresses:
            return None
        port = effective_port(url.scheme, url.port)
        limit = self.settings.connect_timeout if budget is None else min(self.settings.connect_timeout, budget.left())
        try:
            async with asyncio.timeout(max(0.0, limit)):
                message = await check_host(url.raw_host.decode("ascii"), port, self.resolver)
        except UnicodeError as exc:
            # getaddrinfo's IDNA codec refuses names _http_url let through; nothing can reach them.
            return "InvalidURL", _short(f"invalid host {url.host!r}: {exc}")
        except OSError as exc:  # includes TimeoutError
            if self.pinned or self._proxied(url):
                # The connect-time guard (or the proxy, which does its own DNS) takes it from here.
                return None
            return "ConnectError", _short(f"cannot resolve {url.host}: {exc or type(exc).__name__}")
        return ("PrivateAddress", _short(message)) if message else None

    async def _request_with_retries(
        self, url: httpx.URL, headers: dict[str, str], expect: Expect, result: FetchResult, budget: _Budget,
        max_bytes: int | None = None, truncate: bool = False,
    ) -> _Attempt:
        """One hop with retries for transient trouble, within the call's budget; every try goes into result.records."""
        tries = max(1, self.settings.max_tries)
        for number in range(1, tries + 1):
            attempt = await self._request(url, headers, expect, budget, max_bytes or self.settings.max_bytes,
                                          truncate)
            result.records.append(attempt.record)
            if not _retryable(attempt):
                return attempt
            wait = self._backoff(number)
            if attempt.retry_after is not None:
                if attempt.retry_after > self.settings.max_retry_after:
                    self._block_host(url, attempt.retry_after)
                    if self.gate is not None:
                        reason = self._host(host_key(url)).blocked_reason
                        await self.gate.hold(host_key(url), attempt.retry_after, reason)
                    attempt.retry_later = True
                    return attempt
                wait = max(wait, attempt.retry_after)
                self._hold_host(url, time.monotonic() + attempt.retry_after)
                if self.gate is not None:
                    await self.gate.hold(host_key(url), attempt.retry_after)
            if number == tries or wait >= budget.left():
                # Out of tries, or the wait would eat what is left of `timeout`: this is the outcome.
                attempt.retry_later = attempt.record.status in (429, 503)
                return attempt
            await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    async def _request(
        self, url: httpx.URL, headers: dict[str, str], expect: Expect, budget: _Budget, max_bytes: int,
        truncate: bool = False,
    ) -> _Attempt:
        """Exactly one GET within the per-host limits and what is left of the call's deadline."""
        key = host_key(url)
        state = self._host(key)
        queued = time.monotonic()
        async with state.semaphore:
            await self._wait_turn(state)
            if self.gate is not None:
                await self.gate.enter(key, max(1, self.settings.per_host_concurrency),
                                      max(self.settings.per_host_delay, state.crawl_delay))
            budget.give_back(time.monotonic() - queued)
            state.in_flight += 1
            self.max_in_flight[key] = max(self.max_in_flight.get(key, 0), state.in_flight)
            attempt = _Attempt(RequestRecord(str(url), None, "", "", _now(), 0, 0.0))
            started = time.monotonic()
            try:
                async with asyncio.timeout(max(0.0, budget.left())):
                    async with self._client.stream("GET", url, headers=headers) as response:
                        attempt.record.status = response.status_code
                        attempt.headers = response.headers
                        await self._read(response, attempt, expect, max_bytes, truncate)
            except TimeoutError:
                attempt.record.error = "Timeout"
                attempt.record.message = f"no complete response within the fetch's {budget.seconds:g} s deadline"
            except _Refusal as exc:
                attempt.record.error, attempt.record.message = exc.error, _short(exc.message)
            except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError, OSError, zlib.error,
                    UnicodeError) as exc:
                error, message = _classify(exc)
                attempt.record.error, attempt.record.message = error, _short(message)
            finally:
                state.in_flight -= 1
                attempt.record.elapsed = round(time.monotonic() - started, 6)
                attempt.record.bytes += attempt.reader.raw if attempt.reader else 0
                if self.gate is not None:
                    await self.gate.leave(key)
        return attempt

    async def _read(
        self, response: httpx.Response, attempt: _Attempt, expect: Expect, max_bytes: int, truncate: bool
    ) -> None:
        """Judge status and type, then stream the body within max_bytes into attempt.content."""
        status = response.status_code
        headers = response.headers
        if status in REDIRECT_STATUSES and response.extensions.get(_LOCATION):
            attempt.location = response.extensions[_LOCATION]
            await self._drain(response, attempt)
            return
        if status == 304:
            return
        if status >= 300:
            attempt.record.error = "HTTPStatus"
            attempt.record.message = _short(f"HTTP {status} {response.reason_phrase}".strip())
            if status in (429, 503):
                attempt.retry_after = parse_retry_after(headers.get("retry-after"))
            await self._drain(response, attempt)
            return
        media = media_type(headers.get("content-type"))
        verdict = content_type_verdict(expect, media)
        if verdict == "reject":
            raise _Refusal("UnexpectedContentType", f"{media} where {expect} was expected; not downloaded")
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_bytes and not truncate:
            raise _Refusal("TooLarge", f"Content-Length {declared} over the limit of {max_bytes} bytes")
        reader = attempt.reader = _BodyReader(headers.get("content-encoding", ""), max_bytes, truncate)
        try:
            async for chunk in response.aiter_raw():
                if not reader.feed(chunk):
                    break
            else:
                reader.feed(b"", final=True)
        except zlib.error as exc:
            raise _Refusal("DecodingError", f"broken {headers.get('content-encoding')} body: {exc}") from exc
        content = bytes(reader.body)
        if verdict == "sniff":
            kind = sniff_binary(content)
            if kind is not None and expect != "any":
                raise _Refusal("UnexpectedContentType",
                               f"{kind} ({media or 'no Content-Type'}) where {expect} was expected")
            attempt.textual = kind is None
        else:
            attempt.textual = is_textual(media)
        attempt.content = content

    async def _drain(self, response: httpx.Response, attempt: _Attempt) -> None:
        """Read a small unwanted body so the connection can be reused; a large one is left (closed)."""
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) <= _DRAIN_MAX:
            async for chunk in response.aiter_raw():
                attempt.record.bytes += len(chunk)

    async def _conclude(
        self, result: FetchResult, attempt: _Attempt, etag: str | None, last_modified: str | None
    ) -> FetchResult:
        """Fill the result from the last hop's attempt."""
        record = attempt.record
        result.status = record.status
        result.content_type = attempt.headers.get("content-type", "")
        if record.error:
            result.error, result.message = record.error, record.message
            result.transient = _retryable(attempt)
            result.retry_later = attempt.retry_later
            result.retry_after = attempt.retry_after
            return result
        headers = attempt.headers
        if record.status == 304:
            result.not_modified = True
            result.etag = headers.get("etag") or etag
            result.last_modified = headers.get("last-modified") or last_modified
            return result
        result.content = attempt.content
        result.etag = headers.get("etag")
        result.last_modified = headers.get("last-modified")
        if attempt.textual:
            try:
                if len(result.content) > _DECODE_IN_THREAD:
                    result.text, result.encoding = await asyncio.to_thread(
                        decode_body, result.content, result.content_type)
                else:
                    result.text, result.encoding = decode_body(result.content, result.content_type)
            except (LookupError, UnicodeError) as exc:
                # decode_body is built never to raise; should a codec still do so, the page is
                # text we can't read, which is better said than raised out of the crawl.
                result.text = result.content.decode("utf-8", errors="replace")
                result.encoding = "utf-8"
                result.message = _short(f"charset trouble, read as UTF-8: {type(exc).__name__}: {exc}")
        return result

    # -- robots.txt --------------------------------------------------------------------------

    async def _robots_policy(self, url: httpx.URL, result: FetchResult, budget: _Budget) -> robotstxt.RobotsPolicy:
        """The cached robots.txt policy of url's origin, fetched (once, even when called concurrently) if stale."""
        key = robotstxt.origin_key(url)
        policy = self.memory.robots.get(key)
        if policy is None or policy.expires <= time.monotonic():
            lock = self._robots_locks.setdefault(key, asyncio.Lock())
            queued = time.monotonic()
            async with lock:
                # Waiting while another call fetches robots.txt is queuing, not our server time.
                budget.give_back(time.monotonic() - queued)
                policy = self.memory.robots.get(key)
                if policy is None or policy.expires <= time.monotonic():
                    # robots.txt gets a whole `timeout` of its own: its answer is cached for every
                    # later call to the origin, so it must not fail because this call came late.
                    policy = await self._fetch_robots(url, result, _Budget(self.settings.timeout))
                    self.memory.robots[key] = policy
        delay = policy.crawl_delay(self.settings.user_agent)
        self._host(host_key(url)).crawl_delay = min(delay or 0.0, self.settings.max_crawl_delay)
        return policy

    async def _fetch_robots(self, url: httpx.URL, result: FetchResult, budget: _Budget) -> robotstxt.RobotsPolicy:
        """GET robots.txt (records go into result) and turn the outcome into a policy per RFC 9309."""
        s = self.settings
        target = httpx.URL(robotstxt.robots_url(url))
        headers = {"Accept": "text/plain,*/*;q=0.5"}
        for hop in range(6):  # RFC 9309: follow at least five redirects
            if hop and await self._guard(target, budget) is not None:
                return robotstxt.allow_all(time.monotonic(), s.robots_ttl, "robots.txt redirects off-limits")
            attempt = await self._request_with_retries(target, headers, "any", result, budget,
                                                       robotstxt.ROBOTS_MAX_BYTES, truncate=True)
            record = attempt.record
            now = time.monotonic()
            if attempt.location is not None and not record.error:
                following = _follow(target, attempt.location)
                if isinstance(following, str):
                    return robotstxt.allow_all(now, s.robots_ttl, "robots.txt redirects off the web")
                target = following
                continue
            status = record.status
            if status is None or record.error in TRANSIENT_ERRORS:
                return robotstxt.disallow_all(now, s.robots_error_ttl, record.message, record.error)
            if status == 429 or status >= 500:
                return robotstxt.disallow_all(now, s.robots_error_ttl, f"HTTP {status}")
            if status >= 400:
                return robotstxt.allow_all(now, s.robots_ttl, f"no robots.txt (HTTP {status})")
            if 200 <= status < 300 and not record.error:
                return robotstxt.parse_policy(attempt.content, now, s.robots_ttl)
            return robotstxt.allow_all(now, s.robots_ttl, f"robots.txt unusable ({record.error or status})")
        return robotstxt.allow_all(time.monotonic(), s.robots_ttl, "robots.txt redirects too often")

    # -- per-host bookkeeping ----------------------------------------------------------------

    def _host(self, key: str) -> _HostState:
        state = self._hosts.get(key)
        if state is None:
            blocked_until, blocked_reason = self.memory.blocked.get(key, (0.0, ""))
            state = self._hosts[key] = _HostState(asyncio.Semaphore(max(1, self.settings.per_host_concurrency)),
                                                  key=key, next_start=self.memory.next_start.get(key, 0.0),
                                                  blocked_until=blocked_until, blocked_reason=blocked_reason)
        return state

    async def _wait_turn(self, state: _HostState) -> None:
        """Space request starts to one host by max(per_host_delay, Crawl-delay); reserve a slot, then sleep."""
        delay = max(self.settings.per_host_delay, state.crawl_delay)
        now = time.monotonic()
        start = max(now, state.next_start)
        state.next_start = self.memory.next_start[state.key] = start + delay
        if start > now:
            await asyncio.sleep(start - now)

    def _hold_host(self, url: httpx.URL, until: float) -> None:
        """No request to url's host starts before `until` (a short Retry-After), in this Fetcher and later ones."""
        state = self._host(host_key(url))
        state.next_start = max(state.next_start, until)
        self.memory.next_start[state.key] = max(self.memory.next_start.get(state.key, 0.0), state.next_start)

    def _block_host(self, url: httpx.URL, seconds: float) -> None:
        """Stop requesting a host that asked for a long Retry-After, until that time (remembered in `memory`)."""
        state = self._host(host_key(url))
        state.blocked_until = max(state.blocked_until, time.monotonic() + seconds)
        state.blocked_reason = f"{url.host} asked to retry after {seconds:g} s; not requested"
        self.memory.blocked[state.key] = (state.blocked_until, state.blocked_reason)

    def _backoff(self, number: int) -> float:
        """Exponential backoff with jitter before try number+1."""
        base = min(self.settings.backoff_max, self.settings.backoff_base * 2 ** (number - 1))
        return base * random.uniform(0.5, 1.0)

    def _refuse(
        self, result: FetchResult, url: str, error: str, message: str, *,
        transient: bool = False, retry_later: bool = False,
    ) -> FetchResult:
        """Record a refusal made without a request (status None) and make it the result."""
        result.records.append(RequestRecord(url, None, error, _short(message), _now(), 0, 0.0))
        result.error, result.message = error, _short(message)
        result.transient, result.retry_later = transient, retry_later
        return result

    # -- httpx plumbing ----------------------------------------------------------------------

    def _pin_connections(self) -> bool:
        """Put the connect-time SSRF guard under httpx's direct connection pool; False if it can't be done.

        httpx has no public hook for the network backend, so this reaches into the direct
        transport's pool; a test checks it still works after upgrades.
        """
        pool = getattr(self._router.direct, "_pool", None)
        if type(pool) is not httpcore.AsyncConnectionPool or not hasattr(pool, "_network_backend"):
            return False
        pool._network_backend = GuardedBackend(pool._network_backend, self._resolve)
        return True

    async def _resolve(self, host: str, port: int) -> list[str]:
        return await self.resolver(host, port)

    def _proxied(self, url: httpx.URL) -> bool:
        """Whether an environment proxy (HTTP(S)_PROXY, minus NO_PROXY) carries requests to url."""
        return self._router.proxy_for(url) is not None


async def _take_location(response: httpx.Response) -> None:
    """Move a redirect's Location out of httpx's sight (into `extensions`).

    Even with follow_redirects=False httpx builds the next request, and raises on a Location it
    can't parse (e.g. "javascript:..."), losing the response; we judge every hop ourselves.
    """
    if 300 <= response.status_code < 400 and "location" in response.headers:
        response.extensions[_LOCATION] = response.headers["location"]
        del response.headers["location"]


def _follow(current: httpx.URL, location: str) -> httpx.URL | str:
    """The http(s) URL a Location header points to from current, or why it can't be followed."""
    if not location.strip() or any(ch in location for ch in "\r\n\x00"):
        return "invalid Location"
    try:
        following = current.join(location.strip())
    except (httpx.InvalidURL, UnicodeError, ValueError) as exc:
        return f"invalid Location: {exc}"
    return _http_url(following)


def _retryable(attempt: _Attempt) -> bool:
    record = attempt.record
    if record.error in TRANSIENT_ERRORS:
        return True
    return record.error == "HTTPStatus" and record.status is not None and (
        record.status >= 500 or record.status == 429)

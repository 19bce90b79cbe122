"""A hostile HTTP/1.1 server on 127.0.0.1 for tests: everything a crawler meets on the bad web.

    from tests.hostile_server import HostileServer, Static

    with HostileServer(static={"/feed.xml": Static(feed_xml, "application/rss+xml")}) as server:
        server.url("/ok")          # -> "http://127.0.0.1:PORT/ok"
        server.base_url            # -> "http://127.0.0.1:PORT"
        server.hits("/ok")         # requests seen for a path
        server.max_in_flight       # most requests it ever served at once

It runs in background threads (one per connection, keep-alive), streams its big answers
instead of holding them, and stops stalling handlers when it shuts down. It also works as a
plain forward proxy: a request line with an absolute URL ("GET http://any.host/ok") is served
as if addressed to it, so proxy and SSRF tests can use made-up host names.

Routes (query parameters optional):

- /ok, /slow?delay=0.2, /echo (request headers as JSON), /json, /status?code=404, /404, /500
- /503-then-200?key=K&times=1, /429-then-200?key=K&retry_after=1, /503-date-then-200?key=K
  (Retry-After as an HTTP date), /429 (Retry-After: 1, always), /429-long (Retry-After: 3600)
- /redirect?to=URL&code=302, /redirect-chain?n=3 (n hops, then /ok), /redirect-loop,
  /redirect-file (Location: file:///etc/passwd)
- /big?size=50000000 (Content-Length, streamed), /big-chunked?size=... (no length),
  /gzip-bomb?size=1100000000 (Content-Encoding: gzip, compressed on the fly as it is read)
- /stall (headers, then nothing), /stall-headers (nothing at all), /trickle?interval=2&length=100
- /drop?length=100000&send=1000 (Content-Length larger than what is sent, then closed)
- /png-as-html (PNG as image/png), /html-as-png (HTML as image/png), /png-untyped (PNG, no
  Content-Type), /pdf
- /invalid-utf8, /sjis-meta, /euckr-meta, /eucjp-meta, /gb18030-meta (charset only in a meta tag),
  /latin1-cp1252 (header says ISO-8859-1, bytes are Windows-1252), /sjis-xml (XML declaration only)
- /conditional (ETag "v1", fixed Last-Modified; 304 when the validators match)
- /billion-laughs.xml (entity expansion), /xxe.xml (external entity to file:///etc/passwd)
- /robots.txt (`robots_txt` / `robots_status` attributes), /private/... (disallowed there)
- any path in `static` (a dict of path -> Static, mutable while running), with validators
"""

from __future__ import annotations

import hashlib
import json
import select
import socket
import struct
import threading
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal
from urllib.parse import parse_qs, urlsplit

DEFAULT_ROBOTS = "User-agent: *\nDisallow: /private/\nCrawl-delay: 0.2\n"
"""Default robots.txt: a Disallow and a (short) Crawl-delay. Pass robots_txt="" for none."""

OK_HTML = (
    "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Skilled worker visa update</title></head>"
    "<body><article><h1>Skilled worker visa update</h1><p>The ministry announced changes to the "
    "skilled worker visa programme for 2025, raising the annual quota to 12,000.</p></article></body></html>"
)

JA_TEXT = "出入国在留管理庁は、特定技能ビザの対象分野に介護、建設、農業を加え、外国人材の受け入れを拡大すると発表した。"
KO_TEXT = ("법무부 출입국 외국인정책본부는 외국인 근로자의 취업비자 발급 절차를 간소화하고 "
           "고용허가제 인력 도입 규모를 확대한다고 밝혔다.")
ZH_TEXT = "国家移民管理局发布外国人才签证新政策，高端人才可申请人才签证，便利化措施覆盖科技创新领域。"
EN_CP1252_TEXT = ("The minister said \u201cskilled workers\u201d will get visas \u2014 "
                  "a caf\u00e9-style r\u00e9sum\u00e9 check.")

# Smallest valid PNG (1x1 transparent pixel).
PNG_BYTES = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
    b"\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82"
)
PDF_BYTES = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE rss [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<rss version="2.0"><channel><title>Laughs &lol9;</title><link>http://example.org/</link>
<description>&lol9;</description>
<item><title>&lol9;</title><link>http://example.org/a</link><description>&lol9;</description></item>
</channel></rss>
"""

XXE_FEED = """<?xml version="1.0"?>
<!DOCTYPE rss [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<rss version="2.0"><channel><title>External entity</title><link>http://example.org/</link>
<description>&xxe;</description>
<item><title>&xxe;</title><link>http://example.org/b</link><description>&xxe;</description></item>
</channel></rss>
"""

CONDITIONAL_ETAG = '"v1"'
CONDITIONAL_LAST_MODIFIED = "Wed, 01 Jan 2025 00:00:00 GMT"


def _meta_page(text: str, charset_label: str) -> str:
    return (f"<html><head><meta http-equiv=\"Content-Type\" content=\"text/html; charset={charset_label}\">"
            f"<title>{text[:12]}</title></head><body><p>{text}</p><p>{text}</p></body></html>")


@dataclass
class Static:
    """A fixed answer for a path; conditional GET works out of the box.

    validators: "both" (ETag from the body hash + Last-Modified, 304 when they match),
    "etag", "last-modified", "none", or "unstable" (a new ETag and Last-Modified on every
    answer, never 304: the servers with stale validators).
    """

    body: bytes | str
    content_type: str = "text/html; charset=utf-8"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    validators: Literal["both", "etag", "last-modified", "none", "unstable"] = "both"
    last_modified: str = field(default_factory=lambda: formatdate(time.time() - 86_400, usegmt=True))
    delay: float = 0.0
    """Seconds to wait before answering (makes concurrency observable)."""

    @property
    def data(self) -> bytes:
        return self.body.encode("utf-8") if isinstance(self.body, str) else self.body

    @property
    def etag(self) -> str:
        return '"' + hashlib.sha256(self.data).hexdigest()[:16] + '"'


@dataclass
class Seen:
    """One request as the server saw it."""

    method: str
    target: str
    """The request target as sent (absolute when the server is used as a proxy)."""
    path: str
    headers: dict[str, str]
    started: float
    """time.monotonic() when the request line arrived."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stalled handlers must not hold up shutdown
    owner: HostileServer

    def handle_error(self, request: object, client_address: object) -> None:
        # Clients hang up on purpose all the time here; that's not worth a traceback.
        pass


class _Gone(Exception):
    """The client went away or the server is stopping."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    # -- plumbing ----------------------------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802
        owner = self.server.owner
        split = urlsplit(self.path)
        path = split.path or "/"
        self.query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        owner._begin(Seen(self.command, self.path, path, dict(self.headers.items()), time.monotonic()))
        try:
            owner._dispatch(self, path)
        except (_Gone, ConnectionError, TimeoutError, OSError):
            self.close_connection = True
        finally:
            owner._end()

    def q(self, name: str, default: str) -> str:
        return self.query.get(name, default)

    def send(self, status: int, body: bytes, content_type: str | None = "text/html; charset=utf-8",
             headers: dict[str, str] | None = None) -> None:
        """A complete answer with Content-Length."""
        self.send_response(status)
        if content_type is not None:
            self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def start(self, status: int, content_type: str | None, headers: dict[str, str] | None = None,
              length: int | None = None) -> None:
        """Headers of a streamed answer: with Content-Length if given, else chunked."""
        self.send_response(status)
        if content_type is not None:
            self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if length is None:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(length))
        self.end_headers()

    def chunk(self, data: bytes) -> None:
        if data:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def end_chunks(self) -> None:
        self.wfile.write(b"0\r\n\r\n")

    def wait(self, seconds: float) -> None:
        """Sleep, but raise _Gone as soon as the client hangs up or the server stops."""
        deadline = time.monotonic() + seconds
        sock: socket.socket = self.connection
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if self.server.owner._stopping.is_set():
                raise _Gone
            readable, _, _ = select.select([sock], [], [], min(left, 0.05))
            if readable:
                try:
                    if sock.recv(1, socket.MSG_PEEK) == b"":
                        raise _Gone
                except OSError as exc:
                    raise _Gone from exc
                time.sleep(min(left, 0.05))  # pipelined data, not a hang-up


class HostileServer:
    """The hostile server; a context manager that starts it on 127.0.0.1 (or `host`) and stops it."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, robots_txt: str = DEFAULT_ROBOTS,
                 robots_status: int = 200, static: dict[str, Static] | None = None) -> None:
        self.host = host
        self.port = port
        self.robots_txt = robots_txt
        self.robots_status = robots_status
        self.static: dict[str, Static] = dict(static or {})
        self.requests: list[Seen] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._counters: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> HostileServer:
        """Bind and serve in a background thread."""
        self._server = _Server((self.host, self.port), _Handler)
        self._server.owner = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"hostile-server-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; stalled and trickling handlers give up within a fraction of a second."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> HostileServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def url(self, path: str) -> str:
        """Absolute URL of a path on this server."""
        return self.base_url + path

    def hits(self, path: str) -> list[Seen]:
        """Requests seen so far for a path (query ignored)."""
        with self._lock:
            return [seen for seen in self.requests if seen.path == path]

    # -- bookkeeping -------------------------------------------------------------------------

    def _begin(self, seen: Seen) -> None:
        with self._lock:
            self.requests.append(seen)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def _end(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def _count(self, key: str) -> int:
        """How many times key was seen before (0 the first time)."""
        with self._lock:
            seen = self._counters[key]
            self._counters[key] += 1
            return seen

    # -- routes ------------------------------------------------------------------------------

    def _dispatch(self, h: _Handler, path: str) -> None:
        if path in self.static:
            self._static(h, self.static[path])
            return
        if path == "/robots.txt":
            h.send(self.robots_status, self.robots_txt.encode("utf-8"), "text/plain; charset=utf-8")
            return
        if path.startswith("/private/"):
            h.send(200, b"<html><body>secret</body></html>")
            return
        route = _ROUTES.get(path)
        if route is None:
            h.send(404, b"<html><body>not found</body></html>")
            return
        route(self, h)

    def _static(self, h: _Handler, item: Static) -> None:
        if item.delay:
            h.wait(item.delay)
        headers = dict(item.headers)
        if item.validators == "unstable":
            headers["ETag"] = f'"{time.time_ns()}"'
            headers["Last-Modified"] = formatdate(usegmt=True)
        else:
            if item.validators in ("both", "etag"):
                headers["ETag"] = item.etag
            if item.validators in ("both", "last-modified"):
                headers["Last-Modified"] = item.last_modified
            if item.status == 200 and _not_modified(h, headers.get("ETag"), headers.get("Last-Modified")):
                h.send(304, b"", None, headers)
                return
        h.send(item.status, item.data, item.content_type, headers)

    def ok(self, h: _Handler) -> None:
        h.send(200, OK_HTML.encode("utf-8"))

    def slow(self, h: _Handler) -> None:
        h.wait(float(h.q("delay", "0.2")))
        h.send(200, OK_HTML.encode("utf-8"))

    def echo(self, h: _Handler) -> None:
        h.send(200, json.dumps(dict(h.headers.items())).encode(), "application/json")

    def json_route(self, h: _Handler) -> None:
        h.send(200, json.dumps({"items": [{"title": "Visa quota", "year": 2025}]}).encode(), "application/json")

    def status(self, h: _Handler) -> None:
        code = int(h.q("code", "404"))
        h.send(code, f"<html><body>status {code}</body></html>".encode())

    def not_found(self, h: _Handler) -> None:
        h.send(404, b"<html><body>not found</body></html>")

    def error_500(self, h: _Handler) -> None:
        h.send(500, b"<html><body>internal error</body></html>")

    def then_200(self, h: _Handler, prefix: str, status: int, headers: dict[str, str]) -> None:
        key = prefix + h.q("key", "default")
        if self._count(key) < int(h.q("times", "1")):
            h.send(status, f"<html><body>{status}</body></html>".encode(), headers=headers)
        else:
            h.send(200, OK_HTML.encode("utf-8"))

    def r503_then_200(self, h: _Handler) -> None:
        self.then_200(h, "503:", 503, {})

    def r429_then_200(self, h: _Handler) -> None:
        self.then_200(h, "429:", 429, {"Retry-After": h.q("retry_after", "1")})

    def r503_date_then_200(self, h: _Handler) -> None:
        self.then_200(h, "503d:", 503, {"Retry-After": formatdate(time.time() + 1, usegmt=True)})

    def r429(self, h: _Handler) -> None:
        h.send(429, b"<html><body>slow down</body></html>", headers={"Retry-After": "1"})

    def r429_long(self, h: _Handler) -> None:
        h.send(429, b"<html><body>come back in an hour</body></html>", headers={"Retry-After": "3600"})

    def redirect(self, h: _Handler) -> None:
        h.send(int(h.q("code", "302")), b"", None, {"Location": h.q("to", "/ok")})

    def redirect_chain(self, h: _Handler) -> None:
        n = int(h.q("n", "3"))
        h.send(302, b"", None, {"Location": f"/redirect-chain?n={n - 1}" if n > 1 else "/ok"})

    def redirect_loop(self, h: _Handler) -> None:
        h.send(302, b"", None, {"Location": "/redirect-loop-b"})

    def redirect_loop_b(self, h: _Handler) -> None:
        h.send(301, b"", None, {"Location": "/redirect-loop"})

    def redirect_file(self, h: _Handler) -> None:
        h.send(302, b"", None, {"Location": "file:///etc/passwd"})

    def big(self, h: _Handler, chunked: bool = False) -> None:
        size = int(h.q("size", "50000000"))
        h.start(200, "text/html; charset=utf-8", length=None if chunked else size)
        block = b"<p>" + b"x" * 65_529 + b"</p>"  # 64 KiB of valid HTML, reused
        sent = 0
        while sent < size:
            piece = block[: size - sent]
            if chunked:
                h.chunk(piece)
            else:
                h.wfile.write(piece)
            sent += len(piece)
        if chunked:
            h.end_chunks()

    def big_chunked(self, h: _Handler) -> None:
        self.big(h, chunked=True)

    def gzip_bomb(self, h: _Handler) -> None:
        """Zeros gzip-compressed as they are sent: about 1 MB on the wire per GB expanded, never held."""
        size = int(h.q("size", "1100000000"))
        h.start(200, "text/html; charset=utf-8", {"Content-Encoding": "gzip"})
        compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        block = bytes(1 << 20)
        sent = 0
        while sent < size:
            piece = block[: size - sent]
            h.chunk(compressor.compress(piece))
            sent += len(piece)
        h.chunk(compressor.flush())
        h.end_chunks()

    def stall(self, h: _Handler) -> None:
        h.start(200, "text/html; charset=utf-8", length=1000)
        h.wfile.write(b"<html>")
        h.wait(60)

    def stall_headers(self, h: _Handler) -> None:
        h.wait(60)

    def trickle(self, h: _Handler) -> None:
        length = int(h.q("length", "100"))
        interval = float(h.q("interval", "2"))
        h.start(200, "text/html; charset=utf-8", length=length)
        for _ in range(length):
            h.wfile.write(b"x")
            h.wait(interval)

    def drop(self, h: _Handler) -> None:
        length = int(h.q("length", "100000"))
        send = int(h.q("send", "1000"))
        h.start(200, "text/html; charset=utf-8", length=length)
        h.wfile.write(b"<html><body>" + b"y" * max(0, send - 12))
        h.close_connection = True
        h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        h.connection.shutdown(socket.SHUT_RDWR)

    def png_as_html(self, h: _Handler) -> None:
        h.send(200, PNG_BYTES, "image/png")

    def html_as_png(self, h: _Handler) -> None:
        h.send(200, OK_HTML.encode("utf-8"), "image/png")

    def png_untyped(self, h: _Handler) -> None:
        h.send(200, PNG_BYTES, None)

    def pdf(self, h: _Handler) -> None:
        h.send(200, PDF_BYTES, "application/pdf")

    def invalid_utf8(self, h: _Handler) -> None:
        body = ("<html><body><p>Visa caf\u00e9 ".encode() + b"\xff\xfe\xc3(\xa0\xa1 broken"
                + " end \u2014 ok</p></body></html>".encode())
        h.send(200, body, "text/html; charset=utf-8")

    def sjis_meta(self, h: _Handler) -> None:
        h.send(200, _meta_page(JA_TEXT, "Shift_JIS").encode("cp932"), "text/html")

    def euckr_meta(self, h: _Handler) -> None:
        h.send(200, _meta_page(KO_TEXT, "euc-kr").encode("cp949"), "text/html")

    def eucjp_meta(self, h: _Handler) -> None:
        h.send(200, _meta_page(JA_TEXT, "EUC-JP").encode("euc_jp"), "text/html")

    def gb18030_meta(self, h: _Handler) -> None:
        h.send(200, _meta_page(ZH_TEXT, "gb2312").encode("gb18030"), "text/html")

    def latin1_cp1252(self, h: _Handler) -> None:
        body = f"<html><body><p>{EN_CP1252_TEXT}</p></body></html>".encode("cp1252")
        h.send(200, body, "text/html; charset=ISO-8859-1")

    def sjis_xml(self, h: _Handler) -> None:
        body = (f'<?xml version="1.0" encoding="Shift_JIS"?><rss version="2.0"><channel><title>{JA_TEXT}'
                "</title></channel></rss>").encode("cp932")
        h.send(200, body, "application/rss+xml")

    def conditional(self, h: _Handler) -> None:
        headers = {"ETag": CONDITIONAL_ETAG, "Last-Modified": CONDITIONAL_LAST_MODIFIED}
        if _not_modified(h, CONDITIONAL_ETAG, CONDITIONAL_LAST_MODIFIED):
            h.send(304, b"", None, headers)
        else:
            h.send(200, OK_HTML.encode("utf-8"), headers=headers)

    def billion_laughs(self, h: _Handler) -> None:
        h.send(200, BILLION_LAUGHS.encode(), "application/rss+xml")

    def xxe(self, h: _Handler) -> None:
        h.send(200, XXE_FEED.encode(), "application/rss+xml")


def _not_modified(h: _Handler, etag: str | None, last_modified: str | None) -> bool:
    """Whether the request's validators match (If-None-Match first, as RFC 9110 says)."""
    inm = h.headers.get("If-None-Match")
    if inm is not None:
        return etag is not None and (inm.strip() == "*" or etag in [t.strip() for t in inm.split(",")])
    ims = h.headers.get("If-Modified-Since")
    return last_modified is not None and ims is not None and ims.strip() == last_modified


_ROUTES = {
    "/ok": HostileServer.ok,
    "/slow": HostileServer.slow,
    "/echo": HostileServer.echo,
    "/json": HostileServer.json_route,
    "/status": HostileServer.status,
    "/404": HostileServer.not_found,
    "/500": HostileServer.error_500,
    "/503-then-200": HostileServer.r503_then_200,
    "/429-then-200": HostileServer.r429_then_200,
    "/503-date-then-200": HostileServer.r503_date_then_200,
    "/429": HostileServer.r429,
    "/429-long": HostileServer.r429_long,
    "/redirect": HostileServer.redirect,
    "/redirect-chain": HostileServer.redirect_chain,
    "/redirect-loop": HostileServer.redirect_loop,
    "/redirect-loop-b": HostileServer.redirect_loop_b,
    "/redirect-file": HostileServer.redirect_file,
    "/big": HostileServer.big,
    "/big-chunked": HostileServer.big_chunked,
    "/gzip-bomb": HostileServer.gzip_bomb,
    "/stall": HostileServer.stall,
    "/stall-headers": HostileServer.stall_headers,
    "/trickle": HostileServer.trickle,
    "/drop": HostileServer.drop,
    "/png-as-html": HostileServer.png_as_html,
    "/html-as-png": HostileServer.html_as_png,
    "/png-untyped": HostileServer.png_untyped,
    "/pdf": HostileServer.pdf,
    "/invalid-utf8": HostileServer.invalid_utf8,
    "/sjis-meta": HostileServer.sjis_meta,
    "/euckr-meta": HostileServer.euckr_meta,
    "/eucjp-meta": HostileServer.eucjp_meta,
    "/gb18030-meta": HostileServer.gb18030_meta,
    "/latin1-cp1252": HostileServer.latin1_cp1252,
    "/sjis-xml": HostileServer.sjis_xml,
    "/conditional": HostileServer.conditional,
    "/billion-laughs.xml": HostileServer.billion_laughs,
    "/xxe.xml": HostileServer.xxe,
}

"""The bundled offline sample site that `monitor demo` serves and the end-to-end tests crawl.

    with serve_demo_site() as server:
        sources = demo_sources(server.base_url)   # [[sources]] dicts pointing at the server

Files live in `monitor/demo_site/`. Text responses have `{{BASE}}` replaced by the
server's base URL, so feeds and JSON APIs can carry absolute links to a server whose
port is only known at start-up.
"""

from __future__ import annotations

import hashlib
import socket
import threading
import tomllib
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import unquote, urlsplit

SITE_DIR = Path(__file__).resolve().parent / "demo_site"
BASE_PLACEHOLDER = "{{BASE}}"

# Only these are served; anything else (sources.toml included) is a 404.
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".rss": "application/rss+xml; charset=utf-8",
    ".atom": "application/atom+xml; charset=utf-8",
    ".xml": "application/xml; charset=utf-8",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}

NOT_FOUND_PAGE = b"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Page not found</title></head>
<body><h1>Page not found</h1><p>If you typed the web address, check it is correct.</p></body></html>
"""


def resolve_site_path(url_path: str, site_dir: Path = SITE_DIR) -> Path | None:
    """Map a request path to a file under `site_dir`, or None when there is none to serve.

    The query string plays no part (feed links carrying utm_* parameters reach the same
    file); a path ending in "/" means its index.html; nothing outside `site_dir` is reachable.
    """
    path = unquote(urlsplit(url_path).path)
    if path.endswith("/"):
        path += "index.html"
    candidate = (site_dir / path.lstrip("/")).resolve()
    if not candidate.is_relative_to(site_dir.resolve()) or not candidate.is_file():
        return None
    if candidate.suffix not in CONTENT_TYPES:
        return None
    return candidate


class _DemoHandler(BaseHTTPRequestHandler):
    """Serves the demo site with validators (ETag, Last-Modified) and conditional GETs."""

    server: _DemoHTTPServer
    protocol_version = "HTTP/1.1"
    timeout = 30  # an idle keep-alive connection is dropped after this many seconds
    disable_nagle_algorithm = True  # headers and body go out in two writes; don't wait 40 ms between
    server_version = "policy-monitor-demo/1.0"
    sys_version = ""

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        self._respond(send_body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._respond(send_body=False)

    def _respond(self, send_body: bool) -> None:
        file = resolve_site_path(self.path, self.server.site_dir)
        if file is None:
            self._send(404, "text/html; charset=utf-8", NOT_FOUND_PAGE, send_body)
            return
        body = self.server.render(file)
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        mtime = int(file.stat().st_mtime)
        headers = {"ETag": etag, "Last-Modified": formatdate(mtime, usegmt=True), "Cache-Control": "no-cache"}
        if self._not_modified(etag, mtime):
            self._send(304, None, b"", False, headers)
            return
        self._send(200, CONTENT_TYPES[file.suffix], body, send_body, headers)

    def _not_modified(self, etag: str, mtime: int) -> bool:
        """RFC 9110: If-None-Match decides when present; otherwise If-Modified-Since."""
        inm = self.headers.get("If-None-Match")
        if inm is not None:
            tags = [t.strip().removeprefix("W/") for t in inm.split(",")]
            return "*" in tags or etag in tags
        ims = self.headers.get("If-Modified-Since")
        if ims:
            try:
                return mtime <= parsedate_to_datetime(ims).timestamp()
            except (TypeError, ValueError, IndexError, OverflowError):
                return False  # an unparseable date is ignored, as the RFC says
        return False

    def _send(
        self,
        status: int,
        content_type: str | None,
        body: bytes,
        send_body: bool,
        headers: dict[str, str] | None = None,
    ) -> None:
        # Logged before the response leaves, so a client that has its answer sees the entry.
        self.server.record(self.command, self.path, status)
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if status != 304:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body and body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # the demo and the tests keep stderr clean; request_log records requests instead


class _DemoHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], site_dir: Path) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _DemoHandler)
        self.site_dir = site_dir
        self.base_url = ""
        self.request_log: list[tuple[str, str, int]] = []
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()

    def render(self, file: Path) -> bytes:
        """The file's bytes with {{BASE}} replaced by the base URL."""
        data = file.read_bytes()
        return data.replace(BASE_PLACEHOLDER.encode(), self.base_url.encode())

    def record(self, method: str, path: str, status: int) -> None:
        with self._lock:
            self.request_log.append((method, path, status))

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients hanging up mid-response are normal for a crawler under test; no traceback

    # Open connections are tracked so close() can end keep-alive ones too: otherwise a
    # client's pooled connection would still be answered after the server was "closed".
    def process_request(self, request: Any, client_address: Any) -> None:
        with self._lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already gone


class DemoServer:
    """A running demo site: `.base_url`, `.request_log`, `.close()`; also a context manager."""

    def __init__(self, httpd: _DemoHTTPServer, thread: threading.Thread) -> None:
        self._httpd = httpd
        self._thread = thread
        self.host, self.port = httpd.server_address[:2]
        self.base_url: str = httpd.base_url
        self.request_log: list[tuple[str, str, int]] = httpd.request_log
        """Every request answered, as (method, path with query, status), in order."""

    def close(self) -> None:
        """Stop serving and release the port. Safe to call twice."""
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join(timeout=5)
        self._httpd.server_close()
        self._httpd.close_connections()

    def __enter__(self) -> DemoServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def serve_demo_site(host: str = "127.0.0.1", port: int = 0, site_dir: Path | None = None) -> DemoServer:
    """Start serving the demo site on host:port (0 = a free port) in a background daemon thread."""
    httpd = _DemoHTTPServer((host, port), site_dir or SITE_DIR)
    bound_host, bound_port = httpd.server_address[:2]
    url_host = f"[{bound_host}]" if ":" in str(bound_host) else str(bound_host)
    httpd.base_url = f"http://{url_host}:{bound_port}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="demo-site", daemon=True)
    thread.start()
    return DemoServer(httpd, thread)


def demo_sources(base_url: str, site_dir: Path | None = None) -> list[dict[str, Any]]:
    """The demo site's [[sources]] entries (demo_site/sources.toml) with {{BASE}} set to base_url."""
    text = ((site_dir or SITE_DIR) / "sources.toml").read_text(encoding="utf-8")
    data = tomllib.loads(text.replace(BASE_PLACEHOLDER, base_url.rstrip("/")))
    return list(data.get("sources", []))

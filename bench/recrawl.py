"""Benchmark politeness and conditional GETs: 50 feeds on 5 loopback hosts, 20 articles each.

First cycle: articles/s and the largest number of requests ever in flight to one
host, counted by the servers themselves (it must never exceed per_host_concurrency).
Second cycle, nothing changed: requests made, bytes downloaded and the share
answered 304 (target: every feed conditional, no article fetched again, under 5%
of the first cycle's bytes).

    .venv/bin/python bench/recrawl.py
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.synthetic_site import article_html, feed_xml  # noqa: E402

HOSTS = [f"127.0.0.{i}" for i in range(2, 7)]


def _serve(queue: multiprocessing.Queue, feeds_per_host: int, per_feed: int, latency: float) -> None:
    in_flight: dict[str, int] = {}
    peak: dict[str, int] = {}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            host = self.server.server_address[0]
            if self.path == "/stats":
                self._send(200, json.dumps(peak).encode(), "application/json", None)
                return
            with lock:
                in_flight[host] = in_flight.get(host, 0) + 1
                peak[host] = max(peak.get(host, 0), in_flight[host])
            try:
                time.sleep(latency)  # a real server takes a while; overlapping requests become visible
                base = f"http://{host}:{self.server.server_address[1]}"
                if self.path.startswith("/feed/"):
                    feed = int(self.path.rsplit("/", 1)[1])
                    body = feed_xml(base, HOSTS.index(host) * 1000 + feed, per_feed).encode()
                    kind = "application/rss+xml"
                elif self.path.startswith("/a/"):
                    body, kind = article_html(int(self.path.rsplit("/", 1)[1])).encode(), "text/html; charset=utf-8"
                elif self.path == "/robots.txt":
                    body, kind = b"User-agent: *\nAllow: /\n", "text/plain"
                else:
                    self._send(404, b"", "text/plain", None)
                    return
                etag = '"' + hashlib.sha1(body).hexdigest() + '"'
                if self.headers.get("If-None-Match") == etag:
                    self._send(304, b"", kind, etag)
                else:
                    self._send(200, body, kind, etag)
            finally:
                with lock:
                    in_flight[host] -= 1

        def _send(self, status: int, body: bytes, kind: str, etag: str | None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            if etag:
                self.send_header("ETag", etag)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    servers = [ThreadingHTTPServer((host, 0), Handler) for host in HOSTS]
    for server in servers:
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
    queue.put([f"http://{s.server_address[0]}:{s.server_address[1]}" for s in servers])
    threading.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds-per-host", type=int, default=10)
    parser.add_argument("--per-feed", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=2, help="per_host_concurrency")
    parser.add_argument("--latency", type=float, default=0.005, help="server think time per request, seconds")
    args = parser.parse_args()

    import httpx

    from monitor.config import config_from_dict
    from monitor.crawl import run_crawl
    from pipelines.tagging import Tagger
    from storage import open_db

    queue: multiprocessing.Queue = multiprocessing.Queue()
    process = multiprocessing.Process(target=_serve, args=(queue, args.feeds_per_host, args.per_feed, args.latency),
                                      daemon=True)
    process.start()
    bases = queue.get(timeout=30)
    try:
        with tempfile.TemporaryDirectory() as folder:
            sources = [{"name": f"h{h}-f{f}", "kind": "feed", "url": f"{base}/feed/{f}", "max_items": args.per_feed}
                       for h, base in enumerate(bases) for f in range(args.feeds_per_host)]
            config = config_from_dict({
                "crawl": {"allow_private_addresses": True, "per_host_delay": 0,
                          "per_host_concurrency": args.concurrency, "article_concurrency": 16},
                "sources": sources,
            }, path=None, base_dir=Path(folder))
            tagger = Tagger.load()
            db = open_db(Path(folder) / "bench.db")
            cycles = []
            for _ in range(2):
                mark = db.execute("SELECT coalesce(max(id), 0) FROM fetches").fetchone()[0]
                started = time.perf_counter()
                summary = run_crawl(config, db, tagger)
                elapsed = time.perf_counter() - started
                requests, bytes_, not_modified, articles = db.execute(
                    "SELECT count(*), coalesce(sum(bytes), 0), sum(status = 304), sum(url LIKE '%/a/%')"
                    " FROM fetches WHERE id > ?", [mark]).fetchone()
                cycles.append((summary, elapsed, requests, bytes_, not_modified or 0, articles or 0))
            db.close()
        peaks = {base: max(httpx.get(f"{base}/stats").json().values(), default=0) for base in bases}
    finally:
        process.terminate()

    (first, t1, r1, b1, _, a1), (second, t2, r2, b2, nm2, a2) = cycles
    feeds = len(sources)
    print(f"first cycle: {len(first.new_article_ids)} articles from {feeds} feeds on {len(bases)} hosts in "
          f"{t1:.1f} s -> {len(first.new_article_ids) / t1:.1f} articles/s; {r1} requests, {b1:,} bytes")
    print(f"largest number of requests in flight to one host: {max(peaks.values())} "
          f"(per_host_concurrency = {args.concurrency}); per host: {sorted(peaks.values())}")
    print(f"second cycle: {r2} requests, {b2:,} bytes ({100 * b2 / max(b1, 1):.2f}% of the first), "
          f"{nm2} answered 304 ({100 * nm2 / max(feeds, 1):.0f}% of {feeds} feeds), {a2} article fetches, "
          f"{len(second.new_article_ids)} new articles, {t2:.2f} s")


if __name__ == "__main__":
    main()

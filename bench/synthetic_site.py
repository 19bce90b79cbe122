"""A synthetic news site on loopback for benchmarks: feeds listing N generated article pages.

Run in its own process so its CPU time does not count against the crawler's.
"""

from __future__ import annotations

import multiprocessing
import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

WORDS = ("the government said ministry policy workers foreign talent visa program applicants employers "
         "industry skilled professionals officials announced new rules quota points system review data "
         "universities researchers companies regional labour shortage reform permit residence status year "
         "figures show growth demand application process fee salary threshold").split()
TERMS = ["E-7 visa", "Highly Skilled Professional status", "H-1B petitions", "EU Blue Card", "Global Talent visa",
         "semiconductor engineers", "AI researchers", "nurses", "software developers", "shipbuilding workers"]


def article_html(number: int, words: int = 600) -> str:
    """A generated news page of about the median size of real ones (~110 KB): ~`words` words of article
    text with visas, sectors and figures, inside the chrome real news sites carry (scripts, menus,
    teasers, comments, footer), so extraction has the usual amount of page to work through."""
    rng = random.Random(number)
    paragraphs = []
    remaining = words
    while remaining > 0:
        sentences = []
        for _ in range(4):
            body = " ".join(rng.choice(WORDS) for _ in range(rng.randint(10, 18)))
            sentences.append(f"{body.capitalize()} {rng.choice(TERMS)} rose to {rng.randint(100, 99999):,} in "
                             f"{rng.randint(2010, 2025)}.")
        paragraph = " ".join(sentences)
        remaining -= len(paragraph.split())
        paragraphs.append(f"<p>{paragraph}</p>")
    nav = "".join(f"<li class='menu-item'><a href='/section/{i}' class='menu-link'>Section {i}</a></li>"
                  for i in range(150))
    teasers = "".join(
        f"<div class='teaser'><a href='/story/{number}-{i}'><img src='/img/{i}.jpg' alt=''>"
        f"<h4>{' '.join(rng.choice(WORDS) for _ in range(8)).capitalize()}</h4></a>"
        f"<span class='time'>{i + 1} hours ago</span></div>" for i in range(30))
    comments = "".join(
        f"<li class='comment'><b>reader{i}</b><p>{' '.join(rng.choice(WORDS) for _ in range(20))}</p></li>"
        for i in range(15))
    script = "var config = {" + ",".join(f"'k{i}': '{rng.random():.12f}'" for i in range(1500)) + "};"
    footer = "".join(f"<a href='/about/{i}'>About link {i}</a> " for i in range(100))
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Policy update {number}</title>"
            f"<meta property='article:published_time' content='2025-07-{1 + number % 28:02d}'>"
            f"<script>{script}</script><style>{'.c{margin:0;padding:0}' * 400}</style></head><body>"
            f"<div class='cookie'>We use cookies to improve your experience.</div>"
            f"<header><nav><ul>{nav}</ul></nav></header><main><article><h1>Policy update {number}</h1>"
            f"<div class='byline'>By Staff Reporter</div>{''.join(paragraphs)}</article>"
            f"<section class='related'><h3>Related</h3>{teasers}</section>"
            f"<section class='comments'><h3>Comments</h3><ul>{comments}</ul></section></main>"
            f"<aside><h3>Most read</h3><ul>{nav[:3000]}</ul></aside>"
            f"<footer>{footer}<p>Copyright Ministry of Examples. All rights reserved.</p></footer></body></html>")


def feed_xml(base: str, feed: int, per_feed: int) -> str:
    start = datetime(2025, 7, 1, tzinfo=UTC)
    items = []
    for index in range(per_feed):
        number = feed * per_feed + index
        items.append(f"<item><title>Policy update {number}</title><link>{base}/a/{number}</link>"
                     f"<guid>{base}/a/{number}</guid>"
                     f"<pubDate>{format_datetime(start + timedelta(minutes=number))}</pubDate>"
                     f"<description>Summary {number}</description></item>")
    return (f"<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>Feed {feed}</title>"
            f"<link>{base}/</link><description>d</description>{''.join(items)}</channel></rss>")


def _serve(port_queue: multiprocessing.Queue, per_feed: int) -> None:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            base = f"http://127.0.0.1:{self.server.server_address[1]}"
            if self.path.startswith("/feed/"):
                body, kind = feed_xml(base, int(self.path.rsplit("/", 1)[1]), per_feed), "application/rss+xml"
            elif self.path.startswith("/a/"):
                body, kind = article_html(int(self.path.rsplit("/", 1)[1])), "text/html; charset=utf-8"
            elif self.path == "/robots.txt":
                body, kind = "User-agent: *\nAllow: /\n", "text/plain"
            else:
                self.send_error(404)
                return
            data = body.encode("utf-8")
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    port_queue.put(server.server_address[1])
    server.serve_forever()


def start_site(per_feed: int) -> tuple[multiprocessing.Process, str]:
    """Start the site in a child process; return (process, base URL)."""
    queue: multiprocessing.Queue = multiprocessing.Queue()
    process = multiprocessing.Process(target=_serve, args=(queue, per_feed), daemon=True)
    process.start()
    return process, f"http://127.0.0.1:{queue.get(timeout=30)}"

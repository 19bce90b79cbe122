"""Shared parts for the alert, mail and daemon tests: a real SMTP server (aiosmtpd) on 127.0.0.1,
configs built the way `config.toml` is read, and articles stored through storage.writes."""

from __future__ import annotations

import email
import email.policy
import socket
import threading
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from monitor.config import Config, config_from_dict
from storage import open_db
from storage.writes import content_hash, store_article


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class SmtpSink:
    """A real SMTP server on 127.0.0.1 that keeps every accepted message; can be stopped and restarted."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.received: list[tuple[list[str], bytes]] = []
        self.controller: Controller | None = None
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd API)
        with self._lock:
            self.received.append((list(envelope.rcpt_tos), envelope.original_content or envelope.content))
        return "250 Message accepted for delivery"

    def start(self) -> SmtpSink:
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    @property
    def messages(self) -> list[EmailMessage]:
        with self._lock:
            return [email.message_from_bytes(raw, policy=email.policy.default) for _, raw in self.received]

    def wait_for(self, count: int, timeout: float = 20.0) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.messages


@pytest.fixture
def smtp_sink():
    sink = SmtpSink().start()
    yield sink
    sink.stop()


class FakeTagger:
    """The ids a real Tagger knows (unit level: rule checking only needs the id sets)."""

    visa_ids = {"KR:E-7", "KR:E-9", "KR:TOP-TIER", "JP:HSP", "US:H-1B"}
    sector_ids = {"semiconductors", "nursing", "software"}

    def visa_country(self, visa: str) -> str:
        return visa.split(":")[0]

    def subtypes(self, kind: str, eid: str) -> tuple[str, ...]:
        return ()


def make_config(tmp_path: Path, *, alerts: list[dict[str, Any]] | None = None, email_: dict[str, Any] | None = None,
                sources: list[dict[str, Any]] | None = None, timezone: str = "UTC",
                crawl: dict[str, Any] | None = None) -> Config:
    """A Config read from a dict exactly as from config.toml, with a database in `tmp_path`."""
    data: dict[str, Any] = {
        "storage": {"path": "test.db"},
        "crawl": {"allow_private_addresses": True, "per_host_delay": 0, "obey_robots": False, "timeout": 5,
                  **(crawl or {})},
        "email": email_ if email_ is not None else {"outbox": "outbox"},
        "alerts_defaults": {"timezone": timezone},
        "sources": sources if sources is not None else [
            {"name": "wire", "kind": "feed", "url": "http://127.0.0.1:9/feed.xml", "country": "KR"},
            {"name": "daily-news", "kind": "feed", "url": "http://127.0.0.1:9/other.xml", "country": "JP"},
        ],
        "alerts": alerts or [],
    }
    return config_from_dict(data, path=tmp_path / "config.toml", base_dir=tmp_path)


def smtp_email(sink: SmtpSink) -> dict[str, Any]:
    return {"host": "127.0.0.1", "port": sink.port, "security": "none", "sender": "alerts@example.org",
            "timeout": 5}


_counter = iter(range(1, 1_000_000))


def add_article(config: Config, title: str, text: str, *, source: str = "wire", lang: str = "en",
                country: str | None = "KR", url: str | None = None, mentions: list[dict[str, Any]] = (),
                figures: list[dict[str, Any]] = (), published_at: str | None = None,
                extra_urls: list[tuple[str, str]] = (), fetched_at: str | None = None) -> int:
    """Store one article (and its tags) as the crawl does; return its id."""
    db = open_db(config.db_path)
    try:
        article = {
            "url": url or f"https://news.example.org/{next(_counter)}", "source": source, "country": country,
            "title": title, "text": text, "lang": lang, "content_hash": content_hash(title, text),
            "published_at": published_at,
        }
        if fetched_at:
            article["fetched_at"] = fetched_at
        article_id, _new = store_article(db, article, list(mentions), list(figures))
        for other_url, other_source in extra_urls:
            store_article(db, {**article, "url": other_url, "source": other_source}, [], [])
        return article_id
    finally:
        db.close()


def visa(label: str, text: str, body: str) -> dict[str, Any]:
    start = body.index(text)
    return {"kind": "visa", "label": label, "country": label.split(":")[0], "text": text, "start": start,
            "end": start + len(text)}


def sector(label: str, text: str, body: str) -> dict[str, Any]:
    start = body.index(text)
    return {"kind": "sector", "label": label, "text": text, "start": start, "end": start + len(text)}


def plain_part(message: EmailMessage) -> str:
    return message.get_body(("plain",)).get_content()


def html_part(message: EmailMessage) -> str:
    return message.get_body(("html",)).get_content()


def maildir_messages(path: Path) -> list[EmailMessage]:
    """The messages in the Maildir at `path`, parsed with the modern email policy (decoded headers)."""
    import mailbox

    if not path.exists():
        return []
    box = mailbox.Maildir(path, factory=None, create=False)
    return [email.message_from_bytes(box.get_bytes(key), policy=email.policy.default) for key in box.iterkeys()]

"""One crawl cycle: fetch each source, find new items, fetch and extract their pages, tag, store.

This module wires the stages (`pipelines`) to the database (`storage`); the
stages never see the database and storage never sees HTTP. Network I/O is
asynchronous (per-host politeness lives in the Fetcher); extraction, tagging
and writes run on the event loop's thread, one article at a time, each
article committed with its tags in one transaction.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, Protocol, TypeVar

import sqlite_utils

from monitor.config import Config, SourceConfig
from pipelines.extract import extract_article
from pipelines.feeds import parse_feed
from pipelines.fetch import Fetcher, FetchResult, HostGate, HostMemory, RequestRecord
from pipelines.items import Item, ParsedSource
from pipelines.jsonapi import parse_json_api
from pipelines.keep import FILTERED_OUT, split_by_filter
from pipelines.lang import detect_language
from pipelines.listing import NOTHING_MATCHED, parse_listing
from pipelines.tagging import Tagger, TagResult
from pipelines.urls import canonicalize_url
from storage import writes
from storage.alerts import register_rules
from storage.db import DiskFull, disk_full, to_utc_iso, utc_now
from storage.queries import http_validators

log = logging.getLogger("monitor.crawl")
EXPECT = {"feed": "feed", "html_list": "html", "json_api": "json"}
STALE_VALIDATOR_LIMIT = 3
"""200 answers with an unchanged body, despite validators sent, after which the validators are not sent."""
MAX_VALIDATOR_AGE = timedelta(days=1)
"""At least this often a source is fetched without validators."""
BROKEN_BOARD = "the board's selectors matched nothing (site redesign?)"
MAX_DEFERRALS = 3
"""Cycles an item may wait for its page after passing failures (timeouts, 5xx, a long Retry-After);
after that it is stored with the feed's summary, and the row says why."""


@dataclass
class SourceOutcome:
    """What one source gave in one cycle."""

    name: str
    ok: bool = True
    new_articles: int = 0
    items_seen: int = 0
    deferred: int = 0
    error: str = ""
    elapsed: float = 0.0
    not_modified: bool = False
    mentions: int = 0
    figures: int = 0
    filtered_out: int = 0
    """Items the source's keep-filter (`[sources.filter]`) left out: not stored, counted here."""


@dataclass
class CycleSummary:
    outcomes: list[SourceOutcome] = field(default_factory=list)
    new_article_ids: list[int] = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def sources_ok(self) -> int:
        return sum(o.ok for o in self.outcomes)

    @property
    def sources_failed(self) -> int:
        return sum(not o.ok for o in self.outcomes)

    @property
    def mentions(self) -> int:
        return sum(o.mentions for o in self.outcomes)

    @property
    def figures(self) -> int:
        return sum(o.figures for o in self.outcomes)

    def to_json(self) -> dict[str, Any]:
        return {
            "sources_ok": self.sources_ok,
            "sources_failed": self.sources_failed,
            "new_articles": len(self.new_article_ids),
            "mentions": self.mentions,
            "figures": self.figures,
            "elapsed": round(self.elapsed, 3),
            "sources": [o.__dict__ for o in self.outcomes],
        }


Progress = Callable[[SourceOutcome], None]
_Result = TypeVar("_Result")


def run_crawl(
    config: Config,
    db: sqlite_utils.Database,
    tagger: Tagger,
    sources: Sequence[SourceConfig] | None = None,
    *,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
    memory: HostMemory | None = None,
    gate: HostGate | None = None,
) -> CycleSummary:
    """Crawl `sources` (default: every enabled source) once, now, whatever their schedule says.

    `memory` carries robots.txt policies and per-host timing over from earlier crawls (the daemon's);
    `gate` shares per-host limits with other processes (crawl workers, `monitor.workers`).
    """
    chosen = [s for s in config.sources if s.enabled] if sources is None else list(sources)
    # A rule alerts on articles stored after it first appeared, whoever stores them: note new rules now.
    try:
        register_rules(db, [rule.name for rule in config.alerts])
    except Exception as exc:
        raise disk_full(exc, config.db_path) or exc from None
    crawler = _Crawler(config, db, tagger, progress, stop or threading.Event(), memory)
    crawler.gate = gate
    return asyncio.run(crawler.run(chosen))


class _Crawler:
    def __init__(self, config: Config, db: sqlite_utils.Database, tagger: Tagger,
                 progress: Progress | None, stop: threading.Event, memory: HostMemory | None) -> None:
        self.config = config
        self.db = db
        self.tagger = tagger
        self.progress = progress
        self.stop = stop
        self.memory = memory
        self.gate: HostGate | None = None
        self.summary = CycleSummary()
        self.disk_full: DiskFull | None = None
        """Set at the first write the full disk refused: nothing more is written in this cycle."""

    def _write(self, write: Callable[..., _Result], *args: Any, **kwargs: Any) -> _Result:
        """Call a `storage.writes` function; on a full disk, stop writing for the rest of the cycle (DiskFull)."""
        if self.disk_full is not None:
            raise self.disk_full
        try:
            return write(self.db, *args, **kwargs)
        except Exception as exc:
            full = disk_full(exc, self.config.db_path)
            if full is None:
                raise
            self.disk_full = full
            raise full from None

    async def run(self, sources: list[SourceConfig]) -> CycleSummary:
        started = time.monotonic()
        for source in sources:
            self._write(writes.upsert_source, {
                "name": source.name, "kind": source.kind, "url": source.url, "country": source.country,
                "lang": source.lang, "enabled": int(source.enabled),
            })
        self.article_slots = asyncio.Semaphore(self.config.article_concurrency)
        async with Fetcher(self.config.fetch, memory=self.memory, gate=self.gate) as fetcher:
            self.fetcher = fetcher
            await asyncio.gather(*(self.crawl_source(source) for source in sources))
        if self.disk_full is not None:
            raise self.disk_full
        self.summary.elapsed = time.monotonic() - started
        return self.summary

    async def crawl_source(self, source: SourceConfig) -> None:
        started = time.monotonic()
        outcome = SourceOutcome(source.name)
        try:
            await self._crawl_source(source, outcome)
        except DiskFull:
            return  # no health can be recorded either; run() raises it once every source stopped
        except Exception as exc:  # a bug or a storage failure in one source must not stop the others
            outcome.ok, outcome.error = False, f"{type(exc).__name__}: {exc}"[:300]
        outcome.elapsed = time.monotonic() - started
        try:
            self._record_health(source, outcome)
        except DiskFull:
            return
        self.summary.outcomes.append(outcome)
        if self.progress:
            try:
                self.progress(outcome)
            except Exception:  # a display problem must not cancel the other sources
                log.exception("progress callback failed for source %s", source.name)

    async def _crawl_source(self, source: SourceConfig, outcome: SourceOutcome) -> None:
        settings = _settings_fingerprint(source)
        cached = http_validators(self.db.conn, source.url) or {}
        trusted = _validators_trusted(cached, settings)
        result = await self.fetcher.fetch(
            source.url, expect=EXPECT[source.kind], etag=cached.get("etag") if trusted else None,
            last_modified=cached.get("last_modified") if trusted else None,
        )
        if result.not_modified:
            self._record(source.name, result.records)
            outcome.not_modified = True
            return
        if result.error:
            self._record(source.name, result.records)
            outcome.ok, outcome.error = False, f"{result.error}: {result.message}".strip(": ")
            return
        body_hash = hashlib.sha256(result.content).hexdigest()
        if cached.get("settings") == settings and cached.get("content_hash") == body_hash:
            # A 200 with the same body. Where validators were sent they saved nothing: counted, so
            # that validators that keep failing stop being trusted. The content hash saves the parse.
            sent = trusted and bool(cached.get("etag") or cached.get("last_modified"))
            failures = (cached.get("unchanged_200s") or 0) + 1 if sent else 0
            self._record(source.name, result.records)
            self._save_validators(source.url, result, body_hash, failures, settings)
            return
        parsed = self._parse(source, result)
        if parsed.problem and not parsed.items:
            # The request itself is recorded once, with the reason it gave nothing.
            last = result.records[-1]
            last.error, last.message = "ParseError", parsed.problem[:200]
            self._record(source.name, result.records)
            outcome.ok, outcome.error = False, f"ParseError: {parsed.problem}"
            return
        self._record(source.name, result.records)
        kept, dropped = select_items(source, parsed.items)
        items = self._new_items(kept)
        outcome.items_seen = len(parsed.items)
        outcome.filtered_out = sum(why == FILTERED_OUT for _, why in dropped)
        stored = await _map_bounded(lambda item: self._store_item(source, item), items,
                                    self.config.article_concurrency)
        for article in stored:
            if article is None:
                outcome.deferred += 1
            elif article[0] is not None:
                outcome.new_articles += 1
                outcome.mentions += article[1]
                outcome.figures += article[2]
                self.summary.new_article_ids.append(article[0])
        # Validators are saved only once every entry is stored, so a crash or a
        # deferred item never makes the next cycle skip entries.
        if not outcome.deferred and not self.stop.is_set():
            self._save_validators(source.url, result, body_hash, 0, settings)

    def _parse(self, source: SourceConfig, result: FetchResult) -> ParsedSource:
        return parse_source(source, result)

    def _new_items(self, items: list[Item]) -> list[Item]:
        """Items whose link (as given or canonical) leads to no stored article, each once."""
        by_key: dict[str, Item] = {}
        for item in items:
            by_key.setdefault(canonicalize_url(item.url), item)
        known = writes.known_urls(self.db, [*by_key, *(i.url for i in by_key.values())])
        return [i for key, i in by_key.items() if key not in known and i.url not in known]

    async def _store_item(self, source: SourceConfig, item: Item) -> tuple[int | None, int, int] | None:
        """Fetch, extract, tag and store one item; None if it must wait for the next cycle."""
        async with self.article_slots:
            if self.stop.is_set():
                return None
            page: FetchResult | None = None
            if source.fetch_articles:
                page = await self.fetcher.fetch(item.url, expect="html")
                self._record(source.name, page.records)
                if (page.retry_later or page.transient) and page.error:
                    waited = self._write(writes.note_deferral, item.url, source.name,
                                         f"{page.error}: {page.message}")
                    if waited <= MAX_DEFERRALS:
                        return None
            if self.stop.is_set():
                return None
            try:
                article = self._build_article(source, item, page)
                prepared = tagged_article(self.tagger, article, item, page)
                article_id, is_new = self._write(writes.store_article, *prepared)
            except DiskFull:
                raise
            except Exception as exc:  # one poisoned item must not fail its source cycle after cycle
                return self._item_failed(source, item, exc)
            if not is_new:
                return None, 0, 0
            return article_id, len(prepared.mentions), len(prepared.figures)

    def _item_failed(self, source: SourceConfig, item: Item, exc: Exception) -> tuple[None, int, int] | None:
        """Record an item that could not be processed; retry it for a few cycles, then let the source move on."""
        log.warning("item %s of source %s failed: %s: %s", item.url, source.name, type(exc).__name__, exc)
        error = f"ItemError: {type(exc).__name__}: {exc}"[:200]
        self._record(source.name, [RequestRecord(item.url, None, "ItemError", error, datetime.now(UTC), 0, 0.0)])
        waited = self._write(writes.note_deferral, item.url, source.name, error)
        return None if waited <= MAX_DEFERRALS else (None, 0, 0)

    def _build_article(self, source: SourceConfig, item: Item, page: FetchResult | None) -> dict[str, Any]:
        return build_article(source, item, page)

    def _record(self, source: str, records: list[RequestRecord]) -> None:
        self._write(writes.record_fetches, source, [
            {**r.__dict__, "fetched_at": to_utc_iso(r.fetched_at)} for r in records
        ])

    def _save_validators(self, url: str, result: FetchResult, body_hash: str, unchanged_200s: int,
                         settings: str) -> None:
        self._write(writes.save_validators, url, etag=result.etag, last_modified=result.last_modified,
                               content_hash=body_hash, unchanged_200s=unchanged_200s, settings=settings)

    def _record_health(self, source: SourceConfig, outcome: SourceOutcome) -> None:
        now = utc_now()
        if outcome.ok:
            fields: dict[str, Any] = {"consecutive_failures": 0, "last_success_at": now, "last_attempt_at": now,
                                      "broken": 0, "broken_reason": None}
            if outcome.new_articles:
                fields["last_new_item_at"] = now
            self._write(writes.update_source_health, source.name, **fields)
            return
        broken = BROKEN_BOARD if NOTHING_MATCHED in outcome.error else None
        self._write(writes.record_source_failure, source.name, outcome.error, now, broken_reason=broken)


class ArticleOrigin(Protocol):
    """Where an article comes from: a configured source, or a news archive's host (`monitor backfill`)."""

    @property
    def name(self) -> str: ...
    @property
    def country(self) -> str | None: ...
    @property
    def lang(self) -> str | None: ...


class PreparedArticle(NamedTuple):
    """An article ready for `storage.writes.store_article(db, *prepared)`: its row, tags, the URLs leading to it."""

    article: dict[str, Any]
    mentions: list[dict[str, Any]]
    figures: list[dict[str, Any]]
    urls: list[str]


def prepare_article(tagger: Tagger, source: ArticleOrigin, item: Item, page: FetchResult | None) -> PreparedArticle:
    """Extract (`build_article`) and tag one item: everything but the write, so that the crawl and the
    backfill's workers (which may run on other machines) store exactly the same rows."""
    return tagged_article(tagger, build_article(source, item, page), item, page)


def tagged_article(tagger: Tagger, article: dict[str, Any], item: Item, page: FetchResult | None) -> PreparedArticle:
    """An article row (`build_article`) with its tags and the URLs that lead to it."""
    tags = tagger.tag(article["text"], article["lang"], country=article["country"])
    mentions, figures = tag_rows(tags)
    urls = [item.url, canonicalize_url(item.url)]
    if page is not None:
        urls.append(page.final_url)
    return PreparedArticle(article, mentions, figures, urls)


def build_article(source: ArticleOrigin, item: Item, page: FetchResult | None) -> dict[str, Any]:
    """The `articles` row of one item: the page's extracted text, title, date and language where the page
    was had, else the feed's summary with a note saying why."""
    title, text, published, lang_hint = item.title, "", item.published_at, item.lang or source.lang
    origin, note, lang = "page", None, None
    url = canonicalize_url(page.final_url if page is not None and page.ok else item.url)
    if page is not None and page.ok and page.text:
        extracted = extract_article(page.text, page.final_url,
                                    metadata=not (item.title and item.published_at))
        text = extracted.text
        title = title or extracted.title
        published = published or extracted.published_at
        lang = extracted.lang if text else None  # already detected from the text itself
        if not text:
            note = "the page yielded no article text"
    elif page is not None:
        note = f"page not fetched: {page.error or 'HTTP ' + str(page.status)} {page.message}".strip()
    else:
        note = "source configured with fetch_articles = false"
    if not text:
        origin, text = "feed_summary", item.summary or ""
    lang = lang or detect_language(f"{title or ''}\n{text}", hint=lang_hint)
    return {
        "url": url,
        "link": item.url,
        "source": source.name,
        "country": source.country,
        "title": title,
        "published_at": to_utc_iso(published) if isinstance(published, datetime) else None,
        "lang": lang,
        "text": text,
        "summary": item.summary,
        "text_origin": origin,
        "extraction_note": note,
        "content_hash": writes.content_hash(title, text),
        "guid": item.guid,
    }


async def _map_bounded(
    function: Callable[[Item], Awaitable[_Result]], items: Sequence[Item], limit: int
) -> list[_Result]:
    """`function` over `items` with at most `limit` calls pending at once, results in item order.

    A feed of thousands of items would otherwise hold a suspended coroutine per
    item for the whole cycle, and memory would grow with the feed's length.
    """
    results: list[Any] = [None] * len(items)
    queue = iter(enumerate(items))

    async def worker() -> None:
        for index, item in queue:
            results[index] = await function(item)

    await asyncio.gather(*(worker() for _ in range(min(limit, len(items)))))
    return results


def parse_source(source: SourceConfig, result: FetchResult) -> ParsedSource:
    """Read a fetched source document the way its kind and settings say (the crawl and
    `monitor sources check` both come here, so a check shows exactly what a crawl would do)."""
    base = result.final_url
    if source.kind == "feed":
        return parse_feed(result.content, base, result.content_type)
    if source.kind == "html_list":
        assert source.listing is not None
        return parse_listing(result.text or "", base, source.listing)
    assert source.json_api is not None
    return parse_json_api(result.content, source.base_url or base, source.json_api)


def select_items(source: SourceConfig, items: list[Item]) -> tuple[list[Item], list[tuple[Item, str]]]:
    """The parsed items a crawl goes on with (the keep-filter's, then the first `max_items`), and those it
    leaves out with the reason; whether each is already stored is decided later, against the database."""
    kept, dropped = split_by_filter(items, source.keep_filter)
    over = [(item, f"beyond max_items = {source.max_items}") for item in kept[source.max_items:]]
    return kept[: source.max_items], dropped + over


def tag_rows(tags: TagResult) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Turn the tagging stage's result into `mentions` and `figures` rows."""
    mentions = [
        {"kind": "visa", "label": v.id, "country": v.country, "text": v.text, "start": v.start, "end": v.end,
         "sentence": v.sentence} for v in tags.visas
    ]
    mentions += [
        {"kind": "sector", "label": s.sector, "text": s.text, "start": s.start, "end": s.end,
         "sentence": s.sentence} for s in tags.sectors
    ]
    mentions += [
        {"kind": "country", "label": c.label, "country": c.label, "text": c.text, "start": c.start, "end": c.end,
         "sentence": c.sentence} for c in tags.countries
    ]
    mentions += [
        {"kind": "org", "label": o.label, "country": o.label.split(":")[0] if ":" in o.label else None,
         "text": o.text, "start": o.start, "end": o.end, "sentence": o.sentence} for o in tags.orgs
    ]
    figures = [
        {"value": f.value, "unit": f.unit, "year": f.year, "visa": f.visa, "text": f.text, "start": f.start,
         "end": f.end, "sentence": f.sentence, "metric": f.metric} for f in tags.figures
    ]
    return mentions, figures


def _settings_fingerprint(source: SourceConfig) -> str:
    """A short hash of how a source's document is read: when it changes, the cached body is read again."""
    settings: tuple[Any, ...] = (source.kind, source.listing, source.json_api, source.base_url, source.max_items,
                                 source.fetch_articles)
    if source.keep_filter is not None:  # appended only when set: other sources keep their fingerprint
        settings += (source.keep_filter,)
    return hashlib.sha256(repr(settings).encode("utf-8")).hexdigest()[:16]


def _validators_trusted(cached: dict[str, Any], settings: str) -> bool:
    """Whether to send a URL's stored ETag / Last-Modified: not if the source is now read differently, nor
    once they kept failing to save work, nor when the last full answer is older than MAX_VALIDATOR_AGE
    (a server's 304 may be stale: a full GET now and then catches what it hides)."""
    if cached.get("settings") != settings or (cached.get("unchanged_200s") or 0) >= STALE_VALIDATOR_LIMIT:
        return False
    updated = cached.get("updated_at")
    if not updated:
        return False
    return datetime.now(UTC) - datetime.fromisoformat(updated) < MAX_VALIDATOR_AGE

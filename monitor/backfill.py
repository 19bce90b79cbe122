"""`monitor backfill`: news archives (WARC files) through the crawl's extraction, tagging and storage.

The work is cut into chunks: a chunk is up to `chunk_records` records of one file, read from the byte
offset where the previous chunk stopped. A worker (`process_chunk`: a local process, or a Dask task on
any machine) reads its chunk, drops what the cheap filters reject (host, crawl date, keywords on the
raw bytes, language guess), skips pages already stored, extracts and tags the rest with the crawl's own
functions (`monitor.crawl.build_article`, `tagged_article`). A chunk's articles are stored in one
transaction (`storage.writes.store_articles`, deduplicated as the crawl's `store_article`) and only
then the file's ledger row (`backfill_files`) moves past the chunk (`store_chunk`), so that a backfill
stopped at any point resumes where it was and stores nothing twice. Files are read in parallel, the
chunks of one file in order.

Who writes depends on the store. SQLite has one writer: workers return their rows and the driver
stores them. On PostgreSQL every worker, on whatever machine, stores its own chunk and moves the
ledger itself (`store_chunk` again), and the driver only schedules and counts.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import sqlite_utils

from monitor.config import Config
from monitor.crawl import PreparedArticle, build_article, tagged_article
from pipelines.dates import parse_date
from pipelines.fetch import FetchResult
from pipelines.items import Item
from pipelines.tagging import Tagger
from pipelines.urls import canonicalize_url, url_host
from pipelines.warc import (
    ArchiveError,
    KeywordMatcher,
    Page,
    guess_language,
    host_matches,
    is_listing,
    open_archive,
    page_text,
    read_events,
    read_listing,
)
from storage import backfill as ledger
from storage import open_db, writes
from storage.db import to_utc_iso
from storage.target import is_database_url

log = logging.getLogger("monitor.backfill")
CHUNK_RECORDS = 1000
"""Records per task: small enough that a stop loses little, large enough that a task's set-up is noise."""
DASK_HINT = "pip install 'policy-monitor[distributed]'"


class BackfillError(Exception):
    """A backfill cannot start as asked (a missing file, a bad option): one line for the user."""


@dataclass(frozen=True)
class ArchiveOrigin:
    """The `source` an archived page is stored under: a configured source of the same host, else
    `backfill:<host>`."""

    name: str
    country: str | None = None
    lang: str | None = None


@dataclass(frozen=True)
class BackfillOptions:
    """What a backfill keeps; sent to every worker, so plain data only."""

    since: datetime | None = None
    until: datetime | None = None
    langs: frozenset[str] = frozenset()
    hosts: tuple[str, ...] = ()
    keywords: tuple[str, ...] | None = None
    """Case-insensitive keywords of `--keep-filter`; None: no keyword filter."""
    exact_keywords: tuple[str, ...] = ()
    """Case-sensitive ones (visa codes such as "H-1B"), matched as whole words."""
    taxonomy_files: tuple[str, ...] = ()
    origins: tuple[tuple[str, ArchiveOrigin], ...] = ()
    """(host, origin) of the configured sources."""
    chunk_records: int = CHUNK_RECORDS
    user_agent: str | None = None
    """`[crawl] user_agent`, sent when an archive is downloaded."""

    def origin(self, host: str) -> ArchiveOrigin:
        for known_host, origin in self.origins:
            if known_host == host:
                return origin
        return ArchiveOrigin(f"backfill:{host}")


@dataclass
class Counts:
    """What became of the records read: each page is counted under the first filter that dropped it."""

    records: int = 0
    pages: int = 0
    """Response records of HTML pages with status 200; other records (requests, metadata, PDFs, redirects)
    are read and passed over."""
    filtered_host: int = 0
    filtered_date: int = 0
    filtered_keyword: int = 0
    filtered_lang: int = 0
    known: int = 0
    """Pages already stored (by URL before extraction, or found stored when written)."""
    extracted: int = 0
    no_text: int = 0
    """Pages that yielded no article text."""
    stored: int = 0
    broken: int = 0

    def add(self, other: Counts) -> None:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)


@dataclass(frozen=True)
class ChunkTask:
    file: str
    offset: int
    records_before: int


@dataclass
class ChunkResult:
    task: ChunkTask
    counts: Counts
    articles: list[PreparedArticle]
    next_offset: int
    finished: bool
    error: str | None = None
    stored_by_worker: bool = False
    """The worker stored the articles and moved the ledger (PostgreSQL); `articles` is then empty."""


@dataclass
class BackfillSummary:
    files: int = 0
    files_skipped: int = 0
    """Finished in an earlier run, so not read again."""
    files_done: int = 0
    files_failed: int = 0
    counts: Counts = field(default_factory=Counts)
    errors: list[str] = field(default_factory=list)
    elapsed: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"files": self.files, "files_skipped": self.files_skipped, "files_done": self.files_done,
                "files_failed": self.files_failed, **asdict(self.counts), "errors": self.errors,
                "elapsed": round(self.elapsed, 3)}


# ------------------------------------------------------------------------------------------ options


def backfill_keywords(config: Config, tagger: Tagger) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(case-insensitive, case-sensitive) keywords of `--keep-filter`: `[backfill] keep_any`, every source's
    `[sources.filter] any`, and the visa names of the taxonomy (codes such as "E-7" keep their case)."""
    folded = list(config.backfill_keep_any)
    for source in config.sources:
        if source.keep_filter is not None:
            folded += source.keep_filter.any
    exact: list[str] = []
    for alias, case_sensitive in tagger.taxonomy.lexicons["visa"].names():
        (exact if case_sensitive and alias.isascii() else folded).append(alias)
    return tuple(dict.fromkeys(folded)), tuple(dict.fromkeys(exact))


def source_origins(config: Config) -> tuple[tuple[str, ArchiveOrigin], ...]:
    """The configured sources by host, first source of a host first."""
    found: dict[str, ArchiveOrigin] = {}
    for source in config.sources:
        for url in (source.url, source.base_url):
            host = url_host(url or "")
            if host and host not in found:
                found[host] = ArchiveOrigin(source.name, source.country, source.lang)
    return tuple(found.items())


def parse_day(text: str, *, end: bool = False) -> datetime:
    """`--since` / `--until`: an ISO date or time; a bare date means its first (or, with `end`, last) second."""
    moment = parse_date(text)
    if moment is None or not any(ch.isdigit() for ch in text):
        raise BackfillError(f"not a date: {text!r} (use YYYY-MM-DD or an ISO 8601 time)")
    if end and len(text.strip()) <= 10:
        moment = moment.replace(hour=23, minute=59, second=59)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def expand_inputs(inputs: Sequence[str], base_url: str | None = None, user_agent: str | None = None) -> list[str]:
    """The WARC files named by the arguments: paths, URLs and listings (`warc.paths[.gz]`), each once."""
    files: list[str] = []
    for location in inputs:
        remote = location.startswith(("http://", "https://"))
        if not remote and not Path(location).is_file():
            raise BackfillError(f"no such file: {location}")
        try:
            if is_listing(location):
                listed = read_listing(location, base_url, user_agent)
                if not listed:
                    raise BackfillError(f"{location} lists no WARC file")
                files += listed
            else:
                files.append(location if remote else str(Path(location).resolve()))
        except ArchiveError as exc:
            raise BackfillError(str(exc)) from None
    return list(dict.fromkeys(files))


# ------------------------------------------------------------------------------------------ workers

_worker_state: dict[Any, Any] = {}
_worker_lock = threading.Lock()


def _cached(key: Any, make: Callable[[], Any]) -> Any:
    """One tagger / matcher / store handle per worker process (Dask threads of a process share it)."""
    with _worker_lock:
        if key not in _worker_state:
            _worker_state[key] = make()
        return _worker_state[key]


def _forget(key: Any) -> None:
    """Close and drop a cached store handle (a worker process outlives one backfill's database connection)."""
    with _worker_lock:
        handle = _worker_state.pop(key, None)
    if handle is not None:
        try:
            handle.close()
        except Exception:  # noqa: BLE001  (already broken: closing is a courtesy)
            pass


def process_chunk(task: ChunkTask, options: BackfillOptions, store_target: str | None = None, *,
                  store: bool = False) -> ChunkResult:
    """Read up to `options.chunk_records` records of `task.file` from `task.offset`; return the articles
    its pages gave (extracted and tagged, not stored) and what became of every record.

    With `store_target`, pages whose URL the store already has are skipped before extraction; with
    `store` too, the chunk is stored there and its file's ledger moved on (`store_chunk`) here, in the
    worker, and the result carries the counts only.
    """
    tagger: Tagger = _cached(("tagger", options.taxonomy_files),
                             lambda: Tagger.load([Path(p) for p in options.taxonomy_files]))
    matcher = None
    if options.keywords is not None:
        matcher = _cached(("matcher", options.keywords, options.exact_keywords),
                          lambda: KeywordMatcher(options.keywords or (), options.exact_keywords))
    counts = Counts()
    candidates: list[Page] = []
    next_offset, finished = task.offset, True
    try:
        for event in read_events(open_archive(task.file, options.user_agent), task.offset):
            # A chunk never ends just before a broken stretch: resuming there would count it twice.
            if counts.records >= options.chunk_records and event.broken is None:
                next_offset, finished = event.offset, False
                break
            counts.records += 1
            if event.broken is not None:
                counts.broken += 1
            elif event.page is not None:
                counts.pages += 1
                if _passes_prefilters(event.page, options, matcher, counts):
                    candidates.append(event.page)
    except ArchiveError as exc:
        return ChunkResult(task, Counts(), [], task.offset, False, error=str(exc))
    db = None
    # One handle per thread: a Dask worker with several threads runs chunks side by side.
    store_key = ("store", store_target, threading.get_ident())
    if store_target is not None and (candidates or store):
        db = _cached(store_key, lambda: open_db(store_target))
        try:
            candidates = _unknown(db, candidates, counts)
        except Exception:
            _forget(store_key)  # a connection that broke: the next chunk opens a new one
            raise
    articles: list[PreparedArticle] = []
    for page in candidates:
        try:
            prepared = _extract_and_tag(page, options, tagger, matcher, counts)
        except Exception as exc:  # a page that trips a bug is one broken record, not a stopped backfill
            log.warning("page %s of %s failed: %s: %s", page.url, task.file, type(exc).__name__, exc)
            counts.broken += 1
            continue
        if prepared is not None:
            articles.append(prepared)
    result = ChunkResult(task, counts, articles, next_offset, finished)
    if store and db is not None:
        try:
            store_chunk(db, result)
        except Exception:
            _forget(store_key)
            raise
        result.articles, result.stored_by_worker = [], True
    return result


def _passes_prefilters(page: Page, options: BackfillOptions, matcher: KeywordMatcher | None, counts: Counts) -> bool:
    """The cheap tests, cheapest first; a page's publication can't follow its crawl, so a page crawled
    before `since` was published before it too."""
    if options.hosts and not host_matches(page.host, options.hosts):
        counts.filtered_host += 1
        return False
    if options.since and page.crawled_at and page.crawled_at < options.since:
        counts.filtered_date += 1
        return False
    if matcher is not None and matcher.search_page(page) is None:
        counts.filtered_keyword += 1
        return False
    if options.langs and guess_language(page) not in options.langs:
        counts.filtered_lang += 1
        return False
    return True


def _unknown(db: sqlite_utils.Database, pages: list[Page], counts: Counts) -> list[Page]:
    """The pages whose URL (as archived or canonical) leads to no stored article."""
    known = writes.known_urls(db, [u for p in pages for u in (p.url, canonicalize_url(p.url))])
    fresh = [p for p in pages if p.url not in known and canonicalize_url(p.url) not in known]
    counts.known += len(pages) - len(fresh)
    return fresh


def _extract_and_tag(page: Page, options: BackfillOptions, tagger: Tagger, matcher: KeywordMatcher | None,
                     counts: Counts) -> PreparedArticle | None:
    """The crawl's `build_article` on the archived response, the filters that need the article text,
    then the crawl's tagging; None if the page is dropped."""
    origin = options.origin(page.host)
    response = FetchResult(url=page.url, final_url=page.url, status=page.status, content=page.body,
                           text=page_text(page), content_type=page.content_type)
    item = Item(url=page.url)
    article = build_article(origin, item, response)
    counts.extracted += 1
    if article["text_origin"] != "page" or not article["text"]:
        counts.no_text += 1
        return None
    if not article["published_at"] and page.crawled_at is not None:
        article["published_at"] = to_utc_iso(page.crawled_at)
        article["extraction_note"] = "no date on the page: published_at is the archive's crawl date"
    if options.langs and article["lang"] not in options.langs:
        counts.filtered_lang += 1
        return None
    published = datetime.fromisoformat(article["published_at"]) if article["published_at"] else None
    if published is not None and ((options.since and published < options.since)
                                  or (options.until and published > options.until)):
        counts.filtered_date += 1
        return None
    if matcher is not None and matcher.search_text(f"{article['title'] or ''}\n{article['text']}") is None:
        counts.filtered_keyword += 1
        return None
    return tagged_article(tagger, article, item, response)


# ------------------------------------------------------------------------------------------ engines


class Engine(Protocol):
    """Runs `process_chunk` tasks somewhere: this process, a local process pool, a Dask cluster."""

    slots: int
    store_access: bool
    """Whether workers may open the store (to skip stored pages before extraction)."""

    def submit(self, task: ChunkTask, options: BackfillOptions, store_target: str | None, *,
               store: bool = False) -> Any: ...
    def wait_any(self, futures: set[Any]) -> tuple[set[Any], set[Any]]: ...
    def close(self) -> None: ...


class InlineEngine:
    """Each chunk in this process, in turn (`--workers 1`)."""

    slots = 1
    store_access = True

    def submit(self, task: ChunkTask, options: BackfillOptions, store_target: str | None, *,
               store: bool = False) -> cf.Future:
        future: cf.Future = cf.Future()
        try:
            future.set_result(process_chunk(task, options, store_target, store=store))
        except BaseException as exc:  # noqa: BLE001  (handed over like a pool's future would)
            future.set_exception(exc)
        return future

    def wait_any(self, futures: set[Any]) -> tuple[set[Any], set[Any]]:
        return set(futures), set()

    def close(self) -> None:
        return None


class ProcessPoolEngine:
    """Chunks on a pool of local processes, one per core by default."""

    store_access = True

    def __init__(self, workers: int) -> None:
        self.slots = workers
        # spawn: a forked child would inherit the parent's open SQLite connection.
        self.pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))

    def submit(self, task: ChunkTask, options: BackfillOptions, store_target: str | None, *,
               store: bool = False) -> cf.Future:
        return self.pool.submit(process_chunk, task, options, store_target, store=store)

    def wait_any(self, futures: set[Any]) -> tuple[set[Any], set[Any]]:
        done, pending = cf.wait(futures, return_when=cf.FIRST_COMPLETED)
        return set(done), set(pending)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class DaskEngine:
    """Chunks as Dask tasks on a scheduler's workers (`--dask-scheduler`) or on a local cluster
    (`--dask-local N`, N single-threaded worker processes on this machine)."""

    def __init__(self, *, scheduler: str | None = None, local_workers: int | None = None,
                 processes: bool = True) -> None:
        try:
            import distributed
        except ImportError:
            raise BackfillError(f"Dask is not installed: {DASK_HINT}") from None
        self._distributed = distributed
        self.cluster = None
        if scheduler:
            try:
                self.client = distributed.Client(scheduler, timeout="20s")
            except (OSError, TimeoutError) as exc:
                raise BackfillError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
            # Remote workers have no access to a local SQLite file: they extract every candidate and
            # the store finds the ones it has. A PostgreSQL store they reach themselves (run_backfill).
            self.store_access = False
        else:
            # ":0": its HTTP server on any free port, so a second cluster on the machine never warns about 8787.
            self.cluster = distributed.LocalCluster(n_workers=local_workers or 1, threads_per_worker=1,
                                                    processes=processes, dashboard_address=":0")
            self.client = distributed.Client(self.cluster)
            self.store_access = True
        workers = self.client.scheduler_info().get("workers", {})
        self.slots = max(1, sum(w.get("nthreads", 1) for w in workers.values()))

    def submit(self, task: ChunkTask, options: BackfillOptions, store_target: str | None, *,
               store: bool = False) -> Any:
        return self.client.submit(process_chunk, task, options, store_target, store=store, pure=False)

    def wait_any(self, futures: set[Any]) -> tuple[set[Any], set[Any]]:
        done, pending = self._distributed.wait(list(futures), return_when="FIRST_COMPLETED")
        return set(done), set(pending)

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


# ------------------------------------------------------------------------------------------ driver

Progress = Callable[[BackfillSummary], None]


def run_backfill(db: sqlite_utils.Database, files: Sequence[str], options: BackfillOptions, engine: Engine, *,
                 store_target: str | None = None, progress: Progress | None = None) -> BackfillSummary:
    """Backfill `files` into `db` (opened on `store_target`, which workers may open too) with `engine`.

    Finished files (by the ledger) are skipped; others resume at their ledger offset. Each chunk's
    articles are stored before the ledger moves past it: here, or on PostgreSQL by the worker.
    """
    started = time.monotonic()
    summary = BackfillSummary(files=len(files))
    rows = ledger.ledger_rows(db, files)
    waiting: list[ChunkTask] = []
    for file in files:
        row = rows.get(file)
        if row is not None and row["finished"]:
            summary.files_skipped += 1
            continue
        if row is None:
            ledger.start_file(db, file)
        waiting.append(ChunkTask(file, row["next_offset"] if row else 0, row["records_read"] if row else 0))
    waiting.reverse()  # popped from the end: files in the order given
    # A PostgreSQL store is reachable from any machine: there workers skip what it has and write.
    workers_write = store_target is not None and is_database_url(store_target)
    worker_target = store_target if engine.store_access or workers_write else None
    in_flight: set[Any] = set()
    try:
        while waiting or in_flight:
            while waiting and len(in_flight) < engine.slots:
                in_flight.add(engine.submit(waiting.pop(), options, worker_target, store=workers_write))
            done, in_flight = engine.wait_any(in_flight)
            for future in done:
                result: ChunkResult = future.result()
                follow_up = _store_chunk(db, result, summary)
                if follow_up is not None:
                    waiting.append(follow_up)
            summary.elapsed = time.monotonic() - started
            if progress is not None:
                progress(summary)
    finally:
        for future in in_flight:
            future.cancel()
    summary.elapsed = time.monotonic() - started
    return summary


def store_chunk(db: sqlite_utils.Database, result: ChunkResult) -> None:
    """Store a chunk's articles in one transaction (counting new and known ones), then move its file's
    ledger row past it: in the driver (SQLite) or in the worker that read it (PostgreSQL)."""
    counts = result.counts
    for _, is_new in writes.store_articles(db, result.articles):
        if is_new:
            counts.stored += 1
        else:
            counts.known += 1
    ledger.advance_file(db, result.task.file, records=counts.records, next_offset=result.next_offset,
                        stored=counts.stored, known=counts.known, broken=counts.broken,
                        finished=result.finished)


def _store_chunk(db: sqlite_utils.Database, result: ChunkResult, summary: BackfillSummary) -> ChunkTask | None:
    """Store one chunk (unless its worker did), count it; the file's next chunk, if any."""
    task = result.task
    if result.error is not None:
        summary.files_failed += 1
        summary.errors.append(f"{task.file}: {result.error}")
        ledger.advance_file(db, task.file, records=0, next_offset=task.offset, stored=0, known=0, broken=0,
                            error=result.error)
        return None
    if not result.stored_by_worker:
        store_chunk(db, result)
    counts = result.counts
    summary.counts.add(counts)
    if result.finished:
        summary.files_done += 1
        return None
    return ChunkTask(task.file, result.next_offset, task.records_before + counts.records)


def make_options(config: Config, tagger: Tagger, *, since: str | None = None, until: str | None = None,
                 langs: Iterable[str] = (), hosts: Iterable[str] = (), keep_filter: bool = False,
                 chunk_records: int = CHUNK_RECORDS) -> BackfillOptions:
    """BackfillOptions from the command line's values and the configuration."""
    since_at = parse_day(since) if since else None
    until_at = parse_day(until, end=True) if until else None
    if since_at and until_at and since_at > until_at:
        raise BackfillError(f"--since {since} is after --until {until}")
    wanted = frozenset(part.strip().lower() for value in langs for part in value.split(",") if part.strip())
    for lang in wanted:
        if not lang.isalpha() or len(lang) not in (2, 3):
            raise BackfillError(f"--lang {lang!r}: use ISO 639-1 codes such as en, ko, ja")
    folded, exact = backfill_keywords(config, tagger) if keep_filter else (None, ())
    return BackfillOptions(
        since=since_at, until=until_at, langs=wanted, hosts=tuple(hosts), keywords=folded, exact_keywords=exact,
        taxonomy_files=tuple(str(p) for p in config.taxonomy_files), origins=source_origins(config),
        chunk_records=chunk_records, user_agent=config.fetch.user_agent,
    )

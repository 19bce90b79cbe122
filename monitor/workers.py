"""Crawl workers (issue 11): source crawls queued in PostgreSQL with Procrastinate, run by any number of workers.

    monitor run --workers          # the scheduler: one queued job per due source; sends the alerts
    monitor worker --concurrency 4 # on any machine: runs jobs, each one source's crawl through monitor.crawl

The queue: a `crawl_source` job per due source, deferred with the queueing lock `source:<name>`, so
a source never has two jobs waiting. The scheduler (`QueueingDaemon`) is the ordinary daemon whose
crawl jobs defer instead of crawling; it still runs the alert sweep, every `[workers] alert_interval`,
which sends what the workers stored, and (one delivering process per store) sends it once.

Per-host politeness holds across every worker, through the queue's database:
- a job crawls its source only while it holds the job lock of the source's host (a session advisory
  lock): sources of one host are crawled one at a time, as in the single-process daemon. A job that
  cannot get the lock, or whose host asked everyone to wait longer than `busy_retry` (Retry-After),
  defers itself again for later and ends, rather than hold a worker while it sleeps;
- every HTTP request, whatever its host, holds one of that host's `per_host_concurrency` slots
  (advisory locks too) and takes its turn in `monitor_host_turns` (per_host_delay, Crawl-delay,
  Retry-After), timed by the database's clock so that machines need not agree on the time
  (`PostgresHostGate`, the `pipelines.fetch.HostGate` the Fetcher calls);
- robots.txt is obeyed as by the daemon (each worker process caches it for `robots_ttl`).
Advisory locks belong to a connection: a worker killed mid-request frees its slots and job locks at
once. Its job stays 'doing' until the worker's heartbeat is `stalled_after` seconds old; then any
worker queues it again (`recover_stalled_jobs`); crawls are idempotent (stored URLs are skipped,
validators are saved last), so the retried job stores what the killed one did not.

Procrastinate is imported here only, and this module only by those two commands: the single-process
daemon on SQLite never loads it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import procrastinate
import psycopg
from procrastinate import exceptions as queue_errors
from procrastinate.jobs import Status
from procrastinate.schema import SchemaManager

from monitor.alerts import CompiledRule
from monitor.config import POSTGRES_SCHEMES, Config, ConfigError, SourceConfig
from monitor.crawl import SourceOutcome, run_crawl
from monitor.daemon import Daemon, _LockedTagger, after_cycle, source_backing_off
from pipelines.fetch import HostMemory, host_key
from storage import open_db
from storage.target import redact

log = logging.getLogger("monitor.workers")

CRAWL_TASK = "monitor.crawl_source"
"""The Procrastinate task name of one source's crawl (its one argument: `source`, the source's name)."""
SLOT_LOCKS = 0x4D4F4E31
"""Advisory lock class of per-host request slots (two-int keys: never collide with one-bigint keys)."""
JOB_LOCKS = 0x4D4F4E32
"""Advisory lock class of per-host job locks."""
SCHEMA_LOCK = 0x4D4F4E33
"""Advisory lock class serialising schema creation by processes starting together."""
SLOT_POLL = 0.02
"""Seconds before the first new try for a host slot that all workers are using (doubling, jittered)."""
SLOT_POLL_MAX = 0.25
"""Longest pause between tries for a host slot."""
HOST_TURNS_TABLE = """
CREATE TABLE IF NOT EXISTS monitor_host_turns (
    host text PRIMARY KEY,
    next_start timestamptz NOT NULL,
    blocked_until timestamptz,
    blocked_reason text
)"""


def queue_url(config: Config) -> str:
    """The queue's PostgreSQL URL; ConfigError (one line) when there is none or it is not PostgreSQL."""
    url = config.workers.queue_url
    if not url:
        raise ConfigError("crawl workers need a PostgreSQL queue: set [workers] queue_url = \"postgresql://...\""
                          " (or use a postgresql:// store, or set $MONITOR_DATABASE_URL)")
    if not url.startswith(POSTGRES_SCHEMES):
        raise ConfigError(f"[workers] queue_url must be a postgresql:// URL (the queue lives in PostgreSQL), "
                          f"not {redact(url)!r}")
    return url


def prepare_queue(url: str) -> None:
    """Check that the queue's database answers and create Procrastinate's tables and ours if missing."""
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
            conn.execute("SELECT pg_advisory_lock(%s, 0)", [SCHEMA_LOCK])
            row = conn.execute("SELECT to_regclass('procrastinate_jobs') IS NOT NULL").fetchone()
            if not (row and row[0]):
                conn.execute(SchemaManager.get_schema())
            conn.execute(HOST_TURNS_TABLE)
            conn.execute("SELECT pg_advisory_unlock(%s, 0)", [SCHEMA_LOCK])
    except psycopg.Error as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ConfigError(f"cannot use the queue database {redact(url)}: {first}") from None


# ---------------------------------------------------------------- per-host politeness across workers


class PostgresHostGate:
    """`pipelines.fetch.HostGate` on one PostgreSQL connection: slots are advisory locks, turns a table row.

    One gate per job: its connection holds the job's locks, so they go when the job (or its process)
    does. Safe to call from several threads; each statement is a transaction of its own.
    """

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        self._lock = threading.Lock()
        self._held: dict[str, list[int]] = {}
        """Slots this connection holds per host: advisory locks stack within a session, so a second
        request of this job must take another slot, never the same one again."""

    @classmethod
    def connect(cls, url: str) -> PostgresHostGate:
        return cls(psycopg.connect(url, autocommit=True, connect_timeout=10))

    def close(self) -> None:
        """Close the connection: every lock it holds is released."""
        self.conn.close()

    def _one(self, sql: str, params: Sequence[Any] | Mapping[str, Any]) -> Any:
        with self._lock:
            row = self.conn.execute(sql, params).fetchone()
        return row[0] if row else None

    # -- the job lock

    def try_job_lock(self, key: str) -> bool:
        """Take `key`'s job lock if no other job holds it (no waiting)."""
        return bool(self._one("SELECT pg_try_advisory_lock(%s, hashtext(%s))", [JOB_LOCKS, key]))

    def host_wait(self, key: str) -> float:
        """Seconds until anyone may ask `key` again (its turn, a Retry-After); 0 when it may now."""
        wait = self._one("""
            SELECT greatest(extract(epoch FROM next_start - clock_timestamp()),
                            extract(epoch FROM blocked_until - clock_timestamp()), 0)::float8
              FROM monitor_host_turns WHERE host = %s""", [key])
        return float(wait or 0.0)

    # -- HostGate

    def _take_slot(self, key: str, concurrency: int) -> bool:
        held = self._held.setdefault(key, [])
        for slot in range(concurrency):
            if slot in held:
                continue
            if self._one("SELECT pg_try_advisory_lock(%s, hashtext(%s))", [SLOT_LOCKS, f"{key}#{slot}"]):
                held.append(slot)
                return True
        return False

    def _take_turn(self, key: str, delay: float) -> float:
        """Reserve the host's next start (`delay` after the last one anywhere); seconds to wait for it."""
        wait = self._one("""
            INSERT INTO monitor_host_turns AS t (host, next_start)
                 VALUES (%(host)s, clock_timestamp() + make_interval(secs => %(delay)s))
            ON CONFLICT (host) DO UPDATE
                SET next_start = greatest(t.next_start, clock_timestamp()) + make_interval(secs => %(delay)s)
            RETURNING extract(epoch FROM t.next_start - clock_timestamp())::float8 - %(delay)s""",
                         {"host": key, "delay": delay})
        return max(0.0, float(wait or 0.0))

    async def enter(self, key: str, concurrency: int, delay: float) -> None:
        pause = SLOT_POLL
        while not await asyncio.to_thread(self._take_slot, key, concurrency):
            await asyncio.sleep(pause * random.uniform(0.5, 1.0))
            pause = min(pause * 2, SLOT_POLL_MAX)  # many waiters must not hammer the database
        wait = await asyncio.to_thread(self._take_turn, key, delay)
        if wait > 0:
            await asyncio.sleep(wait)

    def _give_slot(self, key: str) -> None:
        held = self._held.get(key)
        if held:
            slot = held.pop()
            self._one("SELECT pg_advisory_unlock(%s, hashtext(%s))", [SLOT_LOCKS, f"{key}#{slot}"])

    async def leave(self, key: str) -> None:
        await asyncio.to_thread(self._give_slot, key)

    def _hold(self, key: str, seconds: float, reason: str | None) -> None:
        self._one("""
            INSERT INTO monitor_host_turns AS t (host, next_start, blocked_until, blocked_reason)
                 VALUES (%(host)s, clock_timestamp() + make_interval(secs => %(seconds)s),
                         CASE WHEN %(reason)s::text IS NULL THEN NULL
                              ELSE clock_timestamp() + make_interval(secs => %(seconds)s) END,
                         %(reason)s::text)
            ON CONFLICT (host) DO UPDATE
                SET next_start = greatest(t.next_start, excluded.next_start),
                    blocked_until = greatest(t.blocked_until, excluded.blocked_until),
                    blocked_reason = coalesce(excluded.blocked_reason, t.blocked_reason)
            RETURNING 1""", {"host": key, "seconds": seconds, "reason": reason})

    async def hold(self, key: str, seconds: float, reason: str | None = None) -> None:
        await asyncio.to_thread(self._hold, key, seconds, reason)

    def _blocked(self, key: str) -> tuple[float, str] | None:
        with self._lock:
            row = self.conn.execute("""
                SELECT extract(epoch FROM blocked_until - clock_timestamp())::float8, blocked_reason
                  FROM monitor_host_turns WHERE host = %s AND blocked_until > clock_timestamp()""",
                                    [key]).fetchone()
        return (float(row[0]), str(row[1] or "")) if row else None

    async def blocked(self, key: str) -> tuple[float, str] | None:
        return await asyncio.to_thread(self._blocked, key)


# ---------------------------------------------------------------- the queue


def source_lock(name: str) -> str:
    """The queueing lock of a source's jobs: at most one waits in the queue."""
    return f"source:{name}"


def scheduler_app(url: str) -> procrastinate.App:
    """A Procrastinate app for deferring from plain threads (the scheduler's APScheduler jobs)."""
    return procrastinate.App(connector=procrastinate.SyncPsycopgConnector(conninfo=url))


def defer_crawl(app: procrastinate.App, source: str, delay: float = 0.0) -> int | None:
    """Queue a crawl of `source` (in `delay` seconds); None if one is already waiting."""
    deferrer = app.configure_task(CRAWL_TASK, queueing_lock=source_lock(source),
                                  schedule_in={"seconds": delay} if delay > 0 else None)
    try:
        return deferrer.defer(source=source)
    except queue_errors.AlreadyEnqueued:
        return None


async def defer_crawl_async(app: procrastinate.App, source: str, delay: float = 0.0) -> int | None:
    """`defer_crawl` from the worker's event loop."""
    deferrer = app.configure_task(CRAWL_TASK, queueing_lock=source_lock(source),
                                  schedule_in={"seconds": delay} if delay > 0 else None)
    try:
        return await deferrer.defer_async(source=source)
    except queue_errors.AlreadyEnqueued:
        return None


class QueueingDaemon(Daemon):
    """`monitor run --workers`: the daemon's schedule, with each due crawl queued for the workers.

    Back-off, health and the cycle's log line are the worker's business; this process keeps the alert
    sweep (every `[workers] alert_interval`), digests and database maintenance.
    """

    def __init__(self, config: Config, tagger: Any, rules: list[CompiledRule], *, app: procrastinate.App,
                 stop: threading.Event | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("retry_interval", config.workers.alert_interval)
        super().__init__(config, tagger, rules, stop=stop, **kwargs)
        self.app = app

    def crawl_source(self, source: SourceConfig) -> SourceOutcome | None:
        job = defer_crawl(self.app, source.name)
        if job is None:
            log.info("crawl %s: a job is already queued", source.name,
                     extra={"fields": {"event": "queued", "source": source.name, "job": None}})
        else:
            log.info("crawl %s: queued as job %d", source.name, job,
                     extra={"fields": {"event": "queued", "source": source.name, "job": job}})
        return None


# ---------------------------------------------------------------- the worker


@dataclass
class JobResult:
    """What one job did: the source's outcome, or the seconds after which it is to be tried again."""

    outcome: SourceOutcome | None = None
    again_in: float | None = None
    reason: str = ""


class CrawlWorker:
    """Runs `crawl_source` jobs: one source's crawl each, through `monitor.crawl.run_crawl`."""

    def __init__(self, config: Config, tagger: Any, url: str) -> None:
        self.config = config
        self.tagger = _LockedTagger(tagger)
        self.url = url
        self.memory = HostMemory()
        """robots.txt and per-host timing shared by this process's jobs, as in the daemon."""
        self.sources = {s.name: s for s in config.sources}
        self.app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=url))
        self.app.task(name=CRAWL_TASK, pass_context=False)(self._job)

    async def _job(self, source: str) -> None:
        chosen = self.sources.get(source)
        if chosen is None or not chosen.enabled:
            # The scheduler's configuration names a source this worker's does not: nothing to do here.
            log.warning("job for source %r skipped: not an enabled source in %s", source, self.config.path,
                        extra={"fields": {"event": "job_skipped", "source": source}})
            return
        stop = threading.Event()
        try:
            result = await asyncio.to_thread(self.crawl, chosen, stop)
        except asyncio.CancelledError:
            stop.set()  # the worker is shutting down: the crawl thread stops storing and ends
            raise
        if result.again_in is not None:
            job = await defer_crawl_async(self.app, source, result.again_in)
            log.info("crawl %s: %s; queued again in %.1fs%s", source, result.reason, result.again_in,
                     "" if job is not None else " (a job was already queued)",
                     extra={"fields": {"event": "deferred", "source": source, "delay": result.again_in}})

    def crawl(self, source: SourceConfig, stop: threading.Event | None = None) -> JobResult:
        """One cycle of `source` if its host is free, else when to try again (runs in a thread)."""
        busy = self.config.workers.busy_retry
        host = host_key(source.url)
        gate = PostgresHostGate.connect(self.url)
        try:
            if not gate.try_job_lock(host):
                return JobResult(again_in=busy, reason=f"host {host} is being crawled by another job")
            wait = gate.host_wait(host)
            if wait > busy:
                return JobResult(again_in=wait, reason=f"host {host} asked to wait")
            db = open_db(self.config.db_path)
            try:
                if source_backing_off(db, source):
                    return JobResult()
                summary = run_crawl(self.config, db, self.tagger, [source], stop=stop, memory=self.memory,
                                    gate=gate)
                outcome = summary.outcomes[0] if summary.outcomes else SourceOutcome(source.name)
                after_cycle(db, source, outcome)
            finally:
                db.close()
            return JobResult(outcome=outcome)
        finally:
            gate.close()

    async def recover_stalled_jobs(self) -> int:
        """Queue again the jobs of workers whose heartbeat stopped (killed, machine gone); how many."""
        stalled = await self.app.job_manager.get_stalled_jobs(
            seconds_since_heartbeat=self.config.workers.stalled_after)
        count = 0
        for job in stalled:
            try:
                await self.app.job_manager.retry_job(job)
                count += 1
                log.warning("job %s (%s) of a stalled worker queued again", job.id, job.task_kwargs,
                            extra={"fields": {"event": "job_recovered", "job": job.id}})
            except queue_errors.ConnectorException:
                # Another job of that source is already waiting (queueing lock) and will do the work,
                # or another worker recovered this one first.
                try:
                    await self.app.job_manager.finish_job(job, status=Status.FAILED, delete_job=False)
                except queue_errors.ConnectorException:
                    pass
        return count

    async def _recovery_loop(self) -> None:
        interval = max(0.5, self.config.workers.stalled_after / 3)
        while True:
            try:
                await self.recover_stalled_jobs()
            except Exception:  # the database may come and go; the worker goes on
                log.exception("stalled-job recovery failed; trying again in %.0fs", interval)
            await asyncio.sleep(interval)

    async def run(self, concurrency: int, *, wait: bool = True) -> None:
        """Run jobs until SIGTERM/SIGINT (or, with wait=False, until the queue is empty)."""
        stalled_after = self.config.workers.stalled_after
        async with self.app.open_async():
            recovery = asyncio.create_task(self._recovery_loop())
            try:
                await self.app.run_worker_async(
                    concurrency=concurrency, wait=wait, name=f"{socket.gethostname()}:{os.getpid()}",
                    update_heartbeat_interval=max(0.2, stalled_after / 3), stalled_worker_timeout=stalled_after,
                    fetch_job_polling_interval=min(5.0, max(0.2, self.config.workers.busy_retry / 2)),
                    delete_jobs="successful",
                )
            finally:
                recovery.cancel()

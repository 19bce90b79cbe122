"""`monitor run`: the scheduled daemon. One APScheduler job per source, alert delivery, digests, back-off.

    lock = acquire_lock(config.db_path)       # monitor.lock: DaemonLocked if another daemon runs on it
    daemon = Daemon(config, tagger, rules)
    daemon.start()                            # jobs scheduled in a BackgroundScheduler
    daemon.wait()                             # until daemon.stop is set (SIGTERM / SIGINT)
    daemon.shutdown()                         # scheduler stopped, running jobs given a few seconds

The lock lives in `monitor.lock` (re-exported here): `monitor alerts send` takes
it too, without loading APScheduler.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from monitor.alerts import AlertSender, CompiledRule
from monitor.config import Config, SourceConfig
from monitor.crawl import SourceOutcome, run_crawl
from monitor.health import backoff_interval
from monitor.lock import DaemonLock, DaemonLocked, acquire_lock, lock_path
from monitor.mail import Mailer
from pipelines.fetch import HostMemory
from pipelines.urls import url_host
from storage import open_db
from storage.db import disk_full, to_utc_iso, utc_now
from storage.maintenance import checkpoint, prune_texts
from storage.target import is_postgres, redact
from storage.writes import update_source_health

log = logging.getLogger("monitor.daemon")

__all__ = ["Daemon", "DaemonLock", "DaemonLocked", "JsonFormatter", "acquire_lock", "lock_path", "setup_logging"]

RETRY_INTERVAL = 30.0
"""Seconds between sweeps that retry failed deliveries and send digests that are due."""
SHUTDOWN_GRACE = 8.0
"""Seconds running jobs get to finish after SIGTERM, inside the 10 s a service manager allows."""
MAINTENANCE_INTERVAL = 300.0
"""Seconds between WAL checkpoints: the web UI reads all the time, and without them the WAL only grows."""
WAL_WARNING_BYTES = 64_000_000
"""A WAL this large after a checkpoint that could not truncate it is logged."""
PRUNE_INTERVAL = 86400.0
"""Seconds between prunes of old article text when `[storage] keep_days` is set (first one at start-up)."""
CRON_JITTER_CAP = 300.0
"""Most seconds a cron-scheduled crawl is delayed: whoever wrote a time of day meant roughly that time."""


# ---------------------------------------------------------------- schedules


def cron_jitter(trigger: CronTrigger, now: datetime, cap: float = CRON_JITTER_CAP, samples: int = 500) -> float:
    """A tenth of the shortest gap between the trigger's next `samples` fire times (within a year), at most `cap`.

    A crontab's gaps need not be even ("0,1 * * * *" is 1 minute then 59): the shortest
    one bounds the jitter, so a delayed run never lands past the next one.
    """
    shortest: float | None = None
    previous = trigger.get_next_fire_time(None, now)
    horizon = now + timedelta(days=366)
    for _ in range(samples):
        if previous is None or (shortest is not None and previous > horizon):
            break
        following = trigger.get_next_fire_time(previous, previous + timedelta(microseconds=1))
        if following is None:
            break
        # In UTC: aware datetimes sharing a tzinfo subtract as wall clocks, wrong across DST changes.
        gap = (following.astimezone(UTC) - previous.astimezone(UTC)).total_seconds()
        if gap > 0:
            shortest = gap if shortest is None else min(shortest, gap)
        previous = following
    if shortest is None:
        return 0.0
    return min(shortest / 10, cap)


# ---------------------------------------------------------------- logging


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the record's structured `fields`."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def setup_logging(fmt: str = "text", stream: Any = None) -> None:
    """Log INFO and above to stderr as text lines or JSON lines (for log shippers)."""
    handler = logging.StreamHandler(stream)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    # APScheduler's own INFO lines ("Running job ...") would double every cycle's line.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)


# ---------------------------------------------------------------- the daemon


class _LockedTagger:
    """The tagger shared by crawl jobs in several threads, one call at a time (spaCy promises no more)."""

    def __init__(self, tagger: Any) -> None:
        self._tagger = tagger
        self._lock = threading.Lock()

    def tag(self, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return self._tagger.tag(*args, **kwargs)

    def tag_many(self, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return list(self._tagger.tag_many(*args, **kwargs))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tagger, name)


class Daemon:
    """Schedules the crawl of every enabled source and the alert sweep (retries, digests) in a BackgroundScheduler."""

    def __init__(
        self,
        config: Config,
        tagger: Any,
        rules: list[CompiledRule],
        *,
        stop: threading.Event | None = None,
        retry_interval: float = RETRY_INTERVAL,
        maintenance_interval: float = MAINTENANCE_INTERVAL,
        mailer: Mailer | None = None,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.config = config
        self.tagger = _LockedTagger(tagger)
        self.rules = rules
        self.stop = stop or threading.Event()
        self.retry_interval = retry_interval
        self.maintenance_interval = maintenance_interval
        self._last_prune: float | None = None
        self.disk_full_since: str | None = None
        """When a write first met a full disk; None while writes go through."""
        self.sender = AlertSender(config, rules, mailer=mailer, now=now)
        self.sources = [s for s in config.sources if s.enabled]
        self.host_memory = HostMemory()
        """robots.txt and per-host timing shared by every crawl job, so a poll costs one request, not two."""
        self.scheduler: BackgroundScheduler | None = None
        self._running = 0
        self._idle = threading.Condition()
        # Sources on one host are crawled one at a time so per-host politeness holds across jobs.
        self._host_locks: dict[str, threading.Lock] = {}

    # -- lifecycle

    def start(self) -> None:
        """Register the rules, schedule every job and start the scheduler."""
        self.sender.register()
        workers = max(4, min(10, len(self.sources) + 2))
        scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(workers)},
            job_defaults={"coalesce": True, "max_instances": 1},
            timezone=self.config.timezone,
        )
        last_attempts = self._last_attempts()
        now = datetime.now(UTC)
        for source in self.sources:
            host = url_host(source.url)
            self._host_locks.setdefault(host, threading.Lock())
            if source.cron:
                trigger: Any = CronTrigger.from_crontab(source.cron, timezone=self.config.timezone)
                # from_crontab takes no jitter; the trigger computes fire times with it once set.
                trigger.jitter = cron_jitter(trigger, now) or None
                first = None
                grace = 600
            else:
                trigger = IntervalTrigger(seconds=source.every, jitter=source.every / 10)
                # After a restart, a source crawled recently waits out the rest of its interval.
                last = last_attempts.get(source.name)
                first = now if last is None else max(now, last + timedelta(seconds=source.every))
                first += timedelta(seconds=random.uniform(0, source.every / 10))
                grace = int(min(max(1, source.every), 3600))
            scheduler.add_job(self._guarded(self.crawl_source, source), trigger, id=f"crawl:{source.name}",
                              name=f"crawl {source.name}", misfire_grace_time=grace,
                              **({"next_run_time": first} if first is not None else {}))
        # The one job that sends digests (within `retry_interval` of their `at` time, or of a restart
        # that missed it); it also retries failed deliveries and catches articles stored by another
        # process. Its first run flushes what a restart left pending.
        scheduler.add_job(self._guarded(self.deliver), IntervalTrigger(seconds=self.retry_interval),
                          id="alerts:sweep", name="alert sweep", misfire_grace_time=int(self.retry_interval),
                          next_run_time=now)
        scheduler.add_job(self._guarded(self.maintain), IntervalTrigger(seconds=self.maintenance_interval),
                          id="db:maintenance", name="database maintenance",
                          misfire_grace_time=int(self.maintenance_interval),
                          next_run_time=now + timedelta(seconds=min(60.0, self.maintenance_interval)))
        self.scheduler = scheduler
        scheduler.start()
        log.info("daemon started: %d sources, %d alert rules, database %s, mail to %s", len(self.sources),
                 len(self.rules), redact(self.config.db_path), self._mail_target(),
                 extra={"fields": {"event": "started", "sources": len(self.sources), "rules": len(self.rules),
                                   "db": redact(self.config.db_path), "pid": os.getpid()}})

    def wait(self) -> None:
        """Block until the stop event is set (wakes up regularly so signal handlers run)."""
        while not self.stop.wait(0.5):
            pass

    def shutdown(self, grace: float = SHUTDOWN_GRACE) -> bool:
        """Stop the scheduler and give running jobs `grace` seconds; True if they all finished."""
        self.stop.set()
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        deadline = time.monotonic() + grace
        with self._idle:
            while self._running and time.monotonic() < deadline:
                self._idle.wait(deadline - time.monotonic())
            finished = self._running == 0
        log.info("daemon stopped" if finished else "daemon stopping with jobs still running",
                 extra={"fields": {"event": "stopped", "jobs_running": self._running}})
        return finished

    def _guarded(self, job: Callable[..., Any], *args: Any, **kwargs: Any) -> Callable[[], None]:
        """`job` wrapped so it counts as running, skips after stop, and never takes the schedule down."""

        def run() -> None:
            if self.stop.is_set():
                return
            with self._idle:
                self._running += 1
            try:
                job(*args, **kwargs)
            except Exception:
                log.exception("job %s failed; the schedule goes on", getattr(job, "__name__", job),
                              extra={"fields": {"event": "job_error"}})
            finally:
                with self._idle:
                    self._running -= 1
                    self._idle.notify_all()

        run.__name__ = getattr(job, "__name__", "job")
        return run

    # -- jobs

    def crawl_source(self, source: SourceConfig) -> SourceOutcome | None:
        """One cycle of one source (unless it is backing off), then immediate alerts if it stored anything.

        On a full disk the cycle stops writing and logs one line (once, not every cycle); the next
        cycle tries again, so writing resumes by itself when space is freed.
        """
        try:
            if self.disk_full_since is not None:
                # Folding the WAL back (and truncating it) is the first space a full disk gives back.
                self._maintain(prune=False)
            outcome = self._crawl_once(source)
        except Exception as exc:
            full = disk_full(exc, self.config.db_path)
            if full is None:
                raise
            self._disk_is_full(full)
            return None
        if self.disk_full_since is not None:
            log.info("disk space is back: writing to %s again (full since %s)", self.config.db_path,
                     self.disk_full_since, extra={"fields": {"event": "disk_full_over"}})
            self.disk_full_since = None
            if not self.stop.is_set():
                self.deliver(digests=False)  # what was held while the disk was full
        return outcome

    def _disk_is_full(self, error: Exception) -> None:
        if self.disk_full_since is None:
            self.disk_full_since = utc_now()
            log.error("%s", error, extra={"fields": {"event": "disk_full", "db": str(self.config.db_path)}})

    def _crawl_once(self, source: SourceConfig) -> SourceOutcome | None:
        host_lock = self._host_locks.setdefault(url_host(source.url), threading.Lock())
        with host_lock:
            if self.stop.is_set():
                return None
            db = open_db(self.config.db_path)
            try:
                if self._backing_off(db, source) or crawled_elsewhere(db, source):
                    return None
                summary = run_crawl(self.config, db, self.tagger, [source], stop=self.stop,
                                    memory=self.host_memory)
                outcome = summary.outcomes[0] if summary.outcomes else SourceOutcome(source.name)
                self._after_cycle(db, source, outcome)
            finally:
                db.close()
        if summary.new_article_ids and not self.stop.is_set():
            self.deliver(digests=False)
        return outcome

    def deliver(self, *, immediate: bool = True, digests: bool = True) -> None:
        """Deliver pending alerts; failures stay pending for the next sweep.

        Not while the disk is full: an alert sent but not recorded would be sent again.
        """
        if self.disk_full_since is not None:
            return
        report = self.sender.deliver(immediate=immediate, digests=digests, stop=self.stop)
        if report.errors:
            log.warning("alerts: %d sent, %d pending after failures (retry within %.0fs)", len(report.sent),
                        len(report.pending), self.retry_interval,
                        extra={"fields": {"event": "alerts", "sent": len(report.sent),
                                          "pending": len(report.pending)}})

    def maintain(self) -> None:
        """Prune old article text once a day (with `[storage] keep_days`) and checkpoint the WAL."""
        try:
            self._maintain()
        except Exception as exc:
            full = disk_full(exc, self.config.db_path)
            if full is None:
                raise
            self._disk_is_full(full)

    def _maintain(self, prune: bool = True) -> None:
        db = open_db(self.config.db_path)
        try:
            due = self._last_prune is None or time.monotonic() - self._last_prune >= PRUNE_INTERVAL
            if self.config.keep_days and due and prune:
                pruned = prune_texts(db, self.config.keep_days)
                self._last_prune = time.monotonic()
                log.info("prune: text of %d articles older than %g days removed (rows and tags kept)", pruned,
                         self.config.keep_days, extra={"fields": {"event": "prune", "articles": pruned}})
            result = checkpoint(db.conn, self.config.db_path)
        finally:
            db.close()
        if result.busy and result.wal_bytes > WAL_WARNING_BYTES:
            log.warning("WAL of %s is %.0f MB and readers keep it from being reset; it is reused, not grown,"
                        " while checkpoints go through", self.config.db_path, result.wal_bytes / 1e6,
                        extra={"fields": {"event": "checkpoint", "wal_bytes": result.wal_bytes}})

    def _backing_off(self, db: Any, source: SourceConfig) -> bool:
        return source_backing_off(db, source)

    def _after_cycle(self, db: Any, source: SourceConfig, outcome: SourceOutcome) -> None:
        after_cycle(db, source, outcome)

    def _last_attempts(self) -> dict[str, datetime]:
        db = open_db(self.config.db_path)
        try:
            rows = db.execute("SELECT name, last_attempt_at FROM sources WHERE last_attempt_at IS NOT NULL").fetchall()
        finally:
            db.close()
        found = {}
        for name, moment in rows:
            try:
                found[name] = datetime.fromisoformat(moment)
            except (TypeError, ValueError):
                continue
        return found

    def _mail_target(self) -> str:
        email = self.config.email
        return f"SMTP {email.host}:{email.port}" if email.host else f"Maildir {email.outbox}"


# ---------------------------------------------------------------- one cycle's bookkeeping (daemon and workers)


def source_backing_off(db: Any, source: SourceConfig) -> bool:
    """Whether `source` failed lately and waits out its back-off (then its cycle is skipped)."""
    row = db.execute("SELECT next_due_at, backoff_seconds FROM sources WHERE name = ?", [source.name]).fetchone()
    return bool(row and row[1] and row[0] and row[0] > utc_now())


def after_cycle(db: Any, source: SourceConfig, outcome: SourceOutcome) -> None:
    """Set the source's back-off from its failure count and log the cycle's one line."""
    row = db.execute("SELECT consecutive_failures FROM sources WHERE name = ?", [source.name]).fetchone()
    failures = int(row[0]) if row and row[0] else 0
    now = datetime.now(UTC)
    fields: dict[str, Any] = {
        "event": "crawl", "source": source.name, "ok": outcome.ok, "new": outcome.new_articles,
        "items": outcome.items_seen, "filtered_out": outcome.filtered_out, "elapsed": round(outcome.elapsed, 3),
    }
    if outcome.ok:
        update_source_health(db, source.name, backoff_seconds=None,
                             next_due_at=None if source.cron else to_utc_iso(now + timedelta(seconds=source.every)))
        state = "not modified" if outcome.not_modified else "ok"
        log.info("crawl %s: %s, %d new of %d items in %.1fs", source.name, state, outcome.new_articles,
                 outcome.items_seen, outcome.elapsed, extra={"fields": fields})
        return
    interval = source.every
    wait = backoff_interval(interval, failures)
    update_source_health(db, source.name, backoff_seconds=wait,
                         next_due_at=to_utc_iso(now + timedelta(seconds=wait)))
    fields.update(error=outcome.error, failures=failures, backoff=wait)
    log.warning("crawl %s: FAILED (%d in a row, next try in %.0fs) after %.1fs: %s", source.name, failures,
                wait, outcome.elapsed, outcome.error, extra={"fields": fields})


def crawled_elsewhere(db: Any, source: SourceConfig) -> bool:
    """PostgreSQL, where several daemons share the database: whether another daemon is crawling `source`
    right now (it holds the source's advisory lock; ours is held until `db` closes) or crawled it less than
    half its interval ago (a cron source: within CRON_JITTER_CAP), so that the sites see one crawler's
    schedule however many daemons run. Always False on SQLite, which has one daemon per file."""
    if not is_postgres(db):
        return False
    key = zlib.crc32(f"policy-monitor source {source.name}".encode())
    if not db.execute("SELECT pg_try_advisory_lock(?)", [key]).fetchone()[0]:
        return True
    row = db.execute("SELECT last_attempt_at FROM sources WHERE name = ?", [source.name]).fetchone()
    try:
        last = datetime.fromisoformat(row[0]) if row and row[0] else None
    except ValueError:
        last = None
    window = CRON_JITTER_CAP if source.cron else source.every / 2
    return last is not None and (datetime.now(UTC) - last).total_seconds() < window

"""Crawl workers end to end: `monitor run --workers` and two `monitor worker` processes on one machine.

The queue is a real PostgreSQL database; the store is that same database (as on several machines)
or a SQLite file the processes share (one machine), each end-to-end test running on both. The web a
loopback site on several ports (each port is a host) that counts the requests in flight per host,
and the mail a real SMTP server. Checked: no host ever sees more than `per_host_concurrency`
requests from all workers together, starts to a host stay `per_host_delay` apart, robots.txt is
obeyed, no article is stored twice, alerts go out once, and a worker killed with SIGKILL mid-job
loses nothing (another worker runs its job again). Also: the single-process daemon never imports
Procrastinate, and a missing extra or a queue that is not PostgreSQL is one line and exit code 2.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import ROOT
from tests.test_alerts_fixtures import SmtpSink

WORDS = ("ministry employers quota talent engineers nurses semiconductor shipbuilding farms universities "
         "graduates residency sponsorship permit points salary threshold language test region province "
         "startup investors families dependents renewal interview backlog processing fee council review "
         "pilot scheme seasonal care welders researchers doctors drivers fishermen hotels logistics").split()
PAGE_SECONDS = 0.3
"""How long the site takes to answer an article page: long enough for requests to overlap."""
BLOCK_PYTHON_MODULES = """
import importlib.abc, sys
class _Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked by the test)", name=name)
        return None
sys.meta_path.insert(0, _Blocked())
"""


def article_text(key: str) -> str:
    """Text of its own for each article (so that no two are taken for the same story)."""
    rng = random.Random(key)
    sentences = [" ".join(rng.choice(WORDS) for _ in range(14)).capitalize() + "." for _ in range(8)]
    sentences.insert(2, f"The visa rules for {key} change next year, the ministry said.")
    return " ".join(sentences)


class Site:
    """Feeds and article pages on several loopback ports; records every request per host (port)."""

    def __init__(self, hosts: int) -> None:
        self.lock = threading.Lock()
        self.in_flight: dict[int, int] = {}
        self.max_in_flight: dict[int, int] = {}
        self.starts: dict[int, list[tuple[float, str]]] = {}
        self.paths: list[tuple[int, str]] = []
        self.feeds: dict[str, list[tuple[int, str]]] = {}
        """feed name -> (port of the article's host, article key)."""
        self.hold: dict[str, threading.Event] = {}
        """path -> released when the test says so; the first request for it waits till then."""
        self.held = threading.Event()
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                port = self.server.server_address[1]
                with site.lock:
                    site.paths.append((port, self.path))
                    site.starts.setdefault(port, []).append((time.monotonic(), self.path))
                    site.in_flight[port] = site.in_flight.get(port, 0) + 1
                    site.max_in_flight[port] = max(site.max_in_flight.get(port, 0), site.in_flight[port])
                    gate = site.hold.pop(self.path, None)
                try:
                    status, kind, body = site.answer(self.path)
                    if gate is not None:
                        site.held.set()
                        gate.wait(30)
                    self.send_response(status)
                    self.send_header("Content-Type", kind)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body[:-1])
                finally:
                    # Counted out before the last byte: the client cannot have finished (and freed its
                    # slot) before, so the count never exceeds what the workers really had in flight.
                    with site.lock:
                        site.in_flight[port] -= 1
                try:
                    self.wfile.write(body[-1:])
                except OSError:
                    pass

            def log_message(self, *args: object) -> None:
                pass

        self.servers = [ThreadingHTTPServer(("127.0.0.1", 0), Handler) for _ in range(hosts)]
        self.ports = [server.server_address[1] for server in self.servers]
        for server in self.servers:
            threading.Thread(target=server.serve_forever, daemon=True).start()

    def base(self, index: int) -> str:
        return f"http://127.0.0.1:{self.ports[index]}"

    def add_feed(self, name: str, articles: list[tuple[int, str]]) -> None:
        self.feeds[name] = articles

    def answer(self, path: str) -> tuple[int, str, bytes]:
        if path == "/robots.txt":
            return 200, "text/plain", b"User-agent: *\nDisallow: /private/\n"
        if path.startswith("/feed/"):
            name = path.removeprefix("/feed/").removesuffix(".xml")
            return 200, "application/rss+xml; charset=utf-8", self.feed(name)
        key = path.rsplit("/", 1)[-1].removesuffix(".html")
        time.sleep(PAGE_SECONDS)
        title = f"Visa notice {key}"
        page = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>'
                f"<body><article><h1>{title}</h1><p>{article_text(key)}</p><p>{article_text(key + 'b')}</p>"
                "</article></body></html>")
        return 200, "text/html; charset=utf-8", page.encode()

    def article_url(self, port: int, key: str) -> str:
        folder = "private" if key.startswith("private") else "a"
        return f"http://127.0.0.1:{port}/{folder}/{key}.html"

    def feed(self, name: str) -> bytes:
        date = format_datetime(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
        items = "".join(
            f"<item><title>Visa notice {key}</title><link>{self.article_url(port, key)}</link>"
            f"<guid>{self.article_url(port, key)}</guid><pubDate>{date}</pubDate>"
            f"<description>Visa notice {key}: {article_text(key)[:200]}</description></item>"
            for port, key in self.feeds[name]
        )
        return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>{name}</title>'
                f"<link>http://127.0.0.1/</link><description>test</description>{items}</channel></rss>").encode()

    def arrivals(self, port: int) -> list[tuple[float, str]]:
        """(monotonic time, path) of every request to the host, in order of arrival."""
        with self.lock:
            return list(self.starts.get(port, []))

    def requests_for(self, port: int, path: str) -> int:
        with self.lock:
            return sum(1 for p, q in self.paths if p == port and q == path)

    def close(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()


@pytest.fixture
def site() -> Iterator[Site]:
    served = Site(hosts=3)
    yield served
    served.close()


def write_config(tmp_path: Path, queue_url: str | None, sources: list[tuple[str, str]], *, sink: SmtpSink | None = None,
                 per_host_delay: float = 0.2, store: str = "data/monitor.db") -> Path:
    source_tables = "".join(f"""
[[sources]]
name = "{name}"
kind = "feed"
url = "{url}"
country = "KR"
every = "5s"
""" for name, url in sources)
    mail = (f"""
[email]
host = "127.0.0.1"
port = {sink.port}
security = "none"
sender = "alerts@example.org"
timeout = 5

[[alerts]]
name = "visa-watch"
to = "reader@example.org"
query = "visa"
""" if sink else "")
    queue = f'queue_url = "{queue_url}"' if queue_url else ""
    path = tmp_path / "config.toml"
    path.write_text(f"""
[storage]
path = "{store}"

[crawl]
allow_private_addresses = true
per_host_concurrency = 2
per_host_delay = {per_host_delay}
article_concurrency = 4
timeout = 10

[workers]
{queue}
concurrency = 3
alert_interval = 1
stalled_after = 3
busy_retry = 0.5
{source_tables}{mail}""", encoding="utf-8")
    return path


def monitor(config: Path, tmp_path: Path, *args: str, log_name: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("MONITOR_CONFIG", "MONITOR_DATABASE_URL")}
    env["PYTHONPATH"] = str(ROOT)
    log = open(tmp_path / log_name, "ab")  # noqa: SIM115 (the child keeps it)
    return subprocess.Popen([sys.executable, "-m", "monitor", "--config", str(config), *args], cwd=tmp_path,
                            stdout=log, stderr=subprocess.STDOUT, env=env)


def wait_until(condition, timeout: float, why=lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting: {why()}"
        time.sleep(0.1)


def stored(tmp_path: Path, store: str = "data/monitor.db") -> list[tuple[str, str]]:
    """(url, title) of every stored article, in the SQLite file or the PostgreSQL database `store`."""
    if store.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(store) as conn:
            try:
                return conn.execute("SELECT url, title FROM articles ORDER BY url").fetchall()
            except psycopg.errors.UndefinedTable:
                return []
    path = tmp_path / store
    if not path.exists():
        return []
    conn = sqlite3.connect(path, timeout=30)
    try:
        return conn.execute("SELECT url, title FROM articles ORDER BY url").fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()


def logs(tmp_path: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')}" for p in sorted(tmp_path.glob("*.log")))


def stop_all(processes: list[subprocess.Popen]) -> list[int]:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    codes = []
    for process in processes:
        try:
            codes.append(process.wait(timeout=20))
        except subprocess.TimeoutExpired:
            process.kill()
            codes.append(process.wait())
    return codes


pytestmark = pytest.mark.skipif(
    __import__("importlib.util").util.find_spec("procrastinate") is None,
    reason="the 'distributed' extra is not installed (pip install -e '.[distributed]')")


@pytest.fixture(params=["postgresql", "sqlite"])
def store(request, postgres_url) -> str:
    """Where the workers store articles: the queue's own PostgreSQL database, or a shared SQLite file."""
    return postgres_url if request.param == "postgresql" else "data/monitor.db"


def test_two_workers_share_per_host_politeness_store_once_and_alert_once(tmp_path, site, postgres_url, store):
    host_a, host_b = site.ports[0], site.ports[1]
    # Three sources on host A, one on host B whose articles live on host A: the jobs of host A's
    # sources take turns (job lock), while the host-B job's page requests meet them at host A.
    for name in ("a1", "a2", "a3"):
        site.add_feed(name, [(host_a, f"{name}x{i}") for i in range(4)])
    site.add_feed("b1", [(host_a, f"b1x{i}") for i in range(4)] + [(host_a, "private1")])
    sources = [(name, f"{site.base(0)}/feed/{name}.xml") for name in ("a1", "a2", "a3")]
    sources.append(("b1", f"{site.base(1)}/feed/b1.xml"))
    sink = SmtpSink().start()
    config = write_config(tmp_path, postgres_url, sources, sink=sink, store=store)
    processes = [monitor(config, tmp_path, "worker", log_name=f"worker{i}.log") for i in (1, 2)]
    try:
        processes.append(monitor(config, tmp_path, "run", "--workers", "--log-format", "json",
                                 log_name="scheduler.log"))
        if store.startswith("postgresql://"):
            # On PostgreSQL nothing stops a second scheduler (there is no lock file; one per machine is
            # how daemons share a database): its jobs meet the first's queueing locks, its deliveries
            # the alert claims, so still nothing is crawled or alerted twice.
            processes.append(monitor(config, tmp_path, "run", "--workers", "--log-format", "json",
                                     log_name="scheduler2.log"))
        expected = {f"{name}x{i}" for name in ("a1", "a2", "a3", "b1") for i in range(4)} | {"private1"}
        wait_until(lambda: len(stored(tmp_path, store)) >= len(expected), 45,
                   lambda: "every article stored\n" + logs(tmp_path))

        def alerted_titles() -> list[str]:
            bodies = [m.get_body(preferencelist=("plain",)).get_content() for m in sink.messages]
            return [key for body in bodies for key in expected for line in body.splitlines()
                    if line == f"Visa notice {key}"]

        wait_until(lambda: set(alerted_titles()) == expected, 20, lambda: "every article alerted\n" + logs(tmp_path))
        time.sleep(2.0)  # a few more alert sweeps: nothing may go out twice
        codes = stop_all(processes)
    finally:
        stop_all(processes)
        sink.stop()

    assert codes == [0] * len(processes), logs(tmp_path)
    password = urlsplit(postgres_url).password
    assert not password or f":{password}@" not in logs(tmp_path), "a database password in a log"
    rows = stored(tmp_path, store)
    assert len(rows) == len(expected) == len({url for url, _ in rows}), rows
    assert {title.removeprefix("Visa notice ") for _, title in rows} == expected
    titles = alerted_titles()
    assert sorted(titles) == sorted(expected), "an article was alerted twice or never"

    # Politeness across both workers: at most per_host_concurrency = 2 requests in flight per host,
    # and 2 were reached (requests did overlap: the limit was met, not avoided by running serially).
    assert site.max_in_flight[host_a] == 2, site.max_in_flight
    assert site.max_in_flight.get(host_b, 0) <= 2
    # per_host_delay = 0.2 s between starts, granted by the database's clock. Arrivals jitter (a
    # granted request may wait for the GIL behind another job's extraction on a loaded machine), so
    # the spacing is judged by the typical gap and the busiest second, not by the smallest gap: two
    # workers each keeping only their own 0.2 s would show gaps around 0.1 s and ~10 starts a second.
    times = [when for when, _ in site.arrivals(host_a)]
    gaps = sorted(later - earlier for earlier, later in zip(times, times[1:], strict=False))
    assert gaps[len(gaps) // 2] >= 0.17, gaps
    busiest = max(sum(1 for other in times if start <= other < start + 1.0) for start in times)
    assert busiest <= 7, (busiest, gaps)
    # robots.txt as today: asked for (once per worker process at most), and its Disallow obeyed.
    assert 1 <= site.requests_for(host_a, "/robots.txt") <= 2
    assert site.requests_for(host_a, "/private/private1.html") == 0
    # Both workers ran jobs.
    for name in ("worker1.log", "worker2.log"):
        assert "crawl " in (tmp_path / name).read_text(), logs(tmp_path)


def test_a_worker_killed_mid_job_loses_nothing(tmp_path, site, postgres_url, store):
    from monitor.workers import defer_crawl, prepare_queue, scheduler_app

    host_c = site.ports[2]
    keys = [f"c1x{i}" for i in range(3)]
    site.add_feed("c1", [(host_c, key) for key in keys])
    held = "/a/c1x1.html"
    release = site.hold[held] = threading.Event()
    config = write_config(tmp_path, postgres_url, [("c1", f"{site.base(2)}/feed/c1.xml")], per_host_delay=0,
                          store=store)
    prepare_queue(postgres_url)
    app = scheduler_app(postgres_url)
    with app.open():
        assert defer_crawl(app, "c1") is not None
        assert defer_crawl(app, "c1") is None  # queueing lock: never two jobs of one source waiting
    first = monitor(config, tmp_path, "worker", "--concurrency", "1", log_name="worker1.log")
    second = None
    try:
        # The site holds one article page open: the worker is mid-job (holding its host's locks) when killed.
        wait_until(site.held.is_set, 30, lambda: "the held page requested\n" + logs(tmp_path))
        first.kill()
        first.wait(10)
        release.set()
        second = monitor(config, tmp_path, "worker", log_name="worker2.log")
        wait_until(lambda: len(stored(tmp_path, store)) >= len(keys), 30,
                   lambda: "the job run again\n" + logs(tmp_path))
        time.sleep(1.0)
    finally:
        release.set()
        stop_all([p for p in (first, second) if p is not None])

    rows = stored(tmp_path, store)
    assert sorted(title.removeprefix("Visa notice ") for _, title in rows) == keys
    assert site.requests_for(host_c, held) == 2  # once by the killed worker, once by the job run again
    assert "queued again" in (tmp_path / "worker2.log").read_text()
    import psycopg

    with psycopg.connect(postgres_url) as conn:
        states = conn.execute("SELECT status::text, count(*) FROM procrastinate_jobs GROUP BY 1").fetchall()
    # The job ran to the end (successful jobs are deleted); none is left waiting or half done.
    assert not [state for state, _ in states if state in ("todo", "doing")], states


def run_with_blocked_modules(blocked: set[str], script: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("MONITOR_CONFIG", "MONITOR_DATABASE_URL")}
    env["PYTHONPATH"] = str(ROOT)
    code = BLOCK_PYTHON_MODULES.format(blocked=blocked) + script
    return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          env=env)


def test_the_single_process_daemon_never_imports_procrastinate(tmp_path, site):
    site.add_feed("d1", [(site.ports[0], "d1x0")])
    config = write_config(tmp_path, None, [("d1", f"{site.base(0)}/feed/d1.xml")])
    script = f"""
import os, signal, sqlite3, sys, threading, time
from monitor.cli import main

def stop_when_crawled():
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if sqlite3.connect("data/monitor.db").execute("SELECT count(*) FROM articles").fetchone()[0]:
                break
        except sqlite3.Error:
            pass
        time.sleep(0.1)
    os.kill(os.getpid(), signal.SIGTERM)

threading.Thread(target=stop_when_crawled, daemon=True).start()
code = main(["--config", {str(config)!r}, "run"])
print("exit", code)
print("loaded", sorted(m for m in sys.modules if m.split(".")[0] in ("procrastinate", "monitor.workers")))
"""
    # Imports blocked: the daemon's whole path (CLI, scheduler, crawl, alerts) must not even try.
    done = run_with_blocked_modules({"procrastinate"}, script, tmp_path)
    assert "exit 0" in done.stdout and "loaded []" in done.stdout, done.stdout + done.stderr
    assert [title for _, title in stored(tmp_path)] == ["Visa notice d1x0"]


@pytest.mark.parametrize("command", [["worker"], ["run", "--workers"]])
def test_without_the_extra_one_line_names_it_and_exit_2(tmp_path, command):
    config = write_config(tmp_path, "postgresql://monitor@127.0.0.1:5432/monitor", [])
    argv = ["--config", str(config), *command]
    script = f"import sys\nfrom monitor.cli import main\nsys.exit(main({argv!r}))"
    done = run_with_blocked_modules({"procrastinate"}, script, tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("monitor: ")
    assert "pip install 'policy-monitor[distributed]'" in done.stderr


@pytest.mark.parametrize(("queue", "message"), [
    (None, "crawl workers need a PostgreSQL queue"),
    ("sqlite:///tmp/queue.db", "must be a postgresql:// URL"),
    ("postgresql://monitor:secret@127.0.0.1:1/none", "cannot use the queue database"),
])
def test_a_queue_that_is_not_a_usable_postgresql_is_one_line_and_exit_2(tmp_path, queue, message, capsys,
                                                                       monkeypatch):
    from monitor.cli import main

    monkeypatch.delenv("MONITOR_DATABASE_URL", raising=False)
    config = write_config(tmp_path, queue, [])
    for command in (["worker"], ["run", "--workers"]):
        assert main(["--config", str(config), *command]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("monitor: ") and message in err, err
        assert "secret" not in err


def test_the_queue_defaults_to_a_postgresql_store_or_monitor_database_url(tmp_path, monkeypatch):
    from monitor.config import load_config

    config = write_config(tmp_path, None, [])
    monkeypatch.delenv("MONITOR_DATABASE_URL", raising=False)
    assert load_config(config).workers.queue_url is None
    store = "postgresql://monitor@db.example.org:5432/monitor"
    assert load_config(config, db_override=store).workers.queue_url == store
    monkeypatch.setenv("MONITOR_DATABASE_URL", "postgresql://monitor@other.example.org/monitor")
    assert load_config(config).workers.queue_url == "postgresql://monitor@other.example.org/monitor"


def test_stalled_jobs_are_queued_again_unless_their_source_already_waits(tmp_path, postgres_url):
    """A dead worker's job goes back to the queue; if the scheduler already queued that source again,
    the dead job is closed as failed instead (the waiting one does the work): never two waiting."""
    import asyncio

    import psycopg

    from monitor.workers import CrawlWorker, defer_crawl, prepare_queue, scheduler_app
    from tests.test_alerts_fixtures import make_config

    prepare_queue(postgres_url)
    app = scheduler_app(postgres_url)
    with app.open():
        lonely, crowded = defer_crawl(app, "lonely"), defer_crawl(app, "crowded")
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        dead = conn.execute("INSERT INTO procrastinate_workers (last_heartbeat) VALUES (now() - interval '1 hour')"
                            " RETURNING id").fetchone()[0]
        conn.execute("UPDATE procrastinate_jobs SET status = 'doing', worker_id = %s", [dead])
    with app.open():
        waiting = defer_crawl(app, "crowded")  # the scheduler's next tick, while the dead job is 'doing'
        assert waiting is not None
    worker = CrawlWorker(make_config(tmp_path), tagger=None, url=postgres_url)

    async def recover() -> int:
        async with worker.app.open_async():
            return await worker.recover_stalled_jobs()

    assert asyncio.run(recover()) == 1
    with psycopg.connect(postgres_url) as conn:
        states = dict(conn.execute("SELECT id, status::text FROM procrastinate_jobs").fetchall())
    assert states == {lonely: "todo", crowded: "failed", waiting: "todo"}

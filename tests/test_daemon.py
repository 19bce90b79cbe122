"""`monitor run`: the daemon as a real subprocess against a loopback feed site and a real SMTP server.

Signals, the one-daemon-per-database lock, restarts without duplicates, SMTP
outages, back-off and the schedule surviving a failing job.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from apscheduler.triggers.cron import CronTrigger

from monitor.alerts import compile_rules
from monitor.daemon import CRON_JITTER_CAP, Daemon, DaemonLocked, acquire_lock, cron_jitter, lock_path
from monitor.health import backoff_interval
from pipelines.tagging import Tagger
from storage import open_db
from tests.conftest import ROOT
from tests.test_alerts_fixtures import SmtpSink, add_article, free_port, maildir_messages, make_config, smtp_email

PARAGRAPH = ("The ministry said the {topic} visa programme will accept more applicants next year. "
             "Employers welcomed the change, and officials expect the number of skilled workers to grow. "
             "Applications open in the spring, and the rules will be reviewed after twelve months.")


class FeedSite:
    """An RSS feed on 127.0.0.1 whose items the test adds while the daemon runs, plus their article pages."""

    def __init__(self) -> None:
        self.items: list[tuple[int, str]] = []
        self.requests = 0
        self.fail = False
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                site.requests += 1
                if site.fail:
                    self._send(500, b"down", "text/plain")
                elif self.path == "/feed.xml":
                    self._send(200, site.feed(), "application/rss+xml; charset=utf-8")
                elif self.path.startswith("/a/"):
                    number = int(self.path.split("/")[2].split(".")[0])
                    title = dict(site.items).get(number)
                    if title is None:
                        self._send(404, b"not found", "text/plain")
                    else:
                        self._send(200, site.page(number, title), "text/html; charset=utf-8")
                else:
                    self._send(404, b"not found", "text/plain")

            def _send(self, status: int, body: bytes, kind: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def add(self, title: str) -> None:
        self.items.append((len(self.items) + 1, title))

    def feed(self) -> bytes:
        date = format_datetime(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
        entries = "".join(
            f"<item><title>{title}</title><link>{self.base_url}/a/{number}.html</link>"
            f"<guid>{self.base_url}/a/{number}.html</guid><pubDate>{date}</pubDate>"
            f"<description>{title}</description></item>"
            for number, title in self.items
        )
        return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Wire</title>'
                f"<link>{self.base_url}/</link><description>test</description>{entries}</channel></rss>").encode()

    def page(self, number: int, title: str) -> bytes:
        body = "".join(f"<p>{PARAGRAPH.format(topic=title)} ({number}.{i})</p>" for i in range(4))
        return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>'
                f"<body><article><h1>{title}</h1>{body}</article></body></html>").encode()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def site():
    served = FeedSite()
    yield served
    served.close()


def write_config(tmp_path: Path, site: FeedSite, sink: SmtpSink) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f"""
[storage]
path = "data/monitor.db"

[crawl]
allow_private_addresses = true
per_host_delay = 0
obey_robots = false
timeout = 5

[[sources]]
name = "wire"
kind = "feed"
url = "{site.base_url}/feed.xml"
country = "KR"
every = "1s"

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
""", encoding="utf-8")
    return path


def start_daemon(config: Path, tmp_path: Path, *extra: str, log_name: str = "daemon.log") -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "MONITOR_CONFIG"}
    env["PYTHONPATH"] = str(ROOT)
    log = open(tmp_path / log_name, "ab")  # noqa: SIM115 (the child keeps it)
    return subprocess.Popen([sys.executable, "-m", "monitor", "--config", str(config), "run", *extra],
                            cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, env=env)


def stop_daemon(process: subprocess.Popen, sig: int = signal.SIGTERM) -> tuple[int, float]:
    started = time.monotonic()
    process.send_signal(sig)
    code = process.wait(timeout=15)
    return code, time.monotonic() - started


def wait_until(condition, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def subjects(sink: SmtpSink) -> list[str]:
    return sorted(m["Subject"] for m in sink.messages)


def test_daemon_subprocess_sigterm_restart_lock_and_no_duplicates(tmp_path, site):
    sink = SmtpSink().start()
    config = write_config(tmp_path, site, sink)
    site.add("Skilled worker visa expands")
    site.add("Nurse visa quota doubles")
    first = start_daemon(config, tmp_path, "--log-format", "json")
    try:
        assert wait_until(lambda: len(sink.received) >= 2), (tmp_path / "daemon.log").read_text()
        lock = lock_path(tmp_path / "data" / "monitor.db")
        assert lock.read_text().splitlines() == [str(first.pid), "monitor run"]

        # A second daemon on the same database is refused within seconds, naming the lock and the PID.
        started = time.monotonic()
        second = subprocess.run([sys.executable, "-m", "monitor", "--config", str(config), "run"], cwd=tmp_path,
                                capture_output=True, text=True, timeout=30,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert second.returncode == 1
        assert time.monotonic() - started < 10
        assert str(lock) in second.stderr and f"PID {first.pid}" in second.stderr
        assert "Traceback" not in second.stderr

        site.add("Startup visa launched")
        assert wait_until(lambda: len(sink.received) >= 3)
        code, took = stop_daemon(first)
        assert code == 0 and took < 10
    finally:
        if first.poll() is None:
            first.kill()
    log_lines = [json.loads(line) for line in (tmp_path / "daemon.log").read_text().splitlines() if line.strip()]
    crawl_lines = [entry for entry in log_lines if entry.get("event") == "crawl"]
    assert crawl_lines and {"source", "new", "items", "elapsed", "ok"} <= set(crawl_lines[0])
    assert sum(entry["new"] for entry in crawl_lines) == 3

    # Killed outright: its lock file stays behind but does not block the next start.
    killed = start_daemon(config, tmp_path, log_name="killed.log")
    assert wait_until(lambda: lock_path(tmp_path / "data" / "monitor.db").read_text().startswith(f"{killed.pid}\n"))
    stop_daemon(killed, signal.SIGKILL)

    # Restarted: the article stored since is alerted, and nothing already sent goes out again.
    site.add("Researcher visa fast track")
    restarted = start_daemon(config, tmp_path, log_name="restart.log")
    try:
        assert wait_until(lambda: len(sink.received) >= 4), (tmp_path / "restart.log").read_text()
        time.sleep(2.5)  # a few more crawl cycles and a sweep: nothing else may arrive
        code, took = stop_daemon(restarted, signal.SIGINT)
        assert code == 0 and took < 10
    finally:
        if restarted.poll() is None:
            restarted.kill()
        sink.stop()
    assert subjects(sink) == sorted(f"[policy-monitor] visa-watch: {title}" for _, title in site.items)
    db = open_db(tmp_path / "data" / "monitor.db")
    assert db.execute("SELECT count(*) FROM alerts_sent WHERE rule = 'visa-watch'").fetchone()[0] == 4
    db.close()


def test_lock_is_released_by_the_os_and_names_the_holder(tmp_path):
    db_path = tmp_path / "x.db"
    held = acquire_lock(db_path)
    with pytest.raises(DaemonLocked) as refused:
        acquire_lock(db_path)
    assert str(lock_path(db_path)) in str(refused.value) and f"PID {os.getpid()}" in str(refused.value)
    held.release()
    other = acquire_lock(db_path, "monitor alerts send")
    with pytest.raises(DaemonLocked, match="another 'monitor alerts send' holds the lock"):
        acquire_lock(db_path)
    other.release()
    # A process that dies holding the lock leaves the file but not the lock.
    child = subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[2]);"
                            "from monitor.daemon import acquire_lock; from pathlib import Path;"
                            "acquire_lock(Path(sys.argv[1])); import os; os._exit(9)", str(db_path), str(ROOT)],
                           timeout=30)
    assert child.returncode == 9 and lock_path(db_path).read_text().strip()
    acquire_lock(db_path).release()


def test_in_process_daemon_backs_off_a_failing_source_and_keeps_going(tmp_path, site):
    sink = SmtpSink().start()
    try:
        config = make_config(tmp_path, email_=smtp_email(sink), crawl={"max_tries": 1},
                             sources=[{"name": "wire", "kind": "feed", "url": f"{site.base_url}/feed.xml",
                                       "every": "1s"},
                                      {"name": "dead", "kind": "feed", "url": f"http://127.0.0.1:{free_port()}/x",
                                       "every": "1s"}],
                             )
        daemon = Daemon(config, Tagger.load(), [], retry_interval=1)
        daemon.start()
        site.add("Visa one")
        try:
            db = open_db(config.db_path)

            def state(name):
                return db.execute("SELECT consecutive_failures, backoff_seconds FROM sources WHERE name = ?",
                                  [name]).fetchone()

            def backed_off() -> bool:
                row = state("dead")
                # The back-off is written just after the failure count: wait for both.
                return bool(row and row[0] >= 2 and row[1] == backoff_interval(1, row[0]))

            assert wait_until(backed_off, timeout=20)
            failures, backoff = state("dead")
            assert backoff >= 4
            time.sleep(1.5)
            assert state("dead")[0] == failures  # backing off: not retried every second any more
            assert wait_until(lambda: db.execute("SELECT count(*) FROM articles").fetchone()[0] == 1)
            site.add("Visa two")
            assert wait_until(lambda: db.execute("SELECT count(*) FROM articles").fetchone()[0] == 2)
            db.close()
        finally:
            started = time.monotonic()
            assert daemon.shutdown()
            assert time.monotonic() - started < 10
    finally:
        sink.stop()


def test_in_process_daemon_smtp_stopped_mid_run_then_restarted_delivers_once(tmp_path, site):
    sink = SmtpSink().start()
    config = make_config(tmp_path, email_=smtp_email(sink),
                         sources=[{"name": "wire", "kind": "feed", "url": f"{site.base_url}/feed.xml", "every": "1s"}],
                         alerts=[{"name": "w", "to": "r@example.org", "query": "visa"}])
    tagger = Tagger.load()
    daemon = Daemon(config, tagger, compile_rules(config, tagger), retry_interval=1)
    daemon.start()
    try:
        site.add("Visa one")
        assert len(sink.wait_for(1)) == 1
        sink.stop()
        site.add("Visa two")
        db = open_db(config.db_path)
        assert wait_until(lambda: db.execute("SELECT count(*) FROM articles").fetchone()[0] == 2)
        time.sleep(1.5)  # at least one failed retry
        assert db.execute("SELECT count(*) FROM alerts_sent").fetchone()[0] == 1
        db.close()
        sink = SmtpSink(port=sink.port).start()
        assert len(sink.wait_for(1, timeout=10)) == 1
        time.sleep(2)
        assert subjects(sink) == ["[policy-monitor] w: Visa two"]
    finally:
        assert daemon.shutdown()
        sink.stop()


def test_a_job_that_raises_does_not_stop_the_schedule(tmp_path, site, monkeypatch, caplog):
    import monitor.daemon as daemon_module

    real_run_crawl = daemon_module.run_crawl
    calls = []

    def flaky_run_crawl(*args, **kwargs):  # unit level: the first cycle hits a bug
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a bug in one cycle")
        return real_run_crawl(*args, **kwargs)

    monkeypatch.setattr(daemon_module, "run_crawl", flaky_run_crawl)
    config = make_config(tmp_path, sources=[{"name": "wire", "kind": "feed", "url": f"{site.base_url}/feed.xml",
                                             "every": "1s"}])
    site.add("Visa one")
    daemon = Daemon(config, Tagger.load(), [], retry_interval=1)
    daemon.start()
    try:
        db = open_db(config.db_path)
        assert wait_until(lambda: db.execute("SELECT count(*) FROM articles").fetchone()[0] == 1, timeout=15)
        db.close()
    finally:
        assert daemon.shutdown()
    assert len(calls) >= 2
    assert any("the schedule goes on" in record.getMessage() for record in caplog.records)


def test_cron_sources_get_a_tenth_of_their_shortest_gap_as_jitter_capped(tmp_path):
    now = datetime(2026, 3, 2, 9, 0, 7, tzinfo=UTC)

    def jitter(expr: str, timezone: str = "UTC") -> float:
        return cron_jitter(CronTrigger.from_crontab(expr, timezone=timezone), now)

    assert jitter("*/2 * * * *") == 12
    assert jitter("0,1 * * * *") == 6  # gaps of 1 and 59 minutes: the shorter bounds it
    assert jitter("0 */2 * * *") == CRON_JITTER_CAP
    assert jitter("0 0 29 2 *") == CRON_JITTER_CAP  # fires once in four years: still capped, not zero
    assert jitter("30 2 * * *", "Europe/Berlin") == CRON_JITTER_CAP  # DST changes give no zero gaps

    config = make_config(tmp_path, sources=[
        {"name": "cron", "kind": "feed", "url": "http://127.0.0.1:9/feed.xml", "cron": "*/3 * * * *"},
        {"name": "every", "kind": "feed", "url": "http://127.0.0.1:9/other.xml", "every": "1h"}])
    daemon = Daemon(config, Tagger.load(), [], retry_interval=60)
    daemon.start()
    try:
        assert daemon.scheduler.get_job("crawl:cron").trigger.jitter == 18
        assert daemon.scheduler.get_job("crawl:every").trigger.jitter == 360
    finally:
        assert daemon.shutdown()


class Clock:
    """The alert sender's clock, set by the test (the scheduler itself runs on real time)."""

    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def __call__(self) -> datetime:
        return self.moment


def test_the_sweep_alone_sends_a_digest_once_when_its_time_comes(tmp_path):
    config = make_config(tmp_path, sources=[],
                         alerts=[{"name": "morning", "to": "r@example.org", "query": "visa", "mode": "daily",
                                  "at": "08:00"}])
    tagger = Tagger.load()
    clock = Clock(datetime(2026, 3, 2, 7, 59, 50, tzinfo=UTC))
    daemon = Daemon(config, tagger, compile_rules(config, tagger), retry_interval=1, now=clock)
    daemon.start()
    try:
        # One mechanism sends digests: the sweep (no per-rule cron job racing it).
        assert {job.id for job in daemon.scheduler.get_jobs()} == {"alerts:sweep", "db:maintenance"}
        add_article(config, "Visa one", "visa news", fetched_at="2026-03-02T07:00:00+00:00")
        add_article(config, "Visa two", "visa news", fetched_at="2026-03-02T07:30:00+00:00")
        time.sleep(1.5)
        assert maildir_messages(config.email.outbox) == []  # 07:59:50: not yet
        clock.moment = datetime(2026, 3, 2, 8, 0, 10, tzinfo=UTC)
        assert wait_until(lambda: maildir_messages(config.email.outbox), timeout=10)
        time.sleep(1.5)  # more sweeps: nothing more
        (message,) = maildir_messages(config.email.outbox)
        assert message["Subject"] == "[policy-monitor] morning: 2 new articles"
    finally:
        assert daemon.shutdown()


def test_run_keeps_the_lock_until_exit_when_a_job_is_still_running(tmp_path, monkeypatch):
    """Unit level: a job stuck sending at shutdown; until the process is gone no second daemon may start."""
    import argparse

    import monitor.commands.run as run_command
    import monitor.daemon as daemon_module

    class Exited(Exception):
        pass

    class StuckDaemon:
        def __init__(self, *args, **kwargs) -> None:
            pass

        def start(self) -> None:
            pass

        def wait(self) -> None:
            pass

        def shutdown(self) -> bool:
            return False  # a job did not finish in the grace time

    def fake_exit(code: int) -> None:
        # The lock must still be held when the process ends; the OS frees it then.
        with pytest.raises(DaemonLocked):
            acquire_lock(config.db_path)
        raise Exited(code)

    config = make_config(tmp_path, sources=[])
    (tmp_path / "config.toml").write_text('[storage]\npath = "test.db"\n', encoding="utf-8")
    monkeypatch.setattr(daemon_module, "Daemon", StuckDaemon)
    monkeypatch.setattr(daemon_module, "setup_logging", lambda fmt: None)
    monkeypatch.setattr(run_command.os, "_exit", fake_exit)
    monkeypatch.setattr(run_command.signal, "signal", lambda *args: None)
    args = argparse.Namespace(config=str(tmp_path / "config.toml"), db=None, log_format="text")
    with pytest.raises(Exited) as exited:
        run_command.handle(args)
    assert exited.value.args == (0,)

    class CleanDaemon(StuckDaemon):
        def shutdown(self) -> bool:
            return True

    # (The stuck run's lock stays held in this process, which did not really exit: use another database.)
    monkeypatch.setattr(daemon_module, "Daemon", CleanDaemon)
    other = tmp_path / "other.db"
    assert run_command.handle(argparse.Namespace(**{**vars(args), "db": str(other)})) == 0
    acquire_lock(other).release()  # a clean stop releases it at once


def test_run_with_an_unset_password_variable_exits_2_at_once(tmp_path, site):
    sink = SmtpSink()  # not started: the daemon must not get as far as mailing
    config = write_config(tmp_path, site, sink)
    config.write_text(config.read_text().replace('security = "none"\n',
                                                 'security = "none"\nusername = "alerts"\n'
                                                 'password_env = "MONITOR_TEST_UNSET_PW"\n'), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("MONITOR_CONFIG", "MONITOR_TEST_UNSET_PW")}
    result = subprocess.run([sys.executable, "-m", "monitor", "--config", str(config), "run"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=30, env={**env, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "MONITOR_TEST_UNSET_PW" in result.stderr
    assert site.requests == 0  # refused before anything was scheduled


def test_run_starts_with_a_host_no_username_and_an_unset_password_variable(tmp_path, monkeypatch):
    """The default password_env names a variable a user without an SMTP login never sets: no refusal."""
    import argparse

    import monitor.commands.run as run_command
    import monitor.daemon as daemon_module

    started = []

    class QuickDaemon:
        def __init__(self, *args, **kwargs) -> None:
            pass

        def start(self) -> None:
            started.append(True)

        def wait(self) -> None:
            pass

        def shutdown(self) -> bool:
            return True

    monkeypatch.delenv("MONITOR_SMTP_PASSWORD", raising=False)
    (tmp_path / "config.toml").write_text(
        '[storage]\npath = "test.db"\n[email]\nhost = "smtp.example.org"\npassword_env = "MONITOR_SMTP_PASSWORD"\n',
        encoding="utf-8")
    monkeypatch.setattr(daemon_module, "Daemon", QuickDaemon)
    monkeypatch.setattr(daemon_module, "setup_logging", lambda fmt: None)
    monkeypatch.setattr(run_command.signal, "signal", lambda *args: None)
    args = argparse.Namespace(config=str(tmp_path / "config.toml"), db=None, log_format="text")
    assert run_command.handle(args) == 0
    assert started == [True]

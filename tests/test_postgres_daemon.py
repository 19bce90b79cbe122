"""Several `monitor run` daemons on one PostgreSQL database: both crawl, each alert goes out once.

The SQLite daemon refuses a second daemon on its file (tests/test_daemon.py); on PostgreSQL daemons on
several machines may share the store, so deliveries take an advisory lock and claim each message."""

from __future__ import annotations

import time

from storage import open_db
from tests.test_alerts_fixtures import SmtpSink
from tests.test_daemon import site, start_daemon, stop_daemon, subjects, wait_until, write_config  # noqa: F401


def test_two_daemons_on_one_database_send_each_alert_once(postgres_url, tmp_path, site):  # noqa: F811
    sink = SmtpSink().start()
    config = write_config(tmp_path, site, sink)
    config.write_text(config.read_text(encoding="utf-8").replace('path = "data/monitor.db"',
                                                                 f'path = "{postgres_url}"'), encoding="utf-8")
    for title in ("Skilled worker visa expands", "Nurse visa quota doubles"):
        site.add(title)
    daemons = [start_daemon(config, tmp_path, log_name=f"daemon{n}.log") for n in range(2)]
    try:
        assert wait_until(lambda: len(sink.received) >= 2, timeout=60), (tmp_path / "daemon0.log").read_text()
        site.add("Startup visa launched")
        site.add("Researcher visa fast track")
        assert wait_until(lambda: len(sink.received) >= 4, timeout=60), (tmp_path / "daemon1.log").read_text()
        time.sleep(3)  # more crawl cycles and sweeps of both daemons: nothing else may arrive
        assert all(daemon.poll() is None for daemon in daemons)  # the second one was not refused
        for daemon in daemons:
            code, _ = stop_daemon(daemon)
            assert code == 0
    finally:
        for daemon in daemons:
            if daemon.poll() is None:
                daemon.kill()
        sink.stop()
    assert subjects(sink) == sorted(f"[policy-monitor] visa-watch: {title}" for _, title in site.items)
    db = open_db(postgres_url)
    assert db.execute("SELECT count(*) FROM alerts_sent WHERE rule = 'visa-watch'").fetchone()[0] == 4
    assert db.execute("SELECT count(*) FROM alert_claims").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM articles").fetchone()[0] == 4
    db.close()
    logs = "".join((tmp_path / f"daemon{n}.log").read_text() for n in range(2))
    assert "Traceback" not in logs


def test_a_source_another_daemon_is_crawling_or_just_crawled_is_left_to_it(postgres_url, tmp_path):
    import zlib
    from datetime import UTC, datetime, timedelta

    from monitor.config import SourceConfig
    from monitor.daemon import crawled_elsewhere
    from storage.db import to_utc_iso
    from storage.writes import update_source_health, upsert_source

    source = SourceConfig(name="wire", kind="feed", url="https://wire.example/feed.xml", every=600.0)
    sqlite = open_db(tmp_path / "one.db")
    assert not crawled_elsewhere(sqlite, source)  # one daemon per SQLite file: nothing to coordinate
    sqlite.close()
    ours, theirs = open_db(postgres_url), open_db(postgres_url)
    upsert_source(ours, {"name": "wire", "kind": "feed", "url": source.url, "enabled": 1})
    key = zlib.crc32(b"policy-monitor source wire")
    assert theirs.execute("SELECT pg_try_advisory_lock(?)", [key]).fetchone()[0]
    assert crawled_elsewhere(ours, source)  # crawling there now
    theirs.close()
    update_source_health(ours, "wire", last_attempt_at=to_utc_iso(datetime.now(UTC) - timedelta(seconds=60)))
    assert crawled_elsewhere(ours, source)  # crawled a minute ago, every 10 minutes
    update_source_health(ours, "wire", last_attempt_at=to_utc_iso(datetime.now(UTC) - timedelta(seconds=400)))
    assert not crawled_elsewhere(ours, source)
    ours.close()

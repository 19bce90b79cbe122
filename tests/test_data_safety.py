"""Nothing lost: backups and restores, integrity checks and FTS repair, retention, a full disk, WAL checkpoints.

Every test works on real SQLite files filled by real crawls of a loopback site.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import subprocess
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.alerts import compile_rules
from monitor.cli import main
from monitor.config import config_from_dict
from monitor.crawl import run_crawl
from monitor.daemon import Daemon
from monitor.lock import acquire_lock
from pipelines.tagging import Tagger
from storage import open_db
from storage.db import register_functions
from storage.maintenance import backup_target, check_database, checkpoint, prune_candidates, wal_size
from storage.schema import SCHEMA_VERSION
from tests.hostile_server import HostileServer, Static
from tests.test_alerts_fixtures import maildir_messages

SENTENCE = ("Korea raised the E-7 visa quota for semiconductor engineers to {n},000 in 2024, the ministry said. ")
JAPANESE = "高度専門職の在留資格で働く外国人は2023年に46,946人となった。"


def page(n: int, repeat: int = 4, cjk: bool = False) -> str:
    body = (SENTENCE.format(n=n) + (JAPANESE if cjk else "")) * repeat
    return (f"<html><head><title>Notice {n}</title></head><body><article><h1>Notice {n}</h1>"
            f"<p>{body}</p><p>Filed under policy {uuid.uuid5(uuid.NAMESPACE_URL, str(n))}.</p>"
            "</article></body></html>")


class Site:
    """A feed of `count` articles on 127.0.0.1 (every third one also in Japanese), and its pages."""

    def __init__(self, count: int, repeat: int = 4, dated: bool = True) -> None:
        self.server = HostileServer(robots_txt="")
        self.count, self.repeat, self.dated = count, repeat, dated

    def __enter__(self) -> Site:
        self.server.start()
        items = ""
        for n in range(self.count):
            self.server.static[f"/n/{n}"] = Static(page(n, self.repeat, cjk=n % 3 == 0), validators="none")
            # Article n is n*10 days old: retention has something to cut.
            date = datetime.now(UTC) - timedelta(days=10 * n)
            pub = f"<pubDate>{date.strftime('%a, %d %b %Y %H:%M:%S +0000')}</pubDate>" if self.dated else ""
            items += f"<item><title>Notice {n}</title><link>{self.server.url(f'/n/{n}')}</link>{pub}</item>"
        self.server.static["/feed.xml"] = Static(
            f"<?xml version='1.0'?><rss version='2.0'><channel><title>t</title><link>{self.server.base_url}</link>"
            f"<description>d</description>{items}</channel></rss>", "application/rss+xml", validators="none")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()

    def config_text(self, db: Path, extra: str = "") -> str:
        return (f'[storage]\npath = "{db}"\n{extra}\n[crawl]\nallow_private_addresses = true\n'
                'per_host_delay = 0\nper_host_concurrency = 4\n'
                f'[[sources]]\nname = "notices"\nkind = "feed"\nurl = "{self.server.url("/feed.xml")}"\n'
                'max_items = 1000\n')

    def config(self, db: Path, outbox: Path | None = None, alerts: list[dict] | None = None):
        data = {"storage": {"path": str(db)},
                "crawl": {"allow_private_addresses": True, "per_host_delay": 0, "per_host_concurrency": 4},
                "sources": [{"name": "notices", "kind": "feed", "url": self.server.url("/feed.xml"),
                             "max_items": 1000}],
                "email": {"outbox": str(outbox or db.parent / "outbox")},
                "alerts": alerts or []}
        return config_from_dict(data, path=None, base_dir=db.parent)


@pytest.fixture(scope="module")
def tagger() -> Tagger:
    return Tagger.load()


@pytest.fixture(scope="module")
def crawled(tmp_path_factory, tagger) -> Path:
    """A database holding a crawl of 24 articles (8 with Japanese text), made once and copied by tests."""
    folder = tmp_path_factory.mktemp("crawled")
    db_path = folder / "crawled.db"
    with Site(24) as site:
        db = open_db(db_path)
        summary = run_crawl(site.config(db_path), db, tagger)
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()
    assert len(summary.new_article_ids) == 24
    return db_path


@pytest.fixture
def db_copy(crawled, tmp_path) -> Path:
    path = tmp_path / "monitor.db"
    shutil.copyfile(crawled, path)
    return path


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def fts_count(db_path: Path, table: str, query: str) -> int:
    conn = sqlite3.connect(db_path)
    try:
        return conn.execute(f"SELECT count(*) FROM {table} WHERE {table} MATCH ?", [query]).fetchone()[0]
    finally:
        conn.close()


# ---------------------------------------------------------------- db check / repair-fts


def test_db_check_reports_schema_wal_and_counts_of_a_sound_database(db_copy, capsys):
    code, out, err = run_cli(capsys, "--db", str(db_copy), "db", "check")
    assert code == 0, err
    assert f"schema version {SCHEMA_VERSION}" in out and "WAL 0.0 MB" in out
    assert "articles            24" in out
    assert "integrity ok (pages, articles_fts, articles_fts_cjk)" in out


def test_a_corrupted_fts_index_fails_the_check_and_repair_fts_rebuilds_it(db_copy, capsys):
    conn = sqlite3.connect(db_copy)
    # Zero some of the index's own pages (its b-tree segments): the words no longer lead to the rows.
    conn.execute("UPDATE articles_fts_data SET block = zeroblob(length(block))"
                 " WHERE rowid IN (SELECT rowid FROM articles_fts_data WHERE id > 10 LIMIT 3)")
    conn.commit()
    conn.close()
    code, _, err = run_cli(capsys, "--db", str(db_copy), "db", "check")
    assert code == 1
    assert err.count("\n") == 1 and err.startswith(f"monitor: database {db_copy} is damaged: articles_fts:")
    assert "monitor db repair-fts" in err
    code, out, err = run_cli(capsys, "--db", str(db_copy), "db", "repair-fts")
    assert code == 0, err
    assert "articles_fts 24 rows, articles_fts_cjk 8 rows" in out
    assert run_cli(capsys, "--db", str(db_copy), "db", "check")[0] == 0
    assert fts_count(db_copy, "articles_fts", "semiconductor") == 24
    assert fts_count(db_copy, "articles_fts_cjk", "高度専門職") == 8


def test_the_trigram_index_is_checked_for_the_rows_it_should_hold_and_no_others(db_copy, capsys):
    # A sound trigram index holds only the 8 Japanese rows: the check must not call the 16 others missing.
    assert check_database(db_copy).ok
    conn = sqlite3.connect(db_copy)
    conn.execute("INSERT INTO articles_fts_cjk(rowid, title, text) SELECT id, title, text FROM articles"
                 " WHERE text NOT GLOB '*高度*' LIMIT 2")
    conn.commit()
    conn.close()
    code, _, err = run_cli(capsys, "--db", str(db_copy), "db", "check")
    assert code == 1 and "articles_fts_cjk: 0 CJK articles missing from the index, 2 rows" in err
    run_cli(capsys, "--db", str(db_copy), "db", "repair-fts")
    assert run_cli(capsys, "--db", str(db_copy), "db", "check")[0] == 0


def test_overwritten_pages_of_the_file_fail_the_check_with_one_line(db_copy, capsys):
    size = db_copy.stat().st_size
    with open(db_copy, "r+b") as file:
        file.seek(size // 2)
        file.write(os.urandom(4096 * 4))
    code, _, err = run_cli(capsys, "--db", str(db_copy), "db", "check")
    assert code == 1
    assert err.count("\n") == 1 and "is damaged" in err and ("malformed" in err or "integrity_check" in err)


# ---------------------------------------------------------------- backup / restore


def test_backup_while_another_connection_writes_is_consistent_and_verified(db_copy, tmp_path, capsys):
    stop = threading.Event()
    written = [0]

    def writer() -> None:
        db = open_db(db_copy)
        while not stop.is_set():
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT INTO fetches (url, fetched_at) VALUES ('http://x/', '2025-01-01T00:00:00+00:00')")
            db.execute("COMMIT")
            written[0] += 1
        db.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        time.sleep(0.2)
        code, out, err = run_cli(capsys, "--db", str(db_copy), "backup", "--out", str(tmp_path / "copy.db"))
    finally:
        stop.set()
        thread.join()
    assert code == 0, err
    assert written[0] > 0
    assert "verified: integrity ok; 24 articles" in out
    assert check_database(tmp_path / "copy.db").ok
    # The copy stands alone: no WAL is needed to read it.
    assert not (tmp_path / "copy.db-wal").exists()


def test_backup_into_a_directory_names_files_by_time_and_keep_rotates(db_copy, tmp_path, capsys):
    folder = tmp_path / "backups"
    made = []
    for second in range(4):
        target = backup_target(f"{folder}/", db_copy, datetime(2026, 1, 1, 3, 0, second, tzinfo=UTC))
        made.append(target.name)
        # Through the CLI as cron would call it; the names differ by the second they were made in.
        code, out, err = run_cli(capsys, "--db", str(db_copy), "backup", "--out", f"{folder}/", "--keep", "2")
        assert code == 0, err
        time.sleep(1.05)
    assert made[0] == "monitor-20260101T030000Z.db"
    kept = sorted(p.name for p in folder.iterdir())
    assert len(kept) == 2 and all(name.startswith("monitor-") and name.endswith("Z.db") for name in kept)
    assert "removed old backup" in out
    code, _, err = run_cli(capsys, "--db", str(db_copy), "backup", "--out", str(tmp_path / "one.db"), "--keep", "2")
    assert code == 2 and "give --out a directory" in err


def test_restore_refuses_while_a_daemon_holds_the_lock_then_keeps_the_current_file(db_copy, tmp_path, capsys):
    assert run_cli(capsys, "--db", str(db_copy), "backup", "--out", str(tmp_path / "b.db"))[0] == 0
    conn = sqlite3.connect(db_copy)
    conn.execute("DELETE FROM articles WHERE id > 20")
    conn.commit()
    conn.close()
    lock = acquire_lock(db_copy)
    try:
        code, _, err = run_cli(capsys, "--db", str(db_copy), "restore", str(tmp_path / "b.db"))
    finally:
        lock.release()
    assert code == 1 and "restore refused" in err and "monitor run" in err
    assert check_database(db_copy).counts["articles"] == 20
    code, out, err = run_cli(capsys, "--db", str(db_copy), "restore", str(tmp_path / "b.db"))
    assert code == 0, err
    assert check_database(db_copy).counts["articles"] == 24
    assert check_database(tmp_path / "monitor.db.before-restore").counts["articles"] == 20
    assert "monitor.db.before-restore" in out


def test_restore_over_a_damaged_database_puts_the_backup_in_place(db_copy, tmp_path, capsys):
    assert run_cli(capsys, "--db", str(db_copy), "backup", "--out", str(tmp_path / "b.db"))[0] == 0
    with open(db_copy, "r+b") as file:
        file.seek(db_copy.stat().st_size // 2)
        file.write(b"\xff" * 16384)
    assert run_cli(capsys, "--db", str(db_copy), "db", "check")[0] == 1
    code, _, err = run_cli(capsys, "--db", str(db_copy), "restore", str(tmp_path / "b.db"))
    assert code == 0, err
    assert run_cli(capsys, "--db", str(db_copy), "db", "check")[0] == 0


def test_restore_refuses_a_damaged_backup_and_leaves_the_database_alone(db_copy, tmp_path, capsys):
    bad = tmp_path / "bad.db"
    shutil.copyfile(db_copy, bad)
    with open(bad, "r+b") as file:
        file.seek(bad.stat().st_size // 2)
        file.write(b"\xff" * 8192)
    code, _, err = run_cli(capsys, "--db", str(db_copy), "restore", str(bad))
    assert code == 2 and "is not a sound backup" in err
    assert check_database(db_copy).ok and not (tmp_path / "monitor.db.before-restore").exists()


# ---------------------------------------------------------------- retention


def test_prune_drops_old_text_but_keeps_rows_tags_figures_and_fts_in_step(db_copy, tmp_path, capsys):
    def counts() -> tuple[int, int, int]:
        conn = sqlite3.connect(db_copy)
        try:
            return tuple(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                         for t in ("articles", "mentions", "figures"))
        finally:
            conn.close()

    before = counts()
    # Articles are 0, 10, 20 ... 230 days old: 95 days keeps 0..90 (10 articles).
    config = tmp_path / "config.toml"
    config.write_text(f'[storage]\npath = "{db_copy}"\nkeep_days = 95\n', encoding="utf-8")
    code, out, _ = run_cli(capsys, "--config", str(config), "prune", "--dry-run")
    assert code == 0 and "the text of 14 articles older than 95 days would go" in out
    assert fts_count(db_copy, "articles_fts", "semiconductor") == 24
    code, out, _ = run_cli(capsys, "--config", str(config), "prune")
    assert code == 0 and "pruned the text of 14 articles" in out
    assert counts() == before
    assert fts_count(db_copy, "articles_fts", "semiconductor") == 10
    assert fts_count(db_copy, "articles_fts", "notice") == 24, "titles stay searchable"
    assert check_database(db_copy).ok, "both FTS indexes followed the UPDATE"
    conn = sqlite3.connect(db_copy)
    assert conn.execute("SELECT count(*) FROM articles WHERE text = '' AND text_pruned_at IS NOT NULL"
                        ).fetchone()[0] == 14
    conn.close()
    assert run_cli(capsys, "--config", str(config), "prune")[1].startswith("pruned the text of 0 articles")


@pytest.mark.parametrize("value", ["0", '"30d"', "-5", "true"])
def test_a_bad_keep_days_is_one_line_and_exit_2(tmp_path, capsys, value):
    config = tmp_path / "config.toml"
    config.write_text(f'[storage]\nkeep_days = {value}\n', encoding="utf-8")
    code, _, err = run_cli(capsys, "--config", str(config), "prune", "--dry-run")
    assert code == 2 and err.count("\n") == 1 and "[storage] keep_days: expected" in err


def test_prune_without_keep_days_says_everything_is_kept(tmp_path, capsys):
    config = tmp_path / "config.toml"
    config.write_text("[storage]\n", encoding="utf-8")
    code, _, err = run_cli(capsys, "--config", str(config), "prune")
    assert code == 2 and "keep_days is not set" in err


def test_the_daemon_maintenance_job_prunes_once_a_day_and_truncates_the_wal(db_copy, tagger):
    conn = sqlite3.connect(db_copy)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("UPDATE sources SET last_error = 'x'")  # something in the WAL
    conn.commit()
    assert wal_size(db_copy) > 0
    config = config_from_dict({"storage": {"path": str(db_copy), "keep_days": 95}}, path=None,
                              base_dir=db_copy.parent)
    daemon = Daemon(config, tagger, [])
    daemon.maintain()
    conn.close()
    assert wal_size(db_copy) == 0
    assert len(prune_candidates(sqlite3.connect(db_copy), 95)) == 0
    # Pruned today: the next run (5 minutes later) only checkpoints.
    conn = sqlite3.connect(db_copy)
    register_functions(conn)  # the triggers that index short CJK words call it
    conn.execute("UPDATE articles SET text = 'back' WHERE id = 24")
    conn.commit()
    conn.close()
    daemon.maintain()
    assert len(prune_candidates(sqlite3.connect(db_copy), 95)) == 1


def test_a_checkpoint_truncates_the_wal_and_gives_up_quickly_behind_a_reader(db_copy):
    db = open_db(db_copy)
    db.execute("UPDATE sources SET last_error = 'x'")
    reader = sqlite3.connect(db_copy)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM articles").fetchone()  # a snapshot the WAL must keep
    db.execute("UPDATE sources SET last_error = 'y'")
    started = time.monotonic()
    result = checkpoint(db.conn, db_copy, busy_ms=300)
    assert result.busy and result.wal_bytes > 0 and time.monotonic() - started < 5
    reader.execute("COMMIT")
    reader.close()
    result = checkpoint(db.conn, db_copy)
    db.close()
    assert not result.busy and result.mode == "TRUNCATE" and wal_size(db_copy) == 0


# ---------------------------------------------------------------- a full disk


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MB tmpfs mounted for the test (root only); skipped where mounting is not allowed.

    16 MB, not 4: SQLite lets the WAL reach 1000 pages (4 MB) before it checkpoints and starts it over.
    """
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root and mount(8); the full-disk test runs as root in CI")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(folder: Path, leave: int) -> Path:
    """Write a file that leaves about `leave` bytes free in `folder`."""
    filler = folder / "filler"
    free = shutil.disk_usage(folder).free
    with open(filler, "wb") as file:
        file.write(b"\0" * max(0, free - leave))
    return filler


def test_a_full_disk_stops_writing_with_one_line_keeps_the_committed_and_resumes(small_disk, tmp_path, tagger,
                                                                                 capsys, caplog):
    db_path = small_disk / "monitor.db"
    outbox = tmp_path / "outbox"
    alerts = [{"name": "e7", "to": ["analyst@example.org"], "query": "semiconductor"}]
    with Site(40, repeat=6, dated=False) as site:
        config_file = tmp_path / "config.toml"
        config_file.write_text(site.config_text(db_path) + f'[email]\noutbox = "{outbox}"\n[[alerts]]\n'
                               'name = "e7"\nto = ["analyst@example.org"]\nquery = "semiconductor"\n',
                               encoding="utf-8")
        open_db(db_path).close()
        filler = fill(small_disk, 400_000)
        code, _, err = run_cli(capsys, "--config", str(config_file), "crawl")
        assert code == 1
        line = [entry for entry in err.splitlines() if entry.startswith("monitor:")]
        assert len(line) == 1 and f"disk full writing {db_path}" in line[0] and "MB free in" in line[0]
        conn = sqlite3.connect(db_path)
        stored = conn.execute("SELECT count(*) FROM articles").fetchone()[0]
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert 0 < stored < 40, "the disk was to fill in the middle of the crawl"
        assert conn.execute("SELECT count(*) FROM articles a WHERE NOT EXISTS"
                            " (SELECT 1 FROM mentions m WHERE m.article_id = a.id)").fetchone()[0] == 0
        conn.close()

        # The daemon on the same full disk: one ERROR line however many cycles, no alert sent unrecorded.
        config = site.config(db_path, outbox, alerts)
        daemon = Daemon(config, tagger, compile_rules(config, tagger))
        caplog.set_level(logging.INFO, logger="monitor.daemon")
        source = config.sources[0]
        assert daemon.crawl_source(source) is None
        assert daemon.crawl_source(source) is None
        daemon.deliver()
        full_lines = [r for r in caplog.records if r.levelno == logging.ERROR and "disk full" in r.getMessage()]
        assert len(full_lines) == 1 and str(db_path) in full_lines[0].getMessage()
        assert maildir_messages(outbox) == []

        filler.unlink()  # space comes back: the next cycle writes again, no restart
        outcome = daemon.crawl_source(source)
        assert daemon.disk_full_since is None, {p.name: p.stat().st_size for p in small_disk.iterdir()}
        assert outcome is not None and outcome.ok
        assert any("disk space is back" in r.getMessage() for r in caplog.records)
    conn = sqlite3.connect(db_path)
    assert conn.execute("SELECT count(*) FROM articles").fetchone()[0] == 40
    conn.close()
    assert check_database(db_path).ok
    assert len(maildir_messages(outbox)) > 0, "alerts held during the full disk go out once it is over"

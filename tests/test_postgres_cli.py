"""Every command on a PostgreSQL database, as a user runs them: `monitor --db postgresql://...` (or
$MONITOR_DATABASE_URL), real crawls of loopback sites, real Maildir delivery. Skips where no server answers."""

from __future__ import annotations

import email
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from monitor.demo_server import SITE_DIR, serve_demo_site
from tests.conftest import ROOT


def monitor(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in ("MONITOR_CONFIG", "MONITOR_DATABASE_URL")}
    environment["PYTHONPATH"] = str(ROOT)
    environment.update(env or {})
    return subprocess.run([sys.executable, "-m", "monitor", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env=environment)


def assert_one_line_error(result: subprocess.CompletedProcess, fragment: str, code: int = 2) -> None:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert fragment in result.stderr


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A PostgreSQL database filled by `monitor --db URL demo` (once for the module)."""
    from tests.postgres_server import create_database, drop_database, postgres_unavailable

    reason = postgres_unavailable()
    if reason:
        pytest.skip(reason)
    url = create_database()
    folder = tmp_path_factory.mktemp("pgdemo")
    result = monitor("--db", url, "demo", cwd=folder)
    assert result.returncode == 0, result.stderr
    assert "articles in postgresql://" in result.stdout and "#1 [" in result.stdout
    assert " serve " not in result.stdout  # the web UI is not offered for PostgreSQL
    password = urlsplit(url).password
    assert password and f":{password}@" not in result.stdout + result.stderr  # shown as ***
    yield url
    drop_database(url)


def test_demo_then_search_in_every_script(demo_url, tmp_path):
    japanese = monitor("--db", demo_url, "search", "高度専門職", "--format", "json", cwd=tmp_path)
    assert japanese.returncode == 0, japanese.stderr
    assert "<mark>高度専門職</mark>" in japanese.stdout
    mixed = monitor("--db", demo_url, "search", "semiconduct* OR 반도체", "--visa", "KR:*", "--format", "csv",
                    cwd=tmp_path)
    assert mixed.returncode == 0, mixed.stderr
    assert len(mixed.stdout.strip().splitlines()) >= 2
    short = monitor("--db", demo_url, "search", "비자", "--country", "KR", "--format", "json", cwd=tmp_path)
    assert short.returncode == 0 and "<mark>비자</mark>" in short.stdout, short.stderr
    words = monitor("--db", demo_url, "search", '"H-1B" AND petitions', "--since", "2025-01-01", "--format", "json",
                    cwd=tmp_path)
    assert words.returncode == 0 and "<mark>" in words.stdout, words.stderr
    # No --db and no config file: $MONITOR_DATABASE_URL is the database.
    env_only = monitor("search", "高度専門職", "--format", "json", cwd=tmp_path, env={"MONITOR_DATABASE_URL": demo_url})
    assert env_only.returncode == 0 and "<mark>高度専門職</mark>" in env_only.stdout, env_only.stderr


def test_search_syntax_without_a_translation_is_one_line(demo_url, tmp_path):
    assert_one_line_error(monitor("--db", demo_url, "search", "NEAR(visa quota)", cwd=tmp_path),
                          "no PostgreSQL translation")
    assert_one_line_error(monitor("--db", demo_url, "search", "visa AND", cwd=tmp_path), "invalid search query")


def test_sql_reads_and_refuses_to_write(demo_url, tmp_path):
    result = monitor("--db", demo_url, "sql", "SELECT count(*) AS n FROM articles WHERE title LIKE '%H-1B%'",
                     "--format", "csv", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "n" and int(result.stdout.splitlines()[1]) >= 1
    assert_one_line_error(monitor("--db", demo_url, "sql", "DELETE FROM articles", cwd=tmp_path),
                          "read-only transaction")
    assert_one_line_error(monitor("--db", demo_url, "sql", "COMMIT; DELETE FROM articles", cwd=tmp_path),
                          "multiple commands")
    count = monitor("--db", demo_url, "sql", "SELECT count(*) FROM articles", "--format", "csv", cwd=tmp_path)
    assert int(count.stdout.splitlines()[1]) > 10


def test_sqlite_file_commands_say_so_in_one_line(demo_url, tmp_path):
    for args, fragment in ((["serve"], "Datasette"), (["backup", "--out", str(tmp_path / "b")], "pg_dump"),
                           (["restore", str(tmp_path / "x.db")], "pg_restore"),
                           (["db", "repair-fts"], "REINDEX")):
        assert_one_line_error(monitor("--db", demo_url, *args, cwd=tmp_path), fragment)
    check = monitor("--db", demo_url, "db", "check", cwd=tmp_path)
    assert check.returncode == 0 and "PostgreSQL schema version" in check.stdout, check.stderr
    assert "monitor:***@" in check.stdout  # the password is not printed


def test_figures_and_report_read_postgresql(demo_url, tmp_path):
    figures = monitor("--db", demo_url, "figures", "--visa", "JP:HSP", "--format", "csv", cwd=tmp_path)
    assert figures.returncode == 0, figures.stderr
    assert "2012,313.0,count,recognitions,JP:HSP" in figures.stdout and "46946.0" in figures.stdout
    report = monitor("--db", demo_url, "report", "--since", "2020-01-01", "--out", str(tmp_path / "r.html"),
                     cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert "H-1B" in (tmp_path / "r.html").read_text(encoding="utf-8")


def test_crawl_alerts_sources_and_retag_through_the_environment_url(postgres_url, tmp_path):
    """No --db and no [storage] path: $MONITOR_DATABASE_URL names the database."""
    env = {"MONITOR_DATABASE_URL": postgres_url}
    with serve_demo_site() as server:
        sources = (SITE_DIR / "sources.toml").read_text(encoding="utf-8").replace("{{BASE}}",
                                                                                  server.base_url.rstrip("/"))
        (tmp_path / "config.toml").write_text(
            "[crawl]\nallow_private_addresses = true\nper_host_delay = 0\n"
            '[email]\noutbox = "outbox"\n'
            '[[alerts]]\nname = "h1b"\nto = "analyst@example.org"\nquery = "petitions"\nvisas = ["US:*"]\n'
            + sources, encoding="utf-8")
        first = monitor("alerts", "send", cwd=tmp_path, env=env)  # registers the rule on the empty database
        assert first.returncode == 0, first.stderr
        crawl = monitor("crawl", cwd=tmp_path, env=env)
        assert crawl.returncode == 0, crawl.stderr
        assert " 0 failed;" in crawl.stdout and "0 new articles" not in crawl.stdout
        again = monitor("crawl", cwd=tmp_path, env=env)
        assert "0 new articles" in again.stdout, again.stdout
    preview = monitor("alerts", "preview", "h1b", "--days", "100000", cwd=tmp_path, env=env)
    assert preview.returncode == 0 and "match rule 'h1b'" in preview.stdout, preview.stderr
    sent = monitor("alerts", "send", cwd=tmp_path, env=env)
    assert sent.returncode == 0, sent.stderr
    count = int(sent.stdout.strip().splitlines()[-1].split()[0])
    resent = monitor("alerts", "send", cwd=tmp_path, env=env)
    assert "0 messages sent" in resent.stdout  # exactly once
    mails = list((tmp_path / "outbox" / "new").iterdir())
    assert count >= 1 and len(mails) == count
    subjects = [email.message_from_bytes(mail.read_bytes())["Subject"] for mail in mails]
    assert any("H-1B petitions" in subject for subject in subjects), subjects
    health = monitor("sources", cwd=tmp_path, env=env)
    assert health.returncode == 0 and "demo-desk-rss" in health.stdout, health.stderr
    retag = monitor("retag", cwd=tmp_path, env=env)
    assert retag.returncode == 0, retag.stderr
    search = monitor("search", "petitions", "--format", "json", cwd=tmp_path, env=env)
    assert search.returncode == 0 and "<mark>" in search.stdout, search.stderr


def test_a_database_with_c_character_type_is_refused_in_one_line(postgres_url, tmp_path):
    from tests.postgres_server import create_database, drop_database

    url = create_database(ctype="C")
    try:
        assert_one_line_error(monitor("--db", url, "search", "visa", cwd=tmp_path), "character type 'C'")
        assert_one_line_error(monitor("--db", url, "demo", cwd=tmp_path), "C.UTF-8")
    finally:
        drop_database(url)


def test_an_unreachable_server_is_one_line(postgres_url, tmp_path):
    result = monitor("--db", "postgresql://monitor:secret@127.0.0.1:1/monitor", "search", "visa", cwd=tmp_path)
    assert_one_line_error(result, "cannot connect to PostgreSQL")
    assert "secret" not in result.stderr


def test_the_delivery_lock_lets_one_sender_at_a_time(postgres_url, tmp_path):
    from monitor.lock import DAEMON_LOCK_KEY
    from storage import open_db

    (tmp_path / "config.toml").write_text(
        '[email]\noutbox = "outbox"\n[[alerts]]\nname = "any"\nto = "a@example.org"\nquery = "visa"\n',
        encoding="utf-8")
    holder = open_db(postgres_url)
    try:
        assert holder.execute("SELECT pg_try_advisory_lock(?)", [DAEMON_LOCK_KEY]).fetchone()[0]
        busy = monitor("--db", postgres_url, "alerts", "send", cwd=tmp_path)
        assert busy.returncode == 1 and "is delivering alerts" in busy.stderr, busy.stderr
    finally:
        holder.close()
    free = monitor("--db", postgres_url, "alerts", "send", cwd=tmp_path)
    assert free.returncode == 0, free.stderr


def test_an_alert_query_without_a_tsquery_translation_is_refused_at_start(postgres_url, tmp_path):
    (tmp_path / "config.toml").write_text(
        '[email]\noutbox = "outbox"\n[[alerts]]\nname = "near"\nto = "a@example.org"\nquery = "NEAR(visa quota)"\n',
        encoding="utf-8")
    assert_one_line_error(monitor("--db", postgres_url, "alerts", "send", "--dry-run", cwd=tmp_path),
                          "'near' query: invalid search query")
    # The same rule is fine on SQLite, whose FTS5 has NEAR.
    sqlite = monitor("--db", str(tmp_path / "m.db"), "alerts", "send", "--dry-run", cwd=tmp_path)
    assert sqlite.returncode == 0, sqlite.stderr

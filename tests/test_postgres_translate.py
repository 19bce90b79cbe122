"""The storage modules' SQL as PostgreSQL reads it (`storage.postgres.connection.translate`), URLs in the config,
and the advisory lock (the one test here that needs a server)."""

from __future__ import annotations

import os

import pytest

pytest.importorskip("psycopg", reason="psycopg is not installed (pip install -e '.[postgres]')")

from storage.postgres.connection import redact, translate  # noqa: E402
from storage.target import database_target, is_database_url  # noqa: E402


def test_placeholders_become_psycopg_ones_outside_quoted_text():
    assert translate("SELECT '?', \"a?\" FROM t WHERE x = ? AND y LIKE '5%'") == (
        "SELECT '?', \"a?\" FROM t WHERE x = %s AND y ILIKE '5%%'")
    assert translate("SELECT * FROM t WHERE d < :cutoff AND x::text = :now", named=True) == (
        "SELECT * FROM t WHERE d < %(cutoff)s AND x::text = %(now)s")
    assert translate("SELECT 'it''s ?' , ?") == "SELECT 'it''s ?' , %s"


def test_sqlite_only_phrases_are_translated():
    assert translate("INSERT OR IGNORE INTO alerts_sent (rule) VALUES (?)") == (
        "INSERT INTO alerts_sent (rule) VALUES (%s) ON CONFLICT DO NOTHING")
    assert translate("BEGIN IMMEDIATE") == "BEGIN"
    assert translate("SELECT 1 FROM mentions m INDEXED BY mentions_article WHERE label COLLATE NOCASE >= ?") == (
        "SELECT 1 FROM mentions m WHERE label >= %s")
    assert translate("SELECT a.id FROM articles a NOT INDEXED WHERE a.id > ?") == (
        "SELECT a.id FROM articles a WHERE a.id > %s")
    assert translate("SELECT x FROM t WHERE x ILIKE ?") == "SELECT x FROM t WHERE x ILIKE %s"


def test_an_insert_whose_id_is_wanted_returns_it():
    assert translate("INSERT INTO articles (url) VALUES (?)", returning_id=True) == (
        "INSERT INTO articles (url) VALUES (%s) RETURNING id")
    assert translate("INSERT INTO sources (name) VALUES (?)", returning_id=True) == (
        "INSERT INTO sources (name) VALUES (%s)")


def test_urls_are_told_from_paths_and_passwords_hidden():
    assert is_database_url("postgresql://u@h:5432/db") and is_database_url("postgres://u@h/db")
    assert not is_database_url("monitor.db") and not is_database_url("/tmp/postgresql.db")
    assert database_target("postgresql://u@h/db") == "postgresql://u@h/db"  # a Path would fold the //
    assert str(database_target("data/monitor.db")) == "data/monitor.db"
    assert redact("postgresql://u:s3cret@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert redact("postgresql://u@h/db") == "postgresql://u@h/db"


def test_the_environment_url_applies_when_no_path_is_configured(tmp_path, monkeypatch):
    from monitor.config import load_config

    monkeypatch.setenv("MONITOR_DATABASE_URL", "postgresql://u@h/db")
    (tmp_path / "bare.toml").write_text("", encoding="utf-8")
    assert load_config(tmp_path / "bare.toml").db_path == "postgresql://u@h/db"
    (tmp_path / "file.toml").write_text('[storage]\npath = "x.db"\n', encoding="utf-8")
    assert load_config(tmp_path / "file.toml").db_path == tmp_path / "x.db"
    (tmp_path / "url.toml").write_text('[storage]\npath = "postgresql://u@h/configured"\n', encoding="utf-8")
    assert load_config(tmp_path / "url.toml").db_path == "postgresql://u@h/configured"
    assert load_config(tmp_path / "file.toml", db_override="postgres://u@h/other").db_path == "postgres://u@h/other"


def test_the_lock_of_a_postgresql_store_is_an_advisory_lock_naming_its_holder(postgres_url):
    from monitor.lock import DaemonLocked, acquire_lock

    held = acquire_lock(postgres_url, "monitor alerts send")
    try:
        with pytest.raises(DaemonLocked, match="another 'monitor alerts send' holds the lock advisory lock") as error:
            acquire_lock(postgres_url)
        assert f"PID {os.getpid()}" in str(error.value)
    finally:
        held.release()
    acquire_lock(postgres_url).release()  # released: free again

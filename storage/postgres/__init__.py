"""PostgreSQL as a second store: `storage.open_db(url)` and `storage.open_readonly(url)` land here.

The handles work with the same public storage functions as SQLite's (writes, alerts ledger, queries);
where the dialects differ those functions ask `storage.target.is_postgres(handle)` and use the SQL of
`storage.postgres.search` or `storage.postgres.sql`. psycopg is imported only when a URL is opened.
"""

from __future__ import annotations

import zlib
from types import ModuleType
from typing import TYPE_CHECKING

from storage.db import StorageError

if TYPE_CHECKING:
    from storage.postgres.connection import PostgresConnection, PostgresDatabase

INSTALL_HINT = "PostgreSQL support is not installed: pip install 'policy-monitor[postgres]'"

SCHEMA_LOCK = zlib.crc32(b"policy-monitor schema")
"""The advisory lock key that serializes migrations between processes opening one database."""


def _connection_module() -> ModuleType:
    """`storage.postgres.connection`, imported late so that SQLite users need no psycopg."""
    try:
        from storage.postgres import connection
    except ImportError:
        raise StorageError(INSTALL_HINT) from None
    return connection


def open_db(url: str) -> PostgresDatabase:
    """Connect read-write to the database at `url` and bring its schema up to date."""
    connection = _connection_module()
    conn = connection.connect(url)
    try:
        migrate(conn)
    except BaseException:
        conn.close()
        raise
    return connection.PostgresDatabase(conn)


def open_readonly(url: str) -> PostgresConnection:
    """Connect to `url` with every transaction READ ONLY (PostgreSQL refuses writes in them)."""
    connection = _connection_module()
    conn = connection.connect(url, readonly=True)
    if schema_version(conn) == 0:
        conn.close()
        raise StorageError(f"{connection.redact(url)} is not a policy-monitor database (no schema);"
                           " run 'monitor crawl' to create one")
    return conn


def schema_version(conn: PostgresConnection) -> int:
    """How many migrations the database has had (0 for an empty database)."""
    exists = conn.execute("SELECT to_regclass('monitor_schema') IS NOT NULL").fetchone()[0]
    if not exists:
        return 0
    row = conn.execute("SELECT version FROM monitor_schema").fetchone()
    return int(row[0]) if row else 0


def migrate(conn: PostgresConnection) -> int:
    """Apply the migrations `conn`'s database has not had yet, each in one transaction; return the version."""
    from storage.postgres.schema import MIGRATIONS, SCHEMA_VERSION

    while True:
        version = schema_version(conn)
        if version > SCHEMA_VERSION:
            raise StorageError(f"PostgreSQL schema version {version} is newer than this program's"
                               f" {SCHEMA_VERSION}; upgrade policy-monitor")
        if version == SCHEMA_VERSION:
            return version
        conn.execute("BEGIN")
        try:
            conn.execute(f"SELECT pg_advisory_xact_lock({SCHEMA_LOCK})")
            conn.execute("CREATE TABLE IF NOT EXISTS monitor_schema (version INTEGER NOT NULL)")
            number = schema_version(conn)
            if number < SCHEMA_VERSION:
                conn.executescript(MIGRATIONS[number])
                conn.execute("DELETE FROM monitor_schema")
                conn.execute("INSERT INTO monitor_schema (version) VALUES (?)", [number + 1])
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

"""Opening databases: read-write with migrations, or read-only by construction."""

from __future__ import annotations

import errno
import shutil
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

import sqlite_utils

from storage.queries import cjk_grams
from storage.schema import MIGRATIONS, SCHEMA_VERSION
from storage.target import is_database_url


class StorageError(Exception):
    """A database can't be opened or used as asked; the message is one line for the user."""


class DiskFull(StorageError):
    """The disk holding the database is full: nothing more is written until space returns."""


def disk_full(exc: BaseException, db_path: str | Path) -> DiskFull | None:
    """A DiskFull naming the file and the free space if `exc` says the disk is full (SQLITE_FULL, ENOSPC), else None.

    SQLite reports a WAL or journal it could not grow as SQLITE_FULL; a file it could not create
    (the -shm or -wal beside a database reopened on a full disk) as an I/O error, counted here as a
    full disk when the folder has (almost) no space left.
    """
    if isinstance(exc, DiskFull):
        return exc
    path = Path(db_path)
    try:
        free = shutil.disk_usage(path.resolve().parent).free
    except OSError:
        free = None
    full = False
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        primary = code & 0xFF if isinstance(code, int) else None
        full = primary == sqlite3.SQLITE_FULL or "disk is full" in str(exc)
        full = full or (primary == sqlite3.SQLITE_IOERR and free is not None and free < 256 * 1024)
    elif isinstance(exc, OSError):
        full = exc.errno == errno.ENOSPC
    elif isinstance(exc, StorageError):
        full = "disk is full" in str(exc) or (free is not None and free < 256 * 1024 and "I/O" in str(exc))
    if not full:
        return None
    space = f"{free / 1e6:.2f} MB free" if free is not None else "free space unknown"
    return DiskFull(f"disk full writing {path} ({space} in {path.resolve().parent}): stopped writing,"
                    " everything committed before is kept; writing resumes when space is freed")


def utc_now() -> str:
    """The current time as the ISO 8601 UTC string every timestamp column uses."""
    return to_utc_iso(datetime.now(UTC))


def to_utc_iso(moment: datetime) -> str:
    """Format `moment` as 'YYYY-MM-DDTHH:MM:SS+00:00'; a naive datetime is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def open_db(path: str | Path) -> sqlite_utils.Database:
    """Open (creating if needed) the database at `path` in WAL mode and bring its schema up to date.

    A PostgreSQL URL (`postgresql://user@host:port/dbname`) opens that database instead (`storage.postgres`).
    """
    if is_database_url(path):
        from storage import postgres

        return postgres.open_db(str(path))
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    except (OSError, sqlite3.Error) as exc:
        raise StorageError(f"cannot open database {path}: {exc}") from None
    db = sqlite_utils.Database(conn)
    try:
        register_functions(conn)
        _enable_wal(conn)
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA synchronous=NORMAL")
        migrate(conn)
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise disk_full(exc, path) or StorageError(f"cannot use database {path}: {exc}") from None
    return db


def register_functions(conn: sqlite3.Connection) -> None:
    """Give `conn` the SQL functions the schema's triggers call (`cjk_grams` fills `articles_cjk_grams`):
    a connection without them cannot store articles, rather than store them half-indexed."""
    conn.create_function("cjk_grams", 2, cjk_grams, deterministic=True)


def _enable_wal(conn: sqlite3.Connection, attempts: int = 100) -> None:
    """Switch to WAL; on a brand-new file another process may be doing the same, which SQLite answers
    with an immediate 'database is locked' that the busy timeout does not cover: try again a little later."""
    for attempt in range(attempts):
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.05)


def migrate(conn: sqlite3.Connection) -> int:
    """Apply the migrations `conn` has not had yet, each atomically; return the schema version.

    The version is read again inside each write transaction, so two processes opening a database
    at once never apply a migration twice.
    """
    while True:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise sqlite3.DatabaseError(
                f"schema version {version} is newer than this program's {SCHEMA_VERSION}; upgrade policy-monitor"
            )
        if version == SCHEMA_VERSION:
            return version
        conn.execute("BEGIN IMMEDIATE")
        try:
            number = conn.execute("PRAGMA user_version").fetchone()[0]
            if number < SCHEMA_VERSION:
                for statement in _split_statements(MIGRATIONS[number]):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def _split_statements(script: str) -> list[str]:
    """Split a migration script into statements, keeping trigger bodies whole."""
    statements, buffer = [], ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        statements.append(buffer.strip())
    return statements


def open_readonly(path: str | Path) -> sqlite3.Connection:
    """Open `path` read-only (SQLite `mode=ro`): writes fail inside SQLite itself, whatever the SQL says.

    Attaching other databases is switched off too, so no statement can create a file either.
    A PostgreSQL URL gets a connection whose every transaction is READ ONLY (`storage.postgres`).
    """
    if is_database_url(path):
        from storage import postgres

        return postgres.open_readonly(str(path))
    path = Path(path)
    if not path.exists():
        raise StorageError(f"database {path} does not exist; run 'monitor crawl' first")
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
        conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
        conn.execute("PRAGMA query_only = ON")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.Error as exc:
        raise StorageError(f"cannot open database {path}: {exc}") from None
    if version == 0:
        conn.close()
        raise StorageError(f"{path} is not a policy-monitor database (no schema); run 'monitor crawl' to create one")
    # An older schema is still read as it is (a backup, a read-only mount, a daemon of the previous
    # release): migrations only add, so what the queries use is there.
    conn.row_factory = sqlite3.Row
    return conn

"""Keeping a database healthy: WAL checkpoints, online backups, integrity checks, FTS rebuilds, retention.

    checkpoint(conn)                       # fold the WAL back into the database (and shrink it when possible)
    backup_database(db_path, out_file)     # consistent copy while the daemon writes, verified afterwards
    check_database(db_path)                # integrity of pages and FTS indexes, schema version, WAL, row counts
    rebuild_fts(db)                        # both FTS indexes rebuilt from `articles`
    prune_texts(db, keep_days)             # article text older than N days dropped; rows and tags kept

SQLite mechanics only: nothing here knows about HTTP, tagging or the scheduler.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlite_utils

from storage.db import StorageError, to_utc_iso
from storage.schema import SCHEMA_VERSION
from storage.target import is_postgres

CJK_GLOB = "*[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]*"
"""The test migration 2's triggers use to decide which rows go into `articles_fts_cjk` (keep them equal)."""

FTS_TABLES = ("articles_fts", "articles_fts_cjk")

COUNTED_TABLES = ("articles", "mentions", "figures", "sources", "fetches", "alerts_sent")
"""The tables whose row counts `db check` and `backup` print."""


# ---------------------------------------------------------------- WAL


@dataclass
class CheckpointResult:
    """What `PRAGMA wal_checkpoint` answered: busy (could not finish), WAL frames, frames copied back."""

    mode: str
    busy: bool
    wal_frames: int
    checkpointed: int
    wal_bytes: int


def wal_path(db_path: str | Path) -> Path:
    """The `-wal` file beside the database."""
    db_path = Path(db_path)
    return db_path.with_name(db_path.name + "-wal")


def wal_size(db_path: str | Path) -> int:
    """Bytes in the database's WAL file (0 when there is none)."""
    try:
        return wal_path(db_path).stat().st_size
    except OSError:
        return 0


def checkpoint(conn: sqlite3.Connection, db_path: str | Path, *, truncate: bool = True,
               busy_ms: int = 2000) -> CheckpointResult:
    """Copy the WAL back into the database (PASSIVE, never blocks), then try TRUNCATE to shrink the file to 0.

    TRUNCATE takes the write lock and waits for readers on older snapshots: it waits at most
    `busy_ms` and gives up quietly (a busy result), so a reader that never pauses (the web UI)
    costs a WAL that is merely reused, not one that grows. PostgreSQL has no WAL file of ours to
    reset (the server checkpoints itself): nothing to do there.
    """
    if is_postgres(conn):
        return CheckpointResult("none", False, 0, 0, 0)
    busy, frames, done = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    mode = "PASSIVE"
    if truncate:
        previous = conn.execute("PRAGMA busy_timeout").fetchone()[0]
        conn.execute(f"PRAGMA busy_timeout = {int(busy_ms)}")
        try:
            busy, frames, done = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            mode = "TRUNCATE"
        except sqlite3.OperationalError:
            busy = 1
        finally:
            conn.execute(f"PRAGMA busy_timeout = {int(previous)}")
    return CheckpointResult(mode, bool(busy), frames, done, wal_size(db_path))


# ---------------------------------------------------------------- checks


@dataclass
class CheckReport:
    """The state of one database file; `problems` is empty when it is sound."""

    path: Path
    schema_version: int = 0
    wal_bytes: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check_database(db_path: str | Path) -> CheckReport:
    """Check pages (`PRAGMA integrity_check`), both FTS indexes, the schema version; count rows. Read-only."""
    path = Path(db_path)
    report = CheckReport(path, wal_bytes=wal_size(path))
    if not path.is_file():
        report.problems.append(f"{path} does not exist")
        return report
    try:
        # Read-write (the file must exist): FTS5 runs 'integrity-check' as an INSERT, refused on mode=ro.
        # It changes nothing, and it runs inside a transaction rolled back at the end.
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True, timeout=30, isolation_level=None)
    except sqlite3.Error as exc:
        report.problems.append(f"cannot open {path}: {exc}")
        return report
    try:
        _check_into(conn, report)
    except sqlite3.DatabaseError as exc:
        report.problems.append(f"{path}: {exc}")
    finally:
        conn.close()
    return report


def _check_into(conn: sqlite3.Connection, report: CheckReport) -> None:
    report.schema_version = conn.execute("PRAGMA user_version").fetchone()[0]
    if report.schema_version == 0:
        report.problems.append(f"{report.path} is not a policy-monitor database (no schema)")
        return
    if report.schema_version > SCHEMA_VERSION:
        report.problems.append(f"schema version {report.schema_version} is newer than this program's"
                               f" {SCHEMA_VERSION}")
    messages = [row[0] for row in conn.execute("PRAGMA integrity_check(20)")]
    if messages != ["ok"]:
        report.problems.append(f"integrity_check: {messages[0]}"
                               + (f" (+{len(messages) - 1} more)" if len(messages) > 1 else ""))
        return
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    report.counts = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in COUNTED_TABLES
                     if t in tables}
    report.problems.extend(fts_problems(conn))


def fts_problems(conn: sqlite3.Connection) -> list[str]:
    """What is wrong with the FTS indexes (empty list when nothing).

    `articles_fts` indexes every article: FTS5's 'integrity-check' with rank 1 compares it with
    `articles` row by row. `articles_fts_cjk` indexes only rows with kana, Han or Hangul, so that
    comparison would report every other row: its own structure is checked (rank 0) and the set of
    rows it holds is compared with the rows the triggers put there.
    """
    conn.execute("BEGIN")
    try:
        return _fts_problems(conn)
    finally:
        conn.execute("ROLLBACK")


def _fts_problems(conn: sqlite3.Connection) -> list[str]:
    problems = []
    try:
        conn.execute("INSERT INTO articles_fts(articles_fts, rank) VALUES ('integrity-check', 1)")
    except sqlite3.DatabaseError as exc:
        problems.append(f"articles_fts: {exc}; run 'monitor db repair-fts'")
    try:
        conn.execute("INSERT INTO articles_fts_cjk(articles_fts_cjk) VALUES ('integrity-check')")
        missing, extra = conn.execute(
            """SELECT
                 (SELECT count(*) FROM articles WHERE coalesce(title, '') || text GLOB :glob
                    AND id NOT IN (SELECT id FROM articles_fts_cjk_docsize)),
                 (SELECT count(*) FROM articles_fts_cjk_docsize WHERE id NOT IN
                    (SELECT id FROM articles WHERE coalesce(title, '') || text GLOB :glob))""",
            {"glob": CJK_GLOB},
        ).fetchone()
        if missing or extra:
            problems.append(f"articles_fts_cjk: {missing} CJK articles missing from the index, {extra} rows"
                            " that should not be there; run 'monitor db repair-fts'")
    except sqlite3.DatabaseError as exc:
        problems.append(f"articles_fts_cjk: {exc}; run 'monitor db repair-fts'")
    return problems


def rebuild_fts(db: sqlite_utils.Database) -> dict[str, int]:
    """Rebuild both FTS indexes from `articles` in one transaction; return the rows each now holds."""
    conn = db.conn
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("INSERT INTO articles_fts(articles_fts) VALUES ('rebuild')")
        # 'rebuild' would index every row; the trigram index holds only rows with CJK text.
        conn.execute("INSERT INTO articles_fts_cjk(articles_fts_cjk) VALUES ('delete-all')")
        conn.execute("INSERT INTO articles_fts_cjk(rowid, title, text) SELECT id, title, text FROM articles"
                     " WHERE coalesce(title, '') || text GLOB ?", [CJK_GLOB])
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return {t: conn.execute(f"SELECT count(*) FROM {t}_docsize").fetchone()[0] for t in FTS_TABLES}


# ---------------------------------------------------------------- backup and restore


@dataclass
class BackupResult:
    path: Path
    bytes: int
    counts: dict[str, int]
    removed: list[Path] = field(default_factory=list)


BACKUP_PREFIX = "monitor-"
BACKUP_SUFFIX = ".db"


def backup_target(out: str | Path, db_path: str | Path, now: datetime | None = None) -> Path:
    """Where a backup goes: `out` itself, or, when `out` is a directory (existing, or written with a
    trailing slash), `<out>/<database stem>-YYYYMMDDTHHMMSSZ.db` in it."""
    text = str(out)
    out = Path(out)
    if out.is_dir() or text.endswith(("/", os.sep)):
        moment = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
        return out / f"{Path(db_path).stem}-{moment}{BACKUP_SUFFIX}"
    return out


def backup_database(db_path: str | Path, out_file: str | Path, *, keep: int | None = None) -> BackupResult:
    """Copy `db_path` to `out_file` with SQLite's online backup API (consistent while the daemon writes),
    verify the copy (integrity_check, FTS indexes) and only then give it its name.

    With `keep`, only the newest `keep` backups of this database in the same folder are kept
    (files named `<stem>-<UTC timestamp>.db`, as `backup_target` names them).
    """
    db_path, out_file = Path(db_path), Path(out_file)
    if not db_path.is_file():
        raise StorageError(f"database {db_path} does not exist")
    if out_file.resolve() == db_path.resolve():
        raise StorageError("the backup cannot overwrite the database itself")
    out_file.parent.mkdir(parents=True, exist_ok=True)
    partial = out_file.with_name(out_file.name + ".partial")
    partial.unlink(missing_ok=True)
    try:
        source = sqlite3.connect(f"{db_path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
        try:
            target = sqlite3.connect(partial)
            try:
                # Pages copied in one step: a writer in between would restart a stepwise copy forever.
                source.backup(target)
                # A copy that can be opened alone: no WAL beside it.
                target.execute("PRAGMA journal_mode=DELETE")
            finally:
                target.close()
        finally:
            source.close()
    except (OSError, sqlite3.Error) as exc:
        partial.unlink(missing_ok=True)
        raise StorageError(f"backup to {out_file} failed: {exc}") from None
    report = check_database(partial)
    if not report.ok:
        partial.unlink(missing_ok=True)
        raise StorageError(f"backup to {out_file} failed verification: {report.problems[0]}")
    os.replace(partial, out_file)
    removed = rotate_backups(out_file.parent, db_path, keep) if keep else []
    return BackupResult(out_file, out_file.stat().st_size, report.counts, removed)


def rotate_backups(folder: Path, db_path: str | Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` timestamped backups of `db_path` in `folder`; return what went."""
    stem = Path(db_path).stem
    backups = sorted(p for p in folder.glob(f"{stem}-*{BACKUP_SUFFIX}") if _is_timestamped(p.name, stem))
    doomed = backups[:-keep] if keep > 0 else backups
    for path in doomed:
        path.unlink(missing_ok=True)
    return doomed


def _is_timestamped(name: str, stem: str) -> bool:
    stamp = name[len(stem) + 1:-len(BACKUP_SUFFIX)]
    try:
        datetime.strptime(stamp, "%Y%m%dT%H%M%SZ")
    except ValueError:
        return False
    return True


def restore_database(backup: str | Path, db_path: str | Path) -> Path | None:
    """Put `backup` in place of `db_path` after verifying it; the current file is kept as `<db>.before-restore`.

    Returns the path of the kept file (None when there was no database). The caller makes sure no
    process uses the database (the daemon lock).
    """
    backup, db_path = Path(backup), Path(db_path)
    report = check_database(backup)
    if not report.ok:
        raise StorageError(f"{backup} is not a sound backup: {report.problems[0]}")
    staged = db_path.with_name(db_path.name + ".restoring")
    shutil.copyfile(backup, staged)
    kept = None
    if db_path.exists():
        # Fold the WAL into the current file first, so `.before-restore` is complete on its own.
        try:
            conn = sqlite3.connect(db_path, timeout=30)
            try:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                conn.close()
        except sqlite3.Error:
            pass  # a damaged file (the usual reason to restore): its WAL is kept beside it below
        kept = db_path.with_name(db_path.name + ".before-restore")
        os.replace(db_path, kept)
        wal = wal_path(db_path)
        if wal.exists() and wal.stat().st_size:
            os.replace(wal, kept.with_name(kept.name + "-wal"))
    for suffix in ("-wal", "-shm"):
        db_path.with_name(db_path.name + suffix).unlink(missing_ok=True)
    os.replace(staged, db_path)
    return kept


# ---------------------------------------------------------------- retention


@dataclass
class PruneCandidate:
    id: int
    date: str
    source: str | None
    title: str | None
    chars: int


def prune_cutoff(keep_days: float, now: datetime | None = None) -> str:
    """The ISO timestamp before which article text goes."""
    return to_utc_iso((now or datetime.now(UTC)) - timedelta(days=keep_days))


_PRUNABLE = """FROM articles WHERE text != '' AND coalesce(published_at, fetched_at) < :cutoff"""


def prune_candidates(conn: sqlite3.Connection, keep_days: float, now: datetime | None = None) -> list[PruneCandidate]:
    """Articles whose text `prune_texts` would drop: dated (published, else fetched) more than `keep_days` ago."""
    rows = conn.execute(
        f"SELECT id, coalesce(published_at, fetched_at), source, title, length(text) {_PRUNABLE} ORDER BY 2, id",
        {"cutoff": prune_cutoff(keep_days, now)},
    ).fetchall()
    return [PruneCandidate(*row) for row in rows]


def prune_texts(db: sqlite_utils.Database, keep_days: float, now: datetime | None = None) -> int:
    """Empty the text of articles older than `keep_days`; rows, titles, links, tags and figures stay.

    The FTS triggers fire on the UPDATE, so the search indexes drop the old words in the same
    transaction. Returns how many articles lost their text.
    """
    conn = db.conn
    conn.execute("BEGIN IMMEDIATE")
    try:
        cursor = conn.execute(f"UPDATE articles SET text = '', text_pruned_at = :now WHERE id IN"
                              f" (SELECT id {_PRUNABLE})",
                              {"cutoff": prune_cutoff(keep_days, now), "now": to_utc_iso(now or datetime.now(UTC))})
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return cursor.rowcount

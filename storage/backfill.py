"""The `backfill_files` ledger of `monitor backfill`: how far each archive file was read.

A file's row moves forward only after the articles of the records it counts are stored, so a
backfill stopped at any moment resumes at `next_offset` and at worst reads a few records again
(whose articles are then found already stored). Plain SQL that PostgreSQL runs as well.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlite_utils

from storage.db import utc_now
from storage.writes import transaction

COLUMNS = ("file", "records_read", "next_offset", "stored", "known", "broken", "finished", "started_at",
           "updated_at", "finished_at", "last_error")


def ledger_rows(db: sqlite_utils.Database, files: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The ledger rows of `files` that have one, by file."""
    found: dict[str, dict[str, Any]] = {}
    wanted = list(dict.fromkeys(files))
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        marks = ",".join("?" * len(chunk))
        cursor = db.execute(f"SELECT {', '.join(COLUMNS)} FROM backfill_files WHERE file IN ({marks})", chunk)
        for row in cursor.fetchall():
            found[row[0]] = dict(zip(COLUMNS, row, strict=True))
    return found


def start_file(db: sqlite_utils.Database, file: str) -> None:
    """Give `file` a ledger row (at offset 0) unless it has one."""
    now = utc_now()
    with transaction(db):
        db.execute("INSERT INTO backfill_files (file, started_at, updated_at) VALUES (?, ?, ?)"
                   " ON CONFLICT(file) DO NOTHING", [file, now, now])


def advance_file(db: sqlite_utils.Database, file: str, *, records: int, next_offset: int, stored: int, known: int,
                 broken: int, finished: bool = False, error: str | None = None) -> None:
    """Count `records` more records of `file` read (with what they gave) and note where the next one starts;
    with `finished`, the file is done and a re-run skips it."""
    now = utc_now()
    with transaction(db):
        db.execute(
            "UPDATE backfill_files SET records_read = records_read + ?, next_offset = ?, stored = stored + ?,"
            " known = known + ?, broken = broken + ?, updated_at = ?, last_error = coalesce(?, last_error),"
            " finished = CASE WHEN ? <> 0 THEN 1 ELSE finished END,"  # a bool is bound as 0/1
            " finished_at = CASE WHEN ? <> 0 THEN ? ELSE finished_at END WHERE file = ?",
            [records, next_offset, stored, known, broken, now, error, finished, finished, now, file],
        )


def forget_files(db: sqlite_utils.Database, files: Sequence[str]) -> int:
    """Drop the ledger rows of `files` (a re-run then reads them from the start); return how many went."""
    wanted = list(dict.fromkeys(files))
    removed = 0
    with transaction(db):
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ",".join("?" * len(chunk))
            removed += db.execute(f"DELETE FROM backfill_files WHERE file IN ({marks})", chunk).rowcount
    return removed

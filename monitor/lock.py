"""One process delivering per database: the lock file `<database>.lock` beside the database actually used.

    lock = acquire_lock(config.db_path)       # DaemonLocked if `monitor run` or `alerts send` holds it
    ...
    lock.release()

The lock is an `fcntl.flock` on the file, which holds the PID and the command of
its holder: the operating system releases it when the process dies, so a killed
daemon's file never blocks a restart. Kept apart from `monitor.daemon` so that
`monitor alerts send` takes the lock without loading the scheduler.
"""

from __future__ import annotations

import fcntl
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storage.target import is_database_url

DAEMON_LOCK_KEY = 0x6D6F6E69  # "moni": the advisory lock key of the daemon's lock on PostgreSQL


class DaemonLocked(Exception):
    """Another process holds the database's daemon lock."""

    def __init__(self, path: Path, pid: str, holder: str = "monitor run") -> None:
        super().__init__(f"another '{holder}' holds the lock {path} (PID {pid or 'unknown'});"
                         " one daemon per database: stop it first")
        self.path = path
        self.pid = pid


@dataclass
class DaemonLock:
    """A held lock: its file and the open descriptor the flock is on."""

    path: Path
    fd: int

    def release(self) -> None:
        """Empty the file and release the lock (the file stays: removing it could race a starting daemon)."""
        try:
            os.ftruncate(self.fd, 0)
        except OSError:
            pass
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def lock_path(db_path: Path) -> Path:
    """The lock file beside the database actually used: `<database>.lock`."""
    db_path = Path(db_path).resolve()
    return db_path.with_name(db_path.name + ".lock")


def acquire_lock(db_path: Path | str, holder: str = "monitor run") -> DaemonLock | PostgresLock:
    """Take the daemon lock of `db_path` without waiting; write our PID and `holder` in it. DaemonLocked if held.

    On a PostgreSQL URL the lock is a session advisory lock of that database instead (`PostgresLock`):
    daemons on several machines sharing one database see each other's."""
    if is_database_url(db_path):
        return acquire_postgres_lock(str(db_path), holder)
    path = lock_path(db_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid, other = _read_holder(fd)
        os.close(fd)
        raise DaemonLocked(path, pid, other or "monitor run") from None
    except OSError:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n{holder}\n".encode(), 0)
    return DaemonLock(path, fd)


def _read_holder(fd: int) -> tuple[str, str]:
    """(PID, command) written by the lock's holder; it writes them just after locking: give it a moment."""
    for _ in range(20):
        lines = os.pread(fd, 256, 0).decode("utf-8", "replace").splitlines()
        if lines and lines[0].strip():
            return lines[0].strip(), (lines[1].strip() if len(lines) > 1 else "")
        time.sleep(0.05)
    return "", ""


@dataclass
class PostgresLock:
    """A held advisory lock: the connection that holds it (PostgreSQL frees it when the session ends,
    so a killed daemon's lock goes with its connection)."""

    path: str
    conn: Any

    def release(self) -> None:
        try:
            self.conn.execute(f"SELECT pg_advisory_unlock({DAEMON_LOCK_KEY})")
        except Exception:  # noqa: BLE001 - a lost connection has released the lock already
            pass
        self.conn.close()


def acquire_postgres_lock(url: str, holder: str) -> PostgresLock:
    """`pg_try_advisory_lock` on a connection of its own, named after us so a refused process can say who holds it."""
    from storage.postgres.connection import connect, redact

    conn = connect(url, application=f"policy-monitor {holder} (PID {os.getpid()})"[:63])
    where = f"advisory lock {DAEMON_LOCK_KEY} of {redact(url)}"
    if conn.execute(f"SELECT pg_try_advisory_lock({DAEMON_LOCK_KEY})").fetchone()[0]:
        return PostgresLock(where, conn)
    row = conn.execute(
        "SELECT s.application_name, s.pid, s.client_addr FROM pg_locks l JOIN pg_stat_activity s ON s.pid = l.pid"
        " WHERE l.locktype = 'advisory' AND l.objid = ? AND l.database ="
        " (SELECT oid FROM pg_database WHERE datname = current_database()) AND l.granted LIMIT 1",
        [DAEMON_LOCK_KEY]).fetchone()
    conn.close()
    name = (row[0] or "") if row else ""
    other = name.removeprefix("policy-monitor ").split(" (PID ")[0] if name.startswith("policy-monitor ") else ""
    pid = name.split(" (PID ")[-1].rstrip(")") if " (PID " in name else ""
    if row and row[2]:
        pid = f"{pid or 'unknown'} on {row[2]}"
    raise DaemonLocked(where, pid, other or "monitor run")  # type: ignore[arg-type]

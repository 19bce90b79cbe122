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


def acquire_lock(db_path: Path, holder: str = "monitor run") -> DaemonLock:
    """Take the daemon lock of `db_path` without waiting; write our PID and `holder` in it. DaemonLocked if held."""
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

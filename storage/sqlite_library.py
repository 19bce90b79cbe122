"""Process-wide settings of the SQLite library that Python's `sqlite3` module is linked with.

SQLite counts every allocation of every connection in one set of statistics guarded by one global
mutex (`SQLITE_CONFIG_MEMSTATUS`, on by default). Threads that each rank full-text matches on their
own connection then queue on that mutex: at 1M articles, ranking the 190,566 matches of 'visa' took
130 ms in one thread and 183 ms split over two threads; with the statistics off, 116 ms and 72 ms.
Nothing in the project reads the statistics (`sqlite3_memory_used` and friends).

The setting can only change while SQLite holds no connection, so the `monitor` command switches it
off first thing (`quiet_memory_statistics`), and searches split their ranking across threads only
when it is off (`memory_statistics_off`). A program that never calls it keeps SQLite's default and
gets the same results, ranked in one thread.
"""

from __future__ import annotations

import ctypes
import sqlite3
import threading
from functools import cache

_SQLITE_CONFIG_MEMSTATUS = 9
_lock = threading.Lock()


@cache
def _library() -> ctypes.CDLL | None:
    """The SQLite that `_sqlite3` uses (linked or built in), or None where its symbols cannot be reached."""
    try:
        import _sqlite3

        library = ctypes.CDLL(_sqlite3.__file__)
        library.sqlite3_memory_used.restype = ctypes.c_int64
        library.sqlite3_memory_highwater.restype = ctypes.c_int64
        library.sqlite3_memory_highwater.argtypes = [ctypes.c_int]
        for name in ("sqlite3_config", "sqlite3_shutdown", "sqlite3_initialize"):
            getattr(library, name)
    except (ImportError, OSError, AttributeError):
        return None
    return library


def quiet_memory_statistics() -> bool:
    """Switch SQLite's memory statistics off if no connection is open in this process; True if they are off.

    Call it before opening any database, at the start of a program: with connections open, SQLite
    would be left as it is and False returned. Safe to call more than once.
    """
    library = _library()
    if library is None:
        return False
    with _lock:
        if library.sqlite3_memory_used() > 0:
            return False  # something is allocated: a connection may be open, and shutting down would break it
        if library.sqlite3_memory_highwater(0) > 0:
            # The statistics are on (they counted an allocation) and nothing is held: SQLite may be shut
            # down, configured and started again.
            if library.sqlite3_shutdown() != 0:
                return False
        # Before initialisation sqlite3_config succeeds; after it (statistics already off) it refuses
        # with SQLITE_MISUSE and changes nothing.
        library.sqlite3_config(ctypes.c_int(_SQLITE_CONFIG_MEMSTATUS), ctypes.c_int(0))
        library.sqlite3_initialize()
    return memory_statistics_off()


def memory_statistics_off() -> bool:
    """True if SQLite's memory statistics are off in this process.

    A connection of its own is opened for the question: while it is open, statistics that are on count
    its memory, so a count of zero means they are off.
    """
    library = _library()
    if library is None:
        return False
    probe = sqlite3.connect(":memory:")
    try:
        return library.sqlite3_memory_used() == 0
    finally:
        probe.close()

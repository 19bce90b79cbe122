"""Where the data lives: a SQLite file (a path) or a PostgreSQL database (a URL).

`--db`, `[storage] path` and `$MONITOR_DATABASE_URL` all name a target; this module tells the two apart
without importing a database driver, so that the SQLite path never needs psycopg.
"""

from __future__ import annotations

import re
from pathlib import Path

DATABASE_URL_ENV = "MONITOR_DATABASE_URL"
"""The PostgreSQL URL used when neither `--db` nor `[storage] path` names a database."""

URL_SCHEMES = ("postgresql://", "postgres://")


def is_database_url(target: object) -> bool:
    """Whether `target` is a PostgreSQL URL (`postgresql://user@host:port/dbname`, or `postgres://`)."""
    return isinstance(target, str) and target.lower().startswith(URL_SCHEMES)


def database_target(value: str | Path) -> Path | str:
    """A PostgreSQL URL as it is (a Path would fold its '//'), anything else as a file path."""
    return value if is_database_url(value) else Path(value)


def is_postgres(handle: object) -> bool:
    """Whether a handle from `open_db` / `open_readonly` (or its `.conn`) is on PostgreSQL."""
    return getattr(handle, "backend", "sqlite") == "postgresql"


def redact(target: str | Path) -> str:
    """`target` for messages and logs: a URL without its password."""
    return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", str(target))

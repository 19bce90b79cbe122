"""A real PostgreSQL for the tests, or a skip that says why.

`.ci/run` starts Debian's PostgreSQL and exports `MONITOR_TEST_POSTGRES_URL` (an administrator's URL, e.g.
`postgresql://monitor:monitor@127.0.0.1:5432/postgres`). On a developer's machine, set it to a server you may create
databases on. Each test gets its own new database (UTF-8, character type `C.UTF-8`: CJK trigrams need it),
dropped afterwards, so tests never see each other's rows.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest

from storage.target import redact

POSTGRES_URL_ENV = "MONITOR_TEST_POSTGRES_URL"
DEFAULT_ADMIN_URL = "postgresql://monitor:monitor@127.0.0.1:5432/postgres"

_unavailable: str | None = None
_checked = False


def admin_url() -> str:
    """The URL tests connect to as an administrator (to create and drop their databases)."""
    return os.environ.get(POSTGRES_URL_ENV) or DEFAULT_ADMIN_URL


def postgres_unavailable() -> str | None:
    """Why PostgreSQL tests cannot run here, or None when a server answers. Checked once per session."""
    global _unavailable, _checked
    if _checked:
        return _unavailable
    _checked = True
    try:
        import psycopg
    except ImportError:
        _unavailable = "psycopg is not installed (pip install -e '.[postgres]')"
        return _unavailable
    try:
        with psycopg.connect(admin_url(), connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        _unavailable = (f"no PostgreSQL at {redact(admin_url())} ({first_line}); .ci/run starts one, or set "
                        f"{POSTGRES_URL_ENV} to a server where you may create databases")
    return _unavailable


def database_url(name: str) -> str:
    """The admin URL with its database name replaced by `name`."""
    parts = urlsplit(admin_url())
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def create_database(ctype: str = "C.UTF-8") -> str:
    """Create a new empty database and return its URL."""
    import psycopg

    name = f"monitor_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' "
                     f"LC_COLLATE '{ctype}' LC_CTYPE '{ctype}'")
    return database_url(name)


def drop_database(url: str) -> None:
    """Drop a database made by `create_database`, disconnecting whoever still uses it."""
    import psycopg

    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database for one test (skips where no server is reachable)."""
    reason = postgres_unavailable()
    if reason:
        pytest.skip(reason)
    url = create_database()
    try:
        yield url
    finally:
        drop_database(url)

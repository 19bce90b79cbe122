"""A psycopg 3 connection that speaks the subset of sqlite3's interface the storage functions use.

The storage modules write their SQL once, in the dialect both engines share, with `?` (or `:name`)
placeholders. `translate` turns that into what PostgreSQL reads: `%s` placeholders, `INSERT OR IGNORE`
as `ON CONFLICT DO NOTHING`, SQLite's index hints dropped, `LIKE` as `ILIKE` (SQLite's LIKE ignores
case), `RETURNING id` where the caller wants `lastrowid`. SQL a user types (`monitor sql`) is never
translated: it goes through `run_user_sql`.

Parameters are bound on the client (psycopg's ClientCursor), as sqlite3 binds them: a value's type
comes from the column it meets, so `? IS NULL` or `LIMIT ?` need no casts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from functools import lru_cache
from typing import Any

import psycopg
from psycopg import pq

from storage.db import StorageError
from storage.target import redact

WRITE_LOCK_KEY = 0x6D6F6E77  # "monw": the advisory lock a write transaction (BEGIN IMMEDIATE) takes


class PostgresError(StorageError):
    """PostgreSQL refused a statement or the connection failed; the message is one line."""


def one_line(exc: BaseException) -> str:
    """The first line of a driver's message (psycopg adds LINE/HINT lines meant for a terminal)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class Row(tuple):
    """A result row read by position or by column name, as `sqlite3.Row` is."""

    _names: dict[str, int]

    def __new__(cls, values: Sequence[Any], names: dict[str, int]) -> Row:
        row = super().__new__(cls, values)
        row._names = names
        return row

    def __getitem__(self, key: Any) -> Any:  # type: ignore[override]
        if isinstance(key, str):
            return tuple.__getitem__(self, self._names[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._names)


def _row_factory(cursor: psycopg.Cursor) -> Any:
    names = {column.name: index for index, column in enumerate(cursor.description or [])}
    return lambda values: Row(values, names)


_IGNORE = re.compile(r"^\s*INSERT\s+OR\s+IGNORE\s+INTO\b", re.IGNORECASE)
_WANTS_ID = re.compile(r"^\s*INSERT\s+INTO\s+(articles|mentions|figures|fetches)\b", re.IGNORECASE)
_REWRITES = [
    (re.compile(r"\bBEGIN\s+IMMEDIATE\b", re.IGNORECASE), "BEGIN"),
    (re.compile(r"\s+NOT\s+INDEXED\b", re.IGNORECASE), ""),
    (re.compile(r"\s+INDEXED\s+BY\s+\w+", re.IGNORECASE), ""),
    (re.compile(r"\s+COLLATE\s+NOCASE\b", re.IGNORECASE), ""),
    (re.compile(r"\bLIKE\b(?=\s)", re.IGNORECASE), "ILIKE"),
]


@lru_cache(maxsize=512)
def translate(sql: str, named: bool = False, returning_id: bool = False) -> str:
    """SQL in the storage modules' shared dialect as PostgreSQL (and psycopg's placeholders) want it."""
    ignore = bool(_IGNORE.match(sql))
    if ignore:
        sql = _IGNORE.sub("INSERT INTO", sql, count=1)
    for pattern, replacement in _REWRITES:
        sql = pattern.sub(replacement, sql)
    sql = _placeholders(sql, named)
    if ignore:
        sql += " ON CONFLICT DO NOTHING"
    if returning_id and _WANTS_ID.match(sql) and "RETURNING" not in sql.upper():
        sql += " RETURNING id"
    return sql


def _placeholders(sql: str, named: bool) -> str:
    """`?` -> `%s`, `:name` -> `%(name)s` and a literal `%` -> `%%`, leaving quoted text and `::` casts alone."""
    out: list[str] = []
    index, length = 0, len(sql)
    while index < length:
        char = sql[index]
        if char in "'\"":
            end = sql.find(char, index + 1)
            while end != -1 and end + 1 < length and sql[end + 1] == char:
                end = sql.find(char, end + 2)
            end = length - 1 if end == -1 else end
            out.append(sql[index : end + 1].replace("%", "%%"))
            index = end + 1
            continue
        if char == "?":
            out.append("%s")
        elif char == "%":
            out.append("%%")
        elif (char == ":" and named and index + 1 < length and (sql[index + 1].isalpha() or sql[index + 1] == "_")
              and (index == 0 or sql[index - 1] != ":")):
            match = re.match(r"\w+", sql[index + 1 :])
            assert match is not None
            out.append(f"%({match.group(0)})s")
            index += 1 + len(match.group(0))
            continue
        else:
            out.append(char)
        index += 1
    return "".join(out)


def _params(params: Any) -> Any:
    """sqlite3 stores a bool as 0/1 in an INTEGER column; PostgreSQL would refuse a boolean there."""
    if params is None:
        return None
    if isinstance(params, dict):
        return {key: int(value) if isinstance(value, bool) else value for key, value in params.items()}
    return [int(value) if isinstance(value, bool) else value for value in params]


class Cursor:
    """The result of one statement: rows, column description, `lastrowid` and `rowcount`."""

    def __init__(self, cursor: psycopg.Cursor, lastrowid: int | None = None) -> None:
        self._cursor = cursor
        self.lastrowid = lastrowid
        self.rowcount = cursor.rowcount

    @property
    def description(self) -> list[tuple[str, ...]] | None:
        if self._cursor.description is None:
            return None
        return [(column.name, None, None, None, None, None, None) for column in self._cursor.description]

    def fetchone(self) -> Row | None:
        return self._cursor.fetchone() if self._cursor.description is not None else None

    def fetchall(self) -> list[Row]:
        return self._cursor.fetchall() if self._cursor.description is not None else []

    def fetchmany(self, size: int) -> list[Row]:
        return self._cursor.fetchmany(size) if self._cursor.description is not None else []

    def __iter__(self) -> Iterator[Row]:
        return iter(self.fetchall())


class PostgresConnection:
    """One autocommit psycopg connection: each statement commits unless a `BEGIN` opened a transaction."""

    backend = "postgresql"

    def __init__(self, raw: psycopg.Connection, url: str, *, readonly: bool = False) -> None:
        self.raw = raw
        self.url = url
        self.readonly = readonly

    def execute(self, sql: str, params: Any = None) -> Cursor:
        named = isinstance(params, dict)
        statement = translate(sql, named, returning_id=True)
        cursor = self.raw.cursor()
        try:
            cursor.execute(statement, _params(params) if params else None)
            if statement == "BEGIN" and sql.strip().upper() != "BEGIN":
                # BEGIN IMMEDIATE: one writer at a time, as on SQLite. The storage functions read, then write,
                # in one transaction (is this URL stored? which id is newest?); serialized they need no retry.
                cursor.execute(f"SELECT pg_advisory_xact_lock({WRITE_LOCK_KEY})")
        except psycopg.Error as exc:
            raise PostgresError(one_line(exc)) from None
        lastrowid = None
        if statement.endswith(" RETURNING id") and cursor.description is not None:
            row = cursor.fetchone()
            lastrowid = int(row[0]) if row else None
        return Cursor(cursor, lastrowid)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = [_params(row) for row in rows]
        if not rows:
            return
        try:
            with self.raw.cursor() as cursor:
                cursor.executemany(translate(sql), rows)
        except psycopg.Error as exc:
            raise PostgresError(one_line(exc)) from None

    def executescript(self, script: str) -> None:
        """Run several statements as they are (a migration): no placeholders, no translation."""
        try:
            self.raw.execute(script)
        except psycopg.Error as exc:
            raise PostgresError(one_line(exc)) from None

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status != pq.TransactionStatus.IDLE

    def close(self) -> None:
        self.raw.close()

    def __enter__(self) -> PostgresConnection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class PostgresDatabase:
    """What `open_db` returns for a URL: the part of `sqlite_utils.Database` the storage functions use."""

    backend = "postgresql"

    def __init__(self, conn: PostgresConnection) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Any = None) -> Cursor:
        return self.conn.execute(sql, params)

    def close(self) -> None:
        self.conn.close()

    def __repr__(self) -> str:
        return f"<PostgresDatabase {redact(self.conn.url)}>"


def connect(url: str, *, readonly: bool = False, application: str = "policy-monitor") -> PostgresConnection:
    """Connect to `url`, refusing (StorageError, one line) a server that does not answer or a database whose
    character type is C or POSIX: there, pg_trgm sees no letters in Japanese or Korean, and a search for
    a CJK word would find nothing."""
    try:
        raw = psycopg.connect(url, autocommit=True, connect_timeout=10, application_name=application,
                              cursor_factory=psycopg.ClientCursor)
    except psycopg.Error as exc:
        raise StorageError(f"cannot connect to PostgreSQL {redact(url)}: {redact(one_line(exc))}") from None
    except Exception as exc:  # a malformed URL is a ProgrammingError or ValueError before any network
        raise StorageError(f"invalid PostgreSQL URL {redact(url)}: {redact(one_line(exc))}") from None
    raw.row_factory = _row_factory
    try:
        ctype, encoding = raw.execute(
            "SELECT datctype, pg_encoding_to_char(encoding) FROM pg_database WHERE datname = current_database()"
        ).fetchone()
        if readonly:
            raw.execute("SET default_transaction_read_only = on")
    except psycopg.Error as exc:
        raw.close()
        raise StorageError(f"cannot use PostgreSQL {redact(url)}: {one_line(exc)}") from None
    if ctype in ("C", "POSIX") or encoding != "UTF8":
        raw.close()
        raise StorageError(
            f"PostgreSQL database {redact(url)} has character type {ctype!r} and encoding {encoding}: trigram"
            " search of Japanese and Korean needs a UTF-8 locale; create it with"
            " \"createdb --encoding UTF8 --locale C.UTF-8 --template template0 NAME\"")
    return PostgresConnection(raw, url, readonly=readonly)

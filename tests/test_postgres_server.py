"""The PostgreSQL test fixture itself: a fresh UTF-8 database with a C.UTF-8 character type."""

from __future__ import annotations

import psycopg


def test_each_test_gets_an_empty_utf8_database(postgres_url: str) -> None:
    with psycopg.connect(postgres_url) as conn:
        encoding, ctype = conn.execute(
            "SELECT pg_encoding_to_char(encoding), datctype FROM pg_database WHERE datname = current_database()"
        ).fetchone()
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()[0]
    assert (encoding, ctype, tables) == ("UTF8", "C.UTF-8", 0)

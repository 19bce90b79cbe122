"""Read-only questions behind the analyst's surface: figure rows, weekly mentions, what a report counts."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from storage.target import is_postgres


def _dicts(cursor: sqlite3.Cursor) -> list[dict[str, Any]]:
    columns = [d[0] for d in cursor.description]
    return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def figure_rows(conn: sqlite3.Connection, visas: Sequence[str], unit: str | None = None,
                since_year: int | None = None, metric: str | None = None) -> list[dict[str, Any]]:
    """Every stored figure of the given visa ids with a year, with its article's title, link and source.

    Ordered by year, unit and value, so equal facts from different articles sit next to each other.
    """
    if not visas:
        return []
    where = [f"f.visa IN ({', '.join('?' * len(visas))})", "f.year IS NOT NULL"]
    params: list[Any] = list(visas)
    if unit is not None:
        where.append("f.unit = ?")
        params.append(unit)
    if since_year is not None:
        where.append("f.year >= ?")
        params.append(since_year)
    if metric is not None:
        where.append("f.metric = ?")
        params.append(metric)
    cursor = conn.execute(
        f"""
        SELECT f.id, f.article_id, f.value, f.unit, f.metric, f.year, f.visa, f.text, f.sentence,
               a.title, coalesce(a.link, a.url) AS link, a.source, a.published_at
        FROM figures f JOIN articles a ON a.id = f.article_id
        WHERE {' AND '.join(where)}
        ORDER BY f.year, f.unit, f.value, a.published_at, f.article_id
        """,
        params,
    )
    return _dicts(cursor)


def visas_with_most_figures(conn: sqlite3.Connection, since: str, limit: int = 3) -> list[tuple[str, int]]:
    """(visa, figures) for the visas whose figures (with a year) appear most in articles fetched since `since`."""
    cursor = conn.execute(
        """
        SELECT f.visa, count(*) AS n FROM figures f JOIN articles a ON a.id = f.article_id
        WHERE f.visa IS NOT NULL AND f.year IS NOT NULL AND coalesce(a.published_at, a.fetched_at) >= ?
        GROUP BY f.visa ORDER BY n DESC, f.visa LIMIT ?
        """,
        [since, limit],
    )
    return [(visa, n) for visa, n in cursor.fetchall()]


def period_counts(conn: sqlite3.Connection, since: str) -> dict[str, int]:
    """Articles dated since `since` (published, else fetched) and the sources they came from."""
    row = conn.execute(
        "SELECT count(*), count(DISTINCT source) FROM articles WHERE coalesce(published_at, fetched_at) >= ?",
        [since],
    ).fetchone()
    return {"articles": row[0], "sources": row[1]}


def top_labels(conn: sqlite3.Connection, kind: str, since: str, limit: int = 8) -> list[tuple[str, int]]:
    """(label, articles) for the visas or sectors (`kind`) mentioned in most articles since `since`."""
    cursor = conn.execute(
        """
        SELECT m.label, count(DISTINCT m.article_id) AS n FROM mentions m JOIN articles a ON a.id = m.article_id
        WHERE m.kind = ? AND coalesce(a.published_at, a.fetched_at) >= ?
        GROUP BY m.label ORDER BY n DESC, m.label LIMIT ?
        """,
        [kind, since, limit],
    )
    return [(label, n) for label, n in cursor.fetchall()]


def mentions_per_week(conn: sqlite3.Connection, kind: str, labels: Sequence[str],
                      since: str) -> list[dict[str, Any]]:
    """Rows (week, label, articles): articles mentioning each label, by the Monday starting their week."""
    if not labels:
        return []
    if is_postgres(conn):
        from storage.postgres.sql import mentions_per_week as postgres_weeks

        return postgres_weeks(conn, kind, labels, since)
    cursor = conn.execute(
        f"""
        SELECT date(substr(coalesce(a.published_at, a.fetched_at), 1, 10), 'weekday 0', '-6 days') AS week,
               m.label, count(DISTINCT m.article_id) AS articles
        FROM mentions m JOIN articles a ON a.id = m.article_id
        WHERE m.kind = ? AND m.label IN ({', '.join('?' * len(labels))})
          AND coalesce(a.published_at, a.fetched_at) >= ?
        GROUP BY week, m.label ORDER BY week, m.label
        """,
        [kind, *labels, since],
    )
    return _dicts(cursor)


def newest_articles_by_country(conn: sqlite3.Connection, since: str, per_country: int = 5) -> list[dict[str, Any]]:
    """The newest articles since `since`, at most `per_country` for each source country, ordered by country."""
    cursor = conn.execute(
        """
        SELECT country, id, title, link, source, lang, published FROM (
          SELECT coalesce(a.country, '') AS country, a.id, a.title, coalesce(a.link, a.url) AS link, a.source,
                 a.lang, coalesce(a.published_at, a.fetched_at) AS published,
                 row_number() OVER (PARTITION BY coalesce(a.country, '')
                                    ORDER BY coalesce(a.published_at, a.fetched_at) DESC, a.id DESC) AS rank
          FROM articles a WHERE coalesce(a.published_at, a.fetched_at) >= ?
        ) AS ranked WHERE rank <= ? ORDER BY country = '', country, published DESC, id DESC
        """,
        [since, per_country],
    )
    return _dicts(cursor)


def alerts_sent_since(conn: sqlite3.Connection, since: str) -> list[dict[str, Any]]:
    """Per alert rule: how many articles it sent since `since` and when it last sent."""
    cursor = conn.execute(
        "SELECT rule, count(*) AS articles, max(sent_at) AS last_sent FROM alerts_sent WHERE sent_at >= ?"
        " GROUP BY rule ORDER BY articles DESC, rule",
        [since],
    )
    return _dicts(cursor)


def failing_sources(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Sources whose last attempts failed: name, failures in a row, last error and when, last success."""
    cursor = conn.execute(
        "SELECT name, consecutive_failures, last_error, last_error_at, last_success_at FROM sources"
        " WHERE consecutive_failures > 0 ORDER BY consecutive_failures DESC, name"
    )
    return _dicts(cursor)

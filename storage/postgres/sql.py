"""PostgreSQL's own SQL for the few read-only questions whose SQLite form uses SQLite's date functions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# ISO 8601 text `?` minus a number of days, as the ISO text every timestamp column holds.
_DAYS_BEFORE = ("to_char((?::timestamptz - interval '{days} days') AT TIME ZONE 'UTC',"
                " 'YYYY-MM-DD\"T\"HH24:MI:SS+00:00')")


def source_health_rows(conn: Any, now_iso: str) -> list[dict[str, Any]]:
    """`storage.queries.source_health_rows` on PostgreSQL."""
    counts = ",".join(
        f" (SELECT count(*) FROM articles a WHERE a.source = s.name"
        f" AND a.fetched_at >= {_DAYS_BEFORE.format(days=days)}) AS new_{days}d" for days in (7, 30, 90))
    cursor = conn.execute(
        f"SELECT s.*,{counts}, (SELECT max(a.fetched_at) FROM articles a WHERE a.source = s.name) AS last_article_at"
        " FROM sources s ORDER BY s.name", [now_iso, now_iso, now_iso])
    columns = [d[0] for d in cursor.description]
    return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def mentions_per_week(conn: Any, kind: str, labels: Sequence[str], since: str) -> list[dict[str, Any]]:
    """`storage.analyst.mentions_per_week` on PostgreSQL (weeks start on Monday, as there)."""
    cursor = conn.execute(
        f"""
        SELECT to_char(date_trunc('week', substr(coalesce(a.published_at, a.fetched_at), 1, 10)::date),
                       'YYYY-MM-DD') AS week,
               m.label, count(DISTINCT m.article_id) AS articles
        FROM mentions m JOIN articles a ON a.id = m.article_id
        WHERE m.kind = ? AND m.label IN ({', '.join('?' * len(labels))})
          AND coalesce(a.published_at, a.fetched_at) >= ?
        GROUP BY week, m.label ORDER BY week, m.label
        """,
        [kind, *labels, since],
    )
    columns = [d[0] for d in cursor.description]
    return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]

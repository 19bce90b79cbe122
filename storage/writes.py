"""Everything that changes the database. Each public function is one transaction."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import sqlite_utils

from storage.db import utc_now

_WHITESPACE = re.compile(r"\s+")

MIN_CHARS_FOR_CONTENT_DEDUP = 200
"""Below this much text, equal content says little (two releases titled "Notice" with no body are not one
story), so only the URL decides whether an article is already stored. Feed summaries never decide either:
distinct documents often share a boilerplate abstract (the Federal Register's "Changes in Flood Hazard
Determinations")."""


@contextmanager
def transaction(db: sqlite_utils.Database) -> Iterator[None]:
    """Run the block in one write transaction: all of it is stored, or none of it."""
    db.conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        db.conn.execute("COMMIT")  # where a full disk shows in WAL mode: the pages are written now
    except BaseException:
        # SQLite may have rolled back already (SQLITE_FULL, SQLITE_IOERR): a second ROLLBACK would
        # raise and hide the error that matters.
        if db.conn.in_transaction:
            db.conn.execute("ROLLBACK")
        raise


def content_hash(title: str | None, text: str) -> str:
    """A hash of the article's words that ignores spacing and case, to spot the same story twice."""
    normal = _WHITESPACE.sub(" ", f"{title or ''}\n{text}").strip().casefold()
    return hashlib.sha256(normal.encode("utf-8")).hexdigest()


def known_urls(db: sqlite_utils.Database, urls: Iterable[str]) -> set[str]:
    """Which of `urls` are already stored (as an article's URL or as a link that led to one)."""
    wanted = list(dict.fromkeys(urls))
    found: set[str] = set()
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        marks = ",".join("?" * len(chunk))
        found.update(
            row[0] for row in db.execute(f"SELECT url FROM article_urls WHERE url IN ({marks})", chunk)
        )
    return found


def store_article(
    db: sqlite_utils.Database,
    article: dict[str, Any],
    mentions: Sequence[dict[str, Any]],
    figures: Sequence[dict[str, Any]],
    urls: Sequence[str] = (),
) -> tuple[int, bool]:
    """Store an article with its tags in one transaction; return (article id, whether it is new).

    `article` has the `articles` columns (url, title, text, content_hash, ...).
    `urls` are further URLs that lead to it (the feed's link, the URL before
    redirects): they are remembered so that none is fetched again. An article
    whose URL or content hash is already stored is not stored twice: its URLs
    are added to the existing one, which is returned with `False`.
    """
    with transaction(db):
        return _store_one(db, article, mentions, figures, urls, utc_now())


def store_articles(
    db: sqlite_utils.Database,
    prepared: Iterable[tuple[dict[str, Any], Sequence[dict[str, Any]], Sequence[dict[str, Any]], Sequence[str]]],
) -> list[tuple[int, bool]]:
    """`store_article` for many articles (article, mentions, figures, urls) in ONE transaction: a bulk load
    (a backfill's chunk) that is stored whole or not at all. Deduplicated exactly as `store_article`,
    against the database and against the articles before it in `prepared`; (id, is new) of each, in order."""
    now = utc_now()
    with transaction(db):
        return [_store_one(db, article, mentions, figures, urls, now)
                for article, mentions, figures, urls in prepared]


def _store_one(db: sqlite_utils.Database, article: dict[str, Any], mentions: Sequence[dict[str, Any]],
               figures: Sequence[dict[str, Any]], urls: Sequence[str], now: str) -> tuple[int, bool]:
    """The body of `store_article`, inside the caller's transaction."""
    all_urls = list(dict.fromkeys([article["url"], *urls]))
    same_story_evidence = (article.get("text_origin", "page") == "page"
                           and len(article.get("text") or "") >= MIN_CHARS_FOR_CONTENT_DEDUP)
    digest = article["content_hash"] if same_story_evidence else None
    existing = _existing_article(db, all_urls, digest)
    if existing is not None:
        _remember_urls(db, existing, all_urls, article.get("source"), now)
        return existing, False
    db.execute(f"DELETE FROM deferred_items WHERE url IN ({','.join('?' * len(all_urls))})", all_urls)
    row = {"fetched_at": now, **article}
    columns = ", ".join(f'"{name}"' for name in row)
    marks = ", ".join("?" * len(row))
    cursor = db.execute(f"INSERT INTO articles ({columns}) VALUES ({marks})", list(row.values()))
    article_id = int(cursor.lastrowid)
    _remember_urls(db, article_id, all_urls, article.get("source"), now)
    _insert_tags(db, article_id, mentions, figures)
    return article_id, True


def note_deferral(db: sqlite_utils.Database, url: str, source: str | None, error: str) -> int:
    """Count one more cycle in which `url` had to wait; return how many cycles it has waited."""
    with transaction(db):
        db.execute(
            "INSERT INTO deferred_items (url, source, attempts, last_error, updated_at) VALUES (?, ?, 1, ?, ?)"
            " ON CONFLICT(url) DO UPDATE SET attempts = deferred_items.attempts + 1,"
            " last_error = excluded.last_error, updated_at = excluded.updated_at",
            [url, source, error, utc_now()],
        )
        return db.execute("SELECT attempts FROM deferred_items WHERE url = ?", [url]).fetchone()[0]


def replace_tags(
    db: sqlite_utils.Database,
    article_id: int,
    mentions: Sequence[dict[str, Any]],
    figures: Sequence[dict[str, Any]],
) -> None:
    """Swap an article's mentions and figures for new ones, atomically."""
    with transaction(db):
        db.execute("DELETE FROM mentions WHERE article_id = ?", [article_id])
        db.execute("DELETE FROM figures WHERE article_id = ?", [article_id])
        _insert_tags(db, article_id, mentions, figures)


def _existing_article(db: sqlite_utils.Database, urls: Sequence[str], digest: str | None) -> int | None:
    marks = ",".join("?" * len(urls))
    row = db.execute(f"SELECT article_id FROM article_urls WHERE url IN ({marks}) LIMIT 1", list(urls)).fetchone()
    if row is None and digest is not None:
        # Both sides must be full page text: a stored feed summary says as little as a new one.
        row = db.execute(
            "SELECT id FROM articles WHERE content_hash = ? AND text_origin = 'page' AND length(text) >= ? LIMIT 1",
            [digest, MIN_CHARS_FOR_CONTENT_DEDUP],
        ).fetchone()
    return None if row is None else int(row[0])


def _remember_urls(
    db: sqlite_utils.Database, article_id: int, urls: Sequence[str], source: str | None, now: str
) -> None:
    db.conn.executemany(
        "INSERT OR IGNORE INTO article_urls (url, article_id, source, seen_at) VALUES (?, ?, ?, ?)",
        [(url, article_id, source, now) for url in urls],
    )


def _insert_tags(
    db: sqlite_utils.Database,
    article_id: int,
    mentions: Sequence[dict[str, Any]],
    figures: Sequence[dict[str, Any]],
) -> None:
    db.conn.executemany(
        'INSERT INTO mentions (article_id, kind, label, country, text, start, "end", sentence)'
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (article_id, m["kind"], m["label"], m.get("country"), m["text"], m["start"], m["end"],
             m.get("sentence"))
            for m in mentions
        ],
    )
    db.conn.executemany(
        'INSERT INTO figures (article_id, value, unit, year, visa, text, start, "end", sentence, metric)'
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (article_id, f["value"], f["unit"], f.get("year"), f.get("visa"), f["text"], f["start"], f["end"],
             f.get("sentence"), f.get("metric"))
            for f in figures
        ],
    )


def record_fetches(db: sqlite_utils.Database, source: str | None, records: Iterable[dict[str, Any]]) -> None:
    """Append HTTP request records (url, status, error, message, fetched_at, bytes, elapsed) to `fetches`."""
    rows = [
        (r["url"], source, r.get("status"), r.get("error") or "", r.get("message") or "", r["fetched_at"],
         r.get("bytes") or 0, r.get("elapsed") or 0.0)
        for r in records
    ]
    if not rows:
        return
    with transaction(db):
        db.conn.executemany(
            "INSERT INTO fetches (url, source, status, error, message, fetched_at, bytes, elapsed)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )


def save_validators(
    db: sqlite_utils.Database,
    url: str,
    *,
    etag: str | None,
    last_modified: str | None,
    content_hash: str | None,
    unchanged_200s: int,
    settings: str | None = None,
) -> None:
    """Remember a URL's HTTP validators, body hash and the settings it was read with, for the next GET."""
    with transaction(db):
        db.execute(
            "INSERT INTO http_cache (url, etag, last_modified, content_hash, unchanged_200s, settings, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(url) DO UPDATE SET etag = excluded.etag,"
            " last_modified = excluded.last_modified, content_hash = excluded.content_hash,"
            " unchanged_200s = excluded.unchanged_200s, settings = excluded.settings,"
            " updated_at = excluded.updated_at",
            [url, etag, last_modified, content_hash, unchanged_200s, settings, utc_now()],
        )


def upsert_source(db: sqlite_utils.Database, source: dict[str, Any]) -> None:
    """Create or update a source's configured fields (name, kind, url, country, lang, enabled)."""
    fields = ["name", "kind", "url", "country", "lang", "enabled"]
    values = [source.get(name) for name in fields]
    updates = ", ".join(f"{name} = excluded.{name}" for name in fields[1:])
    with transaction(db):
        db.execute(
            f"INSERT INTO sources ({', '.join(fields)}) VALUES ({', '.join('?' * len(fields))})"
            f" ON CONFLICT(name) DO UPDATE SET {updates}",
            values,
        )


def record_source_failure(
    db: sqlite_utils.Database, name: str, error: str, now: str, *, broken_reason: str | None = None
) -> None:
    """Count one more failed cycle of source `name` (atomically: a daemon and a CLI crawl may overlap)."""
    with transaction(db):
        db.execute(
            "UPDATE sources SET consecutive_failures = consecutive_failures + 1, last_error = ?,"
            " last_error_at = ?, last_attempt_at = ?, broken = CASE WHEN ? IS NULL THEN broken ELSE 1 END,"
            " broken_reason = coalesce(?, broken_reason) WHERE name = ?",
            [error, now, now, broken_reason, broken_reason, name],
        )


def update_source_health(db: sqlite_utils.Database, name: str, **fields: Any) -> None:
    """Set health columns of source `name` (consecutive_failures, last_success_at, broken, ...)."""
    if not fields:
        return
    assignments = ", ".join(f"{column} = ?" for column in fields)
    with transaction(db):
        db.execute(f"UPDATE sources SET {assignments} WHERE name = ?", [*fields.values(), name])

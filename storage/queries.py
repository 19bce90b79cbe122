"""Read-only queries: SQL from users, full-text search, and what the crawl needs to look up."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

HIGHLIGHT_START, HIGHLIGHT_END = "<mark>", "</mark>"

# Han, kana and Hangul: scripts unicode61 cannot split into words.
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7a3\uff66-\uff9f]")
_QUERY_TERM = re.compile(r'"[^"]*"|[^\s()]+')
_OPERATORS = {"AND", "OR", "NOT", "NEAR"}


class QueryError(ValueError):
    """A user's SQL or search query is not valid; the message is SQLite's, on one line."""


def run_sql(conn: sqlite3.Connection, sql: str, params: dict[str, Any] | None = None) -> tuple[list[str], list[tuple]]:
    """Run one statement on a read-only connection; return (column names, rows)."""
    try:
        cursor = conn.execute(sql, params or {})
        rows = [tuple(row) for row in cursor.fetchall()]
    except sqlite3.Warning as exc:
        raise QueryError(str(exc)) from None
    except sqlite3.Error as exc:
        message = str(exc)
        if "readonly" in message or "read-only" in message:
            message = "the database is opened read-only: 'monitor sql' runs queries, not changes"
        raise QueryError(message) from None
    columns = [d[0] for d in cursor.description or []]
    return columns, rows


@dataclass
class SearchFilters:
    """Conditions on tags and metadata that narrow a search (all optional, combined with AND)."""

    visa: str | None = None
    """A visa id such as 'KR:E-7', or 'KR:*' for any visa of a country."""
    sector: str | None = None
    visa_subtypes: tuple[str, ...] = ()
    """Ids that count as `visa` too, its sub-types (JP:HSP-1B for JP:HSP): the caller knows the taxonomy."""
    sector_subtypes: tuple[str, ...] = ()
    """Ids that count as `sector` too, its finer fields (batteries for other)."""
    country: str | None = None
    lang: str | None = None
    since: str | None = None
    """ISO date or datetime: articles published (or, undated, fetched) at or after it."""
    article_ids: tuple[int, ...] | None = None
    min_article_id: int | None = None


def fts_match_clause(query: str) -> tuple[str, list[Any]]:
    """SQL condition on articles `a` for an FTS5 `query`, choosing the index that suits its script.

    Word queries use the unicode61 index (phrases, prefixes, NEAR). Queries
    with Japanese or Korean also use the trigram index, which finds terms of
    three or more characters inside unsegmented text: an article matches if
    either index matches, so `"top tier" OR 톱티어` finds both spellings.
    Shorter CJK terms fall back to a substring scan.
    """
    words = "a.id IN (SELECT rowid FROM articles_fts WHERE articles_fts MATCH ?)"
    if not _CJK.search(query):
        return words, [query]
    if all(len(term.rstrip("*")) >= 3 for term in _query_terms(query)):
        trigrams = "a.id IN (SELECT rowid FROM articles_fts_cjk WHERE articles_fts_cjk MATCH ?)"
        return f"({words} OR {trigrams})", [query, query]
    return _substring_condition(query)


_HAYSTACK = "(coalesce(a.title, '') || ' ' || a.text) LIKE ? ESCAPE '\\'"


def _substring_condition(query: str) -> tuple[str, list[Any]]:
    """SQL for a query with one- or two-character CJK terms, which no index can find: a substring scan
    that keeps FTS5's meaning of AND, OR and NOT (upper case only, as in FTS5): terms side by side bind
    tightest (`a NOT b c` is a AND NOT (b AND c)), then NOT, then AND, then OR."""
    if any(mark in query for mark in "()*^") or re.search(r"\bNEAR\b", query):
        raise QueryError("Japanese and Korean terms of one or two characters combine with AND, OR and NOT "
                         "only; use terms of three or more characters for NEAR, prefixes and parentheses")
    if query.count('"') % 2:
        raise QueryError(f"invalid search query {query!r}: unbalanced quote")
    # OR-groups of factors; a factor is (negated, terms ANDed together).
    groups: list[list[tuple[bool, list[str]]]] = [[]]
    expect_term, negate = True, False
    for token in _QUERY_TERM.findall(query):
        if token in ("AND", "OR", "NOT"):
            if expect_term:
                raise QueryError(f"invalid search query {query!r}: {token} needs a term before it")
            if token == "OR":
                groups.append([])
            negate, expect_term = token == "NOT", True
            continue
        term = token.strip('"').replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        factors = groups[-1]
        if negate or not factors or expect_term:
            factors.append((negate, [f"%{term}%"]))
        else:
            factors[-1][1].append(f"%{term}%")  # side by side: joins the factor before it
        expect_term, negate = False, False
    if expect_term:
        raise QueryError(f"invalid search query {query!r}: an operator without a term after it")
    sql = " OR ".join(
        "(" + " AND ".join(("NOT " if negated else "") + "(" + " AND ".join(_HAYSTACK for _ in terms) + ")"
                           for negated, terms in group) + ")"
        for group in groups
    )
    return f"({sql})", [pattern for group in groups for _, terms in group for pattern in terms]


def _query_terms(query: str) -> list[str]:
    """The terms and phrases of an FTS5 query, without quotes and operators."""
    return [t.strip('"') for t in _QUERY_TERM.findall(query) if t not in _OPERATORS]


def validate_fts_query(query: str) -> str | None:
    """Return why an FTS5 query cannot be run (SQLite's complaint, or ours), or None when it can."""
    try:
        fts_match_clause(query)
    except QueryError as exc:
        return str(exc)
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute("CREATE VIRTUAL TABLE t USING fts5(x)")
        conn.execute("CREATE VIRTUAL TABLE c USING fts5(x, tokenize='trigram')")
        table = "c" if _CJK.search(query) else "t"
        conn.execute(f"SELECT * FROM {table} WHERE {table} MATCH ?", [query]).fetchall()
    except sqlite3.Error as exc:
        return str(exc)
    finally:
        conn.close()
    return None


def filter_clauses(filters: SearchFilters) -> tuple[list[str], list[Any]]:
    """SQL conditions on articles `a` for `filters`."""
    clauses: list[str] = []
    params: list[Any] = []
    if filters.visa:
        if filters.visa.endswith("*"):
            clauses.append(
                "EXISTS (SELECT 1 FROM mentions m WHERE m.article_id = a.id AND m.kind = 'visa'"
                " AND m.label LIKE ? ESCAPE '\\')"
            )
            params.append(filters.visa[:-1].replace("%", "\\%").replace("_", "\\_") + "%")
        else:
            labels = [filters.visa, *filters.visa_subtypes]
            clauses.append(
                "EXISTS (SELECT 1 FROM mentions m WHERE m.article_id = a.id AND m.kind = 'visa'"
                f" AND m.label IN ({','.join('?' * len(labels))}))"
            )
            params += labels
    if filters.sector:
        labels = [filters.sector, *filters.sector_subtypes]
        clauses.append(
            "EXISTS (SELECT 1 FROM mentions m WHERE m.article_id = a.id AND m.kind = 'sector'"
            f" AND m.label IN ({','.join('?' * len(labels))}))"
        )
        params += labels
    if filters.country:
        country = filters.country.upper()
        clauses.append(
            "(a.country = ? OR EXISTS (SELECT 1 FROM mentions m WHERE m.article_id = a.id AND ("
            "(m.kind = 'country' AND m.label = ?) OR (m.kind = 'visa' AND m.country = ?))))"
        )
        params += [country, country, country]
    if filters.lang:
        clauses.append("a.lang = ?")
        params.append(filters.lang)
    if filters.since:
        clauses.append("coalesce(a.published_at, a.fetched_at) >= ?")
        params.append(filters.since)
    if filters.article_ids is not None:
        clauses.append(f"a.id IN ({','.join('?' * len(filters.article_ids)) or 'NULL'})")
        params += list(filters.article_ids)
    if filters.min_article_id is not None:
        clauses.append("a.id > ?")
        params.append(filters.min_article_id)
    return clauses, params


def search_articles(
    conn: sqlite3.Connection, query: str = "", filters: SearchFilters | None = None, limit: int = 20
) -> list[dict[str, Any]]:
    """Articles matching an FTS5 `query` and `filters`, best first, each with a highlighted `snippet`.

    Word queries are ranked by bm25 (title weighing five times the text) with SQLite's own snippets;
    queries in Japanese or Korean, and no query at all, list the newest first.
    """
    clauses, params = filter_clauses(filters or SearchFilters())
    query = query.strip()
    columns = "a.id, a.title, a.url, a.source, a.published_at, a.lang, a.text_origin"
    if query and not _CJK.search(query):
        snippet = f"snippet(articles_fts, -1, '{HIGHLIGHT_START}', '{HIGHLIGHT_END}', '…', 24)"
        sql = (f"SELECT {columns}, {snippet}, bm25(articles_fts, 5.0, 1.0) AS rank"
               " FROM articles_fts JOIN articles a ON a.id = articles_fts.rowid")
        clauses, params = ["articles_fts MATCH ?", *clauses], [query, *params]
        order = "rank"
    else:
        sql = f"SELECT {columns}, a.text, 0 AS rank FROM articles a"
        if query:
            match_sql, match_params = fts_match_clause(query)
            clauses, params = [match_sql, *clauses], [*match_params, *params]
        order = "coalesce(a.published_at, a.fetched_at) DESC, a.id DESC"
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    try:
        rows = conn.execute(f"{sql}{where} ORDER BY {order} LIMIT ?", [*params, limit]).fetchall()
    except sqlite3.OperationalError as exc:
        raise QueryError(f"invalid search query {query!r}: {exc}") from None
    names = ("id", "title", "url", "source", "published_at", "lang", "text_origin", "snippet", "rank")
    results = [dict(zip(names, row, strict=True)) for row in rows]
    for result in results:
        if not query or _CJK.search(query):
            result["snippet"] = _substring_snippet(result["snippet"] or "", query)
        # Snippets are read on one line, in a table cell or a mail.
        result["snippet"] = " ".join(result["snippet"].split())
    return results


def _substring_snippet(text: str, query: str, width: int = 60) -> str:
    """A snippet of `text` around the first query term found, highlighted (for queries no index ranks)."""
    for term in filter(None, (t.rstrip("*") for t in _query_terms(query))):
        at = text.find(term)
        if at >= 0:
            start, end = max(0, at - width), min(len(text), at + len(term) + width)
            return (("…" if start else "") + text[start:at] + HIGHLIGHT_START + term + HIGHLIGHT_END
                    + text[at + len(term) : end] + ("…" if end < len(text) else ""))
    return text[: 2 * width]


def article_tags(conn: sqlite3.Connection, article_id: int) -> dict[str, list[dict[str, Any]]]:
    """An article's mentions grouped by kind, and its figures."""
    tags: dict[str, list[dict[str, Any]]] = {"visa": [], "sector": [], "country": [], "org": [], "figures": []}
    cursor = conn.execute(
        'SELECT kind, label, country, text, start, "end" FROM mentions WHERE article_id = ? ORDER BY start',
        [article_id],
    )
    for kind, label, country, text, start, end in cursor:
        tags[kind].append({"label": label, "country": country, "text": text, "start": start, "end": end})
    cursor = conn.execute(
        'SELECT value, unit, year, visa, text, start, "end" FROM figures WHERE article_id = ? ORDER BY start',
        [article_id],
    )
    for value, unit, year, visa, text, start, end in cursor:
        tags["figures"].append(
            {"value": value, "unit": unit, "year": year, "visa": visa, "text": text, "start": start, "end": end}
        )
    return tags


def http_validators(conn: sqlite3.Connection, url: str) -> dict[str, Any] | None:
    """The stored ETag, Last-Modified, body hash, unchanged-200 count, settings and time for `url`, if any."""
    columns = ("etag", "last_modified", "content_hash", "unchanged_200s", "settings", "updated_at")
    row = conn.execute(f"SELECT {', '.join(columns)} FROM http_cache WHERE url = ?", [url]).fetchone()
    return None if row is None else dict(zip(columns, row, strict=True))


def iter_articles_for_tagging(
    conn: sqlite3.Connection, batch: int = 200
) -> Iterator[tuple[int, str, str | None, str | None]]:
    """Yield (id, text, lang, source country) of every stored article, in id order, a batch at a time."""
    last = 0
    while True:
        rows = conn.execute(
            "SELECT id, text, lang, country FROM articles WHERE id > ? ORDER BY id LIMIT ?",
            [last, batch],
        ).fetchall()
        if not rows:
            return
        for article_id, text, lang, country in rows:
            yield article_id, text, lang, country
            last = article_id


def count_articles(conn: sqlite3.Connection) -> int:
    return conn.execute("SELECT count(*) FROM articles").fetchone()[0]


def source_health_rows(conn: sqlite3.Connection, now_iso: str) -> list[dict[str, Any]]:
    """Every source's stored health with its new-article counts over 7, 30 and 90 days before `now_iso`."""
    cursor = conn.execute(
        """
        SELECT s.*,
          (SELECT count(*) FROM articles a WHERE a.source = s.name
             AND a.fetched_at >= strftime('%Y-%m-%dT%H:%M:%S+00:00', ?, '-7 days')) AS new_7d,
          (SELECT count(*) FROM articles a WHERE a.source = s.name
             AND a.fetched_at >= strftime('%Y-%m-%dT%H:%M:%S+00:00', ?, '-30 days')) AS new_30d,
          (SELECT count(*) FROM articles a WHERE a.source = s.name
             AND a.fetched_at >= strftime('%Y-%m-%dT%H:%M:%S+00:00', ?, '-90 days')) AS new_90d,
          (SELECT max(a.fetched_at) FROM articles a WHERE a.source = s.name) AS last_article_at
        FROM sources s ORDER BY s.name
        """,
        [now_iso, now_iso, now_iso],
    )
    columns = [d[0] for d in cursor.description]
    return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]

"""Read-only queries: SQL from users, full-text search, and what the crawl needs to look up."""

from __future__ import annotations

import math
import os
import re
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from storage.sqlite_library import memory_statistics_off
from storage.target import is_postgres

HIGHLIGHT_START, HIGHLIGHT_END = "<mark>", "</mark>"

# Han, kana and Hangul: scripts unicode61 cannot split into words.
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7a3\uff66-\uff9f]")
_QUERY_TERM = re.compile(r'"[^"]*"|[^\s()]+')
_OPERATORS = {"AND", "OR", "NOT", "NEAR"}
# What `articles_cjk_grams` indexes (the ranges of schema migration 8's GLOB), and what puts an article in
# the trigram index `articles_fts_cjk` (migration 2's GLOB).
_GRAM_CHARS = "\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af\uff66-\uff9f"
_GRAM_RUN = re.compile(f"[{_GRAM_CHARS}]+")
_GRAM_TERM = re.compile(f"[{_GRAM_CHARS}]{{1,2}}")
_IN_TRIGRAM_INDEX = re.compile("[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")

RANKED_COUNT_CAP = 300000
"""Matches of a word query counted at most, to weigh reading a filter's index against checking each match."""
CANDIDATE_LIMIT = 4000
"""A condition that fewer articles than this meet drives a search: those articles are read and the other
conditions checked on them. Otherwise articles are read newest first (FTS matches, for ranked word
queries) and checked until enough match, which stops early because each condition is met by many."""
RANK_FIRST_SHARE = 0.1
"""A word query whose every filter is met by at least this share of the articles ranks its matches
first and checks the filters on the best ones only (`_rank_then_filter`)."""
RANK_FIRST_MAX_READ = 20000
"""The most best matches `_rank_then_filter` reads; filters that would need more are checked first."""
RANK_PART_MATCHES = 25000
"""Matches of a word query ranked in one thread at most, when SQLite lets threads run side by side
(`storage.sqlite_library`): a query with more is ranked in parts of the rowid range, one thread and
connection each, up to one part per CPU. Below about this many, a thread and a connection cost more
than half the ranking saves."""
RANK_MAX_PARTS = 4


class QueryError(ValueError):
    """A user's SQL or search query is not valid; the message is SQLite's, on one line."""


def run_sql(conn: sqlite3.Connection, sql: str, params: dict[str, Any] | None = None) -> tuple[list[str], list[tuple]]:
    """Run one statement on a read-only connection; return (column names, rows)."""
    if is_postgres(conn):
        from storage.postgres.search import run_sql as run_postgres_sql

        return run_postgres_sql(conn, sql, params)
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


def cjk_grams(title: str | None, text: str | None) -> str:
    """The words `articles_cjk_grams` indexes for an article, space-separated: every distinct character and
    pair of adjacent characters within its runs of kana, Han and Hangul (title and text apart).

    Any one- or two-character term of those scripts found by a substring test is one of these words, so the
    index finds exactly the articles the substring test would, without reading them.
    """
    grams: set[str] = set()
    for part in (title, text):
        for run in _GRAM_RUN.findall(part or ""):
            grams.update(run)
            grams.update(run[i : i + 2] for i in range(len(run) - 1))
    return " ".join(sorted(grams))


@dataclass
class _Condition:
    """One condition of a search: how to check it on an article, and where an index lists its articles."""

    check: str
    """SQL on articles `a`, cheap to evaluate for one row."""
    params: list[Any]
    sources: list[tuple[str, list[Any]]] = field(default_factory=list)
    """SELECTs of article ids whose union holds every article meeting `check` (none: no index can tell)."""
    exact: bool = True
    """Whether that union is exactly the articles meeting `check` (so they need no check)."""
    costly: bool = False
    """Whether `check` costs an FTS lookup: when many articles are read, reading the sources once is cheaper."""
    on_id: bool = False
    """Whether `check` reads no column of `a` but its id (so it needs no read of the article's row)."""


def fts_match_clause(query: str) -> tuple[str, list[Any]]:
    """SQL condition on articles `a` for an FTS5 `query`, choosing the index that suits its script.

    Word queries use the unicode61 index (phrases, prefixes, NEAR). Queries
    with Japanese or Korean also use the trigram index, which finds terms of
    three or more characters inside unsegmented text: an article matches if
    either index matches, so `"top tier" OR 톱티어` finds both spellings.
    Shorter CJK terms are a substring test (`search_articles` narrows it
    first with the index of one- and two-character CJK words).
    """
    words = "a.id IN (SELECT rowid FROM articles_fts WHERE articles_fts MATCH ?)"
    if not _CJK.search(query):
        return words, [query]
    if _trigram_query(query):
        trigrams = "a.id IN (SELECT rowid FROM articles_fts_cjk WHERE articles_fts_cjk MATCH ?)"
        return f"({words} OR {trigrams})", [query, query]
    return _substring_condition(query)


def _trigram_query(query: str) -> bool:
    return all(len(term.rstrip("*")) >= 3 for term in _query_terms(query))


_WORDS_SOURCE = "SELECT rowid FROM articles_fts WHERE articles_fts MATCH ?"
_TRIGRAMS_SOURCE = "SELECT rowid FROM articles_fts_cjk WHERE articles_fts_cjk MATCH ?"
_GRAMS_SOURCE = "SELECT rowid FROM articles_cjk_grams WHERE articles_cjk_grams MATCH ?"


def match_condition(query: str, grams: bool = True) -> _Condition:
    """The condition of an FTS5 `query` (the meaning of `fts_match_clause`), checked per article.

    `grams`: whether the database has `articles_cjk_grams` (schema 8 and later) to narrow short CJK terms.
    """
    words = _Condition("EXISTS (SELECT 1 FROM articles_fts WHERE articles_fts MATCH ? AND articles_fts.rowid = a.id)",
                       [query], [(_WORDS_SOURCE, [query])], costly=True)
    if not _CJK.search(query):
        return words
    if _trigram_query(query):
        trigrams = ("EXISTS (SELECT 1 FROM articles_fts_cjk WHERE articles_fts_cjk MATCH ?"
                    " AND articles_fts_cjk.rowid = a.id)")
        return _Condition(f"({words.check} OR {trigrams})", [query, query],
                          [(_WORDS_SOURCE, [query]), (_TRIGRAMS_SOURCE, [query])], costly=True)
    check, params = _substring_condition(query)
    return _Condition(check, params, _substring_sources(query) if grams else [], exact=False, costly=True)


_HAYSTACK = "(coalesce(a.title, '') || ' ' || a.text) LIKE ? ESCAPE '\\'"


def _boolean_groups(query: str) -> list[list[tuple[bool, list[str]]]]:
    """A query of AND, OR and NOT (upper case only, as in FTS5) as OR-groups of factors, each factor
    (negated, terms ANDed together): terms side by side bind tightest (`a NOT b c` is a AND NOT (b AND c)),
    then NOT, then AND, then OR."""
    if any(mark in query for mark in "()*^") or re.search(r"\bNEAR\b", query):
        raise QueryError("Japanese and Korean terms of one or two characters combine with AND, OR and NOT "
                         "only; use terms of three or more characters for NEAR, prefixes and parentheses")
    if query.count('"') % 2:
        raise QueryError(f"invalid search query {query!r}: unbalanced quote")
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
        term = token.strip('"')
        factors = groups[-1]
        if negate or not factors or expect_term:
            factors.append((negate, [term]))
        else:
            factors[-1][1].append(term)  # side by side: joins the factor before it
        expect_term, negate = False, False
    if expect_term:
        raise QueryError(f"invalid search query {query!r}: an operator without a term after it")
    return groups


def _substring_condition(query: str) -> tuple[str, list[Any]]:
    """SQL for a query with one- or two-character CJK terms, which neither FTS5 index finds: a substring
    test that keeps FTS5's meaning of AND, OR and NOT (see `_boolean_groups`)."""
    groups = _boolean_groups(query)
    sql = " OR ".join(
        "(" + " AND ".join(("NOT " if negated else "") + "(" + " AND ".join(_HAYSTACK for _ in terms) + ")"
                           for negated, terms in group) + ")"
        for group in groups
    )
    return f"({sql})", [_like_pattern(term) for group in groups for _, terms in group for term in terms]


def _like_pattern(term: str) -> str:
    return "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _substring_sources(query: str) -> list[tuple[str, list[Any]]]:
    """SELECTs whose union holds every article the substring test of `query` can accept, from the index of
    short CJK words and the trigram index; none when some OR-branch could accept an article no index
    lists (a branch of only negated terms, or of Latin terms shorter than three characters)."""
    sources = []
    for group in _boolean_groups(query):
        grams = [term for negated, terms in group if not negated for term in terms if _GRAM_TERM.fullmatch(term)]
        # A term with a kana, Han or Hangul character is only in articles the trigram index holds; one with
        # a space might straddle title and text, which the substring test joins and the index keeps apart.
        trigrams = [term for negated, terms in group if not negated for term in terms
                    if len(term) >= 3 and _IN_TRIGRAM_INDEX.search(term) and not re.search(r"\s", term)]
        if grams and trigrams:
            sources.append((f"{_GRAMS_SOURCE} AND rowid IN ({_TRIGRAMS_SOURCE})",
                            [_all_phrases(grams), _all_phrases(trigrams)]))
        elif grams:
            sources.append((_GRAMS_SOURCE, [_all_phrases(grams)]))
        elif trigrams:
            sources.append((_TRIGRAMS_SOURCE, [_all_phrases(trigrams)]))
        else:
            return []
    return sources


def _all_phrases(terms: list[str]) -> str:
    """An FTS5 query matching documents that hold every one of `terms` (each a phrase)."""
    return " AND ".join('"' + term.replace('"', '""') + '"' for term in terms)


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
    conditions = filter_conditions(filters)
    return [c.check for c in conditions], [p for c in conditions for p in c.params]


def filter_conditions(filters: SearchFilters) -> list[_Condition]:
    """The conditions of `filters`, each with the indexed SELECTs that list its articles."""
    conditions: list[_Condition] = []
    if filters.visa:
        if filters.visa.endswith("*"):
            prefix = filters.visa[:-1]
            pattern = prefix.replace("%", "\\%").replace("_", "\\_") + "%"
            # LIKE ignores ASCII case, as NOCASE does: the range of mentions_kind_label_nocase that holds
            # every label starting with `prefix`, checked with the LIKE itself.
            conditions.append(_Condition(
                "EXISTS (SELECT 1 FROM mentions m INDEXED BY mentions_article WHERE m.article_id = a.id"
                " AND m.kind = 'visa' AND m.label LIKE ? ESCAPE '\\')", [pattern],
                [("SELECT article_id FROM mentions WHERE kind = 'visa' AND label COLLATE NOCASE >= ?"
                  " AND label COLLATE NOCASE < ? AND label LIKE ? ESCAPE '\\'",
                  [prefix, prefix + "\U0010ffff", pattern])], on_id=True))
        else:
            conditions.append(_mention_condition("visa", [filters.visa, *filters.visa_subtypes]))
    if filters.sector:
        conditions.append(_mention_condition("sector", [filters.sector, *filters.sector_subtypes]))
    if filters.country:
        country = filters.country.upper()
        conditions.append(_Condition(
            "(a.country = ? OR EXISTS (SELECT 1 FROM mentions m INDEXED BY mentions_article"
            " WHERE m.article_id = a.id AND ("
            "(m.kind = 'country' AND m.label = ?) OR (m.kind = 'visa' AND m.country = ?))))",
            [country, country, country],
            [("SELECT id FROM articles WHERE country = ?", [country]),
             ("SELECT article_id FROM mentions WHERE kind = 'country' AND label = ?", [country]),
             ("SELECT article_id FROM mentions WHERE kind = 'visa' AND country = ?", [country])]))
    if filters.lang:
        conditions.append(_Condition("a.lang = ?", [filters.lang]))
    if filters.since:
        conditions.append(_Condition(
            "coalesce(a.published_at, a.fetched_at) >= ?", [filters.since],
            [("SELECT id FROM articles WHERE coalesce(published_at, fetched_at) >= ?", [filters.since])]))
    if filters.article_ids is not None:
        marks = ",".join("?" * len(filters.article_ids)) or "NULL"
        ids = list(filters.article_ids)
        conditions.append(_Condition(f"a.id IN ({marks})", ids,
                                     [(f"SELECT id FROM articles WHERE id IN ({marks})", ids)]))
    if filters.min_article_id is not None:
        conditions.append(_Condition("a.id > ?", [filters.min_article_id],
                                     [("SELECT id FROM articles WHERE id > ?", [filters.min_article_id])]))
    return conditions


def _mention_condition(kind: str, labels: list[str]) -> _Condition:
    """Articles with a mention of `kind` whose label is one of `labels` (an id and its sub-types)."""
    marks = ",".join("?" * len(labels))
    return _Condition(
        f"EXISTS (SELECT 1 FROM mentions m WHERE m.article_id = a.id AND m.kind = '{kind}' AND m.label IN ({marks}))",
        list(labels),
        [(f"SELECT article_id FROM mentions WHERE kind = '{kind}' AND label IN ({marks})", list(labels))],
        on_id=True)


def _count(conn: sqlite3.Connection, condition: _Condition, cap: int) -> int:
    """How many articles the condition's sources list (an upper bound), counting no further than `cap`."""
    count = 0
    for sql, params in condition.sources:
        count += conn.execute(f"SELECT count(*) FROM (SELECT 1 FROM ({sql}) LIMIT ?)",
                              [*params, cap - count]).fetchone()[0]
        if count >= cap:
            break
    return count


def _driver(conn: sqlite3.Connection, conditions: list[_Condition]) -> _Condition | None:
    """The condition whose indexes list fewest articles, if fewer than CANDIDATE_LIMIT."""
    best, fewest = None, CANDIDATE_LIMIT
    for condition in conditions:
        if condition.sources:
            count = _count(conn, condition, fewest)
            if count < fewest:
                best, fewest = condition, count
    return best


def _in_sources(column: str, condition: _Condition) -> tuple[str, list[Any]]:
    """`column` among the condition's listed articles: the sources are read once into a temporary index."""
    union = " UNION ALL ".join(sql for sql, _ in condition.sources)
    return f"+{column} IN ({union})", [p for _, values in condition.sources for p in values]


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", [name]).fetchone() is not None


_RESULT_COLUMNS = ("id", "title", "url", "source", "published_at", "lang", "text_origin")


def search_articles(
    conn: sqlite3.Connection, query: str = "", filters: SearchFilters | None = None, limit: int = 20
) -> list[dict[str, Any]]:
    """Articles matching an FTS5 `query` and `filters`, best first, each with a highlighted `snippet`.

    Word queries are ranked by bm25 (title weighing five times the text) with SQLite's own snippets;
    queries in Japanese or Korean, and no query at all, list the newest first.

    The work is bounded by the most selective condition: one that few articles meet (a rare visa, a
    phrase, a short CJK term looked up in `articles_cjk_grams`) is read from its index and the others
    are checked on its articles only; when every condition is common, matches come soon enough in
    date (or FTS) order. Only the results get a snippet.
    """
    if is_postgres(conn):
        from storage.postgres.search import search_articles as search_postgres

        return search_postgres(conn, query, filters, limit)
    query = query.strip()
    conditions = filter_conditions(filters or SearchFilters())
    try:
        if query and not _CJK.search(query):
            return _ranked_search(conn, query, conditions, limit)
        if query:
            conditions.insert(0, match_condition(query, grams=_has_table(conn, "articles_cjk_grams")))
        return _newest_search(conn, query, conditions, limit)
    except sqlite3.OperationalError as exc:
        raise QueryError(f"invalid search query {query!r}: {exc}") from None


def _ranked_search(conn: sqlite3.Connection, query: str, conditions: list[_Condition], limit: int
                   ) -> list[dict[str, Any]]:
    """Word query: the best `limit` matches by bm25 that meet the filters, with their snippets and rows."""
    ranked = _rank_then_filter(conn, query, conditions, limit) if conditions else None
    if ranked is None:
        ranked = _filter_then_rank(conn, query, conditions, limit)
    ids = [row[0] for row in ranked]
    marks = ",".join("?" * len(ids))
    # Looking up one rowid of a prefix query (`visa*`) merges the doclists of all its words again (12 ms
    # for `vis*` at 1M articles): such a query is read once, each row checked against the ids.
    in_ids = f"+rowid IN ({marks})" if "*" in query else f"rowid IN ({marks})"
    snippets = dict(tuple(row) for row in conn.execute(
        f"SELECT rowid, snippet(articles_fts, -1, '{HIGHLIGHT_START}', '{HIGHLIGHT_END}', '…', 24)"
        f" FROM articles_fts WHERE articles_fts MATCH ? AND {in_ids}", [query, *ids]))
    rows = {row[0]: tuple(row) for row in conn.execute(
        f"SELECT {', '.join(_RESULT_COLUMNS)} FROM articles WHERE id IN ({marks})", ids).fetchall()}
    results = []
    for article_id, rank in ranked:
        result = dict(zip(_RESULT_COLUMNS, rows[article_id], strict=True))
        # Snippets are read on one line, in a table cell or a mail.
        result["snippet"] = " ".join((snippets.get(article_id) or "").split())
        result["rank"] = rank
        results.append(result)
    return results


def _filter_then_rank(conn: sqlite3.Connection, query: str, conditions: list[_Condition], limit: int
                      ) -> list[tuple[int, float]]:
    """(rowid, rank) of the best matches that pass the filters, bm25 computed for those only. A filter
    whose articles are not many more than the query's matches is read once from its index and each match
    looked up in it; the others are checked on each match (tag filters by its id alone, the rest on its row)."""
    # Counting matches serves only to weigh the filters: a query without any skips it.
    matches = _count(conn, match_condition(query), RANKED_COUNT_CAP) if conditions else 0
    sql = _RANKING
    where, params = ["articles_fts MATCH ?"], [query]
    checks = []
    listed: int | None = None  # the fewest articles a condition read from its index lists
    for condition in conditions:
        # Measured: reading a listed id costs about a twelfth of checking an article's row, half of
        # checking a tag by id.
        worth_reading = (2 if condition.on_id else 12) * matches + CANDIDATE_LIMIT
        count = _count(conn, condition, worth_reading) if condition.sources else worth_reading
        if count < worth_reading:
            listed = count if listed is None else min(listed, count)
            clause, values = _in_sources("articles_fts.rowid", condition)
            where.append(clause)
            params += values
        elif condition.on_id:
            where.append(condition.check.replace("a.id", "articles_fts.rowid"))
            params += condition.params
        else:
            checks.append(condition)
    if checks:
        sql += " JOIN articles a ON a.id = articles_fts.rowid"
        where += [c.check for c in checks]
        params += [p for c in checks for p in c.params]
    return _best_matches(conn, query, sql, where, params, limit, listed)


def _rank_then_filter(conn: sqlite3.Connection, query: str, conditions: list[_Condition], limit: int
                      ) -> list[tuple[int, float]] | None:
    """(rowid, rank) of the best matches that pass the filters, when every filter is broad: the matches
    are ranked without them and the filters checked on the best few only, in rank order.

    None when some filter is not broad (checking it on every match, or reading its articles, is then
    cheaper than ranking matches that fail it), or when the best few do not settle the answer. Ranking
    is the same bm25 over the same matches, and a match tied with the last one read is never taken (which
    of the tied ones SQLite keeps is its choice), so the result is the filtered ranking's, ties included.
    """
    articles = conn.execute("SELECT coalesce(max(id), 0) FROM articles").fetchone()[0]
    broad = max(1, math.ceil(articles * RANK_FIRST_SHARE))
    share = 1.0
    for condition in conditions:
        if not condition.sources:
            return None  # no index tells how many articles meet it
        met = _count(conn, condition, broad)
        if met < broad:
            return None
        share *= min(1.0, met / max(articles, 1))
    # Enough of the best matches that about three times `limit` of them pass, if the filters are
    # independent of the ranking; more is only read when fewer pass.
    wanted = math.ceil(3 * limit / share)
    if wanted > RANK_FIRST_MAX_READ:
        return None
    best = _best_matches(conn, query, _RANKING, ["articles_fts MATCH ?"], [query], wanted)
    every_match = len(best) < wanted
    checks = " AND ".join(condition.check for condition in conditions)
    params = [p for condition in conditions for p in condition.params]
    passed: list[tuple[int, float]] = []
    start, step = 0, math.ceil(1.5 * limit / share)
    while start < len(best):
        chunk = [tuple(row) for row in best[start : start + step]]
        start, step = start + step, 2 * step
        marks = ",".join("?" * len(chunk))
        meeting = {row[0] for row in conn.execute(
            f"SELECT a.id FROM articles a WHERE a.id IN ({marks}) AND {checks}",
            [*(row[0] for row in chunk), *params])}
        for article_id, rank in chunk:
            if not every_match and rank >= best[-1][1]:
                return None  # tied with matches left unread
            if article_id in meeting:
                passed.append((article_id, rank))
                if len(passed) == limit:
                    return passed
    return passed if every_match else None


_RANKING = "SELECT articles_fts.rowid, bm25(articles_fts, 5.0, 1.0) AS rank FROM articles_fts"


def _best_matches(conn: sqlite3.Connection, query: str, select: str, where: list[str], params: list[Any],
                  limit: int, listed: int | None = None) -> list[tuple[int, float]]:
    """(rowid, rank) of the first `limit` rows of `select` (a ranking of FTS matches) under `where`, by rank.

    bm25 is computed for every match, which at a million articles is most of a common word's search.
    Where that is many matches and threads can run side by side, the rowid range is cut into parts
    ranked at the same time on connections of their own, and their best rows merged. SQLite orders
    ties by the order it read them, rowid ascending, so merging by (rank, rowid) gives the same rows
    in the same order as one query. `listed`: how many articles a condition in `where` lets through at
    most, when that is known (an alert's one article needs no threads).
    """
    bounds = _rank_parts(conn, query) if listed is None or listed >= 2 * RANK_PART_MATCHES else []
    if bounds:
        merged = _rank_in_parts(conn, select, where, params, limit, bounds)
        if merged is not None:
            return merged
    return _rank_part(conn, select, where, params, limit, (None, None))[1]


def _rank_parts(conn: sqlite3.Connection, query: str) -> list[int]:
    """Rowids that cut the matches of `query` into parts of about equal size, or [] to rank in one go.

    Parts are worth it only for a database file that other connections see as this one does (no
    transaction open here), with SQLite's memory statistics off and more than one CPU.
    """
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if cpus < 2 or conn.in_transaction or not _database_file(conn) or not memory_statistics_off():
        return []
    if "*" in query:
        # Any read of a prefix query, a count too, first merges the doclists of all its words (25 ms for
        # `visa*` at 1M articles), as each part will again: the size of the database decides, and the
        # parts are equal shares of its rowids.
        low = conn.execute("SELECT min(rowid) FROM articles_fts_docsize").fetchone()[0] or 0
        high = conn.execute("SELECT max(rowid) FROM articles_fts_docsize").fetchone()[0] or 0
        parts = min(cpus, RANK_MAX_PARTS, (high - low) // RANK_PART_MATCHES)
        return [low + (high - low) * part // parts for part in range(1, parts)] if parts > 1 else []
    matches = conn.execute("SELECT count(*) FROM articles_fts WHERE articles_fts MATCH ?", [query]).fetchone()[0]
    parts = min(cpus, RANK_MAX_PARTS, matches // RANK_PART_MATCHES)
    if parts < 2:
        return []
    bounds = [conn.execute("SELECT rowid FROM articles_fts WHERE articles_fts MATCH ? LIMIT 1 OFFSET ?",
                           [query, matches * part // parts]).fetchone() for part in range(1, parts)]
    return [bound[0] for bound in bounds] if all(bounds) else []  # [] if articles went meanwhile


def _database_file(conn: sqlite3.Connection) -> str:
    """The file of `conn`'s main database, or '' for one in memory or a temporary one."""
    for row in conn.execute("PRAGMA database_list").fetchall():
        if row[1] == "main":
            return row[2] or ""
    return ""


def _rank_in_parts(conn: sqlite3.Connection, select: str, where: list[str], params: list[Any], limit: int,
                   bounds: list[int]) -> list[tuple[int, float]] | None:
    """The ranking run on each part of the rowid range cut at `bounds`, the first on `conn` and the others in
    threads on read-only connections of their own; the best `limit` of all, or None if the parts did
    not read the same state of the index (a write came in between)."""
    # The bounds were found outside the parts' transactions: the first and last parts are open-ended,
    # so the parts cover every rowid whatever was written since.
    ranges = list(zip([None, *bounds], [*bounds, None], strict=True))
    path = _database_file(conn)
    outcomes: list[Any] = [None] * len(ranges)

    def rank_part(index: int) -> None:
        try:
            part_conn = _part_connection(path)
            try:
                outcomes[index] = _rank_part(part_conn, select, where, params, limit, ranges[index])
            finally:
                part_conn.close()
        except BaseException as exc:  # handed to the caller's thread, which raises it
            outcomes[index] = exc

    threads = [threading.Thread(target=rank_part, args=(index,), daemon=True) for index in range(1, len(ranges))]
    for thread in threads:
        thread.start()
    try:
        outcomes[0] = _rank_part(conn, select, where, params, limit, ranges[0])
    finally:
        for thread in threads:
            thread.join()
    for outcome in outcomes:
        if isinstance(outcome, sqlite3.Error):
            return None  # a part's own connection failed (the first part, on `conn`, raises): one query it is
        if isinstance(outcome, BaseException):
            raise outcome
    if len({state for state, _ in outcomes}) > 1:
        return None
    # Parts are in rowid order and each is sorted by (rank, rowid): a stable sort on rank keeps that.
    rows = [row for _, part_rows in outcomes for row in part_rows]
    return sorted(rows, key=lambda row: row[1])[:limit]


def _part_connection(path: str) -> sqlite3.Connection:
    """A read-only connection of a part's own to the database file at `path`."""
    return sqlite3.connect(f"{Path(path).as_uri()}?mode=ro", uri=True, timeout=30)


def _rank_part(conn: sqlite3.Connection, select: str, where: list[str], params: list[Any], limit: int,
               rowids: tuple[int | None, int | None]) -> tuple[bytes, list[tuple[int, float]]]:
    """(the index's statistics, the best `limit` rows by rank) of `select` under `where` on rowids in
    [low, high) (None: no bound), read in one transaction.

    bm25 depends on the statistics (rows, average length): parts that read the same ones rank alike.
    """
    low, high = rowids
    where = [*where, *(["articles_fts.rowid >= ?"] if low is not None else []),
             *(["articles_fts.rowid < ?"] if high is not None else [])]
    values = [*params, *(bound for bound in rowids if bound is not None), limit]
    sql = f"{select} WHERE {' AND '.join(where)} ORDER BY rank LIMIT ?"
    if low is None and high is None:
        return b"", [tuple(row) for row in conn.execute(sql, values).fetchall()]
    conn.execute("BEGIN")
    try:
        state = conn.execute("SELECT block FROM articles_fts_data WHERE id = 1").fetchone()
        rows = [tuple(row) for row in conn.execute(sql, values).fetchall()]
    finally:
        conn.execute("COMMIT")
    return (bytes(state[0]) if state else b""), rows


def _newest_search(conn: sqlite3.Connection, query: str, conditions: list[_Condition], limit: int
                   ) -> list[dict[str, Any]]:
    """No query, or a Japanese/Korean one: the newest articles meeting every condition.

    With a driver (a condition few articles meet), its articles are looked up by id and sorted; without,
    the date index is read newest first, text conditions answered from their index read once.
    """
    driver = _driver(conn, conditions)
    table = "articles a"
    where: list[str] = []
    params: list[Any] = []
    if driver is not None:
        # NOT INDEXED: the driver's ids are looked up by rowid, not the date index walked.
        table = "articles a NOT INDEXED"
        where.append(f"a.id IN ({' UNION ALL '.join(s for s, _ in driver.sources)})")
        params += [p for _, values in driver.sources for p in values]
    for condition in conditions:
        if condition is driver:
            pass
        elif condition.costly and condition.sources:
            clause, values = _in_sources("a.id", condition)
            where.append(clause)
            params += values
        if condition is not driver and condition.costly and condition.sources and condition.exact:
            continue
        if condition is driver and condition.exact:
            continue
        where.append(condition.check)
        params += condition.params
    sql = f"SELECT {', '.join('a.' + c for c in _RESULT_COLUMNS)}, a.text FROM {table}"
    if where:
        sql += f" WHERE {' AND '.join(where)}"
    sql += " ORDER BY coalesce(a.published_at, a.fetched_at) DESC, a.id DESC LIMIT ?"
    results = []
    for row in map(tuple, conn.execute(sql, [*params, limit]).fetchall()):
        result = dict(zip(_RESULT_COLUMNS, row[:-1], strict=True))
        result["snippet"] = " ".join(_substring_snippet(row[-1] or "", query).split())
        result["rank"] = 0
        results.append(result)
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
    if is_postgres(conn):
        from storage.postgres.sql import source_health_rows as postgres_rows

        return postgres_rows(conn, now_iso)
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

"""Full-text search on PostgreSQL with the meaning `storage.queries.search_articles` has on SQLite.

The query syntax users type is FTS5's: words, "phrases", AND / OR / NOT (upper case), prefix*, and
parentheses; juxtaposed terms bind tightest, then NOT, then AND, then OR. It is parsed here and
translated:
- to a tsquery over the `english` tsvector `search_en` for word queries, ranked by ts_rank (title five
  times the text, as bm25(5, 1) on SQLite) with ts_headline snippets;
- for queries with Japanese, Chinese or Korean terms of three or more characters, to that tsquery OR the
  same boolean tree of substring tests (`ILIKE '%term%'`, served by the pg_trgm index), as SQLite ORs its
  unicode61 and trigram indexes; newest first;
- for one- and two-character CJK terms, to the substring test of `storage.queries` (AND / OR / NOT only),
  narrowed by the `cjk_grams` tsvector; newest first.
What has no translation (NEAR, column filters, `^`, `+`) is refused with a QueryError.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from storage.postgres.schema import HAYSTACK
from storage.queries import (
    _CJK,
    _GRAM_TERM,
    _RESULT_COLUMNS,
    HIGHLIGHT_END,
    HIGHLIGHT_START,
    QueryError,
    SearchFilters,
    _boolean_groups,
    _query_terms,
    _substring_snippet,
    filter_conditions,
)

_TOKEN = re.compile(r'"(?:[^"]|"")*"\*?|[()]|[^\s()"]+')
_BAREWORD = re.compile(r"[\w\u0080-\U0010ffff]+\*?")
_WORD = re.compile(r"[\w\u0080-\U0010ffff]+")
_OPERATORS = ("AND", "OR", "NOT")
_TITLE_WEIGHS_FIVE_TIMES = "{0.1, 0.2, 0.2, 1.0}"
"""ts_rank's weights of D, C, B, A: the title (A) counts five times the text (B), as bm25(5.0, 1.0) does."""
_HEADLINE = (f"StartSel={HIGHLIGHT_START}, StopSel={HIGHLIGHT_END}, MaxWords=24, MinWords=12, MaxFragments=1,"
             ' FragmentDelimiter=" … "')


@dataclass
class Term:
    text: str
    phrase: bool = False
    prefix: bool = False


@dataclass
class Node:
    op: str  # "and", "or", "not" (left AND NOT right)
    left: Term | Node
    right: Term | Node


Expression = Term | Node


def parse(query: str) -> Expression:
    """The FTS5 query `query` as a tree; QueryError (one line) for what PostgreSQL cannot be asked."""
    if query.count('"') % 2:
        raise QueryError(f"invalid search query {query!r}: unbalanced quote")
    tokens = _TOKEN.findall(query)
    for token in tokens:
        if token.startswith("NEAR(") or token == "NEAR":
            raise QueryError(f"invalid search query {query!r}: NEAR has no PostgreSQL translation;"
                             " use a phrase or AND")
        if token.startswith(("^", "+")) or (not token.startswith('"') and ":" in token):
            raise QueryError(f"invalid search query {query!r}: {token!r}: column filters, ^ and + have no"
                             " PostgreSQL translation")
    parser = _Parser(query, tokens)
    tree = parser.expression()
    if parser.position < len(tokens):
        raise QueryError(f"invalid search query {query!r}: syntax error near {tokens[parser.position]!r}")
    return tree


class _Parser:
    def __init__(self, query: str, tokens: list[str]) -> None:
        self.query, self.tokens, self.position = query, tokens, 0

    def _peek(self) -> str | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def _fail(self, why: str) -> QueryError:
        return QueryError(f"invalid search query {self.query!r}: {why}")

    def expression(self) -> Expression:
        tree = self._and()
        while self._peek() == "OR":
            self.position += 1
            tree = Node("or", tree, self._and())
        return tree

    def _and(self) -> Expression:
        tree = self._not()
        while self._peek() == "AND":
            self.position += 1
            tree = Node("and", tree, self._not())
        return tree

    def _not(self) -> Expression:
        tree = self._sequence()
        while self._peek() == "NOT":
            self.position += 1
            tree = Node("not", tree, self._sequence())
        return tree

    def _sequence(self) -> Expression:
        """Terms side by side (an implicit AND); FTS5 puts no parenthesized group side by side with anything."""
        group = self._peek() == "("
        tree = self._primary()
        while self._peek() not in (None, ")", *_OPERATORS):
            if group or self._peek() == "(":
                raise self._fail(f"syntax error near {self._peek()!r} (join a parenthesized group with AND,"
                                 " OR or NOT)")
            tree = Node("and", tree, self._primary())
        return tree

    def _primary(self) -> Expression:
        token = self._peek()
        if token is None:
            raise self._fail("a term is missing at the end")
        if token in _OPERATORS:
            raise self._fail(f"{token} needs a term before it")
        if token == ")":
            raise self._fail("unbalanced parenthesis")
        self.position += 1
        if token == "(":
            tree = self.expression()
            if self._peek() != ")":
                raise self._fail("unbalanced parenthesis")
            self.position += 1
            return tree
        if token.startswith('"'):
            prefix = token.endswith("*")
            text = token.rstrip("*")[1:-1].replace('""', '"')
            return Term(text, phrase=True, prefix=prefix)
        if not _BAREWORD.fullmatch(token):
            bad = next((c for c in token if not (c.isalnum() or c == "_" or ord(c) > 127)), token)
            raise self._fail(f"syntax error near {bad!r} (put terms with punctuation in quotes)")
        return Term(token.rstrip("*"), prefix=token.endswith("*"))


def tsquery_sql(tree: Expression) -> tuple[str, list[Any]]:
    """SQL building the `english` tsquery of `tree` from its terms (no term text is parsed as tsquery syntax)."""
    if isinstance(tree, Term):
        words = _WORD.findall(tree.text)
        if not tree.prefix or not words:
            return "phraseto_tsquery('english', ?)", [tree.text]
        last = "to_tsquery('english', ?)"
        if len(words) == 1:
            return last, [f"{words[-1]}:*"]
        return f"tsquery_phrase(phraseto_tsquery('english', ?), {last})", [" ".join(words[:-1]), f"{words[-1]}:*"]
    left, left_params = tsquery_sql(tree.left)
    right, right_params = tsquery_sql(tree.right)
    operator = {"and": "&&", "or": "||", "not": "&& !!"}[tree.op]
    return f"({left} {operator} {right})", [*left_params, *right_params]


def substring_sql(tree: Expression) -> tuple[str, list[Any]]:
    """SQL on articles `a`: the boolean tree with each term a substring test (what SQLite's trigram index
    answers: case-insensitive, a phrase as its characters, a prefix as the term)."""
    if isinstance(tree, Term):
        return f"{HAYSTACK} ILIKE ?", [_like_pattern(tree.text)]
    left, left_params = substring_sql(tree.left)
    right, right_params = substring_sql(tree.right)
    operator = {"and": "AND", "or": "OR", "not": "AND NOT"}[tree.op]
    return f"({left} {operator} {right})", [*left_params, *right_params]


def _like_pattern(term: str) -> str:
    return "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def match_condition(query: str) -> tuple[str, list[Any]]:
    """SQL condition on articles `a` for an FTS5 `query` (the meaning of `storage.queries.match_condition`)."""
    if not _CJK.search(query):
        tsquery, params = tsquery_sql(parse(query))
        return f"a.search_en @@ {tsquery}", params
    if all(len(term.rstrip("*")) >= 3 for term in _query_terms(query)):
        tree = parse(query)
        tsquery, params = tsquery_sql(tree)
        substrings, substring_params = substring_sql(tree)
        # SQLite's trigram index holds only articles with kana, Han or Hangul.
        return (f"(a.search_en @@ {tsquery} OR (length(a.cjk_grams) > 0 AND {substrings}))",
                [*params, *substring_params])
    return _short_cjk_condition(query)


def _short_cjk_condition(query: str) -> tuple[str, list[Any]]:
    """One- and two-character CJK terms: SQLite's substring test (AND, OR, NOT), each OR-branch narrowed by
    the `cjk_grams` index to articles holding all its (not negated) short terms."""
    branches, params = [], []
    for group in _boolean_groups(query):
        factors = []
        grams = [term for negated, terms in group if not negated for term in terms if _GRAM_TERM.fullmatch(term)]
        if grams:
            factors.append("a.cjk_grams @@ ?::tsquery")
            params.append(" & ".join(f"'{gram}'" for gram in grams))
        for negated, terms in group:
            test = " AND ".join(f"{HAYSTACK} ILIKE ? ESCAPE '\\'" for _ in terms)
            factors.append(f"{'NOT ' if negated else ''}({test})")
            params += [_like_pattern(term) for term in terms]
        branches.append("(" + " AND ".join(factors) + ")")
    return "(" + " OR ".join(branches) + ")", params


def _filters_sql(filters: SearchFilters) -> tuple[list[str], list[Any]]:
    """The filters' SQL of `storage.queries` (the connection drops SQLite's index hints)."""
    conditions = filter_conditions(filters)
    return [c.check for c in conditions], [p for c in conditions for p in c.params]


def search_articles(conn: Any, query: str = "", filters: SearchFilters | None = None, limit: int = 20
                    ) -> list[dict[str, Any]]:
    """Articles matching `query` and `filters`, best first, each with a highlighted `snippet` and a `rank`
    (lower is better, as bm25's: minus ts_rank; 0 where results are newest first)."""
    query = query.strip()
    where, params = _filters_sql(filters or SearchFilters())
    columns = ", ".join(f"a.{column}" for column in _RESULT_COLUMNS)
    if query and not _CJK.search(query):
        tsquery, query_params = tsquery_sql(parse(query))
        conditions = " AND ".join(["a.search_en @@ q.query", *where])
        rows = conn.execute(
            f"SELECT {columns}, -ts_rank('{_TITLE_WEIGHS_FIVE_TIMES}', a.search_en, q.query) AS rank,"
            # The column that matches, as SQLite's snippet() picks: the text, else the title.
            f" ts_headline('english', CASE WHEN to_tsvector('english', a.text) @@ q.query THEN a.text"
            f" ELSE coalesce(a.title, '') END, q.query, ?) AS snippet"
            f" FROM (SELECT {tsquery} AS query) q CROSS JOIN LATERAL (SELECT * FROM articles a WHERE {conditions}"
            f" ORDER BY ts_rank('{_TITLE_WEIGHS_FIVE_TIMES}', a.search_en, q.query) DESC, a.id DESC LIMIT ?) a"
            " ORDER BY rank, a.id DESC",
            [_HEADLINE, *query_params, *params, limit]).fetchall()
        return [_result(row[: len(_RESULT_COLUMNS)], row[-1], row[-2]) for row in rows]
    if query:
        match, match_params = match_condition(query)
        where, params = [match, *where], [*match_params, *params]
    sql = f"SELECT {columns}, a.text FROM articles a"
    if where:
        sql += f" WHERE {' AND '.join(where)}"
    sql += " ORDER BY coalesce(a.published_at, a.fetched_at) DESC, a.id DESC LIMIT ?"
    rows = conn.execute(sql, [*params, limit]).fetchall()
    return [_result(row[:-1], _substring_snippet(row[-1] or "", query), 0) for row in rows]


def _result(values: Any, snippet: str | None, rank: float) -> dict[str, Any]:
    result = dict(zip(_RESULT_COLUMNS, values, strict=True))
    result["snippet"] = " ".join((snippet or "").split())
    result["rank"] = rank
    return result


def run_sql(conn: Any, sql: str, params: dict[str, Any] | None = None) -> tuple[list[str], list[tuple]]:
    """Run one statement of a user's in a READ ONLY transaction that is then rolled back.

    The statement is prepared (PostgreSQL's extended protocol), which refuses several statements in one
    string: no `COMMIT; ...` can leave the read-only transaction."""
    import psycopg

    from storage.postgres.connection import one_line

    raw = conn.raw
    try:
        raw.execute("BEGIN READ ONLY")
        try:
            cursor = psycopg.Cursor(raw)
            cursor.execute(sql, params or None, prepare=True)
            columns = [column.name for column in cursor.description or []]
            rows = [tuple(row) for row in cursor.fetchall()] if cursor.description else []
        finally:
            raw.execute("ROLLBACK")
    except psycopg.Error as exc:
        message = one_line(exc)
        if "read-only transaction" in message:
            message = f"{message}: 'monitor sql' runs queries, not changes"
        raise QueryError(message) from None
    return columns, rows

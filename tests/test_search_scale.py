"""Search at scale (issue 10): the indexed search returns what the plain query semantics return.

The reference below is the search as it was before the indexes of schema 8: one SQL statement with the
FTS5 condition (`fts_match_clause`, a substring test for short Japanese/Korean terms) and the tag filters
as EXISTS, over every article. The indexed search picks a driving condition by how many articles each
one lists; running it with the threshold at its extremes makes it take every path.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import storage.queries as queries
from bench.search_scale import ArticleMaker
from storage import open_db, open_readonly
from storage.db import _split_statements
from storage.queries import SearchFilters, cjk_grams, fts_match_clause, search_articles
from storage.schema import MIGRATIONS
from storage.writes import content_hash, store_article

HANDMADE = [
    # (title, text, lang): edge cases of the short-CJK index
    ("비", "자 제도 안내", "ko"),  # 비자 only across title and text: the substring test joins them with a space
    (None, "ﾋﾞｻﾞ申請の案内", "ja"),  # half-width katakana, no title
    ("E7 visa", "비자 E7 발급 확대", "ko"),
    ("人材", "高度専門職の人材を受け入れる。", "ja"),
    ("Work permits", "The E-7-4 visa and 외국인 근로자 rules.", "en"),
]


@pytest.fixture(scope="module")
def db_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("scale") / "m.db"
    db = open_db(path)
    maker = ArticleMaker(seed=3)
    for number in range(500):
        store_article(db, *maker.make(number))
    for number, (title, text, lang) in enumerate(HANDMADE):
        store_article(db, {"url": f"https://hand.example/{number}", "title": title, "text": text, "lang": lang,
                           "content_hash": content_hash(title, text), "source": "hand", "country": "KR",
                           "published_at": f"2026-0{number + 1}-01T00:00:00+00:00"},
                      [{"kind": "visa", "label": "KR:E-7-4", "country": "KR", "text": "x", "start": 0, "end": 1}],
                      [])
    db.close()
    return path


def reference_search(conn: sqlite3.Connection, query: str, filters: SearchFilters) -> list:
    """The search as one plain statement over all articles: (id, rank) best first, or ids newest first."""
    clauses, params = [], []
    if filters.visa and filters.visa.endswith("*"):
        clauses.append("EXISTS (SELECT 1 FROM mentions m WHERE m.article_id = a.id AND m.kind = 'visa'"
                       " AND m.label LIKE ? ESCAPE '\\')")
        params.append(filters.visa[:-1].replace("%", "\\%").replace("_", "\\_") + "%")
    elif filters.visa:
        clauses.append("EXISTS (SELECT 1 FROM mentions m WHERE m.article_id = a.id AND m.kind = 'visa'"
                       " AND m.label = ?)")
        params.append(filters.visa)
    if filters.sector:
        clauses.append("EXISTS (SELECT 1 FROM mentions m WHERE m.article_id = a.id AND m.kind = 'sector'"
                       " AND m.label = ?)")
        params.append(filters.sector)
    if filters.country:
        clauses.append("(a.country = ? OR EXISTS (SELECT 1 FROM mentions m WHERE m.article_id = a.id AND ("
                       "(m.kind = 'country' AND m.label = ?) OR (m.kind = 'visa' AND m.country = ?))))")
        params += [filters.country.upper()] * 3
    if filters.lang:
        clauses.append("a.lang = ?")
        params.append(filters.lang)
    if filters.since:
        clauses.append("coalesce(a.published_at, a.fetched_at) >= ?")
        params.append(filters.since)
    if query and not queries._CJK.search(query):
        rows = conn.execute(
            "SELECT a.id, bm25(articles_fts, 5.0, 1.0) AS rank FROM articles_fts"
            " JOIN articles a ON a.id = articles_fts.rowid WHERE "
            + " AND ".join(["articles_fts MATCH ?", *clauses]) + " ORDER BY rank, a.id", [query, *params])
        return [(row[0], round(row[1], 9)) for row in rows]
    if query:
        sql, values = fts_match_clause(query)
        clauses, params = [sql, *clauses], [*values, *params]
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    return [row[0] for row in conn.execute(
        f"SELECT a.id FROM articles a{where} ORDER BY coalesce(a.published_at, a.fetched_at) DESC, a.id DESC",
        params)]


QUERIES = ["visa", "workers", '"Highly Skilled Professional"', "semicond*", "nursing OR caregivers",
           "visa NOT workers", "외국인", "高度専門職", '"외국인 근로자"', "외국인 OR 高度人材",
           "비자", "人材", "법", "비자 AND 발급", "비자 OR ビザ", "비자 NOT 취업", "비자 발급 OR 人材",
           "비자 OR E7", "비자 AND E7", "비자 AND 외국인력", "人材 高度専門職", "ﾋﾞｻﾞ", "NOT", ""]
FILTERS = [SearchFilters(), SearchFilters(visa="KR:E-7-4"), SearchFilters(visa="KR:*"),
           SearchFilters(visa="kr:*"), SearchFilters(sector="semiconductors"), SearchFilters(country="jp"),
           SearchFilters(since="2024-01-01"), SearchFilters(lang="ko", since="2020-01-01"),
           SearchFilters(visa="JP:*", country="JP", since="2018-01-01")]


@pytest.mark.parametrize("threshold", [1, 40, 10**9], ids=["never-drive", "drive-if-few", "always-drive"])
def test_indexed_search_returns_what_the_plain_query_returns(db_path, threshold, monkeypatch):
    monkeypatch.setattr(queries, "CANDIDATE_LIMIT", threshold)
    conn = open_readonly(db_path)
    checked = 0
    for query in QUERIES:
        for filters in FILTERS:
            try:
                expected = reference_search(conn, query, filters)
            except sqlite3.OperationalError:
                with pytest.raises(queries.QueryError):
                    search_articles(conn, query, filters)
                continue
            found = search_articles(conn, query, filters, limit=10**6)
            if query and not queries._CJK.search(query):
                # bm25 ranking as before; among equal ranks the order is SQLite's.
                got = sorted((r["id"], round(r["rank"], 9)) for r in found)
                assert got == sorted(expected), (query, filters)
                assert [r["rank"] for r in found] == sorted(r["rank"] for r in found)
            else:
                assert [r["id"] for r in found] == expected, (query, filters)
                assert [r["id"] for r in search_articles(conn, query, filters)] == expected[:20]
            checked += bool(expected)
    assert checked > 100  # most pairs match something: the comparison is not between empty lists


def test_short_cjk_words_of_an_article_are_its_characters_and_pairs():
    assert cjk_grams("비자", "E-7 비자를 人材") == "人 人材 材 를 비 비자 자 자를"
    assert cjk_grams(None, "only latin") == ""


def test_the_migration_fills_the_short_cjk_index_for_existing_articles(tmp_path: Path):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    grams = next(n for n, script in enumerate(MIGRATIONS) if "CREATE VIRTUAL TABLE articles_cjk_grams" in script)
    for number, script in enumerate(MIGRATIONS[:grams]):
        for statement in _split_statements(script):
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {number + 1}")
    conn.execute("INSERT INTO articles (url, title, text, fetched_at, content_hash) VALUES"
                 " ('https://a.example/1', '안내', '취업 비자 발급', '2025-01-01T00:00:00+00:00', 'h1'),"
                 " ('https://a.example/2', 'Visa', 'no Korean here', '2025-01-02T00:00:00+00:00', 'h2')")
    conn.close()
    open_db(path).close()
    with open_readonly(path) as reader:
        assert [r["id"] for r in search_articles(reader, "비자")] == [1]
        assert reader.execute("SELECT rowid FROM articles_cjk_grams WHERE articles_cjk_grams MATCH '\"발급\"'"
                              ).fetchone()[0] == 1


@pytest.mark.parametrize("limit", [1, 3, 10, 20])
def test_ranking_first_and_filtering_the_best_returns_what_filtering_first_returns(db_path, limit, monkeypatch):
    """Word queries with broad filters rank every match and check the filters on the best few: the same
    articles in the same order, ties included, as checking the filters on every match and ranking those."""
    conn = open_readonly(db_path)
    settled = []
    rank_then_filter = queries._rank_then_filter

    def counted(*args):
        found = rank_then_filter(*args)
        if queries.RANK_FIRST_SHARE < 1:
            settled.append(found is not None)
        return found

    monkeypatch.setattr(queries, "_rank_then_filter", counted)
    monkeypatch.setattr(queries, "RANK_FIRST_MAX_READ", 10**6)
    for query in ["visa", "workers", "semicond*", "nursing OR caregivers", "visa NOT workers"]:
        for filters in FILTERS[1:]:
            monkeypatch.setattr(queries, "RANK_FIRST_SHARE", 2)  # never broad: filters checked first
            expected = [(r["id"], r["rank"]) for r in search_articles(conn, query, filters, limit=limit)]
            monkeypatch.setattr(queries, "RANK_FIRST_SHARE", 0.02)  # broad if met by 11 articles of the 505
            found = [(r["id"], r["rank"]) for r in search_articles(conn, query, filters, limit=limit)]
            assert found == expected, (query, filters)
            reference = reference_search(conn, query, filters)
            assert [round(rank, 9) for _, rank in found] == [rank for _, rank in reference[:limit]]
    assert settled.count(True) > 20 and settled.count(False) < settled.count(True)


# Ranking in parts (storage.queries._best_matches): a common word's matches ranked in threads, each part
# of the rowid range on a connection of its own, then merged. It runs only with SQLite's memory
# statistics off, which a process can do before it opens any connection: the parts run in a process
# of their own, the reference (one query) in this one.

TIES = [(f"Visa rules {number}", "The visa rules changed for workers.") for number in range(12)]
"""Articles alike in everything bm25 reads (hits per column, length): their ranks are equal."""

PARTS_SCRIPT = """
import json, os, sys
from storage.sqlite_library import quiet_memory_statistics
assert quiet_memory_statistics(), "memory statistics stayed on"
import storage.queries as queries
from storage import open_readonly
from storage.queries import SearchFilters
queries.RANK_PART_MATCHES = 4  # parts for any query with 8 matches or more
queries.RANK_MAX_PARTS = 3
queries.os.sched_getaffinity = lambda pid: {0, 1, 2}  # three parts on any machine
merged = []
rank_in_parts = queries._rank_in_parts
def counted(*args):
    found = rank_in_parts(*args)
    merged.append(found is not None)
    return found
queries._rank_in_parts = counted
conn = open_readonly(sys.argv[1])
results = {}
for key, (query, filters, limit) in json.loads(sys.argv[2]).items():
    found = queries.search_articles(conn, query, SearchFilters(**filters), limit=limit)
    results[key] = [[row["id"], row["rank"], row["snippet"]] for row in found]
print(json.dumps({"results": results, "merged": merged}))
"""


@pytest.fixture(scope="module")
def tied_db_path(db_path, tmp_path_factory) -> Path:
    """The module's database with articles whose ranks tie, spread over the rowids between other articles."""
    path = tmp_path_factory.mktemp("ties") / "m.db"
    with sqlite3.connect(db_path) as source, sqlite3.connect(path) as copy:
        source.backup(copy)
    db = open_db(path)
    maker = ArticleMaker(seed=4)
    for number, (title, text) in enumerate(TIES):
        store_article(db, {"url": f"https://ties.example/{number}", "title": title, "text": text, "lang": "en",
                           "content_hash": content_hash(title, text), "source": "ties", "country": "JP",
                           "published_at": "2025-05-01T00:00:00+00:00"}, [], [])
        for other in range(20):
            store_article(db, *maker.make(1000 + 20 * number + other))
    db.close()
    return path


def test_ranking_in_parts_across_threads_returns_what_one_query_returns(tied_db_path, monkeypatch):
    """Same articles, same ranks, same order among ties, same snippets: with every filter path, prefix
    queries, and limits that cut through the tied ranks."""
    import json
    import subprocess
    import sys

    cases = {}
    for query in ["visa", "rules", "workers", "semicond*", "vis*", "nursing OR caregivers", "visa NOT workers"]:
        for number, filters in enumerate(FILTERS):
            for limit in [1, 5, 13, 20, 200]:
                cases[f"{query}|{number}|{limit}"] = (query, {k: v for k, v in vars(filters).items() if v}, limit)
    run = subprocess.run([sys.executable, "-c", PARTS_SCRIPT, str(tied_db_path), json.dumps(cases)],
                         capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1], timeout=300)
    assert run.returncode == 0, run.stderr
    in_parts = json.loads(run.stdout)
    assert in_parts["merged"].count(True) > 100 and False not in in_parts["merged"]

    monkeypatch.setattr(queries, "memory_statistics_off", lambda: False)  # here: one query each
    conn = open_readonly(tied_db_path)
    tied = 0
    for key, (query, filters, limit) in cases.items():
        found = search_articles(conn, query, SearchFilters(**filters), limit=limit)
        expected = [[row["id"], row["rank"], row["snippet"]] for row in found]
        assert in_parts["results"][key] == expected, key
        ranks = [row["rank"] for row in found]
        tied += len(ranks) - len(set(ranks))
    assert tied > 50  # the comparison covered ties, in order


def test_parts_that_read_different_states_of_the_index_are_not_merged(tied_db_path, tmp_path, monkeypatch):
    """An article stored after the first part read the index and before the second: bm25's statistics
    differ between the parts, so their ranks are not merged and one query ranks everything again."""
    import threading

    path = tmp_path / "m.db"
    with sqlite3.connect(tied_db_path) as source, sqlite3.connect(path) as copy:
        source.backup(copy)
    monkeypatch.setattr(queries, "memory_statistics_off", lambda: True)
    monkeypatch.setattr(queries, "RANK_PART_MATCHES", 4)
    monkeypatch.setattr(queries.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    first_read = threading.Event()
    rank_part, rank_in_parts = queries._rank_part, queries._rank_in_parts
    merged = []

    def rank_part_then_write(conn, select, where, params, limit, rowids):
        if rowids[0] is None and rowids[1] is not None:  # the first part, in the caller's thread
            found = rank_part(conn, select, where, params, limit, rowids)
            writer = open_db(path)
            store_article(writer, {"url": "https://late.example/1", "title": "Visa visa", "text": "visa",
                                   "lang": "en", "content_hash": content_hash("Visa visa", "visa"),
                                   "source": "late"}, [], [])
            writer.close()
            first_read.set()
            return found
        assert first_read.wait(30)
        return rank_part(conn, select, where, params, limit, rowids)

    def counted(*args):
        found = rank_in_parts(*args)
        merged.append(found is not None)
        return found

    monkeypatch.setattr(queries, "_rank_part", rank_part_then_write)
    monkeypatch.setattr(queries, "_rank_in_parts", counted)
    conn = open_readonly(path)
    found = search_articles(conn, "visa", limit=5)
    assert merged == [False]
    late = conn.execute("SELECT id FROM articles WHERE url = 'https://late.example/1'").fetchone()[0]
    assert found[0]["id"] == late  # the one query ranked the state with the late article
    monkeypatch.setattr(queries, "_rank_part", rank_part)
    monkeypatch.setattr(queries, "memory_statistics_off", lambda: False)
    one_query = search_articles(conn, "visa", limit=5)
    assert [(r["id"], r["rank"]) for r in found] == [(r["id"], r["rank"]) for r in one_query]


def test_ranking_stays_in_one_query_where_parts_would_not_help_or_not_see_the_same(db_path, tmp_path, monkeypatch):
    monkeypatch.setattr(queries, "RANK_PART_MATCHES", 4)
    monkeypatch.setattr(queries, "memory_statistics_off", lambda: True)
    monkeypatch.setattr(queries.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    conn = open_readonly(db_path)
    assert len(queries._rank_parts(conn, "visa")) == 1
    assert queries._rank_parts(conn, "shipbuilding NOT shipbuilding") == []  # too few matches
    monkeypatch.setattr(queries.os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert queries._rank_parts(conn, "visa") == []  # one CPU
    monkeypatch.setattr(queries.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(queries, "memory_statistics_off", lambda: False)
    assert queries._rank_parts(conn, "visa") == []  # threads would queue on SQLite's statistics mutex
    monkeypatch.setattr(queries, "memory_statistics_off", lambda: True)
    writer = open_db(tmp_path / "w.db")
    writer.conn.execute("BEGIN")
    assert queries._rank_parts(writer.conn, "visa") == []  # other connections would not see this transaction
    writer.conn.execute("ROLLBACK")
    memory = sqlite3.connect(":memory:")
    memory.executescript("CREATE VIRTUAL TABLE articles_fts USING fts5(title, text);"
                         + "INSERT INTO articles_fts VALUES ('visa', 'visa');" * 20)
    assert queries._rank_parts(memory, "visa") == []  # no file for other connections to open


def test_a_prefix_query_gets_the_snippets_a_lookup_of_each_article_gives(db_path):
    conn = open_readonly(db_path)
    found = search_articles(conn, "semicond*", limit=10)
    assert found
    for row in found:
        snippet = conn.execute(
            "SELECT snippet(articles_fts, -1, '<mark>', '</mark>', '…', 24) FROM articles_fts"
            " WHERE articles_fts MATCH 'semicond*' AND rowid = ?", [row["id"]]).fetchone()[0]
        assert row["snippet"] == " ".join(snippet.split())
        assert "<mark>" in row["snippet"]


def test_memory_statistics_are_switched_off_only_while_no_connection_is_open():
    import subprocess
    import sys

    def python(code: str) -> str:
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parents[1], timeout=60)
        assert run.returncode == 0, run.stderr
        return run.stdout.split()

    prelude = "import sqlite3\nfrom storage.sqlite_library import memory_statistics_off, quiet_memory_statistics\n"
    assert python(prelude + "print(memory_statistics_off(), quiet_memory_statistics(), memory_statistics_off(),"
                  " quiet_memory_statistics())") == ["False", "True", "True", "True"]
    # With a connection open, SQLite is left as it is and the connection keeps working.
    assert python(prelude + "c = sqlite3.connect(':memory:'); c.execute('CREATE TABLE t(x)')\n"
                  "print(quiet_memory_statistics(), memory_statistics_off(), c.execute('SELECT count(*) FROM t')"
                  ".fetchone()[0])") == ["False", "False", "0"]
    # The `monitor` program switches them off before its command runs.
    assert python(prelude + "import monitor.cli as cli\ncli.main = lambda: print(memory_statistics_off()) or 0\n"
                  "cli.run()") == ["True"]


def test_a_search_narrowed_to_a_few_listed_articles_is_ranked_in_one_query(db_path, monkeypatch):
    """An alert asks whether its one new article matches a common word: no threads for that."""
    monkeypatch.setattr(queries, "RANK_PART_MATCHES", 4)
    monkeypatch.setattr(queries, "memory_statistics_off", lambda: True)
    monkeypatch.setattr(queries.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    parts = []
    rank_parts = queries._rank_parts
    monkeypatch.setattr(queries, "_rank_parts", lambda *args: parts.append(rank_parts(*args)) or parts[-1])
    conn = open_readonly(db_path)
    one = conn.execute("SELECT rowid FROM articles_fts WHERE articles_fts MATCH 'visa' LIMIT 1").fetchone()[0]
    assert [r["id"] for r in search_articles(conn, "visa", SearchFilters(article_ids=(one,)), limit=1)] == [one]
    assert parts == []
    search_articles(conn, "visa")
    assert len(parts) == 1 and len(parts[0]) == 1  # the same word over every article: two parts


def test_a_part_whose_connection_fails_leaves_the_ranking_to_one_query(db_path, monkeypatch):
    monkeypatch.setattr(queries, "RANK_PART_MATCHES", 4)
    monkeypatch.setattr(queries, "memory_statistics_off", lambda: False)
    conn = open_readonly(db_path)
    one_query = search_articles(conn, "visa", limit=30)
    monkeypatch.setattr(queries, "memory_statistics_off", lambda: True)
    monkeypatch.setattr(queries.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)

    def unopenable(path):
        raise sqlite3.OperationalError("unable to open database file")

    monkeypatch.setattr(queries, "_part_connection", unopenable)
    assert search_articles(conn, "visa", limit=30) == one_query

"""Storage: migrations, atomic article writes, dedup, full-text search in three scripts, read-only SQL."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from storage import StorageError, open_db, open_readonly
from storage.queries import QueryError, SearchFilters, run_sql, search_articles, validate_fts_query
from storage.schema import SCHEMA_VERSION
from storage.writes import content_hash, known_urls, replace_tags, store_article


def article(url: str, title: str, text: str, **extra) -> dict:
    return {"url": url, "title": title, "text": text, "content_hash": content_hash(title, text), "source": "s",
            **extra}


@pytest.fixture
def db(tmp_path: Path):
    database = open_db(tmp_path / "m.db")
    yield database
    database.close()


def test_open_db_creates_schema_in_wal_mode(tmp_path: Path):
    db = open_db(tmp_path / "new.db")
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert {"articles", "mentions", "figures", "fetches", "sources", "alerts_sent"} <= set(db.table_names())


def test_reopening_applies_no_migration_twice(tmp_path: Path):
    open_db(tmp_path / "m.db").close()
    db = open_db(tmp_path / "m.db")
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_a_newer_schema_is_refused(tmp_path: Path):
    conn = sqlite3.connect(tmp_path / "future.db")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StorageError, match="newer than this program"):
        open_db(tmp_path / "future.db")


def test_article_and_tags_are_stored_together(db):
    mentions = [{"kind": "visa", "label": "KR:E-7", "country": "KR", "text": "E-7", "start": 0, "end": 3}]
    figures = [{"value": 313.0, "unit": "people", "year": 2012, "text": "313", "start": 10, "end": 13}]
    article_id, new = store_article(db, article("https://a.example/1", "E-7", "E-7 visa up"), mentions, figures)
    assert new
    assert db.execute("SELECT label FROM mentions WHERE article_id = ?", [article_id]).fetchall() == [("KR:E-7",)]
    assert db.execute("SELECT value, year FROM figures").fetchall() == [(313.0, 2012)]


def test_a_failed_tag_write_leaves_no_half_stored_article(db):
    bad_mentions = [{"kind": "not-a-kind", "label": "x", "text": "x", "start": 0, "end": 1}]
    with pytest.raises(sqlite3.IntegrityError):
        store_article(db, article("https://a.example/1", "T", "text"), bad_mentions, [])
    assert db.execute("SELECT count(*) FROM articles").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM article_urls").fetchone()[0] == 0


def test_same_url_or_same_content_is_not_stored_twice(db):
    body = "Body text of a release long enough to identify the story. " * 5
    first, _ = store_article(db, article("https://a.example/1", "Title", body), [], [])
    again, new = store_article(db, article("https://a.example/1", "Other", "Other"), [], [])
    assert (again, new) == (first, False)
    syndicated, new = store_article(db, article("https://b.example/copy", "title", body.replace(" ", "  ")), [], [],
                                    urls=["https://b.example/copy?utm_source=x"])
    assert (syndicated, new) == (first, False)
    assert db.execute("SELECT count(*) FROM articles").fetchone()[0] == 1
    assert known_urls(db, ["https://b.example/copy", "https://b.example/copy?utm_source=x", "https://c/"]) == {
        "https://b.example/copy", "https://b.example/copy?utm_source=x"}


def test_replace_tags_swaps_old_tags_for_new(db):
    article_id, _ = store_article(db, article("https://a.example/1", "T", "text"),
                                  [{"kind": "sector", "label": "ai", "text": "AI", "start": 0, "end": 2}], [])
    replace_tags(db, article_id, [{"kind": "sector", "label": "biotech", "text": "bio", "start": 0, "end": 3}], [])
    assert db.execute("SELECT label FROM mentions").fetchall() == [("biotech",)]


@pytest.fixture
def searchable(tmp_path: Path):
    db = open_db(tmp_path / "s.db")
    store_article(db, article("https://a.example/en", "Korea plans a Top-Tier visa",
                              "The visa targets semiconductor and AI talent.", lang="en", country="KR",
                              published_at="2025-07-01T00:00:00+00:00"),
                  [{"kind": "visa", "label": "KR:TOP-TIER", "country": "KR", "text": "Top-Tier visa", "start": 0,
                    "end": 13}], [])
    store_article(db, article("https://a.example/ja", "高度専門職の認定件数",
                              "高度専門職の認定件数は2023年に46,946件となった。", lang="ja",
                              published_at="2024-03-01T00:00:00+00:00"),
                  [{"kind": "visa", "label": "JP:HSP", "country": "JP", "text": "高度専門職", "start": 0,
                    "end": 5}], [])
    store_article(db, article("https://a.example/ko", "톱티어 비자 도입", "정부는 톱티어비자를 도입한다.", lang="ko"),
                  [], [])
    db.close()
    conn = open_readonly(tmp_path / "s.db")
    yield conn
    conn.close()


@pytest.mark.parametrize(
    ("query", "expected_url"),
    [
        ('"top tier"', "https://a.example/en"),
        ("semiconduct*", "https://a.example/en"),
        ("semiconductor NOT football", "https://a.example/en"),
        ("高度専門職", "https://a.example/ja"),
        ("톱티어", "https://a.example/ko"),
        ("비자", "https://a.example/ko"),
    ],
)
def test_search_finds_words_phrases_prefixes_and_cjk_terms(searchable, query, expected_url):
    results = search_articles(searchable, query)
    assert [r["url"] for r in results] == [expected_url]
    assert "<mark>" in results[0]["snippet"]


def test_search_filters_by_visa_country_and_date(searchable):
    assert [r["url"] for r in search_articles(searchable, "", SearchFilters(visa="JP:*"))] == ["https://a.example/ja"]
    assert [r["url"] for r in search_articles(searchable, "", SearchFilters(country="kr"))] == ["https://a.example/en"]
    dated = search_articles(searchable, "", SearchFilters(since="2025-01-01", lang="en"))
    assert [r["url"] for r in dated] == ["https://a.example/en"]


def test_invalid_fts_query_is_a_clear_error(searchable):
    assert validate_fts_query('"unterminated') is not None
    assert validate_fts_query('"top tier" OR semiconduct*') is None
    with pytest.raises(QueryError, match="invalid search query"):
        search_articles(searchable, "AND AND")


def test_readonly_connection_refuses_writes_whatever_the_sql(searchable):
    with pytest.raises(QueryError, match="read-only"):
        run_sql(searchable, "DELETE FROM articles")
    with pytest.raises(QueryError):
        run_sql(searchable, "PRAGMA query_only = OFF; DELETE FROM articles")
    columns, rows = run_sql(searchable, "SELECT count(*) AS n FROM articles")
    assert (columns, rows) == (["n"], [(3,)])


def test_open_readonly_needs_an_existing_database(tmp_path: Path):
    with pytest.raises(StorageError, match="does not exist"):
        open_readonly(tmp_path / "missing.db")
    assert not (tmp_path / "missing.db").exists()


def test_fts_indexes_follow_updates_and_deletes(db):
    article_id, _ = store_article(db, article("https://a.example/j", "速報", "高度専門職の件数"), [], [])
    db.execute("BEGIN")
    db.execute("UPDATE articles SET text = 'Semiconductor engineers' WHERE id = ?", [article_id])
    db.execute("COMMIT")
    conn = db.conn
    assert search_articles(conn, "semiconductor") and not search_articles(conn, "高度専門職")
    db.execute("BEGIN")
    db.execute("DELETE FROM articles WHERE id = ?", [article_id])
    db.execute("COMMIT")
    assert not search_articles(conn, "semiconductor")
    conn.execute("INSERT INTO articles_fts(articles_fts) VALUES ('integrity-check')")


def test_short_texts_alike_are_not_taken_for_the_same_story(db):
    store_article(db, article("https://a.example/1", "Notice", ""), [], [])
    _, new = store_article(db, article("https://a.example/2", "Notice", ""), [], [])
    assert new


def test_a_query_mixing_scripts_finds_each_spelling(searchable):
    urls = {r["url"] for r in search_articles(searchable, '"top tier" OR 톱티어')}
    assert urls == {"https://a.example/en", "https://a.example/ko"}


def test_equal_feed_summaries_are_not_taken_for_the_same_story(db):
    abstract = "Flood hazard determinations for communities are finalized; see the table for each community. " * 3
    store_article(db, article("https://a.example/doc-1", "Changes in Flood Hazard Determinations", abstract,
                              text_origin="feed_summary"), [], [])
    _, new = store_article(db, article("https://a.example/doc-2", "Changes in Flood Hazard Determinations",
                                       abstract, text_origin="feed_summary"), [], [])
    assert new


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("비자", {"https://a.example/ko"}),
        ("비자 NOT 도입", set()),
        ("비자 OR 件数", {"https://a.example/ko", "https://a.example/ja"}),
        ("件数 AND 비자", set()),
        ("専門 NOT 비자", {"https://a.example/ja"}),
    ],
)
def test_short_cjk_terms_keep_and_or_not(searchable, query, expected):
    assert {r["url"] for r in search_articles(searchable, query)} == expected


@pytest.mark.parametrize("query", ["(비자)", "비자*", "NEAR(비자 도입)", "NOT 비자", "비자 OR"])
def test_short_cjk_terms_with_other_operators_are_a_clear_error(searchable, query):
    assert validate_fts_query(query) is not None
    with pytest.raises(QueryError):
        search_articles(searchable, query)


def test_two_processes_opening_a_new_database_at_once_both_succeed(tmp_path: Path):
    import subprocess
    import sys

    from tests.conftest import ROOT

    script = "import sys; from storage import open_db; open_db(sys.argv[1]).close()"
    for run in range(5):
        path = tmp_path / f"race{run}.db"
        processes = [subprocess.Popen([sys.executable, "-c", script, str(path)], cwd=ROOT, stderr=subprocess.PIPE,
                                      text=True) for _ in range(3)]
        errors = [p.communicate(timeout=60)[1] for p in processes]
        assert [p.returncode for p in processes] == [0, 0, 0], errors
        assert open_db(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_readonly_sql_cannot_create_files(searchable, tmp_path: Path):
    for sql in (f"ATTACH DATABASE '{tmp_path / 'x.db'}' AS x", f"VACUUM INTO '{tmp_path / 'copy.db'}'"):
        with pytest.raises(QueryError):
            run_sql(searchable, sql)
    assert not (tmp_path / "x.db").exists() and not (tmp_path / "copy.db").exists()


def test_a_file_that_is_not_a_monitor_database_is_named_as_such(tmp_path: Path):
    sqlite3.connect(tmp_path / "other.db").execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(StorageError, match="not a policy-monitor database"):
        open_readonly(tmp_path / "other.db")


def test_a_page_never_merges_into_a_stored_feed_summary(db):
    text = "Flood hazard determinations for communities are finalized; see the table for each community. " * 3
    store_article(db, article("https://a.example/doc-1", "Flood", text, text_origin="feed_summary"), [], [])
    _, new = store_article(db, article("https://a.example/doc-2", "Flood", text), [], [])
    assert new


def test_substring_search_means_what_fts5_means(tmp_path: Path):
    """Every combination of three terms and AND / OR / NOT / side by side gives FTS5's own answer."""
    import itertools

    from storage.queries import _substring_condition

    docs = {1: "가나다", 2: "라마바", 3: "가나다 라마바", 4: "사아자", 5: "가나다 사아자", 6: "라마바 사아자",
            7: "가나다 라마바 사아자"}
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE articles (id INTEGER PRIMARY KEY, title TEXT, text TEXT)")
    conn.execute("CREATE VIRTUAL TABLE f USING fts5(text, tokenize='trigram')")
    for number, text in docs.items():
        conn.execute("INSERT INTO articles VALUES (?, '', ?)", [number, text])
        conn.execute("INSERT INTO f (rowid, text) VALUES (?, ?)", [number, text])
    for first, second, third in itertools.permutations(["가나다", "라마바", "사아자"]):
        for op1, op2 in itertools.product(["", "AND ", "OR ", "NOT "], repeat=2):
            query = f"{first} {op1}{second} {op2}{third}"
            expected = sorted(r[0] for r in conn.execute("SELECT rowid FROM f WHERE f MATCH ?", [query]))
            sql, params = _substring_condition(query)
            found = sorted(r[0] for r in conn.execute(f"SELECT id FROM articles a WHERE {sql}", params))
            assert found == expected, query


@pytest.mark.parametrize("query", ["비자 AND", "AND 비자", '"비자', "비자 NOT"])
def test_dangling_operators_and_quotes_are_refused_like_fts5_refuses_them(searchable, query):
    assert validate_fts_query(query) is not None

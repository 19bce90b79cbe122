"""The storage contract: what every backend does alike, run on a SQLite file and on PostgreSQL.

Each test takes `target` (a file path, or the URL of a new PostgreSQL database) and calls only the public
storage functions with the handles `open_db` / `open_readonly` return. The PostgreSQL half skips with the
fixture's reason where no server answers.
"""

from __future__ import annotations

import itertools
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from storage import StorageError, open_db, open_readonly
from storage import alerts as ledger
from storage.queries import QueryError, SearchFilters, article_tags, run_sql, search_articles
from storage.target import is_postgres
from storage.writes import content_hash, known_urls, replace_tags, store_article
from tests.conftest import ROOT


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """Where the test's database lives: a new SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return tmp_path / "contract.db"
    return request.getfixturevalue("postgres_url")


def article(url: str, title: str, text: str, **extra) -> dict:
    return {"url": url, "title": title, "text": text, "content_hash": content_hash(title, text), **extra}


def mention(kind: str, label: str, country: str | None = None) -> dict:
    return {"kind": kind, "label": label, "country": country, "text": label, "start": 0, "end": len(label)}


# ---------------------------------------------------------------- writes


def test_an_article_is_stored_once_by_url_or_by_content(target):
    db = open_db(target)
    long_text = "The points-based skilled worker scheme changes its salary thresholds this spring. " * 4
    first, new = store_article(db, article("https://a.example/1", "Thresholds", long_text),
                               [mention("visa", "GB:SKILLED-WORKER", "GB")], [], urls=["https://feed.example/1"])
    assert new
    assert store_article(db, article("https://a.example/1", "Thresholds", "other"), [], []) == (first, False)
    # Same page text under another URL: the same story, whose URL is remembered.
    assert store_article(db, article("https://mirror.example/1", "Thresholds", long_text), [], []) == (first, False)
    assert known_urls(db, ["https://feed.example/1", "https://mirror.example/1", "https://new.example/"]) == {
        "https://feed.example/1", "https://mirror.example/1"}
    second, new = store_article(db, article("https://a.example/2", "Notice", ""), [], [])
    assert new and second > first
    db.close()


def test_tags_are_stored_with_the_article_and_replaced_atomically(target):
    db = open_db(target)
    article_id, _ = store_article(
        db, article("https://a.example/t", "E-7-4", "Quota of 35,000 for E-7-4 in 2025."),
        [mention("visa", "KR:E-7-4", "KR")],
        [{"value": 35000, "unit": "count", "year": 2025, "visa": "KR:E-7-4", "text": "35,000", "start": 9,
          "end": 15, "metric": "quota"}])
    replace_tags(db, article_id, [mention("sector", "manufacturing")], [])
    db.close()
    conn = open_readonly(target)
    tags = article_tags(conn, article_id)
    assert [m["label"] for m in tags["sector"]] == ["manufacturing"]
    assert tags["visa"] == [] and tags["figures"] == []
    conn.close()


def test_migrations_are_idempotent_and_concurrent_openers_agree(target):
    script = "import sys; from storage import open_db; open_db(sys.argv[1]).close()"
    processes = [subprocess.Popen([sys.executable, "-c", script, str(target)], cwd=ROOT, stderr=subprocess.PIPE,
                                  text=True) for _ in range(3)]
    errors = [p.communicate(timeout=120)[1] for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0], errors
    db = open_db(target)
    db.close()
    conn = open_readonly(target)
    if is_postgres(conn):
        from storage.postgres import schema_version
        from storage.postgres.schema import SCHEMA_VERSION

        assert schema_version(conn) == SCHEMA_VERSION
    else:
        from storage.schema import SCHEMA_VERSION

        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()


def test_readonly_sql_answers_queries_and_refuses_changes(target):
    db = open_db(target)
    store_article(db, article("https://a.example/r", "Read only", "text"), [], [])
    db.close()
    conn = open_readonly(target)
    columns, rows = run_sql(conn, "SELECT count(*) AS n FROM articles")
    assert columns == ["n"] and rows == [(1,)]
    for sql in ("DELETE FROM articles", "INSERT INTO sources (name, kind, url) VALUES ('x', 'rss', 'u')",
                "DROP TABLE articles", "UPDATE articles SET title = 'x'"):
        with pytest.raises(QueryError):
            run_sql(conn, sql)
    assert run_sql(conn, "SELECT title FROM articles")[1] == [("Read only",)]
    conn.close()


# ---------------------------------------------------------------- search

CORPUS = [
    ("https://a.example/top-tier", "Korea plans a Top-Tier visa",
     "The visa targets semiconductor and AI talent from abroad.", "en", "KR", "2025-07-01T00:00:00+00:00",
     [mention("visa", "KR:TOP-TIER", "KR"), mention("sector", "semiconductors")]),
    ("https://a.example/h1b", "H-1B lottery changes",
     "The lottery now weighs wages; semiconductor firms react.", "en", "US", "2025-03-01T00:00:00+00:00",
     [mention("visa", "US:H-1B", "US"), mention("sector", "semiconductors")]),
    ("https://a.example/hsp", "高度専門職の認定件数", "高度専門職の認定件数は2023年に46,946件となった。", "ja", "JP",
     "2024-03-01T00:00:00+00:00", [mention("visa", "JP:HSP-1B", "JP")]),
    ("https://a.example/ko", "톱티어 비자 도입", "정부는 톱티어비자를 도입한다.", "ko", "KR", None,
     [mention("visa", "KR:E-7-4", "KR")]),
    ("https://a.example/football", "Football clubs and the visa", "Football clubs sponsor players; Korea watches.",
     "en", "GB", "2023-01-01T00:00:00+00:00", [mention("country", "KR")]),
]


@pytest.fixture
def searchable(target):
    db = open_db(target)
    for url, title, text, lang, country, published, mentions in CORPUS:
        store_article(db, article(url, title, text, lang=lang, country=country, published_at=published),
                      mentions, [])
    db.close()
    conn = open_readonly(target)
    yield conn
    conn.close()


def _names(results: list[dict]) -> list[str]:
    return [r["url"].rsplit("/", 1)[1] for r in results]


RANKED = [  # word queries: ranked (bm25 / ts_rank differ in detail), so compared as sets
    ("lottery", SearchFilters(), {"h1b"}),
    ('"top tier"', SearchFilters(), {"top-tier"}),
    ("semiconduct*", SearchFilters(), {"top-tier", "h1b"}),
    ("semiconductor NOT lottery", SearchFilters(), {"top-tier"}),
    ("football OR lottery", SearchFilters(), {"h1b", "football"}),
    ("(football OR lottery) AND wages", SearchFilters(), {"h1b"}),
    ("football lottery", SearchFilters(), set()),
    ("visa", SearchFilters(visa="KR:*"), {"top-tier"}),
    ("visa", SearchFilters(country="kr"), {"top-tier", "football"}),
    ("semiconductor", SearchFilters(country="US"), {"h1b"}),
    ("semiconductor", SearchFilters(sector="semiconductors", since="2025-05-01"), {"top-tier"}),
]

NEWEST_FIRST = [  # no query, or CJK: newest first, compared in order
    ("", SearchFilters(visa="KR:*"), ["ko", "top-tier"]),
    ("", SearchFilters(visa="JP:HSP", visa_subtypes=("JP:HSP-1B",)), ["hsp"]),
    ("", SearchFilters(visa="JP:HSP"), []),
    ("", SearchFilters(sector="semiconductors"), ["top-tier", "h1b"]),
    ("", SearchFilters(country="KR"), ["ko", "top-tier", "football"]),
    ("", SearchFilters(since="2025-01-01"), ["ko", "top-tier", "h1b"]),
    ("", SearchFilters(lang="ja"), ["hsp"]),
    ("高度専門職", SearchFilters(), ["hsp"]),
    ("톱티어", SearchFilters(), ["ko"]),
    ("비자", SearchFilters(), ["ko"]),
    ("비자", SearchFilters(visa="KR:E-7-4"), ["ko"]),
    ("비자", SearchFilters(country="JP"), []),
    ("비자 OR 件数", SearchFilters(), ["ko", "hsp"]),
    ("専門 NOT 비자", SearchFilters(), ["hsp"]),
    ("件数 AND 비자", SearchFilters(), []),
    ("톱티어 OR lottery", SearchFilters(), ["ko", "h1b"]),
    ("高度専門職 OR 톱티어", SearchFilters(since="2024-06-01"), ["ko"]),
]


@pytest.mark.parametrize(("query", "filters", "expected"), RANKED, ids=[q or "-" for q, _, _ in RANKED])
def test_word_queries_find_the_same_articles(searchable, query, filters, expected):
    results = search_articles(searchable, query, filters)
    assert set(_names(results)) == expected
    for result in results:
        assert "<mark>" in result["snippet"], result
    assert [r["rank"] for r in results] == sorted(r["rank"] for r in results)  # lower is better on both


@pytest.mark.parametrize(("query", "filters", "expected"), NEWEST_FIRST,
                         ids=[f"{q or '-'}-{i}" for i, (q, _, _) in enumerate(NEWEST_FIRST)])
def test_filters_and_cjk_queries_list_the_same_articles_newest_first(searchable, query, filters, expected):
    results = search_articles(searchable, query, filters)
    assert _names(results) == expected
    if query and results:
        assert "<mark>" in results[0]["snippet"]


def test_the_title_weighs_more_than_the_text(searchable):
    # "visa" is in the title of top-tier and football, and in the text of top-tier only once more.
    db_results = search_articles(searchable, "korea")
    assert _names(db_results)[0] == "top-tier"  # in its title; football has it in the text only


@pytest.mark.parametrize("query", ["a AND", '"unbalanced', "(비자)", "비자*", "NOT 비자", "AND lottery"])
def test_queries_fts5_refuses_are_refused_on_both(searchable, query):
    with pytest.raises(QueryError):
        search_articles(searchable, query)


def test_boolean_word_queries_mean_what_fts5_means(target):
    """Every arrangement of three words with side-by-side, AND, OR, NOT and parentheses finds, on this
    backend, exactly the documents FTS5 itself matches."""
    docs = ["alpha", "bravo", "alpha bravo", "charlie", "alpha charlie", "bravo charlie", "alpha bravo charlie"]
    db = open_db(target)
    ids = {store_article(db, article(f"https://b.example/{n}", "", text), [], [])[0]: n
           for n, text in enumerate(docs)}
    db.close()
    fts = sqlite3.connect(":memory:")
    fts.execute("CREATE VIRTUAL TABLE f USING fts5(x)")
    for n, text in enumerate(docs):
        fts.execute("INSERT INTO f (rowid, x) VALUES (?, ?)", [n, text])
    conn = open_readonly(target)
    queries = []
    for first, second, third in itertools.permutations(["alpha", "bravo", "charlie"]):
        for op1, op2 in itertools.product(["", "AND ", "OR ", "NOT "], repeat=2):
            queries += [f"{first} {op1}{second} {op2}{third}", f"{first} {op1}({second} {op2}{third})"]
    queries += ["alph*", '"alpha bravo"', '"bravo alpha"', '"alpha bravo"*', "charl* NOT alpha"]
    for query in queries:
        try:
            expected = sorted(row[0] for row in fts.execute("SELECT rowid FROM f WHERE f MATCH ?", [query]))
        except sqlite3.OperationalError:  # "alpha (bravo charlie)": FTS5 joins no group side by side
            with pytest.raises(QueryError):
                search_articles(conn, query)
            continue
        found = sorted(ids[r["id"]] for r in search_articles(conn, query, limit=100))
        assert found == expected, query
    conn.close()


# ---------------------------------------------------------------- alerts


def test_rule_conditions_match_the_same_articles(searchable, target):
    conditions = ledger.RuleConditions(query="semiconductor", visas=["KR:*"])
    conn = open_readonly(target)
    assert _names(ledger.matching_articles(conn, conditions)) == ["top-tier"]
    cjk = ledger.RuleConditions(query="비자 OR 件数", countries=["KR"])
    assert _names(ledger.matching_articles(conn, cjk)) == ["ko"]
    conn.close()


def test_a_message_is_claimed_by_exactly_one_of_several_racing_senders(target):
    db = open_db(target)
    article_ids = [store_article(db, article(f"https://c.example/{n}", f"Claim {n}", "text"), [], [])[0]
                   for n in range(10)]
    db.close()
    wins: list[tuple[int, int]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def sender(number: int) -> None:
        handle = open_db(target)
        try:
            start.wait()
            for article_id in article_ids:
                if ledger.claim_delivery(handle, "rule", [article_id], "ops@example.org", f"sender-{number}"):
                    wins.append((article_id, number))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            handle.close()

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(article_id for article_id, _ in wins) == article_ids
    # A message overlapping a claimed one is not claimed at all, and a released claim can be taken again.
    db = open_db(target)
    other, _ = store_article(db, article("https://c.example/other", "Other", "text"), [], [])
    assert not ledger.claim_delivery(db, "rule", [other, article_ids[0]], "ops@example.org")
    assert ledger.claim_delivery(db, "rule", [other], "ops@example.org")  # the failed claim kept nothing
    ledger.release_claim(db, "rule", [article_ids[0]], "ops@example.org")
    assert ledger.claim_delivery(db, "rule", [article_ids[0]], "ops@example.org")
    assert ledger.claim_delivery(db, "rule", [article_ids[0]], "someone-else@example.org")
    db.close()


def test_the_delivery_ledger_records_each_recipient_once(target):
    db = open_db(target)
    article_id, _ = store_article(db, article("https://d.example/1", "Ledger", "text"), [], [])
    assert ledger.register_rules(db, {"rule": "hash"}) == {"rule": article_id}
    assert ledger.record_delivery(db, "rule", [article_id], "a@example.org", ["a@example.org", "b@example.org"]) == []
    ledger.record_delivery(db, "rule", [article_id], "a@example.org", ["a@example.org", "b@example.org"])
    assert ledger.record_delivery(db, "rule", [article_id], "b@example.org",
                                  ["a@example.org", "b@example.org"]) == [article_id]
    assert ledger.sent_article_ids(db.conn, "rule") == {article_id}
    assert ledger.delivered_recipients(db.conn, "rule", [article_id]) == {article_id: {"a@example.org",
                                                                                       "b@example.org"}}
    assert ledger.record_failure(db, "rule", [article_id], "c@example.org", "550 no", give_up_after=2) is False
    assert ledger.record_failure(db, "rule", [article_id], "c@example.org", "550 no", give_up_after=2) is True
    db.close()


# ---------------------------------------------------------------- PostgreSQL only


def test_a_database_with_the_c_character_type_is_refused(postgres_url):
    from tests.postgres_server import create_database, drop_database

    url = create_database(ctype="C")
    try:
        with pytest.raises(StorageError, match="character type 'C'"):
            open_db(url)
    finally:
        drop_database(url)


def test_an_unreachable_server_or_a_bad_url_is_one_line(postgres_url):
    with pytest.raises(StorageError, match="cannot connect to PostgreSQL postgresql://monitor:\\*\\*\\*@127.0.0.1:1/"):
        open_db("postgresql://monitor:secret@127.0.0.1:1/monitor")
    with pytest.raises(StorageError) as error:
        open_readonly("postgres://monitor:secret@[bad/monitor")
    assert "secret" not in str(error.value) and "\n" not in str(error.value)


def test_without_psycopg_the_message_says_what_to_install(postgres_url):
    script = ("import sys; sys.modules['psycopg'] = None\n"
              "from storage import StorageError, open_db\n"
              "try:\n    open_db(sys.argv[1])\nexcept StorageError as exc:\n    print(exc)")
    out = subprocess.run([sys.executable, "-c", script, postgres_url], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert "pip install 'policy-monitor[postgres]'" in out.stdout, out.stderr


def test_the_cjk_gram_index_holds_what_sqlite_indexes(postgres_url):
    from storage.queries import cjk_grams

    db = open_db(postgres_url)
    title, text = "高度専門職ビザ", "한국 E-7-4 비자 ｶﾀｶﾅ and 中文"
    store_article(db, article("https://g.example/1", title, text), [], [])
    stored = db.execute("SELECT array_to_string(tsvector_to_array(cjk_grams), ' ') FROM articles").fetchone()[0]
    assert sorted(stored.split()) == sorted(cjk_grams(title, text).split())
    db.close()


@pytest.mark.parametrize("query", ["NEAR(top tier)", "title:visa", "^korea"])
def test_what_has_no_tsquery_translation_is_refused_in_one_line(postgres_url, query):
    db = open_db(postgres_url)
    db.close()
    conn = open_readonly(postgres_url)
    with pytest.raises(QueryError, match="no PostgreSQL translation"):
        search_articles(conn, query)
    conn.close()


# ---------------------------------------------------------------- maintenance and analyst questions


def test_pruning_empties_old_text_and_search_forgets_it(target):
    from storage.analyst import mentions_per_week, top_labels
    from storage.maintenance import prune_candidates, prune_texts

    db = open_db(target)
    old, _ = store_article(db, article("https://p.example/old", "Old 비자 notice", "old quota text 비자",
                                       published_at="2020-01-01T00:00:00+00:00"),
                           [mention("visa", "KR:E-9", "KR")], [])
    store_article(db, article("https://p.example/new", "New notice", "new quota text",
                              published_at="2099-01-01T00:00:00+00:00"), [], [])
    assert [c.id for c in prune_candidates(db.conn, 30)] == [old]
    assert prune_texts(db, 30) == 1
    # Mondays of the weeks, as on both backends' date functions (2020-01-01 was a Wednesday).
    assert mentions_per_week(db.conn, "visa", ["KR:E-9"], "2019-01-01") == [
        {"week": "2019-12-30", "label": "KR:E-9", "articles": 1}]
    assert top_labels(db.conn, "visa", "2019-01-01") == [("KR:E-9", 1)]
    db.close()
    conn = open_readonly(target)
    assert _names(search_articles(conn, "quota")) == ["new"]
    assert _names(search_articles(conn, "비자")) == ["old"]  # the title is kept
    conn.close()


# ---------------------------------------------------------------- schema


def test_both_backends_have_the_same_tables_and_columns(tmp_path: Path, postgres_url: str):
    """A migration added to one backend only fails here: every SQLite table and column exists on PostgreSQL
    (PostgreSQL adds only its search columns; SQLite its FTS5 tables, which have no PostgreSQL twin)."""
    sqlite_db = open_db(tmp_path / "schema.db")
    sqlite_tables = {
        name: {column[1] for column in sqlite_db.execute(f"PRAGMA table_info('{name}')")}
        for (name,) in sqlite_db.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')"
                                         " AND name NOT LIKE 'sqlite_%' AND name NOT LIKE 'articles_fts%'"
                                         " AND name NOT LIKE 'articles_cjk_grams%'")
    }
    postgres_db = open_db(postgres_url)
    postgres_tables: dict[str, set[str]] = {}
    for table, column in postgres_db.execute(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public'"):
        postgres_tables.setdefault(table, set()).add(column)
    missing = {table: sorted(columns - postgres_tables.get(table, set()))
               for table, columns in sqlite_tables.items() if columns - postgres_tables.get(table, set())}
    assert missing == {}

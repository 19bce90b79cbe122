"""`monitor serve`: Datasette over a database crawled from the demo site, asked over real HTTP."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import xml.etree.ElementTree as ET
from html import escape
from pathlib import Path

import httpx
import pytest

from monitor.analyst.serve import build_datasette, chart_spec, load_datasette_config, search_kind
from storage import open_readonly
from storage.queries import SearchFilters, search_articles
from tests.analyst_ui import free_port, get, serving

ROOT = Path(__file__).resolve().parents[1]


def table_count(ui: str, table: str, **params: str) -> int:
    response = get(f"{ui}/monitor/{table}.json", _size="0", **params)
    assert response.status_code == 200, response.text[:300]
    return response.json()["filtered_table_rows_count"]


def canned(ui: str, name: str, **params: str) -> list[dict]:
    response = get(f"{ui}/monitor/{name}.json", _shape="array", **params)
    assert response.status_code == 200, response.text[:300]
    return response.json()


# Search that really filters (Datasette does not detect FTS5 tables declared content='articles').

def test_search_box_on_articles_filters_english_words(ui):
    total = table_count(ui, "articles")
    hits = table_count(ui, "articles", _search="semiconductor*")
    assert 0 < hits < total


def test_search_box_on_articles_cjk_finds_japanese_and_korean(ui):
    total = table_count(ui, "articles_cjk")
    japanese = table_count(ui, "articles_cjk", _search="外国人")
    korean = table_count(ui, "articles_cjk", _search="톱티어")
    assert 0 < japanese < total and 0 < korean < total


@pytest.mark.parametrize(("query", "filters"), [
    ("visa", {}),
    ('"blue card" OR talent', {}),
    ("semicon*", {"lang": "en"}),
    ("外国人", {}),
    ("톱티어 OR \"top tier\"", {}),
    ("비자", {}),  # two characters: the substring fallback
    ("人材 NOT 高度", {}),
    ("", {"visa": "KR:*"}),
    ("", {"country": "jp"}),
    ("", {"sector": "semiconductors", "since": "2025-07-01"}),
])
def test_search_query_finds_what_monitor_search_finds(ui, demo_db, query, filters):
    rows = canned(ui, "search", q=query, **{name: filters.get(name, "") for name in
                                             ("visa", "sector", "country", "lang", "since")})
    conn = open_readonly(demo_db)
    expected = search_articles(conn, query, SearchFilters(**filters), limit=1000)
    assert [row["id"] for row in rows] != [] or query == "비자" and not expected
    assert sorted(row["id"] for row in rows) == sorted(result["id"] for result in expected)
    if search_kind(query) == "words":  # ranked alike, not only the same set
        assert [row["id"] for row in rows] == [result["id"] for result in expected]


@pytest.mark.parametrize(("kind", "parent"), [("visa", "JP:HSP"), ("sector", "other")])
def test_search_query_on_a_parent_id_takes_its_sub_types_as_monitor_search_does(ui, demo_db, kind, parent):
    from pipelines.tagging.lexicon import Taxonomy

    subtypes = Taxonomy.load().descendants(kind, parent)
    rows = canned(ui, "search", q="", **{name: (parent if name == kind else "") for name in
                                          ("visa", "sector", "country", "lang", "since")})
    conn = open_readonly(demo_db)
    filters = SearchFilters(**{kind: parent, f"{kind}_subtypes": subtypes})
    expected = search_articles(conn, "", filters, limit=1000)
    only_parent = search_articles(conn, "", SearchFilters(**{kind: parent}), limit=1000)
    assert sorted(row["id"] for row in rows) == sorted(result["id"] for result in expected)
    assert set(r["id"] for r in only_parent) <= set(r["id"] for r in expected)
    if kind == "sector":  # the demo has articles tagged with a finer field (batteries, robotics) and not `other`
        assert len(expected) > len(only_parent)


def test_search_query_with_a_bad_fts_query_says_why(ui):
    response = get(f"{ui}/monitor/search.json", q='"unbalanced', visa="", sector="", country="", lang="", since="")
    assert response.status_code == 400
    assert "unbalanced" in response.text or "syntax" in response.text


# Canned queries, each as HTML, .json and .csv (and the search as .atom).

CANNED = {
    "search": {"q": "visa"},
    "figure_timeline": {"visa": "JP:HSP"},
    "mentions_per_week": {"kind": "visa", "label": "KR:TOP-TIER"},
    "new_this_week": {},
    "alerts_sent_recent": {},
    "source_health": {},
}


@pytest.mark.parametrize("name", sorted(CANNED))
def test_canned_query_as_html_json_and_csv(ui, name):
    params = CANNED[name]
    json_rows = canned(ui, name, **params)
    response = get(f"{ui}/monitor/{name}.csv", **params)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    csv_rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(csv_rows) == len(json_rows)
    html = get(f"{ui}/monitor/{name}", **params)
    assert html.status_code == 200 and "<form" in html.text
    metadata, _ = load_datasette_config()
    assert escape(metadata["databases"]["monitor"]["queries"][name]["title"]) in html.text
    if name != "alerts_sent_recent":  # the demo sends no alerts
        assert json_rows


def test_figure_timeline_has_japans_hsp_recognitions(ui):
    rows = canned(ui, "figure_timeline", visa="JP:HSP")
    points = {(row["year"], row["value"], row["unit"]) for row in rows}
    assert {(2012, 313.0, "count"), (2023, 46946.0, "count")} <= points
    assert all(row["link"].startswith("http://127.0.0.1") and row["source"] for row in rows)


def test_mentions_per_week_counts_articles_by_monday(ui, demo_db):
    rows = canned(ui, "mentions_per_week", kind="visa", label="KR:TOP-TIER")
    conn = open_readonly(demo_db)
    total = conn.execute("SELECT count(DISTINCT article_id) FROM mentions WHERE kind = 'visa'"
                         " AND label = 'KR:TOP-TIER'").fetchone()[0]
    assert sum(row["articles"] for row in rows) == total
    for row in rows:
        assert time.strptime(row["week"], "%Y-%m-%d").tm_wday == 0


def test_source_health_filters_by_state(ui):
    rows = canned(ui, "source_health", state="")
    assert {row["name"] for row in rows} >= {"demo-desk-rss", "demo-isa-press"}
    ok_rows = canned(ui, "source_health", state="ok")
    assert ok_rows and all(row["state"] == "ok" for row in ok_rows)


def test_a_search_with_no_results_is_an_empty_atom_feed(ui):
    response = get(f"{ui}/monitor/search.atom", q="nosuchwordanywhere", visa="", sector="", country="", lang="",
                   since="")
    assert response.status_code == 200, response.text[:300]
    feed = ET.fromstring(response.content)
    ns = {"atom": "http://www.w3.org/2005/Atom"}
    assert feed.findall("atom:entry", ns) == []
    assert feed.find("atom:title", ns).text


def test_search_as_an_atom_feed(ui):
    response = get(f"{ui}/monitor/search.atom", q="visa", visa="", sector="", country="GB", lang="", since="")
    assert response.status_code == 200
    feed = ET.fromstring(response.content)
    ns = {"atom": "http://www.w3.org/2005/Atom"}
    entries = feed.findall("atom:entry", ns)
    json_rows = canned(ui, "search", q="visa", visa="", sector="", country="GB", lang="", since="")
    assert len(entries) == len(json_rows) > 0
    assert {entry.find("atom:link", ns).get("href") for entry in entries} == {row["link"] for row in json_rows}


# What users read, what they don't, and facets.

def test_every_visible_table_and_column_has_a_description(demo_db):
    metadata, _ = load_datasette_config()
    tables = metadata["databases"]["monitor"]["tables"]
    conn = open_readonly(demo_db)
    names = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")]
    for name in names:
        assert name in tables, f"{name} is neither described nor hidden"
        if tables[name].get("hidden"):
            continue
        assert tables[name]["title"] and tables[name]["description"]
        columns = [row[1] for row in conn.execute(f"PRAGMA table_info({name})")]
        assert set(columns) == set(tables[name]["columns"]), name


def test_internals_are_hidden_from_the_index(ui):
    page = get(f"{ui}/monitor").text
    assert "/monitor/articles" in page and "/monitor/figures" in page
    for internal in ("http_cache", "deferred_items", "alert_deliveries", "articles_fts_data"):
        assert f"/monitor/{internal}\"" not in page


def test_facets_by_source_lang_country_and_by_visa(ui):
    data = get(f"{ui}/monitor/articles.json", _size="0").json()
    assert {facet for facet in data["facet_results"]} >= {"source", "lang", "country"}
    by_visa = get(f"{ui}/monitor/tagged_articles.json", _size="0").json()["facet_results"]["visa"]["results"]
    counts = {row["value"]: row["count"] for row in by_visa}
    assert counts.get("JP:HSP", 0) >= 1 and counts.get("KR:E-7", 0) >= 1


# The dashboard draws from the committed Vega-Lite files.

def test_dashboard_charts_use_the_committed_specs_and_get_their_fields(ui):
    metadata, _ = load_datasette_config()
    charts = metadata["plugins"]["datasette-dashboards"]["policy"]["charts"]
    assert chart_spec("figure_timeline.vl.json").items() <= charts["figure-timeline"]["display"].items()
    assert chart_spec("mentions_per_week.vl.json").items() <= charts["visas-per-week"]["display"].items()
    page = get(f"{ui}/-/dashboards/policy")
    assert page.status_code == 200 and "figures over the years" in page.text
    params = {"country": "", "visa": "", "figure_visa": "JP:HSP", "sector": "", "date_start": "", "date_end": ""}
    for slug, fields in [("figure-timeline", {"year", "value", "unit", "sources"}),
                         ("visas-per-week", {"week", "label", "articles"}),
                         ("sectors-per-week", {"week", "label", "articles"})]:
        rows = get(f"{ui}/monitor.json", sql=charts[slug]["query"], _shape="array", **params).json()
        assert rows and fields <= set(rows[0]), slug
    timeline = get(f"{ui}/monitor.json", sql=charts["figure-timeline"]["query"], _shape="array", **params).json()
    assert {(r["year"], r["value"]) for r in timeline} >= {(2012, 313.0), (2023, 46946.0)}


def test_newest_articles_table_escapes_text_from_the_web(ui):
    metadata, _ = load_datasette_config()
    sql = metadata["plugins"]["datasette-dashboards"]["policy"]["charts"]["newest-articles"]["query"]
    sql = sql.replace("FROM articles a", "FROM (SELECT id, '<img src=x onerror=alert(1)>' AS title, url, link,"
                      " source, country, lang, published_at, fetched_at FROM articles) a")
    rows = get(f"{ui}/monitor.json", sql=sql, _shape="array", country="", visa="", sector="",
               date_start="", date_end="").json()
    assert rows and all("<img" not in row["title"] and "&lt;img" in row["title"] for row in rows)


# Read-only by construction.

def test_datasette_opens_the_file_read_only(demo_db):
    database = build_datasette(demo_db).databases["monitor"]
    conn = database.connect()
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        conn.execute("CREATE TABLE intruder (x)")


def test_writes_through_the_sql_box_fail_and_change_nothing(ui, demo_db):
    before = open_readonly(demo_db).execute("SELECT count(*), max(id) FROM articles").fetchone()
    for sql in ("DELETE FROM articles", "UPDATE articles SET title = 'x'", "DROP TABLE articles",
                "PRAGMA user_version = 99", "ATTACH DATABASE '/tmp/x.db' AS x",
                "WITH x AS (SELECT 1) DELETE FROM articles"):
        response = get(f"{ui}/monitor.json", sql=sql)
        assert response.status_code >= 400 or response.json().get("ok") is False, sql
    after = open_readonly(demo_db).execute("SELECT count(*), max(id) FROM articles").fetchone()
    assert tuple(before) == tuple(after)
    assert open_readonly(demo_db).execute("PRAGMA user_version").fetchone()[0] != 99


WRITER = textwrap.dedent("""
    import sys, time
    from storage import open_db
    from storage.writes import content_hash, store_article
    db = open_db(sys.argv[1])
    deadline = time.monotonic() + float(sys.argv[2])
    n = 0
    print("writing", flush=True)
    while time.monotonic() < deadline:
        text = f"Concurrent write number {n}: the E-7 visa quota rises again. " * 20
        store_article(db, {"url": f"https://example.org/w/{n}", "title": f"Write {n}", "text": text,
                           "lang": "en", "source": "writer", "content_hash": content_hash(f"Write {n}", text)},
                      [], [])
        n += 1
    print(n, flush=True)
""")


def test_ui_answers_while_another_process_writes(demo_db, tmp_path):
    db_path = tmp_path / "live.db"
    source = sqlite3.connect(demo_db)
    target = sqlite3.connect(db_path)
    source.backup(target)
    source.close()
    target.close()
    with serving(db_path) as base:
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(db_path), "4"], cwd=ROOT,
                                  stdout=subprocess.PIPE, text=True)
        assert writer.stdout.readline().strip() == "writing"
        seen, answers = set(), 0
        while writer.poll() is None:
            response = get(f"{base}/monitor/articles.json", _size="0", _search="quota")
            assert response.status_code == 200
            seen.add(response.json()["filtered_table_rows_count"])
            answers += 1
        written = int(writer.stdout.read().split()[-1])
        assert writer.returncode == 0 and written > 0 and answers >= 3
        assert len(seen) >= 2, "the UI saw the writer's articles arrive"


# The command.

def test_serve_without_a_database_is_a_one_line_error(tmp_path):
    result = subprocess.run([sys.executable, "-m", "monitor", "--db", str(tmp_path / "none.db"), "serve"],
                            capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith("monitor: ") and result.stderr.count("\n") == 1


def test_serve_on_a_port_in_use_is_a_one_line_error(demo_db, tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "monitor", "--db", str(demo_db), "serve", "--port", str(port)],
                                capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert result.returncode == 2
    assert result.stderr == f"monitor: cannot listen on 127.0.0.1:{port}: Address already in use\n"


@pytest.mark.parametrize(("host", "stop"), [("0.0.0.0", signal.SIGTERM), ("127.0.0.1", signal.SIGINT)])
def test_serve_warns_on_all_interfaces_and_stops_cleanly_on_a_signal(demo_db, tmp_path, host, stop):
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "monitor", "--db", str(demo_db), "serve",
                                "--host", host, "--port", str(port)],
                               stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        first_line = process.stderr.readline()
        assert ("no authentication" in first_line) == (host == "0.0.0.0")
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/-/dashboards/policy", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "monitor serve did not answer"
            time.sleep(0.2)
        process.send_signal(stop)
        assert process.wait(timeout=20) == 0
        assert "Traceback" not in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()


def test_chart_specs_are_json_the_other_commands_can_read():
    for name in ("figure_timeline.vl.json", "mentions_per_week.vl.json"):
        assert json.loads((ROOT / "monitor" / "analyst" / "charts" / name).read_text())["encoding"]

"""`monitor figures` and `monitor report` on a database crawled from the demo site over real HTTP."""

from __future__ import annotations

import html
import json
import re
import shutil
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.analyst import report as report_module
from monitor.analyst.figures import GROUP_KEY, build_timeline, load_chart
from monitor.cli import main
from monitor.crawl import run_crawl
from monitor.demo import demo_config
from monitor.demo_server import serve_demo_site
from pipelines.tagging import Tagger
from storage import open_db
from storage.alerts import record_sent
from storage.db import utc_now
from storage.writes import content_hash, record_source_failure, store_article

DEMO_SINCE = "2024-01-01"


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory) -> Path:
    """A database filled by crawling the bundled demo site on 127.0.0.1, as `monitor demo` does."""
    path = tmp_path_factory.mktemp("analyst") / "demo.db"
    with serve_demo_site() as server:
        config = demo_config(server.base_url, path, path.parent / "outbox")
        db = open_db(path)
        run_crawl(config, db, Tagger.load())
        db.close()
    return path


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ---------------------------------------------------------------- monitor figures

def test_figures_shows_japans_hsp_recognitions_from_2012_to_2023(demo_db, capsys):
    code, out, _ = run(capsys, "--db", str(demo_db), "figures", "--visa", "JP:HSP", "--unit", "count",
                       "--format", "json")
    assert code == 0
    rows = json.loads(out)
    facts = {(r["year"], r["value"]) for r in rows}
    assert {(2012, 313), (2023, 46946)} <= facts
    assert all(r["unit"] == "count" and r["visa"] == "JP:HSP" for r in rows)
    hsp_2023 = next(r for r in rows if r["year"] == 2023 and r["value"] == 46946)
    assert hsp_2023["sources"] == ["demo-isa-press"]
    assert hsp_2023["metric"] == "recognitions"  # what the figure counts (figures.metric)
    assert "46,946" in hsp_2023["sentence"]
    assert len(hsp_2023["links"]) == len(hsp_2023["articles"]) == 1 and "/ja/press/" in hsp_2023["links"][0]


def test_figures_table_reads_like_a_timeline(demo_db, capsys):
    code, out, _ = run(capsys, "--db", str(demo_db), "figures", "--visa", "JP:HSP", "--unit", "count")
    assert code == 0
    assert out.index("2012") < out.index("2023")
    assert "313" in out and "46,946" in out


def test_figures_since_year_drops_earlier_years(demo_db, capsys):
    _, out, _ = run(capsys, "--db", str(demo_db), "figures", "--visa", "JP:HSP", "--since", "2020",
                    "--format", "csv")
    years = [int(line.split(",")[0]) for line in out.splitlines()[1:]]
    assert years and min(years) >= 2020


def test_figures_country_wildcard_covers_that_countrys_visas_only(demo_db, capsys):
    _, out, _ = run(capsys, "--db", str(demo_db), "figures", "--visa", "KR:*", "--format", "json")
    visas = {r["visa"] for r in json.loads(out)}
    assert len(visas) >= 2
    assert all(v.startswith("KR:") for v in visas)


def test_figures_vega_is_the_shared_spec_with_the_data_added(demo_db, capsys):
    _, out, _ = run(capsys, "--db", str(demo_db), "figures", "--visa", "JP:HSP", "--unit", "count",
                    "--format", "vega")
    spec = json.loads(out)
    shared = load_chart("figure_timeline")
    assert spec["encoding"] == shared["encoding"] and spec["mark"] == shared["mark"]
    values = spec["data"]["values"]
    assert {(v["year"], v["value"], v["unit"]) for v in values} >= {(2012, 313, "count"), (2023, 46946, "count")}
    assert all(v["sources"] == "demo-isa-press" for v in values)


def test_figures_unknown_visa_is_one_line_with_a_suggestion(demo_db, capsys):
    code, out, err = run(capsys, "--db", str(demo_db), "figures", "--visa", "JP:HS")
    assert code == 2 and out == ""
    assert err.count("\n") == 1
    assert "unknown visa id 'JP:HS'" in err and "did you mean" in err and "'JP:HSP'" in err


def test_figures_unknown_country_wildcard_is_refused(demo_db, capsys):
    code, _, err = run(capsys, "--db", str(demo_db), "figures", "--visa", "ZZ:*")
    assert code == 2 and "no visa of country 'ZZ'" in err


def test_figures_bad_year_is_a_usage_error(demo_db, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--db", str(demo_db), "figures", "--visa", "JP:HSP", "--since", "last year"])
    assert exit_.value.code == 2 and "expected a year" in capsys.readouterr().err


def _figure(article_id, value, source, year=2023, unit="count", visa="JP:HSP", metric="recognitions"):
    return {"article_id": article_id, "value": value, "unit": unit, "year": year, "visa": visa, "metric": metric,
            "source": source, "title": f"t{article_id}", "link": f"https://example.org/{article_id}",
            "sentence": f"s{article_id}"}


def test_the_same_fact_from_several_articles_is_one_row_with_all_sources():
    rows = build_timeline([
        _figure(1, 46946, "isa"), _figure(2, 46950, "nikkei"), _figure(3, 46946, "isa"),  # within 0.5%
        _figure(4, 47500, "blog"),                       # 1.2% higher: another figure
        _figure(5, 46946, "isa", unit="people"),          # another unit
        _figure(6, 46946, "isa", year=2022),              # another year
        _figure(7, 46946, "isa", metric="holders"),       # counts something else
    ])
    assert [(r.key["year"], r.key["metric"], r.key["unit"], r.value) for r in rows] == [
        (2022, "recognitions", "count", 46946), (2023, "holders", "count", 46946),
        (2023, "recognitions", "count", 46946), (2023, "recognitions", "count", 47500),
        (2023, "recognitions", "people", 46946)]
    merged = rows[2]
    assert merged.article_ids == [1, 3, 2] and merged.sources == ["isa", "nikkei"]
    assert merged.value == 46946  # the value most articles state


def test_the_grouping_key_is_visa_metric_unit_year():
    assert GROUP_KEY == ("visa", "metric", "unit", "year")


# ---------------------------------------------------------------- monitor report

def _report(capsys, db: Path, out: Path, *extra: str) -> str:
    code, _, err = run(capsys, "--db", str(db), "report", "--since", DEMO_SINCE, "--out", str(out), *extra)
    assert code == 0, err
    return out.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def demo_report(demo_db, tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("report") / "report.html"
    assert main(["--db", str(demo_db), "report", "--since", DEMO_SINCE, "--out", str(out)]) == 0
    return out.read_text(encoding="utf-8")


def _article_links(db: Path) -> set[str]:
    conn = sqlite3.connect(db)
    links = {row[0] for row in conn.execute("SELECT coalesce(link, url) FROM articles")}
    conn.close()
    return links


def test_report_needs_no_network_only_article_links_leave_the_file(demo_db, demo_report):
    assert not re.search(r"\bsrc\s*=", demo_report, re.I)
    assert "<script" not in demo_report.lower() and "<link" not in demo_report.lower()
    assert "@import" not in demo_report and "url(" not in demo_report
    hrefs = {html.unescape(h) for h in re.findall(r'href="([^"]*)"', demo_report)}
    assert hrefs and hrefs <= _article_links(demo_db)


def test_report_has_svg_charts_with_marks(demo_report):
    charts = re.findall(r"<svg\b.*?</svg>", demo_report, re.S)
    assert len(charts) >= 3  # visas per week, sectors per week, at least one figure timeline
    for chart in charts:
        assert re.search(r'class="mark-(line|symbol)', chart)
        assert "<path" in chart


def test_report_is_readable_on_a_phone(demo_report):
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in demo_report
    assert "@media (max-width" in demo_report and "svg.chart { width: 100%" in demo_report


def test_report_shows_japanese_and_korean_titles_and_the_hsp_timeline(demo_db, demo_report):
    conn = sqlite3.connect(demo_db)
    # The newest Japanese and Korean titles (later rows win in the dict): the report lists the newest per country.
    titles = dict(conn.execute("SELECT lang, title FROM articles WHERE lang IN ('ja', 'ko')"
                               " ORDER BY coalesce(published_at, fetched_at), id"))
    conn.close()
    assert set(titles) == {"ja", "ko"}
    for title in titles.values():
        assert title in demo_report
    assert "JP:HSP" in demo_report and "46,946 count" in demo_report


def test_report_counts_match_the_database(demo_db, demo_report):
    conn = sqlite3.connect(demo_db)
    articles, sources = conn.execute(
        "SELECT count(*), count(DISTINCT source) FROM articles WHERE coalesce(published_at, fetched_at) >= ?",
        [DEMO_SINCE]).fetchone()
    conn.close()
    assert articles > 10
    assert re.search(rf'id="count-articles"><strong>{articles}</strong>', demo_report)
    assert re.search(rf'id="count-sources"><strong>{sources}</strong>', demo_report)


def test_report_escapes_hostile_titles_and_links(demo_db, tmp_path, capsys):
    db_path = tmp_path / "hostile.db"
    shutil.copy(demo_db, db_path)
    db = open_db(db_path)
    title = '<script>alert("x")</script><img src=x onerror=alert(1)> 高度人材'
    text = "A hostile page about the HSP visa."
    store_article(db, {"url": "javascript:alert(1)", "title": title, "text": text, "lang": "en",
                       "country": "JP", "source": "evil", "published_at": "2025-09-30T00:00:00+00:00",
                       "content_hash": content_hash(title, text)}, [], [])
    db.close()
    page = _report(capsys, db_path, tmp_path / "report.html")
    assert "<script" not in page and "<img" not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page
    assert 'href="javascript:' not in page


def test_report_bad_date_is_one_line_exit_2(demo_db, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--db", str(demo_db), "report", "--since", "May 1st", "--out", str(tmp_path / "r.html")])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and "expected a date" in err
    assert not (tmp_path / "r.html").exists()


def test_report_defaults_to_the_last_30_days_and_says_when_that_is_empty(demo_db, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "--db", str(demo_db), "report")
    assert code == 0
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    start = (datetime.now(UTC).date() - timedelta(days=30)).isoformat()
    assert f'<time datetime="{start}">' in page
    if 'id="count-articles"><strong>0<' in page:  # the demo's articles are dated 2024-2025
        assert "No articles in this period." in page
        assert "no article is dated since" in err


def test_report_lists_alerts_sent_and_failing_sources(demo_db, tmp_path, capsys):
    db_path = tmp_path / "busy.db"
    shutil.copy(demo_db, db_path)
    db = open_db(db_path)
    ids = [row[0] for row in db.execute("SELECT id FROM articles ORDER BY id LIMIT 3")]
    record_sent(db, "hsp-watch", ids)
    record_source_failure(db, "demo-moj-press", "HTTP 503 <Service Unavailable>", utc_now())
    db.close()
    page = _report(capsys, db_path, tmp_path / "report.html")
    alerts = page[page.index("<h2>Alerts sent</h2>"):page.index("<h2>Sources failing</h2>")]
    assert "<td>hsp-watch</td><td class=\"num\">3</td>" in alerts
    failing = page[page.index("<h2>Sources failing</h2>"):]
    assert "demo-moj-press" in failing and "HTTP 503 &lt;Service Unavailable&gt;" in failing


def test_report_keeps_the_facts_most_articles_state_and_points_to_the_rest(demo_db, tmp_path, capsys,
                                                                         monkeypatch):
    monkeypatch.setattr(report_module, "TIMELINE_ROWS", 2)
    page = _report(capsys, demo_db, tmp_path / "report.html")
    assert "more facts stated by fewer articles: <code>monitor figures --visa CA:EXPRESS-ENTRY</code>" in page

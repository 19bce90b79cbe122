"""`monitor sources check NAME [--file PATH] [--format table|json]`: what a source would give a crawl, with a
verdict, storing nothing; for feeds, listing pages and JSON APIs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from monitor.config import load_config
from monitor.sourcecheck import check_source, read_saved_response
from storage import open_db
from tests.conftest import ROOT
from tests.hostile_server import HostileServer, Static
from tests.test_cli import assert_one_line_error, monitor

FIXTURES = ROOT / "tests" / "fixtures" / "sources"

CONFIG = """
[storage]
path = "check.db"

[crawl]
allow_private_addresses = true
per_host_delay = 0

[[sources]]
name = "mhlw"
kind = "feed"
url = "{base}/news.rdf"
enabled = false                 # a check is what one runs before enabling
[sources.filter]
any = ["外国人", "育成就労"]

[[sources]]
name = "korea-list"
kind = "html_list"
url = "https://www.korea.kr/briefing/pressReleaseList.do"
[sources.selectors]
item = "div.list_type > ul > li"
link = "a"
title = "span.text > strong"
summary = "span.lead"
date = "span.source > span:nth-of-type(1)"
link_regex = "newsId=(\\\\d+)"
link_template = "https://www.korea.kr/briefing/pressReleaseView.do?newsId={{1}}"

[[sources]]
name = "wrong-board"
kind = "html_list"
url = "https://www.moj.go.kr/moj/221/subview.do"
[sources.selectors]
item = "table.artclTable tbody tr"

[[sources]]
name = "one-link-board"
kind = "html_list"
url = "https://board.example.org/list.html"
[sources.selectors]
item = "li"
date = "span.when"

[[sources]]
name = "register"
kind = "json_api"
url = "https://www.federalregister.gov/api/v1/documents.json"
items_path = "results"
[sources.fields]
url = "html_url"
title = "title"
date = "publication_date"
"""


def setup(tmp_path: Path, base: str = "https://www.mhlw.go.jp/stf") -> Path:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG.format(base=base), encoding="utf-8")
    return path


def saved(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_feed_check_lists_each_item_and_whether_the_filter_keeps_it(tmp_path: Path):
    setup(tmp_path)
    result = monitor("sources", "check", "mhlw", "--file", str(FIXTURES / "mhlw_news.rdf"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1] == ("mhlw (feed, https://www.mhlw.go.jp/stf/news.rdf): 4 items, 4 with dates, 2 filtered;"
                         " looks right")
    table = "\n".join(lines[:-1])
    assert "インフルエンザ" in table and "matched '外国人'" in table and "matched '育成就労'" in table
    assert "no keyword of [sources.filter]" in table


def test_json_output_has_items_counts_problems_and_the_verdict(tmp_path: Path):
    setup(tmp_path)
    result = monitor("sources", "check", "mhlw", "--file", str(FIXTURES / "mhlw_news.rdf"), "--format", "json",
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["counts"] == {"items": 4, "with_dates": 4, "filtered": 2, "kept": 2}
    assert report["problems"] == [] and report["verdict"].endswith("looks right")
    first = report["items"][0]
    assert first == {
        "title": "「外国人雇用状況」の届出状況まとめ（令和7年10月末時点）",
        "url": "https://www.mhlw.go.jp/stf/newpage_66101.html",
        "published_at": "2026-01-30T05:00:00+00:00", "date_text": "2026-01-30T14:00:00+09:00",
        "kept": True, "reason": "matched '外国人'",
    }
    assert [i["kept"] for i in report["items"]] == [True, False, True, False]


def test_html_list_check_on_a_saved_page(tmp_path: Path):
    setup(tmp_path)
    result = monitor("sources", "check", "korea-list", "--file", str(FIXTURES / "korea_kr_press_release_list.html"),
                     "--format", "json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["verdict"] == "5 items, 5 with dates, 0 filtered; looks right"
    assert report["items"][0]["url"] == "https://www.korea.kr/briefing/pressReleaseView.do?newsId=156739901"
    assert report["items"][0]["date_text"] == "2026.01.20" and report["items"][0]["reason"] == "no filter"


def test_a_selector_that_matches_nothing_is_named_and_exits_1(tmp_path: Path):
    setup(tmp_path)
    result = monitor("sources", "check", "wrong-board", "--file", str(FIXTURES / "korea_kr_press_release_list.html"),
                     cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert result.stdout.strip().endswith(
        "0 items, 0 with dates, 0 filtered; the item selector 'table.artclTable tbody tr' matched nothing")


def test_a_date_format_not_understood_is_named_with_an_example(tmp_path: Path):
    setup(tmp_path)
    page = saved(tmp_path, "board.html", "<ul>" + "".join(
        f'<li><a href="/n/{n}">Notice {n}</a><span class="when">{n} days ago</span></li>' for n in (1, 2, 3))
        + "</ul>")
    result = monitor("sources", "check", "one-link-board", "--file", str(page), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].endswith(
        "3 items, 0 with dates, 0 filtered; date format not understood in 3 of 3 items (e.g. '1 days ago')")
    assert "? 1 days ago" in result.stdout  # the raw date is shown where no date could be read


def test_links_that_all_point_to_one_page_are_named(tmp_path: Path):
    setup(tmp_path)
    page = saved(tmp_path, "board.html", "<ul>" + "".join(
        f'<li><a href="list.html">Notice {n}</a><span class="when">2026.01.0{n}</span></li>' for n in (1, 2, 3))
        + "</ul>")
    result = monitor("sources", "check", "one-link-board", "--file", str(page), cwd=tmp_path)
    verdict = result.stdout.strip().splitlines()[-1]
    assert "all 3 rows link to one page (https://board.example.org/list.html)" in verdict
    assert "1 of 1 links point back to the page itself" in verdict
    assert "looks right" not in verdict


def test_a_missing_date_element_is_named(tmp_path: Path):
    config = load_config(setup(tmp_path))
    page = saved(tmp_path, "board.html", '<ul><li><a href="/a">A</a></li><li><a href="/b">B</a></li></ul>')
    report = check_source(config.source("one-link-board"), read_saved_response(config.source("one-link-board"), page))
    assert report.problems == ["2 of 2 items have no date: the date selector 'span.when' matched nothing"]
    assert report.exit_code == 0


def test_json_api_check(tmp_path: Path):
    setup(tmp_path)
    body = saved(tmp_path, "documents.json", json.dumps({"results": [
        {"html_url": "https://www.federalregister.gov/d/2026-00101", "title": "H-1B Modernization",
         "publication_date": "2026-01-15"},
        {"html_url": "https://www.federalregister.gov/d/2026-00102", "title": "EB-5 Fees",
         "publication_date": "January 2026"},
    ]}))
    result = monitor("sources", "check", "register", "--file", str(body), "--format", "json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [i["title"] for i in report["items"]] == ["H-1B Modernization", "EB-5 Fees"]
    assert report["verdict"] == ("2 items, 1 with dates, 0 filtered; date format not understood in 1 of 2 items"
                                 " (e.g. 'January 2026')")
    empty = saved(tmp_path, "empty.json", '{"results": []}')
    result = monitor("sources", "check", "register", "--file", str(empty), cwd=tmp_path)
    assert result.returncode == 1 and "0 items" in result.stdout and "the document has no items" in result.stdout


def test_check_stores_nothing(tmp_path: Path):
    setup(tmp_path)
    db = tmp_path / "check.db"
    monitor("sources", "check", "mhlw", "--file", str(FIXTURES / "mhlw_news.rdf"), cwd=tmp_path)
    assert not db.exists(), "a check must not create the database"
    open_db(db).close()
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    assert monitor("sources", "check", "mhlw", "--file", str(FIXTURES / "mhlw_news.rdf"), cwd=tmp_path).returncode == 0
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before


def test_check_fetches_the_source_from_its_url(tmp_path: Path):
    with HostileServer(robots_txt="") as server:
        server.static["/stf/news.rdf"] = Static((FIXTURES / "mhlw_news.rdf").read_bytes(), "application/rss+xml")
        setup(tmp_path, base=server.url("/stf"))
        result = monitor("sources", "check", "mhlw", cwd=tmp_path)
        assert len(server.hits("/stf/news.rdf")) == 1
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].endswith("4 items, 4 with dates, 2 filtered; looks right")


def test_a_fetch_that_fails_is_the_verdict(tmp_path: Path):
    with HostileServer(robots_txt="") as server:
        setup(tmp_path, base=server.url("/gone"))
        result = monitor("sources", "check", "mhlw", "--format", "json", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["items"] == [] and report["problems"][0].startswith("fetch failed")


def test_an_unknown_source_is_a_config_error_with_a_suggestion(tmp_path: Path):
    setup(tmp_path)
    result = monitor("sources", "check", "mhwl", cwd=tmp_path)
    assert_one_line_error(result, "no source named 'mhwl'")
    assert "did you mean 'mhlw'?" in result.stderr


def test_an_unreadable_file_is_a_config_error(tmp_path: Path):
    setup(tmp_path)
    assert_one_line_error(monitor("sources", "check", "mhlw", "--file", str(tmp_path / "nope.xml"), cwd=tmp_path),
                          "nope.xml")


def test_sources_without_check_works_as_before(tmp_path: Path):
    setup(tmp_path)
    table = monitor("sources", cwd=tmp_path)
    assert table.returncode == 0 and "korea-list" in table.stdout and "never crawled" in table.stdout
    listed = monitor("sources", "--format", "json", cwd=tmp_path)
    assert listed.returncode == 0
    assert [s["name"] for s in json.loads(listed.stdout)] == [
        "mhlw", "korea-list", "wrong-board", "one-link-board", "register"]
    # --format given before `check` applies to the check.
    checked = monitor("sources", "--format", "json", "check", "mhlw", "--file", str(FIXTURES / "mhlw_news.rdf"),
                      cwd=tmp_path)
    assert json.loads(checked.stdout)["counts"]["items"] == 4


def test_items_without_titles_and_a_filter_that_keeps_nothing_are_named(tmp_path: Path):
    config = load_config(setup(tmp_path))
    board = config.source("one-link-board")
    page = saved(tmp_path, "board.html", '<ul><li><a href="/a"><img src="x.png"></a><span class="when">2026.01.02'
                                         '</span></li></ul>')
    assert check_source(board, read_saved_response(board, page)).problems == ["1 of 1 items have no title"]
    mhlw = config.source("mhlw")
    report = check_source(mhlw, read_saved_response(mhlw, FIXTURES / "korea_kr_dept_moel.xml"))
    assert report.filtered == 2 and report.problems == ["the filter left out every item"]
    assert report.exit_code == 0  # items were found; the verdict says why none would be stored

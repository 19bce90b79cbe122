"""[sources.filter] any = [...]: the keep-filter stage, its configuration, and what a crawl does with it."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.config import ConfigError, load_config
from monitor.crawl import run_crawl, select_items
from pipelines.items import Item
from pipelines.keep import FILTERED_OUT, KeepFilter, keep_reason, split_by_filter
from pipelines.tagging import Tagger
from storage import open_db
from tests.hostile_server import HostileServer, Static
from tests.test_cli import assert_one_line_error, monitor

KEEP = KeepFilter(any=("在留資格", "外国人", "特定技能", "EPA"))


def test_an_item_is_kept_when_its_title_or_summary_names_a_keyword():
    assert keep_reason(Item("https://a/1", title="特定技能の受入れ見込数"), KEEP) == "matched '特定技能'"
    assert keep_reason(Item("https://a/2", title="告示の改正", summary="外国人の雇用について"), KEEP) == \
        "matched '外国人'"
    assert keep_reason(Item("https://a/3", title="雇用保険料率について"), KEEP) is None
    assert keep_reason(Item("https://a/4"), KEEP) is None  # nothing to match


def test_matching_ignores_case_and_full_width_forms():
    assert keep_reason(Item("https://a/1", title="ＥＰＡに基づく看護師候補者"), KEEP) == "matched 'EPA'"
    assert keep_reason(Item("https://a/2", title="epa candidates"), KEEP) == "matched 'EPA'"
    half_width = KeepFilter(any=("ビザ",))
    assert keep_reason(Item("https://a/3", title="ﾋﾞｻﾞの申請"), half_width) == "matched 'ビザ'"


def test_split_keeps_order_and_says_why_an_item_is_dropped():
    items = [Item("https://a/1", title="外国人雇用"), Item("https://a/2", title="道路交通法"),
             Item("https://a/3", title="在留資格の変更")]
    kept, dropped = split_by_filter(items, KEEP)
    assert [i.url for i in kept] == ["https://a/1", "https://a/3"]
    assert dropped == [(items[1], FILTERED_OUT)]
    assert split_by_filter(items, None) == (items, [])


def test_max_items_counts_after_the_filter(tmp_path: Path, write_config):
    config = load_config(write_config(
        '[[sources]]\nname = "s"\nkind = "feed"\nurl = "https://example.org/f"\nmax_items = 1\n'
        '[sources.filter]\nany = ["外国人"]\n'))
    items = [Item("https://a/1", title="道路"), Item("https://a/2", title="外国人 1"),
             Item("https://a/3", title="外国人 2")]
    kept, dropped = select_items(config.sources[0], items)
    assert [i.url for i in kept] == ["https://a/2"]
    assert [(i.url, why) for i, why in dropped] == [("https://a/1", FILTERED_OUT),
                                                     ("https://a/3", "beyond max_items = 1")]


@pytest.mark.parametrize(("table", "message"), [
    ('[sources.filter]\nany = []\n', "needs at least one keyword"),
    ('[sources.filter]\nany = "外国人"\n', "expected a list of strings"),
    ('[sources.filter]\nany = ["外国人", 3]\n', "expected a list of strings"),
    ('[sources.filter]\nany = ["  "]\n', "empty"),
    ('[sources.filter]\nnone = ["x"]\n', "unknown key 'none'"),
    ('[sources.filter]\n', "filter.any: required"),
    ('filter = "外国人"\n', "expected a table"),
])
def test_a_bad_filter_is_a_one_line_config_error(write_config, table, message):
    path = write_config('[[sources]]\nname = "mhlw"\nkind = "feed"\nurl = "https://example.org/f"\n' + table)
    with pytest.raises(ConfigError, match=message) as failure:
        load_config(path)
    assert "mhlw" in str(failure.value) and "\n" not in str(failure.value)
    assert_one_line_error(monitor("sources", cwd=path.parent), "filter")


FEED = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>t</title>
<item><title>外国人雇用状況の届出</title><link>https://www.mhlw.go.jp/a.html</link>
<pubDate>Fri, 30 Jan 2026 05:00:00 GMT</pubDate><description>まとめ</description></item>
<item><title>雇用保険料率</title><link>https://www.mhlw.go.jp/b.html</link>
<pubDate>Fri, 30 Jan 2026 04:00:00 GMT</pubDate><description>料率</description></item>
</channel></rss>"""


def test_a_crawl_stores_only_kept_items_and_counts_the_rest(tmp_path: Path, write_config):
    with HostileServer(robots_txt="") as server:
        server.static["/feed"] = Static(FEED, "application/rss+xml")
        config = load_config(write_config(
            f'[crawl]\nallow_private_addresses = true\nper_host_delay = 0\n'
            f'[[sources]]\nname = "mhlw"\nkind = "feed"\nurl = "{server.url("/feed")}"\nfetch_articles = false\n'
            '[sources.filter]\nany = ["外国人"]\n'))
        db = open_db(tmp_path / "f.db")
        summary = run_crawl(config, db, Tagger.load())
        assert [r[0] for r in db.execute("SELECT title FROM articles")] == ["外国人雇用状況の届出"]
        assert summary.to_json()["sources"][0]["filtered_out"] == 1
        # The next cycle sees the same body: nothing new, nothing stored from the dropped item.
        run_crawl(config, db, Tagger.load())
        assert db.execute("SELECT count(*) FROM articles").fetchone() == (1,)
        # A filter that changes re-reads the same body: the left-out item is now stored.
        widened = load_config(write_config(
            f'[crawl]\nallow_private_addresses = true\nper_host_delay = 0\n'
            f'[[sources]]\nname = "mhlw"\nkind = "feed"\nurl = "{server.url("/feed")}"\nfetch_articles = false\n'
            '[sources.filter]\nany = ["外国人", "雇用保険"]\n'))
        run_crawl(widened, db, Tagger.load())
    assert db.execute("SELECT count(*) FROM articles").fetchone() == (2,)


def test_crawl_progress_names_the_items_left_out(tmp_path: Path):
    with HostileServer(robots_txt="") as server:
        server.static["/feed"] = Static(FEED, "application/rss+xml")
        (tmp_path / "config.toml").write_text(
            f'[crawl]\nallow_private_addresses = true\nper_host_delay = 0\n'
            f'[[sources]]\nname = "mhlw"\nkind = "feed"\nurl = "{server.url("/feed")}"\nfetch_articles = false\n'
            '[sources.filter]\nany = ["外国人"]\n', encoding="utf-8")
        result = monitor("crawl", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "1 new, 1 left out by its filter" in result.stderr

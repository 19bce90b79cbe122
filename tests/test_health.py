"""Source health: failures back off and recover, broken boards and silent sources are flagged."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitor.config import config_from_dict
from monitor.crawl import run_crawl
from monitor.health import FLAG_AFTER_FAILURES, assess_sources, backoff_interval
from pipelines.tagging import Tagger
from storage import open_db, open_readonly, utc_now
from storage.queries import source_health_rows
from tests.conftest import ROOT
from tests.hostile_server import HostileServer, Static

BOARD = ("<html><body><table class='artclTable'><tbody>{rows}</tbody></table></body></html>")
ROW = ("<tr><td class='_artclTdTitle'><a class='artclLinkView' href='/view/{n}'>Notice {n}</a></td>"
       "<td class='_artclTdRdate'>2025.07.2{n}</td></tr>")
SELECTORS = {"item": "table.artclTable tbody tr", "link": "td._artclTdTitle a.artclLinkView",
             "date": "td._artclTdRdate"}


def test_backoff_doubles_per_failure_up_to_a_day():
    assert backoff_interval(600, 0) == 600
    assert backoff_interval(600, 1) == 1200
    assert backoff_interval(600, 3) == 4800
    assert backoff_interval(600, 30) == 86400
    assert backoff_interval(172800, 5) == 172800, "a source slower than the cap keeps its own interval"


def test_a_redesigned_board_is_flagged_broken_and_recovers(tmp_path: Path):
    with HostileServer(robots_txt="") as server:
        server.static["/board"] = Static(BOARD.format(rows="".join(ROW.format(n=n) for n in range(3))))
        for n in range(3):
            server.static[f"/view/{n}"] = Static(f"<html><body><article><p>Notice {n}.</p></article></body></html>")
        config = config_from_dict({
            "crawl": {"allow_private_addresses": True, "per_host_delay": 0},
            "sources": [{"name": "board", "kind": "html_list", "url": server.url("/board"), "selectors": SELECTORS}],
        }, path=None, base_dir=tmp_path)
        db = open_db(tmp_path / "h.db")
        tagger = Tagger.load()
        assert run_crawl(config, db, tagger).sources_ok == 1
        server.static["/board"] = Static("<html><body><div class='new-design'><ul><li>Notice</li></ul></div>"
                                         "</body></html>")
        summary = run_crawl(config, db, tagger)
        assert summary.sources_failed == 1 and "selectors matched nothing" in summary.outcomes[0].error
        health = assess_sources(config, source_health_rows(db.conn, utc_now()))
        assert health[0].status == "broken" and "redesign" in health[0].reason
        server.static["/board"] = Static(BOARD.format(rows=ROW.format(n=1)))
        run_crawl(config, db, tagger)
        health = assess_sources(config, source_health_rows(db.conn, utc_now()))
        assert (health[0].status, health[0].consecutive_failures) == ("ok", 0)


def test_failing_many_cycles_in_a_row_is_flagged_not_dropped(tmp_path: Path):
    config = config_from_dict({"sources": [{"name": "s", "kind": "feed", "url": "https://e.org/f"}]}, path=None,
                              base_dir=tmp_path)
    now = datetime(2025, 8, 1, tzinfo=UTC)
    row = {"name": "s", "last_attempt_at": "2025-08-01T00:00:00+00:00", "last_error": "Timeout: slow"}
    failing = assess_sources(config, [{**row, "consecutive_failures": 2}], now)[0]
    assert failing.status == "failing" and failing.last_error == "Timeout: slow"
    assert failing.next_due == (now + timedelta(hours=4)).isoformat(timespec="seconds")
    flagged = assess_sources(config, [{**row, "consecutive_failures": FLAG_AFTER_FAILURES}], now)[0]
    assert flagged.status == "broken" and f"failed {FLAG_AFTER_FAILURES} cycles" in flagged.reason


def test_a_source_silent_far_longer_than_its_rhythm_is_flagged(tmp_path: Path):
    config = config_from_dict({"sources": [{"name": "s", "kind": "feed", "url": "https://e.org/f"}]}, path=None,
                              base_dir=tmp_path)
    now = datetime(2025, 8, 1, tzinfo=UTC)
    row = {"name": "s", "last_attempt_at": "2025-08-01T00:00:00+00:00", "consecutive_failures": 0, "new_90d": 30}
    quiet = assess_sources(config, [{**row, "last_article_at": "2025-06-01T00:00:00+00:00"}], now)[0]
    assert quiet.status == "silent" and "usually one every 3 days" in quiet.reason
    lively = assess_sources(config, [{**row, "last_article_at": "2025-07-30T00:00:00+00:00"}], now)[0]
    assert lively.status == "ok"


def test_monitor_sources_json(tmp_path: Path):
    (tmp_path / "config.toml").write_text(
        '[[sources]]\nname = "a"\nkind = "feed"\nurl = "https://e.org/a"\n'
        '[[sources]]\nname = "b"\nkind = "feed"\nurl = "https://e.org/b"\nenabled = false\n', encoding="utf-8")
    db = open_db(tmp_path / "monitor.db")
    db.execute("INSERT INTO sources (name, kind, url, consecutive_failures, last_attempt_at, last_error)"
               " VALUES ('a', 'feed', 'https://e.org/a', 1, ?, 'HTTPStatus: HTTP 503')", [utc_now()])
    db.close()
    result = subprocess.run([sys.executable, "-m", "monitor", "sources", "--format", "json"], cwd=tmp_path,
                            capture_output=True, text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin"},
                            timeout=60)
    assert result.returncode == 0, result.stderr
    report = {row["name"]: row for row in json.loads(result.stdout)}
    assert report["a"]["status"] == "failing" and report["a"]["last_error"] == "HTTPStatus: HTTP 503"
    assert report["b"]["status"] == "disabled" and report["b"]["next_due"] is None
    assert {"last_success", "new_7d", "new_30d", "next_due"} <= set(report["a"])
    conn = open_readonly(tmp_path / "monitor.db")
    assert conn.execute("SELECT count(*) FROM sources").fetchone()[0] == 1

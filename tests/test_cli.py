"""The command line as a user meets it: one-line errors, exit code 2, nothing lost."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from storage import open_db
from storage.writes import content_hash, store_article
from tests.conftest import ROOT


def monitor(*args: str, cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "monitor", *args], cwd=cwd, input=stdin, capture_output=True,
                          text=True, timeout=120, env=_env())


def _env() -> dict:
    import os

    env = {k: v for k, v in os.environ.items() if k != "MONITOR_CONFIG"}
    env["PYTHONPATH"] = str(ROOT)
    return env


def assert_one_line_error(result: subprocess.CompletedProcess, fragment: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert fragment in result.stderr


def test_missing_config_file(tmp_path: Path):
    assert_one_line_error(monitor("crawl", cwd=tmp_path), "config file not found")


def test_unknown_config_key_names_key_and_file(tmp_path: Path):
    (tmp_path / "c.toml").write_text("[crawl]\nspeed = 3\n", encoding="utf-8")
    assert_one_line_error(monitor("--config", "c.toml", "crawl", cwd=tmp_path), "unknown key 'speed'")


def test_unknown_command_and_bad_flag_are_usage_errors(tmp_path: Path):
    assert_one_line_error(monitor("fly", cwd=tmp_path), "invalid choice")
    assert_one_line_error(monitor("search", "x", "--limit", "zero", cwd=tmp_path), "positive whole number")


def test_sql_is_read_only_by_construction(tmp_path: Path):
    db = open_db(tmp_path / "m.db")
    store_article(db, {"url": "https://e.org/1", "title": "t", "text": "x", "content_hash": content_hash("t", "x")},
                  [], [])
    db.close()
    result = monitor("--db", "m.db", "sql", "DELETE FROM articles", cwd=tmp_path)
    assert_one_line_error(result, "read-only")
    counted = monitor("--db", "m.db", "sql", "SELECT count(*) AS n FROM articles", "--format", "json", cwd=tmp_path)
    assert counted.returncode == 0
    assert json.loads(counted.stdout) == [{"n": 1}]


def test_sql_syntax_error_is_one_line(tmp_path: Path):
    open_db(tmp_path / "m.db").close()
    assert_one_line_error(monitor("--db", "m.db", "sql", "SELEC 1", cwd=tmp_path), "SQL error")


def test_tag_jsonl_reads_a_pipe_and_reports_bad_lines(tmp_path: Path):
    lines = [
        json.dumps({"id": 1, "text": "Korea's E-7 visa drew 3,000 semiconductor engineers in 2024."}),
        "{not json",
        json.dumps({"id": "b", "text": "高度専門職の認定件数は2023年に46,946件となった。", "lang": "ja"}),
    ]
    result = monitor("tag", "--jsonl", "-", cwd=tmp_path, stdin="\n".join(lines) + "\n")
    assert result.returncode == 2
    assert "line 2: invalid JSON" in result.stderr
    outputs = [json.loads(line) for line in result.stdout.splitlines()]
    assert [o["id"] for o in outputs] == [1, "b"]
    assert set(outputs[0]) == {"id", "lang", "visas", "sectors", "figures"}
    assert any(v["id"] == "KR:E-7" for v in outputs[0]["visas"])
    japanese = outputs[1]
    text = json.loads(lines[2])["text"]
    hsp = next(v for v in japanese["visas"] if v["id"] == "JP:HSP")
    assert text[hsp["start"]:hsp["end"]] == hsp["text"] == "高度専門職"
    figure = next(f for f in japanese["figures"] if f["value"] == 46946)
    assert figure["year"] == 2023


def test_extract_reads_a_saved_page(tmp_path: Path):
    page = ("<html lang='en'><head><title>Visa news</title></head><body><nav>Home | About</nav><article>"
            "<h1>Visa news</h1>" + "<p>The government announced a new points-based visa for researchers.</p>" * 5
            + "</article><footer>Copyright</footer></body></html>")
    (tmp_path / "page.html").write_text(page, encoding="utf-8")
    result = monitor("extract", "page.html", "--format", "json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert "points-based visa" in data["text"] and "Copyright" not in data["text"]
    assert_one_line_error(monitor("extract", "missing.html", cwd=tmp_path), "cannot read missing.html")


def test_crawl_progress_prints_names_and_server_errors_literally(tmp_path: Path):
    from tests.hostile_server import HostileServer

    with HostileServer(robots_txt="") as server:
        (tmp_path / "config.toml").write_text(
            '[crawl]\nallow_private_addresses = true\nper_host_delay = 0\nmax_tries = 1\n'
            f'[[sources]]\nname = "gov [/uk] [bold]"\nkind = "feed"\nurl = "{server.url("/500")}"\n',
            encoding="utf-8")
        result = monitor("crawl", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "[1/1] gov [/uk] [bold]: failed HTTPStatus" in result.stderr
    assert "0 sources ok, 1 failed" in result.stdout

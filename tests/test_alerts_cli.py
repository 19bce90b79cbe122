"""`monitor alerts preview|send` as a user runs them: real processes, a real SQLite file, a Maildir outbox."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.config import load_config
from monitor.lock import acquire_lock
from storage import open_db
from tests.conftest import ROOT
from tests.test_alerts_fixtures import add_article, maildir_messages, plain_part

CONFIG = """
[storage]
path = "monitor.db"

[email]
outbox = "outbox"
sender = "alerts@example.org"

[[sources]]
name = "wire"
kind = "feed"
url = "https://wire.example.org/feed.xml"
country = "KR"

[[alerts]]
name = "top-tier"
to = ["reader@example.org"]
query = '"top tier"'
visas = ["KR:*"]
"""


def monitor(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MONITOR_CONFIG"}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-m", "monitor", "--config", str(cwd / "config.toml"), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=60, env=env)


def _setup(tmp_path: Path, config_text: str = CONFIG):
    (tmp_path / "config.toml").write_text(config_text, encoding="utf-8")
    return load_config(tmp_path / "config.toml")


def _top_tier(config, title: str) -> int:
    text = f"{title}: the Top-Tier visa opens to researchers."
    start = text.index("Top-Tier visa")
    return add_article(config, title, text, published_at="2099-01-01T00:00:00+00:00", mentions=[
        {"kind": "visa", "label": "KR:TOP-TIER", "country": "KR", "text": "Top-Tier visa", "start": start,
         "end": start + 13}])


def test_bad_rule_is_a_one_line_config_error_naming_it(tmp_path):
    _setup(tmp_path, CONFIG.replace('query = \'"top tier"\'', 'query = \'"top tier\''))
    for command in (["alerts", "send"], ["alerts", "preview", "top-tier"], ["run"]):
        result = monitor(*command, cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
        assert "'top-tier'" in result.stderr and "query" in result.stderr
    _setup(tmp_path, CONFIG.replace('visas = ["KR:*"]', 'visas = ["KR:E-77"]'))
    result = monitor("alerts", "send", cwd=tmp_path)
    assert result.returncode == 2 and "'top-tier'" in result.stderr and "KR:E-77" in result.stderr


def test_preview_shows_the_backlog_and_send_delivers_only_new_articles(tmp_path):
    config = _setup(tmp_path)
    backlog = _top_tier(config, "Old Top-Tier story")
    assert monitor("alerts", "send", cwd=tmp_path).returncode == 0  # registers the rule: the backlog is old news
    new = _top_tier(config, "New Top-Tier story")
    add_article(config, "Unrelated", "Nothing about it.", published_at="2099-01-01T00:00:00+00:00")

    preview = monitor("alerts", "preview", "top-tier", "--days", "36500000", cwd=tmp_path)
    assert preview.returncode == 0, preview.stderr
    assert f"#{backlog}" in preview.stdout and f"#{new}" in preview.stdout and "Unrelated" not in preview.stdout
    assert "the **Top-Tier** visa opens" in preview.stdout
    assert "2 articles" in preview.stdout
    assert maildir_messages(config.email.outbox) == []

    dry = monitor("alerts", "send", "--dry-run", cwd=tmp_path)
    assert dry.returncode == 0 and "would send" in dry.stdout and "New Top-Tier story" in dry.stdout
    assert maildir_messages(config.email.outbox) == []

    sent = monitor("alerts", "send", cwd=tmp_path)
    assert sent.returncode == 0, sent.stderr
    (message,) = maildir_messages(config.email.outbox)
    assert message["Subject"] == "[policy-monitor] top-tier: New Top-Tier story"
    assert "Visas: KR:TOP-TIER" in plain_part(message)
    assert monitor("alerts", "send", cwd=tmp_path).returncode == 0
    assert len(maildir_messages(config.email.outbox)) == 1
    preview = monitor("alerts", "preview", "top-tier", cwd=tmp_path)
    assert "[sent]" in preview.stdout

    missing = monitor("alerts", "preview", "nope", cwd=tmp_path)
    assert missing.returncode == 2 and "no [[alerts]] rule named 'nope'" in missing.stderr


def test_send_is_refused_while_a_daemon_holds_the_database(tmp_path):
    config = _setup(tmp_path)
    open_db(config.db_path).close()
    lock = acquire_lock(config.db_path)
    try:
        result = monitor("alerts", "send", cwd=tmp_path)
        assert result.returncode == 1 and f"PID {os.getpid()}" in result.stderr and ".lock" in result.stderr
        assert monitor("alerts", "send", "--dry-run", cwd=tmp_path).returncode == 0
    finally:
        lock.release()


def test_send_takes_the_lock_without_loading_the_scheduler(tmp_path):
    _setup(tmp_path)
    code = ("import sys; from monitor.cli import main; code = main(sys.argv[1:]);"
            "print('apscheduler loaded' if any(m.startswith('apscheduler') for m in sys.modules) else 'light');"
            "sys.exit(code)")
    env = {k: v for k, v in os.environ.items() if k != "MONITOR_CONFIG"}
    env["PYTHONPATH"] = str(ROOT)
    result = subprocess.run([sys.executable, "-c", code, "--config", str(tmp_path / "config.toml"), "alerts", "send"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "light"


def test_preview_days_must_be_a_finite_positive_number(tmp_path, capsys):
    config = _setup(tmp_path)
    _top_tier(config, "Stored story")  # a database with a match: a bad --days would reach the query
    for days in ("nan", "NaN", "inf", "-inf", "0", "-3", "soon"):
        with pytest.raises(SystemExit) as exited:
            main(["--config", str(tmp_path / "config.toml"), "alerts", "preview", "top-tier", f"--days={days}"])
        assert exited.value.code == 2, days
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "--days" in err and "Traceback" not in err, err


def test_a_broken_rule_stops_preview_of_another_rule_as_it_stops_the_daemon(tmp_path):
    config = _setup(tmp_path, CONFIG + '\n[[alerts]]\nname = "broken"\nto = "r@example.org"\nsectors = ["nope"]\n')
    open_db(config.db_path).close()
    result = monitor("alerts", "preview", "top-tier", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "'broken'" in result.stderr and "'nope'" in result.stderr


def test_a_bad_taxonomy_file_is_a_one_line_error_for_every_command(tmp_path):
    (tmp_path / "extra.toml").write_text("[[visa]\n", encoding="utf-8")
    _setup(tmp_path, '[tagging]\ntaxonomy_files = ["extra.toml"]\n' + CONFIG)
    for command in (["alerts", "send"], ["alerts", "preview", "top-tier"], ["run"]):
        result = monitor(*command, cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
        assert "extra.toml" in result.stderr and "invalid TOML" in result.stderr


def test_send_with_an_unset_password_variable_is_a_one_line_config_error(tmp_path):
    email = ('[email]\nhost = "127.0.0.1"\nport = 9\nusername = "alerts"\npassword_env = "MONITOR_TEST_UNSET_PW"\n'
             'sender = "alerts@example.org"\n')
    config = _setup(tmp_path, CONFIG.replace('[email]\noutbox = "outbox"\nsender = "alerts@example.org"\n', email))
    open_db(config.db_path).close()
    result = monitor("alerts", "send", cwd=tmp_path)  # nothing pending: still refused, before anything is due
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "MONITOR_TEST_UNSET_PW" in result.stderr
    assert monitor("alerts", "send", "--dry-run", cwd=tmp_path).returncode == 0  # a dry run sends nothing

"""`monitor retag`: re-tag every stored article with the current taxonomy, replacing old tags atomically."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from storage import open_db
from storage.writes import content_hash, store_article
from tests.conftest import ROOT

TEXT = "The ministry will launch the Frontier Researcher Pass next year for 2,000 AI researchers."


def test_retag_applies_a_taxonomy_extended_by_the_user(tmp_path: Path):
    db = open_db(tmp_path / "monitor.db")
    stale = [{"kind": "sector", "label": "agriculture", "text": "ministry", "start": 4, "end": 12}]
    article_id, _ = store_article(db, {"url": "https://e.org/1", "title": "t", "text": TEXT, "lang": "en",
                                       "content_hash": content_hash("t", TEXT)}, stale, [])
    db.close()
    (tmp_path / "extra.toml").write_text(
        '[[visa]]\nid = "XX:FRONTIER"\ncountry = "XX"\nname = "Frontier Researcher Pass"\n'
        'en = ["Frontier Researcher Pass"]\n', encoding="utf-8")
    (tmp_path / "config.toml").write_text('[tagging]\ntaxonomy_files = ["extra.toml"]\n', encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "monitor", "retag"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin"})
    assert result.returncode == 0, result.stderr
    assert "re-tagged 1 articles" in result.stdout
    db = open_db(tmp_path / "monitor.db")
    mentions = set(db.execute("SELECT kind, label FROM mentions WHERE article_id = ?", [article_id]).fetchall())
    assert ("visa", "XX:FRONTIER") in mentions and ("sector", "ai") in mentions
    assert ("sector", "agriculture") not in mentions
    assert db.execute("SELECT value, unit FROM figures").fetchall() == [(2000.0, "people")]


def test_a_broken_taxonomy_file_is_a_one_line_error(tmp_path: Path):
    (tmp_path / "extra.toml").write_text("[[visa]]\nid = 'no colon'\n", encoding="utf-8")
    (tmp_path / "config.toml").write_text('[tagging]\ntaxonomy_files = ["extra.toml"]\n', encoding="utf-8")
    open_db(tmp_path / "monitor.db").close()
    result = subprocess.run([sys.executable, "-m", "monitor", "retag"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin"})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "extra.toml" in result.stderr and len(result.stderr.strip().splitlines()) == 1

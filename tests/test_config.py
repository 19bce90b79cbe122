"""The config model: every mistake is one line naming the key and the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.config import ConfigError, load_config, parse_duration
from tests.conftest import ROOT

FEED = """
[[sources]]
name = "news"
kind = "feed"
url = "https://example.org/feed.xml"
"""


def test_the_shipped_config_loads_with_real_sources():
    config = load_config(ROOT / "config.toml")
    names = {s.name for s in config.sources}
    assert {"govuk-uk-visas-and-immigration", "federal-register-uscis", "korea-moj-press"} <= names
    assert config.db_path == ROOT / "monitor.db"
    assert not config.source("google-news-hsp").enabled


def test_relative_paths_resolve_against_the_config_folder(write_config, tmp_path: Path, monkeypatch):
    (tmp_path / "extra.toml").write_text("", encoding="utf-8")
    path = write_config('[storage]\npath = "data/m.db"\n[email]\noutbox = "mail"\n'
                        '[tagging]\ntaxonomy_files = ["extra.toml"]\n' + FEED)
    monkeypatch.chdir("/")
    config = load_config(path)
    assert config.db_path == tmp_path / "data" / "m.db"
    assert config.email.outbox == tmp_path / "mail"
    assert config.taxonomy_files == [tmp_path / "extra.toml"]


def test_db_override_wins(write_config, tmp_path: Path):
    assert load_config(write_config(FEED), db_override=str(tmp_path / "x.db")).db_path == tmp_path / "x.db"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[crawl]\ntimout = 3\n", r"\[crawl\] unknown key 'timout'"),
        ("[crawl]\ntimeout = 'soon'\n", r"\[crawl\] timeout: expected a number, got 'soon'"),
        ("[crawl]\nper_host_concurrency = 0\n", r"per_host_concurrency: expected a number >= 1"),
        ("[crawl]\nallow_private_addresses = 'yes'\n", "expected true or false"),
        (FEED.replace('kind = "feed"', 'kind = "podcast"'), "kind: expected one of feed, html_list, json_api"),
        (FEED.replace("https://example.org/feed.xml", "ftp://example.org/f"), "url: expected an http"),
        (FEED.replace("https://example.org/feed.xml", "http://[bad/feed"), "url: expected an http"),
        (FEED.replace("https://example.org/feed.xml", "http://example.org:99999/feed"), "url: expected an http"),
        (FEED + 'every = "500ms"\n', "every: expected a duration"),
        (FEED + 'every = "0s"\n', "the shortest interval is 1s"),
        (FEED + 'cron = "61 * * * *"\n', "cron:"),
        (FEED + 'country = "Korea"\n', "expected an ISO 3166 alpha-2 code"),
        (FEED + FEED, "name 'news' is used more than once"),
        ('[[sources]]\nname = "b"\nkind = "html_list"\nurl = "https://e.org/"\n[sources.selectors]\nitem = "td["\n',
         r"\[\[sources\]\] 'b' selectors: "),
        ('[[sources]]\nname = "b"\nkind = "html_list"\nurl = "https://e.org/"\n', "selectors.item: required"),
        ('[[sources]]\nname = "j"\nkind = "json_api"\nurl = "https://e.org/"\n', "fields.url: required"),
        ('[email]\npassword = "hunter2"\n', "secrets never live in the config file"),
        ('[alerts_defaults]\ntimezone = "Mars/Olympus"\n', "unknown IANA time zone"),
        ('[[alerts]]\nname = "r"\nto = "not-an-address"\n', r"\[\[alerts\]\] 'r' to: not an email address"),
        ('[[alerts]]\nname = "r"\nto = "a@example.org"\nmode = "hourly"\n', "mode: expected one of"),
        ('[[alerts]]\nname = "r"\nto = "a@example.org"\nat = "8am"\n', "at: expected a time"),
        ("[storage\n", "invalid TOML"),
    ],
)
def test_each_mistake_is_one_line_naming_file_and_key(write_config, text, message):
    path = write_config(text)
    with pytest.raises(ConfigError, match=message) as caught:
        load_config(path)
    assert str(path) in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_missing_file_says_how_to_name_one(tmp_path: Path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml")


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("30m", 1800), ("6h", 21600), ("1d", 86400),
                                               ("1s", 1), ("soon", None), ("5", None)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


def test_password_comes_from_the_named_environment_variable(write_config, monkeypatch):
    config = load_config(write_config('[email]\nhost = "smtp.example.org"\npassword_env = "PM_PASS"\n'))
    monkeypatch.setenv("PM_PASS", "s3cret")
    assert config.email.password() == "s3cret"

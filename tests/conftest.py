"""Shared fixtures: paths, the shared corpora, small config files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.analyst_ui import demo_db, ui  # noqa: F401  (fixtures: the web UI over a crawled demo database)
from tests.browser import browser  # noqa: F401  (fixture: headless Chromium, or a skip saying why)
from tests.postgres_server import postgres_url  # noqa: F401  (fixture: a new PostgreSQL database, or a skip)

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def shared_path(*parts: str) -> Path:
    """A path under ../shared, or skip the test: a user's clone does not have that folder."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent: the shared corpora sit beside the project only in the team's checkouts")
    return path


@pytest.fixture
def write_config(tmp_path: Path):
    """Write a config.toml into tmp_path and return its path."""

    def write(text: str, name: str = "config.toml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture(autouse=True)
def _no_proxy_for_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests talk to servers on 127.0.0.1; a developer's proxy settings must not capture that traffic.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    os.environ.pop("MONITOR_CONFIG", None)

"""The web UI for tests: a demo database crawled through the project's own write path, served by
`monitor serve`'s Datasette on 127.0.0.1 in a background thread."""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from monitor.analyst.serve import serving_in_thread as serving  # noqa: F401  (re-exported for tests)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def crawl_demo_database(directory: Path) -> Path:
    """Crawl the bundled demo site (served on loopback) into `directory`/demo.db; return its path."""
    from monitor.demo import run_demo

    db_path = directory / "demo.db"
    assert run_demo(db_path, directory / "outbox", out=io.StringIO()) == 0
    return db_path


@pytest.fixture(scope="session")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return crawl_demo_database(tmp_path_factory.mktemp("analyst-demo"))


@pytest.fixture(scope="session")
def ui(demo_db: Path) -> Iterator[str]:
    """The base URL of the UI over the demo database."""
    with serving(demo_db) as base:
        yield base


def get(url: str, **params: str) -> httpx.Response:
    return httpx.get(url, params=params, timeout=60)

"""The web UI for tests: a demo database crawled through the project's own write path, served by
`monitor serve`'s Datasette on 127.0.0.1 in a background thread."""

from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest


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


@contextmanager
def serving(db_path: Path) -> Iterator[str]:
    """Serve `db_path` as `monitor serve` does, on a free loopback port; yield the base URL."""
    import uvicorn

    from monitor.analyst.serve import build_datasette

    port = free_port()
    config = uvicorn.Config(build_datasette(db_path).app(), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the UI did not start")
        time.sleep(0.05)
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(10)


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

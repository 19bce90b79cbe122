"""`monitor serve`: Datasette over the database, read-only, configured by `datasette.yaml` beside this module."""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, TextIO

import yaml
from datasette import hookimpl
from datasette.app import Datasette
from datasette.database import Database
from datasette.plugins import pm

from monitor.config import ConfigError
from storage import StorageError, open_readonly
from storage.queries import QueryError, fts_match_clause

DATABASE_NAME = "monitor"
"""The name the database is served under (/monitor/articles ...), whatever its file is called."""

CONFIG_FILE = "datasette.yaml"


def load_datasette_config() -> tuple[dict[str, Any], dict[str, Any]]:
    """(metadata, settings) for Datasette from `datasette.yaml`, with each dashboard chart's
    `display_spec` file from charts/ loaded into its `display` (plus its `display_options`)."""
    package = resources.files("monitor.analyst")
    metadata = yaml.safe_load(package.joinpath(CONFIG_FILE).read_text(encoding="utf-8"))
    settings = metadata.pop("settings", {})
    dashboards = metadata.get("plugins", {}).get("datasette-dashboards", {})
    for dashboard in dashboards.values():
        for chart in dashboard.get("charts", {}).values():
            spec_file = chart.pop("display_spec", None)
            if spec_file:
                chart["display"] = {**chart_spec(spec_file), **chart.pop("display_options", {})}
    return metadata, settings


def chart_spec(name: str) -> dict[str, Any]:
    """A Vega-Lite spec (without data) from monitor/analyst/charts/."""
    text = resources.files("monitor.analyst").joinpath("charts", name).read_text(encoding="utf-8")
    return json.loads(text)


def search_kind(query: str) -> str:
    """How `monitor search` finds `query`: 'all' (no query), 'words' (unicode61 index), 'trigram'
    (word or trigram index: Japanese/Korean of 3+ characters) or 'substring' (shorter CJK terms).

    Decided by storage.queries.fts_match_clause, so the UI and the CLI always agree."""
    query = query.strip()
    if not query:
        return "all"
    clause, _ = fts_match_clause(query)
    if "articles_fts_cjk" in clause:
        return "trigram"
    if "articles_fts MATCH" in clause:
        return "words"
    return "substring"


_scratch = threading.local()
"""Each thread's in-memory connection on which substring_match runs its one-row query."""


@lru_cache(maxsize=64)
def _substring_sql(query: str) -> tuple[str, tuple[Any, ...]]:
    clause, params = fts_match_clause(query.strip())
    return f"SELECT {clause} FROM (SELECT ? AS title, ? AS text) AS a", tuple(params)


def substring_match(query: str, title: str | None, text: str | None) -> int:
    """1 if an article's title and text match a query of short Japanese/Korean terms the way
    `monitor search` matches it (the same SQL condition, run on this one row), else 0."""
    sql, params = _substring_sql(query)
    conn = _scratch_connection()
    # The condition's placeholders come first in the statement, the row's title and text last.
    return int(bool(conn.execute(sql, [*params, title, text or ""]).fetchone()[0]))


def _scratch_connection() -> sqlite3.Connection:
    conn = getattr(_scratch, "conn", None)
    if conn is None:
        conn = _scratch.conn = sqlite3.connect(":memory:")
    return conn


def _sql_search_kind(query: str | None) -> str:
    try:
        return search_kind(query or "")
    except QueryError as exc:
        # Raised inside SQLite, this becomes the query's error message on the page.
        raise ValueError(str(exc)) from None


@lru_cache(maxsize=1)
def _bundled_taxonomy() -> Any:
    from pipelines.tagging.lexicon import Taxonomy

    return Taxonomy.load()


@lru_cache(maxsize=256)
def _covered_ids(kind: str, wanted: str) -> frozenset[str]:
    """`wanted` and the ids a filter on it takes in the bundled taxonomy: its sub-types and finer fields."""
    return frozenset((wanted, *_bundled_taxonomy().descendants(kind, wanted)))


def _sql_covers(kind: str, wanted: str | None, label: str | None) -> int:
    """1 when a filter on `wanted` takes `label`, as in `monitor search`: JP:HSP takes JP:HSP-1B."""
    if not wanted or label is None:
        return 0
    return int(label in _covered_ids(kind, wanted))


def register_sql_functions(conn: sqlite3.Connection) -> None:
    """The SQL functions the canned `search` query uses (read-only: they look at their arguments only)."""
    conn.create_function("monitor_search_kind", 1, _sql_search_kind, deterministic=True)
    conn.create_function("monitor_substring_match", 3, substring_match, deterministic=True)
    conn.create_function("monitor_covers", 3, _sql_covers, deterministic=True)


class _SqlFunctionsPlugin:
    """Datasette plugin: the SQL functions of the `search` canned query, on every connection."""

    @staticmethod
    @hookimpl
    def prepare_connection(conn: sqlite3.Connection) -> None:
        register_sql_functions(conn)


def _render_atom(datasette: Datasette, request: Any, sql: str, columns: list[str], rows: list[Any],
                 database: str, table: str | None, query_name: str | None, view_name: str,
                 data: dict[str, Any]) -> Any:
    """datasette-atom's renderer, except that no rows make a valid empty feed (it fails on max() of nothing)."""
    import datasette_atom
    from datasette.utils.asgi import Response
    from feedgen.feed import FeedGenerator

    if rows:
        return datasette_atom.render_atom(datasette, request, sql, columns, rows, database, table, query_name,
                                          view_name, data)
    feed = FeedGenerator()
    feed.id(request.url)
    feed.link(href=request.url, rel="self")
    feed.updated(datetime.now(UTC))
    query = ((datasette.metadata(database=database) or {}).get("queries") or {}).get(query_name or "")
    feed.title((query.get("title") if isinstance(query, dict) else None) or "policy-monitor")
    return Response(feed.atom_str(pretty=True), content_type="application/xml; charset=utf-8", status=200)


class _AtomPlugin:
    """Datasette plugin: the `.atom` renderer of datasette-atom, with empty results handled (see _render_atom)."""

    @staticmethod
    @hookimpl
    def register_output_renderer() -> dict[str, Any]:
        import datasette_atom

        return {"extension": "atom", "render": _render_atom, "can_render": datasette_atom.can_render_atom}


def build_datasette(db_path: Path) -> Datasette:
    """A Datasette instance serving `db_path` read-only as `monitor`, configured by datasette.yaml."""
    if not pm.is_registered(_SqlFunctionsPlugin):
        pm.register(_SqlFunctionsPlugin, name="policy-monitor")
    if not pm.is_registered(_AtomPlugin):
        if pm.get_plugin("atom") is not None:
            pm.unregister(name="atom")
        pm.register(_AtomPlugin, name="policy-monitor-atom")
    metadata, settings = load_datasette_config()
    datasette = Datasette(metadata=metadata, settings=settings)
    # is_mutable: Datasette opens the file with SQLite's mode=ro (not immutable=1), so it sees
    # what a running crawl writes.
    database = Database(datasette, path=str(db_path.resolve()), is_mutable=True)
    datasette.add_database(database, name=DATABASE_NAME)
    return datasette


def check_database(db_path: Path) -> None:
    """Raise StorageError (one line) unless `db_path` is a policy-monitor database with the UI's views."""
    conn = open_readonly(db_path)
    try:
        views = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'view'")}
    finally:
        conn.close()
    if not {"articles_cjk", "tagged_articles"} <= views:
        raise StorageError(f"{db_path} has an older schema; run 'monitor crawl' (or any writing command) "
                           "once to bring it up to date")


def serve(db_path: Path, host: str = "127.0.0.1", port: int = 8001, err: TextIO | None = None) -> int:
    """Run Datasette over `db_path` until interrupted (Ctrl-C or SIGTERM stop it cleanly)."""
    import uvicorn

    err = err or sys.stderr
    check_database(db_path)
    _check_address(host, port)
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"monitor: warning: the web UI has no authentication; anyone who can reach {host}:{port} "
              "can read the whole database", file=err)
    datasette = build_datasette(db_path)
    print(f"Serving {db_path} at http://{host}:{port}/ (dashboard: /-/dashboards/policy); Ctrl-C stops",
          file=err)
    # uvicorn shuts down gracefully on SIGINT/SIGTERM, then raises the signal again: let SIGTERM end
    # the process with status 0 and Ctrl-C without a traceback.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        uvicorn.run(datasette.app(), host=host, port=port, log_level="warning", lifespan="on")
    except KeyboardInterrupt:
        pass
    return 0


def _check_address(host: str, port: int) -> None:
    """Raise ConfigError (one line) if nothing can listen on host:port (in use, not an address here)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        with socket.socket(infos[0][0], socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(infos[0][4])
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


@contextmanager
def serving_in_thread(db_path: Path, startup_timeout: float = 30) -> Iterator[str]:
    """Serve `db_path` as `monitor serve` does, in a background thread on a free loopback port; yield
    its base URL (for tests and benchmarks)."""
    import uvicorn

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(build_datasette(db_path).app(), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the web UI did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)

"""`monitor serve`: the analyst's web UI (Datasette, read-only) over the database."""

from __future__ import annotations

import argparse

from monitor.commands import db_path, refuse_on_postgres


def register(subparsers: argparse._SubParsersAction) -> None:
    serve = subparsers.add_parser("serve", help="browse, search and chart the database in a web UI (read-only)")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default 127.0.0.1; the UI has no authentication)")
    serve.add_argument("--port", type=_port, default=8001, help="port to listen on (default 8001)")
    serve.set_defaults(handler=handle_serve)


def handle_serve(args: argparse.Namespace) -> int:
    from monitor.analyst.serve import serve

    database = db_path(args)
    refuse_on_postgres(database, "serve", "Datasette, the web UI, reads SQLite only: query PostgreSQL with"
                       " 'monitor search' and 'monitor sql', or point a PostgreSQL tool at it")
    return serve(database, host=args.host, port=args.port)


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"expected a port number 1-65535, got {text!r}")
    return int(text)

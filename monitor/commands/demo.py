"""`monitor demo`: the offline sample site crawled end to end."""

from __future__ import annotations

import argparse
from pathlib import Path

from storage.target import database_target


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="crawl a bundled offline sample site into demo.db")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from monitor.demo import run_demo

    return run_demo(database_target(args.db) if args.db else Path("demo.db"))

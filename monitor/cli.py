"""The `monitor` command line: a thin shell over functions in monitor/, pipelines/ and storage/.

Each command lives in a module of `monitor.commands` exposing `register(subparsers)`,
which adds its parser and sets `handler(args) -> int`. Errors a user can cause
(bad config, bad query, missing file) print one line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from monitor import commands
from monitor.config import ConfigError
from pipelines.tagging import TaxonomyError
from storage import StorageError
from storage.queries import QueryError
from storage.sqlite_library import quiet_memory_statistics

USAGE_ERROR = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's default prints usage; one line is enough
        self.exit(USAGE_ERROR, f"monitor: {message} (see 'monitor --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="monitor", description="Watch immigration and foreign-talent policy.")
    parser.add_argument("--config", metavar="PATH",
                        help="config file (default: $MONITOR_CONFIG, else ./config.toml)")
    parser.add_argument("--db", metavar="PATH", help="database file (overrides [storage] path)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module in commands.modules():
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return USAGE_ERROR
    try:
        return int(args.handler(args) or 0)
    except (ConfigError, StorageError, QueryError, TaxonomyError) as exc:
        print(f"monitor: {exc}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        print("monitor: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


def run() -> None:
    """The `monitor` program: `main` on the command line's arguments, in a process of its own.

    Owning the process, it first switches SQLite's memory statistics off, before any connection is
    open, so that a search may rank its matches in several threads (`storage.sqlite_library`).
    """
    quiet_memory_statistics()
    sys.exit(main())


if __name__ == "__main__":
    run()

"""One module per CLI command group; `monitor.cli` registers them in this order."""

from __future__ import annotations

import argparse
from pathlib import Path

from monitor.config import Config, find_config_path, load_config


def load(args: argparse.Namespace) -> Config:
    """The configuration chosen by --config / $MONITOR_CONFIG / ./config.toml, with --db applied."""
    return load_config(find_config_path(args.config), db_override=args.db)


def db_path(args: argparse.Namespace) -> Path:
    """The database a read-only command uses: --db if given, else the config's [storage] path."""
    return Path(args.db) if args.db else load(args).db_path


def _modules() -> list:
    from monitor.commands import crawl, query, tag

    found = [crawl, query, tag]
    for optional in ("demo", "sources", "run", "alerts"):
        try:
            found.append(__import__(f"monitor.commands.{optional}", fromlist=["register"]))
        except ModuleNotFoundError as exc:
            if exc.name != f"monitor.commands.{optional}":
                raise
    return found


class _Lazy:
    def __iter__(self):
        return iter(_modules())


MODULES = _Lazy()

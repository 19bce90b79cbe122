"""One module per CLI command group; `monitor.cli` registers them in `modules()` order."""

from __future__ import annotations

import argparse
from pathlib import Path
from types import ModuleType

from monitor.config import Config, find_config_path, load_config


def load(args: argparse.Namespace) -> Config:
    """The configuration chosen by --config / $MONITOR_CONFIG / ./config.toml, with --db applied."""
    return load_config(find_config_path(args.config), db_override=args.db)


def db_path(args: argparse.Namespace) -> Path:
    """The database a read-only command uses: --db if given, else the config's [storage] path."""
    return Path(args.db) if args.db else load(args).db_path


def modules() -> list[ModuleType]:
    """The command modules, imported when the parser is built (so `monitor.commands` stays light)."""
    from monitor.commands import (
        alerts,
        analyst,
        backfill,
        crawl,
        demo,
        maintenance,
        query,
        run,
        serve,
        sources,
        tag,
        worker,
    )

    return [crawl, query, tag, sources, run, alerts, demo, serve, analyst, maintenance, backfill, worker]

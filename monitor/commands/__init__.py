"""One module per CLI command group; `monitor.cli` registers them in `modules()` order."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from types import ModuleType

from monitor.config import Config, ConfigError, find_config_path, load_config
from storage.target import DATABASE_URL_ENV, database_target, is_database_url


def load(args: argparse.Namespace) -> Config:
    """The configuration chosen by --config / $MONITOR_CONFIG / ./config.toml, with --db applied."""
    return load_config(find_config_path(args.config), db_override=args.db)


def db_path(args: argparse.Namespace) -> Path | str:
    """The database a read-only command uses: --db if given, else the config's [storage] path, else
    $MONITOR_DATABASE_URL when there is no config file (a PostgreSQL URL stays a string)."""
    if args.db:
        return database_target(args.db)
    if os.environ.get(DATABASE_URL_ENV) and not find_config_path(args.config).exists():
        return os.environ[DATABASE_URL_ENV]
    return load(args).db_path


def refuse_on_postgres(database: Path | str, command: str, instead: str) -> None:
    """Stop a command that works on SQLite files only, in one line (ConfigError: exit 2)."""
    if is_database_url(database):
        raise ConfigError(f"'{command}' works on SQLite database files only, not PostgreSQL; {instead}")


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

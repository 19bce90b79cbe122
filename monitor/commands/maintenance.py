"""`monitor backup`, `monitor restore`, `monitor db check|repair-fts`, `monitor prune`: keeping the data safe."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from monitor.commands import db_path, load, refuse_on_postgres
from monitor.config import ConfigError
from monitor.output import write_rows
from storage.target import database_target, is_database_url

DAMAGED = 1
"""Exit code of `db check` for a damaged database, and of `restore` refused because a daemon runs."""


def register(subparsers: argparse._SubParsersAction) -> None:
    backup = subparsers.add_parser("backup", help="copy the database consistently, even while the daemon runs")
    backup.add_argument("--out", required=True, metavar="PATH",
                        help="backup file, or a directory (existing, or ending in /) for timestamped files"
                             " <db name>-YYYYMMDDTHHMMSSZ.db")
    backup.add_argument("--keep", type=int, metavar="N",
                        help="with a directory --out: keep only the newest N backups there")
    backup.set_defaults(handler=handle_backup)

    restore = subparsers.add_parser("restore", help="put a backup in place of the database (daemon stopped)")
    restore.add_argument("path", metavar="PATH", help="the backup file")
    restore.set_defaults(handler=handle_restore)

    db = subparsers.add_parser("db", help="check or repair the database")
    db_commands = db.add_subparsers(dest="db_command", metavar="ACTION", required=True, parser_class=type(db))
    check = db_commands.add_parser("check", help="integrity of pages and FTS indexes, schema version, WAL, counts")
    check.set_defaults(handler=handle_check)
    repair = db_commands.add_parser("repair-fts", help="rebuild the full-text indexes from the articles table")
    repair.set_defaults(handler=handle_repair_fts)

    prune = subparsers.add_parser("prune", help="drop article text older than [storage] keep_days (tags stay)")
    prune.add_argument("--dry-run", action="store_true", help="list what would go, change nothing")
    prune.add_argument("--keep-days", type=float, metavar="N", help="override [storage] keep_days")
    prune.set_defaults(handler=handle_prune)


def handle_backup(args: argparse.Namespace) -> int:
    from storage.maintenance import backup_database, backup_target

    database = db_path(args)
    refuse_on_postgres(database, "backup",
                       "back up with pg_dump, e.g. 'pg_dump --format=custom --file monitor.dump URL'")
    if args.keep is not None and args.keep < 1:
        raise ConfigError(f"--keep: expected a number >= 1, got {args.keep}")
    target = backup_target(args.out, database)
    if args.keep is not None and target == Path(args.out):
        raise ConfigError("--keep rotates timestamped backups in a directory: give --out a directory"
                          " (existing, or ending in /)")
    result = backup_database(database, target, keep=args.keep)
    counts = ", ".join(f"{n} {t}" for t, n in result.counts.items())
    print(f"backup {result.path} ({result.bytes / 1e6:.1f} MB) verified: integrity ok; {counts}")
    for path in result.removed:
        print(f"removed old backup {path}")
    return 0


def handle_restore(args: argparse.Namespace) -> int:
    from monitor.lock import DaemonLocked, acquire_lock
    from storage.maintenance import restore_database

    database = db_path(args)
    refuse_on_postgres(database, "restore", "restore a pg_dump file with pg_restore (daemons stopped)")
    backup = Path(args.path)
    if not backup.is_file():
        raise ConfigError(f"backup {backup} does not exist")
    try:
        lock = acquire_lock(database, holder="monitor restore")
    except DaemonLocked as exc:
        print(f"monitor: restore refused: {exc}", file=sys.stderr)
        return DAMAGED
    try:
        kept = restore_database(backup, database)
    finally:
        lock.release()
    print(f"restored {database} from {backup}"
          + (f"; the previous database is kept as {kept}" if kept else ""))
    return 0


def handle_check(args: argparse.Namespace) -> int:
    from storage.maintenance import check_database

    database = db_path(args)
    if is_database_url(database):
        return _check_postgres(str(database))
    report = check_database(database)
    print(f"database {report.path}: schema version {report.schema_version}, WAL {report.wal_bytes / 1e6:.1f} MB")
    for table, count in report.counts.items():
        print(f"  {table:<12} {count:>9}")
    if not report.ok:
        print(f"monitor: database {report.path} is damaged: {report.problems[0]}", file=sys.stderr)
        return DAMAGED
    print("integrity ok (pages, articles_fts, articles_fts_cjk)")
    return 0


def handle_repair_fts(args: argparse.Namespace) -> int:
    from storage import open_db
    from storage.maintenance import rebuild_fts

    database = db_path(args)
    refuse_on_postgres(database, "db repair-fts", "PostgreSQL keeps its search columns itself (generated columns);"
                       " 'REINDEX TABLE articles' rebuilds their indexes")
    if not database.exists():
        raise ConfigError(f"database {database} does not exist")
    db = open_db(database)
    try:
        rows = rebuild_fts(db)
    finally:
        db.close()
    print("rebuilt from articles: " + ", ".join(f"{table} {count} rows" for table, count in rows.items()))
    return 0


def handle_prune(args: argparse.Namespace) -> int:
    from storage import open_db
    from storage.maintenance import prune_candidates, prune_texts

    if args.keep_days is not None and args.db:
        keep_days, database = args.keep_days, database_target(args.db)  # everything given: no config file needed
    else:
        config = load(args)
        keep_days = args.keep_days if args.keep_days is not None else config.keep_days
        database = config.db_path
    if keep_days is None:
        raise ConfigError("nothing to prune: [storage] keep_days is not set (everything is kept)")
    if keep_days < 1:
        raise ConfigError(f"--keep-days: expected a number >= 1, got {keep_days:g}")
    if not is_database_url(database) and not database.exists():
        raise ConfigError(f"database {database} does not exist")
    db = open_db(database)
    try:
        if args.dry_run:
            candidates = prune_candidates(db.conn, keep_days)
            write_rows(("id", "date", "source", "title", "chars"),
                       [(c.id, c.date, c.source, (c.title or "")[:70], c.chars) for c in candidates], "table")
            chars = sum(c.chars for c in candidates)
            print(f"dry run: the text of {len(candidates)} articles older than {keep_days:g} days would go"
                  f" ({chars} characters); rows, tags and figures stay")
            return 0
        pruned = prune_texts(db, keep_days)
    finally:
        db.close()
    print(f"pruned the text of {pruned} articles older than {keep_days:g} days; rows, tags and figures kept")
    return 0


def _check_postgres(url: str) -> int:
    """`db check` on PostgreSQL: schema version and row counts (the server checks its own pages)."""
    from storage import open_readonly
    from storage.postgres import schema_version
    from storage.postgres.connection import redact
    from storage.postgres.schema import SCHEMA_VERSION

    conn = open_readonly(url)
    try:
        version = schema_version(conn)
        print(f"database {redact(url)}: PostgreSQL schema version {version} (this program's: {SCHEMA_VERSION})")
        for table in ("articles", "mentions", "figures", "sources", "alerts_sent"):
            count = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            print(f"  {table:<12} {count:>9}")
    finally:
        conn.close()
    print("PostgreSQL checks its own pages; for a deeper check use the amcheck extension, for a copy pg_dump")
    return 0

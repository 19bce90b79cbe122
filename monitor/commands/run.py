"""`monitor run`: the daemon that crawls each source on its schedule and delivers alerts."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from monitor.commands import load
from monitor.config import ConfigError
from storage.target import is_database_url

LOCKED = 1


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("run", help="run the daemon: scheduled crawls and alert emails")
    parser.add_argument("--log-format", choices=("text", "json"), default="text",
                        help="log lines as text (default) or JSON for log shippers")
    parser.add_argument("--workers", action="store_true",
                        help="queue each due crawl for `monitor worker` processes instead of crawling here"
                             " (PostgreSQL queue, [workers] in the config)")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from monitor.daemon import Daemon, setup_logging
    from monitor.lock import DaemonLocked, acquire_lock
    from monitor.mail import check_email_config

    config = load(args)
    app = None
    if getattr(args, "workers", False):
        from monitor.commands.worker import workers_module

        workers = workers_module()
        url = workers.queue_url(config)
        workers.prepare_queue(url)
        app = workers.scheduler_app(url)
        app.open()
    # Refused now, in one line, rather than as a traceback in the log at every delivery attempt.
    check_email_config(config.email)
    setup_logging(args.log_format)
    try:
        # On PostgreSQL several daemons may share the database (one per machine): deliveries take an
        # advisory lock each and claim every message instead (monitor.alerts).
        lock = None if is_database_url(config.db_path) else acquire_lock(config.db_path)
    except DaemonLocked as exc:
        print(f"monitor: {exc}", file=sys.stderr)
        return LOCKED
    except OSError as exc:
        raise ConfigError(f"cannot create the lock file beside {config.db_path}: {exc}") from None
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        if not stop.is_set():
            logging.getLogger("monitor.daemon").info("%s received: stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    stuck = False
    try:
        from monitor.alerts import compile_rules
        from pipelines.tagging import Tagger

        tagger = Tagger.load(config.taxonomy_files)
        rules = compile_rules(config, tagger)
        if stop.is_set():
            return 0
        if app is None:
            daemon = Daemon(config, tagger, rules, stop=stop)
        else:
            daemon = workers.QueueingDaemon(config, tagger, rules, app=app, stop=stop)
        daemon.start()
        daemon.wait()
        stuck = not daemon.shutdown()
    finally:
        if app is not None:
            app.close()
        # A job still running may be sending an alert: released now, the lock would let a new daemon
        # start and send it again. os._exit below ends the process, and the OS frees the lock then.
        if not stuck and lock is not None:
            lock.release()
    if stuck:
        # A job stuck in network I/O must not hold the exit past the service manager's patience;
        # SQLite rolls back any transaction it had open.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0

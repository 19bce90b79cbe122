"""`monitor worker`: run queued crawl jobs (see `monitor run --workers` and monitor.workers)."""

from __future__ import annotations

import argparse
import asyncio
import logging
from types import ModuleType

from monitor.commands import load
from monitor.config import ConfigError
from storage.target import redact

MISSING_EXTRA = ("crawl workers need the 'distributed' extra (Procrastinate): "
                 "pip install 'policy-monitor[distributed]'")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("worker", help="run queued crawl jobs on this machine (for `monitor run --workers`)")
    parser.add_argument("--concurrency", "-c", type=_positive, default=None, metavar="N",
                        help="jobs run at once (default: [workers] concurrency, 4)")
    parser.add_argument("--log-format", choices=("text", "json"), default="text",
                        help="log lines as text (default) or JSON for log shippers")
    parser.set_defaults(handler=handle)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def workers_module() -> ModuleType:
    """`monitor.workers`, or a ConfigError (one line, exit 2) naming the extra to install."""
    try:
        from monitor import workers
    except ImportError as exc:
        if (exc.name or "").split(".")[0] in ("procrastinate", "psycopg", "psycopg_pool"):
            raise ConfigError(MISSING_EXTRA) from None
        raise
    return workers


def handle(args: argparse.Namespace) -> int:
    from monitor.daemon import setup_logging

    config = load(args)
    workers = workers_module()
    url = workers.queue_url(config)
    workers.prepare_queue(url)
    setup_logging(args.log_format)
    logging.getLogger("procrastinate").setLevel(logging.WARNING)
    from pipelines.tagging import Tagger

    tagger = Tagger.load(config.taxonomy_files)
    worker = workers.CrawlWorker(config, tagger, url)
    concurrency = args.concurrency or config.workers.concurrency
    logging.getLogger("monitor.workers").info(
        "worker started: %d jobs at once, queue %s, database %s", concurrency, redact(url), redact(config.db_path),
        extra={"fields": {"event": "worker_started", "concurrency": concurrency}})
    asyncio.run(worker.run(concurrency))
    return 0

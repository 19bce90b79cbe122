"""`monitor alerts preview NAME [--days 30]` and `monitor alerts send [--dry-run]`."""

from __future__ import annotations

import argparse
import math
import sys
from typing import TYPE_CHECKING

from monitor.commands import load
from monitor.config import Config, ConfigError
from storage.target import is_database_url

if TYPE_CHECKING:
    from monitor.alerts import CompiledRule

DELIVERY_FAILED = 1


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("alerts", help="preview alert rules or deliver pending alerts now")
    actions = parser.add_subparsers(dest="alerts_command", metavar="ACTION", required=True,
                                    parser_class=type(parser))
    preview = actions.add_parser("preview", help="what a rule would have sent over the stored articles")
    preview.add_argument("name", metavar="NAME", help="the rule's name in [[alerts]]")
    preview.add_argument("--days", type=_positive_number, default=30.0,
                         help="look at articles of the last N days (default 30)")
    preview.set_defaults(handler=handle_preview)
    send = actions.add_parser("send", help="evaluate every rule and deliver what is pending now")
    send.add_argument("--dry-run", action="store_true", help="show what would be sent; send and record nothing")
    send.set_defaults(handler=handle_send)


def _positive_number(text: str) -> float:
    """A positive, finite number of days (argparse's `type`): 'nan' and 'inf' are numbers to float() only."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of days, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of days, got {text!r}")
    return value


def _compiled(config: Config, only: str | None = None) -> list[CompiledRule]:
    """Every rule checked, as the daemon checks them at start (one broken rule is an error); `only` keeps one."""
    from monitor.alerts import compile_rules
    from pipelines.tagging import Tagger

    rules = compile_rules(config, Tagger.load(config.taxonomy_files))
    if only is None:
        return rules
    chosen = [compiled for compiled in rules if compiled.name == only]
    if not chosen:
        known = ", ".join(repr(r.name) for r in config.alerts) or "none"
        raise ConfigError(f"{config.path or 'config'}: no [[alerts]] rule named {only!r} (rules: {known})")
    return chosen[:1]


def handle_preview(args: argparse.Namespace) -> int:
    from monitor.alerts import preview, render_plain

    config = load(args)
    (compiled,) = _compiled(config, args.name)
    found = preview(config, compiled, args.days)
    out = sys.stdout
    for story, sent in found:
        article = story.article
        mark = "sent" if sent else "    "
        print(f"[{mark}] #{article['id']} {(article.get('published_at') or article['fetched_at'])[:10]}"
              f" {article.get('source')}: {' '.join((article.get('title') or '(untitled)').split())}", file=out)
        body = render_plain(compiled.rule, [story]).split("\n-- \n")[0]
        for line in body.splitlines()[2:]:
            if line.strip():
                print(f"        {line}", file=out)
    already = sum(sent for _, sent in found)
    noun = "article" if len(found) == 1 else "articles"
    print(f"{len(found)} {noun} of the last {args.days:g} days match rule {compiled.name!r}"
          f" ({already} already alerted)", file=out)
    return 0


def handle_send(args: argparse.Namespace) -> int:
    from monitor.alerts import AlertSender
    from monitor.lock import DaemonLocked, acquire_lock

    config = load(args)
    rules = _compiled(config)
    lock = None
    if not args.dry_run:
        from monitor.mail import check_email_config

        # Checked even with nothing due, so a broken [email] shows before the first alert is.
        check_email_config(config.email)
        # A running daemon delivers alerts itself; two senders at once could send one alert twice. On
        # PostgreSQL, where several daemons may share the database, each sweep takes an advisory lock instead.
        try:
            if not is_database_url(config.db_path):
                lock = acquire_lock(config.db_path, "monitor alerts send")
        except DaemonLocked as exc:
            print(f"monitor: {exc}", file=sys.stderr)
            return DELIVERY_FAILED
    try:
        sender = AlertSender(config, rules)
        report = sender.deliver(dry_run=args.dry_run)
    finally:
        if lock is not None:
            lock.release()
    if report.delivering_elsewhere:
        print("monitor: another process ('monitor run' or 'alerts send') is delivering alerts on this database"
              " now; it sends what is due", file=sys.stderr)
        return DELIVERY_FAILED
    for outgoing in report.sent:
        print(f"sent    {outgoing.rule} → {outgoing.recipient}: {outgoing.subject}")
    verb = "would send" if args.dry_run else "pending "
    for outgoing in report.pending:
        print(f"{verb} {outgoing.rule} → {outgoing.recipient}: {outgoing.subject}")
    for error in report.errors:
        print(f"monitor: {error}", file=sys.stderr)
    if report.suppressed:
        print(f"{report.suppressed} near-identical copies of stories already sent were not sent again")
    print(f"{len(report.sent)} messages sent, {len(report.pending)} {'to send' if args.dry_run else 'pending'}")
    return DELIVERY_FAILED if report.errors else 0

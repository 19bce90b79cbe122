"""Keyword alerts: rules checked against the tagging stage, matched in SQL, rendered and delivered exactly once.

    rules = compile_rules(config, tagger)            # ConfigError naming the rule if one can't be used
    sender = AlertSender(config, rules)              # now= a clock for digests; mailer= where mail goes
    sender.register()                                # note new rules: the backlog is never alerted
    report = sender.deliver()                        # immediate rules, and digests whose time has come

A rule alerts on articles stored after it first appeared; a rule whose
conditions changed, or that was removed and added again, starts afresh. An
article is recorded for a recipient only after the server accepted the
message, and in `alerts_sent` once every recipient has it; a failed delivery
stays pending and the next `deliver` retries it, except that a message the
server refuses for good (5xx) is given up after GIVE_UP_AFTER tries. The same
story from several outlets (same content hash, or near-identical text) alerts
once, listing the sources. Each digest slot goes to a recipient once.
"""

from __future__ import annotations

import difflib
import hashlib
import html
import logging
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from monitor.config import WEEKDAYS, AlertRule, Config, ConfigError
from monitor.mail import DeliveryError, Mailer, clean_header, mailer_for, new_message
from monitor.output import format_figure
from storage import alerts as ledger
from storage import open_db, open_readonly
from storage.db import to_utc_iso
from storage.queries import (
    HIGHLIGHT_END,
    HIGHLIGHT_START,
    QueryError,
    SearchFilters,
    article_tags,
    search_articles,
    validate_fts_query,
)
from storage.target import database_target, is_database_url, is_postgres

log = logging.getLogger("monitor.alerts")

SUBJECT_PREFIX = "[policy-monitor]"
TITLE_LIMIT = 120
"""Characters of an article title kept in an immediate alert's subject."""
NEAR_DUPLICATE = 0.8
"""Share of shared character 7-grams above which two texts are the same story."""
DUPLICATE_WINDOW = timedelta(days=14)
"""How far back a new article is compared with what the rule already sent."""
GIVE_UP_AFTER = 5
"""Deliveries refused for good (5xx) after which a message is given up (one try per `deliver`)."""
_COUNTRY_CODE = re.compile(r"^[A-Z]{2}$")
_HIGHLIGHT = re.compile(f"({re.escape(HIGHLIGHT_START)}|{re.escape(HIGHLIGHT_END)})")
_NOT_WORD = re.compile(r"[\W_]+")


class TaggerIds(Protocol):
    """What rule checking needs from the tagging stage's `Tagger`."""

    visa_ids: set[str]
    sector_ids: set[str]

    def visa_country(self, visa_id: str) -> str | None: ...

    def subtypes(self, kind: str, eid: str) -> tuple[str, ...]: ...


@dataclass
class CompiledRule:
    """An alert rule from the config with its conditions checked and ready for SQL."""

    rule: AlertRule
    conditions: ledger.RuleConditions

    @property
    def name(self) -> str:
        return self.rule.name

    @property
    def conditions_hash(self) -> str:
        """Changes when what the rule matches changes (not its recipients or schedule)."""
        return ledger.conditions_hash(self.conditions)


def compile_rules(config: Config, tagger: TaggerIds) -> list[CompiledRule]:
    """Check every `[[alerts]]` rule; a rule that can't be used is a ConfigError naming it."""
    sources = {s.name for s in config.sources}
    file = str(config.path) if config.path else "config"
    countries = visa_countries(tagger)
    compiled = [compile_rule(rule, tagger, sources, file, countries) for rule in config.alerts]
    if is_database_url(config.db_path):
        _check_postgres_queries(config.alerts, file)
    return compiled


def _check_postgres_queries(rules: Sequence[AlertRule], file: str) -> None:
    """On PostgreSQL a rule's query is also translated to a tsquery: refused now, in one line, if it cannot be
    (NEAR, column filters), rather than at every delivery."""
    from storage.postgres.search import match_condition

    for rule in rules:
        if rule.query:
            try:
                match_condition(rule.query)
            except QueryError as exc:
                raise ConfigError(f"{file}: [[alerts]] {rule.name!r} query: {exc}") from None


def visa_countries(tagger: TaggerIds) -> set[str]:
    """The countries of the tagger's visas (what `KR:*` may name)."""
    return {tagger.visa_country(visa) or visa.partition(":")[0] for visa in tagger.visa_ids}


def compile_rule(rule: AlertRule, tagger: TaggerIds, source_names: set[str], file: str = "config",
                 countries: set[str] | None = None) -> CompiledRule:
    """Check one rule against the tagger's ids, the configured sources and SQLite's FTS5 parser.

    `countries`: `visa_countries(tagger)`, worked out once by the caller checking many rules.
    """
    if countries is None:
        countries = visa_countries(tagger)
    where = f"{file}: [[alerts]] {rule.name!r}"
    if rule.query is not None:
        if not rule.query.strip():
            raise ConfigError(f"{where} query: empty; leave the key out to match every article")
        problem = validate_fts_query(rule.query)
        if problem:
            raise ConfigError(f"{where} query: invalid FTS5 query {rule.query!r}: {problem}")
    for visa in rule.visas:
        _check_visa(where, "visas", visa, tagger, countries)
    for sector in rule.sectors:
        if sector not in tagger.sector_ids:
            raise ConfigError(f"{where} sectors: unknown sector {sector!r}{_suggest(sector, tagger.sector_ids)}")
    for country in rule.countries:
        if not _COUNTRY_CODE.match(country):
            raise ConfigError(f"{where} countries: expected ISO 3166 alpha-2 codes like 'KR', got {country!r}")
    for source in rule.sources:
        if source not in source_names:
            raise ConfigError(f"{where} sources: no source named {source!r}{_suggest(source, source_names)}")
    for number, figure in enumerate(rule.figures, 1):
        if figure.visa:
            _check_visa(where, f"figures #{number} visa", figure.visa, tagger, countries)
        if figure.min is not None and figure.max is not None and figure.min > figure.max:
            raise ConfigError(f"{where} figures #{number}: min {figure.min:g} is above max {figure.max:g}")
    conditions = ledger.RuleConditions(
        query=rule.query, visas=tuple(rule.visas), sectors=tuple(rule.sectors), countries=tuple(rule.countries),
        sources=tuple(rule.sources), langs=tuple(rule.langs),
        figures=tuple(ledger.FigureFilter(visa=f.visa, unit=f.unit, min=f.min, max=f.max, year=f.year)
                      for f in rule.figures),
        subtypes=rule_subtypes(rule, tagger),
    )
    return CompiledRule(rule, conditions)


def rule_subtypes(rule: AlertRule, tagger: TaggerIds) -> dict[str, tuple[str, ...]]:
    """The ids that count as each visa and sector the rule names (its sub-types and finer fields), so that
    a rule on JP:HSP matches JP:HSP-1B and one on `other` matches `batteries`."""
    found: dict[str, tuple[str, ...]] = {}
    visas = [*rule.visas, *(f.visa for f in rule.figures if f.visa)]
    for kind, ids in (("visa", visas), ("sector", rule.sectors)):
        for eid in ids:
            if not eid.endswith("*") and (below := tagger.subtypes(kind, eid)):
                found[eid] = below
    return found


def _check_visa(where: str, key: str, visa: str, tagger: TaggerIds, countries: set[str]) -> None:
    problem = visa_id_problem(visa, tagger, countries)
    if problem:
        raise ConfigError(f"{where} {key}: {problem}")


def visa_id_problem(visa: str, tagger: TaggerIds, countries: set[str] | None = None) -> str | None:
    """Why `visa` (an id such as KR:E-7, or KR:* for a country) names no known visa, with a suggestion; else None."""
    if countries is None:
        countries = visa_countries(tagger)
    if visa.endswith(":*"):
        if visa[:-2] not in countries:
            return (f"no visa of country {visa[:-2]!r} is known for {visa!r}"
                    f" (countries: {', '.join(sorted(countries)) or 'none'})")
    elif visa not in tagger.visa_ids:
        return f"unknown visa id {visa!r}{_suggest(visa, tagger.visa_ids)}"
    return None


def expand_visa(visa: str, tagger: TaggerIds) -> list[str]:
    """The visa ids `visa` names: itself and its sub-types (JP:HSP -> JP:HSP-1 ...), or for `KR:*` every visa of
    that country (as search and rules read it)."""
    if not visa.endswith(":*"):
        return [visa, *tagger.subtypes("visa", visa)]
    country = visa[:-2]
    return sorted(v for v in tagger.visa_ids if (tagger.visa_country(v) or v.partition(":")[0]) == country)


def _suggest(value: str, known: set[str]) -> str:
    close = difflib.get_close_matches(value, sorted(known), n=3, cutoff=0.5)
    return f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""


# ---------------------------------------------------------------- digests' clock


def last_digest_slot(rule: AlertRule, timezone: str, now: datetime) -> datetime | None:
    """The most recent time at or before `now` when the rule's digest was due; None for immediate rules."""
    if rule.mode == "immediate":
        return None
    hour, minute = (int(part) for part in rule.at.split(":"))
    local = now.astimezone(ZoneInfo(timezone))
    slot = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if rule.mode == "weekly":
        slot -= timedelta(days=(local.weekday() - WEEKDAYS.index(rule.day)) % 7)
        step = timedelta(days=7)
    else:
        step = timedelta(days=1)
    if slot > local:
        slot -= step
    return slot


# ---------------------------------------------------------------- near-identical stories


def fingerprint(text: str) -> frozenset[int]:
    """Hashes of the character 7-grams of `text` with case, spacing and punctuation ignored (any script)."""
    normal = _NOT_WORD.sub("", text.casefold())[:6000]
    return frozenset(
        int.from_bytes(hashlib.blake2b(normal[i : i + 7].encode(), digest_size=8).digest(), "big")
        for i in range(max(0, len(normal) - 6))
    )


def same_story(a: frozenset[int], b: frozenset[int]) -> bool:
    """Whether two fingerprints are near-identical texts (too short a text is never judged a copy)."""
    if len(a) < 50 or len(b) < 50 or min(len(a), len(b)) < NEAR_DUPLICATE * max(len(a), len(b)):
        return False
    return len(a & b) >= NEAR_DUPLICATE * len(a | b)


# ---------------------------------------------------------------- rendering


@dataclass
class Story:
    """One article to tell a recipient about, standing for itself and its near-identical copies."""

    article: dict[str, Any]
    article_ids: list[int]
    sources: list[str]
    tags: dict[str, list[dict[str, Any]]]
    snippet: str


def split_highlights(snippet: str) -> list[tuple[str, bool]]:
    """Pieces of a snippet with HIGHLIGHT markers, each with whether it is highlighted."""
    pieces, marked = [], False
    for part in _HIGHLIGHT.split(snippet):
        if part == HIGHLIGHT_START:
            marked = True
        elif part == HIGHLIGHT_END:
            marked = False
        elif part:
            pieces.append((part, marked))
    return pieces


def _tag_lines(tags: dict[str, list[dict[str, Any]]]) -> list[tuple[str, str]]:
    lines = []
    visas = list(dict.fromkeys(m["label"] for m in tags.get("visa", [])))
    if visas:
        lines.append(("Visas", ", ".join(visas)))
    sectors = list(dict.fromkeys(m["label"] for m in tags.get("sector", [])))
    if sectors:
        lines.append(("Sectors", ", ".join(sectors)))
    figures = []
    for f in tags.get("figures", [])[:8]:
        figures.append(format_figure(f))
    if figures:
        lines.append(("Figures", "; ".join(figures)))
    return lines


def _published(article: dict[str, Any]) -> str:
    moment = article.get("published_at") or article.get("fetched_at") or ""
    return moment[:10]


def _safe_link(url: str) -> str | None:
    return url if url.lower().startswith(("http://", "https://")) else None


def render_plain(rule: AlertRule, stories: Sequence[Story]) -> str:
    """The plain-text part: per story its title, source(s), date, tags, snippet (matches in **) and link."""
    out = []
    for story in stories:
        article = story.article
        title = clean_header(article.get("title") or "(untitled)")
        out.append(title)
        out.append("=" * min(len(title), 72))
        others = [s for s in story.sources if s != article.get("source")]
        source = article.get("source") or "?"
        out.append(f"Source: {source}" + (f" (also reported by: {', '.join(others)})" if others else ""))
        out.append(f"Date: {_published(article)}")
        for label, value in _tag_lines(story.tags):
            out.append(f"{label}: {value}")
        if story.snippet:
            snippet = "".join(f"**{text}**" if marked else text for text, marked in split_highlights(story.snippet))
            out.append("")
            out.append(" ".join(snippet.split()))
        out.append("")
        out.append(article.get("url") or "")
        out.append("")
        out.append("")
    out.append("-- ")
    out.append(f"policy-monitor alert rule {rule.name!r} ({rule.mode}).")
    out.append(f"See what it matches: monitor alerts preview {_shell_word(rule.name)}")
    return "\n".join(out) + "\n"


def render_html(rule: AlertRule, stories: Sequence[Story]) -> str:
    """The HTML part: the same content as the plain part, every article-derived string escaped."""
    esc = html.escape
    parts = ["<!DOCTYPE html>", '<html><head><meta charset="utf-8"></head>',
             '<body style="font-family: sans-serif; max-width: 46em">']
    for story in stories:
        article = story.article
        title = esc(" ".join((article.get("title") or "(untitled)").split()))
        link = _safe_link(article.get("url") or "")
        heading = f'<a href="{esc(link)}">{title}</a>' if link else title
        parts.append(f'<h2 style="font-size: 1.15em; margin-bottom: 0.2em">{heading}</h2>')
        others = [s for s in story.sources if s != article.get("source")]
        meta = f"{esc(article.get('source') or '?')} · {esc(_published(article))}"
        if others:
            meta += f" · also reported by {esc(', '.join(others))}"
        parts.append(f'<p style="color: #555; margin-top: 0">{meta}</p>')
        tag_lines = _tag_lines(story.tags)
        if tag_lines:
            parts.append("<ul>" + "".join(f"<li><b>{esc(label)}:</b> {esc(value)}</li>" for label, value in tag_lines)
                         + "</ul>")
        if story.snippet:
            snippet = "".join(f"<mark>{esc(text)}</mark>" if marked else esc(text)
                              for text, marked in split_highlights(story.snippet))
            parts.append(f"<p>{snippet}</p>")
        if link:
            parts.append(f'<p><a href="{esc(link)}">{esc(link)}</a></p>')
    parts.append(f'<hr><p style="color: #777; font-size: 0.9em">policy-monitor alert rule'
                 f" <b>{esc(rule.name)}</b> ({esc(rule.mode)}). See what it matches:"
                 f" <code>monitor alerts preview {esc(_shell_word(rule.name))}</code></p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def subject_for(rule: AlertRule, stories: Sequence[Story]) -> str:
    """`[policy-monitor] RULE: TITLE` for one immediate story, `[policy-monitor] RULE: N new articles` for a digest."""
    name = clean_header(rule.name)
    if rule.mode == "immediate":
        title = clean_header(stories[0].article.get("title") or "(untitled)", TITLE_LIMIT)
        return f"{SUBJECT_PREFIX} {name}: {title}"
    count = len(stories)
    return f"{SUBJECT_PREFIX} {name}: {count} new article{'s' if count != 1 else ''}"


def build_message(rule: AlertRule, stories: Sequence[Story], sender: str, recipient: str) -> EmailMessage:
    """The multipart plain + HTML message about `stories` for one recipient."""
    return new_message(sender, recipient, subject_for(rule, stories), render_plain(rule, stories),
                       render_html(rule, stories))


def _shell_word(name: str) -> str:
    return name if re.fullmatch(r"[\w.:@%+=,/-]+", name) else "'" + name.replace("'", "'\\''") + "'"


# ---------------------------------------------------------------- delivery


@dataclass
class Outgoing:
    """One message to send (or, in a dry run, that would be sent)."""

    rule: str
    recipient: str
    subject: str
    article_ids: list[int]
    message: EmailMessage
    slot: str | None = None
    """The digest slot (ISO time) the message is for; None for an immediate alert."""


@dataclass
class DeliveryReport:
    sent: list[Outgoing] = field(default_factory=list)
    pending: list[Outgoing] = field(default_factory=list)
    """Messages not delivered this time (dry run, or failed): they stay pending."""
    errors: list[str] = field(default_factory=list)
    given_up: list[Outgoing] = field(default_factory=list)
    """Messages refused for good GIVE_UP_AFTER times: never tried again."""
    suppressed: int = 0
    """Copies of stories already sent, put in the ledger without a message."""
    claimed_elsewhere: int = 0
    """Messages another sender on the same database had claimed (and sends)."""
    delivering_elsewhere: bool = False
    """PostgreSQL: another process held the delivery lock, so this sweep sent nothing (it will)."""


class AlertSender:
    """Evaluates compiled rules over the database at `config.db_path` and delivers what is pending."""

    def __init__(
        self,
        config: Config,
        rules: Sequence[CompiledRule],
        *,
        db_path: Path | None = None,
        mailer: Mailer | None = None,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.config = config
        self.rules = list(rules)
        self.db_path = database_target(db_path or config.db_path)
        self.mailer = mailer
        self.now = now or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self._fingerprints: dict[int, frozenset[int]] = {}

    def register(self) -> dict[str, int]:
        """Note rules not seen before, or whose conditions changed, with the newest article as their baseline.

        Rules no longer configured are forgotten: added again, they start afresh.
        Returns every rule's baseline.
        """
        db = open_db(self.db_path)
        try:
            return self._register(db, prune=True)
        finally:
            db.close()

    def _register(self, db: Any, *, prune: bool) -> dict[str, int]:
        before = ledger.registered_rules(db.conn, [r.name for r in self.rules])
        baselines = ledger.register_rules(db, {r.name: r.conditions_hash for r in self.rules}, prune=prune)
        for compiled in self.rules:
            old_hash = before.get(compiled.name, (0, None))[1]
            if old_hash is not None and old_hash != compiled.conditions_hash:
                log.info("alert rule %r: its conditions changed; it alerts on articles stored from now on",
                         compiled.name)
        return baselines

    def _baselines(self, db: Any, dry_run: bool) -> dict[str, int]:
        """Every rule's baseline, registering rules that are new or changed (unless `dry_run`)."""
        known = ledger.registered_rules(db.conn, [r.name for r in self.rules])
        stale = {r.name for r in self.rules if known.get(r.name, (0, None))[1] != r.conditions_hash}
        if not stale:
            return {name: first for name, (first, _) in known.items()}
        if dry_run:  # what registering would do: new and changed rules start at the newest article;
            # a rule registered by name alone (no hash yet) keeps its baseline, as registering keeps it
            newest = ledger.newest_article_id(db.conn)
            return {r.name: known[r.name][0] if r.name in known and known[r.name][1] is None
                    else newest if r.name in stale else known[r.name][0] for r in self.rules}
        return self._register(db, prune=False)

    def deliver(
        self,
        *,
        immediate: bool = True,
        digests: bool = True,
        dry_run: bool = False,
        stop: threading.Event | None = None,
    ) -> DeliveryReport:
        """Send what every rule has pending: immediate rules' new matches, digests whose time has come.

        With `dry_run` nothing is sent or written; the messages are in `report.pending`.
        Serialised: two threads never deliver at once (which could send one alert twice).
        """
        with self._lock:
            return self._deliver(immediate, digests, dry_run, stop or threading.Event())

    def _deliver(self, immediate: bool, digests: bool, dry_run: bool, stop: threading.Event) -> DeliveryReport:
        report = DeliveryReport()
        db = open_db(self.db_path)
        mailer = None
        if not dry_run and is_postgres(db) and not _delivery_lock(db):
            db.close()
            report.delivering_elsewhere = True
            return report
        try:
            baselines = self._baselines(db, dry_run)
            newest = ledger.newest_article_id(db.conn)
            checked = ledger.rule_checkpoints(db.conn, [r.name for r in self.rules])
            now = self.now()
            server_down = False
            for compiled in self.rules:
                if stop.is_set():
                    break
                is_digest = compiled.rule.mode != "immediate"
                if (is_digest and not digests) or (not is_digest and not immediate):
                    continue
                # Articles up to the rule's checkpoint were read before: no match there is left unsent.
                start = max(baselines.get(compiled.name, newest), checked.get(compiled.name, 0))
                plan = self._plan(db, compiled, start, newest, now, dry_run, report)
                for outgoing in plan:
                    if dry_run or stop.is_set() or server_down:
                        report.pending.append(outgoing)
                        continue
                    try:
                        if mailer is None:
                            mailer = self.mailer or mailer_for(self.config.email)
                    except ConfigError as exc:
                        # The daemon checks this at start; here it only stops this run, in one line.
                        report.errors.append(str(exc))
                        report.pending.append(outgoing)
                        server_down = True
                        log.error("alerts not delivered: %s", exc)
                        continue
                    # Another daemon on the same database may be sending this very message: claimed once.
                    if not ledger.claim_delivery(db, compiled.name, outgoing.article_ids, outgoing.recipient):
                        report.claimed_elsewhere += 1
                        continue
                    try:
                        mailer.send(outgoing.message, outgoing.recipient)
                    except DeliveryError as exc:
                        report.errors.append(f"rule {compiled.name!r} to {outgoing.recipient}: {exc}")
                        # An unreachable server fails every message alike: leave the rest for the next try.
                        # A refusal of this one message lets the others go on.
                        server_down = exc.server_down
                        self._failed(db, compiled, outgoing, exc, report)
                        ledger.release_claim(db, compiled.name, outgoing.article_ids, outgoing.recipient)
                        continue
                    # Accepted by the server: only now does the ledger say so.
                    ledger.record_delivery(db, compiled.name, outgoing.article_ids, outgoing.recipient,
                                           compiled.rule.to, slot=outgoing.slot)
                    ledger.release_claim(db, compiled.name, outgoing.article_ids, outgoing.recipient)
                    report.sent.append(outgoing)
                    log.info("alert sent: rule=%s to=%s articles=%s subject=%r", compiled.name,
                             outgoing.recipient, _ids(outgoing.article_ids), outgoing.subject,
                             extra={"fields": {"event": "alert_sent", "rule": compiled.name,
                                               "to": outgoing.recipient, "articles": outgoing.article_ids}})
        finally:
            if mailer is not None and self.mailer is None:
                mailer.close()
            db.close()
        return report

    def _failed(self, db: Any, compiled: CompiledRule, outgoing: Outgoing, exc: DeliveryError,
                report: DeliveryReport) -> None:
        """Note a message the server did not accept: pending for a retry, or given up after GIVE_UP_AFTER 5xx."""
        fields = {"rule": compiled.name, "to": outgoing.recipient, "articles": outgoing.article_ids,
                  "error": str(exc)}
        if exc.permanent and ledger.record_failure(db, compiled.name, outgoing.article_ids, outgoing.recipient,
                                                   str(exc), give_up_after=GIVE_UP_AFTER, slot=outgoing.slot,
                                                   recipients=compiled.rule.to):
            report.given_up.append(outgoing)
            log.error("alert given up after %d refusals: rule=%s to=%s articles=%s subject=%r: %s", GIVE_UP_AFTER,
                      compiled.name, outgoing.recipient, _ids(outgoing.article_ids), outgoing.subject, exc,
                      extra={"fields": {"event": "alert_given_up", **fields}})
            return
        report.pending.append(outgoing)
        log.warning("alert not delivered, will retry: rule=%s to=%s articles=%s: %s",
                    compiled.name, outgoing.recipient, _ids(outgoing.article_ids), exc,
                    extra={"fields": {"event": "alert_failed", **fields}})

    def _plan(self, db: Any, compiled: CompiledRule, start: int, newest: int, now: datetime, dry_run: bool,
              report: DeliveryReport) -> list[Outgoing]:
        """The messages the rule has pending now, among the articles of id above `start` up to `newest`.

        Moves the rule's checkpoint up to the first match not yet sent, so the next evaluation starts there.
        """
        rule = compiled.rule
        moment = last_digest_slot(rule, self.config.timezone, now)
        slot = to_utc_iso(moment) if moment is not None else None
        recipients = list(rule.to)
        if slot is not None:
            # One digest per slot and recipient: what is stored after it went out waits for the next slot.
            done = ledger.digest_sent(db.conn, rule.name, slot)
            recipients = [r for r in recipients if r not in done]
            if not recipients:
                return []
        # A slot's digest holds what was fetched by its time. fetched_at is read
        # before the article's transaction, so one may commit just after the
        # digest went out: the slot being recorded, it goes into the next one.
        candidates = ledger.matching_articles(db.conn, compiled.conditions, after_id=start, up_to=newest,
                                              unsent_for=rule.name)
        checked_up_to = candidates[0]["id"] - 1 if candidates else newest
        if not dry_run and checked_up_to > start:  # no write when nothing new was read
            ledger.record_checked(db, rule.name, checked_up_to)
        if slot is not None:
            candidates = [a for a in candidates if a["fetched_at"] <= slot]
        if not candidates:
            return []
        candidates, copies = self._drop_copies_of_sent(db.conn, rule.name, candidates, now)
        if copies:
            report.suppressed += len(copies)
            if not dry_run:
                ledger.record_sent(db, rule.name, copies)
                log.info("alert rule=%s: %d near-identical copies of stories already sent, not sent again",
                         rule.name, len(copies))
        groups = self._group(candidates)
        ids = [a["id"] for a in candidates]
        delivered = ledger.delivered_recipients(db.conn, rule.name, ids)
        given_up = ledger.given_up_recipients(db.conn, rule.name, ids)
        stories: dict[tuple[int, ...], Story] = {}
        noted: set[int] = set()
        plan = []
        for recipient in recipients:
            todo = []
            for group in groups:
                if any(recipient in delivered[a["id"]] for a in group):
                    # The recipient has the story (another outlet's copy): note the new copies, send nothing.
                    missing = [a["id"] for a in group if recipient not in delivered[a["id"]]]
                    if missing and not dry_run:
                        ledger.record_delivery(db, rule.name, missing, recipient, rule.to)
                    noted.update(missing)
                    continue
                wanted = [a for a in group if recipient not in given_up[a["id"]]]
                if wanted:
                    key = tuple(a["id"] for a in wanted)
                    if key not in stories:
                        stories[key] = story_for(db.conn, compiled, wanted)
                    todo.append(stories[key])
            batches = [[s] for s in todo] if rule.mode == "immediate" else ([todo] if todo else [])
            for batch in batches:
                message = build_message(rule, batch, self.config.email.sender, recipient)
                plan.append(Outgoing(rule.name, recipient, message["Subject"],
                                     [i for s in batch for i in s.article_ids], message, slot))
        if noted:
            report.suppressed += len(noted)
            log.info("alert rule=%s: %d copies of stories their recipients already have, not sent again",
                     rule.name, len(noted))
        return plan

    def _fingerprint(self, article: dict[str, Any]) -> frozenset[int]:
        key = article["id"]
        if key not in self._fingerprints:
            if len(self._fingerprints) > 5000:
                self._fingerprints.clear()
            self._fingerprints[key] = fingerprint(article.get("text") or "")
        return self._fingerprints[key]

    def _drop_copies_of_sent(self, conn: Any, rule: str, candidates: list[dict[str, Any]], now: datetime
                             ) -> tuple[list[dict[str, Any]], list[int]]:
        """Split candidates into new stories and near-identical copies of stories the rule already sent."""
        sent = ledger.sent_articles(conn, rule, to_utc_iso(now - DUPLICATE_WINDOW))
        if not sent:
            return candidates, []
        sent_prints = [self._fingerprint(a) for a in sent]
        fresh, copies = [], []
        for article in candidates:
            mine = self._fingerprint(article)
            if any(same_story(mine, other) for other in sent_prints):
                copies.append(article["id"])
            else:
                fresh.append(article)
        return fresh, copies

    def _group(self, candidates: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
        """Candidates grouped by story: near-identical texts share a group, first stored first."""
        groups: list[list[dict[str, Any]]] = []
        for article in candidates:
            mine = self._fingerprint(article)
            for group in groups:
                if same_story(mine, self._fingerprint(group[0])):
                    group.append(article)
                    break
            else:
                groups.append([article])
        return groups



def _delivery_lock(db: Any) -> bool:
    """PostgreSQL: whether this connection got the delivery lock (several daemons share one database; one
    sweep delivers at a time, each message claimed besides). Held until the connection closes."""
    from monitor.lock import DAEMON_LOCK_KEY

    return bool(db.execute("SELECT pg_try_advisory_lock(?)", [DAEMON_LOCK_KEY]).fetchone()[0])


def story_for(conn: Any, compiled: CompiledRule, group: Sequence[dict[str, Any]]) -> Story:
    """The story about `group`: an article and its near-identical copies, first stored first."""
    article = group[0]
    ids = [a["id"] for a in group]
    return Story(article=article, article_ids=ids, sources=ledger.article_sources(conn, ids),
                 tags=article_tags(conn, article["id"]), snippet=snippet_for(conn, compiled, article))


def snippet_for(conn: Any, compiled: CompiledRule, article: dict[str, Any], width: int = 90) -> str:
    """A short passage with the rule's matching words between HIGHLIGHT markers.

    With a query, the search's snippet (SQLite's FTS snippet, or the CJK
    substring snippet); without one, or when no word of the query is in the
    text, the sentence around the first visa or sector mention the rule asked for.
    """
    conditions = compiled.conditions
    if conditions.query:
        try:
            found = search_articles(conn, conditions.query, SearchFilters(article_ids=(article["id"],)), limit=1)
        except QueryError:  # checked when the rule was compiled; a snippet is not worth failing a delivery
            found = []
        if found and HIGHLIGHT_START in (found[0].get("snippet") or ""):
            return found[0]["snippet"]
    text = article.get("text") or ""
    wanted = {("visa", v) for v in conditions.visas} | {("sector", s) for s in conditions.sectors}
    rows = conn.execute('SELECT kind, label, start, "end" FROM mentions WHERE article_id = ?'
                        " AND kind IN ('visa', 'sector') ORDER BY start", [article["id"]]).fetchall()
    for kind, label, start, end in rows:
        prefix_match = any(k == kind and v.endswith("*") and label.startswith(v[:-1]) for k, v in wanted)
        if ((kind, label) in wanted or prefix_match) and 0 <= start < end <= len(text):
            left, right = max(0, start - width), min(len(text), end + width)
            return (("…" if left else "") + text[left:start] + HIGHLIGHT_START + text[start:end] + HIGHLIGHT_END
                    + text[end:right] + ("…" if right < len(text) else ""))
    return text[: 2 * width] + ("…" if len(text) > 2 * width else "")


def preview(config: Config, compiled: CompiledRule, days: float, now: datetime | None = None
            ) -> list[tuple[Story, bool]]:
    """What the rule matches among articles of the last `days` days, newest first, each with whether it was sent.

    Ignores the rule's baseline: this is the way to see what the backlog holds.
    """
    now = now or datetime.now(UTC)
    conn = open_readonly(config.db_path)
    try:
        try:
            since: str | None = to_utc_iso(now - timedelta(days=days))
        except OverflowError:  # more days than the calendar has: everything
            since = None
        articles = ledger.matching_articles(conn, compiled.conditions, since=since)
        sent = ledger.sent_article_ids(conn, compiled.name)
        stories = [story_for(conn, compiled, [a]) for a in articles]
    finally:
        conn.close()
    stories.sort(key=lambda s: (s.article.get("published_at") or s.article.get("fetched_at") or ""), reverse=True)
    return [(story, story.article["id"] in sent) for story in stories]


def _ids(ids: Sequence[int]) -> str:
    return ",".join(str(i) for i in ids)

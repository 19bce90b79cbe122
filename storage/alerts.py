"""Alert bookkeeping: when each rule first appeared, which articles match it, and the delivery ledger.

Exactly-once delivery rests on two tables. `alert_deliveries(rule, article_id,
recipient)` records each recipient's copy once the SMTP server accepted it, so
a retry never sends a recipient the same alert twice; `alerts_sent(rule,
article_id)` is written when every recipient has it, and an article in it is
never a candidate for that rule again. `alert_digests` holds the digest slots
each recipient was sent, `alert_failures` the messages a server refused for
good (5xx), with how often, and when they were given up. Knows nothing of SMTP
or of the config model: rules come in as `RuleConditions`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import socket
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlite_utils

from storage.db import to_utc_iso, utc_now
from storage.queries import SearchFilters, filter_clauses, match_condition
from storage.target import is_postgres
from storage.writes import transaction

ARTICLE_COLUMNS = ("id", "title", "url", "source", "published_at", "fetched_at", "lang", "text", "content_hash")


@dataclass
class FigureFilter:
    """A condition on one figure of an article: its visa (or 'KR:*'), unit, value range and year."""

    visa: str | None = None
    unit: str | None = None
    min: float | None = None
    max: float | None = None
    year: int | None = None


@dataclass
class RuleConditions:
    """What an alert rule matches. Fields combine with AND; the values inside one list with OR."""

    query: str | None = None
    visas: Sequence[str] = ()
    sectors: Sequence[str] = ()
    countries: Sequence[str] = ()
    sources: Sequence[str] = ()
    langs: Sequence[str] = ()
    figures: Sequence[FigureFilter] = field(default_factory=tuple)
    subtypes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Visa and sector ids of the rule -> the ids that count as them too (JP:HSP -> JP:HSP-1B ...), from
    the taxonomy. Not part of what the rule says: a taxonomy that grows does not make it a new rule."""


def conditions_hash(conditions: RuleConditions) -> str:
    """A hash of what `conditions` match: equal conditions, equal hash (lists compared in order)."""
    stated = dataclasses.asdict(conditions)
    stated.pop("subtypes")
    canonical = json.dumps(stated, sort_keys=True, ensure_ascii=False, default=list)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def condition_clauses(conditions: RuleConditions, postgres: bool = False) -> tuple[list[str], list[Any]]:
    """SQL conditions on articles `a` for `conditions`, with their parameters (`postgres`: its search SQL)."""
    clauses: list[str] = []
    params: list[Any] = []
    if conditions.query and postgres:
        from storage.postgres.search import match_condition as postgres_match

        check, values = postgres_match(conditions.query)
        clauses.append(check)
        params += values
    elif conditions.query:
        # Checked per article (an FTS lookup by rowid), not the index's whole match list: after a crawl
        # only the new articles are looked at.
        match = match_condition(conditions.query)
        clauses.append(match.check)
        params += match.params
    # The search filters' SQL, so that `KR:*`, a visa's country and the
    # source's country mean the same in alerts as in `monitor search`.
    for name, values in (("visa", conditions.visas), ("sector", conditions.sectors),
                         ("country", conditions.countries)):
        if not values:
            continue
        alternatives = [filter_clauses(_one_filter(name, value, conditions.subtypes)) for value in values]
        clauses.append("(" + " OR ".join(" AND ".join(sql) for sql, _ in alternatives) + ")")
        for _, values_ in alternatives:
            params += values_
    if conditions.sources:
        marks = ",".join("?" * len(conditions.sources))
        # A syndicated copy counts: the story reached us through that source too.
        clauses.append(f"(a.source IN ({marks}) OR EXISTS (SELECT 1 FROM article_urls u"
                       f" WHERE u.article_id = a.id AND u.source IN ({marks})))")
        params += [*conditions.sources, *conditions.sources]
    if conditions.langs:
        clauses.append(f"a.lang IN ({','.join('?' * len(conditions.langs))})")
        params += list(conditions.langs)
    if conditions.figures:
        alternatives = []
        for figure in conditions.figures:
            parts, values = _figure_clause(figure, conditions.subtypes.get(figure.visa or "", ()))
            alternatives.append(f"EXISTS (SELECT 1 FROM figures f WHERE f.article_id = a.id{parts})")
            params += values
        clauses.append("(" + " OR ".join(alternatives) + ")")
    return clauses, params


def _one_filter(name: str, value: str, subtypes: Mapping[str, tuple[str, ...]]) -> SearchFilters:
    """The search filter for one visa, sector or country of a rule, sub-types included."""
    if name == "visa":
        return SearchFilters(visa=value, visa_subtypes=subtypes.get(value, ()))
    if name == "sector":
        return SearchFilters(sector=value, sector_subtypes=subtypes.get(value, ()))
    return SearchFilters(country=value)


def _figure_clause(figure: FigureFilter, visa_subtypes: Sequence[str] = ()) -> tuple[str, list[Any]]:
    sql, params = "", []
    if figure.visa:
        if figure.visa.endswith("*"):
            sql += " AND f.visa LIKE ? ESCAPE '\\'"
            params.append(figure.visa[:-1].replace("%", "\\%").replace("_", "\\_") + "%")
        else:
            labels = [figure.visa, *visa_subtypes]
            sql += f" AND f.visa IN ({','.join('?' * len(labels))})"
            params += labels
    if figure.unit:
        sql += " AND f.unit = ?"
        params.append(figure.unit)
    if figure.min is not None:
        sql += " AND f.value >= ?"
        params.append(figure.min)
    if figure.max is not None:
        sql += " AND f.value <= ?"
        params.append(figure.max)
    if figure.year is not None:
        sql += " AND f.year = ?"
        params.append(figure.year)
    return sql, params


def register_rules(
    db: sqlite_utils.Database, rules: Iterable[str] | Mapping[str, str | None], *, prune: bool = False
) -> dict[str, int]:
    """Note rules not seen before, with the newest stored article as their baseline; return every baseline.

    A rule alerts only on articles with an id above its `first_article_id`, so
    adding a rule to a full database sends nothing about the backlog. `rules`
    maps names to their `conditions_hash`: a rule whose hash changed starts
    afresh from the newest article (a rule recorded without a hash just gets
    it). With `prune`, rules not in `rules` are forgotten, so a rule removed
    and added again later starts afresh too. Plain names change no hash.
    """
    hashes = dict(rules) if isinstance(rules, Mapping) else dict.fromkeys(rules)
    now = utc_now()
    with transaction(db):
        # Inside the write transaction, no article can be stored between reading
        # max(id) and recording it.
        newest = newest_article_id(db.conn)
        if prune:
            marks = ",".join("?" * len(hashes))
            db.conn.execute(f"DELETE FROM alert_rules WHERE name NOT IN ({marks})", list(hashes))
        known = registered_rules(db.conn, hashes)
        for name, digest in hashes.items():
            if name not in known:
                db.conn.execute("INSERT INTO alert_rules (name, first_seen_at, first_article_id, conditions_hash)"
                                " VALUES (?, ?, ?, ?)", [name, now, newest, digest])
            elif digest is not None and known[name][1] is None:
                db.conn.execute("UPDATE alert_rules SET conditions_hash = ? WHERE name = ?", [digest, name])
            elif digest is not None and known[name][1] != digest:
                db.conn.execute("UPDATE alert_rules SET first_seen_at = ?, first_article_id = ?,"
                                " conditions_hash = ? WHERE name = ?", [now, newest, digest, name])
    return rule_baselines(db.conn, hashes)


def registered_rules(conn: sqlite3.Connection, names: Iterable[str]) -> dict[str, tuple[int, str | None]]:
    """`(first_article_id, conditions_hash)` of each registered rule among `names`."""
    names = list(names)
    if not names:
        return {}
    rows = conn.execute(
        "SELECT name, first_article_id, conditions_hash FROM alert_rules"
        f" WHERE name IN ({','.join('?' * len(names))})", names,
    ).fetchall()
    return {name: (int(first), digest) for name, first, digest in rows}


def rule_baselines(conn: sqlite3.Connection, names: Iterable[str]) -> dict[str, int]:
    """`first_article_id` of each registered rule among `names` (unregistered rules are left out)."""
    return {name: first for name, (first, _) in registered_rules(conn, names).items()}


def rule_checkpoints(conn: sqlite3.Connection, names: Iterable[str]) -> dict[str, int]:
    """`checked_up_to` of each registered rule among `names`: the articles up to it need no second look."""
    names = list(names)
    if not names:
        return {}
    rows = conn.execute(f"SELECT name, checked_up_to FROM alert_rules WHERE name IN ({','.join('?' * len(names))})",
                        names).fetchall()
    return {name: int(checked) for name, checked in rows}


def record_checked(db: sqlite_utils.Database, rule: str, article_id: int) -> None:
    """Note that every article of id up to `article_id` was read for `rule` and is either not a match or in
    its ledger. Call it with the id before the first match not yet sent (or the last id read when none is
    left): an article still to send stays above it, so it stays a candidate. Never moves back."""
    with transaction(db):
        db.conn.execute("UPDATE alert_rules SET checked_up_to = ? WHERE name = ? AND checked_up_to < ?",
                        [article_id, rule, article_id])


def newest_article_id(conn: sqlite3.Connection) -> int:
    """The highest article id stored, 0 for an empty database."""
    return int(conn.execute("SELECT coalesce(max(id), 0) FROM articles").fetchone()[0])


def matching_articles(
    conn: sqlite3.Connection,
    conditions: RuleConditions,
    *,
    after_id: int | None = None,
    up_to: int | None = None,
    unsent_for: str | None = None,
    stored_before: str | None = None,
    since: str | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Articles matching `conditions`, oldest first.

    `after_id`: only ids above it (a rule's baseline or checkpoint). `up_to`: only
    ids up to it. `unsent_for`: leave out
    articles already in the ledger for that rule. `stored_before`: only
    articles fetched before that ISO time (a digest's slot). `since`: only
    articles published (or, undated, fetched) at or after that ISO time.
    """
    clauses, params = condition_clauses(conditions, postgres=is_postgres(conn))
    if after_id is not None:
        clauses.append("a.id > ?")
        params.append(after_id)
    if up_to is not None:
        clauses.append("a.id <= ?")
        params.append(up_to)
    if unsent_for is not None:
        clauses.append("NOT EXISTS (SELECT 1 FROM alerts_sent s WHERE s.rule = ? AND s.article_id = a.id)")
        params.append(unsent_for)
    if stored_before is not None:
        clauses.append("a.fetched_at <= ?")
        params.append(stored_before)
    if since is not None:
        clauses.append("coalesce(a.published_at, a.fetched_at) >= ?")
        params.append(since)
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    # After a baseline, the articles above it are read by id (NOT INDEXED keeps SQLite from walking a
    # source's or the date index over the whole database instead) and the rule checked on each.
    table = "articles a NOT INDEXED" if after_id is not None else "articles a"
    sql = f"SELECT {', '.join('a.' + c for c in ARTICLE_COLUMNS)} FROM {table}{where} ORDER BY a.id"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    return [dict(zip(ARTICLE_COLUMNS, row, strict=True)) for row in conn.execute(sql, params)]


def delivered_recipients(conn: sqlite3.Connection, rule: str, article_ids: Sequence[int]) -> dict[int, set[str]]:
    """For each article id, the recipients that already have the rule's alert about it."""
    return _recipients(conn, "alert_deliveries", rule, article_ids)


def given_up_recipients(conn: sqlite3.Connection, rule: str, article_ids: Sequence[int]) -> dict[int, set[str]]:
    """For each article id, the recipients whose alert about it was refused for good and given up."""
    return _recipients(conn, "alert_failures", rule, article_ids, "gave_up_at IS NOT NULL")


def _recipients(conn: sqlite3.Connection, table: str, rule: str, article_ids: Sequence[int],
                condition: str = "1 = 1") -> dict[int, set[str]]:
    found: dict[int, set[str]] = {article_id: set() for article_id in article_ids}
    for start in range(0, len(article_ids), 500):
        chunk = list(article_ids[start : start + 500])
        rows = conn.execute(
            f"SELECT article_id, recipient FROM {table} WHERE rule = ? AND {condition}"
            f" AND article_id IN ({','.join('?' * len(chunk))})",
            [rule, *chunk],
        )
        for article_id, recipient in rows:
            found[article_id].add(recipient)
    return found


def record_delivery(
    db: sqlite_utils.Database,
    rule: str,
    article_ids: Sequence[int],
    recipient: str,
    recipients: Sequence[str],
    *,
    slot: str | None = None,
) -> list[int]:
    """Record that `recipient` got the rule's alert about `article_ids`; call only after the server accepted it.

    Articles that every one of `recipients` now has go into `alerts_sent`;
    their ids are returned. `slot`: the digest slot the message was for,
    recorded in the same transaction so that slot is never sent again.
    """
    now = utc_now()
    with transaction(db):
        db.conn.executemany(
            "INSERT OR IGNORE INTO alert_deliveries (rule, article_id, recipient, sent_at) VALUES (?, ?, ?, ?)",
            [(rule, article_id, recipient, now) for article_id in article_ids],
        )
        if slot is not None:
            _record_slot(db.conn, rule, recipient, slot, now, len(article_ids))
        complete = _close_finished(db.conn, rule, article_ids, recipients, now)
    return complete


def _close_finished(conn: sqlite3.Connection, rule: str, article_ids: Sequence[int], recipients: Sequence[str],
                    now: str) -> list[int]:
    """Put in `alerts_sent` the articles every recipient has, or was given up for; return their ids.

    Given-up recipients count as done, so an address refused for good does not keep its articles
    among the rule's candidates forever."""
    ids = list(article_ids)
    have = delivered_recipients(conn, rule, ids)
    gone = given_up_recipients(conn, rule, ids)
    complete = [article_id for article_id in ids if set(recipients) <= have[article_id] | gone[article_id]]
    conn.executemany(
        "INSERT OR IGNORE INTO alerts_sent (rule, article_id, sent_at) VALUES (?, ?, ?)",
        [(rule, article_id, now) for article_id in complete],
    )
    return complete


def record_failure(
    db: sqlite_utils.Database,
    rule: str,
    article_ids: Sequence[int],
    recipient: str,
    error: str,
    *,
    give_up_after: int,
    slot: str | None = None,
    recipients: Sequence[str] = (),
) -> bool:
    """Count one more refusal for good (5xx) of the rule's alert about `article_ids` to `recipient`.

    After `give_up_after` of them the alert is given up: never retried, and
    its digest `slot` counts as done; articles all of the rule's `recipients` now have
    (or were given up for) leave the candidates. Returns whether it was given up now.
    """
    now = utc_now()
    with transaction(db):
        db.conn.executemany(
            "INSERT INTO alert_failures (rule, article_id, recipient, attempts, last_error, updated_at)"
            " VALUES (?, ?, ?, 1, ?, ?) ON CONFLICT (rule, article_id, recipient)"
            " DO UPDATE SET attempts = alert_failures.attempts + 1, last_error = excluded.last_error,"
            " updated_at = excluded.updated_at",
            [(rule, article_id, recipient, error, now) for article_id in article_ids],
        )
        marks = ",".join("?" * len(article_ids))
        attempts = db.conn.execute(
            f"SELECT max(attempts) FROM alert_failures WHERE rule = ? AND recipient = ? AND article_id IN ({marks})",
            [rule, recipient, *article_ids]).fetchone()[0] or 0
        if attempts < give_up_after:
            return False
        db.conn.execute(
            f"UPDATE alert_failures SET gave_up_at = ? WHERE rule = ? AND recipient = ? AND article_id IN ({marks})",
            [now, rule, recipient, *article_ids])
        if slot is not None:
            _record_slot(db.conn, rule, recipient, slot, now, 0)
        _close_finished(db.conn, rule, article_ids, recipients or [recipient], now)
    return True


def _record_slot(conn: sqlite3.Connection, rule: str, recipient: str, slot: str, now: str, count: int) -> None:
    conn.execute("INSERT OR IGNORE INTO alert_digests (rule, recipient, slot, sent_at, articles)"
                 " VALUES (?, ?, ?, ?, ?)", [rule, recipient, slot, now, count])


def digest_sent(conn: sqlite3.Connection, rule: str, slot: str) -> set[str]:
    """The recipients the rule's digest for `slot` (an ISO time) already went to, or was given up for."""
    return {row[0] for row in conn.execute("SELECT recipient FROM alert_digests WHERE rule = ? AND slot = ?",
                                           [rule, slot])}


CLAIM_LEASE = timedelta(minutes=15)
"""A claim older than this belongs to a sender that died before recording its message: it may be taken over
(the message may then go twice, as a crash between the server's acceptance and the ledger's write does)."""


def claim_delivery(db: sqlite_utils.Database, rule: str, article_ids: Sequence[int], recipient: str,
                   claimant: str = "") -> bool:
    """Claim the sending of the rule's message about `article_ids` to `recipient`; False when another sender
    holds a claim on any of them (it sends; we do not).

    `INSERT … ON CONFLICT DO NOTHING RETURNING` says which rows this call inserted: only a claim of every
    one of them is kept. Several daemons on one PostgreSQL database (or one SQLite file) thus send each
    message once. Release the claim with `release_claim` once the message is recorded or failed.
    """
    ids = list(dict.fromkeys(article_ids))
    if not ids:
        return True
    now = datetime.now(UTC)
    claimant = claimant or f"{socket.gethostname()}:{os.getpid()}"
    marks = ",".join("?" * len(ids))
    with transaction(db):
        db.conn.execute(f"DELETE FROM alert_claims WHERE rule = ? AND recipient = ? AND article_id IN ({marks})"
                        " AND claimed_at < ?", [rule, recipient, *ids, to_utc_iso(now - CLAIM_LEASE)])
        values = ", ".join("(?, ?, ?, ?, ?)" for _ in ids)
        params = [value for article_id in ids for value in (rule, article_id, recipient, to_utc_iso(now), claimant)]
        claimed = {int(row[0]) for row in db.conn.execute(
            f"INSERT INTO alert_claims (rule, article_id, recipient, claimed_at, claimed_by) VALUES {values}"
            " ON CONFLICT DO NOTHING RETURNING article_id", params).fetchall()}
        if len(claimed) == len(ids):
            return True
        if claimed:
            gone = ",".join("?" * len(claimed))
            db.conn.execute(f"DELETE FROM alert_claims WHERE rule = ? AND recipient = ? AND article_id IN ({gone})",
                            [rule, recipient, *claimed])
    return False


def release_claim(db: sqlite_utils.Database, rule: str, article_ids: Sequence[int], recipient: str) -> None:
    """Drop the claim `claim_delivery` took (the ledger now says what happened to the message)."""
    if not article_ids:
        return
    marks = ",".join("?" * len(article_ids))
    with transaction(db):
        db.conn.execute(f"DELETE FROM alert_claims WHERE rule = ? AND recipient = ? AND article_id IN ({marks})",
                        [rule, recipient, *article_ids])


def record_sent(db: sqlite_utils.Database, rule: str, article_ids: Sequence[int]) -> None:
    """Put articles in the rule's ledger without a message (a near-identical copy of one already sent)."""
    now = utc_now()
    with transaction(db):
        db.conn.executemany(
            "INSERT OR IGNORE INTO alerts_sent (rule, article_id, sent_at) VALUES (?, ?, ?)",
            [(rule, article_id, now) for article_id in article_ids],
        )


def sent_articles(conn: sqlite3.Connection, rule: str, since: str, limit: int = 500) -> list[dict[str, Any]]:
    """Articles in the rule's ledger sent at or after `since`, newest first (to spot near-identical copies)."""
    rows = conn.execute(
        f"SELECT {', '.join('a.' + c for c in ARTICLE_COLUMNS)} FROM alerts_sent s"
        " JOIN articles a ON a.id = s.article_id WHERE s.rule = ? AND s.sent_at >= ?"
        " ORDER BY s.sent_at DESC LIMIT ?",
        [rule, since, limit],
    )
    return [dict(zip(ARTICLE_COLUMNS, row, strict=True)) for row in rows]


def sent_article_ids(conn: sqlite3.Connection, rule: str) -> set[int]:
    """Every article id in the rule's ledger."""
    return {row[0] for row in conn.execute("SELECT article_id FROM alerts_sent WHERE rule = ?", [rule])}


def article_sources(conn: sqlite3.Connection, article_ids: Sequence[int]) -> list[str]:
    """Every source that led to any of `article_ids` (their own and syndicated copies'), first seen first."""
    if not article_ids:
        return []
    marks = ",".join("?" * len(article_ids))
    rows = conn.execute(
        f"SELECT source FROM (SELECT source, fetched_at AS seen FROM articles WHERE id IN ({marks})"
        f" UNION ALL SELECT source, seen_at FROM article_urls WHERE article_id IN ({marks})) AS seen_by"
        " WHERE source IS NOT NULL ORDER BY seen",
        [*article_ids, *article_ids],
    )
    return list(dict.fromkeys(row[0] for row in rows))

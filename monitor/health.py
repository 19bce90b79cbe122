"""Source health: how each source is doing, and when a source counts as failing, broken or silent."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from monitor.config import Config

FLAG_AFTER_FAILURES = 5
"""A source failing this many cycles in a row is flagged, not silently dropped."""
BACKOFF_CAP = timedelta(days=1)


@dataclass
class SourceHealth:
    name: str
    status: str
    """ok | failing | broken | silent | disabled | never crawled"""
    last_success: str | None
    last_error: str | None
    new_7d: int
    new_30d: int
    next_due: str | None
    consecutive_failures: int
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def backoff_interval(every: float, consecutive_failures: int) -> float:
    """Seconds until a source is tried again: its interval, doubled per consecutive failure, capped."""
    doubled = every * (2 ** min(consecutive_failures, 20))
    return min(doubled, max(every, BACKOFF_CAP.total_seconds()))


def assess_sources(config: Config, rows: list[dict[str, Any]], now: datetime | None = None) -> list[SourceHealth]:
    """Combine the configured sources with their stored health rows (storage.queries.source_health_rows)."""
    now = now or datetime.now(UTC)
    stored = {row["name"]: row for row in rows}
    report = []
    for source in config.sources:
        row = stored.get(source.name, {})
        failures = row.get("consecutive_failures") or 0
        status, reason = _status(source.enabled, row, failures, now)
        report.append(SourceHealth(
            name=source.name, status=status, last_success=row.get("last_success_at"),
            last_error=row.get("last_error") if failures else None,
            new_7d=row.get("new_7d") or 0, new_30d=row.get("new_30d") or 0,
            next_due=_next_due(source.enabled, source.every, row, failures, now),
            consecutive_failures=failures, reason=reason,
        ))
    return report


def _status(enabled: bool, row: dict[str, Any], failures: int, now: datetime) -> tuple[str, str | None]:
    if not enabled:
        return "disabled", None
    if not row.get("last_attempt_at"):
        return "never crawled", None
    if row.get("broken"):
        return "broken", row.get("broken_reason")
    if failures >= FLAG_AFTER_FAILURES:
        return "broken", f"failed {failures} cycles in a row"
    if failures:
        return "failing", None
    silent = _silence(row, now)
    if silent:
        return "silent", silent
    return "ok", None


def _silence(row: dict[str, Any], now: datetime) -> str | None:
    """A reason if the source has gone quiet for far longer than its usual rhythm."""
    last = row.get("last_article_at")
    per_90d = row.get("new_90d") or 0
    if not last or per_90d < 3:
        return None
    usual_gap = timedelta(days=90) / per_90d
    quiet = now - datetime.fromisoformat(last)
    if quiet > max(usual_gap * 4, timedelta(days=7)):
        return f"no new item for {quiet.days} days; usually one every {max(usual_gap.days, 1)} days"
    return None


def _next_due(enabled: bool, every: float, row: dict[str, Any], failures: int, now: datetime) -> str | None:
    if not enabled:
        return None
    if row.get("next_due_at"):
        return row["next_due_at"]
    last = row.get("last_attempt_at")
    if not last:
        return now.isoformat(timespec="seconds")
    due = datetime.fromisoformat(last) + timedelta(seconds=backoff_interval(every, failures))
    return due.isoformat(timespec="seconds")

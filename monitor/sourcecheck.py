"""`monitor sources check`: what a source would give a crawl, shown before anyone trusts it.

    result = fetch_for_check(config, source)          # or read_saved_response(source, path)
    report = check_source(source, result)
    report.verdict  -> "20 items, 20 with dates, 0 filtered; looks right"

The document is parsed and filtered by the crawl's own functions (`parse_source`,
`select_items`), so the check shows what a crawl would do; nothing is stored and no
database is opened.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urldefrag

from monitor.config import Config, ConfigError, SourceConfig
from monitor.crawl import EXPECT, parse_source, select_items
from pipelines.charset import decode_body
from pipelines.fetch import Fetcher, FetchResult
from pipelines.items import Item
from pipelines.keep import FILTERED_OUT, keep_reason
from pipelines.listing import NOTHING_MATCHED
from storage.db import to_utc_iso

LOOKS_RIGHT = "looks right"


@dataclass
class CheckedItem:
    """One parsed item and what a crawl would do with it."""

    title: str | None
    url: str
    published_at: str | None
    date_text: str | None
    kept: bool
    reason: str
    """Why it is kept ("no filter", "matched '外国人'") or left out ("no keyword ...", "beyond max_items")."""


@dataclass
class CheckReport:
    """What a check found: the items, the counts and the problems, and the verdict line that sums them up."""

    source: str
    kind: str
    url: str
    items: list[CheckedItem] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    with_dates: int = 0
    filtered: int = 0

    @property
    def verdict(self) -> str:
        counts = f"{len(self.items)} items, {self.with_dates} with dates, {self.filtered} filtered"
        return f"{counts}; {'; '.join(self.problems) if self.problems else LOOKS_RIGHT}"

    @property
    def exit_code(self) -> int:
        """0 when the source gave items, 1 when it gave none."""
        return 0 if self.items else 1

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source, "kind": self.kind, "url": self.url,
            "items": [asdict(item) for item in self.items],
            "counts": {"items": len(self.items), "with_dates": self.with_dates, "filtered": self.filtered,
                       "kept": sum(item.kept for item in self.items)},
            "problems": self.problems, "verdict": self.verdict,
        }


def fetch_for_check(config: Config, source: SourceConfig) -> FetchResult:
    """GET the source's URL with the crawl's settings (user agent, robots.txt, limits), no validators."""

    async def fetch() -> FetchResult:
        async with Fetcher(config.fetch) as fetcher:
            return await fetcher.fetch(source.url, expect=EXPECT[source.kind])

    return asyncio.run(fetch())


def read_saved_response(source: SourceConfig, path: Path) -> FetchResult:
    """A saved response body as if fetched from the source's URL (relative links resolve against it)."""
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"--file {path}: cannot read: {exc.strerror or exc}") from None
    text = decode_body(content)[0] if source.kind == "html_list" else None
    return FetchResult(url=source.url, final_url=source.url, status=200, content=content, text=text)


def check_source(source: SourceConfig, result: FetchResult) -> CheckReport:
    """Parse and filter `result` as a crawl of `source` would, and judge whether it looks right."""
    report = CheckReport(source=source.name, kind=source.kind, url=source.url)
    if not result.ok:
        reason = f"{result.error}: {result.message}".strip(": ") if result.error else f"HTTP {result.status}"
        report.problems.append(f"fetch failed: {reason}")
        return report
    parsed = parse_source(source, result)
    kept, dropped = select_items(source, parsed.items)
    left_out = {id(item): why for item, why in dropped}
    for item in parsed.items:
        why = left_out.get(id(item))
        report.items.append(CheckedItem(
            title=item.title, url=item.url,
            published_at=to_utc_iso(item.published_at) if isinstance(item.published_at, datetime) else None,
            date_text=_date_text(item),
            kept=why is None,
            reason=why or _kept_reason(source, item),
        ))
    report.with_dates = sum(item.published_at is not None for item in report.items)
    report.filtered = sum(why == FILTERED_OUT for _, why in dropped)
    report.problems = _problems(source, result, parsed.problem, parsed.rows, parsed.repeated_links, report)
    if report.items and not kept and report.filtered == len(report.items):
        report.problems.append("the filter left out every item")
    return report


def _kept_reason(source: SourceConfig, item: Item) -> str:
    if source.keep_filter is None:
        return "no filter"
    return keep_reason(item, source.keep_filter) or "kept"


def _date_text(item: Item) -> str | None:
    value = item.extra.get("date_text")
    return value if isinstance(value, str) else None


def _problems(source: SourceConfig, result: FetchResult, problem: str | None, rows: int | None,
              repeated_links: int, report: CheckReport) -> list[str]:
    """What is wrong, each named so a user knows which setting to look at."""
    items = report.items
    problems: list[str] = []
    if problem and NOTHING_MATCHED in problem and rows == 0:
        assert source.listing is not None
        problems.append(f"the item selector {source.listing.item!r} matched nothing")
    elif problem:
        problems.append(problem)
    if not items:
        if not problems:
            problems.append("the document has no items")
        return problems
    undated = [item for item in items if item.published_at is None]
    unread = [item for item in undated if item.date_text]
    if unread:
        problems.append(f"date format not understood in {len(unread)} of {len(items)} items"
                        f" (e.g. {unread[0].date_text!r})")
    elif undated:
        where = ""
        if source.listing is not None:
            where = (f": the date selector {source.listing.date!r} matched nothing" if source.listing.date
                     else ": no date selector is configured")
        problems.append(f"{len(undated)} of {len(items)} items have no date{where}")
    untitled = sum(not item.title for item in items)
    if untitled:
        problems.append(f"{untitled} of {len(items)} items have no title")
    if rows is not None and rows > 1 and len(items) == 1 and repeated_links:
        problems.append(f"all {rows} rows link to one page ({items[0].url}): check the link selector")
    page = urldefrag(result.final_url)[0]
    to_page = sum(urldefrag(item.url)[0] == page for item in items)
    if to_page:
        problems.append(f"{to_page} of {len(items)} links point back to the page itself ({page})")
    return problems

"""What every source parser (feeds, listing pages, JSON APIs) returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from pipelines.text import replace_surrogates


@dataclass
class Item:
    """One entry found on a source: a link to an article and what the source says of it."""

    url: str
    """Absolute URL of the article, as the source gave it (resolved against the source URL)."""
    title: str | None = None
    published_at: datetime | None = None
    """Timezone-aware where the source said so; naive datetimes are taken as UTC by the caller."""
    summary: str | None = None
    """Plain text the source itself gives (feed summary/content, API abstract); used when the page can't be had."""
    guid: str | None = None
    lang: str | None = None
    extra: dict[str, object] = field(default_factory=dict)
    """Parser notes; "date_text" holds the date as written where the source gave one."""

    def __post_init__(self) -> None:
        # JSON ("\ud800") and broken feeds can carry lone surrogates, which no UTF-8 store accepts.
        for name in ("url", "title", "summary", "guid", "lang"):
            value = getattr(self, name)
            if isinstance(value, str):
                setattr(self, name, replace_surrogates(value))


@dataclass
class ParsedSource:
    """The result of parsing one fetched source document."""

    items: list[Item]
    title: str | None = None
    problem: str | None = None
    """Set when the document was not (fully) parseable: the parser's one-line reason.

    Items may still be present when the problem is recoverable (e.g. a feed
    that feedparser calls ill-formed but still yields entries)."""
    rows: int | None = None
    """Listing pages: rows the item selector matched (None for feeds and APIs)."""
    repeated_links: int = 0
    """Listing pages: rows skipped because their link was already taken from an earlier row."""

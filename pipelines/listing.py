"""HTML press-release boards with no feed: CSS selectors turn list rows into items.

    spec = ListingSpec(item="table.artclTable tbody tr", link="td._artclTdTitle a.artclLinkView",
                       date="td._artclTdRdate")
    parse_listing(html, "https://www.moj.go.kr/moj/221/subview.do", spec) -> ParsedSource

When the link lives in JavaScript (`onclick="boardDetailR('123')"`), `link_attr`,
`link_regex` and `link_template` build it: the regex's groups fill `{1}`, `{2}`...
(or named groups such as `{id}`; `{id}` also means group 1 when no group is named id).
"""

from __future__ import annotations

import re
import string
import warnings
from dataclasses import dataclass
from datetime import datetime

import soupsieve
from bs4 import BeautifulSoup, Tag, XMLParsedAsHTMLWarning

from pipelines.dates import parse_date
from pipelines.items import Item, ParsedSource
from pipelines.text import one_line, single_line
from pipelines.urls import resolve_http_url

NOTHING_MATCHED = "selectors matched nothing"


@dataclass
class ListingSpec:
    """Where a board's items are: CSS selectors (soupsieve) and how to build each link."""

    item: str
    """Selector for each row of the list, matched against the whole page."""
    link: str = "a"
    """Selector, within the row, for the element carrying the link."""
    title: str | None = None
    """Selector within the row for the title; default: the link element's text."""
    date: str | None = None
    """Selector within the row for the date (its `datetime` attribute or its text)."""
    summary: str | None = None
    """Selector within the row for a lead or summary (kept as the item's summary; keep-filters read it)."""
    link_attr: str = "href"
    link_regex: str | None = None
    """Regex searched in the attribute value; without a template its group 1 (or whole match) is the link."""
    link_template: str | None = None
    """URL built from the regex groups, e.g. "https://www.moj.go.kr/bbs/moj/182/{1}/artclView.do"."""

    def __post_init__(self) -> None:
        # The config reader passes None for keys it has no value for; keep the defaults then.
        if self.link is None:
            self.link = "a"
        if self.link_attr is None:
            self.link_attr = "href"


def _selector_error(selector: str | None, what: str) -> str | None:
    if selector is None:
        return None
    if not selector.strip():
        return f"{what} selector is empty"
    try:
        soupsieve.compile(selector)
    except soupsieve.SelectorSyntaxError as exc:
        return one_line(f"invalid CSS selector {selector!r}: {str(exc).splitlines()[0]}")
    return None


def _template_fields(template: str) -> list[str]:
    """Field names used by a str.format template ("{1}", "{id}"); raises ValueError if malformed."""
    return [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]


def validate_listing_spec(spec: ListingSpec) -> str | None:
    """Check the selectors, the regex and the template; None if usable, else a one-line error."""
    for selector, what in ((spec.item, "item"), (spec.link, "link"), (spec.title, "title"), (spec.date, "date"),
                           (spec.summary, "summary")):
        error = _selector_error(selector, what)
        if error:
            return error
    if not spec.link_attr or not spec.link_attr.strip():
        return "link_attr is empty"
    pattern = None
    if spec.link_regex is not None:
        try:
            pattern = re.compile(spec.link_regex)
        except re.error as exc:
            return one_line(f"invalid link_regex {spec.link_regex!r}: {exc}")
    if spec.link_template is not None:
        try:
            fields = _template_fields(spec.link_template)
        except ValueError as exc:
            return one_line(f"invalid link_template {spec.link_template!r}: {exc}")
        groups = pattern.groups if pattern else 0
        names = set(pattern.groupindex) if pattern else set()
        for name in fields:
            known = (
                (name.isdigit() and int(name) <= groups)
                or name in names
                or (name == "id" and groups >= 1)
            )
            if not known:
                return one_line(
                    f"link_template {spec.link_template!r} uses {{{name}}} but link_regex "
                    f"{spec.link_regex!r} has no such group"
                )
    return None


def _text(element: Tag | None) -> str | None:
    if element is None:
        return None
    return single_line(element.get_text(" ")) or None


def _attr(element: Tag, name: str) -> str | None:
    value = element.get(name)
    if isinstance(value, list):  # multi-valued attributes such as class
        value = " ".join(value)
    return value.strip() if isinstance(value, str) and value.strip() else None


def _build_link(value: str, spec: ListingSpec, pattern: re.Pattern[str] | None) -> str | None:
    """The link as written by the page (still relative), from the attribute value."""
    if pattern is None:
        return value
    match = pattern.search(value)
    if not match:
        return None
    if spec.link_template is None:
        return match.group(1) if pattern.groups else match.group(0)
    groups = [match.group(0), *(g or "" for g in match.groups())]
    named = {k: v or "" for k, v in match.groupdict().items()}
    named.setdefault("id", groups[1] if len(groups) > 1 else match.group(0))
    return spec.link_template.format(*groups, **named)


def _row_date(row: Tag, selector: str | None) -> tuple[datetime | None, str | None]:
    """The row's date, and the text it was read from (None when the selector matched nothing)."""
    element = row.select_one(selector) if selector else None
    if element is None:
        return None, None
    raw = _attr(element, "datetime") or _text(element)
    return (parse_date(raw) if raw else None), raw


def _link_base(soup: BeautifulSoup, base_url: str) -> str:
    """What relative links on the page resolve against: its first <base href> (itself resolved
    against the page URL, as browsers do) when that is an http(s) URL, else the page URL."""
    base = soup.find("base", href=True)
    href = base.get("href") if isinstance(base, Tag) else None
    return resolve_http_url(href, base_url) or base_url


def parse_listing(html: str, base_url: str, spec: ListingSpec) -> ParsedSource:
    """Turn the rows of a press-release list page into items (links resolved against base_url,
    or against the page's <base href>).

    Rows without a usable http(s) link are skipped; a link that appears twice (pinned
    notices are repeated in K2Web boards) is kept once. A non-empty page where `spec.item`
    matches no row gets the problem "selectors matched nothing": the site was probably
    redesigned. Never raises on bad markup.
    """
    error = validate_listing_spec(spec)
    if error:
        return ParsedSource(items=[], problem=error)
    if not html or not html.strip():
        return ParsedSource(items=[], problem="empty page")
    with warnings.catch_warnings():
        # A feed given to a listing source is reported as "matched nothing", not as a parser warning.
        warnings.simplefilter("ignore", XMLParsedAsHTMLWarning)
        soup = BeautifulSoup(html, "lxml")
    page_title = _text(soup.title)
    rows = soup.select(spec.item)
    if not rows:
        return ParsedSource(items=[], title=page_title, problem=NOTHING_MATCHED, rows=0)

    pattern = re.compile(spec.link_regex) if spec.link_regex else None
    link_base = _link_base(soup, base_url)
    items: list[Item] = []
    seen: set[str] = set()
    repeated = 0
    for row in rows:
        anchor = row.select_one(spec.link)
        value = _attr(anchor, spec.link_attr) if anchor is not None else None
        link = _build_link(value, spec, pattern) if value else None
        url = resolve_http_url(link, link_base)
        if url is None:
            continue
        if url in seen:
            repeated += 1
            continue
        seen.add(url)
        title = _text(row.select_one(spec.title)) if spec.title else None
        published, date_text = _row_date(row, spec.date)
        items.append(
            Item(
                url=url,
                title=title or _text(anchor),
                published_at=published,
                summary=_text(row.select_one(spec.summary)) if spec.summary else None,
                extra={"date_text": date_text} if date_text else {},
            )
        )
    problem = None
    if not items:
        problem = f"{NOTHING_MATCHED}: {len(rows)} rows but no link in any (link selector {spec.link!r})"
    return ParsedSource(items=items, title=page_title, problem=problem, rows=len(rows), repeated_links=repeated)

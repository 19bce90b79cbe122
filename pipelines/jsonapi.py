"""JSON APIs: a dotted path to the list of items and a field mapping turn a response into items.

    spec = JsonApiSpec(items_path="results",
                       fields={"url": "html_url", "title": "title", "date": "publication_date",
                               "summary": "abstract", "guid": "document_number"})
    parse_json_api(content, "https://www.federalregister.gov/api/v1/documents.json", spec) -> ParsedSource

Paths are dotted keys ("feed.entry", "title.rendered"); a numeric segment indexes a list
("links.0.href"). "" as `items_path` means the document itself is the list.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pipelines.dates import parse_date
from pipelines.items import Item, ParsedSource
from pipelines.text import html_to_text, load_json, one_line
from pipelines.urls import resolve_http_url

FIELDS = ("url", "title", "date", "summary", "guid", "lang")
MISSING = object()
"""What resolve_path returns when a step of the path is absent (a present null is None)."""


@dataclass
class JsonApiSpec:
    """Where the items are in a JSON response, and which key of an item holds each of our fields."""

    items_path: str = ""
    fields: dict[str, str | None] = field(default_factory=dict)
    """Our field (url, title, date, summary, guid, lang) -> dotted path inside one item; url is required."""


def resolve_path(value: Any, path: str) -> Any:
    """Follow a dotted path into nested dicts/lists; `MISSING` if any step is absent."""
    if not path:
        return value
    for segment in path.split("."):
        if isinstance(value, dict):
            value = value.get(segment, MISSING)
        elif isinstance(value, list) and segment.lstrip("-").isdigit():
            index = int(segment)
            value = value[index] if -len(value) <= index < len(value) else MISSING
        else:
            return MISSING
        if value is MISSING:
            return MISSING
    return value


def _find_items(doc: Any, path: str) -> tuple[list[Any] | None, str | None]:
    """The list at `path`, or (None, a one-line reason)."""
    found = resolve_path(doc, path)
    where = f"items_path {path!r}" if path else "the top level"
    if found is MISSING:
        return None, f"{where} not found in the JSON document"
    if not isinstance(found, list):
        return None, f"{where} is a JSON {_json_type(found)}, not a list"
    return found, None


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return {dict: "object", list: "array", str: "string"}.get(type(value), type(value).__name__)


def _field(item: Any, spec: JsonApiSpec, name: str) -> Any:
    path = spec.fields.get(name)
    if not path:
        return None
    value = resolve_path(item, path)
    return None if value is MISSING else value


def _text(value: Any) -> str | None:
    """Plain text of a string field (APIs put HTML in abstracts too)."""
    return html_to_text(value) if isinstance(value, str) else None


def _date(value: Any) -> datetime | None:
    """A date string through parse_date; a number as a Unix timestamp (seconds, or milliseconds)."""
    if isinstance(value, str):
        return parse_date(value)
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        seconds = value / 1000 if value > 100_000_000_000 else value
        try:
            return datetime.fromtimestamp(seconds, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
    return None


def _item(raw: Any, spec: JsonApiSpec, base_url: str) -> Item | None:
    url = resolve_http_url(_field(raw, spec, "url"), base_url)
    if url is None:
        return None
    guid = _field(raw, spec, "guid")
    lang = _field(raw, spec, "lang")
    date = _field(raw, spec, "date")
    return Item(
        url=url,
        title=_text(_field(raw, spec, "title")),
        published_at=_date(date),
        summary=_text(_field(raw, spec, "summary")),
        guid=str(guid) if isinstance(guid, str | int) and not isinstance(guid, bool) and str(guid) else None,
        lang=(lang.strip() or None) if isinstance(lang, str) else None,
        extra={"date_text": str(date)} if date not in (None, "") else {},
    )


def parse_json_api(content: bytes | str, base_url: str, spec: JsonApiSpec) -> ParsedSource:
    """Turn a JSON API response into items, following `spec` (links resolved against base_url).

    Items whose url field is missing or not an http(s) link are skipped. Invalid JSON,
    a path that leads nowhere or to something other than a list, or a list none of whose
    entries has a link, is a `problem`; nothing raises.
    """
    if not spec.fields.get("url"):
        return ParsedSource(items=[], problem="fields.url is required (the dotted path to each item's link)")
    unknown = sorted(set(spec.fields) - set(FIELDS))
    if unknown:
        return ParsedSource(items=[], problem=f"unknown field(s) {', '.join(unknown)}; expected {', '.join(FIELDS)}")
    try:
        doc = load_json(content)
    except (ValueError, RecursionError) as exc:
        return ParsedSource(items=[], problem=one_line(f"invalid JSON: {exc}"))
    raw_items, problem = _find_items(doc, spec.items_path)
    if raw_items is None:
        return ParsedSource(items=[], problem=problem)
    items = [item for raw in raw_items if (item := _item(raw, spec, base_url))]
    if raw_items and not items:
        problem = f"fields.url {spec.fields['url']!r} gave no http(s) link in any of {len(raw_items)} items"
    return ParsedSource(items=items, problem=problem)

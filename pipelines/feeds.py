"""Feed parsing: RSS 0.9x/1.0/2.0 and Atom 0.3/1.0 (feedparser), JSON Feed 1.0/1.1.

    parse_feed(content, base_url, content_type=None) -> ParsedSource

Never raises on bad web input: whatever goes wrong becomes `ParsedSource.problem`
(one line), and the entries of a recoverable ("bozo") feed are kept.

XML entity declarations are refused before feedparser sees the document: a DOCTYPE
that declares entities is how billion-laughs and external-entity attacks start, and
no feed we watch needs one.

Bytes are decoded here (pipelines.charset: BOM, HTTP charset, XML declaration, detection,
with the Windows supersets of Shift_JIS, EUC-KR and GB2312), and feedparser reads UTF-8.
"""

from __future__ import annotations

import io
import re
import time
import xml.parsers.expat
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import feedparser

from pipelines.charset import bom_charset, decode_body
from pipelines.dates import parse_date
from pipelines.items import Item, ParsedSource
from pipelines.text import collapse_whitespace, html_to_text, load_json, one_line
from pipelines.urls import is_http_url, resolve_http_url

ENTITY_PROBLEM = "XML entity declarations refused"

_ENTITY_DECL = re.compile(rb"<!ENTITY", re.IGNORECASE)
_XML_DECL = re.compile(r"\s*<\?xml\b[^>]*\?>")
_DECL_ENCODING = re.compile(r"""\s+encoding\s*=\s*(?:"[^"]*"|'[^']*')""", re.IGNORECASE)
_WIDE_XML_PREFIXES = (
    (b"\x00\x00\x00<", "utf-32-be"),
    (b"<\x00\x00\x00", "utf-32-le"),
    (b"\x00<\x00?", "utf-16-be"),
    (b"<\x00?\x00", "utf-16-le"),
)
# What feedparser is told about the UTF-8 bytes it is given; the real header went to decode_body.
_FEEDPARSER_CONTENT_TYPE = "application/xml; charset=utf-8"


# -- XML attack guard -----------------------------------------------------------------------------


class _Stop(Exception):
    """Raised from expat handlers to end the prolog scan early."""

    def __init__(self, found_entity: bool) -> None:
        self.found_entity = found_entity


def declares_entities(content: bytes) -> bool:
    """True if the document's DOCTYPE declares entities (internal or external, general or parameter).

    Fast path: a document with no "<!ENTITY" in it (NUL bytes removed, so UTF-16/32 is
    covered) is clean. Otherwise expat reads the prolog only: an entity declaration
    stops it before anything is expanded, and the first element ends the scan. A
    prolog expat cannot read, in a document that contains "<!ENTITY", counts as
    declaring entities: we cannot prove otherwise.
    """
    if not _ENTITY_DECL.search(content.replace(b"\x00", b"")):
        return False
    parser = xml.parsers.expat.ParserCreate()

    def on_entity(*_args: object) -> None:
        raise _Stop(True)

    def on_element(*_args: object) -> None:
        raise _Stop(False)

    parser.EntityDeclHandler = on_entity
    parser.UnparsedEntityDeclHandler = on_entity
    parser.StartElementHandler = on_element
    parser.SetParamEntityParsing(xml.parsers.expat.XML_PARAM_ENTITY_PARSING_NEVER)
    try:
        parser.Parse(content, True)
    except _Stop as stop:
        return stop.found_entity
    except (xml.parsers.expat.ExpatError, ValueError, LookupError):
        return True
    return True  # no element at all, yet "<!ENTITY" somewhere: refuse


# -- feedparser -----------------------------------------------------------------------------------


def _wide_xml_codec(content: bytes) -> str | None:
    """UTF-16/32 without a byte-order mark, told by how "<?" or "<" is spelled (XML 1.0, appendix F).

    Such a document is valid UTF-8 as far as bytes go (NULs between ASCII), so header,
    declaration and detection would all read it as UTF-8.
    """
    if bom_charset(content):
        return None
    for prefix, codec in _WIDE_XML_PREFIXES:
        if content.startswith(prefix):
            return codec
    return None


def _utf8_document(content: bytes, content_type: str | None) -> bytes:
    """The document as UTF-8 bytes whose XML declaration says so.

    feedparser decodes Shift_JIS and EUC-KR strictly and falls back to Windows-1252 on the
    first CP932/CP949-only character (①, ～, 똠): mojibake. decode_body widens those labels
    the way browsers do and follows header, BOM, declaration, then detection.
    """
    wide = _wide_xml_codec(content)
    text = content.decode(wide, errors="replace") if wide else decode_body(content, content_type)[0]
    declaration = _XML_DECL.match(text)
    if declaration:
        fixed = _DECL_ENCODING.sub(" encoding='utf-8'", declaration.group(0), count=1)
        text = fixed + text[declaration.end() :]
    return text.encode("utf-8", errors="replace")


def _get(mapping: Mapping[str, Any], key: str) -> Any:
    """Plain dict lookup: FeedParserDict.get() maps updated->published with a DeprecationWarning."""
    return dict.get(mapping, key) if isinstance(mapping, dict) else mapping.get(key)


def _struct_to_datetime(value: Any) -> datetime | None:
    """feedparser's parsed dates are UTC struct_times."""
    if not isinstance(value, time.struct_time):
        return None
    try:
        return datetime(*value[:6], tzinfo=UTC)
    except (ValueError, OverflowError):
        return None


def _entry_date_text(entry: Mapping[str, Any]) -> str | None:
    """The entry's date as the feed wrote it (pubDate, dc:date, updated...), for reports."""
    for key in ("published", "updated", "created"):
        raw = _get(entry, key)
        if isinstance(raw, str) and raw.strip():
            return raw.strip()
    return None


def _entry_date(entry: Mapping[str, Any]) -> datetime | None:
    for key in ("published", "updated", "created"):
        parsed = _struct_to_datetime(_get(entry, f"{key}_parsed"))
        if parsed:
            return parsed
    for key in ("published", "updated", "created"):
        raw = _get(entry, key)
        if isinstance(raw, str) and raw.strip():
            parsed = parse_date(raw)
            if parsed:
                return parsed
    return None


def _detail_text(value: Any, detail: Any) -> str | None:
    """Plain text of a feedparser text construct, stripping markup only when it is HTML."""
    if not isinstance(value, str):
        return None
    content_type = (detail or {}).get("type", "text/plain") if isinstance(detail, Mapping) else "text/plain"
    if "html" in content_type:
        return html_to_text(value)
    return collapse_whitespace(value) or None


def _entry_summary(entry: Mapping[str, Any]) -> str | None:
    """Full content when the feed carries it (content:encoded, atom:content), else the summary."""
    for content in _get(entry, "content") or []:
        if isinstance(content, Mapping):
            text = _detail_text(content.get("value"), content)
            if text:
                return text
    return _detail_text(_get(entry, "summary"), _get(entry, "summary_detail"))


def _entry_lang(entry: Mapping[str, Any], feed_lang: str | None) -> str | None:
    candidates = [_get(entry, "language")]
    for key in ("title_detail", "summary_detail"):
        detail = _get(entry, key)
        if isinstance(detail, Mapping):
            candidates.append(detail.get("language"))
    candidates += [c.get("language") for c in _get(entry, "content") or [] if isinstance(c, Mapping)]
    for lang in [*candidates, feed_lang]:
        if isinstance(lang, str) and lang.strip():
            return lang.strip()
    return None


def _entry_url(entry: Mapping[str, Any], base_url: str) -> str | None:
    url = resolve_http_url(_get(entry, "link"), base_url)
    if url:
        return url
    for link in _get(entry, "links") or []:
        if isinstance(link, Mapping) and link.get("rel", "alternate") == "alternate":
            url = resolve_http_url(link.get("href"), base_url)
            if url:
                return url
    # A guid is a link only when it is already an absolute http(s) URL, never resolved.
    guid = _get(entry, "id")
    return guid.strip() if isinstance(guid, str) and is_http_url(guid) else None


def _bozo_problem(result: Mapping[str, Any]) -> str | None:
    if not _get(result, "bozo"):
        return None
    exc = _get(result, "bozo_exception")
    if exc is None:
        return "ill-formed feed"
    message = str(exc).strip()
    return one_line(f"{type(exc).__name__}: {message}" if message else type(exc).__name__)


def _parse_xml_feed(content: bytes, base_url: str, content_type: str | None) -> ParsedSource:
    if declares_entities(content):
        return ParsedSource(items=[], problem=ENTITY_PROBLEM)
    # Content-Location makes feedparser resolve links (and xml:base, and permalink guids) the way
    # it does when it fetches the URL itself. Once any header is given feedparser wants a
    # Content-Type too, or it calls the feed ill-formed.
    # The Content-Type is always XML in UTF-8: RFC 7303 lets a feed served as text/xml without a
    # charset declare its own encoding, where feedparser (RFC 3023) would call it ill-formed, and
    # text/html or octet-stream, common on government sites, say nothing about a feed.
    headers = {"content-location": base_url, "content-type": _FEEDPARSER_CONTENT_TYPE}
    try:
        document = _utf8_document(content, content_type)
        # BytesIO, never the bytes themselves: feedparser treats a string as a URL or a path.
        result = feedparser.parse(io.BytesIO(document), response_headers=headers)
    except Exception as exc:  # feedparser's loose parser can trip on odd input; a feed must not stop a crawl
        return ParsedSource(items=[], problem=one_line(f"feed parser failed: {type(exc).__name__}: {exc}"))

    feed = _get(result, "feed") or {}
    feed_lang = _get(feed, "language")
    if not feed_lang and isinstance(_get(feed, "title_detail"), Mapping):
        feed_lang = feed["title_detail"].get("language")
    items = []
    for entry in _get(result, "entries") or []:
        url = _entry_url(entry, base_url)
        if not url:
            continue
        guid = _get(entry, "id")
        date_text = _entry_date_text(entry)
        items.append(
            Item(
                url=url,
                title=_detail_text(_get(entry, "title"), _get(entry, "title_detail")),
                published_at=_entry_date(entry),
                summary=_entry_summary(entry),
                guid=guid.strip() if isinstance(guid, str) and guid.strip() else None,
                lang=_entry_lang(entry, feed_lang),
                extra={"date_text": date_text} if date_text else {},
            )
        )
    problem = _bozo_problem(result)
    # An HTML page (a redesigned site, a login wall) parses "successfully" with no version.
    if problem is None and not (_get(result, "version") or _get(result, "entries")):
        problem = "not a feed: no RSS, Atom or JSON Feed document found"
    title = _detail_text(_get(feed, "title"), _get(feed, "title_detail"))
    return ParsedSource(items=items, title=title, problem=problem)


# -- JSON Feed ------------------------------------------------------------------------------------


def _looks_like_json(content: bytes, content_type: str | None) -> bool:
    """The document's first byte decides; the Content-Type only when that is ambiguous."""
    head = content[:64].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"{"):
        return True
    return not head.startswith(b"<") and bool(content_type and "json" in content_type.lower())


def _json_feed_item(entry: Any, base_url: str, feed_lang: str | None) -> Item | None:
    if not isinstance(entry, dict):
        return None
    guid = _get(entry, "id")
    guid = str(guid).strip() if isinstance(guid, str | int) and str(guid).strip() else None
    url = resolve_http_url(_get(entry, "url"), base_url) or resolve_http_url(_get(entry, "external_url"), base_url)
    if not url and guid and is_http_url(guid):
        url = guid
    if not url:
        return None
    title = _get(entry, "title")
    summary = None
    if isinstance(_get(entry, "content_text"), str):
        summary = collapse_whitespace(entry["content_text"]) or None
    if not summary and isinstance(_get(entry, "content_html"), str):
        summary = html_to_text(entry["content_html"])
    if not summary and isinstance(_get(entry, "summary"), str):
        summary = collapse_whitespace(entry["summary"]) or None
    published = None
    date_text = next((entry[k] for k in ("date_published", "date_modified") if isinstance(_get(entry, k), str)),
                     None)
    for key in ("date_published", "date_modified"):
        if isinstance(_get(entry, key), str):
            published = parse_date(entry[key])
            if published:
                break
    lang = _get(entry, "language") if isinstance(_get(entry, "language"), str) else feed_lang
    return Item(
        url=url,
        title=html_to_text(title) if isinstance(title, str) else None,
        published_at=published,
        summary=summary,
        guid=guid,
        lang=lang or None,
        extra={"date_text": date_text} if date_text else {},
    )


def parse_json_feed(content: bytes | str, base_url: str) -> ParsedSource:
    """Parse a JSON Feed 1.0/1.1 document (https://jsonfeed.org/version/1.1)."""
    try:
        doc = load_json(content)
    except (ValueError, RecursionError) as exc:
        return ParsedSource(items=[], problem=one_line(f"invalid JSON: {exc}"))
    if not isinstance(doc, dict) or not isinstance(doc.get("items"), list):
        return ParsedSource(items=[], problem="not a JSON Feed: no top-level 'items' list")
    version = doc.get("version")
    problem = None
    if not (isinstance(version, str) and "jsonfeed.org/version/" in version):
        problem = "not a JSON Feed: missing or unknown 'version'"
    feed_lang = doc.get("language") if isinstance(doc.get("language"), str) else None
    items = [item for e in doc["items"] if (item := _json_feed_item(e, base_url, feed_lang))]
    title = doc.get("title")
    return ParsedSource(items=items, title=html_to_text(title) if isinstance(title, str) else None, problem=problem)


# -- entry point ----------------------------------------------------------------------------------


def parse_feed(content: bytes, base_url: str, content_type: str | None = None) -> ParsedSource:
    """Parse an RSS, Atom or JSON Feed document into items.

    `base_url` is the URL the document was fetched from (after redirects): relative links
    resolve against it (and against xml:base inside the feed). `content_type` is the HTTP
    header, whose charset wins over the document's own declaration. Items without an
    http(s) link are skipped (a guid that is an absolute http(s) URL stands in for a
    missing link). Never raises on bad input: see `ParsedSource.problem`.
    """
    if isinstance(content, str):
        content = content.encode("utf-8")
    if not content.strip(b" \t\r\n\x00"):
        return ParsedSource(items=[], problem="empty document")
    if _looks_like_json(content, content_type):
        return parse_json_feed(content, base_url)
    return _parse_xml_feed(content, base_url, content_type)

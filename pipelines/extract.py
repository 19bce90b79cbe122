"""Article extraction: main text, title, publish date and language of one HTML page.

    extract_article(html, url=None) -> Extracted

trafilatura does the work. The page is parsed once with lxml (trafilatura's own
loader, which repairs what libxml2 chokes on); the tree is handed to trafilatura's
metadata and text extractors, which copy it rather than re-parse.

Settings, chosen on the article-extraction corpus (`bench/extraction.py`):
- comments off: reader comments are not the article;
- precision focus: trims related-article lists, teasers and bylines that the
  balanced mode keeps;
- fast (no readability/jusText comparison): that comparison is most of trafilatura's
  time and, after the rescue below, adds nothing to the score (F1 0.968 either way);
- but precision mode also skips trafilatura's own rescues (baseline, recall retry).
  When it returns a short text, the balanced mode runs on the same tree and wins if
  it finds more than twice as much: precision sometimes cuts a real article to a stub.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lxml.html import HtmlElement
from trafilatura import bare_extraction, html2txt
from trafilatura.metadata import extract_metadata
from trafilatura.settings import set_date_params
from trafilatura.utils import load_html

from pipelines.charset import decode_body
from pipelines.dates import parse_date
from pipelines.lang import detect_language
from pipelines.text import single_line

LOGGER = logging.getLogger(__name__)

# trafilatura keyword arguments for the main pass and for the rescue pass
MAIN_OPTIONS: dict[str, Any] = {"include_comments": False, "favor_precision": True, "fast": True}
RESCUE_OPTIONS: dict[str, Any] = {"include_comments": False}
# the rescue pass runs only when the main text is shorter than this (characters) ...
RESCUE_BELOW = 1000
# ... and replaces it only when it is this many times longer and at least this long
# (trafilatura's own MIN_EXTRACTED_SIZE: below it, a balanced result on a page where
# precision found nothing is a dump of menus and form labels)
RESCUE_RATIO = 2.0
RESCUE_MIN = 250

# Larger inputs are cut: no article needs more, and libxml2's time grows with it.
MAX_HTML_CHARS = 5_000_000
# trafilatura takes ~35 µs per element; news pages have a few thousand. Beyond this
# the page is a dump (a log, a giant table): its whole text is taken, without analysis.
MAX_ELEMENTS = 50_000

# Explicit publish-date markup, tried before htmldate's heuristics because it carries
# the time and zone, which htmldate drops.
# A dateline is one of the first lines of the main text, short enough to be little else
DATELINE_LINES = 4
DATELINE_MAX_CHARS = 40
_DATE_XPATHS = (
    '//meta[@property="article:published_time" or @name="article:published_time"'
    ' or @itemprop="datePublished" or @name="pubdate" or @name="publishdate"'
    ' or @name="dc.date.issued" or @name="DC.date.issued"]/@content',
    '//*[@itemprop="datePublished"]/@datetime',
)
_JSONLD_DATE = re.compile(r'"datePublished"\s*:\s*"([^"]{8,40})"')
_SURROGATES = re.compile("[\ud800-\udfff]")
# a fragment (no <html>/<body>) is still worth reading if it has block markup
_FRAGMENT = re.compile(r"<(?:p|div|article|section|main|h[1-6]|ul|ol|table|blockquote)\b", re.IGNORECASE)
_LANG_TAG = re.compile(r"^\s*([A-Za-z]{2,3})(?:[-_][A-Za-z0-9]+)*\s*$")


@dataclass
class Extracted:
    """What the extraction stage found on a page; `text` is "" when it found no article."""

    title: str | None = None
    text: str = ""
    published_at: datetime | None = None
    lang: str | None = None
    author: str | None = None
    description: str | None = None
    url: str | None = None
    """The page's own canonical URL if it declares one, else the URL passed in."""

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: title, date (ISO 8601 or null), lang, text, author, description, url."""
        return {
            "title": self.title,
            "date": self.published_at.isoformat() if self.published_at else None,
            "lang": self.lang,
            "text": self.text,
            "author": self.author,
            "description": self.description,
            "url": self.url,
        }


def extract_article(html: str, url: str | None = None, *, metadata: bool = True) -> Extracted:
    """Extract main text and metadata from one HTML page.

    With `metadata=False` (for callers that already know title and date, such as
    a crawl of a feed) trafilatura's metadata search is skipped: the title comes
    from the <title> tag and the date from explicit markup or a dateline only.
    Never raises: empty, binary or otherwise unusable input gives an
    `Extracted` with empty text (and whatever metadata could be read).
    """
    try:
        tree = _parse(html)
    except Exception as err:  # libxml2 and trafilatura's loader fail in many ways on junk
        LOGGER.debug("unparseable page %s: %s", url, err)
        return Extracted(url=url)
    if tree is None:
        return Extracted(url=url)

    result = Extracted(url=url)
    hint = _html_lang(tree)
    htmldate: str | None = None
    huge = tree.xpath("count(//*)") > MAX_ELEMENTS  # counted in C: iterating in Python costs ~0.5 ms a page
    try:
        if huge or not metadata:
            # trafilatura's metadata search is superlinear on huge pages; the title tag is enough
            result.title = _clean(next(iter(tree.xpath("//title/text()")), None))
        else:
            meta = extract_metadata(tree, url, set_date_params(True))
            result.title = _clean(meta.title)
            result.author = _clean(meta.author)
            result.description = _clean(meta.description)
            result.url = meta.url or url
            htmldate = meta.date
    except Exception as err:
        LOGGER.debug("metadata extraction failed on %s: %s", url, err)

    try:
        result.text = html2txt(tree).strip() if huge else _main_text(tree, url)
    except Exception as err:
        LOGGER.debug("text extraction failed on %s: %s", url, err)

    result.published_at = _explicit_date(tree) or _dateline(result.text) or parse_date(htmldate)
    result.lang = detect_language(result.text, hint=hint)
    return result


def _parse(html: str | bytes) -> HtmlElement | None:
    """Parse the page once; None when it is not HTML at all."""
    if isinstance(html, bytes):
        # a saved page: its BOM, <meta charset> or XML declaration says how to read it
        html = decode_body(html)[0]
    if not isinstance(html, str) or not html.strip():
        return None
    if len(html) > MAX_HTML_CHARS:
        html = html[:MAX_HTML_CHARS]
    # lone surrogates (from bytes decoded with surrogateescape) make libxml2 drop whole blocks
    if _SURROGATES.search(html):
        html = _SURROGATES.sub("\ufffd", html)
    tree = load_html(html)
    if tree is None and _FRAGMENT.search(html[:10_000]):
        # trafilatura's loader rejects single-block fragments; wrapped, they parse
        tree = load_html(f"<html><body><div>{html}</div></body></html>")
    if tree is None or len(tree) == 0:
        return None
    return tree


def _main_text(tree: HtmlElement, url: str | None) -> str:
    """Main text by the precision pass, or by the balanced pass where precision found a stub."""
    # bare_extraction copies a tree it is given, so `tree` is intact for the second pass
    doc = bare_extraction(tree, url=url, **MAIN_OPTIONS)
    text = (doc.text or "").strip() if doc is not None else ""
    if len(text) < RESCUE_BELOW:
        rescue = bare_extraction(tree, url=url, **RESCUE_OPTIONS)
        rescue_text = (rescue.text or "").strip() if rescue is not None else ""
        if len(rescue_text) >= RESCUE_MIN and len(rescue_text) > RESCUE_RATIO * len(text):
            text = rescue_text
    return text


def _explicit_date(tree: HtmlElement) -> datetime | None:
    """Publish date from explicit markup (Open Graph, schema.org, JSON-LD), with time if given."""
    for xpath in _DATE_XPATHS:
        for value in tree.xpath(xpath):
            parsed = parse_date(str(value))
            if parsed is not None:
                return parsed
    for script in tree.xpath('//script[@type="application/ld+json"]/text()'):
        match = _JSONLD_DATE.search(str(script))
        if match:
            parsed = parse_date(match[1])
            if parsed is not None:
                return parsed
    return None


def _dateline(text: str) -> datetime | None:
    """A date standing on its own short line at the top of the text, as boards and ministries print it.

    Read before htmldate's guess because htmldate knows no Japanese era dates
    (令和7年7月18日) and falls back to a bare year elsewhere in the text.
    """
    for line in text.split("\n", DATELINE_LINES)[:DATELINE_LINES]:
        if len(line) <= DATELINE_MAX_CHARS:
            parsed = parse_date(line)
            if parsed is not None:
                return parsed
    return None


def _html_lang(tree: HtmlElement) -> str | None:
    """The language the page declares (`<html lang>`, content-language, og:locale), as "en", "ko", ..."""
    candidates = [tree.get("lang"), tree.get("{http://www.w3.org/XML/1998/namespace}lang")]
    candidates += tree.xpath(
        '//meta[translate(@http-equiv, "CONTENT-LANGUAGE", "content-language")="content-language"]/@content'
        ' | //meta[@property="og:locale"]/@content'
    )
    for value in candidates:
        match = _LANG_TAG.match(str(value or ""))
        if match:
            return match[1].lower()
    return None


def _clean(value: str | None) -> str | None:
    """Collapse whitespace; None for empty strings."""
    if not value:
        return None
    return single_line(value) or None

"""Reading news archives: WARC files (Common Crawl's CC-NEWS and the like), record by record.

    for event in read_pages(open_archive("CC-NEWS-...warc.gz"), start=0):
        event.page / event.broken / event.other ...

An archive is read as a stream (a local file or an http(s) URL, never loaded whole) from any
record's byte offset, so that a reader can stop after some records and another, later or
elsewhere, go on from the offset it noted. A record that cannot be read (bit rot in one gzip
member, a truncated record, garbage between records) is reported as broken and the reader
finds the next record after it; it never stops the file.

Also here: the cheap tests a page passes before extraction (host pattern, language guess,
keyword search on the page's text before any parsing), since extraction is the cost of a backfill.
"""

from __future__ import annotations

import fnmatch
import gzip
import io
import re
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Protocol
from urllib.parse import urljoin, urlsplit

import ahocorasick
import httpx
from warcio.archiveiterator import ArchiveIterator
from warcio.exceptions import ArchiveLoadFailed

from pipelines.charset import charset_from_content_type, declared_charset, decode_body
from pipelines.dates import parse_date
from pipelines.lang import detect_language
from pipelines.urls import url_host

GZIP_MAGIC = b"\x1f\x8b\x08"
WARC_MAGIC = b"WARC/1."
SCAN_BLOCK = 1 << 20
MAX_PAGE_BYTES = 5_000_000
"""A larger payload is no news article (and extraction cuts at this size anyway)."""
_READ_ERRORS = (ArchiveLoadFailed, zlib.error, EOFError, OSError, ValueError, IndexError)
"""What a damaged archive makes warcio (or the decompressor under it) raise."""


class ArchiveError(Exception):
    """An archive cannot be opened at all (missing file, HTTP error): one line for the user."""


class Archive(Protocol):
    """A WARC file that can be read from any byte offset."""

    name: str

    def open_at(self, offset: int) -> BinaryIO: ...


@dataclass(frozen=True)
class LocalArchive:
    """A WARC file on disk."""

    name: str

    def open_at(self, offset: int) -> BinaryIO:
        try:
            stream = open(self.name, "rb")  # noqa: SIM115  (the reader closes it)
        except OSError as exc:
            raise ArchiveError(f"cannot read {self.name}: {exc.strerror or exc}") from None
        stream.seek(offset)
        return stream


@dataclass(frozen=True)
class HttpArchive:
    """A WARC file on a web server, streamed (a Range request to start past the beginning)."""

    name: str
    user_agent: str = "policy-monitor-backfill"
    timeout: float = 60.0

    def open_at(self, offset: int) -> BinaryIO:
        headers = {"User-Agent": self.user_agent, "Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        client = httpx.Client(timeout=self.timeout, follow_redirects=True)
        try:
            response = client.send(client.build_request("GET", self.name, headers=headers), stream=True)
        except httpx.HTTPError as exc:
            client.close()
            raise ArchiveError(f"cannot fetch {self.name}: {type(exc).__name__}: {exc}") from None
        if response.status_code >= 400:
            response.close()
            client.close()
            raise ArchiveError(f"cannot fetch {self.name}: HTTP {response.status_code}")
        ranged = response.status_code == 206
        stream = _HttpStream(client, response, offset if ranged else 0)
        if offset and not ranged:  # the server ignored Range: skip what comes before
            stream.skip(offset)
        return stream


class _HttpStream(io.RawIOBase):
    """The raw (not content-decoded) body of a streamed response as a file object warcio can read."""

    def __init__(self, client: httpx.Client, response: httpx.Response, offset: int) -> None:
        self._client, self._response = client, response
        self._chunks = response.iter_raw()
        self._pending = b""
        self._position = offset

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        """The offset in the whole file (warcio reports record offsets from it, as for a local file)."""
        return self._position

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            try:
                self._pending = next(self._chunks)
            except StopIteration:
                return 0
            except httpx.HTTPError as exc:
                raise OSError(f"download broke off: {exc}") from None
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        self._position += size
        return size

    def skip(self, count: int) -> None:
        while count > 0:
            chunk = self.read(min(count, SCAN_BLOCK))
            if not chunk:
                return
            count -= len(chunk)

    def close(self) -> None:
        if not self.closed:
            self._response.close()
            self._client.close()
        super().close()


def open_archive(location: str, user_agent: str | None = None) -> Archive:
    """The archive at a local path or an http(s) URL (asked for with `user_agent`)."""
    if location.startswith(("http://", "https://")):
        return HttpArchive(location, user_agent) if user_agent else HttpArchive(location)
    return LocalArchive(str(Path(location).resolve()))


def is_listing(location: str) -> bool:
    """Whether `location` names a list of WARC files (Common Crawl's `warc.paths` / `warc.paths.gz`)."""
    name = urlsplit(location).path if location.startswith(("http://", "https://")) else location
    return Path(name).name.endswith((".paths", ".paths.gz", ".txt", ".txt.gz"))


def read_listing(location: str, base: str | None = None, user_agent: str | None = None) -> list[str]:
    """The WARC files a listing names, one per line, made absolute: against `base` when given, else
    against the listing's site root for a URL listing (Common Crawl's lines start with `crawl-data/`)
    and the listing's folder for a local one. Blank lines and `#` comments are skipped."""
    if location.startswith(("http://", "https://")):
        try:
            headers = {"User-Agent": user_agent} if user_agent else None
            response = httpx.get(location, timeout=60.0, follow_redirects=True, headers=headers)
        except httpx.HTTPError as exc:
            raise ArchiveError(f"cannot fetch {location}: {type(exc).__name__}: {exc}") from None
        if response.status_code >= 400:
            raise ArchiveError(f"cannot fetch {location}: HTTP {response.status_code}")
        content = response.content
        parts = urlsplit(location)
        default_base = f"{parts.scheme}://{parts.netloc}/"
    else:
        try:
            content = Path(location).read_bytes()
        except OSError as exc:
            raise ArchiveError(f"cannot read {location}: {exc.strerror or exc}") from None
        default_base = str(Path(location).resolve().parent) + "/"
    if content.startswith(b"\x1f\x8b"):
        try:
            content = gzip.decompress(content)
        except (OSError, EOFError, zlib.error) as exc:
            raise ArchiveError(f"cannot read {location}: not a valid gzip file ({exc})") from None
    base = base or default_base
    files: list[str] = []
    for line in content.decode("utf-8", errors="replace").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(("http://", "https://", "/")):
            files.append(line)
        elif base.startswith(("http://", "https://")):
            files.append(urljoin(base if base.endswith("/") else base + "/", line))
        else:
            files.append(str(Path(base) / line))
    return files


@dataclass
class Page:
    """One HTTP response of an HTML page, as archived."""

    url: str
    crawled_at: datetime | None
    status: int
    content_type: str
    body: bytes

    @property
    def host(self) -> str:
        return url_host(self.url)


@dataclass
class Event:
    """One step of reading an archive: a page, another record (request, metadata, a PDF ...), or a
    broken record; `offset` is the byte offset of the record, `next_offset` where the next one starts
    (None when unknown until it is read)."""

    offset: int
    page: Page | None = None
    broken: str | None = None


def read_events(archive: Archive, start: int = 0) -> Iterator[Event]:
    """Every record of `archive` from byte offset `start` (a record's start) on, as events, in order.

    The offset of each event is where a reader resumes to read it again. A damaged stretch gives one
    broken event and the reader goes on at the next record start it finds (the next gzip member, or
    the next `WARC/1.` line in an uncompressed file).
    """
    compressed = _is_gzip(archive)
    offset = start
    while True:
        stream = archive.open_at(offset)
        next_start = offset  # where the record after the last one read completely begins
        try:
            records = ArchiveIterator(stream, check_digests=False)
            for record in records:
                event = _event(record)
                records.read_to_end()  # warcio knows a record's offset and length once it is read
                event.offset = records.get_record_offset()  # from the stream's tell(): the file's offset
                next_start = event.offset + records.get_record_length()
                yield event
            return
        except _READ_ERRORS as exc:
            failed_at = next_start
            yield Event(failed_at, broken=_reason(exc))
            found = _next_record_start(archive, failed_at + 1, compressed)
            if found is None:
                return
            offset = found
        finally:
            stream.close()


def _event(record: object, offset: int = 0) -> Event:
    """An event for one record; a response whose HTTP part cannot be read is broken, not fatal."""
    try:
        if record.rec_type != "response":  # type: ignore[attr-defined]
            return Event(offset)
        headers = record.http_headers  # type: ignore[attr-defined]
        if headers is None or not headers.protocol.upper().startswith("HTTP/"):
            return Event(offset, broken="response record without an HTTP status line")
        status = int(headers.get_statuscode() or 0)
        content_type = headers.get_header("Content-Type") or ""
        url = record.rec_headers.get_header("WARC-Target-URI") or ""  # type: ignore[attr-defined]
        if status != 200 or not _is_html(content_type):
            return Event(offset)
        body = record.content_stream().read(MAX_PAGE_BYTES + 1)  # type: ignore[attr-defined]
        if len(body) > MAX_PAGE_BYTES:
            return Event(offset)
        crawled = parse_date(record.rec_headers.get_header("WARC-Date"))  # type: ignore[attr-defined]
        return Event(offset, page=Page(url.strip("<> "), crawled, status, content_type, body))
    except _READ_ERRORS + (KeyError, TypeError, AttributeError) as exc:
        return Event(offset, broken=_reason(exc))


def _reason(exc: BaseException) -> str:
    """A short printable reason: warcio quotes the undecodable bytes it met."""
    message = "".join(c if c.isprintable() else "?" for c in str(exc))[:100]
    return f"{type(exc).__name__}: {message}"


def _is_html(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media in ("text/html", "application/xhtml+xml", "")


def _is_gzip(archive: Archive) -> bool:
    with archive.open_at(0) as stream:
        return stream.read(3) == GZIP_MAGIC


def _next_record_start(archive: Archive, position: int, compressed: bool) -> int | None:
    """The first offset at or after `position` where a record may start, or None at the end."""
    magic = GZIP_MAGIC if compressed else WARC_MAGIC
    with archive.open_at(position) as stream:
        carry = b""
        base = position
        while True:
            block = stream.read(SCAN_BLOCK)
            if not block:
                return None
            data = carry + block
            found = data.find(magic)
            if found >= 0:
                return base - len(carry) + found
            carry = data[-(len(magic) - 1):]
            base += len(block)


# ---------------------------------------------------------------------------------------- prefilters


def host_matches(host: str, patterns: Iterable[str]) -> bool:
    """Whether `host` matches one of the shell-style `patterns` ("*.go.kr", "www.bbc.co.uk");
    "*.example.com" also matches example.com itself."""
    host = host.lower()
    for pattern in patterns:
        pattern = pattern.lower()
        if fnmatch.fnmatchcase(host, pattern) or (pattern.startswith("*.") and host == pattern[2:]):
            return True
    return False


_HTML_LANG = re.compile(rb"<html[^>]*?\blang\s*=\s*[\"']?([A-Za-z]{2,3})\b", re.IGNORECASE)
_TAGS = re.compile(r"<(script|style)\b.*?</\1\s*>|<[^>]*>", re.IGNORECASE | re.DOTALL)


def page_text(page: Page) -> str:
    """The page's body decoded to text (header charset, in-document declaration, detection)."""
    return decode_body(page.body, page.content_type)[0]


def guess_language(page: Page) -> str | None:
    """The page's language before extraction: the `<html lang>` it declares, else a guess from the
    first few thousand characters of its text with the markup stripped."""
    declared = _HTML_LANG.search(page.body[:4096])
    if declared:
        return declared.group(1).decode("ascii").lower()
    sample = _TAGS.sub(" ", page_text(page)[:60_000])
    return detect_language(" ".join(sample.split())[:3000])


class KeywordMatcher:
    """A cheap test of whether a text names one of many keywords: an Aho-Corasick automaton over the
    lower-cased text for case-insensitive keywords, one over the text as it is for case-sensitive ones
    ("H-1B", "E-7": short codes that, lower-cased, would match markup everywhere; they must stand alone).

    One pass over the text whatever the number of keywords (a regex alternation of hundreds of
    keywords costs ~100 ms on a news page that has none of them: more than extracting it).
    Keywords containing a shorter one are dropped (with "visa", "h-1b visa" adds nothing).
    """

    def __init__(self, folded: Iterable[str], exact: Iterable[str] = ()) -> None:
        self.folded = _minimal({k.strip().lower() for k in folded if k.strip()})
        self.exact = _minimal({k.strip() for k in exact if k.strip()})
        # Apart, as an automaton whose root has a hundred CJK children is slow on every character:
        # the CJK one runs only on texts with CJK characters.
        self._ascii = _automaton([k for k in self.folded if k.isascii()])
        self._cjk = _automaton([k for k in self.folded if not k.isascii()])
        self._exact = _automaton(self.exact)

    def __bool__(self) -> bool:
        return bool(self.folded or self.exact)

    def search_text(self, text: str) -> str | None:
        """The first keyword found in `text`, or None."""
        lowered = text.lower()
        for automaton in (self._ascii, self._cjk if _CJK.search(text) else None):
            if automaton is not None:
                for _end, keyword in automaton.iter(lowered):
                    return keyword
        if self._exact is not None:
            for end, keyword in self._exact.iter(text):
                start = end - len(keyword) + 1
                if not (_is_word_char(text, start - 1) or _is_word_char(text, end + 1)):
                    return keyword
        return None

    def search(self, data: bytes) -> str | None:
        """`search_text` on UTF-8 bytes."""
        return self.search_text(data.decode("utf-8", errors="replace"))

    def search_page(self, page: Page) -> str | None:
        """`search_text` on a page's body, decoded as its charset says (EUC-KR and Shift_JIS too)."""
        charset = charset_from_content_type(page.content_type) or declared_charset(page.body)
        if charset in (None, "utf-8", "ascii"):
            try:
                return self.search_text(page.body.decode("utf-8"))
            except UnicodeDecodeError:  # undeclared and not UTF-8: let detection decide
                pass
        return self.search_text(page_text(page))


_CJK = re.compile("[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af\uff66-\uff9f]")


def _is_word_char(text: str, index: int) -> bool:
    return 0 <= index < len(text) and text[index].isascii() and text[index].isalnum()


def _minimal(keywords: set[str]) -> list[str]:
    kept: list[str] = []
    for keyword in sorted(keywords, key=len):
        if not any(shorter in keyword for shorter in kept):
            kept.append(keyword)
    return kept


def _automaton(keywords: list[str]) -> ahocorasick.Automaton | None:
    if not keywords:
        return None
    automaton = ahocorasick.Automaton()
    for keyword in keywords:
        automaton.add_word(keyword, keyword)
    automaton.make_automaton()
    return automaton

"""Date parsing for what feeds, press-release boards and JSON APIs put in their date fields.

    parse_date(text) -> datetime | None

Handled: RFC 822 (feeds), ISO 8601 with or without time and zone, `2025.07.20`,
`2025. 7. 20.` (Korean boards), `2025-07-20`, `2025/07/20`, `2025年7月20日`,
`2025년 7월 20일`, Japanese era dates (`令和7年7月20日`, `令和元年5月1日`, `R7.7.20`),
`July 20, 2025` / `20 July 2025`, full-width digits, and any of these followed by a
time of day. The date may sit inside a longer string ("등록일 2025.07.20 조회 12").

A datetime is timezone-aware only when the text gives a zone; otherwise it is naive
(the caller takes naive as UTC). Date-only forms give a naive datetime at midnight.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

# First Gregorian year of each Japanese era: era year N is FIRST + N - 1.
_ERAS: dict[str, int] = {"明治": 1868, "大正": 1912, "昭和": 1926, "平成": 1989, "令和": 2019}
_ERA_LETTERS: dict[str, str] = {"M": "明治", "T": "大正", "S": "昭和", "H": "平成", "R": "令和"}

_MONTHS: dict[str, int] = {
    name: i
    for i, names in enumerate(
        (
            ("jan", "january"), ("feb", "february"), ("mar", "march"), ("apr", "april"),
            ("may",), ("jun", "june"), ("jul", "july"), ("aug", "august"),
            ("sep", "sept", "september"), ("oct", "october"), ("nov", "november"), ("dec", "december"),
        ),
        start=1,
    )
    for name in names
}
_MONTH_RE = "|".join(sorted(_MONTHS, key=len, reverse=True))

# Optional time of day after a date: "14:30", "14:30:05", "2:30 PM", "14時30分", "14시 30분".
# "午後2時" / "오후 2:30" are not handled: boards print the 24-hour form.
_TIME = (
    r"(?:\s*,?\s*T?\s*(?P<H>\d{1,2})\s*[:時시]\s*(?P<M>\d{2})(?:\s*[:分분]\s*(?P<S>\d{2}))?"
    r"(?:\s*(?P<ampm>[AaPp])\.?[Mm]\.?)?)?"
)
_ZONE = r"(?:\s*(?P<Z>Z|UTC|GMT|[+-]\d{2}:?\d{2}))?"

_ERA_RE = re.compile(
    r"(?P<era>明治|大正|昭和|平成|令和)\s*(?P<y>元|\d{1,2})\s*年\s*(?P<m>\d{1,2})\s*月\s*(?P<d>\d{1,2})\s*日?" + _TIME
)
_ERA_LETTER_RE = re.compile(
    r"(?<![A-Za-z0-9])(?P<era>[MTSHR])\s?(?P<y>\d{1,2})[./-](?P<m>\d{1,2})[./-](?P<d>\d{1,2})(?!\d)" + _TIME
)
# 2025年7月20日 / 2025년 7월 20일
_CJK_RE = re.compile(
    r"(?<!\d)(?P<y>\d{4})\s*[年년]\s*(?P<m>\d{1,2})\s*[月월]\s*(?P<d>\d{1,2})\s*[日일]?" + _TIME + _ZONE
)
# 2025-07-20, 2025.07.20, 2025/07/20, 2025. 7. 20.
_NUMERIC_RE = re.compile(
    r"(?<!\d)(?P<y>\d{4})\s*(?P<sep>[./-])\s*(?P<m>\d{1,2})\s*(?P=sep)\s*(?P<d>\d{1,2})(?!\d)\.?" + _TIME + _ZONE
)
# July 20, 2025 / Jul. 20 2025
_MDY_RE = re.compile(
    rf"\b(?P<mon>{_MONTH_RE})\.?\s+(?P<d>\d{{1,2}})(?:st|nd|rd|th)?,?\s+(?P<y>\d{{4}})(?!\d)" + _TIME + _ZONE,
    re.IGNORECASE,
)
# 20 July 2025
_DMY_RE = re.compile(
    rf"(?<!\d)(?P<d>\d{{1,2}})(?:st|nd|rd|th)?\s+(?P<mon>{_MONTH_RE})\.?,?\s+(?P<y>\d{{4}})(?!\d)" + _TIME + _ZONE,
    re.IGNORECASE,
)
# RFC 822 shape: "[Sun,] 20 Jul 2025 10:00[:00] [zone]"; other month-name forms go to the regexes
_RFC822_SHAPE = re.compile(r"^(?:[A-Za-z]{3,9},?\s*)?\d{1,2}\s+[A-Za-z]{3,9}\.?\s+\d{2,4}\s+\d{1,2}:\d{2}")

_MIN_YEAR, _MAX_YEAR = 1800, 2200


def parse_date(text: str | None) -> datetime | None:
    """Parse a date as feeds, boards and APIs write it; None when nothing date-like is found.

    Never raises. Aware datetime when the text names a zone, naive otherwise.
    """
    if not text or not isinstance(text, str):
        return None
    try:
        return _parse(text)
    except (ValueError, TypeError, OverflowError, IndexError):
        return None


def _parse(text: str) -> datetime | None:
    # NFKC folds full-width digits and punctuation (２０２５．７．２０) and era ligatures (㋿, ㍻)
    s = unicodedata.normalize("NFKC", text).strip()[:200]
    if not s:
        return None

    iso = _from_iso(s)
    if iso is not None:
        return iso

    if _RFC822_SHAPE.match(s):
        try:
            dt = parsedate_to_datetime(s)
        except (TypeError, ValueError, IndexError):
            dt = None
        if dt is not None and _MIN_YEAR <= dt.year <= _MAX_YEAR:
            return dt

    # Every match is tried in turn: a document number (2023-11-45) may precede the real date.
    for m in _ERA_RE.finditer(s):
        dt = _try_build(_era_year(m["era"], m["y"]), m["m"], m["d"], m)
        if dt is not None:
            return dt
    for m in _ERA_LETTER_RE.finditer(s):
        dt = _try_build(_era_year(_ERA_LETTERS[m["era"]], m["y"]), m["m"], m["d"], m)
        if dt is not None:
            return dt
    for pattern in (_CJK_RE, _NUMERIC_RE):
        for m in pattern.finditer(s):
            dt = _try_build(int(m["y"]), m["m"], m["d"], m)
            if dt is not None:
                return dt
    for pattern in (_MDY_RE, _DMY_RE):
        for m in pattern.finditer(s):
            dt = _try_build(int(m["y"]), _MONTHS[m["mon"].lower()], m["d"], m)
            if dt is not None:
                return dt
    return None


def _from_iso(s: str) -> datetime | None:
    """ISO 8601 via the standard library, which in 3.11 reads most forms (Z, offsets, T or space)."""
    if not (len(s) >= 8 and s[:4].isdigit()):
        return None
    candidate = s
    if candidate.endswith(("z", "Z")):
        candidate = candidate[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(candidate)
    except ValueError:
        return None
    return dt if _MIN_YEAR <= dt.year <= _MAX_YEAR else None


def _era_year(era: str, year: str) -> int:
    """Gregorian year of a Japanese era year ("元" is the first year)."""
    n = 1 if year == "元" else int(year)
    return _ERAS[era] + n - 1


def _try_build(year: int, month: str | int, day: str | int, m: re.Match[str]) -> datetime | None:
    """_build, or None where the parts make no valid date or time (2023-11-45, 25:00)."""
    try:
        return _build(year, month, day, m)
    except (ValueError, OverflowError):
        return None


def _build(year: int, month: str | int, day: str | int, m: re.Match[str]) -> datetime | None:
    """Datetime from matched parts; time and zone only when the pattern captured them."""
    if not _MIN_YEAR <= year <= _MAX_YEAR:
        return None
    groups = m.groupdict()
    hour = int(groups.get("H") or 0)
    minute = int(groups.get("M") or 0)
    second = int(groups.get("S") or 0)
    ampm = (groups.get("ampm") or "").lower()
    if ampm and 1 <= hour <= 12:
        hour = hour % 12 + (12 if ampm == "p" else 0)
    dt = datetime(year, int(month), int(day), hour, minute, second)
    zone = groups.get("Z")
    # a zone only counts right after a time: "2025.07.20 Zürich" is not UTC
    if zone and groups.get("H") is not None:
        dt = dt.replace(tzinfo=_zone(zone))
    return dt


def _zone(zone: str) -> timezone:
    """A fixed-offset timezone from "Z", "UTC", "GMT", "+09:00" or "+0900"."""
    if zone.upper() in ("Z", "UTC", "GMT"):
        return UTC
    sign = -1 if zone[0] == "-" else 1
    digits = zone[1:].replace(":", "")
    return timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))

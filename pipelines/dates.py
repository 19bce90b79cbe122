"""Placeholder: date parsing for feeds and boards is being written. Interface is final.

    parse_date(text) -> datetime | None   # "2025.07.20", "2025-07-20", "2025年7月20日", "令和7年7月20日", RFC 822, ISO 8601
"""

from __future__ import annotations

from datetime import datetime


def parse_date(text: str | None) -> datetime | None:
    if not text:
        return None
    for fmt in ("%Y-%m-%d", "%Y.%m.%d"):
        try:
            return datetime.strptime(text.strip()[:10], fmt)
        except ValueError:
            continue
    return None

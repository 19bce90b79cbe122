"""Keep-filters: for sources whose items mix topics, keep only the items that name one of the keywords.

    keep = KeepFilter(any=("在留資格", "外国人", "特定技能"))
    keep_reason(item, keep)        -> "matched '外国人'" | None
    split_by_filter(items, keep)   -> (kept, [(item, reason dropped), ...])

Matching is on the item's title and summary together, case-insensitive, after NFKC
normalisation: full-width letters and digits (ＥＰＡ, １) match their ASCII spelling, and
half-width katakana match full-width. A plain substring test: Japanese and Korean have no
spaces between words, so word boundaries would miss most matches.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from pipelines.items import Item

FILTERED_OUT = "no keyword of [sources.filter] any in title or summary"


@dataclass(frozen=True)
class KeepFilter:
    """Keywords of which an item must contain at least one (in its title or summary) to be stored."""

    any: tuple[str, ...]


def validate_keep_filter(keywords: list[str]) -> str | None:
    """None if the keyword list is usable, else a one-line reason."""
    if not keywords:
        return "'any' needs at least one keyword"
    for keyword in keywords:
        if not _fold(keyword):
            return f"keyword {keyword!r} is empty once spaces are removed"
    return None


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold().strip()


def keep_reason(item: Item, keep: KeepFilter) -> str | None:
    """Why `item` passes `keep` ("matched 'X'", naming the first keyword found), or None if it does not."""
    haystack = _fold(f"{item.title or ''}\n{item.summary or ''}")
    for keyword in keep.any:
        if _fold(keyword) in haystack:
            return f"matched {keyword!r}"
    return None


def split_by_filter(items: list[Item], keep: KeepFilter | None) -> tuple[list[Item], list[tuple[Item, str]]]:
    """The items `keep` lets through, and those it drops with the reason; all kept when there is no filter."""
    if keep is None:
        return list(items), []
    kept: list[Item] = []
    dropped: list[tuple[Item, str]] = []
    for item in items:
        if keep_reason(item, keep) is not None:
            kept.append(item)
        else:
            dropped.append((item, FILTERED_OUT))
    return kept, dropped

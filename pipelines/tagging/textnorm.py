"""NFKC normalisation that remembers where each character came from, and sentence splitting.

Matching runs over the normalised text (full-width digits become ASCII, odd hyphens become
"-"), and every span is mapped back to offsets in the string exactly as given.
"""

from __future__ import annotations

import bisect
import re
import unicodedata

# One-to-one replacements applied before NFKC, so they never shift offsets: hyphen look-alikes and
# curly apostrophes, which NFKC leaves alone but which break "H‑1B" or "Japan’s".
_SAME_LENGTH = str.maketrans({
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2212": "-", "\ufe63": "-",
    "\u2019": "'", "\u2018": "'", "\u00b7": "·",
})
_nfkc_cache: dict[str, str] = {}
_NON_ASCII = re.compile(r"[^\x00-\x7f]")


class Normalized:
    """Normalised text plus the map from its indices back to the original string."""

    __slots__ = ("text", "original", "_map")

    def __init__(self, original: str) -> None:
        self.original = original
        self._map: list[int] | None = None
        if original.isascii():
            self.text = original
            return
        text = original.translate(_SAME_LENGTH)
        if unicodedata.is_normalized("NFKC", text):
            self.text = text
            return
        # Only non-ASCII characters can change; copy ASCII runs whole (most of an English text).
        pieces: list[str] = []
        index: list[int] = []
        pos = 0
        for m in _NON_ASCII.finditer(text):
            i = m.start()
            if i > pos:
                pieces.append(text[pos:i])
                index.extend(range(pos, i))
            ch = m.group()
            norm = _nfkc_cache.get(ch)
            if norm is None:
                norm = _nfkc_cache[ch] = unicodedata.normalize("NFKC", ch)
            pieces.append(norm)
            index.extend([i] * len(norm))
            pos = i + 1
        if pos < len(text):
            pieces.append(text[pos:])
            index.extend(range(pos, len(text)))
        self.text = "".join(pieces)
        self._map = index

    def span(self, start: int, end: int) -> tuple[int, int]:
        """Original (start, end) of the normalised slice [start, end)."""
        if self._map is None:
            return start, end
        if start >= len(self._map):
            return len(self.original), len(self.original)
        return self._map[start], self._map[end - 1] + 1 if end > start else self._map[start]


# Sentence ends: terminal punctuation (plus closing quotes/brackets) followed by space, CJK full
# stops (no space needed), or line breaks.
# Written as one character class and then, by look-behind on that character, the three cases
#   [.!?]+["')\]”]*\s+  |  (?:。|[!?](?=[^\x00-\x7f]))[!?。]*[」』)"”]*\s*  |  \s*\n\s*
# (same matches in the same order): a pattern that starts with a class lets `re` skip to those
# characters in C instead of trying every alternative at every position (twice as fast).
_BOUNDARY = re.compile(
    r"""[.!?。\s](?:(?<=[.!?])[.!?]*["'”)\]]*\s+"""
    r"""|(?<=。)[!?。]*[」』)"”]*\s*|(?<=[!?])(?=[^\x00-\x7f])[!?。]*[」』)"”]*\s*"""
    r"""|(?<=\s)(?:\s*\n|(?<=\n))\s*)"""
)
_ABBREV = frozenset(
    "mr mrs ms dr prof st jan feb mar apr jun jul aug sep sept oct nov dec no nos vs etc inc corp ltd co "
    "gov sen rep u.s u.k e.g i.e approx fig dept est govt jr sr gen lt col sgt pres".split()
)
_LAST_WORD = re.compile(r"([A-Za-z][A-Za-z.]*)\.+[\"'”)\]]*\s*$")


def sentence_starts(text: str) -> list[int]:
    """Start offsets of the sentences of `text` (the first is 0), split by punctuation and line breaks.

    A period after a known abbreviation ("U.S.", "Mr.", "Jan.") or a single capital letter
    does not end a sentence, nor does one before a lower-case word.
    """
    starts = [0]
    for m in _BOUNDARY.finditer(text):
        end = m.end()
        if end >= len(text):
            break
        piece = m.group()
        if piece[0] == ".":
            nxt = text[end]
            if nxt.islower():
                continue
            w = _LAST_WORD.search(text, max(0, m.start() - 20), m.end())
            if w:
                word = w.group(1).lower().rstrip(".")
                if word in _ABBREV or len(word) == 1:
                    continue
        starts.append(end)
    return starts


def sentence_bounds(starts: list[int], pos: int, length: int) -> tuple[int, int]:
    """(start, end) of the sentence containing offset `pos`."""
    i = bisect.bisect_right(starts, pos) - 1
    end = starts[i + 1] if i + 1 < len(starts) else length
    return starts[i], end

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
# A chain of str.replace, each skipped unless its character occurs, scans in C; str.translate looked
# every character of a non-ASCII text up in a dict, several times slower.
_SAME_LENGTH = (
    ("\u2010", "-"), ("\u2011", "-"), ("\u2012", "-"), ("\u2013", "-"), ("\u2212", "-"), ("\ufe63", "-"),
    ("\u2019", "'"), ("\u2018", "'"),
)
_nfkc_cache: dict[str, str] = {}
# Characters with combining class 0 that still compose with the character before them under NFC/NFKC
# (Bengali, Oriya, Tamil, Kannada, Malayalam, Sinhala vowel parts, ...): with every combining mark
# and the conjoining Hangul vowels and finals, they never start a piece that is normalised alone.
_COMPOSING_STARTERS = frozenset(
    "\u09be\u09d7\u0b3e\u0b56\u0b57\u0bbe\u0bd7\u0cc2\u0cd5\u0cd6\u0d3e\u0d57\u0dcf\u0ddf\u0fb5\u0fb7"
    "\u102e\u1b35\U00011127\U0001133e\U00011357\U000114b0\U000114ba\U000114bd\U000115af\U00011930"
)


def _continues(ch: str) -> bool:
    """Whether `ch` belongs with the character before it when normalising: a combining mark ("e" +
    U+0301 -> "é") or a conjoining Hangul vowel or final (NFD "하" + "ᆫ" -> "한")."""
    return ("\u1160" <= ch <= "\u11ff" or "\ud7b0" <= ch <= "\ud7ff" or unicodedata.combining(ch) != 0
            or ch in _COMPOSING_STARTERS)


# Characters by whether normalising can touch them: NFKC changes them or they belong with the character
# before them (`_continues`). Learnt as texts show them (a few thousand at most), so that the runs to
# normalise are found by one regex in C: a Japanese text is mostly kana and kanji that NFKC keeps, with
# the odd full-width digit; an English one, ASCII with curly quotes and dashes and the odd no-break space.
_stable_chars: set[str] = {chr(c) for c in range(128)}
_unstable_chars: set[str] = set()
_unstable_runs = re.compile("(?!)")


def _unstable_pattern(text: str) -> re.Pattern[str]:
    """The regex matching runs of characters that normalising may change, having learnt those of `text`."""
    global _unstable_runs
    new = set(text) - _stable_chars - _unstable_chars
    if new:
        for ch in new:
            if _continues(ch) or unicodedata.normalize("NFKC", ch) != ch:
                _unstable_chars.add(ch)
            else:
                _stable_chars.add(ch)
        if not new <= _stable_chars:
            _unstable_runs = re.compile("[" + "".join(map(re.escape, sorted(_unstable_chars))) + "]+")
    return _unstable_runs


class Normalized:
    """Normalised text plus the map from its indices back to the original string."""

    __slots__ = ("text", "original", "_starts", "_ends")

    def __init__(self, original: str) -> None:
        self.original = original
        self._starts: list[int] | None = None
        self._ends: list[int] = []
        if original.isascii():
            self.text = original
            return
        text = original
        for char, replacement in _SAME_LENGTH:
            if char in text:
                text = text.replace(char, replacement)
        if unicodedata.is_normalized("NFKC", text):
            self.text = text
            return
        # Copy runs of characters NFKC keeps whole (most of a text, in any script); each other character
        # is normalised together with the marks and jamo that follow it (NFD text composes back), and
        # every character of the result maps to that whole piece of the original.
        pieces: list[str] = []
        starts: list[int] = []
        ends: list[int] = []
        pos = 0
        n = len(text)
        for m in _unstable_pattern(text).finditer(text):
            i, j = m.span()
            if i > pos and _continues(text[i]):
                i -= 1  # a base letter and the mark on it: "e" + U+0301
            if i > pos:
                pieces.append(text[pos:i])
                r = range(pos, i)
                starts.extend(r)
                ends.extend(range(pos + 1, i + 1))
            k = i
            while k < j:
                e = k + 1
                while e < n and _continues(text[e]):
                    e += 1
                chunk = text[k:e]
                norm = _nfkc_cache.get(chunk)
                if norm is None:
                    norm = unicodedata.normalize("NFKC", chunk)
                    if len(_nfkc_cache) < 100_000:
                        _nfkc_cache[chunk] = norm
                pieces.append(norm)
                starts.extend([k] * len(norm))
                ends.extend([e] * len(norm))
                k = e
            pos = max(j, k)
        if pos < n:
            pieces.append(text[pos:])
            starts.extend(range(pos, n))
            ends.extend(range(pos + 1, n + 1))
        self.text = "".join(pieces)
        self._starts = starts
        self._ends = ends

    def span(self, start: int, end: int) -> tuple[int, int]:
        """Original (start, end) of the normalised slice [start, end)."""
        if self._starts is None:
            return start, end
        if start >= len(self._starts):
            return len(self.original), len(self.original)
        return self._starts[start], self._ends[end - 1] if end > start else self._starts[start]


# Sentence ends: terminal punctuation (plus closing quotes/brackets) followed by space, CJK full
# stops (no space needed), or line breaks.
# Written as one character class and then, by look-behind on that character, the three cases
#   [.!?]+["')\]”]*\s+  |  (?:。|[!?](?=[^\x00-\x7f]))[!?。]*[」』)"”]*\s*  |  \n\s*
# (the same ends in the same order as with the last case written \s*\n\s*, which only the ends are
# used of): a pattern that starts with a class lets `re` skip to those characters in C instead of
# trying every alternative at every position, and leaving out spaces skips one try per word.
_BOUNDARY = re.compile(
    r"""[.!?。\n](?:(?<=[.!?])[.!?]*["'”)\]]*\s+"""
    r"""|(?<=。)[!?。]*[」』)"”]*\s*|(?<=[!?])(?=[^\x00-\x7f])[!?。]*[」』)"”]*\s*"""
    r"""|(?<=\n)\s*)"""
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

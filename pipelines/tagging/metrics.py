"""What a figure counts (`recognitions`, `quota`, `salary_threshold` ...), from the words of its sentence.

    vocabulary = MetricVocabulary.load()
    vocabulary.ids                                    # the metric vocabulary, in taxonomy order
    finder = vocabulary.finder(text, lang)            # one per text
    finder.metric(s0, s1, fig_start, fig_end, unit)   # the metric of one figure of sentence [s0, s1)

The vocabulary and its cue words are data (`taxonomy/metrics.toml`). The metric whose cue is
nearest the figure in its sentence wins, among those its unit allows; a clause boundary between
cue and figure counts as distance; with no cue the unit decides (a duration, a points threshold).
"""

from __future__ import annotations

import re
import tomllib
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.tagging.lexicon import TAXONOMY_DIR, TaxonomyError

METRICS_FILE = TAXONOMY_DIR / "metrics.toml"
UNIT_KINDS = ("count", "money", "time", "points")
_TIME_UNITS = frozenset(("hours", "days", "weeks", "months", "years"))
_COUNT_UNITS = frozenset(("count", "people", "percent"))
_CLAUSE = re.compile(r"[,;:、，；：]")
_CLAUSE_COST = 40
"""Characters a clause boundary between a cue and its figure weighs."""
_WEAK_COST = 25
"""Characters a `weak` cue (a noun for what is counted) weighs beyond its distance."""


def unit_kind(unit: str) -> str:
    """The kind of a figure's unit: count (counts, people, percentages), time, points or money."""
    if unit in _COUNT_UNITS:
        return "count"
    if unit in _TIME_UNITS:
        return "time"
    if unit == "points":
        return "points"
    return "money"


def _longest_first(cues: Iterable[str]) -> str:
    """A regex matching the longest of `cues` that starts where it is tried, factored by common prefixes.

    It finds what the alternation of the cues sorted longest first finds, but tries one character per
    step, where that alternation tried each of a hundred cues at every word start.
    """
    root: dict[str, dict] = {}
    for cue in cues:
        node = root
        for ch in cue:
            node = node.setdefault(ch, {})
        node[""] = {}

    def build(node: dict[str, dict]) -> str:
        alternatives = [re.escape(ch) + build(child) for ch, child in node.items() if ch]
        if "" in node:
            alternatives.append("")  # the cue ending here, once no longer one matched
        if len(alternatives) == 1:
            return alternatives[0]
        return "(?:" + "|".join(alternatives) + ")"

    return build(root)


@dataclass
class MetricVocabulary:
    """The metric ids, which unit kinds may take each, defaults per unit kind and cue regexes per language."""

    ids: tuple[str, ...]
    defaults: dict[str, str]
    allowed: dict[str, frozenset[str]]
    cues: dict[str, dict[str, str]] = field(default_factory=dict)
    """Per language ("en", "ko", "ja"): cue (lower-cased for English) -> metric id."""
    weak: frozenset[str] = frozenset()
    money_per: str = "other"
    count_with_visa: str = "other"
    other_nouns: tuple[str, ...] = ()
    other_counters: tuple[str, ...] = ()
    other_before: tuple[str, ...] = ()
    _patterns: dict[str, re.Pattern[str]] = field(default_factory=dict)
    _other_after: re.Pattern[str] | None = None
    _other_counter: re.Pattern[str] | None = None
    _other_prior: re.Pattern[str] | None = None

    @classmethod
    def load(cls, path: Path = METRICS_FILE) -> MetricVocabulary:
        """Read the vocabulary file; TaxonomyError names what is wrong with it."""
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise TaxonomyError(f"{path}: cannot read the metric vocabulary: {e}") from None
        ids: list[str] = []
        allowed: dict[str, set[str]] = {kind: set() for kind in UNIT_KINDS}
        cues: dict[str, dict[str, str]] = {"en": {}, "ko": {}, "ja": {}}
        weak: set[str] = set()
        for i, table in enumerate(data.get("metric", []), 1):
            mid = table.get("id")
            if not isinstance(mid, str) or not re.fullmatch(r"[a-z][a-z_]*", mid):
                raise TaxonomyError(f"{path}: [[metric]] #{i}: missing or malformed id {mid!r}")
            ids.append(mid)
            for kind in table.get("units", []):
                if kind not in allowed:
                    raise TaxonomyError(f"{path}: [[metric]] {mid}: unknown unit kind {kind!r}")
                allowed[kind].add(mid)
            for lang in cues:
                for cue in table.get(lang, []):
                    cues[lang].setdefault(cue.lower() if lang == "en" else cue, mid)
            weak.update(cue.lower() for cue in table.get("weak", []))
        settings = dict(data.get("defaults", {}))
        lists = {name: tuple(settings.pop(name, ())) for name in ("other_nouns", "other_counters", "other_before")}
        money_per = settings.pop("money_per", "other")
        count_with_visa = settings.pop("count_with_visa", "other")
        defaults = {kind: settings.get(kind, "other") for kind in UNIT_KINDS}
        if "other" not in ids:
            ids.append("other")
        unknown = ({*defaults.values(), money_per, count_with_visa}) - set(ids)
        if unknown:
            raise TaxonomyError(f"{path}: [defaults] name unknown metric(s) {', '.join(sorted(unknown))}")
        vocabulary = cls(tuple(ids), defaults, {k: frozenset(v) for k, v in allowed.items()}, cues,
                         frozenset(weak), money_per, count_with_visa, **lists)
        vocabulary._compile()
        return vocabulary

    def _compile(self) -> None:
        for lang, table in self.cues.items():
            if not table:
                continue
            alternatives = _longest_first(table)
            # English cues are word starts ("recogni" finds "recognised"); CJK cues sit inside words. The
            # lookahead on first characters lets the scan skip most positions before trying the alternatives.
            firsts = "".join(sorted({re.escape(c[0].lower()) + re.escape(c[0].upper()) for c in table}))
            self._patterns[lang] = re.compile(
                rf"\b(?=[{firsts}])(?i:{alternatives})" if lang == "en" else f"(?=[{firsts}])(?:{alternatives})")
        nouns = "|".join(re.escape(n) for n in sorted(self.other_nouns, key=len, reverse=True))
        counters = "|".join(re.escape(c) for c in sorted(self.other_counters, key=len, reverse=True))
        before = "|".join(re.escape(w) for w in self.other_before)
        self._other_after = re.compile(rf"(?i)\s?(?:[a-z-]+\s)?(?:{nouns})\b") if nouns else None
        self._other_counter = re.compile(rf"\d\s?(?:{counters})$") if counters else None
        self._other_prior = re.compile(rf"(?i)\b(?:{before})\s$") if before else None

    def finder(self, text: str, lang: str | None) -> MetricFinder:
        """A finder for the figures of one (normalised) text."""
        key = lang if lang in ("ko", "ja") else "en"
        return MetricFinder(self, text, key)


class MetricFinder:
    """Finds the metric of each figure of one text, scanning each sentence for cues once."""

    def __init__(self, vocabulary: MetricVocabulary, text: str, lang: str) -> None:
        self.vocabulary = vocabulary
        self.text = text
        self.lang = lang
        self._pattern = vocabulary._patterns.get(lang)
        self._table = vocabulary.cues.get(lang, {})
        self._sentences: dict[int, tuple[list[tuple[int, int, str, bool]], list[int]]] = {}
        self._last_count: tuple[int, str] | None = None
        """(paragraph start, metric) of the last count whose metric came from a cue."""

    def _scan(self, s0: int, s1: int) -> tuple[list[tuple[int, int, str, bool]], list[int]]:
        """The cues (start, end, metric, weak) and clause boundaries of the sentence [s0, s1)."""
        found = self._sentences.get(s0)
        if found is None:
            cues: list[tuple[int, int, str, bool]] = []
            if self._pattern is not None:
                for m in self._pattern.finditer(self.text, s0, s1):
                    cue = m.group().lower() if self.lang == "en" else m.group()
                    cues.append((m.start(), m.end(), self._table[cue], cue in self.vocabulary.weak))
            boundaries = [m.start() for m in _CLAUSE.finditer(self.text, s0, s1)
                          if not (self.text[m.start() - 1:m.start()].isdigit()
                                  and self.text[m.start() + 1:m.start() + 2].isdigit())]
            found = self._sentences[s0] = (cues, boundaries)
        return found

    def metric(self, s0: int, s1: int, start: int, end: int, unit: str, per: str | None = None,
               visa_named: bool = False) -> str:
        """The metric of the figure at [start, end) with `unit` (and rate `per`), in the sentence [s0, s1)
        (`visa_named`: whether that sentence names a visa).

        Call it for the figures of a text in order: a count with no cue in its sentence takes the
        metric of the last count before it in its paragraph that had one.
        """
        vocabulary = self.vocabulary
        kind = unit_kind(unit)
        if kind == "count" and self._counts_kinds(start, end):
            return "other"
        allowed = vocabulary.allowed[kind]
        cues, boundaries = self._scan(s0, s1)
        best: tuple[float, int, str] | None = None
        order = vocabulary.ids
        for c0, c1, mid, weak in cues:
            if mid not in allowed:
                continue
            if c1 <= start:
                lo, hi, distance = c1, start, start - c1
            elif c0 >= end:
                lo, hi, distance = end, c0, c0 - end
            else:
                continue  # a cue inside the figure's own text
            crossings = bisect_left(boundaries, hi) - bisect_left(boundaries, lo)
            score = (distance + _CLAUSE_COST * crossings + (_WEAK_COST if weak else 0), order.index(mid), mid)
            if best is None or score < best:
                best = score
        if kind == "money" and per is not None and (best is None or best[2] != "fee"):
            return vocabulary.money_per
        paragraph = self.text.rfind("\n", 0, start) + 1
        if best is not None:
            if kind == "count":
                self._last_count = (paragraph, best[2])
            return best[2]
        if kind == "count" and self._last_count is not None and self._last_count[0] == paragraph:
            return self._last_count[1]
        if kind == "count" and visa_named:
            return vocabulary.count_with_visa
        return vocabulary.defaults[kind]

    def _counts_kinds(self, start: int, end: int) -> bool:
        """Whether a count counts kinds of things, not people or cases ("86 job fields", 14業種, aged 45)."""
        vocabulary = self.vocabulary
        counter = vocabulary._other_counter
        if counter is not None and (counter.search(self.text, start, end)
                                    or counter.search(self.text, start, min(len(self.text), end + 2))):
            return True
        if vocabulary._other_after is not None and vocabulary._other_after.match(self.text, end):
            return True
        return vocabulary._other_prior is not None and bool(
            vocabulary._other_prior.search(self.text, max(0, start - 12), start))

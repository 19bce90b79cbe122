"""The tagger: visa types, talent sectors, countries, organisations and figures with their year.

    tagger = Tagger.load([Path("my-visas.toml")])
    result = tagger.tag("Japan issued 46,946 HSP visas in 2023.", lang="en")
    for result in tagger.tag_many(pairs): ...
    for doc in tagger.docs(pairs): ...   # the same tags on spaCy Docs, with tokens and sentences

Matching runs over the NFKC-normalised text with one trie regex per kind (built from the
taxonomy data files at load), and every offset is mapped back to the text exactly as given.
`Tagger.docs()` gives the same tags on spaCy `Doc`s (blank pipelines, `doc.spans`).
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pipelines.lang import detect_language
from pipelines.tagging.figures import RawFigure, assign_years, find_figures
from pipelines.tagging.lexicon import Alias, Entry, Lexicon, Taxonomy, TaxonomyError
from pipelines.tagging.metrics import MetricVocabulary
from pipelines.tagging.textnorm import Normalized, sentence_bounds, sentence_starts
from pipelines.text import replace_surrogates

if TYPE_CHECKING:
    from spacy.language import Language
    from spacy.tokens import Doc
    from spacy.vocab import Vocab

__all__ = ["EntityMention", "Figure", "SectorMention", "TagResult", "Tagger", "TaxonomyError", "VisaMention"]




@dataclass
class VisaMention:
    text: str
    start: int
    end: int
    id: str
    country: str
    canonical: str
    sentence: str = ""


@dataclass
class SectorMention:
    text: str
    start: int
    end: int
    sector: str
    sentence: str = ""


@dataclass
class EntityMention:
    """A country (label = ISO alpha-2) or an organisation (label = org id) mention."""

    text: str
    start: int
    end: int
    label: str
    sentence: str = ""


@dataclass
class Figure:
    text: str
    start: int
    end: int
    value: float
    unit: str
    year: int | None = None
    sentence: str = ""
    visa: str | None = None
    """Id of the visa the figure is about (for figure alert conditions): the one its sentence names (the
    nearest before it if several are); if none, the visa of the nearest earlier sentence of its paragraph
    that names one, else of the whole text, provided that sentence or text names one visa family only."""
    per: str | None = None
    """Rate period: "month" for "S$5,600 a month", "week" for "28 hours a week" / 週28時間."""
    value_max: float | None = None
    """Upper bound of a range ("5 to 10 weeks": value 5, value_max 10)."""
    metric: str = "other"
    """What the figure counts, one of the metric vocabulary (`taxonomy/metrics.toml`): "recognitions",
    "quota", "salary_threshold" ..., taken from the words of its sentence."""


@dataclass
class TagResult:
    lang: str | None
    visas: list[VisaMention] = field(default_factory=list)
    sectors: list[SectorMention] = field(default_factory=list)
    countries: list[EntityMention] = field(default_factory=list)
    orgs: list[EntityMention] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)

    def to_json(self, id: object) -> dict:
        """The `monitor tag --jsonl` output line for this result."""
        return {
            "id": id,
            "lang": self.lang,
            "visas": [
                {"text": v.text, "start": v.start, "end": v.end, "id": v.id, "country": v.country,
                 "canonical": v.canonical}
                for v in self.visas
            ],
            "sectors": [
                {"text": s.text, "start": s.start, "end": s.end, "sector": s.sector} for s in self.sectors
            ],
            "figures": [
                {"text": f.text, "start": f.start, "end": f.end, "value": f.value, "unit": f.unit,
                 "year": f.year, "metric": f.metric}
                for f in self.figures
            ],
        }


# How much the language of a text counts as naming its country, to settle ties ("E-2" in a Korean
# article is Korea's; in English with no country named, the US one is the usual meaning).
_VISA_WORD = re.compile(r"\s?(?:visas?\b|비자|ビザ)", re.I)
_LANG_PRIOR = {"ko": {"KR": 0.5}, "ja": {"JP": 0.5}, "en": {"US": 0.1}}


class Tagger:
    """Tags texts with the taxonomy it was loaded with; cheap to call, load once and reuse."""

    def __init__(self, taxonomy: Taxonomy | None = None) -> None:
        self.taxonomy = taxonomy if taxonomy is not None else Taxonomy.load()
        self.visa_ids: set[str] = set(self.taxonomy.entries["visa"])
        self.sector_ids: set[str] = set(self.taxonomy.entries["sector"])
        self.country_ids: set[str] = set(self.taxonomy.entries["country"])
        self.org_ids: set[str] = set(self.taxonomy.entries["org"])
        self._families: dict[str, str] = {vid: _family(vid, self.visa_ids) for vid in self.visa_ids}
        self._nlp: dict[str, Language] = {}
        self.metrics = MetricVocabulary.load()

    @classmethod
    def load(cls, extra_taxonomy_files: Sequence[Path] = ()) -> Tagger:
        """The bundled taxonomy plus the user's files (same TOML format); TaxonomyError names a bad file."""
        return cls(Taxonomy.load(extra_taxonomy_files))

    def visa_country(self, visa_id: str) -> str | None:
        """ISO alpha-2 country (or "EU") of a visa id, None if unknown."""
        entry = self.taxonomy.entries["visa"].get(visa_id)
        return entry.country if entry else None

    def visa_name(self, visa_id: str) -> str | None:
        """Canonical English name of a visa id, None if unknown."""
        entry = self.taxonomy.entries["visa"].get(visa_id)
        return entry.name if entry else None

    def subtypes(self, kind: str, eid: str) -> tuple[str, ...]:
        """The ids that count as `eid` (kind "visa" or "sector") in rules and searches: its sub-types and
        finer fields, transitively (JP:HSP -> JP:HSP-1, JP:HSP-1A ...; other -> batteries ...)."""
        return self.taxonomy.descendants(kind, eid)

    def visa_family(self, visa_id: str) -> str:
        """The id heading a visa's family (JP:HSP-1A -> JP:HSP, KR:E-7-4 -> KR:E-7); the id itself if it has none."""
        return self._families.get(visa_id, visa_id)

    def tag(self, text: str, lang: str | None = None, country: str | None = None) -> TagResult:
        """Tag one text; `lang` None means detect it from the text; `country` (ISO alpha-2) is the source's
        country, which settles short forms like "EP" or "Gold Card" as a country named in the text would.

        The same patterns and results as `docs()`, without building the spaCy `Doc`: the crawl
        tags one article at a time as it arrives and keeps only the tags, and a Doc per article
        would cost more than the tagging itself (and grow the vocabulary of a long-running daemon).
        """
        return self._tag(text, lang, country=country)

    def tag_many(self, texts: Iterable[tuple[str, str | None]] | Iterable[tuple[str, str | None, str | None]],
                 batch_size: int = 64) -> Iterator[TagResult]:
        """Tag (text, lang) or (text, lang, source country) tuples lazily, in order, in this process.

        Each result is the `doc.user_data["tags"]` of the spaCy `Doc` `docs()` yields for it, found the
        way `tag` finds it, without the Doc: `monitor tag` and `monitor retag` keep only the tags, and
        tokenizing a text into a Doc costs more than tagging it. `batch_size` is `docs()`'s, kept so
        that callers may pass it.
        """
        for item in texts:
            yield self._tag(item[0], item[1], country=item[2] if len(item) > 2 else None)

    # ------------------------------------------------------------------ core
    def _tag(self, text: str, lang: str | None, doc: Doc | None = None, country: str | None = None) -> TagResult:
        """Tag `text`; with `doc` (the spaCy Doc of `text`), also mark its sentence starts."""
        if lang is None:
            lang = detect_language(text, None)
        result = TagResult(lang=lang)
        if not text:
            return result
        norm = Normalized(text)
        t = norm.text
        starts = sentence_starts(t)
        if doc is not None and len(doc):
            _set_sentence_starts(doc, [norm.span(s, s + 1)[0] for s in starts])
        lexicons = self.taxonomy.lexicons
        counts: dict[str, float] = dict(_LANG_PRIOR.get(lang or "", {}))
        prior = dict(counts)
        if country:
            # The source's country makes its short forms clear, like a country named once in the text.
            counts[country.upper()] = counts.get(country.upper(), 0) + 1

        sentences: dict[int, str] = {}

        def sentence(pos: int) -> str:
            i = bisect_right(starts, pos) - 1
            found = sentences.get(i)
            if found is None:
                s, e = sentence_bounds(starts, pos, len(t))
                os_, oe = norm.span(s, e)
                found = sentences[i] = text[os_:oe].strip()
            return found

        def original(s: int, e: int) -> tuple[str, int, int]:
            os_, oe = norm.span(s, e)
            return text[os_:oe], os_, oe

        for ms, me, mt in lexicons["country"].finditer(t):
            aliases = lexicons["country"].lookup(mt)
            if not aliases:
                continue
            entry = aliases[0].entry
            counts[entry.id] = counts.get(entry.id, 0) + 1
            if not any(a.cue for a in aliases):
                s, o0, o1 = original(ms, me)
                result.countries.append(EntityMention(s, o0, o1, entry.id, sentence(ms)))
        org_matches = []
        for ms, me, mt in lexicons["org"].finditer(t):
            aliases = lexicons["org"].lookup(mt)
            if aliases:
                org_matches.append((ms, me, aliases))
                for a in aliases:
                    if not a.ambiguous and len({b.entry.country for b in aliases}) == 1 and a.entry.country:
                        counts[a.entry.country] = counts.get(a.entry.country, 0) + 0.5
                        break
        for ms, me, aliases in org_matches:
            entry = _resolve(aliases, counts, prior)
            if entry:
                s, o0, o1 = original(ms, me)
                result.orgs.append(EntityMention(s, o0, o1, entry.id, sentence(ms)))

        visa_spans = self._visa_spans(t, counts, prior)
        for ms, me, vid in visa_spans:
            entry = self.taxonomy.entries["visa"][vid]
            s, o0, o1 = original(ms, me)
            result.visas.append(VisaMention(s, o0, o1, entry.id, entry.country or "", entry.name, sentence(ms)))
        # Visa matches never overlap and come in order, so their ends ascend too (for bisect).
        visa_starts = [v[0] for v in visa_spans]
        visa_ends = [v[1] for v in visa_spans]
        for ms, me, mt in lexicons["sector"].finditer(t):
            aliases = [a for a in lexicons["sector"].lookup(mt) if not a.cue]
            # Words inside a visa's name ("EPA nurse candidates") or naming a visa type ("student
            # visa") say nothing about a sector.
            if aliases and not _overlaps(visa_starts, visa_ends, ms, me) and not _VISA_WORD.match(t, me):
                s, o0, o1 = original(ms, me)
                result.sectors.append(SectorMention(s, o0, o1, aliases[0].entry.id, sentence(ms)))

        raw, years = find_figures(t, lang)
        raw = [f for f in raw if not _overlaps(visa_starts, visa_ends, f.start, f.end)]
        assign_years(raw, years, starts, len(t), t, lang)
        context = _VisaContext(t, visa_spans, visa_starts, starts, self._families)
        metrics = self.metrics.finder(t, lang)
        for f in raw:
            s, o0, o1 = original(f.start, f.end)
            visa = _figure_visa(f, visa_spans, visa_starts, starts, len(t))
            if visa is None and visa_spans:
                visa = context.visa_before(f.start)
            s0, s1 = sentence_bounds(starts, f.start, len(t))
            named = bisect_left(visa_starts, s1) > bisect_left(visa_starts, s0)
            metric = metrics.metric(s0, s1, f.start, f.end, f.unit, f.per, named)
            result.figures.append(Figure(s, o0, o1, f.value, f.unit, f.year, sentence(f.start), visa, f.per,
                                         f.value_max, metric))
        return result

    def _visa_spans(self, t: str, counts: dict[str, float], prior: dict[str, float]) -> list[tuple[int, int, str]]:
        """(start, end, visa id) of the visas named in normalised text `t`, in order, never overlapping.

        Names from the lexicon and quoted names before a visa word ("top-tier" visa); an unambiguous
        name makes its country clear for the short forms of that country (an EP next to an S Pass);
        a sub-type back-reference ("the No. 1 category") counts when its parent was named before; an
        attached parenthetical code or acronym joins the name it follows (`Employment Pass (EP)`).
        """
        lexicon = self.taxonomy.lexicons["visa"]
        found = [(ms, me, aliases) for ms, me, mt in lexicon.finditer(t) if (aliases := lexicon.lookup(mt))]
        quoted = _quoted_visas(t, lexicon, found)
        if quoted:
            found = sorted(found + quoted, key=lambda f: f[0])
        for _ms, _me, aliases in found:
            named = {a.entry.country for a in aliases if not (a.cue or a.ambiguous or a.subtype_ref)}
            if len(named) == 1 and (country := named.pop()):
                counts[country] = counts.get(country, 0) + 0.5
        spans: list[tuple[int, int, str]] = []
        for ms, me, aliases in found:
            entry = _resolve(aliases, counts, prior)
            if entry is None:
                entry = self._subtype_ref(aliases, spans)
            if entry is not None:
                spans.append((ms, me, entry.id))
        return _join_parentheticals(t, spans, self._families)

    def _subtype_ref(self, aliases: list[Alias], before: list[tuple[int, int, str]]) -> Entry | None:
        """The sub-type a back-reference ("No. 2", "1号") names: the one whose parent's family was named
        most recently before it; None when no such family was named."""
        refs = [a.entry for a in aliases if a.subtype_ref]
        if not refs:
            return None
        for _s, _e, vid in reversed(before):
            family = self._families.get(vid, vid)
            for entry in refs:
                if self._families.get(entry.id, entry.id) == family:
                    return entry
        return None

    # ------------------------------------------------------------------ spaCy
    def nlp(self, lang: str) -> Language:
        """The blank spaCy pipeline used for `lang` (a tokenizer only), created on first use."""
        key = lang if lang in ("en", "ko", "ja") else "en"
        if key in self._nlp and len(self._nlp[key].vocab.strings) > MAX_VOCAB_STRINGS:
            del self._nlp[key]  # every new token string stays in the vocabulary: start afresh now and then
        if key not in self._nlp:
            import spacy

            if key == "ko":
                # The default Korean tokenizer needs MeCab; the rule-based one needs nothing.
                nlp = spacy.blank("ko", config={"nlp": {"tokenizer": {"@tokenizers": "spacy.Tokenizer.v1"}}})
            elif key == "ja":
                nlp = spacy.blank("ja", config={"nlp": {"tokenizer": {"@tokenizers": "spacy.Tokenizer.v1"}}})
                nlp.tokenizer = SudachiSurfaceTokenizer(nlp.vocab)
            else:
                nlp = spacy.blank(key)
            self._nlp[key] = nlp
        return self._nlp[key]

    def docs(self, texts: Iterable[tuple[str, str | None]] | Iterable[tuple[str, str | None, str | None]],
             batch_size: int = 64) -> Iterator[Doc]:
        """spaCy `Doc`s for (text, lang[, source country]) tuples, batched with `nlp.pipe` per language run, in order.

        Sentence starts come from the stage's splitter; each doc has
        `doc.spans["visa"|"sector"|"country"|"org"|"figure"]` (labels: visa id, sector id, country
        code, org id, unit) and `doc.user_data["tags"]` = the TagResult.
        """
        def runs() -> Iterator[tuple[str, list[tuple[str, str | None, str | None]]]]:
            run: list[tuple[str, str | None, str | None]] = []
            run_lang = None
            for item in texts:
                text, lang = item[0], item[1]
                country = item[2] if len(item) > 2 else None
                if lang is None:
                    lang = detect_language(text, None)
                key = lang if lang in ("en", "ko", "ja") else "en"
                if run and (key != run_lang or len(run) >= batch_size):
                    yield run_lang, run
                    run = []
                run_lang = key
                run.append((text, lang, country))
            if run:
                yield run_lang, run

        for key, run in runs():
            # The whole run is tokenized before any of it is tagged: alternating spaCy's tokenizer and
            # the tagger's patterns text by text kept evicting each other's data from the CPU caches.
            docs = list(self.nlp(key).pipe(t for t, _, _ in run))
            for doc, (text, lang, country) in zip(docs, run, strict=True):
                _attach_spans(doc, self._tag(text, lang, doc, country))
                yield doc


MAX_VOCAB_STRINGS = 500_000
"""Strings a pipeline's vocabulary may hold before it is rebuilt, so memory stays flat over a long batch."""


class SudachiSurfaceTokenizer:
    """spaCy tokenizer for Japanese: SudachiPy (sudachidict-core) word boundaries, as surface forms.

    spaCy's own Japanese tokenizer also builds parts of speech and readings, which tagging does
    not use, at about eight times the cost of segmenting; and Sudachi refuses inputs over 49,149
    bytes, so long texts are segmented in pieces cut at line or sentence ends.
    """

    MAX_BYTES = 40_000

    def __init__(self, vocab: Vocab) -> None:
        from sudachipy import Dictionary, SplitMode

        self.vocab = vocab
        # All fields: with fewer, Sudachi's number joining is off ("2023" becomes four tokens).
        self._tokenizer = Dictionary().tokenizer(mode=SplitMode.C)

    def __call__(self, text: str) -> Doc:
        from spacy.tokens import Doc
        from spacy.util import get_words_and_spaces

        # Sudachi takes only encodable text; a lone surrogate becomes U+FFFD, one character for one.
        safe = replace_surrogates(text)
        surfaces = [m.surface() for piece in _pieces(safe, self.MAX_BYTES) for m in self._tokenizer.tokenize(piece)]
        words, spaces = get_words_and_spaces([w for w in surfaces if w and not w.isspace()], safe)
        return Doc(self.vocab, words=words, spaces=spaces)


def _pieces(text: str, max_bytes: int) -> Iterator[str]:
    """`text` in consecutive pieces of at most `max_bytes` UTF-8 bytes, cut after a line or sentence end
    where there is one (a character takes at most 4 bytes, so max_bytes // 4 characters always fit)."""
    while len(text.encode("utf-8")) > max_bytes:
        window = text[: max_bytes // 4]
        cut = max(window.rfind("\n"), window.rfind("。"))
        cut = cut + 1 if cut > 0 else len(window)
        yield text[:cut]
        text = text[cut:]
    if text:
        yield text


def _set_sentence_starts(doc: Doc, char_starts: list[int]) -> None:
    """Mark the tokens at (or, inside a token, containing) `char_starts` as starting sentences, and
    all others as not (one array write: setting `token.is_sent_start` scans the whole doc each time)."""
    import numpy
    from spacy.attrs import SENT_START

    idx = doc.to_array("IDX")
    flags = numpy.full(len(idx), -1, dtype="int32")
    flags[numpy.maximum(numpy.searchsorted(idx, char_starts, side="right") - 1, 0)] = 1
    flags[0] = 1
    doc.from_array([SENT_START], flags.astype("uint64").reshape(-1, 1))


def _attach_spans(doc: Doc, result: TagResult) -> None:
    groups = {
        "visa": [(v.start, v.end, v.id) for v in result.visas],
        "sector": [(s.start, s.end, s.sector) for s in result.sectors],
        "country": [(c.start, c.end, c.label) for c in result.countries],
        "org": [(o.start, o.end, o.label) for o in result.orgs],
        "figure": [(f.start, f.end, f.unit) for f in result.figures],
    }
    for name, items in groups.items():
        spans = []
        for start, end, label in items:
            span = doc.char_span(start, end, label=label, alignment_mode="expand")
            if span is not None:
                spans.append(span)
        doc.spans[name] = spans
    doc.user_data["tags"] = result


def _resolve(aliases: list[Alias], counts: dict[str, float], prior: dict[str, float]) -> Entry | None:
    """Which entry an alias names here: ambiguous aliases need a context country; shared ones go to the
    country the text names most (then the language's country, then taxonomy order)."""
    candidates: list[Entry] = []
    for a in aliases:
        if a.cue or a.subtype_ref:
            continue
        # The English prior (0.1) only breaks ties; it does not make "gold card" Taiwan's or America's.
        if a.ambiguous and not any(counts.get(c, 0) >= 0.5 for c in a.entry.context):
            continue
        if all(e.id != a.entry.id for e in candidates):
            candidates.append(a.entry)
    if len(candidates) <= 1:
        return candidates[0] if candidates else None
    return max(candidates, key=lambda e: (counts.get(e.country or "", 0), -candidates.index(e)))


def _overlaps(starts: list[int], ends: list[int], s: int, e: int) -> bool:
    """Whether [s, e) overlaps one of the ordered, non-overlapping spans given by `starts`/`ends`."""
    i = bisect_left(starts, e) - 1  # the last span starting before e has the largest end of those
    return i >= 0 and ends[i] > s


def _figure_visa(f: RawFigure, visas: list[tuple[int, int, str]], visa_starts: list[int], starts: list[int],
                 length: int) -> str | None:
    """The visa a figure is about: the only one named in its sentence, else the nearest before it."""
    s0, s1 = sentence_bounds(starts, f.start, length)
    here = [(s, vid) for s, _e, vid in visas[bisect_left(visa_starts, s0):bisect_left(visa_starts, s1)]]
    if not here:
        return None
    if len({vid for _, vid in here}) == 1:
        return here[0][1]
    before = [vid for s, vid in here if s < f.start]
    return before[-1] if before else here[0][1]


# A quoted name right before a visa word: "top-tier" visa, 'golden' visas, 「留学」ビザ.
_QUOTED_NAME = re.compile(
    r"[\"“”'‘’「『]([^\"“”'‘’「」『』\n]{2,40})[\"“”'‘’」』]\s?(?=(?:[Vv]isas?|비자|ビザ)(?![A-Za-z]))")
# Between a name and the parenthetical that belongs to it: `Employment Pass (EP)`, `"HSFP" (HSP)`, 숙련기능인력(E-7-4).
_PAREN_OPEN = re.compile(r"[\"”’']?\s?\(\s?")
_PAREN_CLOSE = re.compile(r"\s?\)")
_SUBCLASS_CODE = re.compile(r"(?i)subclass\s?\d+")


_Found = list[tuple[int, int, list[Alias]]]


def _quoted_visas(t: str, lexicon: Lexicon, found: _Found) -> _Found:
    """Quoted names before a visa word that the lexicon knows with or without that word, where no name
    was found already ("top-tier" visa, 'Top Tier' visa, "golden" visas)."""
    if '"' not in t and "'" not in t and not any(q in t for q in "“‘「『"):
        return []
    starts = [f[0] for f in found]
    ends = [f[1] for f in found]
    extra = []
    for m in _QUOTED_NAME.finditer(t):
        name = m.group(1).strip()
        aliases = lexicon.lookup(name + " visa") or lexicon.lookup(name)
        if aliases and not _overlaps(starts, ends, m.start(1), m.end(1)):
            extra.append((m.start(1), m.start(1) + len(m.group(1).rstrip()), aliases))
    return extra


def _join_parentheticals(t: str, spans: list[tuple[int, int, str]],
                         families: dict[str, str]) -> list[tuple[int, int, str]]:
    """Join a visa name and an attached parenthetical naming the same visa family (or a subclass number)
    into one span with the name's id: `Employment Pass (EP)`, `Temporary Skill Shortage (Subclass 482)`."""
    out: list[tuple[int, int, str]] = []
    for span in spans:
        if out:
            s0, e0, id0 = out[-1]
            opened = _PAREN_OPEN.match(t, e0)
            if opened and opened.end() == span[0] and "(" in opened.group():
                closed = _PAREN_CLOSE.match(t, span[1])
                same = families.get(id0, id0) == families.get(span[2], span[2])
                if closed and (same or _SUBCLASS_CODE.fullmatch(t, span[0], span[1])):
                    out[-1] = (s0, closed.end(), id0)
                    continue
        out.append(span)
    return out


def _family(visa_id: str, visa_ids: set[str]) -> str:
    """The id heading `visa_id`'s family: drop the last "-part" while what is left is a known id
    (KR:E-7-4 -> KR:E-7, JP:HSP-1A -> JP:HSP; US:H-1B stays, as there is no US:H)."""
    while "-" in visa_id:
        parent = visa_id.rsplit("-", 1)[0]
        if parent not in visa_ids:
            break
        visa_id = parent
    return visa_id


def _one_family(ids: Iterable[str], families: dict[str, str]) -> str | None:
    """The visa a group of mentions is about if they are all of one family: the id itself when only one
    is named, the family's id when several of its members are; None for mentions of several families."""
    distinct = set(ids)
    if len(distinct) == 1:
        return next(iter(distinct))
    heads = {families.get(v, v) for v in distinct}
    return heads.pop() if len(heads) == 1 else None


class _VisaContext:
    """The visa a figure whose own sentence names none is about, taken from the text around it.

    A paragraph is a line (extracted article text puts one paragraph per line). The nearest earlier
    sentence of the figure's paragraph that names a visa decides; if it names visas of several
    families, the figure's visa is unknown (an earlier sentence naming one would be a guess). With no
    visa earlier in the paragraph, the whole text decides if it names one family only.
    """

    def __init__(self, text: str, visas: list[tuple[int, int, str]], visa_starts: list[int],
                 starts: list[int], families: dict[str, str]) -> None:
        self.text = text
        self.visas = visas
        self.visa_starts = visa_starts
        self.starts = starts
        self.families = families
        self._by_sentence: dict[int, str | None] = {}
        self._whole: tuple[str | None] | None = None

    def visa_before(self, pos: int) -> str | None:
        """The visa for a figure at `pos` (normalised offsets) whose sentence names no visa."""
        i = bisect_right(self.starts, pos) - 1
        if i in self._by_sentence:
            return self._by_sentence[i]
        s0 = self.starts[i]
        paragraph = self.text.rfind("\n", 0, s0) + 1
        k = bisect_left(self.visa_starts, s0) - 1  # the last visa named before this sentence
        if k >= 0 and self.visa_starts[k] >= paragraph:
            j = bisect_right(self.starts, self.visa_starts[k]) - 1
            lo = bisect_left(self.visa_starts, self.starts[j])
            found = _one_family((v[2] for v in self.visas[lo:k + 1]), self.families)
        else:
            if self._whole is None:
                self._whole = (_one_family((v[2] for v in self.visas), self.families),)
            found = self._whole[0]
        self._by_sentence[i] = found
        return found

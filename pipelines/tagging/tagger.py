"""Placeholder: the real tagger is being written (issue 3). Interface is final."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path


class TaxonomyError(ValueError):
    """A taxonomy file is missing or malformed; the message is one line naming the file."""


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
    """Id of the visa named in the same sentence, if exactly one is (for figure alert conditions)."""


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
                 "year": f.year}
                for f in self.figures
            ],
        }


class Tagger:
    def __init__(self) -> None:
        self.visa_ids: set[str] = set()
        self.sector_ids: set[str] = set()

    @classmethod
    def load(cls, extra_taxonomy_files: Sequence[Path] = ()) -> Tagger:
        return cls()

    def tag(self, text: str, lang: str | None = None) -> TagResult:
        return next(self.tag_many([(text, lang)]))

    def tag_many(self, texts: Iterable[tuple[str, str | None]]) -> Iterator[TagResult]:
        for _text, lang in texts:
            yield TagResult(lang=lang)

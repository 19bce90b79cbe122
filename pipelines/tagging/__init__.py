"""Tagging stage: visa types, talent sectors, countries, organisations and numeric figures.

Contract (used by monitor.crawl, monitor tag/retag and the alert rules):

    tagger = Tagger.load(extra_taxonomy_files)      # TaxonomyError on a bad file
    result = tagger.tag(text, lang=None, country=None)  # -> TagResult; country: the source's (ISO alpha-2)
    results = tagger.tag_many([(text, lang), ...])   # -> iterator of TagResult, lazily (or (text, lang, country))
    docs = tagger.docs([(text, lang), ...])          # -> the same tags on spaCy Docs (doc.spans), via nlp.pipe
    result.to_json(id)                               # the `monitor tag --jsonl` line shape
    tagger.visa_ids, tagger.sector_ids               # known ids, for validating alert rules
    tagger.subtypes("visa", "JP:HSP")                # ids that count as it in rules and searches (its children)
    figure.metric                                    # what a figure counts (taxonomy/metrics.toml)
"""

from pipelines.tagging.tagger import (  # noqa: F401
    EntityMention,
    Figure,
    SectorMention,
    Tagger,
    TagResult,
    TaxonomyError,
    VisaMention,
)

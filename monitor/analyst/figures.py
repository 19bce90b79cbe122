"""Figure timelines: a visa's stored figures merged into one row per fact, and the Vega-Lite chart of them.

The same fact reported by several articles (same grouping key, values within `SAME_VALUE`) is one row
listing every article and source that states it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitor.output import format_figure

CHARTS_DIR = Path(__file__).with_name("charts")

GROUP_KEY = ("visa", "metric", "unit", "year")
"""The figure columns two figures must share to state the same fact (`metric`: what the figure counts,
recognitions, quota ...). The one place to add a key: rows, sorting and output all follow this tuple."""

SAME_VALUE = 0.005
"""Two values within 0.5% of each other (relative to the larger) are the same figure."""

TIMELINE_COLUMNS = ("year", "value", "unit", "metric", "visa", "articles", "sources", "sentence", "links")
"""What `monitor figures` prints; the table leaves out `links` (the article URLs) to stay readable."""


@dataclass
class TimelineRow:
    """One fact of a visa's timeline and everything that states it."""

    key: dict[str, Any]
    value: float
    article_ids: list[int] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    titles: list[str] = field(default_factory=list)
    sentence: str = ""


def _same_value(a: float, b: float) -> bool:
    return abs(a - b) <= SAME_VALUE * max(abs(a), abs(b))


def build_timeline(figures: Iterable[dict[str, Any]]) -> list[TimelineRow]:
    """Merge figure rows (storage.analyst.figure_rows) into timeline rows ordered by the grouping key and value.

    Within a key, figures are taken in value order and join the current row while within 0.5% of its first
    value; the row shows the value most articles state (the first on a tie).
    """
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for figure in figures:
        groups.setdefault(tuple(figure[k] for k in GROUP_KEY), []).append(figure)
    timeline: list[TimelineRow] = []
    for key in sorted(groups, key=lambda k: tuple((v is None, v) for v in k)):
        clusters: list[list[dict[str, Any]]] = []
        for figure in sorted(groups[key], key=lambda f: f["value"]):
            if clusters and _same_value(clusters[-1][0]["value"], figure["value"]):
                clusters[-1].append(figure)
            else:
                clusters.append([figure])
        timeline.extend(_row(dict(zip(GROUP_KEY, key, strict=True)), cluster) for cluster in clusters)
    timeline.sort(key=lambda r: (r.key.get("year") or 0, *((v is None, v) for v in r.key.values()), r.value))
    return timeline


def _row(key: dict[str, Any], cluster: list[dict[str, Any]]) -> TimelineRow:
    values = [f["value"] for f in cluster]
    row = TimelineRow(key=key, value=max(values, key=values.count))
    for figure in cluster:
        if figure["article_id"] not in row.article_ids:
            row.article_ids.append(figure["article_id"])
            row.titles.append(figure.get("title") or "")
            row.links.append(figure.get("link") or "")
        if figure.get("source") and figure["source"] not in row.sources:
            row.sources.append(figure["source"])
        if not row.sentence and figure.get("sentence"):
            row.sentence = " ".join(figure["sentence"].split())
    return row


def timeline_table(timeline: list[TimelineRow], fmt: str) -> tuple[tuple[str, ...], list[tuple]]:
    """Columns and rows for monitor.output.write_rows: lists stay lists in JSON, are joined for table/CSV."""
    rows = []
    for row in timeline:
        articles: Any = row.article_ids
        sources: Any = row.sources
        links: Any = row.links
        value: Any = row.value
        sentence = row.sentence
        if fmt != "json":
            articles = ", ".join(f"#{a}" for a in row.article_ids)
            sources = ", ".join(row.sources)
            links = " ".join(row.links)
        if fmt == "table":
            value = format_figure({"value": row.value, "unit": ""}).strip()
            sentence = sentence if len(sentence) <= 120 else sentence[:119] + "…"
        rows.append((row.key.get("year"), value, row.key.get("unit"), row.key.get("metric"), row.key.get("visa"),
                     articles, sources, sentence, links))
    if fmt == "table":
        return TIMELINE_COLUMNS[:-1], [r[:-1] for r in rows]
    return TIMELINE_COLUMNS, rows


def load_chart(name: str) -> dict[str, Any]:
    """A shared, data-less Vega-Lite spec from charts/ (e.g. "figure_timeline")."""
    return json.loads((CHARTS_DIR / f"{name}.vl.json").read_text(encoding="utf-8"))


def chart_with_data(name: str, values: list[dict[str, Any]], **overrides: Any) -> dict[str, Any]:
    """The shared spec `name` with `values` inlined as its data (and top-level keys such as width replaced)."""
    spec = load_chart(name)
    spec["data"] = {"values": values}
    spec.update(overrides)
    return spec


def timeline_chart_values(timeline: list[TimelineRow]) -> list[dict[str, Any]]:
    """The figure_timeline chart's rows: year, value, unit, metric, sources (the spec's fields), plus visa and
    articles."""
    return [{"year": r.key.get("year"), "value": r.value, "unit": r.key.get("unit"), "visa": r.key.get("visa"),
             "metric": r.key.get("metric"), "sources": ", ".join(r.sources), "articles": len(r.article_ids)}
            for r in timeline]

"""`monitor report`: one self-contained HTML file (charts as inline SVG, no network) an analyst can email.

The charts are the shared Vega-Lite specs in charts/ with data added, rendered to SVG by vl-convert (text
stays text, so Japanese and Korean labels render with the reader's fonts); the page is templates/report.html.j2,
rendered by Jinja2 with autoescaping on, so titles and sentences from the web are always escaped.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from monitor.analyst.figures import build_timeline, chart_with_data, timeline_chart_values
from monitor.output import format_figure
from pipelines.tagging import Tagger
from storage import analyst as queries

TEMPLATES_DIR = Path(__file__).with_name("templates")
CHART_WIDTH = 640
"""Pixels the SVG charts are drawn at; CSS scales them down to a phone's width."""
TOP_LABELS = 8
TIMELINE_VISAS = 5
TIMELINE_ROWS = 40
"""Facts per figure timeline at most (those stated by most articles); `monitor figures` lists all."""
ARTICLES_PER_COUNTRY = 5


@dataclass
class Section:
    """One ranked kind (visas or sectors): the labels with article counts and the week-by-week chart."""

    title: str
    rows: list[dict[str, Any]]
    chart: str


@dataclass
class Report:
    """Everything the template shows, gathered from the database."""

    since: str
    generated_at: str
    articles: int
    sources: int
    sections: list[Section] = field(default_factory=list)
    timelines: list[dict[str, Any]] = field(default_factory=list)
    countries: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    failing: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{self.articles} articles from {self.sources} sources since {self.since}, "
                f"{len(self.timelines)} figure timelines, {len(self.failing)} failing sources")


def render_svg(spec: dict[str, Any]) -> str:
    """A Vega-Lite spec drawn as an SVG document string (offline: vl-convert bundles Vega)."""
    import vl_convert

    svg = vl_convert.vegalite_to_svg(spec)
    # The chart scales with the page: the viewBox keeps its proportions, CSS sets the width.
    return svg.replace('class="marks"', 'class="marks chart" role="img"', 1)


def gather_report(conn: sqlite3.Connection, since: str, tagger: Tagger | None = None,
                  now: datetime | None = None) -> Report:
    """Collect the report's numbers, tables and charts for articles dated on or after `since` (YYYY-MM-DD)."""
    tagger = tagger or Tagger.load()
    now = now or datetime.now(UTC)
    counts = queries.period_counts(conn, since)
    report = Report(since=since, generated_at=now.strftime("%Y-%m-%d %H:%M UTC"), **counts)
    for kind, title in (("visa", "Visas in the news"), ("sector", "Sectors in the news")):
        top = queries.top_labels(conn, kind, since, TOP_LABELS)
        rows = [{"label": label, "name": _name(tagger, kind, label), "articles": n} for label, n in top]
        weekly = queries.mentions_per_week(conn, kind, [label for label, _ in top], since)
        chart = render_svg(chart_with_data("mentions_per_week", weekly, width=CHART_WIDTH)) if weekly else ""
        report.sections.append(Section(title=title, rows=rows, chart=chart))
    for visa, _ in queries.visas_with_most_figures(conn, since, TIMELINE_VISAS):
        full = build_timeline(queries.figure_rows(conn, [visa]))
        # A visa in the news for years can have hundreds of facts: keep those stated by most articles.
        kept = {id(r) for r in sorted(full, key=lambda r: len(r.article_ids), reverse=True)[:TIMELINE_ROWS]}
        timeline = [r for r in full if id(r) in kept]
        # One axis cannot carry counts and percentages: the chart shows the visa's most used unit.
        units = [r.key["unit"] for r in timeline]
        main_unit = max(units, key=units.count)
        values = [v for v in timeline_chart_values(timeline) if v["unit"] == main_unit]
        report.timelines.append({
            "visa": visa, "name": tagger.visa_name(visa) or "", "unit": main_unit, "more": len(full) - len(timeline),
            "chart": render_svg(chart_with_data("figure_timeline", values, width=CHART_WIDTH)),
            "rows": [{"year": r.key["year"], "figure": format_figure({"value": r.value, "unit": r.key["unit"]}),
                      "sources": ", ".join(r.sources), "sentence": r.sentence,
                      "articles": list(zip(r.titles, (_safe_link(link) for link in r.links), strict=True))}
                     for r in timeline],
        })
    report.countries = _by_country(queries.newest_articles_by_country(conn, since, ARTICLES_PER_COUNTRY))
    report.alerts = queries.alerts_sent_since(conn, since)
    report.failing = queries.failing_sources(conn)
    return report


def render_report(report: Report) -> str:
    """The report as one HTML document (Jinja2, autoescaped; the SVG charts are the only markup let through)."""
    import jinja2
    import markupsafe  # Jinja2's own dependency

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES_DIR), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["svg"] = markupsafe.Markup  # only ever applied to vl-convert's output
    return env.get_template("report.html.j2").render(report=report)


def write_report(conn: sqlite3.Connection, since: str, out: Path,
                 taxonomy_files: Sequence[Path] = ()) -> str:
    """Gather, render and write the report to `out`; returns a one-line summary of what it holds."""
    report = gather_report(conn, since, Tagger.load(taxonomy_files))
    html = render_report(report)
    out.write_text(html, encoding="utf-8")
    return report.summary()


def _name(tagger: Tagger, kind: str, label: str) -> str:
    entry = tagger.taxonomy.entries.get(kind, {}).get(label)
    return getattr(entry, "name", "") or ""


def _safe_link(link: str | None) -> str:
    """The link if it is http(s); anything else (javascript:, data:) is not made clickable."""
    return link if link and link.lower().startswith(("http://", "https://")) else ""


def _by_country(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        row["link"] = _safe_link(row["link"])
        row["date"] = (row["published"] or "")[:10]
        groups.setdefault(row["country"] or "—", []).append(row)
    return [{"country": country, "articles": articles} for country, articles in groups.items()]

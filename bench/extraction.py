"""Score the extraction stage on the shared article-extraction corpus (181 news pages with gold text).

    python bench/extraction.py [--limit N] [--worst K] [--no-compare]

Scoring follows the corpus README (the upstream benchmark's metric): text is split
into `\\w+` tokens (Unicode, case kept), tokens form overlapping 4-token shingles,
each page gets precision and recall from the shingle counts it shares with the gold
text (multiset intersection), both are averaged over pages, and F1 is computed from
the mean precision and mean recall. Printed for `pipelines.extract.extract_article`
and, for comparison, for trafilatura alone with its default settings.
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import re
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpora" / "article-extraction"

_TOKEN = re.compile(r"\w+")


@dataclass
class Page:
    id: str
    url: str | None
    html: str
    gold: str


@dataclass
class Score:
    f1: float
    precision: float
    recall: float
    empty: int
    ms_per_page: float
    per_page: dict[str, tuple[float, float]]


def shingles(text: str, n: int = 4) -> Counter[str]:
    """Multiset of overlapping n-token shingles; a text shorter than n tokens is one shingle."""
    tokens = _TOKEN.findall(text or "")
    return Counter(" ".join(tokens[i : i + n]) for i in range(max(1, len(tokens) - n + 1)) if tokens[i : i + n])


def precision_recall(gold: str, predicted: str) -> tuple[float, float]:
    """Per-page precision and recall from shared shingle counts (both 1.0 when both texts are empty)."""
    g, p = shingles(gold), shingles(predicted)
    tp = sum((g & p).values())
    fp = sum((p - g).values())
    fn = sum((g - p).values())
    if fp == fn == 0:
        return 1.0, 1.0
    if tp == 0:
        return 0.0, 0.0
    return tp / (tp + fp), tp / (tp + fn)


def load_pages(limit: int | None = None) -> list[Page]:
    """The corpus pages in id order, each with its gold article body."""
    gold = json.loads((CORPUS / "ground-truth.json").read_text(encoding="utf-8"))
    pages = []
    for page_id in sorted(gold)[:limit]:
        html = gzip.decompress((CORPUS / "html" / f"{page_id}.html.gz").read_bytes()).decode("utf-8")
        pages.append(Page(page_id, gold[page_id].get("url"), html, gold[page_id]["articleBody"]))
    return pages


def score(extractor: Callable[[str, str | None], str], pages: list[Page]) -> Score:
    """Run `extractor(html, url) -> text` on every page and score it."""
    per_page: dict[str, tuple[float, float]] = {}
    empty = 0
    elapsed = 0.0
    for page in pages:
        start = time.perf_counter()
        text = extractor(page.html, page.url) or ""
        elapsed += time.perf_counter() - start
        empty += not text.strip()
        per_page[page.id] = precision_recall(page.gold, text)
    mean_p = sum(p for p, _ in per_page.values()) / len(pages)
    mean_r = sum(r for _, r in per_page.values()) / len(pages)
    f1 = 2 * mean_p * mean_r / (mean_p + mean_r) if mean_p + mean_r else 0.0
    return Score(f1, mean_p, mean_r, empty, elapsed / len(pages) * 1000, per_page)


def _line(name: str, s: Score) -> str:
    return (
        f"{name:<34} F1 {s.f1:.3f}  precision {s.precision:.3f}  recall {s.recall:.3f}"
        f"  empty pages {s.empty}  {s.ms_per_page:.1f} ms/page"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, metavar="N", help="score only the first N pages")
    parser.add_argument("--worst", type=int, default=0, metavar="K", help="list the K worst pages by F1")
    parser.add_argument("--no-compare", action="store_true", help="skip trafilatura-alone for comparison")
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be at least 1")

    if not (CORPUS / "ground-truth.json").is_file():
        print(f"bench/extraction.py: corpus not found at {CORPUS} (needs ../shared next to the repo)", file=sys.stderr)
        return 2

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import trafilatura

    from pipelines.extract import extract_article

    # trafilatura logs a warning for every page it discards; they are not results
    logging.disable(logging.WARNING)

    pages = load_pages(args.limit)
    print(f"article-extraction corpus: {len(pages)} pages ({CORPUS})")
    ours = score(lambda html, url: extract_article(html, url).text, pages)
    print(_line("pipelines.extract.extract_article", ours))
    if not args.no_compare:
        alone = score(lambda html, url: trafilatura.extract(html, url=url) or "", pages)
        print(_line(f"trafilatura {trafilatura.__version__} defaults", alone))

    if args.worst:
        print(f"\nworst {args.worst} pages (precision / recall):")
        ranked = sorted(ours.per_page.items(), key=lambda kv: 2 * kv[1][0] * kv[1][1] / (sum(kv[1]) or 1))
        for page_id, (p, r) in ranked[: args.worst]:
            print(f"  {page_id[:16]}  P {p:.2f}  R {r:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

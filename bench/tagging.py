"""Tagging benchmark: precision/recall/F1 per category and language, figure metric and year accuracy, speed.

    .venv/bin/python bench/tagging.py [--verbose]

Quality, on two sets: tests/data/tagging_real.txt (real passages from public pages, annotated by
../shared/specs/tagging-conventions.md; its `test` split is scored and never tuned on, its `tune`
split is what changes were checked against) and tests/data/tagging_dev.txt (synthetic sentences,
kept as regression tests). Gold marks are [V:id|..], [S:sector|..], [F:value:unit:year(:metric)|..].
A prediction counts when its span overlaps a gold span of the same category and label, labels
compared as the spec compares them (`Taxonomy.compared_id`: JP:HSP-1B as JP:HSP, batteries as
other); figures by category alone, with value, unit, year and metric accuracy reported apart.
Speed: English words/s in one process on the article-extraction gold texts (the dev set repeated
if that corpus is absent), ms per 2,000-character Japanese article, and taxonomy load time.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipelines.tagging import Tagger  # noqa: E402

DEV = ROOT / "tests" / "data" / "tagging_dev.txt"
REAL = ROOT / "tests" / "data" / "tagging_real.txt"
CORPUS = ROOT.parent / "shared" / "corpora" / "article-extraction" / "ground-truth.json"
_MARK = re.compile(r"\[([VSF]):([^|\]]+)\|([^\]]+)\]")


@dataclass
class Gold:
    lang: str
    text: str
    spans: list[tuple[str, int, int, str]] = field(default_factory=list)
    """(category, start, end, label); for figures the label is "value:unit:year" or "value:unit:year:metric"."""
    split: str = ""
    url: str = ""


def load_dev(path: Path = DEV) -> list[Gold]:
    """Parse the synthetic dev set (LANG<TAB>marked text per line) into plain texts with gold spans."""
    items = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        lang, marked = line.split("\t", 1)
        items.append(parse_marked(lang, marked))
    return items


def load_real(path: Path = REAL) -> list[Gold]:
    """Parse the real-text dev set (SPLIT<TAB>LANG<TAB>URL<TAB>marked text per line)."""
    items = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        split, lang, url, marked = line.split("\t", 3)
        item = parse_marked(lang, marked)
        item.split, item.url = split, url
        items.append(item)
    return items


def parse_marked(lang: str, marked: str) -> Gold:
    """The plain text of a marked-up passage and its gold spans."""
    out, spans, pos = [], [], 0
    for m in _MARK.finditer(marked):
        out.append(marked[pos:m.start()])
        start = sum(map(len, out))
        out.append(m.group(3))
        cat = {"V": "visa", "S": "sector", "F": "figure"}[m.group(1)]
        spans.append((cat, start, start + len(m.group(3)), m.group(2)))
        pos = m.end()
    out.append(marked[pos:])
    return Gold(lang, "".join(out), spans)


def predicted(result, tagger: Tagger) -> list[tuple[str, int, int, str]]:
    compared = tagger.taxonomy.compared_id
    spans = [("visa", v.start, v.end, compared("visa", v.id)) for v in result.visas]
    spans += [("sector", s.start, s.end, compared("sector", s.sector)) for s in result.sectors]
    spans += [("figure", f.start, f.end, f"{f.value!r}:{f.unit}:{f.year if f.year else '-'}:{getattr(f, 'metric', '')}")
              for f in result.figures]
    return spans


def _same(cat: str, a: str, b: str) -> bool:
    return cat == "figure" or a == b


def score(items: list[Gold], tagger: Tagger, verbose: bool = False) -> dict:
    """Counts per (lang, category) plus figure value/unit/year agreement on matched figures."""
    stats: dict[tuple[str, str], list[int]] = {}
    fig = {"matched": 0, "value": 0, "unit": 0, "year": 0, "metric_gold": 0, "metric": 0}
    for item in items:
        result = tagger.tag(item.text, item.lang)
        pred = predicted(result, tagger)
        for cat in ("visa", "sector", "figure"):
            g = [s if cat == "figure" else (*s[:3], tagger.taxonomy.compared_id(cat, s[3]))
                 for s in item.spans if s[0] == cat]
            p = [s for s in pred if s[0] == cat]
            tp_p = [x for x in p if any(x[1] < y[2] and y[1] < x[2] and _same(cat, x[3], y[3]) for y in g)]
            tp_g = [y for y in g if any(x[1] < y[2] and y[1] < x[2] and _same(cat, x[3], y[3]) for x in p)]
            st = stats.setdefault((item.lang, cat), [0, 0, 0, 0])
            st[0] += len(tp_p)
            st[1] += len(p)
            st[2] += len(tp_g)
            st[3] += len(g)
            if verbose:
                for x in p:
                    if x not in tp_p:
                        print(f"  FP {item.lang} {cat} {item.text[x[1]:x[2]]!r} {x[3]}  | {item.text[:90]}")
                for y in g:
                    if y not in tp_g:
                        print(f"  FN {item.lang} {cat} {item.text[y[1]:y[2]]!r} {y[3]}  | {item.text[:90]}")
            if cat == "figure":
                for y in g:
                    match = next((x for x in p if x[1] < y[2] and y[1] < x[2]), None)
                    if match is None:
                        continue
                    gv, gu, gy, *gm = y[3].split(":")
                    pv, pu, py, pm = match[3].split(":")
                    fig["matched"] += 1
                    fig["value"] += abs(float(gv) - float(pv)) < 1e-6 * max(1.0, abs(float(gv)))
                    fig["unit"] += gu == pu
                    fig["year"] += gy == py
                    if gm:
                        fig["metric_gold"] += 1
                        fig["metric"] += gm[0] == pm
                    if verbose and (gu != pu or gy != py or float(gv) != float(pv) or (gm and gm[0] != pm)):
                        print(f"  ~ {item.lang} {item.text[y[1]:y[2]]!r} gold {y[3]} got {match[3]}")
    return {"stats": stats, "figures": fig}


def prf(tp_p: int, n_p: int, tp_g: int, n_g: int) -> tuple[float, float, float]:
    p = tp_p / n_p if n_p else 1.0
    r = tp_g / n_g if n_g else 1.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def speed(tagger: Tagger, items: list[Gold]) -> dict:
    if CORPUS.exists():
        data = json.loads(CORPUS.read_text(encoding="utf-8"))
        texts = [v["articleBody"] for v in data.values() if v.get("articleBody")]
        source = f"{len(texts)} article-extraction gold texts"
    else:
        texts = [" ".join(i.text for i in items if i.lang == "en")] * 50
        source = "English dev set x50 (corpus absent)"
    words = sum(len(t.split()) for t in texts)
    ja = "".join(i.text for i in items if i.lang == "ja")
    ja = (ja * (2000 // len(ja) + 1))[:2000]
    fresh = Tagger(tagger.taxonomy)
    started = time.perf_counter()
    list(fresh.docs((t, "en") for t in texts))
    cold = words / (time.perf_counter() - started)
    return {
        "words": words, "source": source, "en_docs_cold": cold,
        # docs: spaCy Docs through nlp.pipe; tag_many (monitor tag, retag) and tag (crawl): the same tags, no Doc
        "en_docs": words / _best_seconds(lambda: list(tagger.docs((t, "en") for t in texts))),
        "en_plain": words / _best_seconds(lambda: list(tagger.tag_many((t, "en") for t in texts))),
        "ja_docs_ms": _best_seconds(lambda: list(tagger.docs([(ja, "ja")] * 50))) * 1000 / 50,
        "ja_plain_ms": _best_seconds(lambda: [tagger.tag(ja, "ja") for _ in range(50)]) * 1000 / 50,
    }


def _best_seconds(work: Callable[[], object], runs: int = 3) -> float:
    """The fastest of `runs` timings of `work()`, after one warm-up run."""
    work()
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        timings.append(time.perf_counter() - started)
    return min(timings)


def report(title: str, items: list[Gold], tagger: Tagger, verbose: bool = False) -> None:
    """Print P/R/F1 per language and category, and figure value/unit/year/metric accuracy, for `items`."""
    res = score(items, tagger, verbose)
    print(f"{title}: " + ", ".join(
        f"{lang} {sum(1 for i in items if i.lang == lang)}" for lang in ("en", "ko", "ja")) + " passages")
    print(f"  {'lang':4} {'category':8} {'P':>6} {'R':>6} {'F1':>6}  (pred/gold)")
    for lang in ("en", "ko", "ja"):
        for cat in ("visa", "sector", "figure"):
            tp_p, n_p, tp_g, n_g = res["stats"].get((lang, cat), [0, 0, 0, 0])
            p, r, f = prf(tp_p, n_p, tp_g, n_g)
            print(f"  {lang:4} {cat:8} {p:6.3f} {r:6.3f} {f:6.3f}  ({n_p}/{n_g})")
    fg = res["figures"]
    if fg["matched"]:
        m = fg["matched"]
        line = (f"  figures matched: {m}; value right {fg['value'] / m:.1%}, unit right {fg['unit'] / m:.1%}, "
                f"year right {fg['year'] / m:.1%}")
        if fg["metric_gold"]:
            line += f", metric right {fg['metric'] / fg['metric_gold']:.1%} (of {fg['metric_gold']})"
        print(line)


def main() -> None:
    verbose = "--verbose" in sys.argv
    t0 = time.perf_counter()
    tagger = Tagger.load()
    load_s = time.perf_counter() - t0
    real = load_real() if REAL.exists() else []
    for split in ("test", "tune"):
        chosen = [i for i in real if i.split == split]
        if chosen:
            report(f"real dev set, {split} split ({REAL.relative_to(ROOT)})", chosen, tagger,
                   verbose and split == "tune")
    items = load_dev()
    report(f"synthetic dev set ({DEV.relative_to(ROOT)}, regression)", items, tagger, "--verbose-synthetic" in sys.argv)
    sp = speed(tagger, items)
    print(f"speed: {sp['en_docs']:,.0f} English words/s in one process as spaCy Docs (docs, nlp.pipe), "
          f"{sp['en_plain']:,.0f} without Docs (tag_many, tag) ({sp['words']:,} words, {sp['source']})")
    print(f"speed: {sp['en_docs_cold']:,.0f} English words/s as spaCy Docs in the first pass of a new tagger "
          "(every word new to its vocabulary; the figures above: best of 3 after a warm-up pass, as a long "
          "batch runs)")
    print(f"speed: {sp['ja_docs_ms']:.2f} ms per 2,000-character Japanese article as a spaCy Doc (Sudachi), "
          f"{sp['ja_plain_ms']:.2f} ms without")
    print(f"taxonomy load: {load_s * 1000:.0f} ms")


if __name__ == "__main__":
    main()

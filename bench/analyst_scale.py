"""Benchmark the web UI (`monitor serve`) on a large database: page loads and canned queries.

Builds a database of N synthetic articles through the project's write path (storage.writes.store_article,
one transaction per article, as a crawl stores them; FTS triggers included). The tagger is NOT run: each
article gets synthetic visa/sector/country mentions and figures (drawn from a fixed list, seeded), stored
by the same call. About a fifth of the articles are Japanese or Korean, so the trigram index is used.
Then serves it as `monitor serve` does and times, over real HTTP on 127.0.0.1:
the dashboard page and each of its chart queries (as the browser fetches them), the articles table with
its facets, the visa facet view, searches, and each canned query as .json. Each is asked `--repeat`
times; the median and the worst are printed.

    .venv/bin/python bench/analyst_scale.py --n 100000 [--db /tmp/analyst100k.db] [--keep]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

VISAS = [("JP:HSP", "JP", "高度専門職"), ("JP:SSW", "JP", "特定技能"), ("KR:E-7", "KR", "E-7 비자"),
         ("KR:TOP-TIER", "KR", "톱티어 비자"), ("KR:E-9", "KR", "E-9"), ("US:H-1B", "US", "H-1B"),
         ("US:O-1", "US", "O-1"), ("EU:BLUE-CARD", "EU", "Blue Card"), ("GB:SKILLED-WORKER", "GB", "Skilled Worker"),
         ("GB:GLOBAL-TALENT", "GB", "Global Talent"), ("CA:EXPRESS-ENTRY", "CA", "Express Entry"),
         ("SG:EP", "SG", "Employment Pass")]
SECTORS = ["semiconductors", "ai", "healthcare", "engineering", "research", "manufacturing", "caregiving",
           "finance", "it_software", "construction"]
SOURCES = [(f"desk-en-{i}", "US", "en") for i in range(6)] + [("moj-ko", "KR", "ko"), ("isa-ja", "JP", "ja"),
                                                               ("govuk", "GB", "en"), ("ircc", "CA", "en")]
WORDS = ("visa quota talent worker skilled permit sponsor salary threshold ministry policy reform employer "
         "application recognition points system migration labour shortage engineer researcher").split()
JA = "外国人材の受入れ拡大に向けて高度専門職の認定件数が増加し特定技能制度の運用状況を公表しました"
KO = "법무부는 전문인력 취업비자 제도를 개선하고 외국인력 도입 규모를 확대한다고 밝혔다"


def build_database(path: Path, n: int, seed: int = 8) -> float:
    """Store `n` synthetic articles at `path` through storage.writes; return the seconds it took."""
    from storage import open_db
    from storage.writes import content_hash, store_article, upsert_source

    rng = random.Random(seed)
    db = open_db(path)
    for name, country, lang in SOURCES:
        upsert_source(db, {"name": name, "kind": "rss", "url": f"https://example.org/{name}.xml",
                           "country": country, "lang": lang, "enabled": 1})
    start = time.perf_counter()
    now = datetime.now(UTC)
    for i in range(n):
        name, country, lang = rng.choice(SOURCES)
        words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(60, 240)))
        if lang == "ja":
            text = f"{JA}。{rng.randint(100, 99999)}件。{words}"
        elif lang == "ko":
            text = f"{KO}. {rng.randint(100, 99999)}명. {words}"
        else:
            text = words
        title = f"{rng.choice(WORDS).title()} {rng.choice(WORDS)} {rng.choice(WORDS)} #{i}"
        published = now - timedelta(days=rng.uniform(0, 730))
        visas = rng.sample(VISAS, rng.randint(0, 3))
        mentions = [{"kind": "visa", "label": v, "country": c, "text": t, "start": 0, "end": len(t)}
                    for v, c, t in visas]
        mentions += [{"kind": "sector", "label": s, "text": s, "start": 0, "end": len(s)}
                     for s in rng.sample(SECTORS, rng.randint(0, 2))]
        mentions.append({"kind": "country", "label": country, "text": country, "start": 0, "end": 2})
        figures = [{"value": float(rng.randint(100, 50000)), "unit": "count", "year": rng.randint(2012, 2025),
                    "visa": visas[0][0], "text": "n", "start": 0, "end": 1} for _ in range(rng.randint(0, 1))
                   if visas]
        article = {"url": f"https://example.org/{name}/{i}", "link": f"https://example.org/{name}/{i}",
                   "source": name, "country": country, "title": title, "text": text, "lang": lang,
                   "published_at": published.isoformat(timespec="seconds"),
                   "content_hash": content_hash(title, text)}
        store_article(db, article, mentions, figures)
        if (i + 1) % 10000 == 0:
            print(f"  stored {i + 1} articles ({time.perf_counter() - start:.0f} s)", file=sys.stderr)
    db.close()
    return time.perf_counter() - start


def timed(client, url: str, params: dict[str, str], repeat: int) -> tuple[float, float, int]:
    """(median seconds, worst seconds, status) of `repeat` GETs."""
    times, status = [], 0
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(url, params=params)
        times.append(time.perf_counter() - started)
        status = response.status_code
    return statistics.median(times), max(times), status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100000, help="number of articles (default 100000)")
    parser.add_argument("--db", type=Path, help="database to build or reuse (default: a temporary file)")
    parser.add_argument("--repeat", type=int, default=3, help="requests per URL (default 3)")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()

    import httpx

    from monitor.analyst.serve import load_datasette_config
    from monitor.analyst.serve import serving_in_thread as serving

    workdir = Path(tempfile.mkdtemp(prefix="analyst-bench-"))
    db_path = args.db or workdir / "analyst.db"
    if db_path.exists():
        print(f"reusing {db_path}")
    else:
        seconds = build_database(db_path, args.n)
        print(f"built {db_path}: {args.n} articles through storage.writes.store_article in {seconds:.0f} s "
              f"({args.n / seconds:.0f} articles/s; synthetic tags, tagger not run)")
    metadata, _ = load_datasette_config()
    dashboard = metadata["plugins"]["datasette-dashboards"]["policy"]
    no_filters = {name: "" for name in dashboard["filters"]}
    checks: list[tuple[str, str, dict[str, str]]] = [
        ("dashboard page (HTML, fills filter lists)", "/-/dashboards/policy", {}),
    ]
    for slug, chart in dashboard["charts"].items():
        checks.append((f"dashboard chart {slug} (.json)", "/monitor.json",
                       {"sql": chart["query"], "_shape": "objects", **no_filters}))
    checks.append(("dashboard chart figure-timeline JP:HSP", "/monitor.json",
                   {"sql": dashboard["charts"]["figure-timeline"]["query"], "_shape": "objects",
                    **no_filters, "figure_visa": "JP:HSP"}))
    checks += [
        ("articles table with facets (HTML)", "/monitor/articles", {}),
        ("articles ?_search=quota (99% match) (HTML)", "/monitor/articles", {"_search": "quota"}),
        ("articles ?_search=4242 (1 match) (HTML)", "/monitor/articles", {"_search": "4242"}),
        ("articles_cjk ?_search=高度専門職 (.json)", "/monitor/articles_cjk.json", {"_search": "高度専門職"}),
        ("tagged_articles facets visa/sector (HTML)", "/monitor/tagged_articles", {}),
        ("search q=salary visa=KR:* (.json)", "/monitor/search.json",
         {"q": "salary", "visa": "KR:*", "sector": "", "country": "", "lang": "", "since": ""}),
        ("search q=비자 (2-char CJK) (.json)", "/monitor/search.json",
         {"q": "비자", "visa": "", "sector": "", "country": "", "lang": "", "since": ""}),
        ("search q=quota (.atom)", "/monitor/search.atom",
         {"q": "quota", "visa": "", "sector": "", "country": "", "lang": "", "since": ""}),
        ("figure_timeline visa=JP:HSP (.json)", "/monitor/figure_timeline.json", {"visa": "JP:HSP"}),
        ("mentions_per_week visa KR:E-7 (.json)", "/monitor/mentions_per_week.json",
         {"kind": "visa", "label": "KR:E-7"}),
        ("new_this_week (.json)", "/monitor/new_this_week.json", {"country": "", "lang": ""}),
        ("alerts_sent_recent (.json)", "/monitor/alerts_sent_recent.json", {"days": "", "rule": ""}),
        ("source_health (.json)", "/monitor/source_health.json", {"state": ""}),
    ]
    with serving(db_path) as base, httpx.Client(base_url=base, timeout=120) as client:
        client.get("/monitor/articles.json", params={"_size": "1"})  # warm the page cache once
        print(f"\n{'request':<48} {'median':>9} {'worst':>9}  status   ({args.repeat} requests each)")
        for label, url, params in checks:
            median, worst, status = timed(client, url, params, args.repeat)
            print(f"{label:<48} {median * 1000:>7.0f}ms {worst * 1000:>7.0f}ms  {status}")
    if not args.keep and args.db is None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db_path}{suffix}").unlink(missing_ok=True)


if __name__ == "__main__":
    main()

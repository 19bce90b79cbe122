"""How long `monitor figures` and `monitor report` take on a large database (default 100,000 articles).

The database is built through the project's write path (`storage.writes.store_article`) with synthetic
articles whose tags are generated here, not by the tagger (tagging off: this measures the analyst's
queries, not the NLP stage). Tags use the bundled taxonomy's real visa and sector ids; each article
has 1-3 visa mentions, 1-2 sector mentions and 0-3 figures (visa, unit, year; a third of them
restating an earlier figure within 0.3%, as several outlets reporting one number do).

    .venv/bin/python bench/report_scale.py [--n 100000] [--db PATH] [--keep]

Times are wall-clock for the whole command, Python start-up and taxonomy load included, best of 3.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipelines.tagging import Tagger  # noqa: E402
from storage import open_db  # noqa: E402
from storage.writes import content_hash, store_article  # noqa: E402

COUNTRIES = ("JP", "KR", "US", "GB", "CA", "SG", "DE", "AU")
UNITS = ("count", "people", "percent", "USD")
WORDS = ("visa policy talent workers ministry announced quota applications skilled foreign residence permit "
         "program reform employers sponsorship points semiconductors research engineers nurses").split()


def build(path: Path, n: int, seed: int = 8) -> None:
    """Write `n` synthetic tagged articles (with figures) into a new database at `path`."""
    rng = random.Random(seed)
    tagger = Tagger.load()
    visas = sorted(tagger.visa_ids)
    sectors = sorted(tagger.sector_ids)
    hot_visas = ["JP:HSP", *rng.sample(visas, 15)]  # a few visas carry most of the news, as in real life
    stated: dict[tuple[str, str, int], float] = {}
    db = open_db(path)
    now = datetime.now(UTC)
    started = time.perf_counter()
    for i in range(n):
        country = rng.choice(COUNTRIES)
        published = now - timedelta(days=rng.random() * 730)
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(60, 160)))
        title = f"Article {i}: {rng.choice(WORDS)} {rng.choice(WORDS)}"
        article = {"url": f"https://news{i % 40}.example/{i}", "title": title, "text": text, "lang": "en",
                   "country": country, "source": f"source-{i % 40}", "published_at": published.isoformat(),
                   "content_hash": content_hash(title, text)}
        article_visas = [rng.choice(hot_visas) if rng.random() < 0.6 else rng.choice(visas)
                         for _ in range(rng.randint(1, 3))]
        mentions = [{"kind": "visa", "label": v, "country": tagger.visa_country(v), "text": v, "start": 0,
                     "end": 5, "sentence": text[:120]} for v in article_visas]
        mentions += [{"kind": "sector", "label": rng.choice(sectors), "text": "sector", "start": 10, "end": 16,
                      "sentence": text[:120]} for _ in range(rng.randint(1, 2))]
        figures = []
        for _ in range(rng.choice((0, 0, 1, 2, 3))):
            key = (rng.choice(article_visas), rng.choice(UNITS), rng.randint(2008, 2026))
            if key in stated and rng.random() < 0.33:
                value = round(stated[key] * (1 + rng.uniform(-0.003, 0.003)))
            else:
                value = float(rng.randint(10, 200_000))
                stated.setdefault(key, value)
            figures.append({"value": value, "unit": key[1], "year": key[2], "visa": key[0], "text": str(value),
                            "start": 20, "end": 26, "sentence": f"{value:,.0f} {key[1]} in {key[2]}."})
        store_article(db, article, mentions, figures)
        if (i + 1) % 10_000 == 0:
            print(f"  {i + 1:,} articles stored ({time.perf_counter() - started:.0f} s)", flush=True)
    db.close()


def time_command(argv: list[str], runs: int = 3) -> tuple[float, str]:
    """Best wall-clock seconds of `runs` runs of the monitor CLI, and the last run's stderr."""
    best = float("inf")
    err = ""
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "monitor", *argv], capture_output=True, text=True, check=True)
        best = min(best, time.perf_counter() - started)
        err = done.stderr.strip()
    return best, err


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--db", type=Path, help="reuse or create the database here (default: a temp file)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="report-scale-"))
    db = args.db or workdir / "bench.db"
    if not db.exists():
        print(f"building {args.n:,} articles into {db} (tagging off: synthetic tags) ...")
        started = time.perf_counter()
        build(db, args.n)
        print(f"built in {time.perf_counter() - started:.0f} s")
    counts = subprocess.run([sys.executable, "-m", "monitor", "--db", str(db), "sql",
                             "SELECT (SELECT count(*) FROM articles) AS articles, (SELECT count(*) FROM figures)"
                             " AS figures, (SELECT count(*) FROM figures WHERE visa = 'JP:HSP') AS hsp_figures",
                             "--format", "csv"], capture_output=True, text=True, check=True).stdout
    print(counts.strip())
    since_30 = (datetime.now(UTC).date() - timedelta(days=30)).isoformat()
    since_365 = (datetime.now(UTC).date() - timedelta(days=365)).isoformat()
    cases = [
        ("monitor figures --visa JP:HSP", ["figures", "--visa", "JP:HSP", "--format", "csv"]),
        ("monitor figures --visa JP:HSP --unit count", ["figures", "--visa", "JP:HSP", "--unit", "count"]),
        ("monitor figures --visa 'JP:*' --format vega", ["figures", "--visa", "JP:*", "--format", "vega"]),
        ("monitor --help (start-up alone)", ["--help"]),
        (f"monitor report (default: since {since_30})", ["report", "--out", str(workdir / "r30.html")]),
        (f"monitor report --since {since_365}", ["report", "--since", since_365, "--out", str(workdir / "r365.html")]),
    ]
    for label, argv in cases:
        seconds, err = time_command(["--db", str(db), *argv])
        print(f"{label:<55} {seconds:6.2f} s   {err.splitlines()[-1] if err else ''}")


if __name__ == "__main__":
    main()

"""Search at scale: p50/p95 of every kind of `monitor search`, database size, build rate, search memory, alerts.

    .venv/bin/python bench/search_scale.py --n 100000 [--db /tmp/search-100k.db] [--repeat 20]
    .venv/bin/python bench/search_scale.py --n 1000000 --db /tmp/search-1m.db

Builds (or reuses, if the file at `--db` already holds `--n` articles) a database of synthetic
articles in English, Korean and Japanese through the project's own write path
(`storage.writes.store_article`, one transaction per article, as a crawl stores them). Tagging is
OFF: tagging a million articles would take hours, so each article's mentions are synthetic but
true to its text: sentences are drawn from the tagging development set (tests/data/tagging_dev.txt)
with their gold visa and sector marks, between filler sentences of Zipf-distributed made-up words
(so rare and common terms both exist). Dates spread over 2015-2026, a tenth undated.

Then it times `storage.queries.search_articles` (limit 20) for each query kind, prints p50 and p95,
in a process set up as the `monitor` command sets itself up (SQLite's memory statistics off, so a
common word's matches are ranked in one thread per CPU, up to four),
measures the peak RSS of a `monitor search` process, and times alert candidate selection
(`storage.alerts.matching_articles`) with a handful of new articles: from a rule's checkpoint (what an
evaluation after a crawl reads) and, for comparison, from a baseline half the database back.
Figures depend on the machine's load: on a shared machine they are pessimistic.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from storage import open_db, open_readonly  # noqa: E402
from storage.alerts import RuleConditions, matching_articles, newest_article_id  # noqa: E402
from storage.queries import RANK_MAX_PARTS, RANK_PART_MATCHES, SearchFilters, search_articles  # noqa: E402
from storage.sqlite_library import quiet_memory_statistics  # noqa: E402
from storage.writes import content_hash, store_article  # noqa: E402

DEV = ROOT / "tests" / "data" / "tagging_dev.txt"
_MARK = re.compile(r"\[([VSF]):([^|\]]+)\|([^\]]+)\]")
LANG_SHARE = (("en", 0.5), ("ko", 0.3), ("ja", 0.2))
SOURCES = [(f"source-{number:03d}", ("US", "KR", "JP", "GB", "SG")[number % 5]) for number in range(100)]

# (kind, query, filters): every kind of `monitor search` the issue names.
QUERIES: list[tuple[str, str, SearchFilters]] = [
    ("word", "shipbuilding", SearchFilters()),
    ("word (common: visa)", "visa", SearchFilters()),
    ("phrase", '"Highly Skilled Professional"', SearchFilters()),
    ("prefix", "semicond*", SearchFilters()),
    ("prefix (common: visa*)", "visa*", SearchFilters()),
    ("OR", "nursing OR caregivers", SearchFilters()),
    ("OR (common: visa OR workers)", "visa OR workers", SearchFilters()),
    ("word --visa KR:E-7-4", "workers", SearchFilters(visa="KR:E-7-4")),
    ("word --visa TW:GOLD-CARD", "card", SearchFilters(visa="TW:GOLD-CARD")),
    ("word --visa KR:*", "workers", SearchFilters(visa="KR:*")),
    ("word --sector semiconductors", "visa", SearchFilters(sector="semiconductors")),
    ("word --country JP", "visa", SearchFilters(country="JP")),
    ("word --since 2026-06-01", "visa", SearchFilters(since="2026-06-01")),
    ("none --visa KR:*", "", SearchFilters(visa="KR:*")),
    ("none --visa KR:E-7-4", "", SearchFilters(visa="KR:E-7-4")),
    ("none --visa TW:GOLD-CARD", "", SearchFilters(visa="TW:GOLD-CARD")),
    ("none --sector shipbuilding", "", SearchFilters(sector="shipbuilding")),
    ("none --country KR", "", SearchFilters(country="KR")),
    ("none --since 2026-06-01", "", SearchFilters(since="2026-06-01")),
    ("none --country SG --since 2026-01-01", "", SearchFilters(country="SG", since="2026-01-01")),
    ("none (newest)", "", SearchFilters()),
    ("CJK 3+ (외국인)", "외국인", SearchFilters()),
    ("CJK 3+ (高度専門職)", "高度専門職", SearchFilters()),
    ("CJK 3+ --visa KR:E-9", "외국인", SearchFilters(visa="KR:E-9")),
    ("CJK 2 (비자)", "비자", SearchFilters()),
    ("CJK 2 (人材)", "人材", SearchFilters()),
    ("CJK 2 rare", "", SearchFilters()),  # query filled in from the database's filler words
    ("CJK 1 (법)", "법", SearchFilters()),
    ("CJK 2 AND", "비자 AND 발급", SearchFilters()),
    ("CJK 2 OR", "비자 OR ビザ", SearchFilters()),
    ("CJK 2 NOT", "비자 NOT 취업", SearchFilters()),
    ("CJK 2 --visa KR:E-7-4", "비자", SearchFilters(visa="KR:E-7-4")),
    ("CJK 2 --since 2026-06-01", "인재", SearchFilters(since="2026-06-01")),
]


def load_sentences() -> dict[str, list[tuple[str, list[tuple[str, str, int, int]]]]]:
    """The dev set's sentences per language, each with its (kind, label, start, end) visa and sector marks."""
    by_lang: dict[str, list] = {"en": [], "ko": [], "ja": []}
    for line in DEV.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        lang, marked = line.split("\t", 1)
        out, marks, pos = "", [], 0
        for match in _MARK.finditer(marked):
            out += marked[pos:match.start()]
            start = len(out)
            out += match.group(3)
            if match.group(1) in "VS":
                marks.append(({"V": "visa", "S": "sector"}[match.group(1)], match.group(2), start, len(out)))
            pos = match.end()
        by_lang[lang].append((out + marked[pos:], marks))
    return by_lang


def filler_vocabulary(rng: random.Random, size: int = 20000) -> dict[str, list[str]]:
    """Made-up words per language, most common first (drawn with Zipf weights)."""
    latin = ["ka", "to", "ri", "mo", "sen", "dal", "ver", "qu", "lin", "por", "ast", "nel", "bri", "gon", "te"]
    hangul = [chr(0xAC00 + rng.randrange(11172)) for _ in range(400)]
    kanji = [chr(0x4E00 + rng.randrange(3000)) for _ in range(600)]
    kana = [chr(0x30A2 + rng.randrange(80)) for _ in range(80)]
    return {
        "en": ["".join(rng.choices(latin, k=rng.randint(2, 4))) for _ in range(size)],
        "ko": ["".join(rng.choices(hangul, k=rng.randint(2, 3))) for _ in range(size)],
        "ja": ["".join(rng.choices(kanji, k=2)) + "".join(rng.choices(kana, k=rng.randint(0, 2)))
               for _ in range(size)],
    }


class ArticleMaker:
    """Deterministic synthetic articles with mentions that match their text."""

    def __init__(self, seed: int = 10) -> None:
        self.rng = random.Random(seed)
        self.sentences = load_sentences()
        self.vocabulary = filler_vocabulary(self.rng)
        self.weights = list(_cumulative(1 / rank for rank in range(1, len(self.vocabulary["en"]) + 1)))

    def make(self, number: int) -> tuple[dict, list[dict], list[dict]]:
        rng = self.rng
        lang = rng.choices([lang for lang, _ in LANG_SHARE], [share for _, share in LANG_SHARE])[0]
        source, country = SOURCES[rng.randrange(len(SOURCES))]
        joiner = " " if lang != "ja" else ""
        parts: list[str] = []
        mentions: list[dict] = []
        length = 0
        for _ in range(rng.randint(6, 16)):
            if rng.random() < 0.2:
                sentence, marks = rng.choice(self.sentences[lang])
                for kind, label, start, end in marks:
                    mentions.append({"kind": kind, "label": label,
                                     "country": label.split(":")[0] if kind == "visa" else None,
                                     "text": sentence[start:end], "start": length + start, "end": length + end})
            else:
                words = rng.choices(self.vocabulary[lang], cum_weights=self.weights, k=rng.randint(8, 18))
                sentence = joiner.join(words) + ("." if lang == "en" else "다." if lang == "ko" else "。")
            parts.append(sentence)
            length += len(sentence) + len(joiner)
        text = joiner.join(parts)
        title = parts[0][:80]
        day = rng.randrange(365 * 11 + 180)
        published = None if rng.random() < 0.1 else _day_iso(day)
        article = {"url": f"https://{source}.example/articles/{number}", "title": title, "text": text,
                   "content_hash": content_hash(title, text), "source": source, "country": country, "lang": lang,
                   "published_at": published, "fetched_at": _day_iso(day + rng.randint(0, 3))}
        return article, mentions, []


def _cumulative(values):
    total = 0.0
    for value in values:
        total += value
        yield total


def _day_iso(day: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(1420070400 + day * 86400 + (day * 7919) % 86400))


def build(path: Path, n: int) -> tuple[float, int]:
    """Store articles until the database holds `n`; return (seconds, articles stored now)."""
    started = time.perf_counter()
    db = open_db(path)  # applies any pending migration (the backfill of an older database)
    print(f"open_db: {time.perf_counter() - started:.1f} s")
    have = db.execute("SELECT count(*) FROM articles").fetchone()[0]
    if have >= n:
        db.close()
        return 0.0, 0
    maker = ArticleMaker()
    for number in range(have):  # replay the generator so a resumed build goes on where it stopped
        maker.make(number)
    started = time.perf_counter()
    for number in range(have, n):
        article, mentions, figures = maker.make(number)
        store_article(db, article, mentions, figures)
        if number and number % 50000 == 0:
            rate = (number - have) / (time.perf_counter() - started)
            print(f"  stored {number:,} articles ({rate:,.0f}/s)", flush=True)
    elapsed = time.perf_counter() - started
    db.close()
    return elapsed, n - have


def time_queries(path: Path, repeat: int) -> list[tuple[str, float, float, int]]:
    """(kind, p50 ms, p95 ms, results) for every query kind, on a read-only connection like `monitor search`."""
    conn = open_readonly(path)
    rare = _rare_cjk_bigram(conn)
    rows = []
    for kind, query, filters in QUERIES:
        if kind == "CJK 2 rare":
            query = rare
        results = search_articles(conn, query, filters)  # warm-up, and the result count
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            search_articles(conn, query, filters)
            times.append((time.perf_counter() - started) * 1000)
        times.sort()
        p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
        rows.append((f"{kind} [{query}]" if kind == "CJK 2 rare" else kind, statistics.median(times), p95,
                     len(results)))
    # What no search can go below while ranking as it does: bm25 of every match of the commonest word.
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        conn.execute("SELECT rowid, bm25(articles_fts, 5.0, 1.0) AS rank FROM articles_fts"
                     " WHERE articles_fts MATCH 'visa' ORDER BY rank LIMIT 20").fetchall()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    matches = conn.execute("SELECT count(*) FROM articles_fts WHERE articles_fts MATCH 'visa'").fetchone()[0]
    rows.append((f"(floor: FTS5 bm25 of all {matches:,} 'visa')", statistics.median(times),
                 times[min(len(times) - 1, round(0.95 * (len(times) - 1)))], 20))
    conn.close()
    return rows


def _rare_cjk_bigram(conn) -> str:
    """Two Hangul syllables of a filler word that occurs in few articles (a rare two-character term)."""
    maker = ArticleMaker()
    return maker.vocabulary["ko"][-1][:2]


def search_memory(path: Path) -> list[tuple[str, int]]:
    """Peak RSS (KiB) of a `monitor search` process for a few queries."""
    found = []
    for args in (["visa"], ["비자"], ["", "--visa", "KR:*"]):
        process = subprocess.Popen([sys.executable, "-m", "monitor", "--db", str(path), "search", *args,
                                    "--format", "json"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   cwd=ROOT)
        _, status, usage = os.wait4(process.pid, 0)
        found.append((" ".join(repr(a) for a in args), usage.ru_maxrss if status == 0 else -1))
    return found


def alert_candidates(path: Path, new: int = 5) -> list[tuple[str, float, int, float, int]]:
    """Time a rule's evaluation after `new` articles are stored: read from its checkpoint (it was evaluated
    after every earlier crawl), and, as before checkpoints, from its baseline alone (it appeared when the
    database held half its articles). Returns (rule, checkpoint ms, candidates, baseline ms, candidates)."""
    db = open_db(path)
    before = db.execute("SELECT max(id) FROM articles").fetchone()[0]
    maker = ArticleMaker(seed=before)
    for number in range(new):
        article, mentions, figures = maker.make(number)
        article["url"] += f"?alert-bench={before}-{number}"
        store_article(db, article, mentions, figures)
    db.close()
    conn = open_readonly(path)
    newest = newest_article_id(conn)
    registered = before // 2
    rules = [("query 'visa'", RuleConditions(query="visa")),
             ("query '비자' (CJK 2)", RuleConditions(query="비자")),
             ("visas KR:*", RuleConditions(visas=("KR:*",))),
             ("query + sectors", RuleConditions(query="workers", sectors=("semiconductors",)))]
    rows = []
    for name, conditions in rules:
        timed = []
        for start, runs in ((before, 10), (registered, 1)):
            times = []
            for _ in range(runs):
                started = time.perf_counter()
                found = matching_articles(conn, conditions, after_id=start, up_to=newest, unsent_for=name)
                times.append((time.perf_counter() - started) * 1000)
            timed += [statistics.median(times), len(found)]
        rows.append((name, *timed))
    conn.close()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100000)
    parser.add_argument("--db", type=Path, help="database file (default /tmp/policy-monitor-search-N.db)")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--build-only", action="store_true")
    args = parser.parse_args()
    path = args.db or Path(f"/tmp/policy-monitor-search-{args.n}.db")
    # As the `monitor` command does first thing: searches may then rank a common word in threads.
    statistics_off = quiet_memory_statistics()
    print(f"database {path}: {args.n:,} articles (tagging off: synthetic tags true to the text, see --help)")
    seconds, stored = build(path, args.n)
    if stored:
        print(f"build: {stored:,} articles in {seconds:,.0f} s = {stored / seconds:,.0f} articles/s"
              " through storage.writes.store_article")
    else:
        print("build: reused the existing database")
    if args.build_only:
        return 0
    size = sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
    print(f"database size: {size / 2**20:,.0f} MiB ({size / args.n:,.0f} bytes per article)")
    print(f"\nsearch_articles, limit 20, {args.repeat} runs each (warm cache; machine shared, figures pessimistic)")
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"SQLite memory statistics {'off' if statistics_off else 'ON'} as in `monitor`: a word query with"
          f" over {2 * RANK_PART_MATCHES:,} matches is ranked in"
          f" {min(cpus or 1, RANK_MAX_PARTS) if statistics_off else 1} thread(s) ({cpus} CPUs)")
    print(f"{'kind':44} {'p50 ms':>8} {'p95 ms':>8} {'results':>8}")
    for kind, p50, p95, count in time_queries(path, args.repeat):
        print(f"{kind:44} {p50:8.1f} {p95:8.1f} {count:8d}")
    print("\npeak RSS of a `monitor search` process")
    for args_text, rss in search_memory(path):
        print(f"  monitor search {args_text:30} {rss / 1024:7.1f} MiB")
    print("\nalert evaluation after 5 new articles (storage.alerts.matching_articles; median of 10, and one run)")
    print(f"  {'rule':24} {'from its checkpoint':>25}   {'from its baseline (before issue 10)':>35}")
    for name, ms, count, baseline_ms, baseline_count in alert_candidates(path):
        print(f"  {name:24} {ms:9.2f} ms {count:4d} found   {baseline_ms:23.1f} ms {baseline_count:7d} found")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

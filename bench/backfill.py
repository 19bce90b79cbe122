"""Benchmark `monitor backfill` on a synthetic CC-NEWS-like WARC file, then estimate one month of CC-NEWS.

The WARC holds N pages, each as a request record and a response record (as CC-NEWS has them): mostly
off-topic news pages (the real pages of ../shared/corpora/article-extraction, under fresh URLs; a
generated page where that folder is absent) and a share of immigration news in English, Korean and
Japanese (the demo site's articles, each copy made distinct). Each stage is timed on one core:

    read       records/s through warcio (gzip, WARC and HTTP headers)
    filter     pages/s through the prefilters of `--keep-filter` (keyword search on the raw bytes)
    extract    pages/s through the crawl's extraction and tagging (what passed the prefilter)
    store      articles/s through storage.writes.store_article (SQLite)

then the whole backfill once in this process (`--workers 1`) and, with --workers N, on N processes.

    .venv/bin/python bench/backfill.py --n 5000 --on-topic 0.02 --workers 2
"""

from __future__ import annotations

import argparse
import gzip
import io
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpora" / "article-extraction" / "html"
DEMO = ROOT / "monitor" / "demo_site"
ON_TOPIC = [*sorted((DEMO / "articles").glob("[ek]*-*.html")), *sorted((DEMO / "ja" / "press").glob("10*.html")),
            *sorted((DEMO / "government" / "news").glob("*.html"))]

# One month of CC-NEWS, the assumptions of the estimate (sources in the closing note).
ARTICLES_PER_MONTH = 1.35e9 / 117
"""Infini-News (arXiv 2605.18337, May 2026): over 1.35 billion articles in CC-NEWS from August 2016 to
its latest snapshot, i.e. ~117 months: an average month, recent months are larger."""
RECORDS_PER_ARTICLE = 2
"""commoncrawl/news-crawl conf/crawler.flux: the WARC bolt is built `withRequestRecords`."""
WARC_FILE_MB = 1024
"""commoncrawl/news-crawl conf/crawler.flux: WARC files rotate at 1024 MB (or after 24 h)."""


def off_topic_pages(n_distinct: int) -> list[bytes]:
    if CORPUS.is_dir():
        return [gzip.decompress(p.read_bytes()) for p in sorted(CORPUS.glob("*.html.gz"))][:n_distinct]
    print(f"note: {CORPUS} absent: off-topic pages are generated", file=sys.stderr)
    paragraph = ("The council approved the new budget for road repairs on Tuesday, and the mayor said work "
                 "would begin in spring once the tender closes. ") * 4
    return [(f"<html lang='en'><head><title>Council budget {i}</title></head><body><nav>Home News Sport</nav>"
             f"<article><h1>Council budget {i}</h1>" + f"<p>{paragraph}</p>" * 8 + "</article></body></html>"
             ).encode() for i in range(n_distinct)]


def write_bench_warc(path: Path, n: int, on_topic_share: float, seed: int = 11) -> tuple[int, int]:
    """N pages (request + response records); returns (records, on-topic pages)."""
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    rng = random.Random(seed)
    off = off_topic_pages(400)
    on = [p.read_text(encoding="utf-8") for p in ON_TOPIC]
    on_count = 0
    with path.open("wb") as out:
        writer = WARCWriter(out, gzip=True)
        for i in range(n):
            if rng.random() < on_topic_share:
                html = on[on_count % len(on)]
                # a distinct story each time (else the content hash makes it one article)
                html = html.replace("</p>", f" (Ref. {i}.)</p>", 1).encode()
                url, on_count = f"https://news{i % 50}.example.com/story/{i}", on_count + 1
            else:
                html, url = off[i % len(off)], f"https://site{i % 500}.example.org/article/{i}"
            writer.write_record(writer.create_warc_record(url, "request",
                                                          payload=io.BytesIO(b"GET / HTTP/1.1\r\n\r\n")))
            headers = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8")], protocol="HTTP/1.1")
            writer.write_record(writer.create_warc_record(
                url, "response", payload=io.BytesIO(html), http_headers=headers,
                warc_headers_dict={"WARC-Date": "2025-10-01T00:00:00Z"}))
    return 2 * n, on_count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="pages in the WARC (default 5000)")
    parser.add_argument("--on-topic", type=float, default=0.02, help="share of immigration pages (default 0.02)")
    parser.add_argument("--workers", type=int, default=0, help="also run on N local processes (split files)")
    args = parser.parse_args()

    from monitor.backfill import (
        Counts,
        InlineEngine,
        ProcessPoolEngine,
        _extract_and_tag,
        _passes_prefilters,
        make_options,
        run_backfill,
    )
    from monitor.config import config_from_dict
    from pipelines.tagging import Tagger
    from pipelines.warc import KeywordMatcher, LocalArchive, read_events
    from storage import open_db, writes

    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        warc = tmp / "bench.warc.gz"
        records, on_count = write_bench_warc(warc, args.n, args.on_topic)
        size_mb = warc.stat().st_size / 1e6
        print(f"WARC: {args.n} pages, {records} records, {on_count} immigration pages, {size_mb:.1f} MB gzip"
              f" ({size_mb / args.n * 1000:.1f} kB a page)")
        config = config_from_dict({"storage": {"path": str(tmp / "bench.db")},
                                   "backfill": {"keep_any": _config_keep_any()}}, path=None, base_dir=tmp)
        tagger = Tagger.load()
        options = make_options(config, tagger, keep_filter=True)
        matcher = KeywordMatcher(options.keywords or (), options.exact_keywords)

        started = time.perf_counter()
        events = list(read_events(LocalArchive(str(warc))))
        t_read = time.perf_counter() - started
        pages = [e.page for e in events if e.page is not None]

        counts = Counts()
        started = time.perf_counter()
        passed = [p for p in pages if _passes_prefilters(p, options, matcher, counts)]
        t_filter = time.perf_counter() - started

        started = time.perf_counter()
        prepared = [a for p in passed if (a := _extract_and_tag(p, options, tagger, matcher, counts)) is not None]
        t_extract = time.perf_counter() - started

        db = open_db(tmp / "store.db")
        started = time.perf_counter()
        for row in prepared:
            writes.store_article(db, *row)
        t_store = time.perf_counter() - started
        db.close()

        print("\nstages, one core (this machine is shared and loaded: figures are lower bounds):")
        print(f"  read     {records / t_read:10,.0f} records/s   ({size_mb / t_read:.1f} MB/s of gzip WARC)")
        print(f"  filter   {len(pages) / t_filter:10,.0f} pages/s     ({len(passed)} of {len(pages)} passed,"
              f" {len(passed) / len(pages):.1%})")
        print(f"  extract  {len(passed) / t_extract:10,.1f} pages/s     (extraction + tagging;"
              f" {len(prepared)} kept after the text filters)")
        print(f"  store    {len(prepared) / t_store:10,.1f} articles/s")

        engine = InlineEngine()
        db = open_db(config.db_path)
        started = time.perf_counter()
        summary = run_backfill(db, [str(warc)], options, engine, store_target=str(config.db_path))
        t_all = time.perf_counter() - started
        db.close()
        print(f"\nwhole backfill, --workers 1: {records / t_all:,.0f} records/s ({t_all:.1f}s;"
              f" stored {summary.counts.stored}, extracted {summary.counts.extracted})")
        if args.workers > 1:
            parts = []
            for i in range(args.workers):  # files are the unit of parallelism: one copy per worker
                part = tmp / f"part-{i}.warc.gz"
                part.write_bytes(warc.read_bytes())
                parts.append(str(part))
            pooled = tmp / "pool.db"
            db = open_db(pooled)
            engine = ProcessPoolEngine(args.workers)
            started = time.perf_counter()
            try:
                summary = run_backfill(db, parts, options, engine, store_target=str(pooled))
            finally:
                engine.close()
            t_pool = time.perf_counter() - started
            db.close()
            print(f"whole backfill, --workers {args.workers} ({args.workers} files): "
                  f"{records * args.workers / t_pool:,.0f} records/s ({t_pool:.1f}s, incl. starting the pool)")

        estimate(records / t_read, len(pages) / t_filter, len(passed) / len(pages), len(passed) / t_extract,
                 size_mb / args.n)


def estimate(read_rate: float, filter_rate: float, pass_share: float, extract_rate: float,
             mb_per_page: float) -> None:
    """Cores and hours for one month of CC-NEWS, from the per-core rates measured."""
    pages = ARTICLES_PER_MONTH
    records = pages * RECORDS_PER_ARTICLE
    read_s = records / read_rate
    filter_s = pages / filter_rate
    extract_s = pages * pass_share / extract_rate
    total_s = read_s + filter_s + extract_s
    core_hours = total_s / 3600
    files = pages * mb_per_page / WARC_FILE_MB
    print("\nestimate, one month of CC-NEWS:")
    print(f"  pages        {pages:,.0f} (1.35e9 articles / 117 months, Infini-News arXiv 2605.18337)")
    print(f"  records      {records:,.0f} (request + response per page, commoncrawl/news-crawl crawler.flux)")
    print(f"  read         {records:,.0f} / {read_rate:,.0f} records/s = {read_s / 3600:,.1f} core-hours")
    print(f"  filter       {pages:,.0f} / {filter_rate:,.0f} pages/s = {filter_s / 3600:,.1f} core-hours")
    print(f"  extract+tag  {pages:,.0f} x {pass_share:.1%} passing / {extract_rate:,.1f} pages/s"
          f" = {extract_s / 3600:,.1f} core-hours")
    print(f"  total        {core_hours:,.1f} core-hours; on 16 cores {core_hours / 16:,.1f} h, on 64 cores"
          f" {core_hours / 64:,.1f} h")
    print(f"  files        ~{files:,.0f} WARC files of {WARC_FILE_MB} MB at {mb_per_page * 1000:.1f} kB a page"
          " (the unit of parallelism: more files than cores keeps every core busy)")


def _config_keep_any() -> list[str]:
    import tomllib

    return tomllib.loads((ROOT / "config.toml").read_text(encoding="utf-8"))["backfill"]["keep_any"]


if __name__ == "__main__":
    main()

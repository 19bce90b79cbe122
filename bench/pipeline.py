"""Benchmark one crawl cycle end to end: N synthetic article pages served on loopback.

Prints articles/s, CPU seconds per article for the whole crawl (fetch + extract +
tag + store) next to trafilatura's own extraction time per article on the same
pages (with its defaults, and as the extraction stage calls it), their ratios,
and the peak RSS. Run with --n 1000 and --n 10000 to see
whether memory stays flat as N grows.

    .venv/bin/python bench/pipeline.py --n 1000
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.synthetic_site import article_html, start_site  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="number of articles (default 1000)")
    parser.add_argument("--feeds", type=int, default=10, help="feeds the articles are spread over")
    parser.add_argument("--baseline-sample", type=int, default=300,
                        help="pages on which trafilatura alone is timed (default 300)")
    args = parser.parse_args()
    per_feed = max(1, args.n // args.feeds)
    total = per_feed * args.feeds

    import trafilatura

    from monitor.config import config_from_dict
    from monitor.crawl import run_crawl
    from pipelines.tagging import Tagger
    from storage import open_db

    process, base = start_site(per_feed)
    try:
        with tempfile.TemporaryDirectory() as folder:
            config = config_from_dict({
                "crawl": {"allow_private_addresses": True, "per_host_delay": 0, "per_host_concurrency": 2,
                          "article_concurrency": 8},
                "sources": [{"name": f"feed-{i}", "kind": "feed", "url": f"{base}/feed/{i}", "max_items": per_feed}
                            for i in range(args.feeds)],
            }, path=None, base_dir=Path(folder))
            tagger = Tagger.load()
            tagger.tag("warm up the E-7 visa pipelines with 3,000 workers in 2024", "en")
            db = open_db(Path(folder) / "bench.db")
            cpu0, wall0 = time.process_time(), time.perf_counter()
            summary = run_crawl(config, db, tagger)
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
            stored = db.execute("SELECT count(*) FROM articles").fetchone()[0]
            db.close()
    finally:
        process.terminate()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    from pipelines.extract import extract_article

    sample = min(args.baseline_sample, total)
    pages = [article_html(i) for i in range(sample)]
    cpu1 = time.process_time()
    for page in pages:
        trafilatura.extract(page)
    baseline = (time.process_time() - cpu1) / sample
    cpu2 = time.process_time()
    for page in pages:
        extract_article(page, metadata=False)  # as the crawl calls it for feed items with title and date
    stage = (time.process_time() - cpu2) / sample

    per_article = cpu / max(stored, 1)
    print(f"articles: {total} listed, {stored} stored, {summary.sources_failed} sources failed")
    print(f"wall: {wall:.1f} s  ->  {stored / wall:.1f} articles/s")
    print(f"CPU per article, whole crawl:       {per_article * 1000:.2f} ms")
    print(f"CPU per article, trafilatura alone: {baseline * 1000:.2f} ms with its defaults, "
          f"{stage * 1000:.2f} ms as the extraction stage runs it  (on {sample} of the same pages)")
    print(f"ratio crawl / trafilatura:          {per_article / baseline:.2f} (defaults), "
          f"{per_article / stage:.2f} (extraction stage)")
    print(f"peak RSS: {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()

"""`monitor backfill`: WARC files the tests write with warcio (the demo site's visa news in English, Korean
and Japanese, off-topic news, other records and broken ones) read into a real SQLite file; a listing and
a file served over HTTP on 127.0.0.1; resume, re-runs, filters, deduplication; a real Dask cluster.
On a real PostgreSQL too: resume and dedup, a process pool and Dask clusters whose workers store their
chunks and move the ledger themselves."""

from __future__ import annotations

import gzip
import io
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from monitor.backfill import (
    BackfillOptions,
    InlineEngine,
    ProcessPoolEngine,
    make_options,
    run_backfill,
)
from monitor.cli import main
from monitor.config import config_from_dict
from pipelines.extract import extract_article
from pipelines.tagging import Tagger
from pipelines.warc import KeywordMatcher, LocalArchive, read_events
from storage import open_db, writes
from storage.backfill import ledger_rows

DEMO = Path(__file__).resolve().parents[1] / "monitor" / "demo_site"
VISA_PAGES = {
    "https://news.example.com/articles/en-ca-express-entry.html": "articles/en-ca-express-entry.html",
    "https://news.example.com/articles/en-eu-blue-card.html": "articles/en-eu-blue-card.html",
    "https://news.example.com/articles/en-us-h1b-fee.html": "articles/en-us-h1b-fee.html",
    "https://www.gov.example.uk/government/news/en-uk-skilled-worker.html": "government/news/en-uk-skilled-worker.html",
    "https://www.korea.example.kr/articles/ko-e7-professional-visas.html": "articles/ko-e7-professional-visas.html",
    "https://www.korea.example.kr/articles/ko-eps-e9-quota.html": "articles/ko-eps-e9-quota.html",
    "https://www.korea.example.kr/articles/ko-top-tier-visa.html": "articles/ko-top-tier-visa.html",
    "https://www.moj.example.jp/ja/press/1021.html": "ja/press/1021.html",
    "https://www.moj.example.jp/ja/press/1024.html": "ja/press/1024.html",
}
LANG_OF = {url: ("ko" if "korea" in url else "ja" if ".jp/" in url else "en") for url in VISA_PAGES}
OFF_TOPIC = {
    f"https://sports.example.com/story/{i}": (
        f"<html lang='en'><head><title>Local team wins match {i}</title></head><body><nav>Home Sport</nav>"
        f"<article><h1>Local team wins match {i}</h1>"
        + "".join(f"<p>The home side scored late in the second half of game {i}, paragraph {j}, and the crowd"
                  " cheered as the season's title race tightened with three rounds left to play.</p>"
                  for j in range(6))
        + "</article></body></html>"
    ) for i in range(5)
}
OFF_TOPIC["https://news.example.com/articles/en-sport-athletics.html"] = (
    DEMO / "articles/en-sport-athletics.html").read_text(encoding="utf-8")


def visa_html(url: str) -> str:
    return (DEMO / VISA_PAGES[url]).read_text(encoding="utf-8")


def _response(writer: WARCWriter, url: str, body: bytes, content_type: str = "text/html; charset=utf-8",
              status: str = "200 OK", date: str = "2025-10-01T00:00:00Z"):
    headers = StatusAndHeaders(status, [("Content-Type", content_type)], protocol="HTTP/1.1")
    return writer.create_warc_record(url, "response", payload=io.BytesIO(body), http_headers=headers,
                                     warc_headers_dict={"WARC-Date": date})


def write_warc(path: Path, *, compress: bool = True, broken: bool = True) -> int:
    """A CC-NEWS-like WARC: every visa page and off-topic page (a request record before each response), an
    image, a 404, and (with `broken`) a response without an HTTP status line and a gzip member whose
    bytes were damaged. Returns how many records a reader meets (a damaged stretch counts one)."""
    buffer = io.BytesIO()
    writer = WARCWriter(buffer, gzip=compress)
    records = 0
    pages = [*((url, visa_html(url)) for url in VISA_PAGES), *OFF_TOPIC.items()]
    pages.sort(key=lambda page: page[0][::-1])  # visa news and the rest interleaved
    for index, (url, html) in enumerate(pages):
        writer.write_record(writer.create_warc_record(url, "request", payload=io.BytesIO(b"GET / HTTP/1.1\r\n\r\n")))
        writer.write_record(_response(writer, url, html.encode("utf-8")))
        records += 2
        if index == 3:
            writer.write_record(_response(writer, "https://news.example.com/logo.png", b"\x89PNG....", "image/png"))
            writer.write_record(_response(writer, "https://news.example.com/gone", b"<html>gone</html>",
                                          status="404 Not Found"))
            records += 2
        if broken and index == 6:
            payload = b"garbage, no status line\r\n\r\n<html>x</html>"
            raw = (b"WARC/1.0\r\nWARC-Type: response\r\nWARC-Target-URI: https://news.example.com/bad\r\n"
                   b"WARC-Date: 2025-10-01T00:00:00Z\r\nWARC-Record-ID: <urn:uuid:bad-1>\r\n"
                   b"Content-Type: application/http; msgtype=response\r\n"
                   b"Content-Length: %d\r\n\r\n" % len(payload)) + payload + b"\r\n\r\n"
            buffer.write(gzip.compress(raw) if compress else raw)
            records += 1
        if broken and index == 9:
            start = buffer.tell()
            writer.write_record(_response(writer, "https://news.example.com/damaged", b"<html>" + b"x" * 3000))
            damaged = bytearray(buffer.getbuffer()[start:])
            for i in range(40, 90):
                damaged[i] ^= 0x5A
            buffer.seek(start)
            buffer.truncate()
            buffer.write(bytes(damaged))
            records += 1
    path.write_bytes(buffer.getvalue())
    return records


@pytest.fixture(scope="module")
def tagger() -> Tagger:
    return Tagger.load()


@pytest.fixture
def config(tmp_path):
    return config_from_dict({"storage": {"path": str(tmp_path / "monitor.db")},
                             "backfill": {"keep_any": ["visa", "immigra", "비자", "在留", "外国人"]}},
                            path=None, base_dir=tmp_path)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_config(request, config):
    """`config` with the store in a SQLite file or in a new PostgreSQL database."""
    if request.param == "postgresql":
        config.db_path = request.getfixturevalue("postgres_url")
    return config


def backfill(config, tagger, files, engine=None, **filters):
    """run_backfill as the command runs it; returns (summary, db)."""
    options = make_options(config, tagger, **filters)
    db = open_db(config.db_path)
    summary = run_backfill(db, [str(f) for f in files], options, engine or InlineEngine(),
                           store_target=str(config.db_path))
    return summary, db


def stored(db) -> dict[str, tuple[str, str]]:
    return {url: (lang, text) for url, lang, text in db.execute("SELECT url, lang, text FROM articles")}


def test_visa_news_in_three_languages_is_stored_and_every_other_record_accounted_for(tmp_path, config, tagger):
    warc = tmp_path / "CC-NEWS-1.warc.gz"
    records = write_warc(warc)
    summary, db = backfill(config, tagger, [warc], keep_filter=True)
    c = summary.counts
    assert set(stored(db)) == set(VISA_PAGES)
    assert {lang for lang, _ in stored(db).values()} == {"en", "ko", "ja"}
    assert c.records == records and c.broken == 2 and c.stored == len(VISA_PAGES)
    assert c.pages == len(VISA_PAGES) + len(OFF_TOPIC)  # requests, the PNG and the 404 are not pages
    assert c.filtered_keyword == len(OFF_TOPIC)
    # Off-topic pages never reach extraction, but for the demo's sports page, whose menu links to "Visas and
    # permits": extracted, its article text names no keyword, so it is dropped then.
    assert c.extracted == len(VISA_PAGES) + 1
    # The crawl's extraction and tagging: the same text as extract_article, visa mentions stored with it.
    url = "https://www.korea.example.kr/articles/ko-top-tier-visa.html"
    assert stored(db)[url][1] == extract_article(visa_html(url), url).text
    visas = {row[0] for row in db.execute("SELECT DISTINCT label FROM mentions WHERE kind = 'visa'")}
    assert {"KR:E-7", "US:H-1B"} <= visas, visas
    source, published = db.execute("SELECT source, published_at FROM articles WHERE url = ?", [url]).fetchone()
    assert source == "backfill:www.korea.example.kr" and published.startswith("2025-04-02")
    row = ledger_rows(db, [str(warc)])[str(warc)]
    assert row["finished"] == 1 and row["records_read"] == records and row["stored"] == len(VISA_PAGES)


def test_without_keep_filter_every_page_with_article_text_is_stored(tmp_path, config, tagger):
    warc = tmp_path / "plain.warc"
    write_warc(warc, compress=False)
    summary, db = backfill(config, tagger, [warc])
    assert set(stored(db)) == set(VISA_PAGES) | set(OFF_TOPIC)
    # Uncompressed, the damaged bytes garble a WARC header line: warcio reads that record as another type.
    assert summary.counts.broken >= 1 and summary.counts.records == summary.counts.records


def test_a_rerun_skips_finished_files_and_a_stopped_file_resumes_where_it_was(tmp_path, store_config, tagger):
    config = store_config
    warc = tmp_path / "a.warc.gz"
    records = write_warc(warc)
    options = make_options(config, tagger, keep_filter=True, chunk_records=7)
    db = open_db(config.db_path)
    chunks = 0

    def stop_after_two_chunks(summary):
        nonlocal chunks
        chunks += 1
        if chunks == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_backfill(db, [str(warc)], options, InlineEngine(), store_target=str(config.db_path),
                     progress=stop_after_two_chunks)
    row = ledger_rows(db, [str(warc)])[str(warc)]
    assert row["records_read"] == 14 and not row["finished"] and row["next_offset"] > 0
    first_stored = db.execute("SELECT count(*) FROM articles").fetchone()[0]

    resumed = run_backfill(db, [str(warc)], options, InlineEngine(), store_target=str(config.db_path))
    assert resumed.counts.records == records - 14  # nothing read twice
    assert resumed.counts.stored + first_stored == len(VISA_PAGES) == len(stored(db))
    assert ledger_rows(db, [str(warc)])[str(warc)]["records_read"] == records

    again = run_backfill(db, [str(warc)], options, InlineEngine(), store_target=str(config.db_path))
    assert again.files_skipped == 1 and again.counts.records == 0


def test_language_host_and_date_filters(tmp_path, config, tagger):
    warc = tmp_path / "f.warc.gz"
    write_warc(warc, broken=False)
    summary, db = backfill(config, tagger, [warc], langs=["ko"])
    assert {lang for lang, _ in stored(db).values()} == {"ko"} and summary.counts.filtered_lang > 0
    db.close()
    config.db_path = config.db_path.with_name(config.db_path.name + "x")

    summary, db = backfill(config, tagger, [warc], hosts=["*.example.jp", "www.gov.example.uk"])
    assert set(stored(db)) == {u for u in VISA_PAGES if ".jp/" in u or "gov.example.uk" in u}
    assert summary.counts.filtered_host == summary.counts.pages - len(stored(db))
    db.close()
    config.db_path = config.db_path.with_name(config.db_path.name + "x")

    summary, db = backfill(config, tagger, [warc], keep_filter=True, since="2025-04-01", until="2025-07-31")
    dates = [row[0] for row in db.execute("SELECT published_at FROM articles")]
    assert dates and all("2025-03-31" < d[:10] <= "2025-07-31" for d in dates), dates
    assert summary.counts.filtered_date >= 4  # Jan, Mar and Sep pages (and Dec 2024)
    db.close()
    config.db_path = config.db_path.with_name(config.db_path.name + "x")

    # Pages crawled before --since are dropped before extraction: a page is published before it is crawled.
    summary, db = backfill(config, tagger, [warc], since="2026-01-01")
    assert summary.counts.extracted == 0 and summary.counts.filtered_date == summary.counts.pages


def test_pages_already_stored_are_skipped_before_extraction(tmp_path, store_config, tagger):
    config = store_config
    warc = tmp_path / "d.warc.gz"
    write_warc(warc, broken=False)
    db = open_db(config.db_path)
    url = "https://news.example.com/articles/en-us-h1b-fee.html"
    writes.store_article(db, {"url": url, "title": "H-1B fee", "text": "stored by the crawl", "source": "feed",
                              "content_hash": writes.content_hash("H-1B fee", "stored by the crawl")}, [], [])
    db.close()
    summary, db = backfill(config, tagger, [warc], keep_filter=True)
    assert summary.counts.known == 1 and summary.counts.extracted == len(VISA_PAGES) - 1 + 1  # + the sports page
    assert db.execute("SELECT text FROM articles WHERE url = ?", [url]).fetchone()[0] == "stored by the crawl"
    assert len(stored(db)) == len(VISA_PAGES)


def test_keyword_matcher_is_case_insensitive_but_codes_keep_their_case_and_stand_alone():
    matcher = KeywordMatcher(["visa", "비자", "h-1b visa"], ["E-7", "H-1B"])
    assert sorted(matcher.folded) == ["visa", "비자"]  # "h-1b visa" contains "visa"
    assert matcher.search(b"<p>New VISA rules</p>") == "visa"
    assert matcher.search("<p>비자 발급</p>".encode()) == "비자"
    assert matcher.search(b"<p>the E-7 route</p>") == "E-7"
    assert matcher.search(b'<div class="col-e-7 type-E-70">') is None


def test_a_damaged_gzip_member_costs_one_record_and_reading_goes_on(tmp_path):
    warc = tmp_path / "x.warc.gz"
    records = write_warc(warc)
    events = list(read_events(LocalArchive(str(warc))))
    assert len(events) == records
    assert sum(e.broken is not None for e in events) == 2
    assert [e.offset for e in events] == sorted(e.offset for e in events)
    # Reading from any record's offset gives the same records from there on.
    middle = events[len(events) // 2]
    again = list(read_events(LocalArchive(str(warc)), middle.offset))
    assert [e.offset for e in again] == [e.offset for e in events[len(events) // 2:]]


class _RangeHandler(BaseHTTPRequestHandler):
    """Serves files of a folder, honouring `Range: bytes=N-` (as S3 and data.commoncrawl.org do)."""

    root: Path
    log: list[str]
    ranges = True

    def do_GET(self) -> None:  # noqa: N802
        path = self.root / self.path.lstrip("/")
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        start = 0
        wanted = self.headers.get("Range")
        self.log.append(f"{self.path} {wanted or ''} {self.headers.get('User-Agent')}".strip())
        if wanted and wanted.startswith("bytes=") and self.ranges:
            start = int(wanted[6:].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:])

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def http_folder(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    handler = type("Handler", (_RangeHandler,), {"root": root, "log": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}", handler.log
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("ranges", [True, False], ids=["server-with-ranges", "server-ignoring-ranges"])
def test_cli_reads_a_warc_paths_gz_listing_of_files_served_over_http(tmp_path, http_folder, ranges, monkeypatch):
    """Later chunks of a file start with `Range: bytes=N-`; a server that answers 200 to it is read past N."""
    root, base, log = http_folder
    monkeypatch.setattr(_RangeHandler, "ranges", ranges)
    folder = root / "crawl-data" / "CC-NEWS" / "2025" / "10"
    folder.mkdir(parents=True)
    write_warc(folder / "CC-NEWS-1.warc.gz")
    write_warc(folder / "CC-NEWS-2.warc.gz", broken=False)  # the same pages again: nothing stored twice
    listing = tmp_path / "warc.paths.gz"
    listing.write_bytes(gzip.compress(b"crawl-data/CC-NEWS/2025/10/CC-NEWS-1.warc.gz\n"
                                      b"crawl-data/CC-NEWS/2025/10/CC-NEWS-2.warc.gz\n"))
    db_path = tmp_path / "cli.db"
    argv = ["--config", str(_config_file(tmp_path)), "--db", str(db_path), "backfill", str(listing),
            "--base-url", base + "/", "--keep-filter", "--workers", "1", "--chunk-records", "10", "--json"]
    assert main(argv) == 0
    db = open_db(db_path)
    assert set(stored(db)) == set(VISA_PAGES)
    assert any("bytes=" in line for line in log)  # later chunks start with a Range request
    assert all(line.endswith("policy-monitor/0.1 (+https://github.com/policy-monitor/policy-monitor)") for line in log)
    files = ledger_rows(db, [f"{base}/crawl-data/CC-NEWS/2025/10/CC-NEWS-{i}.warc.gz" for i in (1, 2)])
    assert len(files) == 2 and all(row["finished"] for row in files.values())
    assert sum(row["known"] for row in files.values()) == len(VISA_PAGES)


def _config_file(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text('[storage]\npath = "monitor.db"\n\n[backfill]\nkeep_any = ["visa", "비자", "在留"]\n',
                    encoding="utf-8")
    return path


@pytest.mark.parametrize("args, message", [
    (["missing.warc.gz"], "no such file"),
    (["{warc}", "--since", "last tuesday"], "not a date"),
    (["{warc}", "--since", "2025-05-01", "--until", "2025-01-01"], "after --until"),
    (["{warc}", "--lang", "english!"], "--lang"),
    (["{warc}", "--workers", "0"], "--workers"),
])
def test_mistakes_give_one_line_and_exit_2(tmp_path, capsys, args, message):
    warc = tmp_path / "ok.warc.gz"
    write_warc(warc, broken=False)
    argv = ["--config", str(_config_file(tmp_path)), "backfill", *[a.format(warc=warc) for a in args]]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("monitor: ") and message in err and err.count("\n") == 1


def _stored_rows(db) -> set[tuple]:
    return set(db.execute("SELECT a.url, a.lang, a.text, a.published_at, count(m.id) FROM articles a"
                          " LEFT JOIN mentions m ON m.article_id = a.id GROUP BY a.id"))


def test_a_local_process_pool_and_a_dask_cluster_store_what_one_process_stores(tmp_path, tagger):
    pytest.importorskip("distributed", reason="Dask is in the `distributed` extra")
    from monitor.backfill import DaskEngine

    files = []
    for i in range(3):
        files.append(tmp_path / f"CC-NEWS-{i}.warc.gz")
        write_warc(files[-1], broken=i == 1)
    results = {}
    for name, make_engine in {"inline": InlineEngine, "pool": lambda: ProcessPoolEngine(2),
                              "dask": lambda: DaskEngine(local_workers=2, processes=True)}.items():
        config = config_from_dict({"storage": {"path": str(tmp_path / f"{name}.db")}}, path=None,
                                  base_dir=tmp_path)
        engine = make_engine()
        try:
            summary, db = backfill(config, tagger, files, engine, keep_filter=True, chunk_records=9)
        finally:
            engine.close()
        results[name] = (_stored_rows(db), summary.counts.records, summary.counts.broken)
        db.close()
    assert len(results["inline"][0]) == len(VISA_PAGES)
    assert results["pool"] == results["inline"] == results["dask"]


def test_options_are_plain_data_a_worker_elsewhere_can_receive(config, tagger):
    import pickle

    options = make_options(config, tagger, keep_filter=True, langs=["en,ko"], hosts=["*.kr"])
    assert isinstance(pickle.loads(pickle.dumps(options)), BackfillOptions)
    assert options.langs == {"en", "ko"} and "visa" in options.keywords and "H-1B" in options.exact_keywords


def test_cli_on_a_dask_scheduler_stores_the_same_and_a_second_file_of_the_same_pages_adds_nothing(
        tmp_path, capsys):
    """`--dask-scheduler ADDRESS`: workers that cannot see the store extract every candidate; the client
    finds the pages it already has when it writes them."""
    distributed = pytest.importorskip("distributed", reason="Dask is in the `distributed` extra")
    first, second = tmp_path / "CC-NEWS-1.warc.gz", tmp_path / "CC-NEWS-2.warc.gz"
    write_warc(first)
    write_warc(second, broken=False)
    db_path = tmp_path / "dask.db"
    # processes=False: two worker threads in this process; the scheduler protocol is the same as remote.
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=":0") as cluster:
        argv = ["--config", str(_config_file(tmp_path)), "--db", str(db_path), "backfill", str(first),
                str(second), "--keep-filter", "--dask-scheduler", cluster.scheduler_address]
        assert main(argv) == 0
    out = capsys.readouterr().out
    assert "files: 2 (2 done" in out and f"stored: {len(VISA_PAGES)};" in out
    assert f"skipped as already stored: {len(VISA_PAGES)}" in out
    assert set(stored(open_db(db_path))) == set(VISA_PAGES)


def test_without_dask_installed_the_dask_options_say_what_to_install(tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "distributed", None)  # `import distributed` now fails
    warc = tmp_path / "ok.warc.gz"
    write_warc(warc, broken=False)
    assert main(["--config", str(_config_file(tmp_path)), "backfill", str(warc), "--dask-local", "2"]) == 2
    err = capsys.readouterr().err
    assert err == "monitor: Dask is not installed: pip install 'policy-monitor[distributed]'\n"


def test_json_summary_for_scripts(tmp_path, capsys):
    import json

    warc = tmp_path / "j.warc.gz"
    records = write_warc(warc)
    argv = ["--config", str(_config_file(tmp_path)), "--db", str(tmp_path / "j.db"), "backfill", str(warc),
            "--keep-filter", "--workers", "1", "--json"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["records"] == records and summary["stored"] == len(VISA_PAGES) and summary["broken"] == 2
    assert summary["files_done"] == 1 and summary["filtered_keyword"] == len(OFF_TOPIC)


def _records_read(target: Path | str) -> tuple | None:
    """The ledger's (records_read,) of the one file being backfilled into `target`, read without waiting."""
    import sqlite3

    if isinstance(target, str):
        import psycopg

        try:
            with psycopg.connect(target) as conn:
                return conn.execute("SELECT records_read FROM backfill_files").fetchone()
        except psycopg.Error:
            return None
    try:
        with sqlite3.connect(f"file:{target}?mode=ro", uri=True) as conn:
            return conn.execute("SELECT records_read FROM backfill_files").fetchone()
    except sqlite3.Error:
        return None


class _SlowHandler(_RangeHandler):
    """Sends files in small pieces with pauses: a backfill reading them takes a few seconds."""

    def do_GET(self) -> None:  # noqa: N802
        path = self.root / self.path.lstrip("/")
        data = path.read_bytes()
        start = int(self.headers.get("Range", "bytes=0-")[6:].split("-")[0])
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        for piece in range(start, len(data), 2048):
            try:
                self.wfile.write(data[piece : piece + 2048])
                self.wfile.flush()
            except OSError:  # the reader was killed
                return
            time.sleep(0.02)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_backfill_killed_mid_file_resumes_from_the_ledger_and_stores_nothing_twice(tmp_path, request, backend):
    """SIGKILL mid-file; on PostgreSQL the chunks are stored by the worker (`--workers 1`: in the process)."""
    import json
    import signal
    import subprocess
    import sys

    root = tmp_path / "served"
    root.mkdir()
    records = write_warc(root / "slow.warc.gz")
    handler = type("Handler", (_SlowHandler,), {"root": root, "log": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/slow.warc.gz"
    db_path = request.getfixturevalue("postgres_url") if backend == "postgresql" else tmp_path / "killed.db"
    argv = [sys.executable, "-m", "monitor", "--config", str(_config_file(tmp_path)), "--db", str(db_path),
            "backfill", url, "--keep-filter", "--workers", "1", "--chunk-records", "4", "--json"]
    try:
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        read_before_kill = 0
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
            row = _records_read(db_path)
            if row and row[0] >= 8:
                process.send_signal(signal.SIGKILL)
                read_before_kill = row[0]
                break
        process.wait(30)
        assert process.returncode == -signal.SIGKILL, "the backfill ended before it could be killed"
        assert 8 <= read_before_kill < records

        resumed = subprocess.run(argv, capture_output=True, text=True, timeout=300)
        assert resumed.returncode == 0, resumed.stderr
        summary = json.loads(resumed.stdout)
        # The resumed run starts at the ledger's offset: it reads at most the chunk that was in flight again.
        assert records - read_before_kill - 4 <= summary["records"] <= records - read_before_kill
    finally:
        server.shutdown()
        server.server_close()
    db = open_db(db_path)
    assert set(stored(db)) == set(VISA_PAGES)
    assert db.execute("SELECT count(*) FROM articles").fetchone()[0] == len(VISA_PAGES)
    row = ledger_rows(db, [url])[url]
    # (A kill between a chunk's writes and its ledger row leaves articles the resumed run finds stored.)
    assert row["finished"] and row["stored"] + row["known"] >= len(VISA_PAGES) >= row["stored"]


def test_keywords_are_found_in_pages_in_legacy_korean_and_japanese_encodings():
    from pipelines.warc import Page

    matcher = KeywordMatcher(["비자", "在留"])
    korean = "<html><body><p>외국인 근로자 비자 제도</p></body></html>".encode("euc-kr")
    japanese = "<html><body><p>在留資格の見直し</p></body></html>".encode("shift_jis")
    assert matcher.search_page(Page("https://a.kr/", None, 200, "text/html; charset=EUC-KR", korean)) == "비자"
    assert matcher.search_page(Page("https://a.jp/", None, 200, "text/html; charset=Shift_JIS", japanese)) == "在留"
    # undeclared: not UTF-8, so the charset is detected
    paragraphs = "<p>외국인 근로자 비자 제도가 바뀝니다.</p>" * 20
    undeclared = f"<html><body>{paragraphs}</body></html>".encode("euc-kr")
    assert matcher.search_page(Page("https://a.kr/", None, 200, "text/html", undeclared)) == "비자"


# ------------------------------------------------------------------------------------------ on PostgreSQL


def test_on_postgresql_a_worker_stores_its_chunk_and_moves_the_ledger_itself(tmp_path, config, tagger,
                                                                            postgres_url):
    """What lets workers on several machines write to one database: `process_chunk` with `store` writes the
    chunk (one transaction, deduplicated) and the ledger, and hands back counts only."""
    from monitor.backfill import ChunkTask, process_chunk

    warc = tmp_path / "w.warc.gz"
    records = write_warc(warc, broken=False)
    config.db_path = postgres_url
    options = make_options(config, tagger, keep_filter=True, chunk_records=records)
    db = open_db(postgres_url)
    ledger_file = str(warc)
    from storage.backfill import start_file

    start_file(db, ledger_file)
    result = process_chunk(ChunkTask(ledger_file, 0, 0), options, postgres_url, store=True)
    assert result.stored_by_worker and result.articles == [] and result.finished
    assert result.counts.stored == len(VISA_PAGES) and set(stored(db)) == set(VISA_PAGES)
    row = ledger_rows(db, [ledger_file])[ledger_file]
    assert row["finished"] == 1 and row["records_read"] == records and row["stored"] == len(VISA_PAGES)

    # The same pages again (a second file of the same news): skipped before extraction, nothing stored twice.
    second = tmp_path / "w2.warc.gz"
    write_warc(second, broken=False)
    start_file(db, str(second))
    again = process_chunk(ChunkTask(str(second), 0, 0), options, postgres_url, store=True)
    assert again.counts.stored == 0 and again.counts.known == len(VISA_PAGES) and again.counts.extracted == 1
    assert db.execute("SELECT count(*) FROM articles").fetchone()[0] == len(VISA_PAGES)
    assert ledger_rows(db, [str(second)])[str(second)]["known"] == len(VISA_PAGES)
    db.close()


def test_store_articles_loads_a_chunk_in_one_transaction_with_store_articles_dedup(tmp_path, store_config):
    """The bulk load keeps `store_article`'s promises: a URL or a full text already stored (in the database or
    earlier in the same chunk) is not stored again; a failure stores nothing of the chunk."""
    db = open_db(store_config.db_path)
    text = "A visa rule changes next year for engineers and nurses, the ministry said. " * 4

    def article(url: str, body: str = text) -> tuple:
        return ({"url": url, "title": "Visa", "text": body, "source": "backfill:x", "text_origin": "page",
                 "content_hash": writes.content_hash("Visa", body)}, [], [], [url])

    writes.store_article(db, *article("https://x.example/stored"))
    results = writes.store_articles(db, [article("https://x.example/stored", "other words " * 30),
                                         article("https://x.example/new", "fresh text of its own " * 20),
                                         article("https://x.example/same-text"),
                                         article("https://x.example/new", "fresh text of its own " * 20)])
    assert [new for _, new in results] == [False, True, False, False]
    assert results[1][0] == results[3][0]  # dedup within the chunk too
    assert db.execute("SELECT count(*) FROM articles").fetchone()[0] == 2
    bad = (article("https://x.example/bad", "a text of its own " * 20)[0], [{"label": "no kind"}], [], [])
    with pytest.raises(KeyError):  # the last article's tags fail: the whole chunk is rolled back
        writes.store_articles(db, [article("https://x.example/lost", "never stored " * 30), bad])
    assert db.execute("SELECT count(*) FROM articles").fetchone()[0] == 2
    db.close()


def test_on_postgresql_the_pool_and_dask_clusters_store_what_one_process_stores(tmp_path, tagger, postgres_url,
                                                                                 capsys):
    """`monitor --db postgresql://... backfill` with a local pool, `--dask-local 2` and `--dask-scheduler`
    (a cluster whose two workers are threads of one process: one handle each): the same rows as an inline
    backfill into SQLite, a second file of the same pages adds nothing, a re-run skips every file."""
    pytest.importorskip("distributed", reason="Dask is in the `distributed` extra")
    import distributed

    from tests.postgres_server import create_database, drop_database

    files = [tmp_path / "CC-NEWS-1.warc.gz", tmp_path / "CC-NEWS-2.warc.gz"]
    write_warc(files[0])
    write_warc(files[1], broken=False)  # the same news again
    sqlite_config = config_from_dict({"storage": {"path": str(tmp_path / "inline.db")}}, path=None,
                                     base_dir=tmp_path)
    _, db = backfill(sqlite_config, tagger, files[:1], keep_filter=True)
    expected = _stored_rows(db)
    db.close()
    assert len(expected) == len(VISA_PAGES)

    def run(url: str, *engine: str) -> dict:
        import json

        argv = ["--config", str(_config_file(tmp_path)), "--db", url, "backfill", *map(str, files),
                "--keep-filter", "--chunk-records", "9", "--json", *engine]
        assert main(argv) == 0, capsys.readouterr().err
        return json.loads(capsys.readouterr().out)

    other = create_database()
    try:
        with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                      dashboard_address=":0") as cluster:
            engines = {postgres_url: ["--workers", "2"], other: ["--dask-local", "2"]}
            for url, engine in engines.items():
                summary = run(url, *engine)
                assert summary["files_done"] == 2 and summary["stored"] == len(VISA_PAGES), summary
                assert summary["known"] == len(VISA_PAGES)  # the second file's pages
                db = open_db(url)
                assert _stored_rows(db) == expected
                rows = ledger_rows(db, [str(f.resolve()) for f in files])
                assert all(row["finished"] for row in rows.values()) and len(rows) == 2
                assert sum(row["stored"] for row in rows.values()) == len(VISA_PAGES)
                db.close()
                again = run(url, *engine)
                assert again["files_skipped"] == 2 and again["records"] == 0
            # A scheduler's workers (as on other machines): they reach the database by its URL themselves.
            db = open_db(other)
            db.execute("DELETE FROM backfill_files")
            db.execute("DELETE FROM articles")
            db.close()
            summary = run(other, "--dask-scheduler", cluster.scheduler_address)
            assert summary["stored"] == len(VISA_PAGES) and summary["known"] == len(VISA_PAGES), summary
            db = open_db(other)
            assert _stored_rows(db) == expected
            db.close()
    finally:
        drop_database(other)


def test_on_postgresql_dask_workers_hand_back_counts_not_rows(tmp_path, config, tagger, postgres_url):
    """run_backfill on PostgreSQL: every chunk a Dask worker returns was stored by that worker."""
    pytest.importorskip("distributed", reason="Dask is in the `distributed` extra")
    from monitor.backfill import DaskEngine

    files = [tmp_path / f"CC-NEWS-{i}.warc.gz" for i in range(2)]
    for file in files:
        write_warc(file, broken=False)
    config.db_path = postgres_url
    engine = DaskEngine(local_workers=2, processes=True)
    returned = []
    wait_any = engine.wait_any

    def watching(futures):
        done, pending = wait_any(futures)
        returned.extend(future.result() for future in done)
        return done, pending

    engine.wait_any = watching
    try:
        summary, db = backfill(config, tagger, files, engine, keep_filter=True, chunk_records=9)
    finally:
        engine.close()
    assert len(returned) > 4 and all(r.stored_by_worker and r.articles == [] for r in returned)
    assert summary.counts.stored == len(VISA_PAGES) == len(stored(db))
    db.close()


def test_a_worker_whose_database_connection_broke_reconnects_for_its_next_chunk(tmp_path, config, tagger,
                                                                               postgres_url):
    """A Dask worker outlives connections (a database restart, a backfill that ended): the chunk that meets a
    dead connection fails (its file is read again from the ledger's offset), the next one opens a new one."""
    import psycopg

    from monitor.backfill import ChunkTask, process_chunk
    from storage import StorageError
    from storage.backfill import start_file

    warc = tmp_path / "r.warc.gz"
    write_warc(warc, broken=False)
    config.db_path = postgres_url
    options = make_options(config, tagger, keep_filter=True)
    db = open_db(postgres_url)
    start_file(db, str(warc))
    assert process_chunk(ChunkTask(str(warc), 0, 0), options, postgres_url, store=True).counts.stored == 9
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                      " WHERE datname = current_database() AND pid <> pg_backend_pid()")
    with pytest.raises(StorageError):
        process_chunk(ChunkTask(str(warc), 0, 0), options, postgres_url, store=True)
    again = process_chunk(ChunkTask(str(warc), 0, 0), options, postgres_url, store=True)
    assert again.stored_by_worker and again.counts.known == len(VISA_PAGES) and again.counts.stored == 0

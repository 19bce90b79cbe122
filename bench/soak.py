"""Soak: `monitor run` against the demo site with every source due each second, for minutes or hours.

    .venv/bin/python -m bench.soak                 # 10 minutes, a sample each minute
    .venv/bin/python -m bench.soak --minutes 60

The daemon runs as its own process (as in production). Meanwhile a reader thread
queries the database every 0.2 s, as the web UI does, so the WAL is read constantly.
Each minute prints the daemon's resident memory, its open file descriptors, the WAL
size and the crawl cycles done so far. At the end: memory and descriptors must stay
flat (after the first sample, which includes start-up) and the WAL bounded; the
script exits 1 when they did not.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from monitor.demo_server import BASE_PLACEHOLDER, SITE_DIR, serve_demo_site
from storage import open_readonly
from storage.maintenance import wal_size

RSS_GROWTH_LIMIT = 0.25
"""Largest growth of RSS from the second sample to the last one that still counts as flat."""
WAL_LIMIT = 64_000_000
"""Largest WAL size that counts as bounded."""


def soak_config(base_url: str, folder: Path, every: str) -> Path:
    """Write a config.toml crawling every demo source each `every` into `folder`/soak.db."""
    sources = (SITE_DIR / "sources.toml").read_text(encoding="utf-8").replace(BASE_PLACEHOLDER, base_url)
    sources = sources.replace("[[sources]]\n", f'[[sources]]\nevery = "{every}"\n')
    head = (
        f'[storage]\npath = "{folder / "soak.db"}"\n\n'
        '[crawl]\nallow_private_addresses = true\nper_host_delay = 0\nper_host_concurrency = 4\ntimeout = 10\n\n'
        f'[email]\noutbox = "{folder / "outbox"}"\n\n'
    )
    path = folder / "config.toml"
    path.write_text(head + sources, encoding="utf-8")
    return path


class CycleCounter(threading.Thread):
    """Reads the daemon's JSON log lines: counts crawl cycles and keeps warnings and errors."""

    def __init__(self, stream: object) -> None:
        super().__init__(daemon=True)
        self.stream = stream
        self.cycles = 0
        self.failed = 0
        self.problems: list[str] = []

    def run(self) -> None:
        for line in self.stream:  # type: ignore[attr-defined]
            try:
                entry = json.loads(line)
            except ValueError:
                self.problems.append(line.strip())
                continue
            if entry.get("event") == "crawl":
                self.cycles += 1
                self.failed += not entry.get("ok")
            elif entry.get("level") in ("warning", "error", "critical"):
                self.problems.append(entry.get("message", line.strip()))


def web_ui_reader(db_path: Path, stop: threading.Event, counter: list[int]) -> None:
    """Query the database like a constantly used web UI: short read transactions, back to back."""
    while not stop.is_set() and not db_path.exists():
        time.sleep(0.1)
    conn = None
    while not stop.is_set():
        try:
            conn = conn or open_readonly(db_path)
            conn.execute("SELECT count(*), max(id) FROM articles").fetchone()
            conn.execute("SELECT count(*) FROM fetches").fetchone()
            counter[0] += 1
        except Exception:  # noqa: BLE001 - the schema may not exist yet at start-up
            conn = None
        stop.wait(0.2)
    if conn is not None:
        conn.close()


def process_sample(pid: int) -> tuple[float, int]:
    """(resident memory in MB, open file descriptors) of process `pid`."""
    rss_kb = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss_kb = int(line.split()[1])
    return rss_kb / 1024, len(os.listdir(f"/proc/{pid}/fd"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long to run (default 10)")
    parser.add_argument("--sample", type=float, default=60.0, help="seconds between samples (default 60)")
    parser.add_argument("--every", default="1s", help="each source's interval (default 1s)")
    parser.add_argument("--folder", help="where the database goes (default: a temporary folder)")
    args = parser.parse_args(argv)

    folder = Path(args.folder or tempfile.mkdtemp(prefix="soak-"))
    folder.mkdir(parents=True, exist_ok=True)
    with serve_demo_site() as server:
        config = soak_config(server.base_url, folder, args.every)
        db_path = folder / "soak.db"
        daemon = subprocess.Popen([sys.executable, "-m", "monitor", "--config", str(config), "run",
                                   "--log-format", "json"], stderr=subprocess.PIPE, text=True)
        counter = CycleCounter(daemon.stderr)
        counter.start()
        stop = threading.Event()
        reads = [0]
        reader = threading.Thread(target=web_ui_reader, args=(db_path, stop, reads), daemon=True)
        reader.start()
        print(f"soak: monitor run (PID {daemon.pid}) against the demo site, every source every {args.every},"
              f" {args.minutes:g} minutes; database {db_path}", flush=True)
        print(f"{'minute':>7} {'RSS MB':>8} {'fds':>5} {'WAL KB':>8} {'DB KB':>8} {'cycles':>8} {'failed':>7}"
              f" {'UI reads':>9}", flush=True)
        rows = []
        started = time.monotonic()
        deadline = started + args.minutes * 60
        try:
            while True:
                next_at = started + (len(rows) + 1) * args.sample
                time.sleep(max(0.0, min(next_at, deadline) - time.monotonic()))
                if daemon.poll() is not None:
                    print(f"soak: the daemon exited with {daemon.returncode}", flush=True)
                    break
                rss, fds = process_sample(daemon.pid)
                db_size = db_path.stat().st_size if db_path.exists() else 0
                row = ((time.monotonic() - started) / 60, rss, fds, wal_size(db_path), db_size, counter.cycles,
                       counter.failed, reads[0])
                rows.append(row)
                print(f"{row[0]:>7.1f} {rss:>8.1f} {fds:>5} {row[3] / 1024:>8.0f} {db_size / 1024:>8.0f}"
                      f" {counter.cycles:>8} {counter.failed:>7} {reads[0]:>9}", flush=True)
                if time.monotonic() >= deadline:
                    break
        finally:
            stop.set()
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(30)
            except subprocess.TimeoutExpired:
                daemon.kill()
            counter.join(5)
    return verdict(rows, counter)


def verdict(rows: list[tuple], counter: CycleCounter) -> int:
    """Print whether memory and descriptors stayed flat and the WAL bounded; 0 if so."""
    if len(rows) < 2:
        print("soak: too short to judge (fewer than 2 samples)")
        return 1
    base_rss, last_rss = rows[1][1], rows[-1][1]
    growth = (last_rss - base_rss) / base_rss
    # A sample taken while a crawl is in flight counts its sockets too: descriptors are flat when
    # the last third of the run never has more than the first third had (a leak only adds).
    third = max(1, (len(rows) - 1) // 3)
    early, late = [row[2] for row in rows[1:1 + third]], [row[2] for row in rows[-third:]]
    fds_ok = max(late) <= max(early) + 2
    wal_max = max(row[3] for row in rows)
    ok = growth <= RSS_GROWTH_LIMIT and fds_ok and wal_max <= WAL_LIMIT
    print(f"soak: RSS {base_rss:.1f} MB -> {last_rss:.1f} MB ({growth:+.1%}, limit +{RSS_GROWTH_LIMIT:.0%});"
          f" fds at most {max(early)} early, {max(late)} late; WAL at most {wal_max / 1024:.0f} KB;"
          f" {counter.cycles} crawl cycles, {counter.failed} failed; {'FLAT' if ok else 'NOT FLAT'}")
    if counter.problems:
        print(f"soak: {len(counter.problems)} warnings/errors logged, first: {counter.problems[0][:200]}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

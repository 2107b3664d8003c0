"""`archiver serve` under load, side by side with the same queries run
directly on the index in one process (the baseline), in one run.

The archive is built with the real `archiver snapshot -i` from a loopback
news site whose articles are edited every 4th capture: ``--urls`` URLs x
``--rounds`` rounds (default 100 x 100 = 10,000 snapshots), plus a probe URL
captured 20 times in the first rounds only. Then, with ``--clients``
concurrent clients against the server, and in one plain loop for the
baseline, it measures requests per second and p95 latency for:

- the URL timeline page (``/timeline``)  vs. ``archive.history(url)``
- the Compare page (``/compare``, the last two versions)  vs. ``archive.diff_result``
- ``/api/v1/history``  vs. ``archive.history_json(url)``

and two scaling checks: the probe's timeline after round 20 and after the
last round (the archive grew 5x, the probe did not: the time must not grow),
and a timeline of 100 snapshots against the probe's 20 (at most linear).

    python bench/serve.py [--urls 100] [--rounds 100] [--clients 8] [--seconds 10] [--keep DIR [--reuse]]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable
from urllib.parse import urlencode

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(REPO))
import loopback  # noqa: E402

ENV = {**os.environ, "ARCHIVER_ALLOW_PRIVATE": "1", "PYTHONPATH": str(REPO)}


def capture(data: Path, urls: list[str], work: Path) -> None:
    listing = work / "urls.txt"
    listing.write_text("\n".join(urls) + "\n")
    subprocess.run([sys.executable, "-m", "archiver", "--data-dir", str(data), "snapshot", "-i", str(listing)],
                   env=ENV, check=True, stdout=subprocess.DEVNULL)


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[18] if len(samples) >= 20 else max(samples)


class Serve:
    def __init__(self, data: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "archiver", "--data-dir", str(data), "serve", "--bind", "127.0.0.1:0"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=ENV)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        self.base = line.split(" on ", 1)[1].split("/ ", 1)[0]
        for _ in range(200):
            try:
                requests.get(self.base + "/log/checkpoint", timeout=2)
                break
            except requests.ConnectionError:
                time.sleep(0.05)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=20)


def load(base: str, paths: list[str], clients: int, seconds: float) -> tuple[float, float, int]:
    """(requests/s, p95 seconds, errors) with ``clients`` threads for ``seconds``."""
    lat: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client(seed: int) -> None:
        rnd = random.Random(seed)
        session = requests.Session()
        mine: list[float] = []
        while time.monotonic() < stop:
            t = time.perf_counter()
            r = session.get(base + rnd.choice(paths), timeout=60)
            mine.append(time.perf_counter() - t)
            if r.status_code != 200:
                errors[0] += 1
        with lock:
            lat.extend(mine)

    start = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return len(lat) / (time.perf_counter() - start), p95(lat), errors[0]


def direct(fn: Callable[[str], object], urls: list[str], seconds: float) -> tuple[float, float]:
    lat: list[float] = []
    rnd = random.Random(1)
    stop = time.monotonic() + seconds
    start = time.perf_counter()
    while time.monotonic() < stop:
        t = time.perf_counter()
        fn(rnd.choice(urls))
        lat.append(time.perf_counter() - t)
    return len(lat) / (time.perf_counter() - start), p95(lat)


def median_latency(base: str, *paths: str, n: int = 60) -> list[float]:
    """Median latency of each path, requests alternating so that a busy
    machine's noise hits all of them alike."""
    session = requests.Session()
    samples: list[list[float]] = [[] for _ in paths]
    for path in paths:
        session.get(base + path, timeout=60)
    for _ in range(n):
        for i, path in enumerate(paths):
            t = time.perf_counter()
            session.get(base + path, timeout=60)
            samples[i].append(time.perf_counter() - t)
    return [statistics.median(s) for s in samples]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--urls", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--keep", type=Path, help="build into / reuse this directory")
    ap.add_argument("--reuse", action="store_true", help="measure an archive already built in --keep")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-serve-"))
    work.mkdir(parents=True, exist_ok=True)
    data = work / "archive"
    site, port = loopback.start("edited")
    urls = [f"http://127.0.0.1:{port}/politik/meldung/{i}" for i in range(args.urls)]
    probe = f"http://127.0.0.1:{port}/politik/probe"
    if args.reuse:  # the URLs as captured then (another port)
        import sqlite3

        with sqlite3.connect(data / "index.sqlite3") as con:
            known = [r[0] for r in con.execute("SELECT DISTINCT url FROM snapshots")]
        urls = sorted((u for u in known if "/meldung/" in u), key=lambda u: int(u.rsplit("/", 1)[1]))
        probe = next(u for u in known if u.endswith("/probe"))
    probe_path = "/timeline?" + urlencode({"url": probe})
    small = None
    try:
        t0 = time.perf_counter()
        for r in range(0 if args.reuse else args.rounds):
            capture(data, urls + ([probe] if r < 20 else []), work)
            if r == 19:
                server = Serve(data)
                small = (median_latency(server.base, probe_path)[0], 20 * (len(urls) + 1))
                server.stop()
            print(f"\rbuilt round {r + 1}/{args.rounds}", end="", file=sys.stderr, flush=True)
        if not args.reuse:
            print(f"\nbuilt {args.rounds * len(urls) + 20} snapshots in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    finally:
        site.kill()

    server = Serve(data)
    try:
        q = lambda path, u: f"{path}?{urlencode({'url': u})}"  # noqa: E731
        cases = [
            ("timeline page", [q("/timeline", u) for u in urls]),
            ("compare page", [q("/compare", u) for u in urls]),
            ("/api/v1/history", [q("/api/v1/history", u) for u in urls]),
        ]
        served = {name: load(server.base, paths, args.clients, args.seconds) for name, paths in cases}
        big, hundred = median_latency(server.base, probe_path, q("/timeline", urls[0]))
    finally:
        server.stop()

    from archiver.archive import Archive
    from archiver.config import load as load_settings

    settings = load_settings(None, environ={})
    settings.archive.data_dir = str(data)
    with Archive(settings) as archive:
        baseline = {
            "timeline page": direct(archive.history, urls, args.seconds),
            "compare page": direct(lambda u: archive.diff_result(u, None, None), urls, args.seconds),
            "/api/v1/history": direct(archive.history_json, urls, args.seconds),
        }
        total = len(archive.index.all_snapshots())

    print(f"\narchive: {total} snapshots, {len(urls)} URLs x {args.rounds} rounds (+ probe); "
          f"{args.clients} concurrent clients, {args.seconds:.0f} s per case; one 2-core machine\n")
    print(f"{'query':<18} {'served req/s':>12} {'p95 ms':>8} {'errors':>7} | {'direct q/s':>10} {'p95 ms':>8} | {'served/direct':>13}")
    for name, (rps, p, errs) in served.items():
        drps, dp = baseline[name]
        print(f"{name:<18} {rps:>12.1f} {p * 1000:>8.1f} {errs:>7} | {drps:>10.1f} {dp * 1000:>8.1f} | {rps / drps:>13.2f}")
    if small is not None:
        print(f"\nprobe timeline (20 snapshots): {small[0] * 1000:.1f} ms with {small[1]} snapshots in the archive, "
              f"{big * 1000:.1f} ms with {total}: ratio {big / small[0]:.2f} (must not grow with the archive)")
    print(f"timeline of {args.rounds} snapshots: {hundred * 1000:.1f} ms vs 20 snapshots {big * 1000:.1f} ms: "
          f"ratio {hundred / big:.2f} for {args.rounds / 20:.0f}x the snapshots (at most linear)")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Capture throughput: one `archiver snapshot -i` call over N distinct loopback
pages, side by side in one run with (a) a bare requests+warcio loop that only
writes WARC and (b) `wget -i ... --warc-file`. Prints wall times and ratios.

The pages are served by a separate process with a per-response delay that
stands in for network latency (default 50 ms; `--delay 0` shows the pure CPU
cost). archiver does much more per page (extraction, diff, signing, log,
fsync, index) and wins that time back with its bounded worker pool.

    python bench/capture.py [--n 300] [--delay 0.05]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
import loopback  # noqa: E402


def bare_loop(urls: list[str], out: Path) -> None:
    """The baseline: requests under warcio's capture_http, WARC only."""
    import requests
    from warcio.capture_http import capture_http  # before requests

    with open(out, "wb") as fh:
        from warcio.warcwriter import WARCWriter

        writer = WARCWriter(fh, gzip=True, warc_version="1.1")
        for url in urls:
            with capture_http(writer):
                requests.get(url, timeout=30)


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--delay", type=float, default=0.05, help="seconds the server waits per response")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-capture-"))
    server, port = loopback.start("article", args.delay)
    try:
        urls = [f"http://127.0.0.1:{port}/meldung/{i}" for i in range(args.n)]
        listing = work / "urls.txt"
        listing.write_text("\n".join(urls) + "\n")

        t_bare = timed(lambda: bare_loop(urls, work / "bare.warc.gz"))

        wget = shutil.which("wget")
        t_wget = None
        if wget:
            t_wget = timed(lambda: subprocess.run(
                [wget, "-q", "-i", str(listing), f"--warc-file={work / 'wget'}", "-O", "/dev/null", "--no-proxy"],
                check=False, cwd=work))

        env = {**os.environ, "ARCHIVER_ALLOW_PRIVATE": "1", "PYTHONPATH": str(REPO)}
        proc = None

        def run_archiver() -> None:
            nonlocal proc
            proc = subprocess.run(
                [sys.executable, "-m", "archiver", "--data-dir", str(work / "archive"), "snapshot", "-i", str(listing)],
                env=env, capture_output=True, text=True)

        t_arch = timed(run_archiver)
        assert proc is not None
        if proc.returncode != 0:
            sys.exit(f"archiver snapshot failed: {proc.stderr.strip().splitlines()[-1:]}")
        captured = len(proc.stdout.splitlines())
    finally:
        server.kill()
        shutil.rmtree(work, ignore_errors=True)

    print(f"pages: {args.n}, server delay per response: {args.delay * 1000:.0f} ms, cores: {os.cpu_count()}")
    print(f"bare requests+warcio loop : {t_bare:7.2f} s  ({args.n / t_bare:6.1f} pages/s)")
    if t_wget is not None:
        print(f"wget -i --warc-file       : {t_wget:7.2f} s  ({args.n / t_wget:6.1f} pages/s)")
    print(f"archiver snapshot -i      : {t_arch:7.2f} s  ({captured / t_arch:6.1f} pages/s, {captured} captured)")
    print(f"ratio archiver / bare loop: {t_arch / t_bare:.2f}x  (target <= 1.0x)")
    if t_wget is not None:
        print(f"ratio archiver / wget     : {t_arch / t_wget:.2f}x")


if __name__ == "__main__":
    main()

"""Bulk enrolment and daemon start with many sources.

Times, as separate processes exactly as a user runs them: ``archiver watch
--file`` of a sources file with N pages, then ``archiver daemon`` from launch
to its status file saying ``running`` (the first start plans every source;
the restart finds them planned), with the peak RSS of each process. The
baseline in the same run is ``archiver --version``-like start-up cost: the
interpreter importing archiver (``python -c 'import archiver.cli.main'``).

Sources point at a closed loopback port and are due in a day, so no capture
runs while the start is measured.

    python bench/sources_scale.py [--n 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def env(data: Path) -> dict[str, str]:
    return {**os.environ, "ARCHIVER_ALLOW_PRIVATE": "1", "ARCHIVER_CONFIG": "", "PYTHONPATH": str(REPO),
            "ARCHIVER_DATA_DIR": str(data)}


def timed_run(cmd: list[str], e: dict[str, str]) -> tuple[float, float]:
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, env=e, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(p.pid, 0)
    elapsed = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {p.stderr.read().decode() if p.stderr else ''}")
    return elapsed, usage.ru_maxrss / 1024


def daemon_start(data: Path, e: dict[str, str]) -> tuple[float, float]:
    status = data / "daemon-status.json"
    status.unlink(missing_ok=True)
    t0 = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-m", "archiver", "daemon"], env=e,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started = None
    while time.perf_counter() - t0 < 300:
        try:
            if json.loads(status.read_text()).get("state") == "running":
                started = time.perf_counter() - t0
                break
        except (OSError, ValueError):
            pass
        if p.poll() is not None:
            raise SystemExit("daemon exited early")
        time.sleep(0.02)
    p.send_signal(signal.SIGTERM)
    _, _, usage = os.wait4(p.pid, 0)
    if started is None:
        raise SystemExit("daemon did not start within 300 s")
    return started, usage.ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=100_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "archive"
        e = env(data)
        sources = Path(tmp) / "sources.toml"
        with open(sources, "w") as fh:
            fh.write('[defaults]\nevery = "1d"\n')
            for i in range(args.n):
                fh.write(f'[[source]]\nurl = "http://127.0.0.1:9/article/{i}"\n')
        base, base_rss = timed_run([sys.executable, "-c", "import archiver.cli.main"], e)
        watch, watch_rss = timed_run([sys.executable, "-m", "archiver", "watch", "--file", str(sources)], e)
        # due in a day: nothing is captured while the start is measured
        with sqlite3.connect(data / "index.sqlite3") as db:
            db.execute("UPDATE sources SET next_due=strftime('%Y-%m-%dT%H:%M:%SZ','now','+1 day')")
        first, first_rss = daemon_start(data, e)
        again, again_rss = daemon_start(data, e)  # the second start finds every time stored
        print(f"sources: {args.n}")
        print(f"{'step':<28} {'seconds':>8} {'peak MB':>8}")
        print(f"{'import archiver (baseline)':<28} {base:8.2f} {base_rss:8.0f}")
        print(f"{'watch --file':<28} {watch:8.2f} {watch_rss:8.0f}")
        print(f"{'daemon start (first)':<28} {first:8.2f} {first_rss:8.0f}")
        print(f"{'daemon start (restart)':<28} {again:8.2f} {again_rss:8.0f}")
        print(f"daemon start minus import baseline: {again - base:.2f} s")


if __name__ == "__main__":
    main()

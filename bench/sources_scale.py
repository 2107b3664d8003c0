"""Bulk enrolment and daemon start with many sources.

Times, as separate processes exactly as a user runs them: ``archiver watch
--file`` of a sources file with N pages, then ``archiver daemon`` from launch
to its status file saying ``running`` (the first start plans every source;
the restart finds them planned), and ``archiver status --json`` (its sources
summary), with the peak RSS of each process. The
baseline in the same run is ``archiver --version``-like start-up cost: the
interpreter importing archiver (``python -c 'import archiver.cli.main'``).

Sources point at a closed loopback port and are due in a day, so no capture
runs while the start is measured.

    python bench/sources_scale.py [--n 100000]
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from procs import daemon_start, env, timed  # noqa: E402


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
        base, base_rss, _ = timed([sys.executable, "-c", "import archiver.cli.main"], e)
        watch, watch_rss, _ = timed([sys.executable, "-m", "archiver", "watch", "--file", str(sources)], e)
        # due in a day: nothing is captured while the start is measured
        with sqlite3.connect(data / "index.sqlite3") as db:
            db.execute("UPDATE sources SET next_due=strftime('%Y-%m-%dT%H:%M:%SZ','now','+1 day')")
        first, first_rss = daemon_start(data, e)
        again, again_rss = daemon_start(data, e)  # the second start finds every time stored
        status, status_rss, _ = timed([sys.executable, "-m", "archiver", "status", "--json"], e, ok=(0, 1))
        print(f"sources: {args.n}")
        print(f"{'step':<28} {'seconds':>8} {'peak MB':>8}")
        print(f"{'import archiver (baseline)':<28} {base:8.2f} {base_rss:8.0f}")
        print(f"{'watch --file':<28} {watch:8.2f} {watch_rss:8.0f}")
        print(f"{'daemon start (first)':<28} {first:8.2f} {first_rss:8.0f}")
        print(f"{'daemon start (restart)':<28} {again:8.2f} {again_rss:8.0f}")
        print(f"{'status --json':<28} {status:8.2f} {status_rss:8.0f}")
        print(f"daemon start minus import baseline: {again - base:.2f} s")


if __name__ == "__main__":
    main()

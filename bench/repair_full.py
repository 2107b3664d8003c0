"""``archiver repair --full`` as the archive grows: wall time, CPU time and peak
RSS at each size, and the ratios between sizes (issue 12: it grew 8.1x from
10k to 50k snapshots while every record was held in memory).

Each size is its own archive (grown from the previous one's copy, 500
loopback articles edited every 4th fetch, as ``bench/scale.py`` builds
them); each is measured ``--runs`` times and the median reported. A
constant start-up cost (imports, opening the index) makes small sizes look
dearer per snapshot, so the marginal cost per snapshot between sizes is
printed too: linear means it stays the same.

    python bench/repair_full.py [--sizes 1000 5000 10000] [--runs 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import loopback  # noqa: E402
from procs import env, timed_cpu  # noqa: E402
from scale import existing, grow  # noqa: E402


def build(work: Path, sizes: list[int]) -> dict[int, Path]:
    """One archive per size under ``work`` (kept ones reused)."""
    server, port = loopback.start("edited")
    out: dict[int, Path] = {}
    try:
        previous: Path | None = None
        for size in sizes:
            data = work / f"a{size}" / "archive"
            if previous is not None and not data.exists():
                shutil.copytree(previous, data, symlinks=True)
            t0 = time.perf_counter()
            done = grow(data, port, size, existing(data))
            print(f"built {done} snapshots ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
            out[size], previous = data, data
    finally:
        server.kill()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 10_000])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--keep", type=Path, help="build in (and keep) this directory; archives there are reused")
    args = ap.parse_args()
    sizes = sorted(args.sizes)
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-repair-"))
    try:
        archives = build(work, sizes)
        runs: dict[int, list[tuple[float, float, float]]] = {n: [] for n in sizes}
        for _ in range(args.runs):  # interleaved, so a burst of load hits every size alike
            for n in sizes:
                wall, cpu, rss, _ = timed_cpu([sys.executable, "-m", "archiver", "repair", "--full"], env(archives[n]))
                runs[n].append((wall, cpu, rss))
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    med = {n: tuple(statistics.median(r[i] for r in runs[n]) for i in range(3)) for n in sizes}
    print(f"load average {os.getloadavg()[0]:.1f}; median of {args.runs} run(s)")
    print(f"{'snapshots':>9} | {'wall s':>7} | {'CPU s':>7} | {'peak MB':>7}")
    for n in sizes:
        wall, cpu, rss = med[n]
        print(f"{n:>9} | {wall:7.2f} | {cpu:7.2f} | {rss:7.0f}")
    for a, b in zip(sizes, sizes[1:]):
        per = (med[b][1] - med[a][1]) / (b - a) * 1e6
        print(f"{b}/{a}: wall {med[b][0] / med[a][0]:.2f}x, CPU {med[b][1] / med[a][1]:.2f}x, "
              f"peak RSS {med[b][2] / med[a][2]:.2f}x; marginal CPU {per:.0f} us/snapshot")


if __name__ == "__main__":
    main()

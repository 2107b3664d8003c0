"""Cost as the archive grows: one archive of 500 loopback articles (each
edited on every 4th fetch) grown to each size in turn, and at each size, side
by side:

- daemon start: ``archiver daemon`` (no sources) from launch to its status
  file saying ``running`` -- it runs start-up repair -- and its peak RSS;
- ``archiver verify``: wall time, peak RSS, and its ratio to ``sha256sum``
  over the same WARC files (the baseline, measured in the same run), in wall
  time and in CPU time (its worker processes included: on a machine others
  share, the CPU ratio is the one load does not distort);
- ``archiver repair`` (bounded: settled files skipped) and ``repair --full``
  (every record read, what start-up did before);
- index and WARC bytes per snapshot;
- capture ms/page of the next 100 captures (``archiver snapshot -i``).

The build drives the library directly (``Archive.snapshot_many``, 4
workers) to save time; every measurement runs the real CLI as a process.
The ratios of the largest size to the one before say whether a cost is
linear (the snapshot ratio) or worse.

    python bench/scale.py [--sizes 1000 10000 50000] [--keep DIR] [--verify-only] [--rotate-at N ...]

With ``--keep DIR`` an archive already in DIR is grown, not rebuilt: building
50k snapshots takes a while, so one archive serves several runs (a size it
already exceeds is measured at its size). ``--verify-only`` measures verify
and sha256sum alone (for quick before/after runs); ``--pure`` adds verify
without its native parts (``ARCHIVER_PURE_PYTHON=1``: no native record
scanner, no native manifest reader) in the same rounds; ``--compare
CHECKOUT`` adds another checkout's verify (its native parts built in place:
``python setup.py build_ext --inplace``) in the same rounds -- it must read
the archive's index schema, which this checkout may have migrated.
``--rotate-at N ...`` runs ``archiver keys rotate`` once the build reaches
each N snapshots (an archive whose manifests several keys signed: each
key's latest checkpoint vouches for its own, round 11).

Verify's cost per small-page snapshot on a shared two-core machine: see
the README ("What it costs"; round 7: 10,100 snapshots, CPU ratio 23.5x ->
21.8x (median of 3), 50,200 25.8x -> 22.4x, at load 2-4; round 10, the
checkpoint vouching for the signatures its leaves hold: 21-24x -> 16-18x
on an archive this code built -- an archive built before has nothing to
vouch for, so give each checkout an archive it built; round 11, each key's
latest checkpoint vouching for that key's: on 10,000 snapshots with a
rotation at 5,000 (``--sizes 10000 --rotate-at 5000``), 17.8-18.7x ->
15.4-16.5x; ``bench/verify_inproc.py``
measures the audit's CPU in one process, steadier on a shared machine);
``bench/inflate_refusals.py`` shows why inflating stays with zlib. For
before/after runs give each checkout a copy of the same archive (``--keep``
copies, never the originals: a run may migrate or repair them) and read the
CPU ratio and peak RSS first: the wall ratio moves with the load. The load
average is printed at the start and the end: on a machine others share,
compare the CPU ratios (wall times swing with the load; a ``--compare`` run
alternates the two checkouts round by round, so both see the same load).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import loopback  # noqa: E402
from procs import daemon_start, env, timed, timed_cpu  # noqa: E402

PAGES = 500


def grow(data: Path, port: int, target: int, done: int = 0, index: str = "") -> int:
    """Capture round-robin over the 500 pages until the archive has ``target``
    snapshots (``done`` already there; ``index``: a PostgreSQL URL, else SQLite).
    Drives the library directly: building is not what is measured."""
    from archiver import config
    from archiver.archive import Archive, SnapshotFailure

    settings = config.load(None, {"ARCHIVER_ALLOW_PRIVATE": "1", **({"ARCHIVER_INDEX": index} if index else {})})
    settings.archive.data_dir = str(data)
    with Archive(settings) as archive:
        while done < target:
            urls = [f"http://127.0.0.1:{port}/article/{(done + i) % PAGES}" for i in range(min(PAGES, target - done))]
            for r in archive.snapshot_many(urls, workers=4):
                if isinstance(r, SnapshotFailure):
                    raise SystemExit(f"capture failed: {r.error}")
            done += len(urls)
    return done


def bytes_of(paths: list[Path]) -> int:
    return sum(p.stat().st_size for p in paths if p.exists())


def existing(data: Path) -> int:
    """Snapshots already in a kept archive (0 when there is none)."""
    if not (data / "index.sqlite3").exists():
        return 0
    with sqlite3.connect(data / "index.sqlite3") as db:
        return int(db.execute("SELECT COUNT(*) FROM snapshots").fetchone()[0])


def rotate(e: dict[str, str]) -> None:
    """``archiver keys rotate``: the snapshots after it are signed by a new key."""
    r = subprocess.run([sys.executable, "-m", "archiver", "keys", "rotate"], env=e, capture_output=True, text=True,
                       timeout=600)
    if r.returncode != 0:
        raise SystemExit(f"keys rotate failed: {r.stderr.strip()}")


def measure(data: Path, port: int, e: dict[str, str], work: Path, verify_only: bool = False,
            pure: bool = False, compare: Path | None = None) -> dict[str, float]:
    warcs = sorted((data / "warcs").glob("*.warc.gz"))
    index = [data / "index.sqlite3", data / "index.sqlite3-wal"]
    snaps = int(json.loads(timed([sys.executable, "-m", "archiver", "verify", "--json"], e)[2])["checked"])
    m: dict[str, float] = {"snapshots": snaps}
    m["index_b"] = bytes_of(index) / snaps
    m["warc_b"] = bytes_of(warcs) / snaps
    # verify and sha256sum alternate, best of three each: the shared machine's noise hits both alike
    m["verify_s"] = m["sha_s"] = m["verify_cpu"] = m["sha_cpu"] = float("inf")
    m["verify_mb"] = 0.0
    if pure:  # the pure-Python reading (no native scanner) in the same rounds
        m["pure_s"] = m["pure_cpu"] = float("inf")
    if compare:  # another checkout's verify (its native parts built in place) in the same rounds
        m["base_s"] = m["base_cpu"] = float("inf")
    for _ in range(3):
        t, cpu, mb, _ = timed_cpu([sys.executable, "-m", "archiver", "verify", "--json"], e)
        m["verify_s"], m["verify_cpu"], m["verify_mb"] = min(m["verify_s"], t), min(m["verify_cpu"], cpu), max(m["verify_mb"], mb)
        if pure:
            t, cpu, _, _ = timed_cpu([sys.executable, "-m", "archiver", "verify", "--json"], {**e, "ARCHIVER_PURE_PYTHON": "1"})
            m["pure_s"], m["pure_cpu"] = min(m["pure_s"], t), min(m["pure_cpu"], cpu)
        if compare:  # -P: `-m` would put the working directory (perhaps this checkout) before PYTHONPATH
            t, cpu, _, _ = timed_cpu([sys.executable, "-P", "-m", "archiver", "verify", "--json"], {**e, "PYTHONPATH": str(compare)})
            m["base_s"], m["base_cpu"] = min(m["base_s"], t), min(m["base_cpu"], cpu)
        t, cpu, _, _ = timed_cpu(["sha256sum", *map(str, warcs)], e)
        m["sha_s"], m["sha_cpu"] = min(m["sha_s"], t), min(m["sha_cpu"], cpu)
    m["verify_ratio"] = m["verify_s"] / max(m["sha_s"], 1e-6)
    m["cpu_ratio"] = m["verify_cpu"] / max(m["sha_cpu"], 1e-6)
    if pure:
        m["pure_ratio"] = m["pure_s"] / max(m["sha_s"], 1e-6)
        m["pure_cpu_ratio"] = m["pure_cpu"] / max(m["sha_cpu"], 1e-6)
    if compare:
        m["base_ratio"] = m["base_s"] / max(m["sha_s"], 1e-6)
        m["base_cpu_ratio"] = m["base_cpu"] / max(m["sha_cpu"], 1e-6)
    if verify_only:
        return m
    m["start_s"], m["start_mb"] = daemon_start(data, e)
    m["repair_s"], m["repair_mb"], _ = timed([sys.executable, "-m", "archiver", "repair"], e)
    m["full_s"], m["full_mb"], _ = timed([sys.executable, "-m", "archiver", "repair", "--full"], e)
    listing = work / "next100.txt"
    listing.write_text("".join(f"http://127.0.0.1:{port}/article/{i}\n" for i in range(100)))
    t, _, _ = timed([sys.executable, "-m", "archiver", "snapshot", "-i", str(listing), "--workers", "4"], e)
    m["capture_ms"] = t * 1000 / 100
    return m


COLUMNS = [
    ("snapshots", "snapshots", "{:.0f}"),
    ("daemon start s", "start_s", "{:.2f}"), ("start MB", "start_mb", "{:.0f}"),
    ("verify s", "verify_s", "{:.2f}"), ("verify MB", "verify_mb", "{:.0f}"),
    ("verify/sha256sum", "verify_ratio", "{:.1f}x"), ("CPU verify/sha256sum", "cpu_ratio", "{:.1f}x"),
    ("pure-Python verify/sha256sum", "pure_ratio", "{:.1f}x"), ("CPU pure/sha256sum", "pure_cpu_ratio", "{:.1f}x"),
    ("--compare verify s", "base_s", "{:.2f}"), ("--compare/sha256sum", "base_ratio", "{:.1f}x"),
    ("CPU --compare/sha256sum", "base_cpu_ratio", "{:.1f}x"),
    ("repair s", "repair_s", "{:.2f}"), ("repair --full s", "full_s", "{:.2f}"), ("full MB", "full_mb", "{:.0f}"),
    ("index B/snap", "index_b", "{:.0f}"), ("WARC B/snap", "warc_b", "{:.0f}"),
    ("capture ms/page", "capture_ms", "{:.1f}"),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 50_000])
    ap.add_argument("--keep", type=Path, help="build in (and keep) this directory; an archive there is grown, not rebuilt")
    ap.add_argument("--verify-only", action="store_true", help="measure verify and sha256sum only")
    ap.add_argument("--pure", action="store_true",
                    help="also verify with ARCHIVER_PURE_PYTHON=1 (no native scanner), in the same rounds")
    ap.add_argument("--compare", type=Path, metavar="CHECKOUT",
                    help="also verify with another checkout's code (its native parts built in place), in the same rounds")
    ap.add_argument("--rotate-at", type=int, nargs="+", default=[], metavar="N",
                    help="run `archiver keys rotate` once the build reaches each N snapshots")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-scale-"))
    data = work / "archive"
    e = env(data)
    server, port = loopback.start("edited")
    print(f"load average at the start: {' '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)
    results: list[dict[str, float]] = []
    try:
        done = existing(data)
        for size in sorted(args.sizes):
            t0 = time.perf_counter()
            for at in sorted(n for n in args.rotate_at if done < n <= size):
                done = grow(data, port, at, done)
                rotate(e)
                print(f"rotated the keys at {done} snapshots", file=sys.stderr, flush=True)
            done = grow(data, port, size, done)
            print(f"built {done} snapshots ({time.perf_counter() - t0:.0f} s); measuring", file=sys.stderr, flush=True)
            m = measure(data, port, e, work, args.verify_only, args.pure, args.compare)
            results.append(m)
            done = int(m["snapshots"]) + (0 if args.verify_only else 100)
    finally:
        server.kill()
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    columns = [c for c in COLUMNS if c[1] in results[0]] if results else COLUMNS
    print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(" | ".join(f"{title:>{max(len(title), 8)}}" for title, _, _ in columns))
    for m in results:
        print(" | ".join(f"{fmt.format(m[key]):>{max(len(title), 8)}}" for title, key, fmt in columns))
    if len(results) >= 2:
        a, b = results[-2], results[-1]
        ratios = [("snapshots", "snapshots"), ("daemon start", "start_s"), ("verify", "verify_s"), ("repair", "repair_s"),
                  ("repair --full", "full_s"), ("peak RSS start", "start_mb"), ("peak RSS verify", "verify_mb")]
        print("\nlargest/previous: " + "; ".join(f"{title} {b[key] / a[key]:.2f}x" for title, key in ratios if key in b))


if __name__ == "__main__":
    main()

"""`archiver verify` over an archive of at least 200 MB of WARC, against
`sha256sum` over the same files, in one run. Prints both times and the
ratios, in wall time and in CPU time (verify's worker processes included;
on a machine others share, CPU time is what their load distorts least),
and the load average (target: verify within 1.5x of sha256sum).

It also times verify on an archive of one such page: verify's fixed cost
(interpreter, imports, opening the archive, keys, the log), which the big
archive pays once, and the share of the big run it is.

The archive is built with the real `archiver snapshot -i` from a loopback
server serving 1 MiB bodies of random text (so they barely compress and the
WARC bytes are real bytes to hash); `--mb` sets the size. Commands run as an
installed archiver does, with their bytecode cached (procs.installed).

    python bench/verify.py [--mb 200] [--keep DIR] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
import loopback  # noqa: E402
from procs import installed, timed_cpu  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=200, help="WARC megabytes to build")
    ap.add_argument("--keep", type=Path, help="reuse/keep the archive in this directory")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of sha256sum, verify and verify of one page")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-verify-"))
    work.mkdir(parents=True, exist_ok=True)
    data, one = work / "archive", work / "one"
    env = {**installed(), "ARCHIVER_ALLOW_PRIVATE": "1", "ARCHIVER_CONFIG": "", "PYTHONPATH": str(REPO)}
    server, port = loopback.start("blob")
    try:
        n = 0
        while _warc_bytes(data) < args.mb * 1_000_000:
            n += _capture(work, data, [f"http://127.0.0.1:{port}/blob/{n + i}" for i in range(50)], env)
        if not _warc_bytes(one):
            _capture(work, one, [f"http://127.0.0.1:{port}/blob/one"], env)
    finally:
        server.kill()
    files = sorted(str(p) for p in (data / "warcs").iterdir())
    size = _warc_bytes(data)
    subprocess.run(["cat", *files], stdout=subprocess.DEVNULL, check=True)  # warm the page cache for both
    verify = [sys.executable, "-m", "archiver", "--data-dir"]
    timed_cpu([*verify, str(one), "verify"], env)  # the first run writes the bytecode cache
    load = [os.getloadavg()[0]]

    # Alternate the three, several rounds: a shared machine's noise then hits them alike.
    sha: list[tuple[float, float]] = []
    big: list[tuple[float, float]] = []
    fixed: list[tuple[float, float]] = []
    report: dict = {}
    for _ in range(args.rounds):
        wall, cpu, _, _ = timed_cpu(["sha256sum", *files], env)
        sha.append((wall, cpu))
        wall, cpu, _, out = timed_cpu([*verify, str(data), "verify", "--json"], env)
        big.append((wall, cpu))
        report = json.loads(out)
        if not report.get("ok"):
            sys.exit(f"verify failed: {out[:500]}")
        wall, cpu, _, _ = timed_cpu([*verify, str(one), "verify", "--json"], env)
        fixed.append((wall, cpu))
    load.append(os.getloadavg()[0])
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    med = lambda runs, i: statistics.median(r[i] for r in runs)  # noqa: E731
    best = lambda runs, i: min(r[i] for r in runs)  # noqa: E731
    print(f"WARC data: {size / 1e6:.0f} MB in {len(files)} file(s), {report.get('checked')} snapshots, "
          f"{report.get('records')} records; cores: {os.cpu_count()}; load average {load[0]:.1f} -> {load[1]:.1f}; "
          f"median (best) of {args.rounds} rounds")
    for name, runs in (("sha256sum", sha), ("archiver verify", big), ("verify, one page", fixed)):
        line = f"{name:17s}: {med(runs, 0):6.2f} s wall ({best(runs, 0):5.2f}) {med(runs, 1):6.2f} s CPU ({best(runs, 1):5.2f})"
        if runs is fixed:
            line += f"  fixed cost: {med(runs, 0) / med(big, 0):.0%} of verify's wall, {med(runs, 1) / med(big, 1):.0%} of its CPU"
        else:
            line += f"  {size / 1e6 / med(runs, 0):6.0f} MB/s"
        print(line)
    print(f"ratio verify / sha256sum: {med(big, 0) / med(sha, 0):.2f}x wall, {med(big, 1) / med(sha, 1):.2f}x CPU "
          f"(best {best(big, 0) / best(sha, 0):.2f}x, {best(big, 1) / best(sha, 1):.2f}x)  (target <= 1.5x)")
    print(f"  without the fixed cost: {(med(big, 0) - med(fixed, 0)) / med(sha, 0):.2f}x wall, "
          f"{(med(big, 1) - med(fixed, 1)) / med(sha, 1):.2f}x CPU")


def _capture(work: Path, data: Path, urls: list[str], env: dict[str, str]) -> int:
    listing = work / "urls.txt"
    listing.write_text("\n".join(urls) + "\n")
    subprocess.run([sys.executable, "-m", "archiver", "--data-dir", str(data), "snapshot", "-i", str(listing)],
                   env=env, check=True, stdout=subprocess.DEVNULL)
    return len(urls)


def _warc_bytes(data: Path) -> int:
    d = data / "warcs"
    return sum(p.stat().st_size for p in d.iterdir()) if d.exists() else 0


if __name__ == "__main__":
    main()

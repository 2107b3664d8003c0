"""Verify's CPU with its scanning tasks run in one process, this checkout
against others, alternating round by round: on a machine others share,
where wall times and even the CPU of a worker pool swing with the load, the
CPU time of one process doing all of verify's work is the steadier measure
of what a change saves (it leaves out the pool's transfers, which
``bench/scale.py --compare`` includes).

    python bench/verify_inproc.py --data DIR [--compare CHECKOUT ...] [--rounds 5]

``DIR`` is an archive's data directory (say a copy of one ``bench/scale.py
--keep`` built: verify may migrate or repair what it opens, so never the
original); each checkout needs its native parts built in place (``python
setup.py build_ext --inplace``). Prints the best CPU seconds of each (user
and system, the process's children included). Round 7 (verify7), small pages, at
load 2-3: 10,100 snapshots 2.06 -> 2.04 s (best of 5), 50,200 snapshots
12.7 -> 10.7 s (best of 2; the log check no longer sorts the table per page).
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from procs import env  # noqa: E402

RUN = """
import sys
import archiver.audit.verify as verify
verify._cores = lambda: 1  # every task in this process
from archiver.cli import main
sys.exit(main(["verify", "--json"], open("/dev/null", "w"), sys.stderr))
"""


def cpu_of(checkout: Path, data: Path) -> float:
    """CPU seconds of one in-process verify run by ``checkout``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run([sys.executable, "-P", "-c", RUN], env={**env(data), "PYTHONPATH": str(checkout)},
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{checkout}: verify failed: {proc.stderr.strip()[-300:]}")
    return after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="the archive's data directory (a copy)")
    ap.add_argument("--compare", type=Path, nargs="*", default=[], metavar="CHECKOUT")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    checkouts = [REPO, *args.compare]
    best = {c: float("inf") for c in checkouts}
    for _ in range(args.rounds):
        for c in checkouts:
            best[c] = min(best[c], cpu_of(c, args.data))
    with open("/proc/loadavg") as fh:
        load = " ".join(fh.read().split()[:3])
    for c in checkouts:
        print(f"{best[c]:.3f} s CPU  {c}")
    print(f"(best of {args.rounds}; load average at the end {load})")


if __name__ == "__main__":
    main()

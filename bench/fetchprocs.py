"""What fetching in a fetch process costs and saves, per page, apart from
any contention: one capture thread captures N loopback pages with every hop
fetched in the capture process, then with every hop fetched in a fetch
process (``[capture] fetch_processes = 1``), alternating ``--rounds`` times in
one run; medians of the CPU per page of the capture process, of the fetch
process and of the loopback server, and the wall time per page.

One thread, so the figures are each process's own work, not time lost
waiting for the GIL: the capture process's CPU is what the GIL has to
serialise between capture workers, and the sum is what two cores have to
carry. ``bench/capture.py --compare`` gives the throughput that results.

    python bench/fetchprocs.py [--n 300] [--rounds 3]
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

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import loopback  # noqa: E402
from capture import procs_cpu  # noqa: E402


def one_run(n: int, port: int, server_pid: int, data: Path, processes: int, tag: str) -> dict[str, float]:
    """CPU and wall per page of one Archive capturing n new pages, one at a time."""
    from archiver.archive import Archive
    from archiver.config import load

    settings = load(None, environ={"ARCHIVER_ALLOW_PRIVATE": "1", "ARCHIVER_DATA_DIR": str(data)})
    settings.capture.fetch_processes = processes
    settings.capture.requisites = False
    with Archive(settings) as archive:
        for i in range(10):  # imports, keys, the fetch process's start
            archive.snapshot(f"http://127.0.0.1:{port}/warm/{tag}/{i}")
        pids = archive.helpers.fetchers.pids() if archive.helpers.fetchers is not None else []
        urls = [f"http://127.0.0.1:{port}/meldung/{tag}/{i}" for i in range(n)]
        c0, f0, s0, t0 = time.process_time(), procs_cpu(pids), procs_cpu([server_pid]), time.perf_counter()
        for url in urls:
            archive.snapshot(url)
        wall = time.perf_counter() - t0
        return {"main": (time.process_time() - c0) / n, "fetch": (procs_cpu(pids) - f0) / n,
                "server": (procs_cpu([server_pid]) - s0) / n, "wall": wall / n}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    server, port = loopback.start("article", 0.0)
    work = Path(tempfile.mkdtemp(prefix="bench-fetchprocs-"))
    runs: dict[str, list[dict[str, float]]] = {"in the capture process": [], "in a fetch process": []}
    try:
        for r in range(args.rounds):
            for (name, got), processes in zip(runs.items(), (0, 1)):
                got.append(one_run(args.n, port, server.pid, work / f"{processes}-{r}", processes, f"{processes}{r}"))
    finally:
        server.kill()
        shutil.rmtree(work, ignore_errors=True)
    print(f"{args.n} new loopback pages, one capture thread, medians of {args.rounds} alternating runs "
          f"(load average {os.getloadavg()[0]:.1f}); ms per page:")
    for name, got in runs.items():
        m = {k: statistics.median(d[k] for d in got) * 1000 for k in got[0]}
        print(f"  hops fetched {name:<22}: capture process {m['main']:.2f} CPU, fetch process {m['fetch']:.2f} CPU, "
              f"server {m['server']:.2f} CPU, all {m['main'] + m['fetch'] + m['server']:.2f} CPU; wall {m['wall']:.2f}")


if __name__ == "__main__":
    main()

"""Capture throughput: `archiver snapshot -i` over N distinct loopback pages
with 1 and with 8 workers, side by side in one run with (a) a bare
requests+warcio loop that only writes WARC and (b) `wget -i ... --warc-file`,
at each server delay. Prints wall time, pages/s and CPU per page (user+sys,
from the process's rusage), and the ratios.

The pages are served by a separate process with a per-response delay that
stands in for network latency (`--delays 0 0.05` by default: 0 shows the pure
CPU cost). archiver does much more per page (extraction, diff, signing, log,
fsync, index) and wins that time back with its bounded worker pool.

Then the added cost of page requisites, in the same run: `archiver snapshot
-i` over `--styled-n` styled pages (a shared stylesheet with an @import, a web
font, a logo and an icon; a hero image of its own in two sizes: 7 requisites
each) with `--no-requisites` and with requisites, each into a fresh archive,
at the last delay: wall time, CPU and WARC bytes per page. The shared files
are fetched for every page but stored once (later pages get revisits).

CPU per page (the process and its children: with more than one worker, the
page pool's processes too) is given twice against the bare loop: for the
whole run, and without the fixed cost of a run (a run of 5 pages with the
same number of workers, measured first: start-up, imports, key and index
set-up, the page pool's start), which is what each further page costs. The
last archiver row captures the same pages again into the first archive: the
steady state of a daemon re-capturing watched pages.

Then the steady state apart from any fixed cost: per worker count, one
process builds the Archive, captures a few pages, waits until the page pool
is ready, and only then captures the N pages it is timed on (wall time,
and CPU of the process and of its page pool's workers, read from /proc).
This is what a daemon that has been running a while sees; the fixed cost
of a run (start-up, imports, the pool's start) is the "fixed cost" row.
Each steady-state row splits its CPU per page: the capture process
(``main``), its page pool (``pool``) and the loopback server (``server``,
read from /proc: it runs on the same cores, so it is shown, not hidden).
The same process then captures the same N pages again, unchanged (the
"steady re-capture" rows): what a daemon watching pages that have not
changed pays per page -- a revisit record, and the stored text reused
instead of extracting the page again.

Each steady-state row also says how many captures a commit round held on
average (``pages/commit round``): a worker gives its place to the next
capture once its records are written, so captures waiting for their commit
are committed together (archiver/grouping.py); with two workers and the
commit's two fsyncs on the critical path, nearly every round held one
capture before that.

With ``--compare DIR`` only the steady state is measured, for this tree and
for the archiver of another checkout DIR (say, the commit before a change):
each of ``--rounds`` rounds runs every worker count with both trees, in an
order reversed every other round, so all see the same load on a shared
machine; medians are printed with their spread, and the ratio of two worker
counts is taken within each round (then its median and spread).

    python bench/capture.py [--n 300] [--delays 0 0.05] [--workers 1 2 8] [--styled-n 100]
    python bench/capture.py --compare ../before --delays 0 --workers 1 2 [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
import loopback  # noqa: E402

FIXED_N = 5


def bare_loop(urls: list[str], out: Path) -> None:
    """The baseline: requests under warcio's capture_http, WARC only (imported
    before it is timed: like archiver's "without the fixed cost", per page)."""
    import requests
    from warcio.capture_http import capture_http  # before requests
    from warcio.warcwriter import WARCWriter

    with open(out, "wb") as fh:
        writer = WARCWriter(fh, gzip=True, warc_version="1.1")
        for url in urls:
            with capture_http(writer):
                requests.get(url, timeout=30)


def cpu_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run_process(cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> tuple[float, int, str]:
    """Wall seconds, exit code and stdout (stderr on failure) of a process; its
    CPU time lands in RUSAGE_CHILDREN, which callers read as a delta."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = p.communicate()
    return time.perf_counter() - t0, p.returncode, out if p.returncode == 0 else err


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def one_delay(n: int, delay: float, workers: list[int]) -> list[tuple[str, float, float, int]]:
    """Rows of (what, wall s, CPU s, pages captured)."""
    work = Path(tempfile.mkdtemp(prefix="bench-capture-"))
    server, port = loopback.start("article", delay)
    rows = []
    try:
        urls = [f"http://127.0.0.1:{port}/meldung/{i}" for i in range(n)]
        listing = work / "urls.txt"
        listing.write_text("\n".join(urls) + "\n")
        bare_loop(urls[:3], work / "warm.warc.gz")  # imports and first-call set-up, untimed
        c0, t0 = cpu_self(), time.perf_counter()
        bare_loop(urls, work / "bare.warc.gz")
        rows.append(("bare requests+warcio loop", time.perf_counter() - t0, cpu_self() - c0, n))
        wget = shutil.which("wget")
        if wget:
            c0 = children_cpu()
            wall, _, _ = run_process(
                [wget, "-q", "-i", str(listing), f"--warc-file={work / 'wget'}", "-O", "/dev/null", "--no-proxy"],
                cwd=work)
            rows.append(("wget -i --warc-file", wall, children_cpu() - c0, n))
        env = {**os.environ, "ARCHIVER_ALLOW_PRIVATE": "1", "ARCHIVER_CONFIG": "", "PYTHONPATH": str(REPO)}

        def archiver(what: str, data: str, listing: Path, w: int) -> None:
            c0 = children_cpu()
            wall, code, out = run_process(
                [sys.executable, "-m", "archiver", "--data-dir", str(work / data), "snapshot", "-i",
                 str(listing), "--workers", str(w)], env=env)
            if code != 0:
                sys.exit(f"archiver snapshot failed: {out.strip().splitlines()[-1:]}")
            rows.append((what, wall, children_cpu() - c0, len(out.splitlines())))

        # The fixed cost of a run (interpreter start, imports, key and index
        # set-up, the first capture; with more than one worker also the page
        # pool's processes), to tell it from the cost per page.
        few = work / "few.txt"
        few.write_text("\n".join(f"http://127.0.0.1:{port}/kurz/{i}" for i in range(FIXED_N)) + "\n")
        for w in workers:
            archiver(f"archiver, fixed cost ({FIXED_N} pages, {w}w)", f"archive-fixed-{w}", few, w)
        for w in workers:
            archiver(f"archiver snapshot -i, {w} worker(s)", f"archive-{w}", listing, w)
        # The daemon's steady state: the same pages again (the kept reading method, revisits).
        archiver(f"archiver re-capture, {workers[0]} worker(s)", f"archive-{workers[0]}", listing, workers[0])
        rows += steady_state(n, server, port, workers, work)
    finally:
        server.kill()
        shutil.rmtree(work, ignore_errors=True)
    return rows


def steady_child(n: int, workers: int, port: int, data: str, tree: str, server_pid: int) -> None:
    """In its own process: warm up, wait for the page pool, then capture n
    pages with the archiver of ``tree``, and the same n pages again; prints
    one JSON line (per pass: wall, CPU of this process, of the pool and of
    the loopback server ``server_pid``)."""
    os.environ.update({"ARCHIVER_ALLOW_PRIVATE": "1", "ARCHIVER_CONFIG": "", "ARCHIVER_DATA_DIR": data})
    sys.path.insert(0, tree)
    from archiver.archive import Archive
    from archiver.config import load
    from archiver.pages import PagePool

    archive = Archive(load(None))
    warm = [f"http://127.0.0.1:{port}/warm/{i}" for i in range(4 * workers)]
    list(archive.snapshot_many(warm[: 2 * workers], workers=workers))
    pool = archive.pages if isinstance(archive.pages, PagePool) else None
    if pool is not None and not pool.wait_ready(120):
        sys.exit("the page pool did not start")
    helpers = getattr(archive, "helpers", None)  # fetch processes (trees that have them)
    fetchers = getattr(helpers, "fetchers", None) if helpers is not None else getattr(archive, "_fetchers", None)
    if fetchers is not None and not fetchers.wait_ready(120):
        sys.exit("the fetch processes did not start")
    list(archive.snapshot_many(warm[2 * workers:], workers=workers))
    pids = pool.pids() if pool is not None else []
    fetch_pids = fetchers.pids() if fetchers is not None else []

    urls = [f"http://127.0.0.1:{port}/meldung/{i}" for i in range(n)]
    passes = {}
    for kind in STEADY:  # new pages, then the same pages again, unchanged (revisits)
        r0, v0 = archive.committer.groups, resource.getrusage(resource.RUSAGE_SELF).ru_nvcsw
        c0, k0, f0, s0, t0 = (cpu_self(), procs_cpu(pids), procs_cpu(fetch_pids), procs_cpu([server_pid]),
                              time.perf_counter())
        results = list(archive.snapshot_many(urls, workers=workers))
        wall, cpu, kids = time.perf_counter() - t0, cpu_self() - c0, procs_cpu(pids) - k0
        waits = resource.getrusage(resource.RUSAGE_SELF).ru_nvcsw - v0
        fetch = procs_cpu(fetch_pids) - f0
        passes[kind] = {"wall": wall, "cpu": cpu + kids + fetch, "main": cpu, "pool": kids, "fetch": fetch,
                        "server": procs_cpu([server_pid]) - s0, "pages": sum(1 for r in results if hasattr(r, "row")),
                        "rounds": archive.committer.groups - r0, "waits": waits}
    lost = (pool.failures if pool is not None else 0) + (fetchers.failures if fetchers is not None else 0)
    archive.close()
    print(json.dumps({**passes, "pool_failures": lost}))


#: the two timed passes of a steady-state run: N new pages, then the same N pages unchanged
STEADY = ("steady state", "steady re-capture")


def procs_cpu(pids: list[int]) -> float:
    """CPU seconds (user + system) other processes used so far, from /proc."""
    ticks = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def steady_run(n: int, w: int, server: subprocess.Popen, port: int, data: Path,
               tree: Path = REPO) -> dict[str, dict[str, float]]:
    """One steady-state run in a fresh process, per pass (:data:`STEADY`):
    wall s, pages, and CPU s in all (``cpu``: the capture process and its
    page pool), of the capture process alone (``main``), of the page pool
    (``pool``) and of the loopback server meanwhile (``server``: it shares
    the machine's cores with the run, so it is reported, not hidden)."""
    env = {**os.environ, "PYTHONPATH": str(tree)}  # the page pool's workers import the same tree
    _, code, out = run_process([sys.executable, __file__, "--steady-child", str(n), str(w), str(port), str(data),
                                str(tree), str(server.pid)], env=env)
    if code != 0:
        sys.exit(f"steady-state run failed: {out.strip().splitlines()[-1:]}")
    d: dict[str, dict[str, float]] = json.loads(out.strip().splitlines()[-1])
    return {kind: d[kind] for kind in STEADY}


def split(d: dict[str, float]) -> str:
    """CPU ms per page of the capture process, its page pool, its fetch processes and the server."""
    return "  ".join(f"{k} {d[k] * 1000 / max(d['pages'], 1):.2f}" for k in ("main", "pool", "fetch", "server")
                     if k in d)


def per_round(d: dict[str, float]) -> str:
    """Captures per commit round (archiver/grouping.py): above 1 when captures
    waiting for their commit were committed together; and the capture
    process's voluntary context switches per page (each a thread or the
    process blocking: waits for the server, a helper, an fsync, the GIL
    handed between threads)."""
    said = f"{d['pages'] / d['rounds']:.2f} pages/commit round; " if d.get("rounds") else ""
    return said + (f"{d['waits'] / d['pages']:.1f} switches/page; " if "waits" in d else "")


def cores(d: dict[str, float]) -> float:
    """Cores the run kept busy (capture process, page pool and server): on a
    shared machine, what it could get. When two workers get no more than one
    worker got, the machine was the limit, not the code."""
    return (d["cpu"] + d.get("server", 0.0)) / d["wall"]


def steady_state(n: int, server: subprocess.Popen, port: int, workers: list[int],
                 work: Path) -> list[tuple[str, float, float, int]]:
    rows = []
    for w in workers:
        for kind, d in steady_run(n, w, server, port, work / f"steady-{w}").items():
            rows.append((f"archiver {kind}, {w} worker(s)", d["wall"], d["cpu"], int(d["pages"])))
            print(f"  {kind}, {w} worker(s), CPU ms/page: {split(d)}; {per_round(d)}{cores(d):.2f} cores busy",
                  flush=True)
    return rows


def compare(n: int, delay: float, workers: list[int], other: Path, rounds: int) -> None:
    """Steady state of this tree and of ``other`` (another checkout), interleaved
    so that both trees and every worker count see the same load: each round
    runs every (worker count, tree) once, in an order reversed every other
    round (a load that drifts during a round then favours no one). Prints per
    tree and worker count the median pages/s with its spread (min-max over
    the rounds), CPU per page (and its split: capture process, page pool,
    fetch processes, loopback server), and each tree's pages/s against its
    own first worker count as the median of the ratios *within* a round
    (runs minutes apart are not compared), with their spread."""
    import statistics

    trees = {"this": REPO, "other": other.resolve()}
    server, port = loopback.start("article", delay)
    work = Path(tempfile.mkdtemp(prefix="bench-compare-"))
    runs: dict[tuple[str, int], list[dict[str, dict[str, float]]]] = {(name, w): [] for name in trees for w in workers}
    loads = [os.getloadavg()[0]]
    try:
        order = [(w, name) for w in workers for name in trees]
        for r in range(rounds):
            for w, name in (order if r % 2 == 0 else order[::-1]):
                runs[name, w].append(steady_run(n, w, server, port, work / f"{name}-{w}-{r}", trees[name]))
            loads.append(os.getloadavg()[0])
    finally:
        server.kill()
        shutil.rmtree(work, ignore_errors=True)
    for kind in STEADY:
        for w in workers:
            for name in trees:
                passes = [g[kind] for g in runs[name, w]]
                rates = [d["pages"] / d["wall"] for d in passes]
                # CPU seconds per page, medians (as one run of one page, for split()).
                per_page = {k: statistics.median(d[k] / d["pages"] for d in passes)
                            for k in ("cpu", "main", "pool", "fetch", "server") if k in passes[0]}
                per_page["pages"] = 1
                busy = statistics.median(cores(d) for d in passes)
                commits = {"pages": 1.0, "rounds": statistics.median(d.get("rounds", 0) / d["pages"] for d in passes)}
                if "waits" in passes[0]:
                    commits["waits"] = statistics.median(d["waits"] / d["pages"] for d in passes)
                print(f"{kind:<17} {name:<6} {w} worker(s): {statistics.median(rates):7.1f} pages/s "
                      f"[{min(rates):.1f}-{max(rates):.1f}], "
                      f"{per_page['cpu'] * 1000:5.2f} ms CPU/page ({split(per_page)}; {per_round(commits)}"
                      f"{busy:.2f} cores busy; median of {rounds}; {trees[name]})", flush=True)
    for kind in STEADY:
        for w in workers[1:]:
            said = []
            for name in trees:
                ratios = [(b[kind]["pages"] / b[kind]["wall"]) / (a[kind]["pages"] / a[kind]["wall"])
                          for a, b in zip(runs[name, workers[0]], runs[name, w])]
                said.append(f"{name} {statistics.median(ratios):.2f}x [{min(ratios):.2f}-{max(ratios):.2f}]")
            print(f"{kind}, {w} worker(s) vs {workers[0]} (median of the rounds' ratios [spread]): " + ", ".join(said))
    print(f"load average at the start and after each round: {' '.join(f'{x:.1f}' for x in loads)}")


def requisite_cost(n: int, delay: float) -> list[tuple[str, float, float, int]]:
    """Rows of (what, wall s, CPU s, WARC bytes) over n styled pages, without and with requisites."""
    work = Path(tempfile.mkdtemp(prefix="bench-requisites-"))
    server, port = loopback.start("styled", delay)
    env = {**os.environ, "ARCHIVER_ALLOW_PRIVATE": "1", "ARCHIVER_CONFIG": "", "PYTHONPATH": str(REPO)}
    rows = []
    try:
        listing = work / "styled.txt"
        listing.write_text("".join(f"http://127.0.0.1:{port}/artikel/{i}\n" for i in range(n)))
        for what, extra in (("--no-requisites", ["--no-requisites"]), ("with requisites", [])):
            data = work / what.strip("-")
            c0 = children_cpu()
            wall, code, out = run_process(
                [sys.executable, "-m", "archiver", "--data-dir", str(data), "snapshot", *extra, "-i", str(listing)], env=env)
            if code != 0:
                sys.exit(f"archiver snapshot ({what}) failed: {out.strip().splitlines()[-1:]}")
            rows.append((what, wall, children_cpu() - c0, sum(f.stat().st_size for f in (data / "warcs").iterdir())))
    finally:
        server.kill()
        shutil.rmtree(work, ignore_errors=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--delays", type=float, nargs="+", default=[0.0, 0.05], help="seconds the server waits per response")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 8])
    ap.add_argument("--styled-n", type=int, default=100, help="styled pages for the requisites comparison (0: skip)")
    ap.add_argument("--compare", type=Path, metavar="DIR",
                    help="only the steady state, alternating with the archiver of another checkout DIR")
    ap.add_argument("--rounds", type=int, default=3, help="runs per tree and worker count with --compare")
    ap.add_argument("--steady-child", nargs=6, metavar=("N", "WORKERS", "PORT", "DIR", "TREE", "SERVER_PID"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.steady_child:
        n, w, port, data, tree, server_pid = args.steady_child
        steady_child(int(n), int(w), int(port), data, tree, int(server_pid))
        return
    print(f"pages: {args.n}, cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}")
    if args.compare:
        for delay in args.delays:
            print(f"\nserver delay per response: {delay * 1000:.0f} ms (steady state)")
            compare(args.n, delay, args.workers, args.compare, args.rounds)
        return
    for delay in args.delays:
        rows = one_delay(args.n, delay, args.workers)
        print(f"\nserver delay per response: {delay * 1000:.0f} ms")
        print(f"{'':<36} {'wall s':>7} {'pages/s':>8} {'CPU ms/page':>11}")
        for what, wall, cpu, pages in rows:
            print(f"{what:<36} {wall:7.2f} {pages / wall:8.1f} {cpu * 1000 / max(pages, 1):11.2f}")
        bare = rows[0]
        bare_page = bare[2] / bare[3]
        fixed = {int(r[0].rsplit(", ", 1)[1].rstrip("w)")): r for r in rows if "fixed cost" in r[0]}
        arch = [r for r in rows if r[0].startswith("archiver") and "fixed cost" not in r[0] and "steady" not in r[0]]
        for what, wall, cpu, pages in arch:
            fx = fixed[int(what.rsplit(", ", 1)[1].split()[0])]  # the same number of workers
            marginal = (cpu - fx[2]) / max(pages - fx[3], 1)
            print(f"{what}: CPU/page {cpu / pages / bare_page:.2f}x the bare loop "
                  f"({marginal / bare_page:.2f}x without the fixed cost of a run), wall {wall / bare[1]:.2f}x")
        for kind in ("snapshot -i", *STEADY):
            runs = [r for r in rows if kind in r[0]]
            for r in runs:
                if kind in STEADY:
                    print(f"{r[0]}: CPU/page {r[2] / r[3] / bare_page:.2f}x the bare loop")
            for r in runs[1:]:
                print(f"pages/s {r[0].split(', ')[1]} vs {runs[0][0].split(', ')[1]} ({kind}): "
                      f"{(r[3] / r[1]) / (runs[0][3] / runs[0][1]):.2f}x")
    if args.styled_n:
        n, delay = args.styled_n, args.delays[-1]
        rows = requisite_cost(n, delay)
        print(f"\npage requisites: {n} styled pages (7 requisites each, 5 shared by every page), "
              f"server delay {delay * 1000:.0f} ms")
        print(f"{'':<36} {'wall s':>7} {'pages/s':>8} {'CPU ms/page':>11} {'WARC KiB/page':>13}")
        for what, wall, cpu, size in rows:
            print(f"{'archiver snapshot -i ' + what:<36} {wall:7.2f} {n / wall:8.1f} {cpu * 1000 / n:11.2f} "
                  f"{size / n / 1024:13.1f}")
        (_, w0, c0, b0), (_, w1, c1, b1) = rows
        print(f"added cost of requisites: wall {w1 / w0:.2f}x, CPU {c1 / c0:.2f}x, WARC bytes {b1 / b0:.2f}x")


if __name__ == "__main__":
    main()

"""Benchmark: N sources due at once, captured by `archiver daemon`, against a
baseline of calling ``archive.snapshot`` from a plain thread pool.

Both run in the same invocation, as separate processes, against the same
loopback server, with the same worker count. The capture span of each
(first capture start to last capture end, from the snapshot rows) gives the
daemon's dispatch overhead per capture; ``wait4`` gives each process's peak
RSS. Politeness is opened up (per-host limit = workers, no delay, no jitter)
so that only the scheduling machinery is measured.

    python bench/scheduler.py --n 10000 [--workers 8]
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
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

PAGE = (
    '<!doctype html><html lang="de"><head><meta charset="utf-8"><title>Artikel {i}</title></head><body>'
    "<main><article><h1>Artikel {i}</h1><p>Der Stadtrat hat am Montag mit 31 zu 12 Stimmen ein Netz von "
    "{i} Kilometern Radwegen beschlossen.</p><p>Die Kosten liegen bei 8,5 Millionen Euro.</p></article></main>"
    "</body></html>"
)


def serve() -> tuple[ThreadingHTTPServer, str]:
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802
            body = PAGE.format(i=self.path.rsplit("/", 1)[-1]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), H)
    server.daemon_threads = True
    server.request_queue_size = 1024
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}/a/"


def write_config(path: Path, workers: int) -> Path:
    path.write_text(
        f"[daemon]\nworkers = {workers}\nper_host_concurrency = {workers}\nper_host_delay = 0.0\njitter = 0.0\n"
        f"[capture]\nworkers = {workers}\n"
    )
    return path


def env_for(data_dir: Path, config: Path) -> dict[str, str]:
    return {**os.environ, "ARCHIVER_ALLOW_PRIVATE": "1", "ARCHIVER_DATA_DIR": str(data_dir),
            "ARCHIVER_CONFIG": str(config), "PYTHONPATH": str(REPO)}


def capture_span(data_dir: Path) -> tuple[int, float]:
    """(snapshots, seconds from the first capture's start to the last one's end)."""
    with sqlite3.connect(data_dir / "index.sqlite3") as conn:
        n, first, last = conn.execute("SELECT COUNT(*), MIN(captured_at), MAX(ended_at) FROM snapshots").fetchone()
    if not n:
        return 0, 0.0
    return n, (datetime.fromisoformat(last) - datetime.fromisoformat(first)).total_seconds()


def count(data_dir: Path) -> int:
    try:
        with sqlite3.connect(data_dir / "index.sqlite3", timeout=30) as conn:
            return conn.execute("SELECT COUNT(*) FROM snapshots").fetchone()[0]
    except sqlite3.Error:
        return 0


def wait_child(proc: subprocess.Popen) -> tuple[int, float]:
    """Exit code and peak RSS (MiB) of a child process."""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_maxrss / 1024


# -- the baseline, run as its own process -----------------------------------------
def baseline_main(base: str, n: int, workers: int) -> None:
    from archiver import config
    from archiver.archive import Archive

    settings = config.load()
    with Archive(settings) as archive:
        failed = sum(1 for r in archive.snapshot_many([f"{base}{i}" for i in range(n)], workers=workers)
                     if not hasattr(r, "row"))
    print(json.dumps({"failed": failed}))


# -- the run ------------------------------------------------------------------------
def run_baseline(root: Path, base: str, n: int, workers: int) -> dict[str, Any]:
    data = root / "baseline"
    config = write_config(root / "baseline.toml", workers)
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--baseline-worker", base, "--n", str(n), "--workers", str(workers)],
        env=env_for(data, config), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    code, rss = wait_child(proc)
    wall = time.monotonic() - started
    if code != 0:
        raise SystemExit(f"baseline failed ({code}): {proc.stderr.read()[-2000:]}")
    done, span = capture_span(data)
    return {"captures": done, "span_s": span, "wall_s": wall, "peak_rss_mib": rss}


def run_daemon(root: Path, base: str, n: int, workers: int) -> dict[str, Any]:
    from archiver.archive import utc_now
    from archiver.daemon.sources import Sources
    from store.index import Index

    data = root / "daemon"
    config = write_config(root / "daemon.toml", workers)
    index = Index(data / "index.sqlite3")
    Sources(index, utc_now).enrol([f"{base}{i}" for i in range(n)], origin="bench", notify=None, every="1h")
    index.close()
    log_path = root / "daemon.log"
    started = time.monotonic()
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "archiver", "daemon"], env=env_for(data, config),
                                stdout=subprocess.DEVNULL, stderr=log)
        while count(data) < n:
            if proc.poll() is not None:
                raise SystemExit(f"daemon exited early: {log_path.read_text()[-2000:]}")
            time.sleep(0.5)
        wall = time.monotonic() - started
        proc.send_signal(signal.SIGTERM)
        code, rss = wait_child(proc)
    text = log_path.read_text()
    if code != 0:
        raise SystemExit(f"daemon exited {code}: {text[-2000:]}")
    done, span = capture_span(data)
    # Start-up: reading N sources and planning N jobs, until the first capture begins.
    t_start = _log_time(text, "daemon starting")
    t_first = _log_time(text, " capture ")
    return {"captures": done, "span_s": span, "wall_s": wall, "peak_rss_mib": rss,
            "startup_to_first_capture_s": (t_first - t_start) if t_start and t_first else None}


def run_dispatch_only(root: Path, n: int, workers: int) -> dict[str, Any]:
    """The daemon's own machinery per capture (due queue, dispatcher,
    outcome row, re-planning) with the capture itself replaced by a no-op."""
    from archiver import config
    from archiver.archive import Archive, utc_now
    from archiver.daemon.scheduler import Daemon, Outcome
    from archiver.daemon.sources import Sources

    settings = config.load(write_config(root / "dispatch.toml", workers), environ={})
    settings.archive.data_dir = str(root / "dispatch")
    archive = Archive(settings)
    Sources(archive.index, utc_now).enrol([f"http://127.0.0.1:9/a/{i}" for i in range(n)], origin="bench",
                                           notify=None, every="1h")
    daemon = Daemon(archive, settings, clock=utc_now)
    lock = threading.Lock()
    done = threading.Event()
    seen = {"n": 0, "first": 0.0, "last": 0.0}

    def no_capture(source: Any) -> Outcome:
        with lock:
            seen["n"] += 1
            seen["first"] = seen["first"] or time.monotonic()
            seen["last"] = time.monotonic()
        return Outcome(200, None, None, "none")

    daemon._capture = no_capture  # type: ignore[method-assign]
    original_record = daemon._record

    def record(source: Any, outcome: Any) -> Any:
        result = original_record(source, outcome)
        with lock:
            seen["recorded"] = seen.get("recorded", 0) + 1
            if seen["recorded"] >= n:
                seen["last"] = time.monotonic()
                done.set()
        return result

    daemon._record = record  # type: ignore[method-assign]
    started = time.monotonic()
    thread = threading.Thread(target=daemon.run)
    thread.start()
    done.wait(600)
    daemon.request_stop()
    thread.join(60)
    archive.close()
    span = seen["last"] - seen["first"]
    return {"jobs": seen["n"], "span_s": round(span, 3), "per_job_ms": round(span / max(1, seen["n"]) * 1000, 3),
            "startup_s": round(seen["first"] - started, 3)}


def _log_time(text: str, marker: str) -> float | None:
    for line in text.splitlines():
        if marker in line:
            stamp = line[:23]
            try:
                return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()
            except ValueError:
                return None
    return None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=10_000, help="sources due at once (default 10000)")
    p.add_argument("--workers", type=int, default=8, help="capture workers in both runs (default 8)")
    p.add_argument("--keep", action="store_true", help="keep the benchmark archives")
    p.add_argument("--baseline-worker", metavar="BASE", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.baseline_worker:
        baseline_main(args.baseline_worker, args.n, args.workers)
        return
    server, base = serve()
    root = Path(tempfile.mkdtemp(prefix="archiver-bench-"))
    try:
        print(f"{args.n} sources due at once, {args.workers} workers, loopback server; archives in {root}")
        base_r = run_baseline(root, base, args.n, args.workers)
        print(f"baseline (archive.snapshot in a thread pool): {json.dumps(base_r)}")
        daemon_r = run_daemon(root, base, args.n, args.workers)
        print(f"daemon (due queue + dispatcher):             {json.dumps(daemon_r)}")
        n = args.n
        per_base = base_r["span_s"] / n * 1000
        per_daemon = daemon_r["span_s"] / n * 1000
        machinery = run_dispatch_only(root, args.n, args.workers)
        print(f"daemon machinery only (no-op capture):       {json.dumps(machinery)}")
        print(f"per capture: baseline {per_base:.2f} ms, daemon {per_daemon:.2f} ms; "
              f"dispatch overhead {per_daemon - per_base:+.2f} ms/capture; ratio daemon/baseline "
              f"{daemon_r['span_s'] / base_r['span_s']:.2f}")
        print(f"peak RSS: baseline {base_r['peak_rss_mib']:.0f} MiB, daemon {daemon_r['peak_rss_mib']:.0f} MiB "
              f"(ratio {daemon_r['peak_rss_mib'] / base_r['peak_rss_mib']:.2f}); daemon start-up to first capture "
              f"{daemon_r['startup_to_first_capture_s']:.2f} s")
        print(f"daemon machinery alone: {machinery['per_job_ms']:.3f} ms per capture "
              f"({machinery['per_job_ms'] / per_base * 100:.1f}% of a baseline capture); "
              f"planning {args.n} sources took {machinery['startup_s']:.2f} s")
    finally:
        server.shutdown()
        if not args.keep:
            import shutil

            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

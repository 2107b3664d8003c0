"""Where the capture process spends its CPU, per page, in the steady state.

One process builds an Archive over a loopback page server (bench/loopback.py,
its own process), captures a few pages to warm up, then N new pages and the
same N pages again, unchanged, and prints per page for each pass:

- the thread CPU (``time.thread_time``) of each part of the snapshot flow,
  inclusive of the parts inside it (the capture, reading the page, record
  building with the signed intent, the commit round and its pieces);
- the SQL statements the capture threads ran, by shape, with their thread
  CPU (the commit's fsync of the WAL is inside COMMIT);
- with ``--calls``: Python function calls per page (cProfile's count, in a
  separate pass: the profiler's overhead would distort the CPU figures);
- with ``--memory``: bytes allocated per page and still held after it, and
  the peak (tracemalloc, a separate pass too).

Parts are timed by wrapping the functions named in :data:`PARTS`; the
wrappers cost about a microsecond each, so the figures are a little above a
run without them (compare the process CPU line with bench/capture.py's
steady state). With ``--workers N`` (N > 1) pages are read in the page pool,
as a daemon does, and the figures are those of the capture process alone.

    python bench/capture_profile.py [--n 300] [--workers 1] [--calls] [--memory] [--tree DIR]

Run it from outside the checkout (``cd /tmp``) so that ``--tree`` decides
which archiver is imported.
"""

from __future__ import annotations

import argparse
import collections
import functools
import importlib
import os
import re
import resource
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parent.parent

#: (module, class or None, function) of each part timed
PARTS = [
    ("archiver.archive", "Archive", "snapshot"),
    ("archiver.capture.http", "Capturer", "capture"),
    ("archiver.archive", "Archive", "read_page"),
    ("archiver.archive", "Archive", "requisites"),
    ("archiver.archive", None, "exchange_records"),
    ("archiver.archive", "Archive", "append_sealed"),
    ("archiver.archive", "Archive", "commit_located"),
    ("archiver.archive", None, "packed_article"),
    ("archiver.committing", None, "_commit_round"),
    ("archiver.committing", None, "_sign"),
    ("archiver.committing", None, "_insert"),
    ("archiver.committing", None, "store_watermarks"),
    ("archiver.provenance.notary", "Notary", "sign_snapshot"),
    ("archiver.provenance.notary", "Notary", "checkpoint"),
    ("archiver.provenance.keys", "KeyStore", "signer"),
    ("store.index", "Index", "last_snapshot"),
    ("store.index", "Index", "original_for_payload"),
    ("store.index", "Index", "insert_snapshot"),
    ("store.warcwriter", "WarcFileWriter", "append"),
    ("store.warcwriter", "WarcFileWriter", "start_sync"),
]


class Tally:
    """Thread CPU and calls per label, from any thread."""

    def __init__(self) -> None:
        self.cpu: collections.Counter[str] = collections.Counter()
        self.calls: collections.Counter[str] = collections.Counter()
        self.lock = threading.Lock()

    def add(self, label: str, seconds: float) -> None:
        with self.lock:
            self.cpu[label] += seconds
            self.calls[label] += 1

    def clear(self) -> None:
        with self.lock:
            self.cpu.clear()
            self.calls.clear()


def wrap_parts(tally: Tally) -> None:
    for module, owner, name in PARTS:
        mod = importlib.import_module(module)
        target: Any = getattr(mod, owner) if owner else mod
        real = getattr(target, name)
        label = f"{owner or module.rsplit('.', 1)[-1]}.{name}"

        def timed(*args: Any, _real: Callable[..., Any] = real, _label: str = label, **kwargs: Any) -> Any:
            t0 = time.thread_time()
            try:
                return _real(*args, **kwargs)
            finally:
                tally.add(_label, time.thread_time() - t0)

        functools.update_wrapper(timed, real)
        setattr(target, name, timed)


def statement_shape(sql: str) -> str:
    """A statement without its literals, so that one shape is counted once."""
    sql = re.sub(r"\(\?(,\s*\?)*\)", "(..)", sql)
    return " ".join(sql.split())[:100]


def count_sql(tally: Tally) -> None:
    """Every connection the index opens from now on reports its statements."""

    class Timed(sqlite3.Connection):
        def execute(self, sql: str, *args: Any) -> Any:  # type: ignore[override]
            t0 = time.thread_time()
            try:
                return super().execute(sql, *args)
            finally:
                tally.add(statement_shape(sql), time.thread_time() - t0)

        def executemany(self, sql: str, *args: Any) -> Any:  # type: ignore[override]
            t0 = time.thread_time()
            try:
                return super().executemany(sql, *args)
            finally:
                tally.add("executemany " + statement_shape(sql), time.thread_time() - t0)

    real = sqlite3.connect
    sqlite3.connect = lambda *a, **k: real(*a, factory=Timed, **k)  # type: ignore[assignment]


def cpu_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def report(title: str, tally: Tally, n: int, cpu: float, wall: float) -> None:
    print(f"\n{title}: {cpu * 1000 / n:.2f} ms CPU per page (process), {wall * 1000 / n:.2f} ms wall")
    for label, seconds in sorted(tally.cpu.items(), key=lambda kv: -kv[1]):
        print(f"  {seconds * 1000 / n:7.3f} ms  {tally.calls[label] / n:5.2f}x  {label}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--workers", type=int, default=1, help="capture threads (more than 1: pages read in the pool)")
    ap.add_argument("--calls", action="store_true", help="also count Python function calls per page (cProfile)")
    ap.add_argument("--memory", action="store_true", help="also trace allocated memory per page (tracemalloc)")
    ap.add_argument("--tree", type=Path, default=REPO, help="the checkout whose archiver is measured")
    args = ap.parse_args()
    sys.path.insert(0, str(args.tree.resolve()))
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import loopback

    data = Path(tempfile.mkdtemp(prefix="bench-capture-profile-"))
    os.environ.update({"ARCHIVER_ALLOW_PRIVATE": "1", "ARCHIVER_CONFIG": "", "ARCHIVER_DATA_DIR": str(data)})
    parts, statements = Tally(), Tally()
    count_sql(statements)
    wrap_parts(parts)
    from archiver.archive import Archive
    from archiver.config import load
    from archiver.pages import PagePool

    server, port = loopback.start("article", 0.0)
    try:
        archive = Archive(load(None))

        def capture(urls: list[str]) -> None:
            if args.workers > 1:
                list(archive.snapshot_many(urls, workers=args.workers))
            else:
                for url in urls:
                    archive.snapshot(url)

        capture([f"http://127.0.0.1:{port}/warm/{i}" for i in range(2 * args.workers + 3)])
        if isinstance(archive.pages, PagePool) and not archive.pages.wait_ready(120):
            sys.exit("the page pool did not start")
        capture([f"http://127.0.0.1:{port}/warm2/{i}" for i in range(2 * args.workers + 3)])
        import archiver

        print(f"archiver from {Path(archiver.__file__).parent.parent}; {args.n} pages, {args.workers} capture thread(s), "
              f"load average {os.getloadavg()[0]:.1f}")
        for label, path in (("new pages", "meldung"), ("unchanged pages (re-capture)", "meldung")):
            urls = [f"http://127.0.0.1:{port}/{path}/{i}" for i in range(args.n)]
            parts.clear()
            statements.clear()
            c0, t0 = cpu_self(), time.perf_counter()
            capture(urls)
            cpu, wall = cpu_self() - c0, time.perf_counter() - t0
            report(f"{label}, parts (thread CPU, inclusive)", parts, args.n, cpu, wall)
            total = sum(statements.calls.values())
            print(f"  SQL: {total / args.n:.1f} statements per page, "
                  f"{sum(statements.cpu.values()) * 1000 / args.n:.3f} ms")
            for shape, seconds in sorted(statements.cpu.items(), key=lambda kv: -kv[1])[:20]:
                print(f"  {seconds * 1000 / args.n:7.3f} ms  {statements.calls[shape] / args.n:5.2f}x  {shape}")
        more = [f"http://127.0.0.1:{port}/extra/{i}" for i in range(args.n)]
        if args.calls:
            import cProfile
            import pstats

            profile = cProfile.Profile()
            profile.enable()
            capture(more[: args.n // 2])
            profile.disable()
            print(f"\nPython function calls per new page: {pstats.Stats(profile).total_calls / (args.n // 2):.0f} "
                  "(this thread's; with more than one capture thread, the calling thread only)")
        if args.memory:
            import tracemalloc

            tracemalloc.start()
            before = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            capture(more[args.n // 2:])
            held, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            m = args.n - args.n // 2
            print(f"\nmemory per new page: {(held - before) / m / 1024:.1f} KiB still held after the run, "
                  f"peak {(peak - before) / 1024:.0f} KiB above the start")
        archive.close()
    finally:
        server.kill()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()

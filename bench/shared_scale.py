"""The shared mode's figures, side by side with the embedded mode in one run,
against a real PostgreSQL cluster and a real SeaweedFS S3 server on loopback
(started here, as the tests start them):

1. captures per second: N loopback pages captured by 1 `archiver snapshot -i`
   process on the embedded archive, and by 1, 2 and 3 concurrent processes
   (separate workers, each its own data directory) on one PostgreSQL + S3
   archive; then the same with `archiver daemon`: one embedded daemon, and
   1, 2 and 3 daemons sharing the schedule (claims with leases), timed from
   enrolling N due sources until all N are captured;
2. time to claim due work with 1,000,000 sources in the table: the shared
   daemon's claim (``Claims.claim(100)``: SKIP LOCKED, leases written) with
   the schema's index on sources(next_due) and with it dropped, on
   PostgreSQL and on SQLite;
3. index bytes per snapshot on each backend.

    python bench/shared_scale.py [--n 200] [--delay 0.05] [--sources 1000000]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(REPO / "tests"))
import loopback  # noqa: E402
import servers  # noqa: E402

WORKER = {"ARCHIVER_SIGNING_ROLE": "worker"}  # machines 2 and 3 sign with keys of their own


def run_workers(urls: list[str], workers: int, env: dict[str, str], data: Path) -> float:
    """Seconds for ``workers`` concurrent snapshot processes to capture ``urls``."""
    procs = []
    start = time.perf_counter()
    for w in range(workers):
        part = urls[w::workers]
        listing = data.parent / f"urls-{workers}-{w}.txt"
        listing.write_text("\n".join(part) + "\n")
        wdir = data.parent / f"{data.name}-w{w}"
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "archiver", "--data-dir", str(wdir if w else data), "snapshot", "-i", str(listing)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            env={**os.environ, **env, "ARCHIVER_ALLOW_PRIVATE": "1", "PYTHONPATH": str(REPO), **(WORKER if w else {})},
        ))
    for p in procs:
        _, err = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"worker failed: {err.strip()[-500:]}")
    return time.perf_counter() - start


def run_daemons(urls: list[str], workers: int, env: dict[str, str], data: Path) -> float:
    """Seconds for ``workers`` daemons (already running, idle) to capture ``urls``
    once they are enrolled (due at once), read from the index."""
    full = {**os.environ, **env, "ARCHIVER_ALLOW_PRIVATE": "1", "PYTHONPATH": str(REPO)}
    config = data.parent / f"daemon-{data.name}.toml"
    config.write_text("[daemon]\nworkers = 8\nper_host_concurrency = 8\nper_host_delay = 0.0\nlease = 30.0\n")
    procs, logs = [], []
    for w in range(workers):
        wdir = data.parent / f"{data.name}-w{w}" if w else data
        log = data.parent / f"daemon-{data.name}-{w}.log"
        logs.append(log)
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "archiver", "--data-dir", str(wdir), "--config", str(config), "daemon"],
            stdout=subprocess.DEVNULL, stderr=open(log, "w"),
            env={**full, "ARCHIVER_WORKER_NAME": f"w{w}", **(WORKER if w else {})},
        ))
    try:
        while not all("daemon started" in p.read_text() for p in logs):
            if any(p.poll() is not None for p in procs):
                raise SystemExit("a daemon exited: " + "".join(p.read_text()[-500:] for p in logs))
            time.sleep(0.1)
        listing = data.parent / f"sources-{data.name}.toml"
        listing.write_text("".join(f'[[source]]\nurl = "{u}"\nevery = "1h"\n\n' for u in urls))
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "archiver", "--data-dir", str(data), "watch", "--file", str(listing)],
                       env=full, check=True, stdout=subprocess.DEVNULL)
        while count_snapshots(env, data) < len(urls):
            time.sleep(0.05)
        return time.perf_counter() - start
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(60)


def count_snapshots(env: dict[str, str], data: Path) -> int:
    if "ARCHIVER_INDEX" in env:
        import psycopg

        with psycopg.connect(env["ARCHIVER_INDEX"]) as conn:
            row = conn.execute("SELECT COUNT(*) FROM snapshots").fetchone()
    else:
        with sqlite3.connect(f"file:{data / 'index.sqlite3'}?mode=ro", uri=True, timeout=30) as conn:
            row = conn.execute("SELECT COUNT(*) FROM snapshots").fetchone()
    return int(row[0]) if row else 0


def share_keys(data: Path, workers: int, env: dict[str, str]) -> None:
    """Workers 1.. make their own keys, and the first machine (the root key) enrols them."""
    full = {**os.environ, **env, "ARCHIVER_ALLOW_PRIVATE": "1", "PYTHONPATH": str(REPO)}
    for w in range(1, workers):
        wdir = data.parent / f"{data.name}-w{w}"
        shown = subprocess.run([sys.executable, "-m", "archiver", "--data-dir", str(wdir), "keys", "show"],
                               env={**full, **WORKER}, capture_output=True, text=True)
        if "archiver keys enroll " not in shown.stderr:
            continue  # enrolled already
        key = shown.stderr.split("archiver keys enroll ")[1].split("`")[0].split()[0]
        subprocess.run([sys.executable, "-m", "archiver", "--data-dir", str(data), "keys", "enroll", key],
                       env=full, check=True, capture_output=True)


def pg_size(url: str) -> int:
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        return int(row[0]) if row else 0


def _median_ms(run, times: int = 5) -> float:  # type: ignore[no-untyped-def]
    out = []
    for _ in range(times):
        t = time.perf_counter()
        run()
        out.append((time.perf_counter() - t) * 1000)
    return sorted(out)[times // 2]


def claim_times(pg: servers.PostgresServer, n: int, data: Path) -> dict[str, float]:
    """Milliseconds (median of 5) for the shared daemon's claim of 100 due
    sources out of ``n`` (leases written and committed), with the schema's
    index on sources(next_due) and with it dropped; PostgreSQL and SQLite."""
    from datetime import datetime, timezone

    import psycopg

    from archiver.daemon.claims import Claims, Worker
    from store.index import Index
    from store.pg import PgIndex

    now = datetime(2030, 1, 1, tzinfo=timezone.utc)
    out: dict[str, float] = {}

    def measure(index: Index, drop: Callable[[], None], key: str) -> None:
        claims = Claims(index, Worker("bench", "bench", 1), lease=60, per_host_delay=0, clock=lambda: now)
        claims.register()

        def claim() -> None:
            assert len(claims.claim(100)) == 100

        out[key + "_indexed"] = _median_ms(claim)
        drop()
        out[key] = _median_ms(claim)

    url = pg.create_database()
    pgi = PgIndex(url)  # the schema, with its index on next_due
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO sources(url, added_at, every, next_due) SELECT 'https://example.org/a/' || g, %s, '1h', "
            "to_char(timestamp '2029-01-01' + g * interval '1 second', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') "
            "FROM generate_series(1, %s) g", (now.isoformat(), n))
        conn.execute("ANALYZE sources")

    def drop_pg() -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("DROP INDEX sources_due")
            conn.execute("ANALYZE sources")

    measure(pgi, drop_pg, "pg")
    pgi.close()
    db = data.parent / "claim.sqlite3"
    Index(db).close()
    lite = sqlite3.connect(db, isolation_level=None)
    lite.execute(
        "WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < ?) "
        "INSERT INTO sources(url, added_at, every, next_due) SELECT 'https://example.org/a/' || i, ?, '1h', "
        "strftime('%Y-%m-%dT%H:%M:%S.000000Z', '2029-01-01', '+' || i || ' seconds') FROM g", (n, now.isoformat()))
    lite.execute("ANALYZE")
    lite.close()
    sqi = Index(db)
    measure(sqi, lambda: sqi.execute("DROP INDEX sources_due"), "sqlite")
    sqi.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200, help="pages per run")
    ap.add_argument("--delay", type=float, default=0.05, help="seconds per response (stands in for the network)")
    ap.add_argument("--sources", type=int, default=1_000_000)
    args = ap.parse_args()
    server, port = loopback.start("article", args.delay)
    pg, s3 = servers.PostgresServer(), servers.S3Server()
    tmp = Path(tempfile.mkdtemp(prefix="archiver-scale-"))
    try:
        print(f"{args.n} loopback pages, {args.delay * 1000:.0f} ms per response")
        rows = []
        data = tmp / "embedded"
        urls = [f"http://127.0.0.1:{port}/e/{i}" for i in range(args.n)]
        secs = run_workers(urls, 1, {}, data)
        emb_rate = args.n / secs
        emb_bytes = sum(p.stat().st_size for p in data.glob("index.sqlite3*")) / args.n
        rows.append(("embedded (SQLite + directory)", 1, secs, emb_rate))
        shared_bytes = 0.0
        for workers in (1, 2, 3):
            url = pg.create_database()
            env = {"ARCHIVER_INDEX": url, "ARCHIVER_WARCS": f"s3://{s3.bucket}/w{workers}",
                   "ARCHIVER_S3_ENDPOINT_URL": s3.endpoint_url, **s3.env()}
            data = tmp / f"shared{workers}"
            base = pg_size(url)
            # One capture first makes the archive and its key; the workers share that key.
            run_workers([f"http://127.0.0.1:{port}/s{workers}/first"], 1, env, data)
            share_keys(data, workers, env)
            urls = [f"http://127.0.0.1:{port}/s{workers}/{i}" for i in range(args.n)]
            secs = run_workers(urls, workers, env, data)
            rows.append((f"shared (PostgreSQL + S3), {workers} worker(s)", workers, secs, args.n / secs))
            if workers == 1:
                shared_bytes = (pg_size(url) - base) / (args.n + 1)
        # The daemons: one embedded, then 1, 2 and 3 sharing one schedule.
        data = tmp / "embedded-daemon"
        secs = run_daemons([f"http://127.0.0.1:{port}/ed/{i}" for i in range(args.n)], 1, {}, data)
        emb_daemon = args.n / secs
        daemon_rows = [("embedded daemon (due queue)", 1, secs, emb_daemon)]
        for workers in (1, 2, 3):
            url = pg.create_database()
            env = {"ARCHIVER_INDEX": url, "ARCHIVER_WARCS": f"s3://{s3.bucket}/d{workers}",
                   "ARCHIVER_S3_ENDPOINT_URL": s3.endpoint_url, **s3.env()}
            data = tmp / f"daemon{workers}"
            run_workers([f"http://127.0.0.1:{port}/d{workers}/first"], 1, env, data)
            share_keys(data, workers, env)
            secs = run_daemons([f"http://127.0.0.1:{port}/d{workers}/{i}" for i in range(args.n)], workers, env, data)
            daemon_rows.append((f"shared daemons (claims), {workers} worker(s)", workers, secs, args.n / secs))
        print(f"{'configuration':<44} {'seconds':>8} {'captures/s':>11} {'vs embedded':>12}")
        for name, _, secs, rate in rows:
            print(f"{name:<44} {secs:>8.2f} {rate:>11.1f} {rate / emb_rate:>11.2f}x")
        for name, _, secs, rate in daemon_rows:
            print(f"{name:<44} {secs:>8.2f} {rate:>11.1f} {rate / emb_daemon:>11.2f}x")
        print(f"index bytes per snapshot: SQLite {emb_bytes:,.0f}, PostgreSQL {shared_bytes:,.0f}")
        c = claim_times(pg, args.sources, tmp / "x")
        print(f"claim 100 due of {args.sources:,} sources (ms, median of 5): PostgreSQL {c['pg_indexed']:.2f} "
              f"with the index on next_due, {c['pg']:.1f} without; SQLite {c['sqlite_indexed']:.2f}, "
              f"{c['sqlite']:.1f} without")
    finally:
        server.kill()
        pg.close()
        s3.close()
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

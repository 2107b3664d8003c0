"""The shared mode's figures, side by side with the embedded mode in one run,
against a real PostgreSQL cluster and a real SeaweedFS S3 server on loopback
(started here, as the tests start them):

1. captures per second: N loopback pages captured by 1 `archiver snapshot -i`
   process on the embedded archive, and by 1, 2 and 3 concurrent processes
   (separate workers, each its own host name) on one PostgreSQL + S3 archive;
2. time to pick due work with 1,000,000 sources in the table: the claim
   query a shared scheduler runs (`... FOR UPDATE SKIP LOCKED LIMIT 100`) on
   PostgreSQL, beside the same selection on SQLite;
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

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(REPO / "tests"))
import loopback  # noqa: E402
import servers  # noqa: E402

CLAIM = ("SELECT url FROM sources WHERE active=1 AND next_due <= %s ORDER BY next_due "
         "LIMIT 100 FOR UPDATE SKIP LOCKED")


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
            env={**os.environ, **env, "ARCHIVER_ALLOW_PRIVATE": "1", "PYTHONPATH": str(REPO)},
        ))
    for p in procs:
        _, err = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"worker failed: {err.strip()[-500:]}")
    return time.perf_counter() - start


def share_keys(data: Path, workers: int) -> None:
    """Every worker signs with the archive's one key (copied, as an operator deploys it)."""
    import shutil

    for w in range(1, workers):
        wdir = data.parent / f"{data.name}-w{w}"
        if not wdir.exists():
            wdir.mkdir()
            shutil.copytree(data / "keys", wdir / "keys")
            if (data / "keyring.json").exists():  # a shared archive keeps its keyring in the index
                shutil.copy2(data / "keyring.json", wdir / "keyring.json")


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
    """Milliseconds (median of 5) to pick 100 due of ``n`` sources: PostgreSQL's
    claim and SQLite's selection, without and with an index on next_due."""
    import psycopg

    from store.pg import PgIndex

    url = pg.create_database()
    PgIndex(url).close()  # the schema
    now = "2030-01-01T00:00:00.000000Z"
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO sources(url, added_at, every, next_due) SELECT 'https://example.org/a/' || g, %s, '1h', "
            "to_char(timestamp '2029-01-01' + g * interval '1 second', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') "
            "FROM generate_series(1, %s) g", (now, n))
        conn.execute("DROP INDEX IF EXISTS sources_due")  # the schema's own (5): measured without it first
        conn.execute("ANALYZE sources")
    out: dict[str, float] = {}
    with psycopg.connect(url) as conn:
        def claim() -> None:
            with conn.transaction():
                assert len(conn.execute(CLAIM, (now,)).fetchall()) == 100

        out["pg"] = _median_ms(claim)
        conn.execute("CREATE INDEX sources_due ON sources(next_due) WHERE active = 1")
        conn.commit()
        out["pg_indexed"] = _median_ms(claim)
    from store.index import Index

    db = data.parent / "claim.sqlite3"
    Index(db).close()
    lite = sqlite3.connect(db, isolation_level=None)
    lite.execute("DROP INDEX IF EXISTS sources_due")
    lite.execute(
        "WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < ?) "
        "INSERT INTO sources(url, added_at, every, next_due) SELECT 'https://example.org/a/' || i, ?, '1h', "
        "strftime('%Y-%m-%dT%H:%M:%S.000000Z', '2029-01-01', '+' || i || ' seconds') FROM g", (n, now))
    select = CLAIM.replace("%s", "?").replace(" FOR UPDATE SKIP LOCKED", "")

    def pick() -> None:
        lite.execute("BEGIN IMMEDIATE")
        assert len(lite.execute(select, (now,)).fetchall()) == 100
        lite.execute("ROLLBACK")

    out["sqlite"] = _median_ms(pick)
    lite.execute("CREATE INDEX sources_due ON sources(next_due) WHERE active = 1")
    out["sqlite_indexed"] = _median_ms(pick)
    lite.close()
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
            share_keys(data, workers)
            urls = [f"http://127.0.0.1:{port}/s{workers}/{i}" for i in range(args.n)]
            secs = run_workers(urls, workers, env, data)
            rows.append((f"shared (PostgreSQL + S3), {workers} worker(s)", workers, secs, args.n / secs))
            if workers == 1:
                shared_bytes = (pg_size(url) - base) / (args.n + 1)
        print(f"{'configuration':<42} {'seconds':>8} {'captures/s':>11} {'vs embedded':>12}")
        for name, _, secs, rate in rows:
            print(f"{name:<42} {secs:>8.2f} {rate:>11.1f} {rate / emb_rate:>11.2f}x")
        print(f"index bytes per snapshot: SQLite {emb_bytes:,.0f}, PostgreSQL {shared_bytes:,.0f}")
        c = claim_times(pg, args.sources, tmp / "x")
        print(f"pick 100 due of {args.sources:,} sources (ms): PostgreSQL FOR UPDATE SKIP LOCKED {c['pg']:.1f}, "
              f"with an index on next_due {c['pg_indexed']:.2f}; SQLite {c['sqlite']:.1f}, indexed {c['sqlite_indexed']:.2f}")
    finally:
        server.kill()
        pg.close()
        s3.close()
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

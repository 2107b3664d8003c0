"""Where the index's bytes go, per snapshot, beside the WARC bytes per
snapshot, on SQLite (``dbstat``: every table and index) and on PostgreSQL
(``pg_table_size`` of each table, ``pg_relation_size`` of each index).

One archive of N snapshots of 500 loopback articles (each edited on every
4th fetch, as ``bench/scale.py``) per backend, built through the library
(``Archive.snapshot_many``, 4 workers); the PostgreSQL one keeps its WARC
files in a local directory (the index is what is measured). PostgreSQL is a
real server started on loopback as the tests start it (``--no-pg`` skips it).

    python bench/index_bytes.py [--n 2000] [--no-pg] [--keep DIR]
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import loopback  # noqa: E402
from scale import grow  # noqa: E402


def warc_bytes(data: Path) -> int:
    return sum(p.stat().st_size for p in (data / "warcs").glob("*.warc.gz"))


def sqlite_parts(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as db:
        return {str(name): int(size) for name, size in db.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name")}


def pg_parts(url: str) -> dict[str, int]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM")  # counts live rows' pages, as a long-running database would reuse dead ones
        rows = conn.execute(
            "SELECT c.relname, CASE c.relkind WHEN 'r' THEN pg_table_size(c.oid) ELSE pg_relation_size(c.oid) END "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'i')"
        ).fetchall()
        return {str(name): int(size) for name, size in rows}


def report(title: str, parts: dict[str, int], n: int, warc: int) -> None:
    total = sum(parts.values())
    print(f"\n{title}: index {total / n:,.0f} B/snapshot, WARC {warc / n:,.0f} B/snapshot "
          f"(index/WARC {total / warc:.2f}x)")
    for name, size in sorted(parts.items(), key=lambda kv: -kv[1]):
        if size / n >= 10:
            print(f"  {name:<32} {size / n:>8,.0f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000, help="snapshots per archive")
    ap.add_argument("--no-pg", action="store_true", help="SQLite only")
    ap.add_argument("--keep", type=Path, help="build in (and keep) this directory")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-index-bytes-"))
    work.mkdir(parents=True, exist_ok=True)
    server, port = loopback.start("edited")
    pg = None
    try:
        data = work / "embedded"
        grow(data, port, args.n)
        report("SQLite", sqlite_parts(data / "index.sqlite3"), args.n, warc_bytes(data))
        if not args.no_pg:
            import servers

            pg = servers.PostgresServer()
            url = pg.create_database()
            data = work / "pg"
            grow(data, port, args.n, index=url)
            report("PostgreSQL", pg_parts(url), args.n, warc_bytes(data))
    finally:
        server.kill()
        if pg is not None:
            pg.close()
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

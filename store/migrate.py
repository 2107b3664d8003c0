"""Copy an embedded archive (SQLite + WARC directory) into the shared
configuration (PostgreSQL + object storage), leaving the source untouched.

Order matters for crash safety: every WARC file is uploaded first, then all
index rows are copied in one PostgreSQL transaction. An interrupted run
leaves either an empty target index (run it again: uploads are idempotent,
same names, same bytes) or a complete one; a committed target never names an
object that is not stored. The source is opened read-only.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from store.errors import StoreError
from store.index import Index
from store.warc import OPEN_SUFFIX, list_warcs

log = logging.getLogger(__name__)

BATCH = 1000


@dataclass
class Copied:
    """What a migration copied."""

    rows: dict[str, int] = field(default_factory=dict)
    warcs: int = 0
    warc_bytes: int = 0


def copy_warcs(directory: Path, target: Any, copied: Copied) -> None:
    """Upload every closed WARC file under its own name; refuse open ones."""
    paths = list_warcs(directory)
    still_open = [p.name for p in paths if p.name.endswith(OPEN_SUFFIX)]
    if still_open:
        raise StoreError(
            f"WARC {still_open[0]} is still open: stop every writer and run `archiver repair` before migrating"
        )
    for path in paths:
        target.upload(path, path.name)
        copied.warcs += 1
        copied.warc_bytes += path.stat().st_size
        log.info("uploaded %s", path.name)


def _tables(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
    ).fetchall()
    return [str(r[0]) for r in rows]


def copy_index(source: Index, target: Index, copied: Copied) -> None:
    """Every row of every table, in one target transaction; the target must be empty."""
    with source.read() as sconn, target.write() as tconn:
        src_version = sconn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        dst_version = tconn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if (src_version and src_version[0]) != (dst_version and dst_version[0]):
            raise StoreError("source and target index have different schema versions")
        tables = _tables(sconn)
        for table in tables:
            if table != "meta" and tconn.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone():
                raise StoreError(f"the target index is not empty (table {table} has rows): migrate into a new database")
        for table in tables:
            cur = sconn.execute(f"SELECT * FROM {table}")
            cols = [d[0] for d in cur.description]
            verb = "INSERT OR REPLACE" if table == "meta" else "INSERT"
            sql = f"{verb} INTO {table}({','.join(cols)}) VALUES({','.join('?' * len(cols))})"
            count = 0
            while True:
                rows = cur.fetchmany(BATCH)
                if not rows:
                    break
                tconn.executemany(sql, [tuple(r) for r in rows])
                count += len(rows)
            copied.rows[table] = count
        _reset_identities(tconn)


def _reset_identities(conn: Any) -> None:
    """Identity columns continue after the copied ids (explicit ids do not advance them)."""
    rows = conn.execute(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND is_identity = 'YES'"
    ).fetchall()
    for table, column in rows:
        conn.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
            f"COALESCE((SELECT MAX({column}) FROM {table}), 0) + 1, false)"
        )

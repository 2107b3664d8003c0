"""The index in PostgreSQL (psycopg 3 with a connection pool): the shared mode.

Same tables, same queries, same migrations as the SQLite index (the SQL is
translated by :mod:`store.pgsql`), so every component that works on
:class:`store.index.Index` works here unchanged. What SQLite gives by having
one writer at a time, this gives explicitly: every write transaction first
takes one PostgreSQL advisory transaction lock, so appends to the one Merkle
log from any number of workers on any number of machines fall into a single
sequence, and the lock is released by COMMIT or ROLLBACK -- a worker that
dies mid-transaction holds nothing.

Reads inside a thread's open transaction use that transaction's connection
(as SQLite's one shared connection does); other reads take any pooled
connection. A ``read()`` is REPEATABLE READ, one consistent view like a WAL
read transaction.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sqlite3
import threading
import zlib
from pathlib import Path
from typing import Any, Iterator, Sequence, cast

import psycopg
import psycopg_pool
from psycopg.rows import RowMaker

from store.errors import StoreError
from store.index import Index
from store.pgsql import translate
from store.rowforms import warc_file_id

log = logging.getLogger(__name__)

# pg_advisory_xact_lock key: "archiver" as the first 8 bytes, big endian, signed.
WRITE_LOCK = int.from_bytes(b"archiver", "big", signed=True)
ROLE_LOCK = int.from_bytes(b"arch", "big")  # first key of pg_try_advisory_lock(int, int) for roles
POOL_WAIT = 5.0  # seconds to wait for a pooled connection before connecting directly
CONNECT_TIMEOUT = 10


def redact(url: str) -> str:
    """A connection URL fit for messages and logs: the password replaced."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


class Row(tuple):  # type: ignore[type-arg]
    """A result row that, like ``sqlite3.Row``, answers by position and by name."""

    _names: tuple[str, ...]

    def __new__(cls, values: Sequence[Any], names: tuple[str, ...]) -> "Row":
        row = super().__new__(cls, values)
        row._names = names
        return row

    def __getitem__(self, key: Any) -> Any:  # type: ignore[override]
        if isinstance(key, str):
            try:
                return tuple.__getitem__(self, self._names.index(key))
            except ValueError:
                raise IndexError(f"no such column: {key}") from None
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._names)


def _row_factory(cursor: Any) -> RowMaker[Row]:
    names = tuple(d.name for d in (cursor.description or ()))
    return lambda values: Row(values, names)


class PgConnection:
    """The part of ``sqlite3.Connection`` the archive uses, over psycopg."""

    def __init__(self, raw: psycopg.Connection[Any], index: "PgIndex") -> None:
        self.raw = raw
        self.index = index

    @property
    def in_transaction(self) -> bool:
        """Always: a PgConnection exists only inside ``write()`` or ``read()``."""
        return True

    def execute(self, sql: str, args: Sequence[Any] = ()) -> psycopg.Cursor[Any]:
        try:
            return self.raw.execute(self.index.sql(sql), tuple(args))
        except psycopg.Error as exc:
            raise StoreError(f"index query failed: {_first_line(exc)}") from exc

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> psycopg.Cursor[Any]:
        cur = self.raw.cursor()
        try:
            cur.executemany(self.index.sql(sql), [tuple(r) for r in rows])
        except psycopg.Error as exc:
            raise StoreError(f"index query failed: {_first_line(exc)}") from exc
        return cur


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class PgIndex(Index):
    """:class:`Index` over a PostgreSQL database named by a ``postgresql://`` URL."""

    def __init__(self, url: str, *, max_connections: int = 10, pool_wait: float = POOL_WAIT) -> None:
        self.url = url
        self.where = redact(url)
        self.path = Path("")  # no file: kept for code that only logs it
        self.read_only = False  # access rights are the database's to enforce
        self.pool_wait = pool_wait
        self._lock = threading.RLock()
        self._local = threading.local()
        self._sql: dict[str, str] = {}
        self._keys: dict[str, list[str]] = {}
        self._direct().close()  # fail fast, with the server's own reason, when it is unreachable
        self.pool = psycopg_pool.ConnectionPool(
            url,
            min_size=1,
            max_size=max(1, max_connections),
            kwargs={"autocommit": True, "row_factory": _row_factory, "connect_timeout": CONNECT_TIMEOUT},
            check=psycopg_pool.ConnectionPool.check_connection,
            open=False,
            name="archiver-index",
        )
        self.pool.open(wait=False)
        self._migrate()

    def _direct(self) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(
                self.url, autocommit=True, row_factory=_row_factory, connect_timeout=CONNECT_TIMEOUT
            )
        except psycopg.Error as exc:
            raise StoreError(f"index {self.where} is unreachable: {_first_line(exc)}") from exc

    def _acquire(self) -> tuple[psycopg.Connection[Any], bool]:
        """A connection: pooled, or -- when the pool has none ready within
        ``pool_wait`` (say it is still reconnecting after a server restart,
        with its back-off) -- a direct one, so a capture neither waits out the
        back-off nor hangs: it works, or fails at once with the reason."""
        try:
            return self.pool.getconn(timeout=self.pool_wait), True
        except psycopg_pool.PoolTimeout:
            return self._direct(), False

    @contextlib.contextmanager
    def hold_exclusive(self, role: str, holder: str) -> Iterator[None]:
        """Be the only process in ``role`` on this shared archive, on any
        machine: a session advisory lock on a connection of its own, held for
        the block (and dropped by the server if the process dies)."""
        key = (ROLE_LOCK, zlib.crc32(role.encode()) & 0x7FFFFFFF)
        try:
            conn = psycopg.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT,
                                   application_name=f"archiver {role}: {holder}"[:63])
            row = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", key).fetchone()
            if not row or not row[0]:
                other = conn.execute(
                    "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                    "WHERE l.locktype = 'advisory' AND l.classid = %s AND l.objid = %s AND l.granted",
                    key,
                ).fetchone()
                conn.close()
                raise StoreError(
                    f"another {role} already runs on the shared archive {self.where}"
                    f" ({other[0] if other else 'holder unknown'}); one at a time for now"
                )
        except psycopg.Error as exc:
            raise StoreError(f"index {self.where} is unreachable: {_first_line(exc)}") from exc
        try:
            yield
        finally:
            conn.close()

    def reclaim(self) -> None:
        """Mark the space of rewritten rows reusable (plain VACUUM: no lock
        that stops other workers; the database keeps the pages for new rows)."""
        conn = self._direct()
        try:
            for table in ("snapshots", "texts"):
                conn.execute(f"VACUUM (ANALYZE) {table}")
        except psycopg.Error as exc:
            raise StoreError(f"cannot vacuum index {self.where}: {_first_line(exc)}") from exc
        finally:
            conn.close()

    def _release(self, raw: psycopg.Connection[Any], pooled: bool) -> None:
        if pooled:
            self.pool.putconn(raw)
        else:
            raw.close()

    def close(self) -> None:
        self.pool.close()

    # -- SQL -------------------------------------------------------------------
    def sql(self, statement: str) -> str:
        """The PostgreSQL form of one statement (cached: statements repeat)."""
        out = self._sql.get(statement)
        if out is None:
            out = self._sql[statement] = translate(statement, self._primary_key)
        return out

    def _primary_key(self, table: str) -> list[str]:
        if table not in self._keys:
            rows = self._query(
                "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
                "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = ?::regclass AND i.indisprimary",
                (table,),
            )
            self._keys[table] = [r[0] for r in rows]
        return self._keys[table]

    def _file_id(self, conn: sqlite3.Connection, name: str) -> int:
        """Looked up in each transaction (no per-process cache: many processes share this index)."""
        return warc_file_id(conn, name)

    # -- transactions ----------------------------------------------------------
    @contextlib.contextmanager
    def _transaction(self, begin: str, *, lock: bool, commit: bool) -> Iterator[sqlite3.Connection]:
        if getattr(self._local, "conn", None) is not None:
            raise StoreError("index transaction already open in this thread")
        raw, pooled = self._acquire()
        conn = PgConnection(raw, self)
        try:
            try:
                raw.execute(begin)
                if lock:
                    raw.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
            except psycopg.Error as exc:
                raise StoreError(f"index {self.where} is unreachable or unwritable: {_first_line(exc)}") from exc
            self._local.conn = conn
            try:
                # PgConnection implements the subset of sqlite3.Connection that
                # index users call (execute, executemany, cursor results).
                yield cast(sqlite3.Connection, conn)
            except BaseException:
                with contextlib.suppress(psycopg.Error):
                    raw.execute("ROLLBACK")
                raise
            finally:
                self._local.conn = None
            try:
                raw.execute("COMMIT" if commit else "ROLLBACK")
            except psycopg.Error as exc:
                raise StoreError(f"cannot commit to index {self.where}: {_first_line(exc)}") from exc
        finally:
            self._release(raw, pooled)

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction holding the archive-wide advisory lock from its start."""
        with self._transaction("BEGIN", lock=True, commit=True) as conn:
            yield conn

    shared = True
    skip_locked = " FOR UPDATE SKIP LOCKED"
    for_update = " FOR UPDATE"

    @contextlib.contextmanager
    def claim(self) -> Iterator[sqlite3.Connection]:
        """A claim takes rows with ``FOR UPDATE SKIP LOCKED`` and needs no
        archive-wide lock: claims by many workers run side by side and never
        wait for a capture's commit (which holds the log's lock)."""
        with self._transaction("BEGIN", lock=False, commit=True) as conn:
            yield conn

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """One consistent, read-only view of the index; never makes writers wait."""
        with self._transaction("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", lock=False, commit=False) as conn:
            yield conn

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        current = getattr(self._local, "conn", None)
        if current is not None:
            return cast(list[sqlite3.Row], current.execute(sql, args).fetchall())
        raw, pooled = self._acquire()
        try:
            return cast(list[sqlite3.Row], PgConnection(raw, self).execute(sql, args).fetchall())
        finally:
            self._release(raw, pooled)


def database_exists(url: str) -> bool:
    """Does the database at ``url`` hold an archive index (a schema version)?"""
    try:
        with psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT, autocommit=True) as conn:
            row = conn.execute("SELECT to_regclass('meta') IS NOT NULL").fetchone()
            if not row or not row[0]:
                return False
            row = conn.execute("SELECT 1 FROM meta WHERE key='schema_version'").fetchone()
            return row is not None
    except psycopg.Error as exc:
        raise StoreError(f"cannot connect to index {redact(url)}: {_first_line(exc)}") from exc

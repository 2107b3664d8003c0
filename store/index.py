"""The SQLite index of the archive (WAL mode): sources, snapshots, texts, log.

The WARC files are the truth; this index is what makes them fast to query
and can be rebuilt from them (``archiver repair``). Writers take
``BEGIN IMMEDIATE`` so concurrent processes queue on SQLite's lock instead of
failing, with a generous busy timeout.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any, Iterator

from store.compact import unpack
from store.errors import StoreError
from store.rowforms import LEGACY_FILE, MOVED, RECORDS, SNAPSHOTS, digest_bytes, record_row, warc_file_id
from store.rowforms import RecordRow as RecordRow  # re-exported: the index's callers import them from here
from store.rowforms import SnapshotRow as SnapshotRow
from store.rowforms import packed_article as packed_article
from store.scan import label_hex
from store.schema import LISTED_SIGNIFICANCES, SCHEMA_VERSION, migration_statements
from store.wal import enter_wal

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 60_000

# Record types whose WARC-Payload-Digest the index keeps (a revisit's
# original is looked up by it); for requests and manifests it stays in the WARC.
_PAYLOAD_TYPES = ("response", "revisit", "resource")

class Index:
    """One writing connection per process, shared by its threads under a lock;
    reads outside a write transaction go through a connection of their own
    per thread (WAL: readers never wait for the writer, nor it for them), so a
    capture thread committing does not stall the others' lookups."""

    def __init__(self, path: Path, *, read_only: bool | None = None) -> None:
        """Open (or create) the index. ``read_only`` None: read-only exactly when
        the file exists but cannot be written (an auditor's copy on read-only
        media or without write permission), so reading commands still work."""
        self.path = Path(path)
        self.where = str(self.path)  # how messages name this index (a PostgreSQL URL is redacted)
        self.read_only = _unwritable(self.path) if read_only is None else read_only
        self._lock = threading.RLock()
        self._local = threading.local()
        self._readers: dict[threading.Thread, sqlite3.Connection] = {}
        self._readers_lock = threading.Lock()
        self._writing: int | None = None  # the thread inside write(): it reads its own uncommitted rows
        # WARC file ids (``warc_files``: a row is never changed or deleted once
        # committed) known to be committed, and those registered by the open
        # write transaction (kept only once it commits).
        self._file_ids: dict[str, int] = {}
        self._fresh_ids: dict[str, int] = {}
        if self.read_only:
            self.conn = self._connect_read_only()
            self._check_schema()
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
            )
            self.conn.row_factory = sqlite3.Row
            self.conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            enter_wal(self.conn, within=BUSY_TIMEOUT_MS / 1000)
            self.conn.execute("PRAGMA synchronous=FULL")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open index {self.path}: {exc}") from exc
        self._migrate()

    def _connect_read_only(self) -> sqlite3.Connection:
        """``mode=ro`` when SQLite can still keep its WAL index beside the file;
        ``immutable=1`` when it cannot (read-only media: nobody writes there)."""
        from urllib.parse import quote

        base = "file:" + quote(str(self.path.resolve()))
        last: Exception | None = None
        for flags in ("mode=ro", "mode=ro&immutable=1"):
            try:
                conn = sqlite3.connect(f"{base}?{flags}", uri=True, timeout=BUSY_TIMEOUT_MS / 1000,
                                       isolation_level=None, check_same_thread=False)
                conn.row_factory = sqlite3.Row
                conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
                return conn
            except sqlite3.Error as exc:
                last = exc
        raise StoreError(f"cannot open index {self.path} read-only: {last}") from last

    def _check_schema(self) -> None:
        try:
            row = self.conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read index {self.path}: {exc}") from exc
        current = int(row[0]) if row else 0
        if current != SCHEMA_VERSION:
            raise StoreError(
                f"index {self.path} has schema {current}, this archiver reads {SCHEMA_VERSION}; "
                "it is read-only here, so it cannot be upgraded (open a writable copy once)"
            )

    def close(self) -> None:
        with self._lock, self._readers_lock:
            self.conn.close()
            for reader in self._readers.values():
                reader.close()
            self._readers.clear()

    def _reader(self) -> sqlite3.Connection | None:
        """This thread's read connection; None where reads must share ``conn``
        (a read-only index, or this thread is inside its own write transaction)."""
        if self.read_only or self._writing == threading.get_ident():
            return None
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(
                    self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
                )
                conn.row_factory = sqlite3.Row
                conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            except sqlite3.Error as exc:
                raise StoreError(f"cannot open index {self.path}: {exc}") from exc
            self._local.conn = conn
            with self._readers_lock:  # not the write lock: a new thread's first read never waits for a commit
                # threads come and go (a pool per command): their connections go with them
                for thread in [t for t in self._readers if not t.is_alive()]:
                    self._readers.pop(thread).close()
                self._readers[threading.current_thread()] = conn
        return conn

    # -- transactions -------------------------------------------------------
    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that holds SQLite's write lock from its start."""
        if self.read_only:
            raise StoreError(f"index {self.path} is read-only here; this command needs to write")
        with self._lock:
            try:
                self.conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreError(f"index {self.path} is locked or unwritable: {exc}") from exc
            outer, self._writing = self._writing, threading.get_ident()
            try:
                try:
                    yield self.conn
                except BaseException:
                    self.conn.execute("ROLLBACK")
                    raise
                try:
                    self.conn.execute("COMMIT")
                except sqlite3.Error as exc:
                    raise StoreError(f"cannot commit to index {self.path}: {exc}") from exc
                self._file_ids.update(self._fresh_ids)
            finally:
                self._writing = outer
                self._fresh_ids.clear()

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: one consistent view of the index (WAL snapshot)
        that, unlike :meth:`write`, never makes writers wait."""
        reader = self._reader()
        if reader is not None:
            try:
                reader.execute("BEGIN")
            except sqlite3.Error as exc:
                raise StoreError(f"cannot read index {self.path}: {exc}") from exc
            try:
                yield reader
            finally:
                reader.execute("ROLLBACK")
            return
        with self._lock:
            try:
                self.conn.execute("BEGIN")
            except sqlite3.Error as exc:
                raise StoreError(f"cannot read index {self.path}: {exc}") from exc
            try:
                yield self.conn
            finally:
                self.conn.execute("ROLLBACK")

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        reader = self._reader()
        try:
            if reader is not None:
                return reader.execute(sql, args).fetchall()
            with self._lock:
                return self.conn.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"index query failed: {exc}") from exc

    def _migrate(self) -> None:
        with self.write() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            current = int(row[0]) if row else 0
            if current > SCHEMA_VERSION:
                raise StoreError(
                    f"index {self.where} has schema {current}, newer than this archiver ({SCHEMA_VERSION}): upgrade archiver"
                )
            for version in range(current + 1, SCHEMA_VERSION + 1):
                for statement in migration_statements(version):
                    conn.execute(statement)
                log.info("index %s migrated to schema %d", self.where, version)
            conn.execute(
                "INSERT INTO meta(key, value) VALUES('schema_version', ?) "
                "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                (str(SCHEMA_VERSION),),
            )

    # -- snapshots ----------------------------------------------------------
    def last_snapshot(self, url: str, conn: sqlite3.Connection | None = None) -> SnapshotRow | None:
        sql = f"{SNAPSHOTS} WHERE s.url=? ORDER BY s.seq DESC LIMIT 1"
        rows = conn.execute(sql, (url,)).fetchall() if conn else self._query(sql, (url,))
        return SnapshotRow.from_row(rows[0]) if rows else None

    def newest_of(self, conn: sqlite3.Connection, url: str) -> tuple[str, str | None] | None:
        """(id, manifest digest) of ``url``'s newest snapshot in ``conn``'s
        transaction: enough to tell whether a row read before is still it."""
        row = conn.execute("SELECT id, manifest_sha256 FROM snapshots WHERE url=? ORDER BY seq DESC LIMIT 1",
                           (url,)).fetchone()
        return None if row is None else (str(row[0]), row[1])

    def history(self, url: str) -> list[SnapshotRow]:
        return [SnapshotRow.from_row(r) for r in self._query(f"{SNAPSHOTS} WHERE s.url=? ORDER BY s.seq", (url,))]

    def snapshot(self, snapshot_id: str) -> SnapshotRow | None:
        rows = self._query(f"{SNAPSHOTS} WHERE s.id=?", (snapshot_id,))
        return SnapshotRow.from_row(rows[0]) if rows else None

    def find_snapshots(self, url: str | None, id_prefix: str) -> list[SnapshotRow]:
        """Snapshots whose id starts with ``id_prefix`` (ids are long; users type a prefix)."""
        like = id_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        if url is None:
            rows = self._query(f"{SNAPSHOTS} WHERE s.id LIKE ? ESCAPE '\\' ORDER BY s.seq", (like,))
        else:
            rows = self._query(f"{SNAPSHOTS} WHERE s.url=? AND s.id LIKE ? ESCAPE '\\' ORDER BY s.seq", (url, like))
        return [SnapshotRow.from_row(r) for r in rows]

    def newest(self, significance: str, url_like: str, limit: int) -> list[SnapshotRow]:
        """The newest ``limit`` snapshots of one significance whose URL is
        LIKE ``url_like`` (with ``\\`` as the escape). A listed significance
        goes into the SQL as a literal -- it is one of LISTED_SIGNIFICANCES --
        since a bound parameter hides its partial index from the planner."""
        where = f"s.significance='{significance}'" if significance in LISTED_SIGNIFICANCES else "s.significance=?"
        args = () if significance in LISTED_SIGNIFICANCES else (significance,)
        rows = self._query(
            f"{SNAPSHOTS} WHERE {where} AND s.url LIKE ? ESCAPE '\\' ORDER BY s.captured_at DESC, s.id DESC LIMIT ?",
            (*args, url_like, limit),
        )
        return [SnapshotRow.from_row(r) for r in rows]

    def all_snapshots(self) -> list[SnapshotRow]:
        return [SnapshotRow.from_row(r) for r in self._query(f"{SNAPSHOTS} ORDER BY s.url, s.seq")]

    def urls(self) -> list[str]:
        return [r[0] for r in self._query("SELECT DISTINCT url FROM snapshots ORDER BY url")]

    def original_for_payload(self, url: str, payload_sha256: str) -> RecordRow | None:
        """The earliest stored (non-revisit) response of ``url`` with this payload."""
        rows = self._query(
            "SELECT r.*, w.warc_name FROM snapshots s JOIN records r ON r.record_id = s.response_record_id "
            "LEFT JOIN warc_files w ON w.file_id = r.file_id "
            "WHERE s.url=? AND s.payload_sha256=? AND s.revisit=0 ORDER BY s.seq LIMIT 1",
            (url, payload_sha256),
        )
        return record_row(rows[0]) if rows else None

    def response_with_payload(self, target_uri: str, payload_sha256: str) -> RecordRow | None:
        """The earliest stored response record of ``target_uri`` whose payload
        has this SHA-256 (any snapshot's, page or requisite): a revisit's original."""
        rows = self._query(
            f"{RECORDS} WHERE r.target_uri=? AND r.type='response' ORDER BY r.date, r.record_id", (target_uri,)
        )
        for r in rows:
            if r["payload_digest"] and label_hex(r["payload_digest"]) == payload_sha256:
                return record_row(r)
        return None

    def insert_snapshot(self, conn: sqlite3.Connection, row: SnapshotRow, records: list[RecordRow]) -> None:
        """A snapshot and its records, their WARC file named by id (schema 10)."""
        ids: dict[str, int] = {}

        def file_id(name: str) -> int:
            if name not in ids:
                ids[name] = self._file_id(conn, name)
            return ids[name]

        stored = {**row.stored(), "warc_file": "", "file_id": file_id(row.warc_file)}
        conn.execute(
            f"INSERT INTO snapshots({','.join(stored)}) VALUES({','.join('?' * len(stored))})",
            list(stored.values()),
        )
        rfields = list(RecordRow.__dataclass_fields__)
        conn.executemany(
            f"INSERT OR REPLACE INTO records({','.join(rfields)},file_id,digest) VALUES({','.join('?' * len(rfields))},?,?)",
            [[("" if f in MOVED else getattr(r, f)) if f != "payload_digest" or r.type in _PAYLOAD_TYPES else None
              for f in rfields] + [file_id(r.warc_file), digest_bytes(r.sha256)] for r in records],
        )

    def _file_id(self, conn: sqlite3.Connection, name: str) -> int:
        """The id of WARC file ``name`` in the write transaction ``conn``,
        looked up once per process: the one writing connection's transactions
        run one at a time, and an id registered by one that rolls back is
        forgotten with it."""
        found = self._file_ids.get(name) or self._fresh_ids.get(name)
        if found is None:
            found = self._fresh_ids[name] = warc_file_id(conn, name)
        return found

    def next_seq(self, conn: sqlite3.Connection, url: str) -> int:
        row = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM snapshots WHERE url=?", (url,)).fetchone()
        return int(row[0]) + 1

    def record(self, record_id: str) -> RecordRow | None:
        rows = self._query(f"{RECORDS} WHERE r.record_id=?", (record_id,))
        return record_row(rows[0]) if rows else None

    def manifest_records(self, snapshot_id: str) -> list[RecordRow]:
        """The metadata records of a snapshot: where its signed manifest is
        (a re-logged snapshot has two: the digest in its row tells which)."""
        rows = self._query(f"{RECORDS} WHERE r.snapshot_id=? AND r.type='metadata' ORDER BY r.warc_offset",
                           (snapshot_id,))
        return [record_row(r) for r in rows]

    def records_for(self, snapshot_id: str) -> list[RecordRow]:
        rows = self._query(f"{RECORDS} WHERE r.snapshot_id=? ORDER BY r.hop, r.warc_offset", (snapshot_id,))
        return [record_row(r) for r in rows]

    def all_records(self) -> list[RecordRow]:
        rows = self._query(f"{RECORDS} ORDER BY COALESCE(w.warc_name, r.warc_file), r.warc_offset")
        return [record_row(r) for r in rows]

    def record_counts(self) -> dict[str, int]:
        """How many records the index holds in each WARC file."""
        counts: dict[str, int] = {}
        for name, n in self._query(
            "SELECT w.warc_name, COUNT(*) FROM records r JOIN warc_files w ON w.file_id = r.file_id "
            "WHERE r.file_id IS NOT NULL GROUP BY w.warc_name"
        ) + self._query(f"SELECT warc_file, COUNT(*) FROM records WHERE {LEGACY_FILE} GROUP BY warc_file"):
            counts[name] = counts.get(name, 0) + int(n)
        return counts

    def record_ids(self) -> set[str]:
        return {r[0] for r in self._query("SELECT record_id FROM records")}

    # -- texts --------------------------------------------------------------
    def put_text(self, conn: sqlite3.Connection, sha256: str, language: str | None,
                 article: dict[str, Any] | bytes) -> None:
        """Store an article (compressed; ``article_json`` is left empty, its
        NOT NULL kept from schema 1). ``article``: its JSON, or that already
        packed by :func:`packed_article` (before the write transaction, so
        the compression is not part of the time the write lock is held)."""
        conn.execute(
            "INSERT OR IGNORE INTO texts(sha256, language, article_json, article_z) VALUES(?,?,'',?)",
            (sha256, language, article if isinstance(article, bytes) else packed_article(article)),
        )

    def text(self, sha256: str) -> dict[str, Any] | None:
        rows = self._query("SELECT article_json, article_z FROM texts WHERE sha256=?", (sha256,))
        if not rows:
            return None
        plain, packed = rows[0]
        return json.loads(unpack(packed) if packed is not None else plain)  # type: ignore[no-any-return]

    def relogged(self) -> list[tuple[str, str | None]]:
        """(snapshot id, digest of the manifest it replaced) of every re-logged
        manifest: from the schema-6 column, and from manifests stored before."""
        out = [(str(r[0]), r[1]) for r in self._query("SELECT id, relogged_from FROM snapshots WHERE relogged_from IS NOT NULL")]
        for sid, text in self._query("SELECT id, manifest_json FROM snapshots WHERE manifest_json LIKE ?", ("%relogged_from%",)):
            try:
                doc = json.loads(text)
            except ValueError:
                continue  # verify reports a broken index row
            if isinstance(doc, dict):
                out.append((str(sid), doc.get("relogged_from")))
        return out

    # -- generic access for other components (sources, log) ------------------
    def query(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        return self._query(sql, args)

    def execute(self, sql: str, args: tuple[Any, ...] = ()) -> None:
        with self.write() as conn:
            conn.execute(sql, args)

    def meta(self, key: str) -> str | None:
        rows = self._query("SELECT value FROM meta WHERE key=?", (key,))
        return rows[0][0] if rows else None

    def set_meta(self, conn: sqlite3.Connection, key: str, value: Any) -> None:
        conn.execute(
            "INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            (key, str(value)),
        )

    # -- claims (the shared schedule) ------------------------------------------
    # Whether several processes on several machines may run daemons on this
    # index (row locks with SKIP LOCKED, leases); SQLite: one daemon per archive.
    shared = False
    # Appended to a SELECT whose rows a claim transaction takes: SQLite's
    # writer lock already gives the one claimer its rows.
    skip_locked = ""
    # Appended to a SELECT of a row the transaction must hold until it ends
    # (a lease checked at commit): SQLite's writer lock already holds them all.
    for_update = ""

    def claim(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        """A short transaction that takes work (due sources, deliveries)."""
        return self.write()

    def reclaim(self) -> None:
        """Give the file's free pages back to the file system (after a bulk
        rewrite: ``store.compaction``). VACUUM rewrites the file under SQLite's
        own locks and journal, so a crash leaves the old file or the new one."""
        if self.read_only:
            raise StoreError(f"index {self.path} is read-only here; this command needs to write")
        with self._lock:
            try:
                self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                self.conn.execute("VACUUM")
                self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:
                raise StoreError(f"cannot vacuum index {self.path}: {exc}") from exc

    def hold_exclusive(self, role: str, holder: str) -> contextlib.AbstractContextManager[None]:
        """Be the only process in ``role`` on this archive while the block runs.
        Embedded: the data directory's own lock file already guarantees it."""
        return contextlib.nullcontext()


def _unwritable(path: Path) -> bool:
    """An existing index this process cannot write (file, or the directory
    SQLite must create its journal in)."""
    if not path.exists():
        return False
    if not os.access(path, os.W_OK) or not os.access(path.parent, os.W_OK):
        return True
    try:  # root passes access() checks even on a read-only mount
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False

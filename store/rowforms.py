"""How record (and snapshot) rows are stored across schema versions, and the
SQL that reads them in either form.

Since schema 10 a row names its WARC file by an id into ``warc_files``, and
since schema 11 a record row holds its SHA-256 as 32 bytes; rows written
before keep the name and the hex until ``archiver compact`` rewrites them
(``store.compaction``), so every reader goes through here. Kept apart from
``store.index`` (the queries) so that module stays about the queries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from store.errors import StoreError

# Rows with the name of their WARC file, in either stored form: the name in
# ``warc_file`` (rows written before schema 10), or an id into ``warc_files``
# (``warc_file`` left '', its NOT NULL kept from schema 1).
SNAPSHOTS = "SELECT s.*, w.warc_name FROM snapshots s LEFT JOIN warc_files w ON w.file_id = s.file_id"
RECORDS = "SELECT r.*, w.warc_name FROM records r LEFT JOIN warc_files w ON w.file_id = r.file_id"


@dataclass(frozen=True)
class RecordRow:
    """One WARC record as the index knows it (``payload_digest``: None for
    requests and manifests written since schema 7; the WARC has it)."""

    record_id: str
    snapshot_id: str
    hop: int
    type: str
    target_uri: str
    date: str
    warc_file: str
    warc_offset: int
    warc_length: int
    sha256: str
    payload_digest: str | None


# A records (or snapshots) row written before schema 10: its file by name.
LEGACY_FILE = "warc_file > ''"


# RecordRow fields stored in another column since (schemas 10, 11): '' in their own.
MOVED = ("warc_file", "sha256")


def record_row(row: Any) -> RecordRow:
    """A row of ``_RECORDS`` (or ``SELECT * FROM records``) as a RecordRow, in either stored form."""
    d = dict(row)
    if d.get("warc_name"):
        d["warc_file"] = d["warc_name"]
    if d.get("digest") is not None:
        d["sha256"] = bytes(d["digest"]).hex()
    return RecordRow(**{k: d[k] for k in RecordRow.__dataclass_fields__})


def digest_bytes(sha256_hex: str) -> bytes:
    """A SHA-256 as stored since schema 11 (its 32 bytes)."""
    try:
        raw = bytes.fromhex(sha256_hex)
    except ValueError as exc:
        raise StoreError(f"not a SHA-256 in hex: {sha256_hex!r}") from exc
    if len(raw) != 32:
        raise StoreError(f"not a SHA-256 in hex: {sha256_hex!r}")
    return raw


def stored_hex(sha256: str, digest: Any) -> str:
    """A record's SHA-256 in hex from its row's two columns (either form)."""
    return bytes(digest).hex() if digest is not None else sha256


def warc_file_id(conn: Any, name: str) -> int:
    """The id of WARC file ``name`` (registered on first use) inside the
    caller's write transaction: rolled back with it, so no id outlives a
    transaction that failed (the SQLite index keeps an id only once the
    transaction that found or made it has committed: Index._file_id)."""
    row = conn.execute("SELECT file_id FROM warc_files WHERE warc_name=?", (name,)).fetchone()
    if row is None:
        conn.execute("INSERT OR IGNORE INTO warc_files(warc_name) VALUES(?)", (name,))
        row = conn.execute("SELECT file_id FROM warc_files WHERE warc_name=?", (name,)).fetchone()
    return int(row[0])


def in_file(conn: Any, name: str, alias: str = "") -> list[tuple[str, tuple[Any, ...]]]:
    """SQL conditions, with their arguments, that select the rows of one WARC
    file: one per stored form (by id; by name, for rows written before
    schema 10 that ``archiver compact`` has not rewritten). Each is answered
    by an index of its own (``records_at``, ``records_file``); callers run
    one query per condition, so neither turns into a scan."""
    a = f"{alias}." if alias else ""
    terms: list[tuple[str, tuple[Any, ...]]] = []
    row = conn.execute("SELECT file_id FROM warc_files WHERE warc_name=?", (name,)).fetchone()
    if row is not None:
        terms.append((f"{a}file_id = ?", (int(row[0]),)))
    terms.append((f"{a}warc_file = ? AND {a}{LEGACY_FILE}", (name,)))
    return terms

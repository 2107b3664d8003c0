"""How record and snapshot rows are stored across schema versions, and the
SQL that reads them in either form.

Since schema 10 a row names its WARC file by an id into ``warc_files``, and
since schema 11 a record row holds its SHA-256 as 32 bytes; rows written
before keep the name and the hex until ``archiver compact`` rewrites them
(``store.compaction``), so every reader goes through here. Kept apart from
``store.index`` (the queries) so that module stays about the queries.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from store.compact import pack, unpack
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


# The JSON fields of SnapshotRow and the compressed columns that hold them
# (a manifest only in rows written before schema 9: see SnapshotRow.stored).
_PACKED = {"manifest_json": "manifest_z", "diff_json": "diff_z"}


@dataclass(frozen=True)
class SnapshotRow:
    """One snapshot as the index knows it."""

    id: str
    url: str
    seq: int
    final_url: str
    captured_at: str
    ended_at: str
    status: int
    content_type: str | None
    payload_sha256: str
    revisit: bool
    original_id: str | None
    warc_file: str
    warc_offset: int
    warc_length: int
    response_record_id: str
    text_sha256: str | None
    prev_id: str | None
    significance: str
    diff_json: str | None
    manifest_json: str | None
    manifest_sha256: str | None
    signature: str | None
    key_id: str | None
    log_index: int | None
    reader: str | None = None  # how its text was read (schema 12; None: unknown, never reused)

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> "SnapshotRow":
        """A row of ``SELECT * FROM snapshots`` (with ``warc_name``: the
        file's name since schema 10), in either storage form."""
        d = dict(row)
        d["revisit"] = bool(d["revisit"])
        if d.get("warc_name"):
            d["warc_file"] = d["warc_name"]
        for text, packed in _PACKED.items():
            if d.get(packed) is not None:
                d[text] = unpack(d[packed])
        return cls(**{k: d[k] for k in cls.__dataclass_fields__})

    def stored(self) -> dict[str, Any]:
        """The columns this row is written as: diff JSON compressed (schema 6);
        the signed manifest not at all (schema 9) -- it is in the WARC, in the
        metadata record this snapshot's record rows locate, and the row keeps
        its digest, signature and key, which bind the WARC's copy to it
        (``manifest_json`` is None in a row read back; readers ask
        ``ArchiveReads.manifest``). Whether it was re-logged stays a column."""
        d: dict[str, Any] = {f: getattr(self, f) for f in self.__dataclass_fields__}
        d["revisit"] = int(self.revisit)
        d["manifest_json"] = None
        diff = d.pop("diff_json")
        d["diff_z"] = None if diff is None else pack(diff)
        d["relogged_from"] = relogged_from_json(self.manifest_json)
        return d

    @property
    def diff(self) -> dict[str, Any] | None:
        return json.loads(self.diff_json) if self.diff_json else None


def packed_article(article_json: dict[str, Any]) -> bytes:
    """An article as the ``texts`` table stores it (pure: may run outside any transaction)."""
    return pack(json.dumps(article_json, ensure_ascii=False, sort_keys=True))


def relogged_from_json(manifest_json: str | None) -> str | None:
    """The digest a re-logged manifest names (``relogged_from``), if any."""
    if not manifest_json or '"relogged_from"' not in manifest_json:
        return None
    try:
        value = json.loads(manifest_json).get("relogged_from")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


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

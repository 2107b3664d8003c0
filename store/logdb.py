"""SQL for the Merkle log kept in the index: leaves, complete subtree hashes,
signed checkpoints.

The tree logic lives in ``archiver.ledger``; this module only knows tables so
that the archive stays readable without the service (and ``store`` never
imports ``archiver``). None of these functions commit: the caller owns the
transaction, so a log append lands atomically with the snapshot rows.

``log_nodes`` holds the hash of every *complete* subtree of height >= 1:
node ``(level, idx)`` covers leaves ``[idx * 2**level, (idx + 1) * 2**level)``.
Level 0 is ``log_leaves.leaf_hash``. A complete subtree never changes once
written, so the root and proofs for any historic tree size can be assembled
from O(log n) of these rows.

``checkpoints`` keeps the checkpoints that matter (schema 6): the latest,
and those marked ``kept`` with the reason -- published, timestamped,
exported, asked for by a proof (``keep_checkpoint``), or signed before the
schema -- and each signing key's latest (``kept`` = :data:`SIGNERS_LATEST`
and the key's note name and hash: a rotated-out key's, each machine's of a
shared archive), which ``verify`` lets vouch for the signatures that key's
leaves hold (archiver/audit/leafvouch.py). Signing a new checkpoint drops
the previous latest unless it is kept or another key signed it. Nothing is
lost by that: roots and proofs for every tree size stay computable from the
leaves and subtree hashes, and whoever holds a dropped note can check it
against them and the archive's key.
"""

from __future__ import annotations

import base64
import binascii
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "LOG_SCHEMA",
    "CheckpointRow",
    "leaf_count",
    "last_leaf",
    "insert_leaf",
    "leaf_hash",
    "leaf_index_of",
    "snapshot_of",
    "insert_node",
    "node_hash",
    "node_hashes",
    "insert_checkpoint",
    "checkpoint_at",
    "latest_checkpoint",
    "checkpoints_since",
    "keep_checkpoint",
    "kept_checkpoints",
    "note_signer",
    "SIGNERS_LATEST",
]

LOG_SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS log_leaves (
    idx INTEGER PRIMARY KEY,
    leaf_hash BLOB NOT NULL,
    snapshot_id TEXT
);
CREATE INDEX IF NOT EXISTS log_leaves_snapshot ON log_leaves(snapshot_id);
CREATE TABLE IF NOT EXISTS log_nodes (
    level INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoints (
    size INTEGER PRIMARY KEY,
    root BLOB NOT NULL,
    note TEXT NOT NULL,
    created_at TEXT NOT NULL
);
"""
# Index schema 6: why a checkpoint is kept past the next one. Those signed
# before are all kept: any of them may have been handed out.
LOG_SCHEMA_V6 = """
ALTER TABLE checkpoints ADD COLUMN kept TEXT;
UPDATE checkpoints SET kept='legacy';
"""
# The log tables as they are now, for a database of their own.
LOG_SCHEMA = LOG_SCHEMA_V1 + LOG_SCHEMA_V6


@dataclass(frozen=True)
class CheckpointRow:
    """One stored signed checkpoint."""

    size: int
    root: bytes
    note: str
    created_at: str
    kept: str | None = None  # why it outlives the next checkpoint (None: until then)


def leaf_count(conn: sqlite3.Connection) -> int:
    """Number of leaves (MAX on the rowid: O(log n), unlike COUNT(*))."""
    row = conn.execute("SELECT MAX(idx) FROM log_leaves").fetchone()
    return 0 if row is None or row[0] is None else int(row[0]) + 1


def last_leaf(conn: sqlite3.Connection) -> tuple[int, bytes | None]:
    """Number of leaves and the hash of the last one (None: no leaves), in one
    rowid lookup: what a cached right edge of the tree is checked against."""
    row = conn.execute("SELECT idx, leaf_hash FROM log_leaves ORDER BY idx DESC LIMIT 1").fetchone()
    return (0, None) if row is None else (int(row[0]) + 1, bytes(row[1]))


def insert_leaf(conn: sqlite3.Connection, idx: int, leaf_hash: bytes, snapshot_id: str | None) -> None:
    """Store leaf ``idx``; a duplicate index raises sqlite3.IntegrityError."""
    conn.execute(
        "INSERT INTO log_leaves (idx, leaf_hash, snapshot_id) VALUES (?, ?, ?)",
        (idx, leaf_hash, snapshot_id),
    )


def leaf_hash(conn: sqlite3.Connection, idx: int) -> bytes | None:
    """The stored hash of leaf ``idx``, or None."""
    row = conn.execute("SELECT leaf_hash FROM log_leaves WHERE idx = ?", (idx,)).fetchone()
    return None if row is None else bytes(row[0])


def leaf_index_of(conn: sqlite3.Connection, snapshot_id: str) -> int | None:
    """The log index holding ``snapshot_id`` (the first, should it repeat)."""
    row = conn.execute(
        "SELECT MIN(idx) FROM log_leaves WHERE snapshot_id = ?", (snapshot_id,)
    ).fetchone()
    return None if row is None or row[0] is None else int(row[0])


def snapshot_of(conn: sqlite3.Connection, idx: int) -> str | None:
    """The snapshot id recorded with leaf ``idx``."""
    row = conn.execute("SELECT snapshot_id FROM log_leaves WHERE idx = ?", (idx,)).fetchone()
    return None if row is None else row[0]


def insert_node(conn: sqlite3.Connection, level: int, idx: int, hash_: bytes) -> None:
    """Store the hash of the complete subtree ``(level, idx)``, level >= 1."""
    conn.execute(
        "INSERT INTO log_nodes (level, idx, hash) VALUES (?, ?, ?)", (level, idx, hash_)
    )


def node_hash(conn: sqlite3.Connection, level: int, idx: int) -> bytes | None:
    """The stored hash of subtree ``(level, idx)``, level >= 1, or None."""
    row = conn.execute(
        "SELECT hash FROM log_nodes WHERE level = ? AND idx = ?", (level, idx)
    ).fetchone()
    return None if row is None else bytes(row[0])


def node_hashes(
    conn: sqlite3.Connection, keys: Iterable[tuple[int, int]]
) -> dict[tuple[int, int], bytes]:
    """Hashes for many ``(level, idx)`` keys at once; level 0 reads leaves.

    Missing keys are absent from the result. One query per level keeps a
    proof to a handful of statements.
    """
    by_level: dict[int, list[int]] = {}
    for level, idx in keys:
        by_level.setdefault(level, []).append(idx)
    out: dict[tuple[int, int], bytes] = {}
    for level, idxs in by_level.items():
        unique = sorted(set(idxs))
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            marks = ",".join("?" * len(chunk))
            if level == 0:
                rows = conn.execute(
                    f"SELECT idx, leaf_hash FROM log_leaves WHERE idx IN ({marks})", chunk
                )
            else:
                rows = conn.execute(
                    f"SELECT idx, hash FROM log_nodes WHERE level = ? AND idx IN ({marks})",
                    [level, *chunk],
                )
            for idx, value in rows:
                out[(level, int(idx))] = bytes(value)
    return out


SIGNERS_LATEST = "latest of "  # kept: its signer's latest checkpoint ("latest of NAME+HASH"), until it signs again
_SIG_PREFIX = "\u2014 "  # a signed note's signature line (provenance/notes.py)
MAX_NAME = 256  # characters of a signer's note name read


def note_signer(note: str) -> str | None:
    """Who signed a checkpoint note: ``NAME+HASH`` (its key's note name and
    the 8 hex digits of its key hash, as in a C2SP verifier key) from its
    first signature line; None when there is none to read. Only parsed, not
    verified: it tells one signer's checkpoints from another's."""
    split = note.rfind("\n\n")
    line = note[split + 2:].split("\n", 1)[0] if split >= 0 else ""
    if not line.startswith(_SIG_PREFIX):
        return None
    name, _, blob = line[len(_SIG_PREFIX):].partition(" ")
    if not name or len(name) > MAX_NAME or len(blob) < 8:
        return None
    try:
        key_hash = base64.b64decode(blob[:8], validate=True)[:4]
    except (binascii.Error, ValueError):
        return None
    return f"{name}+{key_hash.hex()}"


def insert_checkpoint(
    conn: sqlite3.Connection, size: int, root: bytes, note: str, created_at: str
) -> None:
    """Store a signed checkpoint (one per tree size). The previous latest,
    unless kept, is dropped when the same key signed it; signed by another
    key, it is kept as that key's latest (:data:`SIGNERS_LATEST`), and the
    new one's signer's own earlier latest is dropped (unless kept otherwise):
    each key's latest checkpoint stays, one per key."""
    signer = note_signer(note)
    latest = conn.execute("SELECT size, note, kept FROM checkpoints ORDER BY size DESC LIMIT 1").fetchone()
    if latest is not None and int(latest[0]) < size:
        before = note_signer(str(latest[1]))
        if latest[2] is None and before is not None and signer is not None and before != signer:
            conn.execute("UPDATE checkpoints SET kept = ? WHERE size = ?", (SIGNERS_LATEST + before, int(latest[0])))
        elif latest[2] is None:
            conn.execute("DELETE FROM checkpoints WHERE size = ? AND kept IS NULL", (int(latest[0]),))
        if signer is not None and before != signer:  # (the same signer's: none is kept as its latest)
            conn.execute("DELETE FROM checkpoints WHERE kept = ?", (SIGNERS_LATEST + signer,))
    conn.execute(
        "INSERT INTO checkpoints (size, root, note, created_at) VALUES (?, ?, ?, ?)",
        (size, root, note, created_at),
    )


def keep_checkpoint(conn: sqlite3.Connection, size: int, reason: str) -> bool:
    """Keep the checkpoint of ``size`` past the next one (the first reason
    stays, but for a key's latest: then ``reason``, which outlives that key's
    next checkpoint); False when there is none of that size."""
    cur = conn.execute("UPDATE checkpoints SET kept = CASE WHEN kept IS NULL OR kept LIKE ? THEN ? ELSE kept END "
                       "WHERE size = ?", (SIGNERS_LATEST + "%", reason, size))
    return bool(cur.rowcount)


_COLUMNS = "size, root, note, created_at, kept"


def _row(row: tuple[Any, ...] | None) -> CheckpointRow | None:
    if row is None:
        return None
    return CheckpointRow(int(row[0]), bytes(row[1]), str(row[2]), str(row[3]), row[4])


def checkpoint_at(conn: sqlite3.Connection, size: int) -> CheckpointRow | None:
    """The checkpoint for tree size ``size``, or None."""
    return _row(
        conn.execute(
            f"SELECT {_COLUMNS} FROM checkpoints WHERE size = ?", (size,)
        ).fetchone()
    )


def latest_checkpoint(conn: sqlite3.Connection) -> CheckpointRow | None:
    """The checkpoint with the largest tree size, or None."""
    return _row(
        conn.execute(
            f"SELECT {_COLUMNS} FROM checkpoints ORDER BY size DESC LIMIT 1"
        ).fetchone()
    )


def checkpoints_since(conn: sqlite3.Connection, size: int) -> list[CheckpointRow]:
    """Checkpoints with tree size >= ``size``, oldest first."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM checkpoints WHERE size >= ? ORDER BY size",
        (size,),
    ).fetchall()
    return [r for r in (_row(row) for row in rows) if r is not None]


def kept_checkpoints(conn: sqlite3.Connection) -> list[CheckpointRow]:
    """Every stored checkpoint, the latest included, oldest first."""
    return checkpoints_since(conn, 0)

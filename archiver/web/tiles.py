"""The Merkle log as C2SP tlog-tiles: the signed checkpoint, hash tiles and
entry bundles, read from the index's log tables.

A tile at level L, index N holds the hashes of the tree's level 8*L nodes
N*256 ... N*256+W-1 (W = 256 for a full tile, 1..255 for a partial ``.p/W``
one). Level 0 nodes are the leaf hashes; higher ones are the stored complete
subtrees of ``store.logdb``. An entry bundle holds the leaf data of 256
entries, each prefixed by its 2-byte big-endian length; a leaf's data is its
snapshot's 32-byte manifest digest (the leaf hash is SHA-256(0x00 || data)).
Everything is served for the latest signed checkpoint, never beyond it.
"""

from __future__ import annotations

import re
import sqlite3
import struct
from dataclasses import dataclass

from archiver.errors import LedgerError, NotFoundError, UsageError
from archiver.provenance.leaves import row_leaf
from store import logdb

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
MAX_LEVEL = 63
_SEGMENT = re.compile(r"x\d{3}|\d{3}")


@dataclass(frozen=True)
class TilePath:
    level: int | None  # None: an entries bundle
    index: int
    width: int  # 256 for a full tile

    @property
    def partial(self) -> bool:
        return self.width < TILE_WIDTH


def encode_index(n: int) -> str:
    """C2SP path encoding: 3-digit groups, all but the last prefixed by 'x'."""
    groups = f"{n:03d}"
    groups = "0" * (-len(groups) % 3) + groups
    parts = [groups[i : i + 3] for i in range(0, len(groups), 3)]
    return "/".join([f"x{p}" for p in parts[:-1]] + [parts[-1]])


def tile_path(level: int | None, index: int, width: int = TILE_WIDTH) -> str:
    head = "entries" if level is None else str(level)
    tail = "" if width == TILE_WIDTH else f".p/{width}"
    return f"tile/{head}/{encode_index(index)}{tail}"


def parse_tile_path(rest: str) -> TilePath:
    """Parse ``<L>/<N>[.p/<W>]`` or ``entries/<N>[.p/<W>]``; UsageError when malformed."""
    parts = rest.split("/")
    if len(parts) < 2:
        raise UsageError("tile path needs a level and an index")
    head, segs = parts[0], parts[1:]
    width = TILE_WIDTH
    if len(segs) >= 2 and segs[-2].endswith(".p"):
        w = segs[-1]
        if not re.fullmatch(r"[1-9]\d{0,2}", w) or int(w) >= TILE_WIDTH:
            raise UsageError("partial tile width must be 1..255")
        width = int(w)
        segs = segs[:-2] + [segs[-2][:-2]]
    if not segs or len(segs) > 7 or not all(_SEGMENT.fullmatch(s) for s in segs):
        raise UsageError("malformed tile index")
    if any(not s.startswith("x") for s in segs[:-1]) or segs[-1].startswith("x"):
        raise UsageError("malformed tile index")
    index = int("".join(s.lstrip("x") for s in segs))
    if encode_index(index) != "/".join(segs):
        raise UsageError("tile index is not in canonical form")
    if head == "entries":
        return TilePath(None, index, width)
    if not re.fullmatch(r"0|[1-9]\d?", head) or int(head) > MAX_LEVEL:
        raise UsageError("tile level must be 0..63")
    return TilePath(int(head), index, width)


def checkpoint_size(conn: sqlite3.Connection) -> int:
    row = logdb.latest_checkpoint(conn)
    return row.size if row else 0


def _check_available(size: int, level: int, tile: TilePath) -> range:
    """The node indices the tile covers, if they are all complete at ``size``.

    A partial tile stays served after its full tile exists: its hashes are a
    prefix of the full one and never change, so clients may cache either."""
    nodes = size >> level if level < 64 else 0
    start = tile.index * TILE_WIDTH
    if start + tile.width > nodes:
        raise NotFoundError(f"tile not available at tree size {size}")
    return range(start, start + tile.width)


def read_tile(conn: sqlite3.Connection, tile: TilePath) -> bytes:
    """The concatenated hashes of a hash tile."""
    assert tile.level is not None
    level = tile.level * TILE_HEIGHT
    idx = _check_available(checkpoint_size(conn), level, tile)
    found = logdb.node_hashes(conn, [(level, i) for i in idx])
    try:
        return b"".join(found[(level, i)] for i in idx)
    except KeyError as exc:
        raise LedgerError(f"log node ({level}, {exc.args[0]}) is missing") from exc


def read_entries(conn: sqlite3.Connection, tile: TilePath) -> bytes:
    """An entry bundle: each leaf's data with its length -- the manifest
    digest, followed by its signature and key id when the manifest signs its
    leaf (provenance/leaves.py)."""
    idx = _check_available(checkpoint_size(conn), 0, tile)
    rows = conn.execute(
        "SELECT l.idx, l.leaf_hash, s.manifest_sha256, s.signature, s.key_id FROM log_leaves l "
        "LEFT JOIN snapshots s ON s.id = l.snapshot_id AND s.log_index = l.idx "
        "WHERE l.idx >= ? AND l.idx < ? ORDER BY l.idx",
        (idx.start, idx.stop),
    ).fetchall()
    if len(rows) != len(idx):
        raise LedgerError(f"log leaves {idx.start}..{idx.stop - 1} are incomplete")
    out = bytearray()
    for i, leaf, digest, signature, key_id in rows:
        data = row_leaf(digest, signature, key_id, leaf)
        if data is None:
            raise LedgerError(f"log entry {i}: its manifest digest is not in the index (run `archiver verify`)")
        out += struct.pack(">H", len(data)) + data
    return bytes(out)

"""The append-only Merkle log kept in the index database.

A signed checkpoint (size + root) commits to every manifest ever appended,
so an auditor holding an earlier checkpoint can prove nothing was removed,
reordered or rewritten since (consistency), and that a manifest is in the
log (inclusion).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from archiver.errors import LedgerError
from archiver.provenance.merkle import (
    EMPTY_ROOT,
    _consistency_plan,
    _fold_right,
    _inclusion_plan,
    _Node,
    _range_nodes,
    hash_children,
    hash_leaf,
)
from archiver.provenance.notes import NoteSigner, make_checkpoint, sign_note
from store import logdb

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Frontier:
    """The right edge of a tree of ``size`` leaves: the hash of each perfect
    subtree of its decomposition (``(level, hash)``, largest first) -- all
    its root needs, and all the left siblings its next append needs -- and
    the hash of its last leaf.

    Why: a commit round appends a leaf and signs a checkpoint; with the edge
    of the tree it committed last, the next round does both without reading
    a node. It is a hint, never trusted blindly: a log object takes it only
    when the log in its transaction has exactly this size and this last leaf
    (another process may have appended meanwhile, or a round rolled back)."""

    size: int
    last_leaf: bytes
    nodes: tuple[tuple[int, bytes], ...]


class MerkleLog:
    """The Merkle log stored in the index database.

    Stores every leaf hash and every complete subtree hash, so appending
    writes at most log2(n)+1 rows and roots/proofs for any size up to the
    current one read O(log n) rows. Never commits: ``append`` runs inside
    the caller's transaction so the leaf lands with the snapshot rows.
    """

    def __init__(self, conn: sqlite3.Connection, *, one_transaction: bool = False,
                 frontier: Frontier | None = None) -> None:
        self._conn = conn
        # one_transaction: the caller uses this object inside one write
        # transaction only (the commit of a group of captures), so the size
        # may be kept between calls (see size()).
        self._keep_size = one_transaction
        self._size: tuple[int, int] | None = None  # (leaves, the connection's change count when read)
        # one_transaction: a leaf was appended through this object since its
        # last checkpoint, so the tree has a size no checkpoint can have been
        # signed for (checkpoints are one per size: a wrong guess would fail
        # the INSERT, never pass silently).
        self._grew = False
        # The tree's right edge (see Frontier), valid while the log has
        # exactly ``_front_size`` leaves; ``frontier`` is checked at the
        # first read of the size, against the log's last leaf.
        self._offered = frontier
        self._front: list[tuple[int, bytes]] | None = None
        self._front_size = -1
        self._last_leaf: tuple[int, bytes] | None = None  # (index, hash) of the last leaf this object appended
        # (size, root) of the offered frontier when it was taken: every root this
        # object folds from its edge extends that tree by construction (built_on)
        self._base: tuple[int, bytes] | None = None

    def size(self) -> int:
        """Number of leaves.

        Inside one transaction (``one_transaction``) it is read once and kept
        while the connection has changed no row since (its ``total_changes``):
        a capture asks several times, and any write through the connection --
        another ``MerkleLog`` on it included -- makes the next call read again.
        Other connections cannot append meanwhile: appends hold the write lock.
        """
        changes = getattr(self._conn, "total_changes", None) if self._keep_size else None
        if self._size is not None and changes is not None and self._size[1] == changes:
            return self._size[0]
        offered, self._offered = self._offered, None
        if offered is None:
            size = logdb.leaf_count(self._conn)
        else:
            size, last = logdb.last_leaf(self._conn)
            if (size, last) == (offered.size, offered.last_leaf or None):
                self._front, self._front_size = list(offered.nodes), size
                self._base = (size, _fold_right([h for _, h in offered.nodes]) if size else EMPTY_ROOT)
                if size:
                    self._last_leaf = (size - 1, offered.last_leaf)
        if changes is not None:
            self._size = (size, changes)
        return size

    def _edge(self, size: int) -> list[tuple[int, bytes]] | None:
        """The right edge of the tree of ``size`` leaves, if this object knows it."""
        return self._front if self._front is not None and self._front_size == size else None

    def built_on(self, size: int, root: bytes) -> bool:
        """Whether the tree as it is now was folded in memory from the edge of
        the tree (``size``, ``root``) -- this process's own frontier, never a
        node read from the index since -- so it extends that tree without a
        proof (see provenance/treehead.py)."""
        return self._base == (size, root) and self._edge(self.size()) is not None

    def rebase(self, size: int, root: bytes) -> None:
        """(``size``, ``root``), checked by the caller, is the tree later roots
        are folded from in memory (built_on), when this object knows its edge."""
        if self._edge(size) is not None and self.size() == size:
            self._base = (size, root)

    def frontier(self) -> Frontier | None:
        """The right edge of the log as it is now in this transaction, when
        known (for the next transaction's log object: see Frontier)."""
        size = self.size()
        edge = self._edge(size)
        if edge is None or (size and (self._last_leaf is None or self._last_leaf[0] != size - 1)):
            return None
        return Frontier(size, self._last_leaf[1] if size and self._last_leaf else b"", tuple(edge))

    def append(self, leaf_data: bytes, snapshot_id: str) -> int:
        """Append ``leaf_data`` (e.g. a manifest digest); returns its index.

        Must run inside the caller's transaction (BEGIN IMMEDIATE): a leaf
        without its subtree rows would corrupt every later root.
        """
        if not self._conn.in_transaction:
            raise LedgerError("MerkleLog.append must run inside a transaction")
        index = self.size()
        edge = self._edge(index)
        cur = hash_leaf(leaf_data)
        logdb.insert_leaf(self._conn, index, cur, snapshot_id)
        self._last_leaf = (index, cur)
        level, idx = 0, index
        while idx & 1:  # a right child completes its parent
            if edge is not None:  # the left sibling is the edge's last subtree
                below, left = edge.pop()
                if below != level:
                    raise LedgerError(f"log edge of size {index} is malformed at level {level}")
            else:
                left = self._node(level, idx - 1)
            cur = hash_children(left, cur)
            level, idx = level + 1, idx >> 1
            logdb.insert_node(self._conn, level, idx, cur)
        if edge is not None:
            edge.append((level, cur))
            self._front_size = index + 1
        changes = getattr(self._conn, "total_changes", None) if self._keep_size else None
        self._size = (index + 1, changes) if changes is not None else None
        self._grew = self._keep_size
        log.debug("log leaf %d appended for snapshot %s", index, snapshot_id)
        return index

    def vouch(self) -> None:
        """Keep the size read or made by this object (``one_transaction``)
        although the connection changed rows since: the caller vouches that
        those writes were its own and none of them was to the log (the
        commit round's snapshot, record and text rows)."""
        changes = getattr(self._conn, "total_changes", None) if self._keep_size else None
        if self._size is not None and changes is not None:
            self._size = (self._size[0], changes)

    def leaf_hash(self, index: int) -> bytes:
        """The stored hash of leaf ``index``."""
        h = logdb.leaf_hash(self._conn, index)
        if h is None:
            raise LedgerError(f"log has no leaf {index} (size {self.size()})")
        return h

    def index_of(self, snapshot_id: str) -> int | None:
        """The leaf index recorded for ``snapshot_id``, if any."""
        return logdb.leaf_index_of(self._conn, snapshot_id)

    def root(self, size: int | None = None) -> bytes:
        """Root hash of the tree of the first ``size`` leaves (default: all)."""
        size = self._check_size(size)
        if size == 0:
            return EMPTY_ROOT
        edge = self._edge(size)
        if edge is not None:
            return _fold_right([h for _, h in edge])
        plan = _range_nodes(0, size)
        keys = set(plan)
        found = logdb.node_hashes(self._conn, keys)
        missing = keys - found.keys()
        if missing:
            raise LedgerError(f"log nodes missing: {sorted(missing)[:5]}")
        if size == self.size():  # the nodes of the whole tree's root are its edge
            self._front, self._front_size = [(level, found[(level, idx)]) for level, idx in plan], size
        return _fold_right([found[node] for node in plan])

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """Hashes proving leaf ``index`` is in the tree of ``size`` leaves."""
        size = self._check_size(size)
        if not 0 <= index < size:
            raise LedgerError(f"leaf {index} is not in a tree of size {size}")
        return self._hash_plans(_inclusion_plan(index, size))

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        """Hashes proving the tree of ``size2`` leaves extends that of ``size1``.

        Empty when the sizes are equal. ``size1`` must be > 0: nothing needs
        proving about the empty tree (and verifiers refuse such proofs).
        """
        size2 = self._check_size(size2)
        if not 0 < size1 <= size2:
            raise LedgerError(f"no consistency proof from size {size1} to size {size2}")
        if size1 == size2:
            return []
        return self._hash_plans(_consistency_plan(size1, size2))

    # -- checkpoints ------------------------------------------------------

    def checkpoint(self, origin: str, signer: NoteSigner, created_at: datetime,
                   guard: Callable[[MerkleLog, int, bytes], None] | None = None) -> str:
        """Sign and store a checkpoint for the current tree; returns the note.

        One per tree size: asking again for an unchanged size returns the
        stored note rather than signing a second one. ``guard(log, size,
        root)`` is asked first and raises to refuse signing that tree (the
        signer's kept tree head: provenance/treehead.py).
        """
        size = self.size()
        if not self._grew:  # a size this object made is new: nothing to look up
            existing = logdb.checkpoint_at(self._conn, size)
            if existing is not None:
                return existing.note
        root = self.root(size)
        if guard is not None:
            guard(self, size, root)
        note = sign_note(make_checkpoint(origin, size, root), signer)
        logdb.insert_checkpoint(self._conn, size, root, note, created_at.isoformat())
        self.vouch()  # a checkpoint row, not a leaf: the size stays known
        self._grew = False
        log.info("checkpoint signed: %s size %d", origin, size)
        return note

    def latest_checkpoint(self) -> logdb.CheckpointRow | None:
        """The stored checkpoint for the largest tree size."""
        return logdb.latest_checkpoint(self._conn)

    # -- internals --------------------------------------------------------

    def _check_size(self, size: int | None) -> int:
        current = self.size()
        if size is None:
            return current
        if not 0 <= size <= current:
            raise LedgerError(f"tree size {size} is outside the log (size {current})")
        return size

    def _node(self, level: int, idx: int) -> bytes:
        h = (
            logdb.leaf_hash(self._conn, idx)
            if level == 0
            else logdb.node_hash(self._conn, level, idx)
        )
        if h is None:
            raise LedgerError(f"log node ({level}, {idx}) is missing")
        return h

    def _hash_plans(self, plans: Sequence[Sequence[_Node]]) -> list[bytes]:
        keys = {node for plan in plans for node in plan}
        found = logdb.node_hashes(self._conn, keys)
        missing = keys - found.keys()
        if missing:
            raise LedgerError(f"log nodes missing: {sorted(missing)[:5]}")
        return [_fold_right([found[node] for node in plan]) for plan in plans]



"""The signed checkpoint that vouches for the signatures its leaves hold.

A manifest whose leaf holds its signature (provenance/leaves.py) needs no
Ed25519 check of its own once the audit knows three things, all read in
the one view of the index the snapshots are checked in:

1. the latest checkpoint's signature verifies by key K of the ring the
   manifests must verify under (:func:`checked_checkpoint`);
2. the stored leaves [0, size) hash to that checkpoint's root
   (:class:`LeafFold`, folded while the worker processes scan);
3. the manifest is by K, below that size, and its stored leaf -- at the
   log index its row names -- is SHA-256(0x00 || digest || signature ||
   key id) of the manifest record's own parts (the native reader computes
   it, audit/scratch.py ``SETTLED`` compares).

Any of them failing sends the snapshot to the one-by-one check, which
checks its signature with libsodium as before. One view matters: a leaf
compared in one transaction and a root folded in another could each be
genuine while the index changes between them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from archiver.audit.judge import Judge
from archiver.errors import ArchiverError, VerificationError
from archiver.provenance.keyring import ED25519
from archiver.provenance.merkle import LeafFolder
from archiver.provenance.notes import NoteVerifier, open_checkpoint
from store import logdb

log = logging.getLogger(__name__)

BATCH = 4000  # leaves per read


@dataclass(frozen=True)
class Vouch:
    """A signed checkpoint the audit checked: its key, size and root."""

    key_id: str
    size: int
    root: bytes


def checked_checkpoint(conn: Any, judge: Judge) -> Vouch | None:
    """The latest checkpoint, when its signature verifies by a key whose
    manifests the judge checks natively (``judge.raw_keys``); else None."""
    row = logdb.latest_checkpoint(conn)
    if row is None or row.size <= 0:
        return None
    raw = judge.raw_keys
    for key in judge.note_keys():
        if key.algorithm != ED25519 or key.key_id not in raw:
            continue
        try:
            cp = open_checkpoint(row.note, [NoteVerifier.from_spki(key.name, key.public_key)])
        except (VerificationError, ArchiverError):
            continue
        if cp.size == row.size and cp.root == bytes(row.root):
            return Vouch(key.key_id, cp.size, cp.root)
    return None


class LeafFold:
    """The root of the stored leaves [0, size), folded a batch per step (so
    the audit's main thread does it while it waits for the workers)."""

    def __init__(self, vouch: Vouch) -> None:
        self.vouch = vouch
        self._folder = LeafFolder()
        self._broken = False  # a leaf missing (or not where its index says)
        self.holds: bool | None = None  # once folded: the root is the checkpoint's

    def step(self, conn: Any) -> bool:
        """Fold the next batch; False once every leaf is folded."""
        if self.holds is not None:
            return False
        size, folder = self.vouch.size, self._folder
        rows = conn.execute("SELECT idx, leaf_hash FROM log_leaves WHERE idx >= ? AND idx < ? ORDER BY idx LIMIT ?",
                            (folder.count, size, BATCH)).fetchall()
        for idx, leaf in rows:
            if int(idx) != folder.count or len(leaf) != 32:
                self._broken = True
                break
            folder.push(bytes(leaf))
        if self._broken or not rows or folder.count >= size:
            self.holds = not self._broken and folder.count == size and folder.root() == self.vouch.root
            if not self.holds:
                log.warning("verify: the stored leaves do not hash to the latest checkpoint's root; "
                            "every signature is checked on its own")
            return False
        return True

    def finish(self, conn: Any) -> bool:
        """Fold what is left; whether the root is the checkpoint's."""
        while self.step(conn):
            pass
        return bool(self.holds)

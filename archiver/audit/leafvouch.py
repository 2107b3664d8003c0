"""The signed checkpoints that vouch for the signatures their leaves hold.

A manifest whose leaf holds its signature (provenance/leaves.py) needs no
Ed25519 check of its own once the audit knows three things, all read in
the one view of the index the snapshots are checked in:

1. key K's latest kept checkpoint (store/logdb.py keeps one per key: a
   rotated-out key's, each machine's of a shared archive) verifies by K, a
   key of the ring the manifests must verify under
   (:func:`checked_checkpoints`);
2. the stored leaves [0, size) hash to that checkpoint's root (:class:`LeafFold`,
   one fold of the leaves for every key's checkpoint, folded while the
   worker processes scan);
3. the manifest is by K, below K's checkpoint's size, and its stored leaf
   -- at the log index its row names, also below that size -- is
   SHA-256(0x00 || digest || signature || key id) of the manifest record's
   own parts (the native reader computes it, audit/scratch.py ``SETTLED``
   compares).

Any of them failing sends the snapshot to the one-by-one check, which
checks its signature with libsodium as before. A checkpoint vouches only for
its own key's manifests: one by the new key vouching for the old key's would
let the new key's holder pass a backdated manifest in the old key's name
that no one checked. One view matters: a leaf compared in one transaction
and a root folded in another could each be genuine while the index changes
between them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from archiver.audit.judge import Judge
from archiver.errors import ArchiverError, VerificationError
from archiver.provenance.keyring import ED25519, KeyRecord
from archiver.provenance.merkle import LeafFolder
from archiver.provenance.notes import NoteVerifier, open_checkpoint
from store import logdb

log = logging.getLogger(__name__)

BATCH = 4000  # leaves per read
MAX_KEYS = 64  # keys whose checkpoint vouches at most (the rest: checked one by one)
CHECKPOINT_BATCH = 256  # checkpoints per read, newest first


@dataclass(frozen=True)
class Vouch:
    """A signed checkpoint the audit checked: its key, size and root."""

    key_id: str
    size: int
    root: bytes


def checked_checkpoints(conn: Any, judge: Judge) -> list[Vouch]:
    """Each key's latest kept checkpoint whose signature verifies by that key,
    for the keys whose manifests the judge checks natively (``judge.raw_keys``),
    at most MAX_KEYS of them. A key's latest checkpoint decides: one that
    does not verify, or disagrees with its stored size and root, leaves that
    key's manifests to the one-by-one check."""
    raw = judge.raw_keys
    wanted: dict[str, list[tuple[KeyRecord, NoteVerifier]]] = {}  # note signer (NAME+HASH) -> its keys
    for key in judge.note_keys():
        if key.algorithm != ED25519 or key.key_id not in raw:
            continue
        try:
            verifier = NoteVerifier.from_spki(key.name, key.public_key)
        except (VerificationError, ArchiverError):
            continue
        wanted.setdefault(f"{verifier.name}+{verifier.key_hash:08x}", []).append((key, verifier))
    out: dict[str, Vouch] = {}
    below: int | None = None
    while wanted and len(out) < MAX_KEYS:
        sql = "SELECT size, root, note FROM checkpoints WHERE size > 0"
        rows = conn.execute(f"{sql}{'' if below is None else ' AND size < ?'} ORDER BY size DESC LIMIT {CHECKPOINT_BATCH}",
                            () if below is None else (below,)).fetchall()
        if not rows:
            break
        below = int(rows[-1][0])
        for size, root, note in rows:
            signer = logdb.note_signer(str(note))
            for key, verifier in wanted.pop(signer, []) if signer is not None else []:
                if key.key_id in out or len(out) >= MAX_KEYS:
                    continue
                try:
                    cp = open_checkpoint(str(note), [verifier])
                except (VerificationError, ArchiverError):
                    continue
                if cp.size == int(size) and cp.root == bytes(root):
                    out[key.key_id] = Vouch(key.key_id, cp.size, cp.root)
    return sorted(out.values(), key=lambda v: v.size)


class LeafFold:
    """The roots of the stored leaves at each vouching checkpoint's size, in
    one fold of [0, the largest size) a batch per step (so the audit's main
    thread does it while it waits for the workers)."""

    def __init__(self, vouches: list[Vouch]) -> None:
        self.sizes = {v.key_id: v.size for v in vouches}  # what the native reader takes (claims.manifest)
        self._due = sorted(vouches, key=lambda v: v.size)  # checkpoints whose size the fold has yet to reach
        self._end = max((v.size for v in vouches), default=0)
        self._folder = LeafFolder()
        self._held: set[str] = set()
        self.held: frozenset[str] | None = None  # once folded: the keys whose checkpoint's root is the leaves'

    def _reached(self) -> None:
        """The fold is at the size of the next checkpoint due: compare its root."""
        v = self._due.pop(0)
        if self._folder.root() == v.root:
            self._held.add(v.key_id)
        else:
            self._lost(v)

    @staticmethod
    def _lost(v: Vouch) -> None:
        log.warning("verify: the stored leaves do not hash to the root of key %s…'s latest checkpoint (size %d); "
                    "its signatures are checked on their own", v.key_id[:16], v.size)

    def step(self, conn: Any) -> bool:
        """Fold the next batch; False once every leaf is folded."""
        if self.held is not None:
            return False
        folder, due = self._folder, self._due
        while due and due[0].size == folder.count:  # (none of size 0: checked_checkpoints takes none)
            self._reached()
        rows = conn.execute("SELECT idx, leaf_hash FROM log_leaves WHERE idx >= ? AND idx < ? ORDER BY idx LIMIT ?",
                            (folder.count, self._end, BATCH)).fetchall()
        broken = False
        for idx, leaf in rows:
            if int(idx) != folder.count or len(leaf) != 32:
                broken = True  # a leaf missing (or not where its index says): no checkpoint past it holds
                break
            folder.push(bytes(leaf))
            while due and due[0].size == folder.count:
                self._reached()
        if broken or not rows or folder.count >= self._end:
            for v in due:  # never reached
                self._lost(v)
            due.clear()
            self.held = frozenset(self._held)
            return False
        return True

    def finish(self, conn: Any) -> frozenset[str]:
        """Fold what is left; the keys whose checkpoint's root is the leaves'."""
        while self.step(conn):
            pass
        return self.held or frozenset()

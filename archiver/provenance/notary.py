"""Signs snapshots into the log: the glue between the snapshot flow, the
keys (``signing``) and the Merkle log (``ledger``).

``sign_snapshot`` runs inside the index's write transaction, so the log index
named in the manifest, the leaf and the checkpoint land atomically with the
snapshot rows; a concurrent process waits on SQLite's lock.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import re
import socket
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterator

from archiver.canonical import canonical_json, sha256_hex
from archiver.config import Settings
from archiver.provenance.keys import KeyStore, passphrase_from_env
from archiver.provenance.leaves import LEAF_SIGNED, leaf_data
from archiver.provenance.log import Frontier, MerkleLog
from archiver.provenance.manifest import SignedManifest
from archiver.provenance.ringstore import KEYRING_NAME
from archiver.provenance.signatures import Signer
from archiver.provenance.treehead import KeptHead, index_problem
from store import logdb
from store.index import Index
from store.warc import warc_date

log = logging.getLogger(__name__)

ORIGIN_META = "log_origin"  # meta key: a shared archive's checkpoint origin line


def _shared_origin(index: Any, mine: str) -> str:
    """One log has one origin: on a shared archive the first machine's default
    is kept in the index and every other machine signs under it."""
    found = index.meta(ORIGIN_META)
    if found is not None:
        return str(found)
    with index.write() as conn:
        row = conn.execute("SELECT value FROM meta WHERE key=?", (ORIGIN_META,)).fetchone()
        if row is not None:
            return str(row[0])
        latest = MerkleLog(conn).latest_checkpoint()  # a migrated log keeps its origin
        origin = latest.note.split("\n", 1)[0] if latest is not None else mine
        index.set_meta(conn, ORIGIN_META, origin)
    return origin


def open_keystore(settings: Settings, index: Any, clock: Callable[[], datetime], hostname: str) -> KeyStore:
    """This machine's keys: embedded, one archive key and keyring.json; shared
    (a PostgreSQL index), the keyring in the index and a root or worker key."""
    import os

    from archiver.provenance.enrolment import WORKER
    from archiver.provenance.ringstore import IndexRing

    shared = settings.storage.shared_index
    role = settings.signing.role
    name = "archiver"
    if shared and role == WORKER:
        name = settings.signing.worker_name or "worker-" + re.sub(r"[^A-Za-z0-9._-]", "-", hostname)
    elif shared and settings.signing.worker_name:
        name = settings.signing.worker_name
    return KeyStore(
        settings.key_path,
        keyring_path=settings.data_path / KEYRING_NAME,
        passphrase=passphrase_from_env(os.environ),
        clock=clock,
        key_name=name,
        shared=IndexRing(index) if shared else None,
        role=role,
    )


def log_origin(settings: Settings, hostname: str) -> str:
    """The checkpoint origin line: configurable, else archiver/<host>."""
    return settings.archive.origin or f"archiver/{hostname}"


@dataclass
class Notary:
    keys: KeyStore
    index: Index
    origin: str
    clock: Callable[[], datetime]
    # The right edge of the log as this process's last commit round left it:
    # the next round appends and signs without reading a node (a hint,
    # checked against the log in its transaction: see log.Frontier).
    frontier: Frontier | None = field(default=None, repr=False)
    # The last tree head this machine signed (keys/tree-head.json): a new
    # checkpoint is signed only over a tree that extends it (treehead.py).
    head: KeptHead | None = field(default=None, repr=False)

    @classmethod
    def open(cls, settings: Settings, index: Index, *, clock: Callable[[], datetime], hostname: str | None = None) -> "Notary":
        host = hostname or socket.gethostname()
        origin = log_origin(settings, host)
        if settings.storage.shared_index and not settings.archive.origin:
            origin = _shared_origin(index, origin)
        return cls(open_keystore(settings, index, clock, host), index, origin, clock, head=KeptHead(settings.key_path))

    @contextlib.contextmanager
    def signing(self) -> Iterator[sqlite3.Connection]:
        """The index's write transaction for signing into the log: the tree
        head a checkpoint signed in it is kept once it commits (treehead.py)."""
        if self.head is not None:
            self.head.begin()
        with self.index.write() as conn:
            yield conn
        if self.head is not None:
            self.head.committed()

    def close(self) -> None:
        """Keep the last committed tree head on disk."""
        if self.head is not None:
            self.head.flush()

    def vouch(self, ledger: MerkleLog) -> None:
        """Before anything is signed in this transaction: the log as the index
        holds it must extend the tree head this machine last signed
        (LedgerError otherwise); later roots folded from it need no proof."""
        if self.head is None:
            return
        size = ledger.size()
        root = ledger.root(size)
        self.head.check(ledger, size, root)
        ledger.rebase(size, root)

    def head_problem(self) -> str | None:
        """Why the log as the index holds it does not extend the tree head this
        machine last signed (None when it does, or none is kept): what repair
        refuses on and verify reports."""
        return None if self.head is None else index_problem(self.index, self.head.load())

    def _guard(self) -> Callable[[MerkleLog, int, bytes], None] | None:
        return self.head.check if self.head is not None else None

    def sign_snapshot(
        self, conn: sqlite3.Connection, build: Callable[[int, str], dict[str, Any]], snapshot_id: str,
        *, checkpoint: bool = True, ledger: MerkleLog | None = None, signer: Signer | None = None,
    ) -> SignedManifest:
        """Build the manifest at the next log index, sign it, append its digest
        as a leaf and sign a new checkpoint -- all inside ``conn``'s transaction.

        ``checkpoint=False`` leaves the checkpoint to the caller, who signs one
        (:meth:`checkpoint`) after the last snapshot of a group, in the same
        transaction: every leaf is covered by a checkpoint when it commits.
        ``ledger`` is the caller's view of the log in ``conn``, if it has one;
        ``signer`` the key it signs with, if the caller already asked for it
        in this transaction (a group's captures share one)."""
        ledger = ledger or MerkleLog(conn)
        signer = signer or self.keys.signer()
        manifest = build(ledger.size(), self.origin)
        # Signatures are checked against the key's validity window at this time.
        manifest["signed_at"] = warc_date(self.clock())
        # Its leaf holds its signature too (provenance/leaves.py): a checkpoint
        # signed by this key then vouches for it.
        manifest["log"] = {**manifest["log"], "leaf": LEAF_SIGNED}
        data = canonical_json(manifest)
        digest = sha256_hex(data)
        signature = base64.b64encode(signer.sign(data)).decode("ascii")
        index = ledger.append(leaf_data(manifest, digest, signature, signer.key_id), snapshot_id)
        if index != manifest["log"]["index"]:  # cannot happen under BEGIN IMMEDIATE
            raise RuntimeError("log index moved during a write transaction")
        if checkpoint:
            ledger.checkpoint(self.origin, signer, self.clock(), guard=self._guard())
        return SignedManifest(manifest=manifest, digest=digest, signature=signature, key_id=signer.key_id,
                              canonical=data)

    def checkpoint(self, conn: sqlite3.Connection, ledger: MerkleLog | None = None,
                   signer: Signer | None = None) -> str:
        """Sign a checkpoint for the log as it is in ``conn``'s transaction."""
        return (ledger or MerkleLog(conn)).checkpoint(self.origin, signer or self.keys.signer(), self.clock(),
                                                      guard=self._guard())

    def timestamp_latest(self, tsa_urls: list[str], data_dir: Path, timeout: float) -> None:
        """Ask the TSAs for RFC 3161 tokens over the latest signed checkpoint.

        Runs after the index commit (never while holding the write lock); a
        TSA failure is logged, not fatal: the snapshot is already safe.
        """
        from archiver.errors import SigningError
        from archiver.provenance.timestamping import Timestamper, store_tokens

        row = self.hand_out("timestamped")  # kept before the TSA sees it: a token needs its note
        if row is None:
            return
        try:
            tokens = Timestamper(tsa_urls, timeout=timeout).timestamp(row.note.encode("utf-8"))
            store_tokens(data_dir, row.size, tokens)
        except SigningError as exc:
            log.warning("no trusted timestamp for checkpoint %d: %s", row.size, exc)

    def latest_checkpoint(self, keep: str | None = None) -> str | None:
        """The latest signed checkpoint note; ``keep`` says why it is handed out
        (published, exported, ...): then it outlives the next checkpoint."""
        row = self.hand_out(keep) if keep else None
        if row is None:
            with self.index.read() as conn:
                row = MerkleLog(conn).latest_checkpoint()
        return row.note if row else None

    def hand_out(self, reason: str) -> logdb.CheckpointRow | None:
        """The latest checkpoint, kept for ``reason`` (the index keeps only the
        latest and the kept ones). Writes only when it is not kept yet; on a
        read-only index nothing can supersede it, so nothing is written."""
        with self.index.read() as conn:
            row = MerkleLog(conn).latest_checkpoint()
        if row is None or row.kept is not None or self.index.read_only:
            return row
        with self.index.write() as conn:
            row = MerkleLog(conn).latest_checkpoint()  # again, under the write lock
            if row is not None and row.kept is None:
                logdb.keep_checkpoint(conn, row.size, reason)
        return row

    def keep_checkpoint(self, size: int, reason: str) -> bool:
        """Keep the checkpoint of ``size`` (say, the one a proof or an export
        was made against); False when there is none of that size."""
        if self.index.read_only:
            return False
        with self.index.write() as conn:
            return logdb.keep_checkpoint(conn, size, reason)

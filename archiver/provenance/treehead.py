"""The last tree head this machine's key signed a checkpoint for, kept in ``keys/``.

Why: a checkpoint is signed over the tree the index stores. Whoever can
write the index (not ``keys/``) could rewrite that tree -- drop or change
leaves -- and, the old checkpoints destroyed, have the next capture sign the
rewritten tree. So the signer keeps the last (size, root) it signed beside
its key (``keys/tree-head.json``, 0600 in the 0700 directory, written
crash-safe, never through a symlink) and signs a new checkpoint only over a
tree it can show extends that head: an RFC 6962/9162 consistency proof
computed from the index and checked against the kept root. When this
process folded the new root in memory from the edge of the very tree it
signed last (``log.Frontier``), it extends that tree by construction and no
proof is needed. Anything else -- a smaller tree, another root at the same
size, a proof that does not hold -- is refused: one line, nothing signed.

On a shared archive each machine keeps its own head in its own ``keys/``:
the proof spans the leaves the other machines appended meanwhile.

The file is written after the transaction that signed the checkpoint
commits (a rolled-back round's head was never a committed tree), at most
once a second while captures run (each write costs two fsyncs) and at
close; a head that lags is an earlier tree of the same log, so checking
against it stays sound. Within a process the last committed head is kept in
memory and checked against at once.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from archiver.errors import LedgerError, VerificationError
from archiver.provenance.files import atomic_write, open_private
from archiver.provenance.merkle import verify_consistency

log = logging.getLogger(__name__)

NAME = "tree-head.json"
MAX_BYTES = 4096  # the file is about 100 bytes; anything larger is not ours
KEEP_EVERY = 1.0  # seconds between writes of the file while captures run (close writes the last)


@dataclass(frozen=True)
class Head:
    size: int
    root: bytes

    def to_json(self) -> dict[str, Any]:
        return {"size": self.size, "root": base64.b64encode(self.root).decode("ascii")}


class KeptHead:
    """This machine's last signed tree head: checked before a checkpoint is
    signed (:meth:`check`, the ``guard`` of ``MerkleLog.checkpoint``), kept
    once the transaction that signed it commits (:meth:`committed`)."""

    def __init__(self, directory: Path, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.path = Path(directory) / NAME
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._known: Head | None = None  # the last committed head (in memory: newer than the file's)
        self._loaded = False
        self._on_disk: Head | None = None
        self._written_at = float("-inf")
        self._pending = threading.local()  # the head a thread's open transaction signed

    # -- reading ---------------------------------------------------------------
    def load(self) -> Head | None:
        """The kept head (the file's, or newer: this process's last committed); None before the first."""
        with self._lock:
            if not self._loaded:
                self._known = self._on_disk = read_head(self.path)
                self._loaded = True
            return self._known

    # -- the guard -----------------------------------------------------------------
    def check(self, ledger: Any, size: int, root: bytes) -> None:
        """Raise LedgerError unless the tree (``size``, ``root``) extends the kept head."""
        vouched = getattr(self._pending, "head", None)  # checked earlier in this transaction (Notary.vouch)
        if vouched is not None and ledger.built_on(vouched.size, vouched.root):
            self._pending.head = Head(size, root)
            return
        kept = self.load()
        why = None if kept is None else extension_problem(ledger, kept, size, root)
        if why is not None:
            raise LedgerError(f"refusing to sign a checkpoint: {why} (kept in {self.path}); the index's log was "
                              "rewritten or rolled back -- run archiver verify")
        self._pending.head = Head(size, root)

    def begin(self) -> None:
        """A transaction starts: no head signed in it yet."""
        self._pending.head = None

    def committed(self) -> None:
        """The transaction that signed a head (if any) committed: keep it."""
        head, self._pending.head = getattr(self._pending, "head", None), None
        if head is None:
            return
        with self._lock:
            if self._known is None or head.size >= self._known.size:
                self._known = head
            due = self._monotonic() - self._written_at >= KEEP_EVERY
        if due:
            self.flush()

    def flush(self) -> None:
        """Write the last committed head to the file (nothing when it is there already)."""
        with self._lock:
            head = self._known
            if head is None or head == self._on_disk:
                return
            try:
                atomic_write(self.path, (json.dumps(head.to_json(), sort_keys=True) + "\n").encode("ascii"), 0o600)
            except OSError as exc:  # the head in memory still guards this process; the file lags
                log.warning("cannot keep the signed tree head in %s: %s", self.path, exc.strerror or exc)
                return
            self._on_disk, self._written_at = head, self._monotonic()


def extension_problem(ledger: Any, kept: Head, size: int, root: bytes) -> str | None:
    """Why the tree (``size``, ``root``) of ``ledger`` (a MerkleLog) does not
    extend ``kept``; None when it does (proved, or built in memory from it)."""
    if size < kept.size:
        return f"the log has {size} leaves, fewer than the {kept.size} of the last tree head this machine signed"
    if size == kept.size:
        return None if root == kept.root else f"the log's root at size {size} is not the one this machine signed"
    if kept.size == 0 or ledger.built_on(kept.size, kept.root):
        return None
    try:
        verify_consistency(kept.size, size, ledger.consistency_proof(kept.size, size), kept.root, root)
    except (VerificationError, LedgerError) as exc:
        return f"the log of size {size} does not extend the tree of size {kept.size} this machine last signed ({exc})"
    return None


def index_problem(index: Any, kept: Head | None) -> str | None:
    """Why the log ``index`` holds does not extend ``kept`` (None when it does, or none is kept)."""
    if kept is None:
        return None
    from archiver.provenance.log import MerkleLog

    with index.read() as conn:
        ledger = MerkleLog(conn)
        size = ledger.size()
        return extension_problem(ledger, kept, size, ledger.root(size) if size >= kept.size else b"")


def read_head(path: Path) -> Head | None:
    """The head kept in ``path``; None when there is none. LedgerError for a
    file that is not one (a symlink, another user's, malformed)."""
    try:
        fd = open_private(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    except PermissionError as exc:
        raise LedgerError(f"cannot read the signed tree head: {exc}") from exc
    except OSError as exc:
        raise LedgerError(f"cannot read the signed tree head {path}: {exc.strerror or exc}") from exc
    try:
        data = os.read(fd, MAX_BYTES + 1)
    finally:
        os.close(fd)
    try:
        if len(data) > MAX_BYTES:
            raise ValueError("too large")
        doc = json.loads(data)
        size, root = doc["size"], base64.b64decode(doc["root"], validate=True)
        if type(size) is not int or size < 0 or len(root) != 32:
            raise ValueError("not a tree head")
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise LedgerError(f"the signed tree head {path} is unreadable ({exc}); nothing is signed until it is "
                          "restored (run archiver verify)") from exc
    return Head(size, root)

"""What a capture may take over from an earlier snapshot without reading it
back: the answer of ``CaptureTakeover.vouched`` (takeover.py) and this
process's memory of what it signed.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from archiver.changes.extract import Article


@dataclass(frozen=True)
class Vouched:
    """An earlier snapshot as a key this machine vouches for signed it (``CaptureTakeover.vouched``)."""

    article: Article | None  # its stored text, hashing to the signed digest; None: it has none


class SignedHere:
    """The payload and text digests this process signed, by snapshot id.

    Why: ``CaptureTakeover.vouched`` would otherwise read each previous
    manifest back from its WARC record and check its signature (about 0.2 ms)
    on every re-capture; a memory of what this process signed is as good
    evidence and one the index cannot change. Bounded (the oldest are
    forgotten first: those are read back from the WARC instead); 16 bytes of
    digest per snapshot."""

    def __init__(self, cap: int = 100_000) -> None:
        self.cap = cap
        self._seen: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def digest(payload_sha256: str, text_sha256: str | None) -> bytes:
        return hashlib.blake2b(f"{payload_sha256} {text_sha256 or ''}".encode(), digest_size=16).digest()

    def note(self, snapshot_id: str, payload_sha256: str, text_sha256: str | None) -> None:
        with self._lock:
            self._seen[snapshot_id] = self.digest(payload_sha256, text_sha256)
            while len(self._seen) > self.cap:
                self._seen.popitem(last=False)

    def get(self, snapshot_id: str) -> bytes | None:
        with self._lock:
            return self._seen.get(snapshot_id)

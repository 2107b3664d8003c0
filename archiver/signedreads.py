"""One checked path for every reader: a snapshot is shown only when its
manifest's signature verifies under the keys this machine trusts and the
index's row says what that manifest says.

Why: whoever can write the index, the object store and the data directory
(not ``keys/``) can write a row, a text and a manifest record together --
unsigned, or signed by a key of their own added to ``keyring.json`` or the
shared keyring. A digest check alone shows that forgery as evidence. So a
reader (``show``, ``history``, ``diff``, the web desk, Memento, the WACZ
export) anchors where ``verify --public-key`` does, on keys the index cannot
change:

* keys an auditor pinned (``--public-key FILE``), else
* this machine's ``keys/``: its Ed25519 key and the ones it rotated out
  (``keys/previous-public.pem``); on a shared archive's worker the root key
  pinned there (``keys pin-root``) -- with the keys that root enrolled, each
  within its endorsed window, as verify judges them.

A manifest that verified once is remembered by its digest (the digest names
its content), so a page view costs one Ed25519 check per snapshot per
process at most; what is remembered is the few signed facts a reader
compares the row with, not the manifest (archiver/lru.py: bounded, the least
recently used forgotten first).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from archiver.errors import ArchiverError, NotVerified, VerificationError
from archiver.lru import LRU

if TYPE_CHECKING:
    from archiver.provenance.keyring import KeyRecord, Keyring
    from store.index import SnapshotRow

CONTENT = frozenset({"snapshot id", "payload digest"})  # what a record's bytes are checked by
TAKEN_OVER = frozenset({"snapshot id", "payload digest", "text digest"})  # what a capture takes over by
NO_ANCHOR = ("this machine's key directory holds no key to check signatures against; give the archive's "
             "public key with --public-key FILE (written by `archiver keys export-public` where it signs)")


@dataclass(frozen=True)
class Signed:
    """What a verified manifest states that a reader shows or compares the row with."""

    snapshot_id: str
    url: str
    final_url: str
    status: int | None
    captured_at: str
    payload_sha256: str | None
    text_sha256: str | None
    significance: str | None
    previous_manifest_sha256: str | None
    log_index: int | None
    key_id: str
    diff_sha256: str | None = None  # the stored diff's digest (manifests since diff signing; None before)

    @classmethod
    def of(cls, manifest: dict[str, Any], key_id: str) -> "Signed":
        from archiver.provenance.manifest import signed_diff_digest

        return cls(str(manifest.get("snapshot_id")), str(manifest.get("url")), str(manifest.get("final_url")),
                   manifest.get("status"), str(manifest.get("fetch_started_at")), manifest.get("payload_sha256"),
                   manifest.get("text_sha256"), manifest.get("significance"),
                   manifest.get("previous_manifest_sha256"), (manifest.get("log") or {}).get("index"), key_id,
                   signed_diff_digest(manifest))

    def differs(self, row: SnapshotRow) -> list[str]:
        """The row's fields that are not what the manifest signed. The stored
        diff counts when the manifest signs one and the row holds one: a row
        without it (a snapshot `repair` re-indexed) has its figures recomputed
        from the signed texts, as an older snapshot's are."""
        pairs = (("snapshot id", self.snapshot_id, row.id), ("url", self.url, row.url),
                 ("final url", self.final_url, row.final_url), ("status", self.status, row.status),
                 ("capture time", self.captured_at, row.captured_at),
                 ("payload digest", self.payload_sha256, row.payload_sha256),
                 ("text digest", self.text_sha256, row.text_sha256),
                 ("significance", self.significance, row.significance), ("log index", self.log_index, row.log_index))
        wrong = [name for name, signed, stated in pairs if signed != stated]
        if self.diff_sha256 is not None and row.diff_json is not None and not self.holds_diff(row.diff_json):
            wrong.append("stored diff")
        return wrong

    def holds_diff(self, diff_json: str) -> bool:
        """Do these stored diff bytes hash to the signed ``diff_sha256``?"""
        from archiver.provenance.manifest import stored_diff_sha256

        return stored_diff_sha256(diff_json) == self.diff_sha256


def reader_anchors(archive: Any) -> list[bytes]:
    """The keys (SPKI DER) a reader on this machine anchors on, from ``keys/``:
    a worker's pinned root key, else this machine's key and the ones it
    rotated out. NotVerified (one line) when ``keys/`` holds none. Read
    without OpenSSL where the files are in the form archiver writes
    (provenance/publickeys.py); through the key store otherwise."""
    from archiver.provenance.enrolment import WORKER
    from archiver.provenance.keyring import _KEY_FILES, ED25519
    from archiver.provenance.pinning import PINNED_ROOT, PREVIOUS_KEYS
    from archiver.provenance.publickeys import public_keys_in, public_of_private

    settings = archive.settings
    key_dir = settings.key_path
    worker = settings.storage.shared_index and settings.signing.role == WORKER
    if worker:
        pin = public_keys_in(key_dir / PINNED_ROOT)
        if pin is None:
            pin = _slow(archive, "pinned")
        if pin:
            return pin[:1]
    own = public_of_private(key_dir / _KEY_FILES[ED25519])
    if own is None:
        own = archive.provenance.keys.own_public()
    previous = [] if worker else public_keys_in(key_dir / PREVIOUS_KEYS)
    if previous is None:
        previous = _slow(archive, "previous")
    anchors = ([own] if own is not None else []) + list(reversed(previous))
    if not anchors:
        raise NotVerified(NO_ANCHOR)
    return anchors


def _slow(archive: Any, which: str) -> list[bytes]:
    """A public key file of ``keys/`` in a form :mod:`publickeys` does not read, read with OpenSSL."""
    from archiver.provenance.pinning import pinned_root, previous_keys

    keys = archive.provenance.keys
    if which == "pinned":
        pin = pinned_root(keys)
        return [pin] if pin is not None else []
    return previous_keys(keys)


def reader_hint(archive: Any) -> str:
    """What to add to "not a key this machine vouches for" where the fix is known."""
    from archiver.provenance.enrolment import WORKER
    from archiver.provenance.pinning import PINNED_ROOT

    settings = archive.settings
    if (settings.storage.shared_index and settings.signing.role == WORKER
            and not (settings.key_path / PINNED_ROOT).exists()):
        return (" (this worker has no root key pinned: `archiver keys pin-root FILE` with the root machine's "
                "`keys export-public`, or give it with --public-key)")
    return ""


def reader_ring(archive: Any, pinned: list[KeyRecord] | None) -> Keyring:
    """The keyring a reader checks signatures with: anchored on ``pinned``
    (an auditor's ``--public-key``) or :func:`reader_anchors`, reduced as
    ``verify --public-key`` reduces it (audit/judge.py)."""
    from archiver.audit.judge import Judge, pinned_key

    anchors = pinned if pinned is not None else [pinned_key(k) for k in reader_anchors(archive)]
    ring = Judge.of(archive, anchors)[0].ring()
    assert ring is not None  # pinned keys always give a ring
    return ring


class SignedReads:
    """Checks a row against its signed manifest, remembering each verified
    manifest by digest. ``ring(key_id)``: the trusted ring if it holds the key
    (``pinning.OwnRingCache.with_key``: reloaded when asked about a key it
    lacks, so a worker enrolled meanwhile is seen)."""

    def __init__(self, ring: Callable[[str], Keyring | None], cap: int = 100_000, hint: str = "") -> None:
        self._ring = ring
        self.hint = hint  # said with a key it does not trust (a worker without a pinned root: how to pin it)
        self._seen: LRU[Signed] = LRU(cap)  # a failed check raises out of it: only verified manifests are kept

    def check(self, row: SnapshotRow, read: Callable[[], dict[str, Any]], only: frozenset[str] | None = None) -> Signed:
        """``row``'s signed facts; NotVerified when it does not verify.
        ``read``: the manifest record's fields (manifest, manifest_sha256,
        signature, key_id), called only when the digest was not verified before.
        ``only``: compare just these of the row's fields (:data:`CONTENT`: a
        capture re-reading an earlier page from its record, whose text row an
        index writer changed)."""
        if not row.manifest_sha256:
            raise NotVerified(f"snapshot {row.id} has no signed manifest; not shown")
        signed = self._seen.get(row.manifest_sha256, lambda: signed_facts(row, read(), self._ring, self.hint))
        return matching(row, signed, only)


def signed_facts(row: SnapshotRow, fields: dict[str, Any], ring: Callable[[str], Keyring | None],
                 hint: str = "") -> Signed:
    """What ``row``'s manifest document ``fields`` signs, when its digest is
    the row's and its signature holds under the ring ``ring(key_id)`` gives
    (None: a key not trusted; ``hint`` says how to fix that); NotVerified
    otherwise. The one signature check of a snapshot: the readers' (anchored
    on :func:`reader_ring`) and a capture's (anchored on this machine's own
    ring: takeover.py) differ only in ``ring``."""
    from archiver.provenance.manifest import check_signed_manifest

    key_id = str(fields.get("key_id") or "")
    if fields.get("manifest_sha256") != row.manifest_sha256 or not key_id:
        raise NotVerified(f"snapshot {row.id} does not verify: its manifest is not signed; not shown")
    try:
        keys = ring(key_id)
    except NotVerified:
        raise
    except ArchiverError as exc:
        raise NotVerified(f"snapshot {row.id} cannot be verified: {exc}") from exc
    if keys is None:
        raise NotVerified(f"snapshot {row.id} does not verify: signed by key {key_id[:16]}, which is not one "
                          f"this machine's keys vouch for{hint}; not shown (run archiver verify)")
    try:
        check_signed_manifest(fields, keys)
    except (VerificationError, ArchiverError, KeyError, TypeError) as exc:
        raise NotVerified(f"snapshot {row.id} does not verify: its manifest's signature does not hold "
                          f"({exc}); not shown (run archiver verify)") from exc
    return Signed.of(fields["manifest"], key_id)


def matching(row: SnapshotRow, signed: Signed, only: frozenset[str] | None = None) -> Signed:
    """``signed`` when ``row`` states what it signs (``only``: just these fields); NotVerified otherwise."""
    wrong = [name for name in signed.differs(row) if only is None or name in only]
    if wrong:
        raise NotVerified(f"snapshot {row.id} does not verify: the index's row differs from its signed "
                          f"manifest ({', '.join(wrong)}); not shown (run archiver verify)")
    return signed

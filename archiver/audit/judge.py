"""Judging signatures for the audit: the one place that decides whether a
manifest's signature holds, under the archive's keyring or only the keys an
auditor pinned with ``--public-key``.

Both halves of verify use it -- the scanning processes on the manifests in
the WARC files, the main process on the index's copy when the two differ --
so a manifest is judged the same way wherever it is read.
"""

from __future__ import annotations

import base64
import functools
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from archiver.errors import ArchiverError, VerificationError
from archiver.provenance.enrolment import is_shared_ring, trusted_ring
from archiver.provenance.keyring import ED25519, KeyRecord, Keyring
from archiver.provenance.manifest import check_signed_manifest, parse_signing_time, signing_time
from archiver.provenance.publickeys import is_ed25519_spki
from archiver.provenance.ringstore import KEYRING_NAME, archive_keyring

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_UNSEEN = object()


@dataclass(frozen=True)
class Judge:
    """The keys signatures are checked against (picklable: sent once to each
    scanning process)."""

    keyring: Keyring | None
    trusted: list[KeyRecord] | None = None  # pinned with --public-key
    # {key id: size} of the signed checkpoints whose signatures vouch for the
    # signatures by their key their leaves hold (provenance/leaves.py), each
    # key's latest, set by the audit once it checked them (audit/leafvouch.py);
    # None: check every one
    vouched: dict[str, int] | None = None

    @classmethod
    def of(cls, archive: Any, trusted: list[KeyRecord] | None) -> tuple["Judge", list[str]]:
        """The judge of an archive, and what is wrong with its keyring. A shared
        keyring is reduced to the root key (the pinned one, if any) and the
        worker keys it enrolled, each within its endorsed window."""
        ring = archive_keyring(archive)
        problems: list[str] = []
        if ring is not None and is_shared_ring(ring.keys):
            anchors = [k.public_key for k in trusted] if trusted is not None else None
            ring, problems = trusted_ring(ring.keys, anchors)
            trusted = None
        return cls(ring, trusted), problems

    def ring(self) -> Keyring | None:
        """The keyring a signature must verify under: the pinned keys when given."""
        return self.pinned() if self.trusted is not None else self.keyring

    def pinned(self) -> Keyring:
        """Only the pinned keys, with the archive keyring's validity windows where it has them."""
        return self._pinned

    @functools.cached_property
    def _pinned(self) -> Keyring:  # built once: a signature is checked against it per snapshot
        assert self.trusted is not None
        known = {k.key_id: k for k in (self.keyring.keys if self.keyring else ())}
        return Keyring.of([known.get(k.key_id, k) for k in self.trusted], Path("pinned-keys"))

    @functools.cached_property
    def raw_keys(self) -> dict[str, bytes]:
        """The Ed25519 keys of :meth:`ring` as the native reader takes them ({key id:
        the 32 raw bytes}): for each key id the record :meth:`Keyring.find`
        gives, and only when it is an Ed25519 key in the form libsodium reads."""
        ring = self.ring()
        out: dict[str, bytes] = {}
        seen: set[str] = set()
        for k in ring.keys if ring is not None else ():
            if k.key_id not in seen and k.algorithm == ED25519 and is_ed25519_spki(k.public_key):
                out[k.key_id] = k.public_key[12:]
            seen.add(k.key_id)
        return out

    def in_window(self, key_id: str, at: str) -> bool:
        """Was ``key_id`` (of :meth:`ring`) valid at ``at``, the manifest's signing
        time as it is written? What :meth:`signature_problem` asks besides the
        signature itself; False for anything it would refuse or word itself.
        (Asked once per manifest a scan reads: each key's window is looked up
        once, and compared as KeyRecord.valid_at compares it.)"""
        windows = self._windows
        window = windows.get(key_id, _UNSEEN)
        if window is _UNSEEN:
            ring = self.ring()
            record = ring.find(key_id) if ring is not None else None
            window = windows[key_id] = (None if record is None or record.algorithm != ED25519
                                        else (record.valid_from, record.valid_until))
        if window is None:
            return False
        try:
            signed = parse_signing_time(at)
        except VerificationError:
            return False
        return window[0] <= signed and (window[1] is None or signed < window[1])

    @functools.cached_property
    def _windows(self) -> dict[str, Any]:  # key id -> (valid from, until) of an Ed25519 key of ring(), or None
        return {}

    def signature_problem(self, manifest: dict[str, Any], data: bytes, signature: str | None,
                          key_id: str | None) -> tuple[str, str] | None:
        """(kind, detail) of what is wrong with a snapshot's signature over the
        canonical manifest ``data``; None when it verifies."""
        if not signature or not key_id:
            return "bad-signature", "manifest is not signed"
        try:
            sig = base64.b64decode(signature, validate=True)
        except ValueError:
            return "bad-signature", "signature is not valid base64"
        try:
            at = signing_time(manifest)
        except VerificationError as exc:
            return "bad-signature", str(exc)
        keyring = self.keyring
        if self.trusted is not None:
            if self.pinned().find(key_id) is None:
                return "untrusted-key", f"signed by key {key_id[:16]}…, not by the given public key"
            keyring = self.pinned()
        if keyring is None:
            return "bad-signature", f"no keyring ({KEYRING_NAME}) to check signatures with"
        try:
            keyring.verify(key_id, data, sig, at)
        except VerificationError as exc:
            return "bad-signature", str(exc)
        return None

    def manifest_problem(self, fields: dict[str, Any], digest: str, sig_problem: tuple[str, str] | None) -> str | None:
        """Why a manifest record in the WARCs cannot vouch for records (None: it can).
        ``sig_problem`` is :meth:`signature_problem`'s answer for the same
        manifest: when it verified, only the stated digest and key type remain."""
        ring = self.ring()
        if ring is None:
            return f"no keyring ({KEYRING_NAME}) to check its signature with"
        if sig_problem is None and fields.get("manifest_sha256") == digest:
            try:
                if ring.key(fields["key_id"]).algorithm == ED25519:
                    return None
            except (VerificationError, ArchiverError):
                pass
        try:  # the rare case: let the full check say exactly why
            check_signed_manifest(fields, ring)
        except (VerificationError, ArchiverError) as exc:
            return f"manifest signature does not verify: {exc}"
        return None

    def note_keys(self) -> Iterable[KeyRecord]:
        return self.trusted if self.trusted is not None else (self.keyring.keys if self.keyring else ())


def load_public_keys(paths: Iterable[Path]) -> list[KeyRecord]:
    """Keys an auditor pins with ``--public-key`` (PEM SPKI files, each read
    through ``given.read_given_keys``: at most 64 KiB, a regular file; every
    block counts: export-public writes the rotated keys too)."""
    from archiver.given import read_given_keys
    from archiver.provenance.pinning import ed25519_spki, public_key_ders

    out: list[KeyRecord] = []
    for path in paths:
        ders = public_key_ders(read_given_keys(path), str(path))
        if not ders:
            raise ArchiverError(f"cannot read public key {path}: it holds no PEM public key")
        out.extend(pinned_key(ed25519_spki(der, str(path))) for der in ders)
    return out


def pinned_anchor(archive: Any) -> list[KeyRecord] | None:
    """On a shared archive's worker, the root key pinned in its keys/ (``keys
    pin-root``): what verify there anchors on unless keys are given, as with
    ``--public-key`` -- not the keyring's first root entry, which the index
    holds. None elsewhere."""
    if not archive.settings.storage.shared_index or archive.provenance.keys.role != "worker":
        return None
    from archiver.provenance.pinning import pinned_root

    spki = pinned_root(archive.provenance.keys)
    return [pinned_key(spki)] if spki is not None else None


def pinned_key(spki_der: bytes) -> KeyRecord:
    """A pinned Ed25519 key (SPKI DER) as verify trusts it: no window of its own."""
    from archiver.provenance.keyring import key_id_for

    return KeyRecord(key_id=key_id_for(spki_der), algorithm=ED25519, public_key=spki_der,
                     valid_from=_EPOCH, valid_until=None, name="archiver")

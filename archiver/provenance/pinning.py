"""What this machine's own ``keys/`` vouches for: its key, and on a shared
archive the root key it trusts.

Why: the keyring lives beside the index (``keyring.json``) or in it (a
shared archive), so whoever can write either can add keys, a root entry of
their own, or a newer "current" key. Whatever this machine takes over from
an earlier snapshot, repairs, or hands an auditor to pin must rest on
something that person cannot write: the private key in ``keys/`` (0700,
0600, no symlinks), and a root public key pinned there by the operator
(``archiver keys pin-root FILE`` on a worker, from the root machine's
``archiver keys export-public``).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from archiver.errors import SigningError
from archiver.given import MAX_KEY_BYTES as MAX_PEM_BYTES
from archiver.given import read_given_keys
from archiver.provenance.keyring import Keyring, key_id_for
from archiver.provenance.publickeys import is_ed25519_spki, pem_ders

if TYPE_CHECKING:
    from archiver.provenance.keys import KeyStore

log = logging.getLogger(__name__)

PINNED_ROOT = "root-public.pem"  # in keys/: the shared archive's root key, as the operator pinned it
PREVIOUS_KEYS = "previous-public.pem"  # in keys/: the signing keys this machine rotated out (not a worker's)


def pem_of(spki_der: bytes) -> bytes:
    """SubjectPublicKeyInfo PEM of a public key (for ``--public-key``)."""
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_der_public_key(spki_der)
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def ed25519_spki_from_pem(data: bytes, where: str) -> bytes:
    """The one Ed25519 public key (SPKI DER) in a PEM file; SigningError otherwise."""
    if len(data) > MAX_PEM_BYTES:
        raise SigningError(f"{where} is not a public key file (over {MAX_PEM_BYTES} bytes)")
    if data.count(b"-----BEGIN ") != 1:
        raise SigningError(f"{where} must hold exactly one PEM public key")
    ders = public_key_ders(data, where)
    if len(ders) != 1:
        raise SigningError(f"{where} must hold exactly one PEM public key")
    return ed25519_spki(ders[0], where)


def public_key_ders(data: bytes, where: str) -> list[bytes]:
    """The DER of every public key block of a PEM file (``publickeys.pem_ders``,
    text around the blocks passed over); SigningError when a block does not decode."""
    ders = pem_ders(data, "PUBLIC KEY", strict=False)
    if ders is None:
        raise SigningError(f"{where} is not a PEM public key")
    return ders


def ed25519_spki(der: bytes, where: str) -> bytes:
    """``der`` as the Ed25519 public key (SPKI DER) it must be; SigningError
    otherwise. The one DER form (``publickeys.is_ed25519_spki``), which is
    OpenSSL's verdict too: it re-encoded a key it loaded to these same bytes."""
    if not is_ed25519_spki(der):
        raise SigningError(f"{where} is not an Ed25519 public key")
    return der


def previous_keys(keys: KeyStore) -> list[bytes]:
    """The Ed25519 keys (SPKI DER) this machine signed with before its rotations, oldest first."""
    data = keys.read_private_file(PREVIOUS_KEYS)
    if data is None:
        return []
    where = f"the previous keys ({PREVIOUS_KEYS} in the key directory)"
    return [ed25519_spki(der, where) for der in public_key_ders(data, where)]


def remember_previous(keys: KeyStore, spki: bytes) -> None:
    """Keep ``spki`` (the key a rotation retires) in ``keys/``: an embedded
    archive's and a root machine's own signing history, which the keyring
    beside the index cannot be trusted to tell. Written before the new key."""
    known = previous_keys(keys)
    if spki not in known:
        keys.write_private_file(PREVIOUS_KEYS, b"".join(pem_of(k) for k in [*known, spki]))


def keep_rotated(keys: KeyStore, source: Path) -> list[str]:
    """Keep the Ed25519 public keys of ``source`` (this machine's earlier
    ``export-public`` files, from before rotations were kept in ``keys/``) as
    keys it rotated out; returns the ids added. Why: readers show only what
    the keys in ``keys/`` signed, and a key retired before then is not there."""
    ders = public_key_ders(read_given_keys(source), str(source))
    if not ders:
        raise SigningError(f"{source} holds no PEM public key")
    current = keys.signer().public_key_spki()
    added = []
    for der in ders:
        spki = ed25519_spki(der, str(source))
        if spki != current and spki not in previous_keys(keys):
            remember_previous(keys, spki)
            added.append(key_id_for(spki))
    return added


def own_keys(keys: KeyStore) -> list[bytes]:
    """This machine's signing key and the ones it rotated out (SPKI DER), newest first."""
    current = keys.signer().public_key_spki()
    return [current, *(k for k in reversed(previous_keys(keys)) if k != current)]


def pin_root(keys: KeyStore, source: Path) -> str:
    """Pin the shared archive's root key (a PEM file) in this machine's
    ``keys/``; returns its key id. Replaces an earlier pin."""
    spki = ed25519_spki_from_pem(read_given_keys(source), str(source))
    keys.write_private_file(PINNED_ROOT, pem_of(spki))
    return key_id_for(spki)


def pinned_root(keys: KeyStore) -> bytes | None:
    """The root key pinned in ``keys/`` (SPKI DER), or None."""
    data = keys.read_private_file(PINNED_ROOT)
    if data is None:
        return None
    return ed25519_spki_from_pem(data, f"the pinned root key ({PINNED_ROOT} in the key directory)")


def own_ring(keys: KeyStore, shared: Keyring | None) -> Keyring:
    """The keys this machine accepts signatures by, from ``keys/`` on.

    Embedded, or a worker with no root pinned: its own current Ed25519 key.
    A shared archive's root machine: every key its own key enrolled; a worker
    with a pinned root: every key that root enrolled (endorsements checked
    from the anchor on, as ``verify --public-key`` does) -- and only if that
    includes its own key, else the pin is not this archive's root and the
    worker trusts its own key alone. ``shared``: the shared keyring (None on
    an embedded archive)."""
    from archiver.provenance.enrolment import ROOT, is_shared_ring, trusted_ring

    signer = keys.signer()
    if shared is not None and is_shared_ring(shared.keys):  # a keyring.json is no one's endorsement
        if keys.role == ROOT:  # the root keys this machine held, rotated ones included
            anchors: list[bytes] | None = own_keys(keys)
        else:
            pin = pinned_root(keys)
            anchors = [pin] if pin is not None else None
        if anchors is not None:
            vouched = trusted_ring(shared.keys, anchors)[0]
            if vouched.find(signer.key_id) is not None:
                return vouched
            log.warning("the pinned root key does not enrol this machine's key %s: trusting this machine's key only",
                        signer.key_id[:16])
    record = keys.keyring().find(signer.key_id)
    return Keyring.of([record] if record is not None else [])


def export_public(keys: KeyStore, target: Path) -> str:
    """Write the key(s) an auditor pins (``verify --public-key``), as ``keys/``
    knows them -- never the keyring's "current" entry, which whoever can write
    the data directory or the index could make their own. Embedded archive
    and a shared archive's root machine: this machine's Ed25519 key, followed
    by the ones it rotated out (one PEM block each); a worker: the root key
    pinned here. Returns the (current) key id written."""
    from archiver.provenance.enrolment import WORKER
    from archiver.provenance.files import atomic_write

    if keys.role == WORKER:
        spki = pinned_root(keys)
        if spki is None:
            raise SigningError(
                "this machine is a worker: run `archiver keys export-public FILE` on the root key's machine "
                "(or pin that key here first with `archiver keys pin-root FILE`)"
            )
        atomic_write(Path(target), pem_of(spki), 0o644)
        return key_id_for(spki)
    mine = own_keys(keys)
    atomic_write(Path(target), b"".join(pem_of(k) for k in mine), 0o644)
    return key_id_for(mine[0])


def pinned_root_id(keys: KeyStore) -> str | None:
    """The pinned root key's id (for ``keys show``), or None."""
    spki = pinned_root(keys)
    return None if spki is None else key_id_for(spki)


class OwnRingCache:
    """``own_ring`` for a long-lived process: loaded once, again when asked
    about a key it lacks (a worker enrolled since; at most every ``retry``
    seconds) and after ``ttl`` seconds (a retirement). Why: a re-capture asks
    about the previous snapshot's key each time; loading means reading the
    shared keyring and checking its endorsements."""

    def __init__(self, load: Callable[[], Keyring], clock: Callable[[], float] = time.monotonic,
                 ttl: float = 300.0, retry: float = 10.0) -> None:
        self._load, self._clock, self.ttl, self.retry = load, clock, ttl, retry
        self._ring: Keyring | None = None
        self._loaded = 0.0
        self._lock = threading.Lock()

    def with_key(self, key_id: str) -> Keyring | None:
        """The ring, if it holds ``key_id``; None otherwise."""
        with self._lock:
            now = self._clock()
            age = now - self._loaded
            stale = self._ring is None or age >= self.ttl
            if stale or (self._ring is not None and self._ring.find(key_id) is None and age >= self.retry):
                self._ring, self._loaded = self._load(), now
            ring = self._ring
        return ring if ring is not None and ring.find(key_id) is not None else None

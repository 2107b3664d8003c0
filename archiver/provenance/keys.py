"""Private key storage: which key signs, created on first use, rotated, and
registered in the keyring (the local file or, shared, the index).

Ed25519 signs manifests and checkpoints; ECDSA P-384 signs WACZ packages.
Keys live in a 0700 directory as 0600 PKCS#8 PEM files (optionally
passphrase-encrypted; the files themselves: ``keyfiles``), are created
race-free across processes, and leave this module only as signatures.
"""

from __future__ import annotations

import base64
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
)

from archiver.errors import SigningError, VerificationError
from archiver.provenance.enrolment import ROLES, ROOT, WORKER, endorse_key, trusted_ring
from archiver.provenance.keyfiles import KeyDir, Stamp, passphrase_from_env
from archiver.provenance.keyring import (
    ALGORITHMS,
    ECDSA_P384,
    ED25519,
    KeyRecord,
    Keyring,
    _format_time,
    _PrivateKey,
    _spki,
    _valid_key_name,
    key_id_for,
)
from archiver.provenance.ringstore import IndexRing
from archiver.provenance.signatures import Signer, WaczSigner, sodium_key

log = logging.getLogger(__name__)

#: the least step of a keyring time (microseconds): a rotation's new root key is
#: endorsed this much before the old one's window closes
_INSTANT = timedelta(microseconds=1)

__all__ = ["KeyStore", "passphrase_from_env"]


@dataclass
class _Loaded:
    key: _PrivateKey
    key_id: str
    name: str
    stamp: Stamp  # (dev, ino, mtime_ns, size) of the file read
    pending: bool = False  # a worker key the root key has not enrolled yet
    until: datetime | None = None  # end of a worker key's endorsed window
    spki: bytes | None = None  # the public key, SPKI DER
    sodium: bytes | None = None  # the Ed25519 key as libsodium signs with it (signatures.sodium_key)


def _generate(algorithm: str) -> _PrivateKey:
    """A fresh private key (module-level so tests can stage a creation race)."""
    if algorithm == ED25519:
        return Ed25519PrivateKey.generate()
    return ec.generate_private_key(ec.SECP384R1())


class KeyStore:
    """Private keys on disk, created on first use, plus the archive keyring.

    ``keys_dir`` is private (0700, files 0600) and must not be shipped with
    the archive; ``keyring_path`` is public and must be. ``clock`` stamps
    validity windows. Processes may share a KeyStore directory: creation
    races are settled by O_EXCL-style no-clobber publishing (the loser
    re-reads the winner's key) and keyring updates by a file lock.
    """

    def __init__(
        self,
        keys_dir: Path,
        *,
        keyring_path: Path,
        clock: Callable[[], datetime],
        passphrase: bytes | None = None,
        key_name: str = "archiver",
        shared: IndexRing | None = None,
        role: str = ROOT,
    ) -> None:
        if not _valid_key_name(key_name):
            raise SigningError(f"invalid key name {key_name!r}: no spaces or '+' allowed")
        if passphrase is not None and not 0 < len(passphrase) < 1024:
            raise SigningError("the key passphrase must be 1 to 1023 bytes")
        self._dir = Path(keys_dir)
        self._keyring_path = Path(keyring_path)
        self._clock = clock
        self._passphrase = passphrase
        self._files = KeyDir(self._dir, passphrase)
        self._key_name = key_name
        self._loaded: dict[str, _Loaded] = {}
        # Shared archive: the keyring is in the index, and this machine's key is
        # the root key (enrols others) or a worker key (signs once enrolled).
        self._shared = shared
        self._role = role if shared is not None else ""
        if self._role not in ("", *ROLES):
            raise SigningError(f"signing.role must be one of {', '.join(ROLES)}, not {role!r}")

    def __repr__(self) -> str:
        return f"KeyStore({str(self._dir)!r}, encrypted={self._passphrase is not None})"

    # -- public API -------------------------------------------------------

    def signer(self) -> Signer:
        """The current Ed25519 signer (created on first use).

        Cheap to call per snapshot; it notices a rotation by another
        process, so don't hold on to the result across snapshots.
        """
        loaded = self._current(ED25519)
        assert isinstance(loaded.key, Ed25519PrivateKey)
        if loaded.pending:
            raise SigningError(
                f"this machine's signing key {loaded.key_id} is not enrolled in the shared archive yet: "
                f"run `archiver keys enroll {loaded.key_id}` where the archive's root key is"
            )
        if loaded.until is not None and self._now() >= loaded.until:
            raise SigningError(
                f"this machine's signing key {loaded.key_id[:16]} was valid until {_format_time(loaded.until)}: "
                "run `archiver keys rotate` here and enrol the new key"
            )
        return Signer(loaded.key_id, loaded.name, loaded.key, _spki_der=loaded.spki, _sodium_key=loaded.sodium)

    def own_public(self) -> bytes | None:
        """This machine's Ed25519 public key (SPKI DER) as ``keys/`` holds it;
        None when it holds none. Why not :meth:`signer`: a reader anchors
        on it, and reading must neither create a key, nor register one in the
        keyring, nor refuse because a worker's key waits for enrolment."""
        cached = self._loaded.get(ED25519)
        if cached is not None and cached.spki is not None:
            return cached.spki
        path = self._files.path(ED25519)
        if not os.path.lexists(path):
            return None
        try:
            key, _ = self._files.load(path, ED25519)
        except OSError as exc:
            raise SigningError(f"cannot read key file {path}: {exc.strerror or exc}") from exc
        return _spki(key)

    def now(self) -> datetime:
        """The store's clock, checked to be timezone-aware (validity windows)."""
        return self._now()

    @property
    def role(self) -> str:
        """"root" or "worker" on a shared archive; "" on an embedded one."""
        return self._role

    def wacz_signer(self) -> WaczSigner:
        """The current ECDSA P-384 WACZ signer (created on first use)."""
        loaded = self._current(ECDSA_P384)
        assert isinstance(loaded.key, ec.EllipticCurvePrivateKey)
        public_b64 = base64.b64encode(_spki(loaded.key)).decode("ascii")
        return WaczSigner(loaded.key_id, loaded.name, public_b64, loaded.key)

    def ensure(self) -> None:
        """Create both keys now (e.g. at daemon start) rather than at the
        first signature, so the keys' validity starts before any capture."""
        self._current(ED25519)
        self._current(ECDSA_P384)

    def write_private_file(self, name: str, data: bytes) -> None:
        """Put a file of this machine's own (a pinned root key) into ``keys/``:
        0600, written whole, replacing an earlier one."""
        self._files.ensure()
        with self._files.lock():
            self._files.publish(self._dir / name, data, replace_existing=True)

    def read_private_file(self, name: str) -> bytes | None:
        """A file of ``keys/`` (symlinks and files others can write refused); None if absent."""
        path = self._dir / name
        if not os.path.lexists(path):
            return None
        return self._files.read(path)[0]

    def keyring(self) -> Keyring:
        """The archive keyring, freshly loaded."""
        try:
            if self._shared is not None:
                return self._shared.load() or Keyring.of([], Path(self._shared.where))
            return Keyring(self._keyring_path).load()
        except VerificationError as exc:
            raise SigningError(str(exc)) from exc

    def update_keyring(self, change: Callable[[list[KeyRecord]], list[KeyRecord] | None]) -> None:
        """Read, change and write the keyring atomically (flock or index transaction)."""
        if self._shared is not None:
            self._shared.update(change)
            return
        with self._files.lock():
            ring = self.keyring()
            new = change(list(ring.keys))
            if new is None:
                return
            try:
                ring.save(new)
            except OSError as exc:
                raise SigningError(
                    f"cannot write keyring {self._keyring_path}: {exc.strerror or exc}"
                ) from exc

    def _replaced(self, record: KeyRecord, algorithm: str, previous: str | None) -> bool:
        """An open key of ``algorithm`` that this machine's new key replaces: on
        a shared archive only its own previous one (``previous``), since the
        other machines' keys stay current."""
        return (record.algorithm == algorithm and record.valid_until is None
                and (self._shared is None or record.key_id == previous))

    def rotate(self) -> dict[str, str]:
        """Replace both keys; returns ``{algorithm: new key id}``.

        Old private keys are deleted (replaced in place); their public keys
        stay in the keyring with ``valid_until`` set to now, so signatures
        they made before remain verifiable and any dated later are refused.
        """
        self._files.ensure()
        new_ids: dict[str, str] = {}
        # A shared archive's new root key is endorsed by the old one.
        old_root = self.signer() if self._role == ROOT else None
        if self._role != WORKER:  # the history auditors pin and a root machine trusts, kept in keys/
            from archiver.provenance.pinning import remember_previous

            retiring = self._current(ED25519)
            remember_previous(self, retiring.spki or _spki(retiring.key))
        previous = {algorithm: self._current(algorithm).key_id for algorithm in ALGORITHMS} if self._role else {}
        with self._files.lock():
            now = self._now()
            fresh = {algorithm: _generate(algorithm) for algorithm in ALGORITHMS}

            def change(records: list[KeyRecord]) -> list[KeyRecord]:
                for algorithm, key in fresh.items():
                    spki = _spki(key)
                    record = KeyRecord(key_id_for(spki), algorithm, spki, now, None, self._key_name, role=self._role)
                    if old_root is not None and algorithm == ED25519:
                        # Signed while the old root is still valid: its window
                        # closes at `now` and excludes its end.
                        record = endorse_key(record, old_root, now - _INSTANT)
                    old = previous.get(algorithm)
                    records = [replace(r, valid_until=now) if self._replaced(r, algorithm, old) else r for r in records]
                    records.append(record)
                    new_ids[algorithm] = record.key_id
                return records

            # The key files first: a key file the keyring lacks (a crash in
            # between) is registered, closing the old key, at its first use.
            for algorithm, key in fresh.items():
                self._files.publish(self._files.path(algorithm), self._files.serialize(key), replace_existing=True)
            if self._shared is not None:
                self._shared.update(change)
            else:
                ring = self.keyring()
                ring.save(change(list(ring.keys)))
            self._loaded.clear()
        log.info(
            "rotated keys: %s",
            ", ".join(f"{alg} {kid[:16]}" for alg, kid in new_ids.items()),
        )
        return new_ids

    # -- internals --------------------------------------------------------

    def _now(self) -> datetime:
        now = self._clock()
        if now.tzinfo is None:
            raise SigningError("the clock must return timezone-aware datetimes")
        return now.astimezone(timezone.utc)

    def _load_or_create(self, algorithm: str) -> tuple[_PrivateKey, Stamp]:
        path = self._files.path(algorithm)
        try:
            return self._files.load(path, algorithm)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise SigningError(f"cannot read key file {path}: {exc.strerror or exc}") from exc
        key = _generate(algorithm)
        try:
            self._files.publish(path, self._files.serialize(key), replace_existing=False)
        except FileExistsError:
            log.info("%s key was created concurrently; using the existing one", algorithm)
        else:
            log.info("created %s key %s in %s", algorithm, key_id_for(_spki(key))[:16], self._dir)
        try:
            return self._files.load(path, algorithm)
        except OSError as exc:
            raise SigningError(f"cannot read key file {path}: {exc.strerror or exc}") from exc

    def _current(self, algorithm: str) -> _Loaded:
        """The current key, reloaded when its file changed (rotation elsewhere)."""
        path = self._files.path(algorithm)
        cached = self._loaded.get(algorithm)
        if cached is not None:
            try:
                st = os.stat(path, follow_symlinks=False)
                if (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size) == cached.stamp:
                    return cached
            except FileNotFoundError:
                pass
        self._files.ensure()
        key, stamp = self._load_or_create(algorithm)
        spki = _spki(key)
        key_id = key_id_for(spki)
        name, pending, until = self._register(algorithm, key, key_id, spki)
        fast = sodium_key(key) if isinstance(key, Ed25519PrivateKey) else None
        loaded = _Loaded(key, key_id, name, stamp, pending, until, spki, fast)
        if not pending:  # a pending key is looked up again: it may be enrolled meanwhile
            self._loaded[algorithm] = loaded
        return loaded

    def _register(
        self, algorithm: str, key: _PrivateKey, key_id: str, spki: bytes
    ) -> tuple[str, bool, datetime | None]:
        """Make sure the keyring lists this key as current; returns its name,
        whether it still waits for enrolment (a shared archive's worker key:
        one no trusted root key endorsed) and the end of its endorsed window.

        A key file missing from the keyring (first use, or a crash during
        rotation) is added now and closes this machine's other open key of
        the same algorithm. A key the keyring has retired is refused. On a
        shared archive the first root key endorses itself (and the keys of a
        keyring.json it replaces); a second root key is refused.
        """
        pending = False
        until: datetime | None = None
        name = self._key_name
        anchors = None
        if self._role == WORKER and algorithm == ED25519:
            from archiver.provenance.pinning import pinned_root

            pin = pinned_root(self)  # enrolled by the root key pinned here, not the keyring's first root entry
            anchors = [pin] if pin is not None else None

        def change(records: list[KeyRecord]) -> list[KeyRecord] | None:
            nonlocal pending, until, name
            record = next((r for r in records if r.key_id == key_id), None)
            if record is not None:
                if record.valid_until is not None:
                    raise SigningError(
                        f"{algorithm} key {key_id[:16]} was retired at "
                        f"{_format_time(record.valid_until)}; refusing to sign with it"
                    )
                if record.algorithm != algorithm:
                    raise SigningError(f"keyring lists key {key_id[:16]} as {record.algorithm}")
                name = record.name  # the name it was registered (and is verified) under
                if self._role == WORKER and algorithm == ED25519:
                    trusted = trusted_ring(records, anchors)[0].find(key_id)
                    pending, until = trusted is None, trusted.valid_until if trusted else None
                return None
            now = self._now()
            new = KeyRecord(key_id, algorithm, spki, now, None, self._key_name, role=self._role)
            if self._role and algorithm == ED25519:
                if self._role == WORKER:
                    pending = True
                else:
                    records, new = self._genesis(records, new, key)
            records = [replace(r, valid_until=now) if self._replaced(r, algorithm, None) else r for r in records]
            log.info("keyring %s: added %s key %s", self._ring_where(), algorithm, key_id[:16])
            return [*records, new]

        self.update_keyring(change)
        return name, pending, until

    def _ring_where(self) -> str:
        return self._shared.where if self._shared is not None else str(self._keyring_path)

    def _genesis(self, records: list[KeyRecord], new: KeyRecord, key: _PrivateKey) -> tuple[list[KeyRecord], KeyRecord]:
        """The shared archive's first root key: it endorses itself, and the keys
        of the local keyring.json (an archive migrated or upgraded to shared
        mode) so their signatures keep verifying."""
        roots = [r for r in records if r.role == ROOT and r.valid_until is None]
        if roots:
            raise SigningError(
                f"the shared archive's root key is {roots[0].key_id[:16]} ({roots[0].name}); this machine's key "
                f"{new.key_id[:16]} is not it: set [signing] role = \"worker\" here and enrol its key with "
                "`archiver keys enroll` where the root key is"
            )
        assert isinstance(key, Ed25519PrivateKey)
        root = Signer(new.key_id, new.name, key)
        now = new.valid_from
        try:
            legacy = [r for r in Keyring(self._keyring_path).load().keys if r.key_id not in {x.key_id for x in records}]
        except VerificationError as exc:
            raise SigningError(str(exc)) from exc
        mine = next((r for r in legacy if r.key_id == new.key_id), None)
        if mine is not None:  # keeps its window: it signed the archive's history
            new = replace(mine, role=ROOT, valid_until=None)
        imported = [
            endorse_key(replace(r, role=WORKER), root, now, r.valid_until) if r.algorithm == ED25519 else replace(r, role=WORKER)
            for r in legacy if r.key_id != new.key_id
        ]
        return [*records, *imported], endorse_key(new, root, now)

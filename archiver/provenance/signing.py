"""Keys and signatures: the one module that touches private keys.

Two key pairs, created on first use:

* Ed25519 (``ed25519``) signs snapshot manifests and checkpoint signed notes
  (C2SP signed notes are Ed25519).
* ECDSA P-384 (``ecdsa-p384``) signs WACZ ``datapackage-digest.json`` in the
  wacz-auth anonymous mode, which ReplayWeb.page verifies with WebCrypto.

Private keys live in a 0700 directory as 0600 PKCS#8 PEM files, optionally
encrypted with a passphrase; they are never logged and never leave this
module except as signatures. Public keys go into a keyring JSON file kept
with the archive, each with a validity window, so an auditor verifies with
the archive alone and old signatures stay valid after a rotation.

A key id is the lowercase hex SHA-256 of the public key's SPKI DER encoding.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import secrets
import stat
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Union

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from archiver.errors import SigningError, VerificationError

__all__ = [
    "ED25519",
    "ECDSA_P384",
    "PASSPHRASE_ENV",
    "PASSPHRASE_FILE_ENV",
    "key_id_for",
    "passphrase_from_env",
    "KeyRecord",
    "Keyring",
    "Signer",
    "WaczSigner",
    "KeyStore",
    "verify_wacz_signature",
]

log = logging.getLogger(__name__)

ED25519 = "ed25519"
ECDSA_P384 = "ecdsa-p384"
ALGORITHMS = (ED25519, ECDSA_P384)
PASSPHRASE_ENV = "ARCHIVER_KEY_PASSPHRASE"
PASSPHRASE_FILE_ENV = "ARCHIVER_KEY_PASSPHRASE_FILE"

_KEY_FILES = {ED25519: "ed25519.pem", ECDSA_P384: "ecdsa-p384.pem"}
_LOCK_FILE = ".lock"
_KEYRING_VERSION = 1
_P384_BYTES = 48

_PrivateKey = Union[Ed25519PrivateKey, ec.EllipticCurvePrivateKey]
_PublicKey = Union[Ed25519PublicKey, ec.EllipticCurvePublicKey]


# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------


def key_id_for(spki_der: bytes) -> str:
    """Key id: hex SHA-256 of the SPKI DER public key (stable across formats)."""
    return hashlib.sha256(spki_der).hexdigest()


def _spki(key: _PrivateKey | _PublicKey) -> bytes:
    public = key.public_key() if isinstance(key, (Ed25519PrivateKey, ec.EllipticCurvePrivateKey)) else key
    return public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _format_time(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _parse_time(value: str) -> datetime:
    dt = datetime.fromisoformat(value)
    if dt.tzinfo is None:
        raise ValueError(f"time {value!r} has no timezone")
    return dt.astimezone(timezone.utc)


def _valid_key_name(name: str) -> bool:
    """C2SP signed-note key names: non-empty, no whitespace, no '+'."""
    return bool(name) and "+" not in name and not any(ch.isspace() or ord(ch) < 0x20 for ch in name)


def _b64decode(value: str, what: str) -> bytes:
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError, AttributeError) as exc:
        raise VerificationError(f"{what} is not valid base64") from exc


def _fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _atomic_write(path: Path, data: bytes, mode: int) -> None:
    """Write ``path`` whole or not at all: temp file, fsync, rename."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, mode)
    try:
        try:
            os.fchmod(fd, mode)
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    _fsync_dir(path.parent)


def passphrase_from_env(environ: Mapping[str, str]) -> bytes | None:
    """The key passphrase from ARCHIVER_KEY_PASSPHRASE or the file named by
    ARCHIVER_KEY_PASSPHRASE_FILE (one trailing newline stripped); None when
    neither is set. Setting both is refused rather than guessing."""
    value = environ.get(PASSPHRASE_ENV)
    file_name = environ.get(PASSPHRASE_FILE_ENV)
    if value is not None and file_name:
        raise SigningError(f"set only one of {PASSPHRASE_ENV} and {PASSPHRASE_FILE_ENV}")
    if value is not None:
        secret = value.encode("utf-8")
    elif file_name:
        try:
            secret = Path(file_name).read_bytes()
        except OSError as exc:
            raise SigningError(
                f"cannot read passphrase file {file_name}: {exc.strerror or exc}"
            ) from exc
        if secret.endswith(b"\r\n"):
            secret = secret[:-2]
        elif secret.endswith(b"\n"):
            secret = secret[:-1]
    else:
        return None
    if not secret:
        raise SigningError("the key passphrase is empty")
    return secret


# --------------------------------------------------------------------------
# Public keys: the keyring kept with the archive
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyRecord:
    """One public key in the keyring and the window in which it may sign.

    The window is half-open: ``valid_from <= at < valid_until``; a current
    key has ``valid_until`` None.
    """

    key_id: str
    algorithm: str
    public_key: bytes  # SPKI DER
    valid_from: datetime
    valid_until: datetime | None
    name: str

    def valid_at(self, at: datetime) -> bool:
        """True when a signature made at ``at`` may come from this key."""
        if at.tzinfo is None:
            raise VerificationError("signature time has no timezone")
        if at < self.valid_from:
            return False
        return self.valid_until is None or at < self.valid_until

    def load_public_key(self) -> _PublicKey:
        """The key as a cryptography object, checked against its algorithm."""
        try:
            key = serialization.load_der_public_key(self.public_key)
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise VerificationError(f"key {self.key_id[:16]} is not a valid public key") from exc
        if self.algorithm == ED25519 and isinstance(key, Ed25519PublicKey):
            return key
        if (
            self.algorithm == ECDSA_P384
            and isinstance(key, ec.EllipticCurvePublicKey)
            and isinstance(key.curve, ec.SECP384R1)
        ):
            return key
        raise VerificationError(f"key {self.key_id[:16]} is not an {self.algorithm} key")

    def public_key_pem(self) -> str:
        """SubjectPublicKeyInfo PEM, for ``--public-key`` and other tools."""
        return (
            self.load_public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode("ascii")
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "algorithm": self.algorithm,
            "public_key": base64.b64encode(self.public_key).decode("ascii"),
            "valid_from": _format_time(self.valid_from),
            "valid_until": None if self.valid_until is None else _format_time(self.valid_until),
            "name": self.name,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> KeyRecord:
        """Parse and check one entry: the key id must match the key."""
        try:
            public_key = _b64decode(obj["public_key"], "keyring public key")
            until = obj.get("valid_until")
            record = cls(
                key_id=str(obj["key_id"]),
                algorithm=str(obj["algorithm"]),
                public_key=public_key,
                valid_from=_parse_time(obj["valid_from"]),
                valid_until=None if until is None else _parse_time(until),
                name=str(obj.get("name") or ""),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise VerificationError(f"malformed keyring entry: {exc}") from exc
        if record.algorithm not in ALGORITHMS:
            raise VerificationError(f"keyring entry has unknown algorithm {record.algorithm!r}")
        if key_id_for(record.public_key) != record.key_id:
            raise VerificationError(f"keyring entry {record.key_id[:16]}: key id does not match key")
        record.load_public_key()
        return record


class Keyring:
    """The public keys that signed this archive, with validity windows.

    Needs no private key and no KeyStore: ``archiver verify`` builds one
    from the archive's keyring file alone.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._records: list[KeyRecord] | None = None

    def load(self) -> Keyring:
        """(Re)read the file; a missing file is an empty keyring."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            self._records = []
            return self
        except OSError as exc:
            raise VerificationError(f"cannot read keyring {self.path}: {exc.strerror or exc}") from exc
        try:
            doc = json.loads(raw)
        except ValueError as exc:
            raise VerificationError(f"keyring {self.path} is not valid JSON") from exc
        entries = doc.get("keys") if isinstance(doc, dict) else doc
        if not isinstance(entries, list):
            raise VerificationError(f"keyring {self.path} has no key list")
        records = [KeyRecord.from_json(e) for e in entries]
        if len({r.key_id for r in records}) != len(records):
            raise VerificationError(f"keyring {self.path} lists a key twice")
        self._records = records
        return self

    @property
    def keys(self) -> tuple[KeyRecord, ...]:
        """All keys, in the order they were added."""
        if self._records is None:
            self.load()
        return tuple(self._records or ())

    def find(self, key_id: str) -> KeyRecord | None:
        """The key with ``key_id``, or None."""
        return next((r for r in self.keys if r.key_id == key_id), None)

    def key(self, key_id: str) -> KeyRecord:
        """The key with ``key_id``; VerificationError when unknown."""
        record = self.find(key_id)
        if record is None:
            raise VerificationError(f"key {key_id[:16]} is not in the keyring")
        return record

    def current(self, algorithm: str = ED25519) -> KeyRecord:
        """The key of ``algorithm`` that is signing now (open window)."""
        live = [r for r in self.keys if r.algorithm == algorithm and r.valid_until is None]
        if not live:
            raise SigningError(f"keyring {self.path} has no current {algorithm} key")
        return max(live, key=lambda r: r.valid_from)

    def verify(self, key_id: str, data: bytes, signature: bytes, at: datetime) -> KeyRecord:
        """Check that ``key_id`` signed ``data`` and was valid at ``at``.

        Ed25519 signatures are the usual 64 bytes; ECDSA P-384 ones are raw
        r||s (96 bytes) over SHA-256, as WebCrypto makes them. Raises
        VerificationError; returns the key record on success.
        """
        record = self.key(key_id)
        if not record.valid_at(at):
            raise VerificationError(
                f"key {key_id[:16]} was not valid at {_format_time(at)} "
                f"(valid {_format_time(record.valid_from)} to "
                f"{'now' if record.valid_until is None else _format_time(record.valid_until)})"
            )
        _verify_with(record.load_public_key(), data, signature, key_id)
        return record

    def export_public(self, path: Path, algorithm: str = ED25519) -> None:
        """Write the current public key as SPKI PEM (for ``--public-key``)."""
        _atomic_write(Path(path), self.current(algorithm).public_key_pem().encode("ascii"), 0o644)

    def save(self, records: Sequence[KeyRecord]) -> None:
        """Replace the file atomically with ``records`` (KeyStore's job)."""
        doc = {"version": _KEYRING_VERSION, "keys": [r.to_json() for r in records]}
        data = (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode("utf-8")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(self.path, data, 0o644)
        self._records = list(records)


def _raw_to_der(signature: bytes) -> bytes:
    if len(signature) != 2 * _P384_BYTES:
        raise VerificationError(
            f"ECDSA P-384 signature has {len(signature)} bytes, want {2 * _P384_BYTES} (raw r||s)"
        )
    r = int.from_bytes(signature[:_P384_BYTES], "big")
    s = int.from_bytes(signature[_P384_BYTES:], "big")
    return encode_dss_signature(r, s)


def _verify_with(key: _PublicKey, data: bytes, signature: bytes, label: str) -> None:
    try:
        if isinstance(key, Ed25519PublicKey):
            key.verify(signature, data)
        else:
            key.verify(_raw_to_der(signature), data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as exc:
        raise VerificationError(f"bad signature by key {label[:16]}") from exc


def verify_wacz_signature(hash_string: str, signature_b64: str, public_key_b64: str) -> None:
    """Verify a wacz-auth anonymous-mode signature the way ReplayWeb.page does.

    ReplayWeb.page imports ``publicKey`` as SPKI for ECDSA P-384 and calls
    WebCrypto ``verify({name: "ECDSA", hash: "SHA-256"})`` over the UTF-8
    bytes of ``hash`` ("sha256:<hex>"); WebCrypto signatures are raw r||s.
    Raises VerificationError.
    """
    spki = _b64decode(public_key_b64, "WACZ publicKey")
    signature = _b64decode(signature_b64, "WACZ signature")
    try:
        key = serialization.load_der_public_key(spki)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise VerificationError("WACZ publicKey is not an SPKI DER public key") from exc
    if not (isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP384R1)):
        raise VerificationError("WACZ publicKey is not an ECDSA P-384 key")
    try:
        key.verify(_raw_to_der(signature), hash_string.encode("utf-8"), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as exc:
        raise VerificationError("WACZ signature does not match its hash and public key") from exc


# --------------------------------------------------------------------------
# Signers handed to the rest of the service
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Signer:
    """Ed25519 signer for manifests and checkpoint notes.

    Holds the private key object but never shows it (not in repr, not in
    comparisons); callers get signatures and public material only.
    """

    key_id: str
    name: str
    _key: Ed25519PrivateKey = field(repr=False, compare=False)
    algorithm: str = ED25519

    def sign(self, data: bytes) -> bytes:
        """Ed25519 signature (64 bytes) of ``data``."""
        return self._key.sign(data)

    def public_key_spki(self) -> bytes:
        """The public key, SPKI DER."""
        return _spki(self._key)

    def public_key_raw(self) -> bytes:
        """The 32-byte raw Ed25519 public key (what signed notes use)."""
        return self._key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )


@dataclass(frozen=True)
class WaczSigner:
    """ECDSA P-384 signer for WACZ datapackage digests (wacz-auth anonymous)."""

    key_id: str
    name: str
    public_key_b64: str  # base64 SPKI DER, the WACZ ``publicKey``
    _key: ec.EllipticCurvePrivateKey = field(repr=False, compare=False)
    algorithm: str = ECDSA_P384

    def sign(self, data: bytes) -> bytes:
        """ECDSA P-384 / SHA-256 signature of ``data`` as raw r||s (96 bytes)."""
        r, s = decode_dss_signature(self._key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(_P384_BYTES, "big") + s.to_bytes(_P384_BYTES, "big")

    def sign_wacz(self, hash_string: str) -> str:
        """The WACZ ``signature``: base64 raw r||s over the ASCII ``"sha256:<hex>"``."""
        try:
            data = hash_string.encode("ascii")
        except UnicodeEncodeError as exc:
            raise SigningError("the WACZ hash string must be ASCII") from exc
        return base64.b64encode(self.sign(data)).decode("ascii")

    def public_key_spki(self) -> bytes:
        """The public key, SPKI DER."""
        return _spki(self._key)


# --------------------------------------------------------------------------
# The private key store
# --------------------------------------------------------------------------


@dataclass
class _Loaded:
    key: _PrivateKey
    key_id: str
    name: str
    stamp: tuple[int, int, int, int]  # (dev, ino, mtime_ns, size) of the file read


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
    ) -> None:
        if not _valid_key_name(key_name):
            raise SigningError(f"invalid key name {key_name!r}: no spaces or '+' allowed")
        if passphrase is not None and not 0 < len(passphrase) < 1024:
            raise SigningError("the key passphrase must be 1 to 1023 bytes")
        self._dir = Path(keys_dir)
        self._keyring_path = Path(keyring_path)
        self._clock = clock
        self._passphrase = passphrase
        self._key_name = key_name
        self._loaded: dict[str, _Loaded] = {}

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
        return Signer(loaded.key_id, loaded.name, loaded.key)

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

    def keyring(self) -> Keyring:
        """The archive keyring, freshly loaded."""
        try:
            return Keyring(self._keyring_path).load()
        except VerificationError as exc:
            raise SigningError(str(exc)) from exc

    def rotate(self) -> dict[str, str]:
        """Replace both keys; returns ``{algorithm: new key id}``.

        Old private keys are deleted (replaced in place); their public keys
        stay in the keyring with ``valid_until`` set to now, so signatures
        they made before remain verifiable and any dated later are refused.
        """
        self._ensure_dir()
        new_ids: dict[str, str] = {}
        with self._lock():
            ring = self.keyring()
            records = list(ring.keys)
            now = self._now()
            for algorithm in ALGORITHMS:
                key = _generate(algorithm)
                self._publish(self._key_path(algorithm), self._serialize(key), replace_existing=True)
                spki = _spki(key)
                key_id = key_id_for(spki)
                records = [
                    replace(r, valid_until=now)
                    if r.algorithm == algorithm and r.valid_until is None
                    else r
                    for r in records
                ]
                records.append(KeyRecord(key_id, algorithm, spki, now, None, self._key_name))
                new_ids[algorithm] = key_id
            ring.save(records)
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

    def _key_path(self, algorithm: str) -> Path:
        return self._dir / _KEY_FILES[algorithm]

    def _ensure_dir(self) -> None:
        try:
            self._dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            st = os.stat(self._dir)
            if not stat.S_ISDIR(st.st_mode):
                raise SigningError(f"key directory {self._dir} is not a directory")
            if st.st_mode & 0o077:
                os.chmod(self._dir, 0o700)
                log.warning("key directory %s was accessible to others; set to 0700", self._dir)
        except OSError as exc:
            raise SigningError(f"cannot prepare key directory {self._dir}: {exc.strerror or exc}") from exc

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """Exclusive lock (flock) serialising keyring updates across processes."""
        path = self._dir / _LOCK_FILE
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _serialize(self, key: _PrivateKey) -> bytes:
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(self._passphrase)
            if self._passphrase is not None
            else serialization.NoEncryption()
        )
        return key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )

    def _publish(self, path: Path, data: bytes, *, replace_existing: bool) -> None:
        """Put a complete 0600 key file at ``path``.

        The bytes go to a fresh O_EXCL temp file first, so nobody ever reads
        a half-written key. Without ``replace_existing`` the final step is a
        hard link, which like O_EXCL fails when ``path`` exists: the loser
        of a creation race gets FileExistsError and reads the winner's key.
        """
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW, 0o600)
            try:
                os.fchmod(fd, 0o600)
                _write_all(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            if replace_existing:
                os.replace(tmp, path)
            else:
                try:
                    os.link(tmp, path)
                except FileExistsError:
                    raise
                except OSError as exc:
                    if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                        raise
                    self._publish_exclusive(path, data)  # filesystem without hard links
            _fsync_dir(self._dir)
        except FileExistsError:
            raise
        except OSError as exc:
            raise SigningError(f"cannot write key file {path}: {exc.strerror or exc}") from exc
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    @staticmethod
    def _publish_exclusive(path: Path, data: bytes) -> None:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW, 0o600)
        try:
            os.fchmod(fd, 0o600)
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)

    def _read_key_file(self, path: Path) -> tuple[bytes, tuple[int, int, int, int]]:
        """Read a key file, refusing symlinks and files others can read."""
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise SigningError(f"key file {path} is not a regular file")
            if st.st_mode & 0o077:
                raise SigningError(
                    f"key file {path} is accessible to others (mode {stat.S_IMODE(st.st_mode):04o}); "
                    "run chmod 600 on it"
                )
            chunks = []
            while chunk := os.read(fd, 65536):
                chunks.append(chunk)
            return b"".join(chunks), (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
        finally:
            os.close(fd)

    def _load_key(self, path: Path, algorithm: str) -> tuple[_PrivateKey, tuple[int, int, int, int]]:
        data, stamp = self._read_key_file(path)
        try:
            key = serialization.load_pem_private_key(data, password=self._passphrase)
        except TypeError as exc:
            if self._passphrase is None:
                raise SigningError(
                    f"key file {path} is encrypted; set {PASSPHRASE_ENV} or {PASSPHRASE_FILE_ENV}"
                ) from exc
            # A passphrase was given but this key was stored without one.
            log.warning("key file %s is not encrypted although a passphrase is set", path)
            try:
                key = serialization.load_pem_private_key(data, password=None)
            except (ValueError, TypeError, UnsupportedAlgorithm) as exc2:
                raise SigningError(f"cannot load key file {path}: not a valid private key") from exc2
        except ValueError as exc:
            if self._passphrase is not None and b"ENCRYPTED" in data[:64]:
                raise SigningError(f"cannot decrypt key file {path}: wrong passphrase") from exc
            raise SigningError(f"cannot load key file {path}: not a valid private key") from exc
        except UnsupportedAlgorithm as exc:
            raise SigningError(f"cannot load key file {path}: unsupported key type") from exc
        if algorithm == ED25519 and isinstance(key, Ed25519PrivateKey):
            return key, stamp
        if (
            algorithm == ECDSA_P384
            and isinstance(key, ec.EllipticCurvePrivateKey)
            and isinstance(key.curve, ec.SECP384R1)
        ):
            return key, stamp
        raise SigningError(f"key file {path} does not hold an {algorithm} key")

    def _load_or_create(self, algorithm: str) -> tuple[_PrivateKey, tuple[int, int, int, int]]:
        path = self._key_path(algorithm)
        try:
            return self._load_key(path, algorithm)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise SigningError(f"cannot read key file {path}: {exc.strerror or exc}") from exc
        key = _generate(algorithm)
        try:
            self._publish(path, self._serialize(key), replace_existing=False)
        except FileExistsError:
            log.info("%s key was created concurrently; using the existing one", algorithm)
        else:
            log.info("created %s key %s in %s", algorithm, key_id_for(_spki(key))[:16], self._dir)
        try:
            return self._load_key(path, algorithm)
        except OSError as exc:
            raise SigningError(f"cannot read key file {path}: {exc.strerror or exc}") from exc

    def _current(self, algorithm: str) -> _Loaded:
        """The current key, reloaded when its file changed (rotation elsewhere)."""
        path = self._key_path(algorithm)
        cached = self._loaded.get(algorithm)
        if cached is not None:
            try:
                st = os.stat(path, follow_symlinks=False)
                if (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size) == cached.stamp:
                    return cached
            except FileNotFoundError:
                pass
        self._ensure_dir()
        key, stamp = self._load_or_create(algorithm)
        spki = _spki(key)
        key_id = key_id_for(spki)
        name = self._register(algorithm, key_id, spki)
        loaded = _Loaded(key, key_id, name, stamp)
        self._loaded[algorithm] = loaded
        return loaded

    def _register(self, algorithm: str, key_id: str, spki: bytes) -> str:
        """Make sure the keyring lists this key as current; returns its name.

        A key file missing from the keyring (first use, or a crash during
        rotation) is added now and closes any other open key of the same
        algorithm. A key the keyring has retired is refused.
        """
        with self._lock():
            ring = self.keyring()
            record = ring.find(key_id)
            if record is not None:
                if record.valid_until is not None:
                    raise SigningError(
                        f"{algorithm} key {key_id[:16]} was retired at "
                        f"{_format_time(record.valid_until)}; refusing to sign with it"
                    )
                if record.algorithm != algorithm:
                    raise SigningError(f"keyring lists key {key_id[:16]} as {record.algorithm}")
                return record.name
            now = self._now()
            records = [
                replace(r, valid_until=now) if r.algorithm == algorithm and r.valid_until is None else r
                for r in ring.keys
            ]
            records.append(KeyRecord(key_id, algorithm, spki, now, None, self._key_name))
            try:
                ring.save(records)
            except OSError as exc:
                raise SigningError(
                    f"cannot write keyring {self._keyring_path}: {exc.strerror or exc}"
                ) from exc
            log.info("keyring %s: added %s key %s", self._keyring_path, algorithm, key_id[:16])
            return self._key_name

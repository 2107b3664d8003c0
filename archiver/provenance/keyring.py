"""Public keys kept with the archive: ids, validity windows, the keyring file.

An auditor verifies with the archive alone, and old signatures stay valid
after a rotation because every key keeps its window.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from archiver.errors import SigningError, VerificationError
from archiver.given import read_own
from archiver.provenance.files import atomic_write
from archiver.provenance.publickeys import SPKI_PREFIX, is_ed25519_spki

if TYPE_CHECKING:  # cryptography (OpenSSL) is imported where it is used: an audit whose signatures libsodium accepts never loads it
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ED25519 = "ed25519"
ECDSA_P384 = "ecdsa-p384"
ALGORITHMS = (ED25519, ECDSA_P384)
PASSPHRASE_ENV = "ARCHIVER_KEY_PASSPHRASE"
PASSPHRASE_FILE_ENV = "ARCHIVER_KEY_PASSPHRASE_FILE"

_KEY_FILES = {ED25519: "ed25519.pem", ECDSA_P384: "ecdsa-p384.pem"}
_LOCK_FILE = ".lock"
_KEYRING_VERSION = 1
_P384_BYTES = 48

_PrivateKey: TypeAlias = "Ed25519PrivateKey | ec.EllipticCurvePrivateKey"
_PublicKey: TypeAlias = "Ed25519PublicKey | ec.EllipticCurvePublicKey"


# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------


def key_id_for(spki_der: bytes) -> str:
    """Key id: hex SHA-256 of the SPKI DER public key (stable across formats)."""
    return hashlib.sha256(spki_der).hexdigest()


def _spki(key: _PrivateKey | _PublicKey) -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

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
    # Shared keyring only (provenance/enrolment.py): "root" or "worker", and the
    # root key's signature over this key's enrolment; empty in keyring.json.
    role: str = ""
    endorsement: Mapping[str, Any] | None = None

    def valid_at(self, at: datetime) -> bool:
        """True when a signature made at ``at`` may come from this key."""
        if at.tzinfo is None:
            raise VerificationError("signature time has no timezone")
        if at < self.valid_from:
            return False
        return self.valid_until is None or at < self.valid_until

    def load_public_key(self) -> _PublicKey:
        """The key as a cryptography object, checked against its algorithm."""
        from cryptography.exceptions import UnsupportedAlgorithm
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        try:
            key = _load_der(self.public_key)
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
        from cryptography.hazmat.primitives import serialization

        return (
            self.load_public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode("ascii")
        )

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "key_id": self.key_id,
            "algorithm": self.algorithm,
            "public_key": base64.b64encode(self.public_key).decode("ascii"),
            "valid_from": _format_time(self.valid_from),
            "valid_until": None if self.valid_until is None else _format_time(self.valid_until),
            "name": self.name,
        }
        if self.role:
            doc["role"] = self.role
        if self.endorsement is not None:
            doc["endorsement"] = dict(self.endorsement)
        return doc

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
                role=str(obj.get("role") or ""),
                endorsement=_endorsement(obj.get("endorsement")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise VerificationError(f"malformed keyring entry: {exc}") from exc
        if record.algorithm not in ALGORITHMS:
            raise VerificationError(f"keyring entry has unknown algorithm {record.algorithm!r}")
        if key_id_for(record.public_key) != record.key_id:
            raise VerificationError(f"keyring entry {record.key_id[:16]}: key id does not match key")
        if not (record.algorithm == ED25519 and is_ed25519_spki(record.public_key)):
            record.load_public_key()  # OpenSSL decides (the form above it accepts, whatever the 32 bytes)
        return record


@functools.lru_cache(maxsize=64)
def _load_der(der: bytes) -> Any:
    """Parse a public key once: an audit checks thousands of signatures by one key."""
    from cryptography.hazmat.primitives import serialization

    return serialization.load_der_public_key(der)


class Keyring:
    """The public keys that signed this archive, with validity windows.

    Needs no private key and no KeyStore: ``archiver verify`` builds one
    from the archive's keyring file alone.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._records: list[KeyRecord] | None = None
        self._by_id: dict[str, KeyRecord] = {}
        self._by_id_of: list[KeyRecord] | None = None  # the list _by_id was built from

    @classmethod
    def of(cls, records: Sequence[KeyRecord], path: Path = Path("<memory>")) -> Keyring:
        """A keyring of just these keys (pinned or trusted ones), not read from a file."""
        ring = cls(path)
        ring._records = list(records)
        return ring

    def load(self) -> Keyring:
        """(Re)read the file; a missing file is an empty keyring."""
        raw = read_own(self.path, "keyring", error=VerificationError)  # bounded: a FIFO or a gigabyte here is refused
        if raw is None:
            self._records = []
            return self
        self._records = parse_keyring(raw, str(self.path))
        return self

    @property
    def keys(self) -> tuple[KeyRecord, ...]:
        """All keys, in the order they were added."""
        if self._records is None:
            self.load()
        return tuple(self._records or ())

    def find(self, key_id: str) -> KeyRecord | None:
        """The key with ``key_id``, or None (the first, should an id repeat)."""
        if self._records is None:
            self.load()
        if self._by_id_of is not self._records:  # an audit looks a key up per signature
            self._by_id = {}
            for r in self._records or ():
                self._by_id.setdefault(r.key_id, r)
            self._by_id_of = self._records
        return self._by_id.get(key_id)

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
        if record.algorithm == ED25519 and ed25519_sodium(record.public_key, data, signature):
            return record
        verify_signature(record.load_public_key(), data, signature, key_id)  # OpenSSL decides, and says why
        return record

    def save(self, records: Sequence[KeyRecord]) -> None:
        """Replace the file atomically with ``records`` (KeyStore's job)."""
        data = keyring_bytes(records)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, data, 0o644)
        self._records = list(records)


def parse_keyring(raw: bytes | str, where: str) -> list[KeyRecord]:
    """The entries of a keyring document (file, index row or WACZ member), checked."""
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise VerificationError(f"keyring {where} is not valid JSON") from exc
    entries = doc.get("keys") if isinstance(doc, dict) else doc
    if not isinstance(entries, list):
        raise VerificationError(f"keyring {where} has no key list")
    records = [KeyRecord.from_json(e) for e in entries]
    if len({r.key_id for r in records}) != len(records):
        raise VerificationError(f"keyring {where} lists a key twice")
    return records


def keyring_bytes(records: Sequence[KeyRecord]) -> bytes:
    """The keyring document for ``records`` (the form every reader parses)."""
    doc = {"version": _KEYRING_VERSION, "keys": [r.to_json() for r in records]}
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode("utf-8")


def _endorsement(value: Any) -> Mapping[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError("endorsement is not an object")
    return dict(value)


def raw_to_der(signature: bytes) -> bytes:
    if len(signature) != 2 * _P384_BYTES:
        raise VerificationError(
            f"ECDSA P-384 signature has {len(signature)} bytes, want {2 * _P384_BYTES} (raw r||s)"
        )
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    r = int.from_bytes(signature[:_P384_BYTES], "big")
    s = int.from_bytes(signature[_P384_BYTES:], "big")
    return encode_dss_signature(r, s)


@functools.lru_cache(maxsize=1)
def sodium() -> Any:
    """libsodium as PyNaCl's cffi binding holds it, initialised: (ffi, lib),
    or None without PyNaCl. Taken from ``nacl._sodium`` rather than
    ``nacl.bindings``, which loads some forty binding modules (about 10 ms
    of every verify's start, in each of its processes) to reach the same
    function. verify's native reader calls crypto_sign_open through it too
    (archiver/audit/claims.py), so both paths check with the same code."""
    try:
        from nacl._sodium import ffi, lib  # type: ignore[import-not-found]
    except ImportError:  # pragma: no cover - pynacl is a dependency; OpenSSL alone is the fallback
        return None
    if lib.sodium_init() < 0:  # 0 now, 1 already: as nacl.bindings.sodium_init
        return None  # pragma: no cover - libsodium could not start (no entropy source)
    return ffi, lib


def ed25519_sodium(spki_der: bytes, data: bytes, signature: bytes) -> bool:
    """Does libsodium (PyNaCl) accept this Ed25519 signature? It checks one in
    about 60 % of OpenSSL's time on x86-64, which is most of an audit's cost
    per snapshot. libsodium is the stricter of the two (canonical encodings
    only, no small-order keys): a False here is no verdict -- the caller asks
    OpenSSL, so exactly the signatures OpenSSL accepts pass, either way."""
    return is_ed25519_spki(spki_der) and ed25519_sodium_raw(spki_der[len(SPKI_PREFIX):], data, signature)


def ed25519_sodium_raw(raw_key: bytes, data: bytes, signature: bytes) -> bool:
    """ed25519_sodium for a raw 32-byte public key (a signed note's): what
    nacl.bindings.crypto_sign_open does, and no more."""
    so = sodium()
    if so is None or len(signature) != 64 or len(raw_key) != 32:
        return False
    ffi, lib = so
    signed = signature + data
    message = ffi.new("unsigned char[]", len(signed))
    length = ffi.new("unsigned long long *")
    return bool(lib.crypto_sign_open(message, length, signed, len(signed), raw_key) == 0)


def verify_signature(key: _PublicKey, data: bytes, signature: bytes, label: str) -> None:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        if isinstance(key, Ed25519PublicKey):
            key.verify(signature, data)
        else:
            key.verify(raw_to_der(signature), data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as exc:
        raise VerificationError(f"bad signature by key {label[:16]}") from exc

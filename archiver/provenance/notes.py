"""C2SP signed notes and tlog checkpoints (Ed25519), parsed strictly.

Go witness tooling (golang.org/x/mod/sumdb/note, transparency-dev) can
parse and cosign these; this module never touches a private key: it calls
signer.sign(body).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import re
import struct
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from archiver.errors import LedgerError, VerificationError
from archiver.provenance.keyring import ed25519_sodium_raw
from archiver.provenance.merkle import HASH_SIZE
from archiver.provenance.publickeys import is_ed25519_spki

# --------------------------------------------------------------------------


class NoteSigner(Protocol):
    """What :func:`sign_note` needs from ``archiver.signing``'s Ed25519 signer."""

    @property
    def name(self) -> str: ...

    def sign(self, data: bytes) -> bytes: ...

    def public_key_spki(self) -> bytes: ...

# --------------------------------------------------------------------------
# C2SP signed notes and tlog checkpoints
# --------------------------------------------------------------------------

_ALG_ED25519 = 0x01
_SIG_PREFIX = "\u2014 "  # em dash, space
_MAX_SIGNATURES = 100
_SIZE_RE = re.compile(r"0|[1-9][0-9]{0,18}")  # no more digits than 2**63 - 1 has
MAX_TREE_SIZE = (1 << 63) - 1  # the index's log positions are signed 64-bit integers
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")  # every control character but newline


def _valid_key_name(name: str) -> bool:
    """C2SP key names: non-empty, no Unicode whitespace, no '+'."""
    return (
        bool(name)
        and "+" not in name
        and not any(ch.isspace() or unicodedata.category(ch) == "Cc" for ch in name)
    )


def _check_text(text: str, what: str) -> None:
    """C2SP note text: non-empty, ends in newline, no control chars but newline."""
    if not text or not text.endswith("\n"):
        raise VerificationError(f"{what} must be non-empty and end with a newline")
    if _CONTROL.search(text):
        raise VerificationError(f"{what} contains a control character")


def _b64decode(value: str, what: str) -> bytes:
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise VerificationError(f"{what} is not valid base64") from exc


def note_key_hash(name: str, alg_and_key: bytes) -> int:
    """C2SP key hash: first 4 bytes (big endian) of SHA-256(name || "\\n" ||
    alg byte || public key)."""
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + alg_and_key).digest()
    return int(struct.unpack(">I", digest[:4])[0])


def _ed25519_raw_from_spki(spki_der: bytes) -> bytes:
    if is_ed25519_spki(spki_der):  # the one DER form; OpenSSL takes any 32 bytes in it
        return spki_der[12:]
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        key = serialization.load_der_public_key(spki_der)
    except (ValueError, TypeError) as exc:
        raise VerificationError("public key is not valid SPKI DER") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise VerificationError("signed notes need an Ed25519 public key")
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@dataclass(frozen=True)
class NoteVerifier:
    """An Ed25519 signed-note verifier key (name, key hash, raw public key)."""

    name: str
    key_hash: int
    public_key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not _valid_key_name(self.name):
            raise VerificationError(f"invalid note key name {self.name!r}")
        if len(self.public_key) != 32:
            raise VerificationError("an Ed25519 public key has 32 bytes")
        if self.key_hash != note_key_hash(self.name, bytes([_ALG_ED25519]) + self.public_key):
            raise VerificationError(f"key hash does not match key {self.name!r}")

    @classmethod
    def from_public_key(cls, name: str, raw_public_key: bytes) -> NoteVerifier:
        """Build from a key name and a raw 32-byte Ed25519 public key."""
        alg_key = bytes([_ALG_ED25519]) + raw_public_key
        return cls(name, note_key_hash(name, alg_key), raw_public_key)

    @classmethod
    def from_spki(cls, name: str, spki_der: bytes) -> NoteVerifier:
        """Build from a key name and an SPKI DER Ed25519 public key (the keyring form)."""
        return cls.from_public_key(name, _ed25519_raw_from_spki(spki_der))

    @classmethod
    def from_vkey(cls, vkey: str) -> NoteVerifier:
        """Parse the golang/C2SP verifier key ``<name>+<hash hex>+<base64(0x01||key)>``."""
        name, sep1, rest = vkey.partition("+")
        hash_hex, sep2, key_b64 = rest.partition("+")
        if not (sep1 and sep2) or not re.fullmatch(r"[0-9a-f]{8}", hash_hex):
            raise VerificationError("malformed verifier key")
        if not _valid_key_name(name):
            raise VerificationError("malformed verifier key name")
        alg_key = _b64decode(key_b64, "verifier key")
        if len(alg_key) != 33 or alg_key[0] != _ALG_ED25519:
            raise VerificationError("verifier key is not an Ed25519 key")
        return cls(name, int(hash_hex, 16), alg_key[1:])

    def vkey(self) -> str:
        """The golang/C2SP verifier key string, for witnesses and auditors."""
        alg_key = bytes([_ALG_ED25519]) + self.public_key
        return f"{self.name}+{self.key_hash:08x}+{base64.b64encode(alg_key).decode('ascii')}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        """True when ``signature`` is this key's Ed25519 signature of ``message``
        (libsodium first; what it refuses, OpenSSL decides, as in keyring.verify)."""
        if ed25519_sodium_raw(self.public_key, message, signature):
            return True
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except InvalidSignature:
            return False
        return True


class Checkpoint(NamedTuple):
    """A parsed tlog checkpoint body (extension lines are not kept)."""

    origin: str
    size: int
    root: bytes


def make_checkpoint(origin: str, size: int, root: bytes) -> str:
    """C2SP tlog-checkpoint body: origin, decimal size, base64 root, each + "\\n"."""
    if not origin or any(ch.isspace() or ord(ch) < 0x20 for ch in origin) or "+" in origin:
        raise LedgerError(f"invalid checkpoint origin {origin!r}")
    if size < 0:
        raise LedgerError("tree size must not be negative")
    if len(root) != HASH_SIZE:
        raise LedgerError(f"root hash must have {HASH_SIZE} bytes")
    return f"{origin}\n{size}\n{base64.b64encode(root).decode('ascii')}\n"


def parse_checkpoint(body: str) -> Checkpoint:
    """Parse a checkpoint body; raises VerificationError when malformed."""
    _check_text(body, "checkpoint")
    lines = body[:-1].split("\n")
    if len(lines) < 3:
        raise VerificationError("checkpoint needs origin, size and root lines")
    origin, size_text, root_b64 = lines[0], lines[1], lines[2]
    if not origin:
        raise VerificationError("checkpoint origin is empty")
    if not _SIZE_RE.fullmatch(size_text) or int(size_text) > MAX_TREE_SIZE:
        raise VerificationError(f"checkpoint tree size {size_text[:40]!r} is not a decimal number up to {MAX_TREE_SIZE}")
    root = _b64decode(root_b64, "checkpoint root hash")
    if len(root) != HASH_SIZE:
        raise VerificationError(f"checkpoint root hash has {len(root)} bytes, want {HASH_SIZE}")
    if any(not line for line in lines[3:]):
        raise VerificationError("checkpoint has an empty extension line")
    return Checkpoint(origin, int(size_text), root)


@functools.lru_cache(maxsize=16)
def _signing_verifier(name: str, spki_der: bytes) -> NoteVerifier:
    """The signer's own verifier key (its key hash goes into every signature): one per key, not per note."""
    return NoteVerifier.from_spki(name, spki_der)


def sign_note(body: str, signer: NoteSigner) -> str:
    """Wrap ``body`` in a C2SP signed note signed by ``signer`` (Ed25519)."""
    try:
        _check_text(body, "note text")
    except VerificationError as exc:
        raise LedgerError(str(exc)) from exc
    if not _valid_key_name(signer.name):
        raise LedgerError(f"invalid note key name {signer.name!r}")
    try:
        verifier = _signing_verifier(signer.name, signer.public_key_spki())
    except VerificationError as exc:
        raise LedgerError(f"cannot sign a note with key {signer.name!r}: {exc}") from exc
    signature = signer.sign(body.encode("utf-8"))
    blob = struct.pack(">I", verifier.key_hash) + signature
    return f"{body}\n{_SIG_PREFIX}{signer.name} {base64.b64encode(blob).decode('ascii')}\n"


def open_note(note_text: str, verifier_keys: Iterable[NoteVerifier | str]) -> str:
    """Return the body of a signed note verified by at least one known key.

    Follows golang.org/x/mod/sumdb/note's Open: signatures by unknown keys
    are ignored (witness cosignatures), a bad signature by a known key is an
    error, and no valid known signature is an error.
    """
    known: dict[tuple[str, int], NoteVerifier] = {}
    for key in verifier_keys:
        v = NoteVerifier.from_vkey(key) if isinstance(key, str) else key
        known[(v.name, v.key_hash)] = v
    split = note_text.rfind("\n\n")
    if split < 0:
        raise VerificationError("malformed note: no blank line before the signatures")
    body, sigs = note_text[: split + 1], note_text[split + 2 :]
    _check_text(body, "note text")
    if not sigs or not sigs.endswith("\n"):
        raise VerificationError("malformed note: signature block must end with a newline")
    message = body.encode("utf-8")
    seen: set[tuple[str, int]] = set()
    verified = 0
    for count, line in enumerate(sigs[:-1].split("\n"), start=1):
        if count > _MAX_SIGNATURES:
            raise VerificationError("malformed note: too many signatures")
        if not line.startswith(_SIG_PREFIX):
            raise VerificationError("malformed note: signature line must start with an em dash")
        name, _, b64 = line[len(_SIG_PREFIX) :].partition(" ")
        if not _valid_key_name(name) or not b64:
            raise VerificationError("malformed note: bad signature line")
        blob = _b64decode(b64, "note signature")
        if len(blob) < 5:
            raise VerificationError("malformed note: signature too short")
        key_id = (name, int(struct.unpack(">I", blob[:4])[0]))
        verifier = known.get(key_id)
        if verifier is None or key_id in seen:
            continue
        seen.add(key_id)
        if not verifier.verify(message, blob[4:]):
            raise VerificationError(f"invalid signature by key {name}+{key_id[1]:08x}")
        verified += 1
    if verified == 0:
        raise VerificationError("note has no valid signature by a known key")
    return body


def open_checkpoint(
    note_text: str,
    verifier_keys: Iterable[NoteVerifier | str],
    origin: str | None = None,
) -> Checkpoint:
    """Verify a signed checkpoint note and parse it; checks the origin if given."""
    cp = parse_checkpoint(open_note(note_text, verifier_keys))
    if origin is not None and cp.origin != origin:
        raise VerificationError(f"checkpoint is for log {cp.origin!r}, not {origin!r}")
    return cp


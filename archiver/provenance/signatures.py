"""Signing and checking: Ed25519 manifests and notes, ECDSA P-384 WACZ packages.

Signers wrap a loaded private key and never expose it; the WACZ check
follows wacz-auth's anonymous mode as ReplayWeb.page verifies it.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
)
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
)

from archiver.errors import SigningError, VerificationError
from archiver.provenance.keyring import (
    _P384_BYTES,
    ECDSA_P384,
    ED25519,
    _b64decode,
    _spki,
    raw_to_der,
    sodium,
)


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
        key.verify(raw_to_der(signature), hash_string.encode("utf-8"), ec.ECDSA(hashes.SHA256()))
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
    _spki_der: bytes | None = field(default=None, repr=False, compare=False)  # the key's, when known
    # The same key as libsodium holds it (seed || public key: sodium_key), when
    # it signs exactly as OpenSSL does; None: OpenSSL signs.
    _sodium_key: bytes | None = field(default=None, repr=False, compare=False)

    def sign(self, data: bytes) -> bytes:
        """Ed25519 signature (64 bytes) of ``data``."""
        if self._sodium_key is not None:
            return _sodium_sign(self._sodium_key, data)
        return self._key.sign(data)

    def public_key_spki(self) -> bytes:
        """The public key, SPKI DER (as the key store read it: every checkpoint note asks)."""
        return self._spki_der if self._spki_der is not None else _spki(self._key)

    def public_key_raw(self) -> bytes:
        """The 32-byte raw Ed25519 public key (what signed notes use)."""
        return self._key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )


_SELF_CHECK = b"archiver: libsodium signs as OpenSSL does"


def sodium_key(key: Ed25519PrivateKey) -> bytes | None:
    """``key`` as libsodium's Ed25519 secret key (seed || public key), or None
    (no PyNaCl, or libsodium's signature of a test message is not OpenSSL's).

    Why: a capture signs three times (its intent, its manifest, a checkpoint),
    and libsodium signs in less than half of OpenSSL's time. Ed25519
    signatures are deterministic (RFC 8032), so the bytes are the same
    whichever library makes them -- checked here once per loaded key, and
    OpenSSL keeps signing if they are not. The seed held here is the key
    already in this process's memory (in OpenSSL's), never written or shown."""
    so = sodium()
    if so is None:
        return None
    ffi, lib = so
    seed = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                             serialization.NoEncryption())
    public = ffi.new("unsigned char[]", 32)
    secret = ffi.new("unsigned char[]", 64)
    if lib.crypto_sign_seed_keypair(public, secret, seed) != 0:
        return None  # pragma: no cover - libsodium refuses no 32-byte seed
    sk = bytes(ffi.buffer(secret, 64))
    try:
        same = _sodium_sign(sk, _SELF_CHECK) == key.sign(_SELF_CHECK)
    except SigningError:  # pragma: no cover - libsodium failed to sign
        same = False
    return sk if same else None


def _sodium_sign(sk: bytes, data: bytes) -> bytes:
    """libsodium's Ed25519 signature of ``data`` (crypto_sign: signature, then the message)."""
    so = sodium()
    assert so is not None  # a libsodium key exists only where sodium() answered
    ffi, lib = so
    signed = ffi.new("unsigned char[]", len(data) + 64)
    if lib.crypto_sign(signed, ffi.NULL, data, len(data), sk) != 0:
        raise SigningError("libsodium could not sign")  # pragma: no cover - it never fails on valid input
    return bytes(ffi.buffer(signed, 64))


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

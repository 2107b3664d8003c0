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
    ed25519_sodium_raw,
    raw_to_der,
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

    def sign(self, data: bytes) -> bytes:
        """Ed25519 signature (64 bytes) of ``data``."""
        return self._key.sign(data)

    def made(self, data: bytes, signature_b64: str | None) -> bool:
        """Whether this key made ``signature_b64`` (base64) over ``data``.

        Why: what a capture takes over from an earlier snapshot instead of
        fetching or reading it again goes into its own signature, so it must
        be what this key signed -- not what the index says it signed (the
        index and keyring are writable by someone who cannot read keys/)."""
        try:
            signature = base64.b64decode(signature_b64 or "", validate=True)
            if ed25519_sodium_raw(self.public_key_raw(), data, signature):
                return True  # libsodium accepts: so does OpenSSL (keyring.ed25519_sodium)
            self._key.public_key().verify(signature, data)
        except (ValueError, InvalidSignature):
            return False
        return True

    def public_key_spki(self) -> bytes:
        """The public key, SPKI DER (as the key store read it: every checkpoint note asks)."""
        return self._spki_der if self._spki_der is not None else _spki(self._key)

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

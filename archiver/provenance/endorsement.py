"""The archive's Ed25519 key vouches for a keyring (e.g. one bundled in a WACZ).

Anyone can sign a WACZ package with a fresh P-384 key and add that key to the
bundled keyring. An endorsement -- the keyring's SHA-256 signed by the
archive's Ed25519 identity key -- ties every key in it, the package key
included, to the archive: change the keyring and the endorsement fails;
re-endorse with another key and ``--public-key`` refuses it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from datetime import datetime
from typing import Any

from archiver.errors import VerificationError
from archiver.provenance.keyring import ED25519, Keyring, verify_signature
from archiver.provenance.signatures import Signer
from store.warc import warc_date

DOMAIN = b"\x00archiver-keyring-endorsement-v1\x00"


def endorse(keyring_bytes: bytes, signer: Signer, when: datetime) -> dict[str, Any]:
    digest = hashlib.sha256(keyring_bytes).hexdigest()
    signature = signer.sign(DOMAIN + bytes.fromhex(digest))
    return {"keyring_sha256": digest, "key_id": signer.key_id, "signed_at": warc_date(when),
            "signature": base64.b64encode(signature).decode("ascii")}


def check_endorsement(doc: Any, keyring_bytes: bytes, ring: Keyring, pinned_spki: bytes | None) -> None:
    """Raise VerificationError unless ``doc`` endorses exactly these keyring bytes
    with an Ed25519 key of the ring (the pinned one, when given)."""
    if not isinstance(doc, dict) or not all(isinstance(doc.get(k), str) for k in ("keyring_sha256", "key_id", "signature")):
        raise VerificationError("the keyring endorsement is malformed")
    digest = hashlib.sha256(keyring_bytes).hexdigest()
    if doc["keyring_sha256"] != digest:
        raise VerificationError("the keyring was changed after the archive's key endorsed it")
    record = ring.key(doc["key_id"])
    if record.algorithm != ED25519:
        raise VerificationError("the keyring is endorsed by a key that is not the archive's Ed25519 key")
    if pinned_spki is not None and record.public_key != pinned_spki:
        raise VerificationError("the keyring is not endorsed by the given public key")
    try:
        signature = base64.b64decode(doc["signature"], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise VerificationError("the keyring endorsement signature is not base64") from exc
    verify_signature(record.load_public_key(), DOMAIN + bytes.fromhex(digest), signature, doc["key_id"])

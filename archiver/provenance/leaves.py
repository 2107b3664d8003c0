"""What a snapshot's leaf in the Merkle log holds.

Before archiver 0.10 a leaf held the manifest's SHA-256 alone: the log
bound every manifest, but not its signature, so an auditor had to check
each snapshot's Ed25519 signature on its own (47 µs each, a quarter of
``verify`` on small pages). A manifest signed since says so in its log
entry (``"log": {..., "leaf": "manifest+signature"}``), and its leaf holds
the manifest's digest, its signature and the signing key's id::

    leaf data = SHA-256(manifest) (32 bytes) || Ed25519 signature (64 bytes) || key id (ASCII)

So a checkpoint signed by key K commits to every such signature by K in
the tree it covers: ``verify`` checks that one signature and the leaves
(SHA-256 only) instead of every manifest's signature by K
(audit/verify.py, "vouched"). It grants nothing K's holder did not have:
whoever holds K can sign any manifest anyway. The log signer appends a
leaf only for a signature it made or checked (provenance/notary.py,
audit/repair.py), so a leaf never vouches for a forgery.

The form is the signed manifest's own word, and leaves of older manifests
keep the older form: a reader that has only the index row (digest,
signature, key) and the stored leaf takes whichever form the leaf is
(:func:`leaf_forms`); a forged row matches neither.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from archiver.provenance.merkle import hash_leaf

LEAF_SIGNED = "manifest+signature"  # the manifest's log entry's "leaf": the leaf holds its signature too
SIGNATURE_BYTES = 64


def signs_its_leaf(manifest: dict[str, Any]) -> bool:
    """Does the manifest say its leaf holds its signature?"""
    entry = manifest.get("log")
    return isinstance(entry, dict) and entry.get("leaf") == LEAF_SIGNED


def signed_leaf_data(digest: str, signature: str, key_id: str) -> bytes | None:
    """The leaf data of a manifest that signs its leaf (see the module); None
    when the parts are malformed (a hex digest, a base64 Ed25519 signature,
    an ASCII key id), which matches no leaf."""
    try:
        raw_digest = bytes.fromhex(digest)
        raw_sig = base64.b64decode(signature, validate=True)
        key = key_id.encode("ascii")
    except (ValueError, binascii.Error, UnicodeEncodeError, AttributeError, TypeError):
        return None
    if len(raw_digest) != 32 or len(raw_sig) != SIGNATURE_BYTES or not key:
        return None
    return raw_digest + raw_sig + key


def leaf_data(manifest: dict[str, Any], digest: str, signature: str, key_id: str) -> bytes:
    """The data of the leaf a manifest is logged under, in the form it states."""
    if not signs_its_leaf(manifest):
        return bytes.fromhex(digest)
    data = signed_leaf_data(digest, signature, key_id)
    if data is None:
        raise ValueError("a manifest that signs its leaf needs a hex digest, an Ed25519 signature and a key id")
    return data


def leaf_forms(digest: str | None, signature: str | None, key_id: str | None) -> list[bytes]:
    """Every leaf data an index row (digest, signature, key id) may be logged
    under: the digest alone (older manifests), and digest, signature and key
    (manifests that sign their leaf). For readers that have the row but not
    the manifest; the stored leaf says which it is."""
    forms: list[bytes] = []
    if not digest:
        return forms
    try:
        forms.append(bytes.fromhex(digest))
    except ValueError:
        return forms
    if signature and key_id:
        signed = signed_leaf_data(digest, signature, key_id)
        if signed is not None:
            forms.append(signed)
    return forms


def row_leaf(digest: str | None, signature: str | None, key_id: str | None, stored: bytes | None) -> bytes | None:
    """The leaf data of an index row whose stored leaf hash is ``stored``:
    the form that hashes to it, else None (the row is not what was logged)."""
    for data in leaf_forms(digest, signature, key_id):
        if stored is not None and hash_leaf(data) == bytes(stored):
            return data
    return None


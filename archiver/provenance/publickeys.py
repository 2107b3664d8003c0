"""The public keys a reader anchors on, read from ``keys/`` without OpenSSL.

Why: ``show`` and every page of the web desk check a snapshot's signature
against the keys this machine's ``keys/`` vouches for (archiver/signedreads.py).
Loading them through the key store means importing ``cryptography`` and the
signing stack -- most of a one-shot ``show``'s start-up -- for 32 bytes of
public key. The files archiver writes have one fixed form each: an Ed25519
private key as unencrypted PKCS#8 (its seed after a fixed 16-byte prefix;
libsodium derives the public key, as it does when signing) and public keys
as SubjectPublicKeyInfo (the key after a fixed 12-byte prefix). Those forms
are read here; anything else (an encrypted key, another encoding) is None,
and the caller reads it the slow way, with OpenSSL.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path

from archiver.provenance.files import read_key_file

SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")  # SubjectPublicKeyInfo, Ed25519, then the 32-byte key
PKCS8_PREFIX = bytes.fromhex("302e020100300506032b657004220420")  # PKCS#8 v1, Ed25519, then the 32-byte seed


def pem_ders(data: bytes, label: str, *, strict: bool = True) -> list[bytes] | None:
    """The DER of every PEM block of ``data`` labelled ``label``; None when a
    block does not decode or is not closed. ``strict`` (a file archiver
    wrote, read here without OpenSSL): None as well when anything else is in
    the file. Not strict (a file an operator gives, pinning.py): text around
    the blocks -- another tool's explanations, blocks of other labels -- is
    passed over."""
    begin, end = f"-----BEGIN {label}-----".encode(), f"-----END {label}-----".encode()
    out: list[bytes] = []
    rest = data
    while (at := rest.find(begin)) >= 0:
        if strict and rest[:at].strip():
            return None
        body, closed, rest = rest[at + len(begin):].partition(end)
        if not closed:
            return None
        try:
            out.append(base64.b64decode(b"".join(body.split()), validate=True))
        except (binascii.Error, ValueError):
            return None
    if strict and rest.strip():
        return None
    return out


def is_ed25519_spki(der: bytes) -> bool:
    """Is this the DER SubjectPublicKeyInfo of an Ed25519 key (RFC 8410: the one
    algorithm identifier, no parameters, then the 32 key bytes)? OpenSSL loads
    every such key whatever its 32 bytes and refuses every other encoding (a
    NULL parameter, a long-form length, trailing bytes), so this is its verdict
    without it (tests/test_startup.py holds the two to it)."""
    return len(der) == len(SPKI_PREFIX) + 32 and der.startswith(SPKI_PREFIX)


def public_keys_in(path: Path) -> list[bytes] | None:
    """The Ed25519 public keys (SPKI DER) of a PEM file in ``keys/`` (a pinned
    root, the rotated keys); [] when it is absent; None when it is not in the
    form archiver writes (the caller parses it with OpenSSL)."""
    if not path.exists() and not path.is_symlink():
        return []
    ders = pem_ders(read_key_file(path)[0], "PUBLIC KEY")
    if ders is None:
        return None
    return ders if all(is_ed25519_spki(d) for d in ders) else None


def public_of_private(path: Path) -> bytes | None:
    """The Ed25519 public key (SPKI DER) of the private key file at ``path``
    when it is unencrypted PKCS#8 and libsodium is there; None otherwise
    (absent, encrypted, another form: the caller asks the key store)."""
    from archiver.provenance.keyring import sodium

    if not path.exists() and not path.is_symlink():
        return None
    ders = pem_ders(read_key_file(path)[0], "PRIVATE KEY")
    so = sodium()
    if ders is None or len(ders) != 1 or so is None:
        return None
    der = ders[0]
    if len(der) != len(PKCS8_PREFIX) + 32 or not der.startswith(PKCS8_PREFIX):
        return None
    ffi, lib = so
    public, secret = ffi.new("unsigned char[]", 32), ffi.new("unsigned char[]", 64)
    made = lib.crypto_sign_seed_keypair(public, secret, der[len(PKCS8_PREFIX):])
    lib.sodium_memzero(secret, 64)  # only the public half is wanted
    return SPKI_PREFIX + bytes(ffi.buffer(public, 32)) if made == 0 else None

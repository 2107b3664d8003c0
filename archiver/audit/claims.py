"""The native reading of the signed documents in the WARC files -- manifest
records and capture intents -- where ``archiver/audit/_claimsc.c`` is built.

One C call reads a manifest record in the layout archiver writes (its JSON
in a strict subset, its stated digest taken, its Ed25519 signature checked
with libsodium) and returns only what the audit needs of it: the fields of
its summary and its claims on records. The signature is checked by the very
function the Python path calls (libsodium's ``crypto_sign_open``, reached
through PyNaCl's binding), so what it accepts is what the reference accepts;
everything else -- a document outside the subset, a signature it does not
accept, a key outside its window -- is read again by the reference
(``scanner._Task._manifest``), which gives every refusal and its wording.
``ARCHIVER_PURE_PYTHON=1`` leaves it out, as it does the record scanner.
"""

from __future__ import annotations

import logging
import os
import types
from typing import Any, NamedTuple

from archiver.provenance.keyring import sodium

log = logging.getLogger(__name__)

_mod: types.ModuleType | None
try:
    from archiver.audit import _claimsc as _mod
except ImportError:  # pragma: no cover - the pure-Python path is the reference
    _mod = None
native: Any = None if os.environ.get("ARCHIVER_PURE_PYTHON") else _mod


class Signed(NamedTuple):
    """A manifest record as the native reader found it (see _claimsc.c)."""

    sid: str
    url: str
    payload: str | None
    prev: str | None
    relogged_from: str | None
    signed_at: str  # signed_at, else fetch_ended_at, as written
    digest: str  # the stated manifest_sha256, which its bytes hash to
    key_id: str
    signature: str
    sig_ok: bool  # libsodium accepts the signature by key_id
    claims: tuple[tuple[str, str, str, str, Any], ...]  # scanner.Claim, as signed_records lists them
    diff: str | None  # diff_sha256: the digest of the stored diff it signs (None: it signs none)
    # The leaf hash its log leaf must be when a checkpoint vouched for its signature
    # instead of libsodium (see manifest's ``vouched``); None: its signature was checked
    leaf: bytes | None = None


_sodium_ready = False


def prepare() -> None:
    """Hand the extension libsodium's crypto_sign_open from PyNaCl's binding
    (keyring.sodium: the function the Python path calls). Called before
    verify forks its workers, which inherit it, libsodium loaded; without
    it no signature is accepted natively and the reference checks each."""
    global _sodium_ready
    if _sodium_ready or native is None:
        return
    _sodium_ready = True
    so = sodium()
    if so is None:  # pragma: no cover - pynacl is a dependency
        log.debug("verify: libsodium not reachable natively; signatures are checked in Python")
        return
    ffi, lib = so
    native.use_sodium(int(ffi.cast("uintptr_t", ffi.addressof(lib, "crypto_sign_open"))))


def manifest(block: bytes, target: str, keys: dict[str, bytes],
             vouched: dict[str, int] | None = None) -> Signed | None:
    """A manifest record's block read natively; None: read it the general way.

    ``vouched``: {key id: size} of signed checkpoints the caller checked, each
    signed by that key. A manifest by one of them below its size whose leaf holds its signature
    (provenance/leaves.py) comes back with ``sig_ok`` and the ``leaf`` hash
    its stored leaf must be -- the caller's to compare: its signature was
    not checked here."""
    if native is None:
        return None
    if not _sodium_ready:
        prepare()
    found = native.manifest(block, target, keys, vouched)
    return Signed(*found) if found is not None else None


def intent(block: bytes) -> tuple[str, ...] | None:
    """The record ids an intent record's block names, read natively; None: read it the general way."""
    return native.intent(block) if native is not None else None

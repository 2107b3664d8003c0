"""Append-only Merkle log (RFC 6962/9162 hashing), signed checkpoints, proofs.

Why a Merkle log: a signed checkpoint (tree size + root) commits to every
manifest ever appended, so an auditor holding an earlier checkpoint can prove
that nothing was removed, reordered or rewritten since (consistency proof),
and that a given manifest is in the log (inclusion proof).

Hashing follows RFC 6962 section 2.1 (= RFC 9162 section 2.1.1):
``leaf = SHA-256(0x00 || data)``, ``node = SHA-256(0x01 || left || right)``,
the empty tree hashes to ``SHA-256("")``. The verification algorithms mirror
github.com/transparency-dev/merkle (proof/verify.go), whose test vectors
they pass.

Checkpoints use the C2SP tlog-checkpoint body wrapped in a C2SP signed note
with an Ed25519 signature, so Go witness tooling (golang.org/x/mod/sumdb/note,
transparency-dev) can parse and cosign them. This module never touches a
private key: it calls ``signer.sign(body)``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import re
import sqlite3
import struct
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from archiver.errors import LedgerError, VerificationError
from store import logdb

__all__ = [
    "HASH_SIZE",
    "EMPTY_ROOT",
    "hash_leaf",
    "hash_children",
    "root_from_leaf_hashes",
    "verify_inclusion",
    "verify_consistency",
    "root_from_inclusion_proof",
    "root_from_consistency_proof",
    "MerkleLog",
    "Checkpoint",
    "NoteSigner",
    "NoteVerifier",
    "note_key_hash",
    "make_checkpoint",
    "parse_checkpoint",
    "sign_note",
    "open_note",
    "open_checkpoint",
]

log = logging.getLogger(__name__)

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


# --------------------------------------------------------------------------
# Hashing
# --------------------------------------------------------------------------


def hash_leaf(data: bytes) -> bytes:
    """RFC 6962 leaf hash: the 0x00 prefix keeps leaves and nodes apart."""
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def hash_children(left: bytes, right: bytes) -> bytes:
    """RFC 6962 interior node hash."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def _fold_right(hashes: Sequence[bytes]) -> bytes:
    """Combine the perfect subtrees of a range, left to right, into its hash.

    RFC 6962 splits a range at the largest power of two below its size, so
    its hash is H(s1, H(s2, ... H(s_k-1, s_k))) over its greedy perfect
    decomposition.
    """
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = hash_children(h, acc)
    return acc


def root_from_leaf_hashes(leaf_hashes: Iterable[bytes]) -> bytes:
    """Root of the tree over ``leaf_hashes`` in one streaming pass.

    Keeps only O(log n) subtree hashes, so ``verify`` can recompute a root
    over millions of manifests without holding them.
    """
    stack: list[tuple[int, bytes]] = []  # (height, hash) of perfect subtrees
    for h in leaf_hashes:
        level, cur = 0, h
        while stack and stack[-1][0] == level:
            cur = hash_children(stack.pop()[1], cur)
            level += 1
        stack.append((level, cur))
    if not stack:
        return EMPTY_ROOT
    return _fold_right([h for _, h in stack])


# --------------------------------------------------------------------------
# Proof plans: which complete subtrees a root or proof needs
# --------------------------------------------------------------------------

_Node = tuple[int, int]  # (level, idx): leaves [idx << level, (idx + 1) << level)


def _largest_pow2_below(n: int) -> int:
    """Largest power of two strictly less than ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def _range_nodes(lo: int, hi: int) -> list[_Node]:
    """Perfect subtrees covering leaves [lo, hi), left to right.

    Every range RFC 6962 asks for starts at a multiple of its largest
    component, so each component is a stored node.
    """
    nodes: list[_Node] = []
    pos = lo
    n = hi - lo
    for level in range(n.bit_length() - 1, -1, -1):
        if n >> level & 1:
            if pos % (1 << level):
                raise LedgerError(f"unaligned subtree [{lo}, {hi})")
            nodes.append((level, pos >> level))
            pos += 1 << level
    return nodes


def _inclusion_plan(index: int, size: int) -> list[list[_Node]]:
    """RFC 9162 PATH(index, D[0:size]) as node lists, leaf side first."""
    out: list[list[_Node]] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _largest_pow2_below(hi - lo)
        if index < lo + k:
            out.append(_range_nodes(lo + k, hi))
            hi = lo + k
        else:
            out.append(_range_nodes(lo, lo + k))
            lo += k
    out.reverse()
    return out


def _consistency_plan(size1: int, size2: int) -> list[list[_Node]]:
    """RFC 9162 PROOF(size1, D[0:size2]) as node lists, leaf side first."""
    out: list[list[_Node]] = []
    lo, hi, m, complete = 0, size2, size1, True
    while m != hi - lo:
        k = _largest_pow2_below(hi - lo)
        if m <= k:
            out.append(_range_nodes(lo + k, hi))
            hi = lo + k
        else:
            out.append(_range_nodes(lo, lo + k))
            lo += k
            m -= k
            complete = False
    if not complete:
        out.append(_range_nodes(lo, hi))
    out.reverse()
    return out


# --------------------------------------------------------------------------
# Verification (mirrors transparency-dev/merkle proof/verify.go)
# --------------------------------------------------------------------------


def _decomp_incl_proof(index: int, size: int) -> tuple[int, int]:
    """Split an inclusion proof into the part below and above where the
    paths to ``index`` and ``size - 1`` meet."""
    inner = (index ^ (size - 1)).bit_length()
    border = bin(index >> inner).count("1")
    return inner, border


def _chain_inner(seed: bytes, proof: Sequence[bytes], index: int) -> bytes:
    for i, h in enumerate(proof):
        seed = hash_children(seed, h) if (index >> i) & 1 == 0 else hash_children(h, seed)
    return seed


def _chain_inner_right(seed: bytes, proof: Sequence[bytes], index: int) -> bytes:
    for i, h in enumerate(proof):
        if (index >> i) & 1 == 1:
            seed = hash_children(h, seed)
    return seed


def _chain_border_right(seed: bytes, proof: Sequence[bytes]) -> bytes:
    for h in proof:
        seed = hash_children(h, seed)
    return seed


def _check_hashes(proof: Sequence[bytes]) -> None:
    for i, h in enumerate(proof):
        if not isinstance(h, (bytes, bytearray)) or len(h) != HASH_SIZE:
            raise VerificationError(f"proof element {i} is not a {HASH_SIZE}-byte hash")


def root_from_inclusion_proof(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes]
) -> bytes:
    """The root implied by an inclusion proof; raises VerificationError when
    the proof cannot be one for (index, size)."""
    if not 0 <= index < size:
        raise VerificationError(f"leaf index {index} is outside a tree of size {size}")
    if len(leaf_hash) != HASH_SIZE:
        raise VerificationError(f"leaf hash has {len(leaf_hash)} bytes, want {HASH_SIZE}")
    inner, border = _decomp_incl_proof(index, size)
    if len(proof) != inner + border:
        raise VerificationError(f"inclusion proof has {len(proof)} hashes, want {inner + border}")
    _check_hashes(proof)
    res = _chain_inner(leaf_hash, proof[:inner], index)
    return _chain_border_right(res, proof[inner:])


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree (size, root).

    Raises VerificationError on any failure; never returns False.
    """
    calculated = root_from_inclusion_proof(leaf_hash, index, size, proof)
    if calculated != root:
        raise VerificationError(
            f"inclusion proof for leaf {index} does not lead to the root of tree size {size}"
        )


def root_from_consistency_proof(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes
) -> bytes:
    """The size2 root implied by a consistency proof from (size1, root1).

    Checks root1 on the way. A proof from the empty tree is meaningless and
    refused (as in transparency-dev/merkle); callers treat size1 == 0 as
    trivially consistent themselves.
    """
    if size1 < 0 or size2 < size1:
        raise VerificationError(f"tree size {size2} is smaller than earlier size {size1}")
    if size1 == size2:
        if proof:
            raise VerificationError("sizes are equal but the consistency proof is not empty")
        if size1 == 0 and root1 != EMPTY_ROOT:
            raise VerificationError("the root of the empty tree must be SHA-256 of nothing")
        return root1
    if size1 == 0:
        raise VerificationError("a consistency proof from the empty tree is meaningless")
    if not proof:
        raise VerificationError("consistency proof is empty")

    inner, border = _decomp_incl_proof(size1 - 1, size2)
    shift = (size1 & -size1).bit_length() - 1  # trailing zeros of size1
    inner -= shift  # shift < inner because size1 < size2

    # The proof starts with the root of the size1 prefix's last perfect
    # subtree, unless size1 is itself a power of two (then it is root1).
    if size1 == 1 << shift:
        seed, start = root1, 0
    else:
        seed, start = proof[0], 1
    if len(proof) != start + inner + border:
        raise VerificationError(
            f"consistency proof has {len(proof)} hashes, want {start + inner + border}"
        )
    _check_hashes(proof)
    rest = proof[start:]
    mask = (size1 - 1) >> shift
    hash1 = _chain_inner_right(seed, rest[:inner], mask)
    hash1 = _chain_border_right(hash1, rest[inner:])
    if hash1 != root1:
        raise VerificationError(
            f"consistency proof does not lead to the root of the earlier tree (size {size1})"
        )
    hash2 = _chain_inner(seed, rest[:inner], mask)
    return _chain_border_right(hash2, rest[inner:])


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Check that tree (size2, root2) extends tree (size1, root1).

    Raises VerificationError on any failure; never returns False.
    """
    calculated = root_from_consistency_proof(size1, size2, proof, root1)
    if calculated != root2:
        raise VerificationError(
            f"consistency proof does not lead to the root of the later tree (size {size2})"
        )


# --------------------------------------------------------------------------
# The persistent log
# --------------------------------------------------------------------------


class NoteSigner(Protocol):
    """What :func:`sign_note` needs from ``archiver.signing``'s Ed25519 signer."""

    @property
    def name(self) -> str: ...

    def sign(self, data: bytes) -> bytes: ...

    def public_key_spki(self) -> bytes: ...


class MerkleLog:
    """The Merkle log stored in the index database.

    Stores every leaf hash and every complete subtree hash, so appending
    writes at most log2(n)+1 rows and roots/proofs for any size up to the
    current one read O(log n) rows. Never commits: ``append`` runs inside
    the caller's transaction so the leaf lands with the snapshot rows.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def size(self) -> int:
        """Number of leaves."""
        return logdb.leaf_count(self._conn)

    def append(self, leaf_data: bytes, snapshot_id: str) -> int:
        """Append ``leaf_data`` (e.g. a manifest digest); returns its index.

        Must run inside the caller's transaction (BEGIN IMMEDIATE): a leaf
        without its subtree rows would corrupt every later root.
        """
        if not self._conn.in_transaction:
            raise LedgerError("MerkleLog.append must run inside a transaction")
        index = self.size()
        cur = hash_leaf(leaf_data)
        logdb.insert_leaf(self._conn, index, cur, snapshot_id)
        level, idx = 0, index
        while idx & 1:  # a right child completes its parent
            left = self._node(level, idx - 1)
            cur = hash_children(left, cur)
            level, idx = level + 1, idx >> 1
            logdb.insert_node(self._conn, level, idx, cur)
        log.debug("log leaf %d appended for snapshot %s", index, snapshot_id)
        return index

    def leaf_hash(self, index: int) -> bytes:
        """The stored hash of leaf ``index``."""
        h = logdb.leaf_hash(self._conn, index)
        if h is None:
            raise LedgerError(f"log has no leaf {index} (size {self.size()})")
        return h

    def index_of(self, snapshot_id: str) -> int | None:
        """The leaf index recorded for ``snapshot_id``, if any."""
        return logdb.leaf_index_of(self._conn, snapshot_id)

    def root(self, size: int | None = None) -> bytes:
        """Root hash of the tree of the first ``size`` leaves (default: all)."""
        size = self._check_size(size)
        if size == 0:
            return EMPTY_ROOT
        return self._hash_plans([_range_nodes(0, size)])[0]

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """Hashes proving leaf ``index`` is in the tree of ``size`` leaves."""
        size = self._check_size(size)
        if not 0 <= index < size:
            raise LedgerError(f"leaf {index} is not in a tree of size {size}")
        return self._hash_plans(_inclusion_plan(index, size))

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        """Hashes proving the tree of ``size2`` leaves extends that of ``size1``.

        Empty when the sizes are equal. ``size1`` must be > 0: nothing needs
        proving about the empty tree (and verifiers refuse such proofs).
        """
        size2 = self._check_size(size2)
        if not 0 < size1 <= size2:
            raise LedgerError(f"no consistency proof from size {size1} to size {size2}")
        if size1 == size2:
            return []
        return self._hash_plans(_consistency_plan(size1, size2))

    # -- checkpoints ------------------------------------------------------

    def checkpoint(self, origin: str, signer: NoteSigner, created_at: datetime) -> str:
        """Sign and store a checkpoint for the current tree; returns the note.

        One per tree size: asking again for an unchanged size returns the
        stored note rather than signing a second one.
        """
        size = self.size()
        existing = logdb.checkpoint_at(self._conn, size)
        if existing is not None:
            return existing.note
        root = self.root(size)
        note = sign_note(make_checkpoint(origin, size, root), signer)
        logdb.insert_checkpoint(self._conn, size, root, note, created_at.isoformat())
        log.info("checkpoint signed: %s size %d", origin, size)
        return note

    def latest_checkpoint(self) -> logdb.CheckpointRow | None:
        """The stored checkpoint for the largest tree size."""
        return logdb.latest_checkpoint(self._conn)

    # -- internals --------------------------------------------------------

    def _check_size(self, size: int | None) -> int:
        current = self.size()
        if size is None:
            return current
        if not 0 <= size <= current:
            raise LedgerError(f"tree size {size} is outside the log (size {current})")
        return size

    def _node(self, level: int, idx: int) -> bytes:
        h = (
            logdb.leaf_hash(self._conn, idx)
            if level == 0
            else logdb.node_hash(self._conn, level, idx)
        )
        if h is None:
            raise LedgerError(f"log node ({level}, {idx}) is missing")
        return h

    def _hash_plans(self, plans: Sequence[Sequence[_Node]]) -> list[bytes]:
        keys = {node for plan in plans for node in plan}
        found = logdb.node_hashes(self._conn, keys)
        missing = keys - found.keys()
        if missing:
            raise LedgerError(f"log nodes missing: {sorted(missing)[:5]}")
        return [_fold_right([found[node] for node in plan]) for plan in plans]


# --------------------------------------------------------------------------
# C2SP signed notes and tlog checkpoints
# --------------------------------------------------------------------------

_ALG_ED25519 = 0x01
_SIG_PREFIX = "\u2014 "  # em dash, space
_MAX_SIGNATURES = 100
_SIZE_RE = re.compile(r"0|[1-9][0-9]*")


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
    for ch in text:
        if ch != "\n" and (ord(ch) < 0x20 or ord(ch) == 0x7F):
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
        """True when ``signature`` is this key's Ed25519 signature of ``message``."""
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
    if not _SIZE_RE.fullmatch(size_text):
        raise VerificationError(f"checkpoint tree size {size_text!r} is not a decimal number")
    root = _b64decode(root_b64, "checkpoint root hash")
    if len(root) != HASH_SIZE:
        raise VerificationError(f"checkpoint root hash has {len(root)} bytes, want {HASH_SIZE}")
    if any(not line for line in lines[3:]):
        raise VerificationError("checkpoint has an empty extension line")
    return Checkpoint(origin, int(size_text), root)


def sign_note(body: str, signer: NoteSigner) -> str:
    """Wrap ``body`` in a C2SP signed note signed by ``signer`` (Ed25519)."""
    try:
        _check_text(body, "note text")
    except VerificationError as exc:
        raise LedgerError(str(exc)) from exc
    if not _valid_key_name(signer.name):
        raise LedgerError(f"invalid note key name {signer.name!r}")
    try:
        verifier = NoteVerifier.from_spki(signer.name, signer.public_key_spki())
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


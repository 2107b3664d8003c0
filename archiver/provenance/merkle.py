"""RFC 6962/9162 Merkle tree hashing and proofs: pure maths, no storage.

leaf = SHA-256(0x00 || data), node = SHA-256(0x01 || left || right),
the empty tree hashes to SHA-256(""). The verification algorithms mirror
transparency-dev/merkle (proof/verify.go), whose test vectors they pass.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from archiver.errors import LedgerError, VerificationError

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


class LeafFolder:
    """The root of a tree of leaf hashes pushed one at a time, keeping only
    O(log n) subtree hashes: ``verify`` folds millions of leaves without
    holding them, and may stop after any leaf to read the root so far."""

    def __init__(self) -> None:
        self.count = 0
        self._stack: list[tuple[int, bytes]] = []  # (height, hash) of perfect subtrees

    def push(self, leaf_hash: bytes) -> None:
        level, cur = 0, leaf_hash
        stack = self._stack
        while stack and stack[-1][0] == level:
            cur = hash_children(stack.pop()[1], cur)
            level += 1
        stack.append((level, cur))
        self.count += 1

    def root(self) -> bytes:
        """The root of the leaves pushed so far."""
        return _fold_right([h for _, h in self._stack]) if self._stack else EMPTY_ROOT


def root_from_leaf_hashes(leaf_hashes: Iterable[bytes]) -> bytes:
    """Root of the tree over ``leaf_hashes`` in one streaming pass."""
    folder = LeafFolder()
    for h in leaf_hashes:
        folder.push(h)
    return folder.root()


def roots_at_sizes(leaf_hashes: Iterable[bytes], sizes: Iterable[int]) -> dict[int, bytes]:
    """The root of the tree of the first ``n`` leaves, for each ``n`` in
    ``sizes``, in one streaming pass: O(leaves + sizes * log leaves).

    Lets ``verify`` check every kept checkpoint against the leaves (the log
    is append-only exactly when each of their roots is a prefix's root).
    Sizes beyond the leaves are absent from the result.
    """
    wanted = sorted(set(sizes))
    out: dict[int, bytes] = {}
    folder = LeafFolder()
    pos = 0

    def emit() -> None:
        nonlocal pos
        while pos < len(wanted) and wanted[pos] == folder.count:
            out[folder.count] = folder.root()
            pos += 1

    emit()
    for h in leaf_hashes:
        if pos == len(wanted):
            break
        folder.push(h)
        emit()
    return out


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

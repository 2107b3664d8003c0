"""Merkle log, proofs and C2SP checkpoints.

The proof verifiers run every transparency-dev/merkle vector in
tests/data/merkle (Apache-2.0, see its LICENSE); MerkleLog is cross-checked
against a naive recursive RFC 6962 reference.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from archiver.errors import ArchiverError, LedgerError, VerificationError
from archiver.provenance import log as merkle_log
from archiver.provenance import merkle, notes
from store import logdb

DATA = Path(__file__).parent / "data" / "merkle"


# ---------------------------------------------------------------- helpers


def _b64(value: str | None) -> bytes:
    return base64.b64decode(value or "")


def _vectors(kind: str) -> list:
    files = sorted((DATA / kind).rglob("*.json"))
    assert files, f"no {kind} vectors found under {DATA}"
    return [pytest.param(f, id=str(f.relative_to(DATA / kind))) for f in files]


def ref_mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 MTH, straight from the definition (leaves are raw data)."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1 << ((n - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + ref_mth(leaves[:k]) + ref_mth(leaves[k:])).digest()


def ref_path(m: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 9162 PATH(m, D[n])."""
    n = len(leaves)
    if n <= 1:
        return []
    k = 1 << ((n - 1).bit_length() - 1)
    if m < k:
        return ref_path(m, leaves[:k]) + [ref_mth(leaves[k:])]
    return ref_path(m - k, leaves[k:]) + [ref_mth(leaves[:k])]


def ref_subproof(m: int, leaves: list[bytes], complete: bool) -> list[bytes]:
    """RFC 9162 SUBPROOF(m, D[n], b)."""
    n = len(leaves)
    if m == n:
        return [] if complete else [ref_mth(leaves)]
    k = 1 << ((n - 1).bit_length() - 1)
    if m <= k:
        return ref_subproof(m, leaves[:k], complete) + [ref_mth(leaves[k:])]
    return ref_subproof(m - k, leaves[k:], False) + [ref_mth(leaves[:k])]


def leaf_data(i: int) -> bytes:
    return f"leaf {i}".encode()


@pytest.fixture
def conn() -> Iterator[sqlite3.Connection]:
    c = sqlite3.connect(":memory:", isolation_level=None)
    c.executescript(logdb.LOG_SCHEMA)
    yield c
    c.close()


def build_log(conn: sqlite3.Connection, n: int) -> merkle_log.MerkleLog:
    mlog = merkle_log.MerkleLog(conn)
    conn.execute("BEGIN IMMEDIATE")
    for i in range(n):
        assert mlog.append(leaf_data(i), f"snap-{i}") == i
    conn.execute("COMMIT")
    return mlog


# ------------------------------------------------------ transparency-dev vectors


@pytest.mark.parametrize("path", _vectors("inclusion"))
def test_inclusion_vector(path: Path) -> None:
    v = json.loads(path.read_text())
    proof = [_b64(p) for p in v["proof"] or []]
    args = (_b64(v["leafHash"]), v["leafIdx"], v["treeSize"], proof, _b64(v["root"]))
    if v["wantErr"]:
        with pytest.raises(VerificationError):
            merkle.verify_inclusion(*args)
    else:
        merkle.verify_inclusion(*args)  # returns nothing; raises on failure


@pytest.mark.parametrize("path", _vectors("consistency"))
def test_consistency_vector(path: Path) -> None:
    v = json.loads(path.read_text())
    proof = [_b64(p) for p in v["proof"] or []]
    args = (v["size1"], v["size2"], proof, _b64(v["root1"]), _b64(v["root2"]))
    if v["wantErr"]:
        with pytest.raises(VerificationError):
            merkle.verify_consistency(*args)
    else:
        merkle.verify_consistency(*args)  # returns nothing; raises on failure


def test_vector_corpus_is_complete() -> None:
    """Guard against a partial copy: the copied set has 98 + 98 cases."""
    assert len(list((DATA / "inclusion").rglob("*.json"))) == 98
    assert len(list((DATA / "consistency").rglob("*.json"))) == 98
    assert "Apache License" in (DATA / "LICENSE").read_text()


# ------------------------------------------------------ RFC 6962 constants

# The 8-leaf example tree used by RFC 6962 implementations' test suites
# (Certificate Transparency / transparency-dev/merkle): leaf data and the
# root after each append.
RFC_LEAVES = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    bytes(range(0x60, 0x70)),
]
RFC_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def test_empty_tree_hash() -> None:
    want = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert merkle.EMPTY_ROOT.hex() == want
    assert merkle.root_from_leaf_hashes([]).hex() == want


def test_leaf_and_node_prefixes() -> None:
    assert merkle.hash_leaf(b"") == hashlib.sha256(b"\x00").digest()
    assert merkle.hash_children(b"a" * 32, b"b" * 32) == hashlib.sha256(
        b"\x01" + b"a" * 32 + b"b" * 32
    ).digest()


def test_rfc6962_example_roots(conn: sqlite3.Connection) -> None:
    mlog = merkle_log.MerkleLog(conn)
    assert mlog.root().hex() == merkle.EMPTY_ROOT.hex()
    conn.execute("BEGIN IMMEDIATE")
    for i, data in enumerate(RFC_LEAVES):
        mlog.append(data, f"s{i}")
        assert mlog.root().hex() == RFC_ROOTS[i], f"size {i + 1}"
    conn.execute("COMMIT")
    for size in range(1, 9):
        assert mlog.root(size).hex() == RFC_ROOTS[size - 1]
        assert ref_mth(RFC_LEAVES[:size]).hex() == RFC_ROOTS[size - 1]


def test_rfc6962_example_matches_vector_happy_path(conn: sqlite3.Connection) -> None:
    """The vectors' happy paths are proofs in this same 8-leaf tree."""
    mlog = merkle_log.MerkleLog(conn)
    conn.execute("BEGIN IMMEDIATE")
    for i, data in enumerate(RFC_LEAVES):
        mlog.append(data, f"s{i}")
    conn.execute("COMMIT")
    v = json.loads((DATA / "inclusion" / "1" / "happy-path.json").read_text())
    assert mlog.inclusion_proof(v["leafIdx"], v["treeSize"]) == [_b64(p) for p in v["proof"]]
    c = json.loads((DATA / "consistency" / "1" / "happy-path.json").read_text())
    assert mlog.consistency_proof(c["size1"], c["size2"]) == [_b64(p) for p in c["proof"]]


# ------------------------------------------------------ MerkleLog cross-checks


def test_roots_match_reference_for_sizes_0_to_70(conn: sqlite3.Connection) -> None:
    mlog = merkle_log.MerkleLog(conn)
    leaves = [leaf_data(i) for i in range(71)]
    assert mlog.root() == ref_mth([])
    for i, data in enumerate(leaves):
        conn.execute("BEGIN IMMEDIATE")  # one transaction per append, as in the pipeline
        mlog.append(data, f"s{i}")
        conn.execute("COMMIT")
        assert mlog.size() == i + 1
        assert mlog.root() == ref_mth(leaves[: i + 1]), f"size {i + 1}"
    # Historic roots come from the same stored nodes.
    for size in range(72):
        assert mlog.root(size) == ref_mth(leaves[:size]), f"historic size {size}"
    streamed = merkle.root_from_leaf_hashes(merkle.hash_leaf(d) for d in leaves)
    assert streamed == ref_mth(leaves)


N_PROOFS = 40


@pytest.fixture(scope="module")
def log40() -> tuple[merkle_log.MerkleLog, list[bytes]]:
    c = sqlite3.connect(":memory:", isolation_level=None)
    c.executescript(logdb.LOG_SCHEMA)
    mlog = build_log(c, N_PROOFS)
    return mlog, [leaf_data(i) for i in range(N_PROOFS)]


def test_every_inclusion_proof_verifies(log40) -> None:
    mlog, leaves = log40
    for size in range(1, N_PROOFS + 1):
        root = mlog.root(size)
        for index in range(size):
            proof = mlog.inclusion_proof(index, size)
            assert proof == ref_path(index, leaves[:size]), (index, size)
            merkle.verify_inclusion(mlog.leaf_hash(index), index, size, proof, root)


def test_every_consistency_proof_verifies(log40) -> None:
    mlog, leaves = log40
    for size2 in range(1, N_PROOFS + 1):
        root2 = mlog.root(size2)
        for size1 in range(1, size2 + 1):
            proof = mlog.consistency_proof(size1, size2)
            want = [] if size1 == size2 else ref_subproof(size1, leaves[:size2], True)
            assert proof == want, (size1, size2)
            merkle.verify_consistency(size1, size2, proof, mlog.root(size1), root2)


def _flip(h: bytes, bit: int = 0) -> bytes:
    return bytes([h[0] ^ (1 << bit)]) + h[1:]


def test_tampered_inclusion_proofs_raise(log40) -> None:
    mlog, _ = log40
    for size in (2, 7, 8, 13, 32, 40):
        root = mlog.root(size)
        for index in range(size):
            proof = mlog.inclusion_proof(index, size)
            leaf = mlog.leaf_hash(index)
            for j in range(len(proof)):
                bad = list(proof)
                bad[j] = _flip(bad[j])
                with pytest.raises(VerificationError):
                    merkle.verify_inclusion(leaf, index, size, bad, root)
            with pytest.raises(VerificationError):
                merkle.verify_inclusion(_flip(leaf), index, size, proof, root)
            with pytest.raises(VerificationError):
                merkle.verify_inclusion(leaf, index, size, proof, _flip(root))
            with pytest.raises(VerificationError):
                merkle.verify_inclusion(leaf, index, size, proof + [root], root)
            other = (index + 1) % size
            if mlog.leaf_hash(other) != leaf:
                with pytest.raises(VerificationError):
                    merkle.verify_inclusion(mlog.leaf_hash(other), index, size, proof, root)


def test_tampered_consistency_proofs_raise(log40) -> None:
    mlog, _ = log40
    for size2 in (3, 8, 13, 33, 40):
        for size1 in range(1, size2):
            proof = mlog.consistency_proof(size1, size2)
            r1, r2 = mlog.root(size1), mlog.root(size2)
            for j in range(len(proof)):
                bad = list(proof)
                bad[j] = _flip(bad[j], 3)
                with pytest.raises(VerificationError):
                    merkle.verify_consistency(size1, size2, bad, r1, r2)
            with pytest.raises(VerificationError):
                merkle.verify_consistency(size1, size2, proof, _flip(r1), r2)
            with pytest.raises(VerificationError):
                merkle.verify_consistency(size1, size2, proof, r1, _flip(r2))
            with pytest.raises(VerificationError):
                merkle.verify_consistency(size1, size2, proof[:-1], r1, r2)
            with pytest.raises(VerificationError):
                merkle.verify_consistency(size1, size2, proof, r2, r1)


def test_rewritten_history_is_not_consistent(conn: sqlite3.Connection) -> None:
    """A log whose old leaf was replaced cannot prove it extends the old root."""
    honest = build_log(conn, 10)
    old_root = honest.root(6)
    c2 = sqlite3.connect(":memory:", isolation_level=None)
    c2.executescript(logdb.LOG_SCHEMA)
    forked = merkle_log.MerkleLog(c2)
    c2.execute("BEGIN IMMEDIATE")
    for i in range(10):
        forked.append(b"rewritten" if i == 3 else leaf_data(i), f"s{i}")
    c2.execute("COMMIT")
    with pytest.raises(VerificationError):
        merkle.verify_consistency(6, 10, forked.consistency_proof(6, 10), old_root, forked.root())
    c2.close()


def test_verification_errors_are_archiver_errors() -> None:
    with pytest.raises(ArchiverError):
        merkle.verify_inclusion(b"\x00" * 32, 0, 0, [], merkle.EMPTY_ROOT)


def test_empty_tree_consistency_rules() -> None:
    merkle.verify_consistency(0, 0, [], merkle.EMPTY_ROOT, merkle.EMPTY_ROOT)
    with pytest.raises(VerificationError):
        merkle.verify_consistency(0, 0, [], b"x" * 32, b"x" * 32)
    with pytest.raises(VerificationError):
        merkle.verify_consistency(0, 5, [], merkle.EMPTY_ROOT, b"x" * 32)


# ------------------------------------------------------ persistence and cost


def test_append_outside_a_transaction_is_refused(conn: sqlite3.Connection) -> None:
    with pytest.raises(LedgerError, match="transaction"):
        merkle_log.MerkleLog(conn).append(b"x", "s0")
    assert merkle_log.MerkleLog(conn).size() == 0


def test_log_range_errors(conn: sqlite3.Connection) -> None:
    mlog = build_log(conn, 5)
    with pytest.raises(LedgerError):
        mlog.root(6)
    with pytest.raises(LedgerError):
        mlog.inclusion_proof(5, 5)
    with pytest.raises(LedgerError):
        mlog.consistency_proof(0, 5)
    with pytest.raises(LedgerError):
        mlog.consistency_proof(3, 6)
    with pytest.raises(LedgerError):
        mlog.leaf_hash(9)
    assert mlog.consistency_proof(5, 5) == []
    assert mlog.index_of("snap-3") == 3
    assert mlog.index_of("nope") is None


def test_append_does_not_commit(tmp_path: Path) -> None:
    db = tmp_path / "index.sqlite"
    c = sqlite3.connect(db, isolation_level=None)
    c.executescript(logdb.LOG_SCHEMA)
    mlog = merkle_log.MerkleLog(c)
    c.execute("BEGIN IMMEDIATE")
    for i in range(4):
        mlog.append(leaf_data(i), f"s{i}")
    assert c.in_transaction
    c.execute("ROLLBACK")
    assert mlog.size() == 0
    assert c.execute("SELECT COUNT(*) FROM log_nodes").fetchone()[0] == 0
    c.execute("BEGIN IMMEDIATE")
    mlog.append(b"a", "s0")
    c.execute("COMMIT")
    c.close()
    c2 = sqlite3.connect(db)
    assert merkle_log.MerkleLog(c2).root() == ref_mth([b"a"])
    c2.close()


def test_stored_nodes_are_complete_subtrees_only(conn: sqlite3.Connection) -> None:
    build_log(conn, 11)
    rows = conn.execute("SELECT level, idx FROM log_nodes ORDER BY level, idx").fetchall()
    # 11 leaves: 5 nodes at level 1, 2 at level 2, 1 at level 3.
    assert rows == [(1, 0), (1, 1), (1, 2), (1, 3), (1, 4), (2, 0), (2, 1), (3, 0)]


class _CountingConn:
    """Wraps a connection and counts statements and fetched rows."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.statements = 0

    def execute(self, sql: str, params=()):  # noqa: ANN001 - mirrors sqlite3
        self.statements += 1
        return self.conn.execute(sql, params)

    @property
    def in_transaction(self) -> bool:
        return self.conn.in_transaction


def test_db_work_is_logarithmic() -> None:
    c = sqlite3.connect(":memory:", isolation_level=None)
    c.executescript(logdb.LOG_SCHEMA)
    n = 5000
    counting = _CountingConn(c)
    mlog = merkle_log.MerkleLog(counting)  # type: ignore[arg-type]
    worst_append = 0
    c.execute("BEGIN IMMEDIATE")
    for i in range(n):
        before = counting.statements
        mlog.append(leaf_data(i), f"s{i}")
        worst_append = max(worst_append, counting.statements - before)
    c.execute("COMMIT")
    assert worst_append <= 2 * 13 + 3  # ~2 per level of a 5000-leaf tree
    for op in (
        lambda: mlog.root(4999),
        lambda: mlog.inclusion_proof(1234, 4999),
        lambda: mlog.consistency_proof(1234, 4999),
    ):
        before = counting.statements
        op()
        assert counting.statements - before <= 16
    assert mlog.root() == ref_mth([leaf_data(i) for i in range(n)])
    c.close()


# ------------------------------------------------------ checkpoints and notes


class _TestSigner:
    """An in-memory Ed25519 signer with the NoteSigner shape."""

    def __init__(self, name: str, key: Ed25519PrivateKey | None = None) -> None:
        self.name = name
        self._key = key or Ed25519PrivateKey.generate()

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)

    def public_key_spki(self) -> bytes:
        return self._key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def verifier(self) -> notes.NoteVerifier:
        return notes.NoteVerifier.from_spki(self.name, self.public_key_spki())


def test_checkpoint_format() -> None:
    root = bytes(range(32))
    body = notes.make_checkpoint("archiver.example/log", 42, root)
    assert body == (
        "archiver.example/log\n42\n" + base64.b64encode(root).decode() + "\n"
    )
    assert notes.parse_checkpoint(body) == ("archiver.example/log", 42, root)
    assert notes.parse_checkpoint(body + "extension line\n").size == 42
    for bad in (
        "origin\n42\n",
        "origin\n042\n" + base64.b64encode(root).decode() + "\n",
        "origin\n-1\n" + base64.b64encode(root).decode() + "\n",
        "origin\n42\n" + base64.b64encode(root[:31]).decode() + "\n",
        "origin\n42\n" + base64.b64encode(root).decode(),
        "\n42\n" + base64.b64encode(root).decode() + "\n",
    ):
        with pytest.raises(VerificationError):
            notes.parse_checkpoint(bad)
    with pytest.raises(LedgerError):
        notes.make_checkpoint("two words", 1, root)


def test_signed_note_round_trip_and_tampering() -> None:
    signer = _TestSigner("archiver.example/log")
    body = notes.make_checkpoint("archiver.example/log", 7, bytes(32))
    note = notes.sign_note(body, signer)
    assert note.startswith(body + "\n\u2014 archiver.example/log ")
    assert note.endswith("\n")
    v = signer.verifier()
    assert notes.open_note(note, [v]) == body
    assert notes.open_note(note, [v.vkey()]) == body  # vkey strings work too
    assert notes.open_checkpoint(note, [v], origin="archiver.example/log").size == 7

    # A modified body fails.
    tampered = note.replace("\n7\n", "\n8\n", 1)
    with pytest.raises(VerificationError):
        notes.open_note(tampered, [v])
    # Another key (same name, so a different key hash) is unknown: no valid signature.
    other = _TestSigner("archiver.example/log")
    with pytest.raises(VerificationError):
        notes.open_note(note, [other.verifier()])
    # A known key whose signature bytes were changed is an error.
    line = note.split("\n")[-2]
    blob = bytearray(base64.b64decode(line.split(" ")[-1]))
    blob[10] ^= 1
    bad_sig = note.replace(line.split(" ")[-1], base64.b64encode(bytes(blob)).decode())
    with pytest.raises(VerificationError):
        notes.open_note(bad_sig, [v])
    with pytest.raises(VerificationError):
        notes.open_checkpoint(note, [v], origin="elsewhere/log")
    with pytest.raises(VerificationError):
        notes.open_note(body, [v])  # unsigned


def test_unknown_cosignatures_are_ignored() -> None:
    log_signer = _TestSigner("archiver.example/log")
    witness = _TestSigner("witness.example")
    body = notes.make_checkpoint("archiver.example/log", 3, bytes(32))
    note = notes.sign_note(body, log_signer)
    witness_line = notes.sign_note(body, witness).split("\n\n", 1)[1]
    cosigned = note + witness_line
    assert notes.open_note(cosigned, [log_signer.verifier()]) == body
    assert notes.open_note(cosigned, [witness.verifier()]) == body


# golang.org/x/mod/sumdb/note's documented example: the PeterNeumann test key
# (a public test vector, not a secret) and its signed note. Ed25519 is
# deterministic, so our note must match byte for byte.
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT
    + "\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)


def test_go_note_vector() -> None:
    v = notes.NoteVerifier.from_vkey(GO_VKEY)
    assert v.name == "PeterNeumann" and v.key_hash == 0xC74F20A3
    assert v.vkey() == GO_VKEY
    assert notes.open_note(GO_NOTE, [GO_VKEY]) == GO_TEXT
    with pytest.raises(VerificationError):
        notes.open_note(GO_NOTE.replace("cryptography", "cryptographY"), [GO_VKEY])
    seed = base64.b64decode(GO_SKEY.split("+", 4)[4])[1:]  # base64 may contain "+"
    signer = _TestSigner("PeterNeumann", Ed25519PrivateKey.from_private_bytes(seed))
    assert signer.verifier() == v
    assert notes.sign_note(GO_TEXT, signer) == GO_NOTE


@pytest.mark.parametrize(
    "vkey",
    [
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # wrong hash
        "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # upper hex
        "PeterNeumann+c74f20a3+AhpcZQcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # alg 2
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10",  # short
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3",
    ],
)
def test_bad_vkeys_rejected(vkey: str) -> None:
    with pytest.raises(VerificationError):
        notes.NoteVerifier.from_vkey(vkey)


def test_merkle_log_checkpoint(conn: sqlite3.Connection) -> None:
    signer = _TestSigner("archiver.example/log")
    mlog = build_log(conn, 9)
    at = datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    note = mlog.checkpoint("archiver.example/log", signer, at)
    cp = notes.open_checkpoint(note, [signer.verifier()], origin="archiver.example/log")
    assert cp == ("archiver.example/log", 9, mlog.root())
    assert mlog.checkpoint("archiver.example/log", signer, at) == note  # one per size
    row = mlog.latest_checkpoint()
    assert row is not None and row.size == 9 and row.note == note and row.root == mlog.root()
    assert row.created_at == at.isoformat()


def test_a_size_kept_for_one_transaction_sees_every_append_on_its_connection(tmp_path: Path) -> None:
    """The group commit's log object keeps the size between calls (one query
    per capture, not five), yet an append through another object on the same
    connection is seen at once."""
    c = sqlite3.connect(tmp_path / "index.sqlite", isolation_level=None)
    c.executescript(logdb.LOG_SCHEMA)
    counts: list[str] = []
    c.set_trace_callback(lambda sql: counts.append(sql) if "MAX(idx)" in sql else None)
    c.execute("BEGIN IMMEDIATE")
    mine = merkle_log.MerkleLog(c, one_transaction=True)
    assert mine.size() == 0
    merkle_log.MerkleLog(c).append(leaf_data(0), "s0")
    assert mine.size() == 1  # read again: the connection changed rows
    mine.append(leaf_data(1), "s1")
    before = len(counts)
    assert mine.size() == 2 and mine.size() == 2
    assert len(counts) == before  # kept: nothing was written since its own append
    assert merkle_log.MerkleLog(c).size() == 2
    c.execute("ROLLBACK")
    assert merkle_log.MerkleLog(c).size() == 0
    c.close()


def test_the_commit_rounds_log_object_signs_a_grown_tree_without_looking_up_its_size(tmp_path: Path) -> None:
    """After its own append, the round's log object neither looks for a
    checkpoint of the new size nor (vouched for) reads the size again; asked
    again for the same size it returns the stored note, and a checkpoint that
    exists for an unchanged tree is found, never signed twice."""
    c = sqlite3.connect(tmp_path / "index.sqlite", isolation_level=None)
    c.executescript(logdb.LOG_SCHEMA)
    c.execute("CREATE TABLE other (x)")
    signer, at = _TestSigner("archiver.example/log"), datetime(2025, 1, 2, tzinfo=timezone.utc)
    seen: list[str] = []
    c.set_trace_callback(seen.append)
    c.execute("BEGIN IMMEDIATE")
    mine = merkle_log.MerkleLog(c, one_transaction=True)
    mine.append(leaf_data(0), "s0")
    mine.append(leaf_data(1), "s1")
    c.execute("INSERT INTO other VALUES (1)")  # the round's own rows
    mine.vouch()
    del seen[:]
    note = mine.checkpoint("archiver.example/log", signer, at)
    assert not [s for s in seen if "MAX(idx)" in s or ("FROM checkpoints WHERE size" in s and "DELETE" not in s)]
    assert notes.open_checkpoint(note, [signer.verifier()], origin="archiver.example/log")[1] == 2
    assert mine.checkpoint("archiver.example/log", signer, at) == note  # looked up now: the same note
    c.execute("COMMIT")
    c.execute("BEGIN IMMEDIATE")
    again = merkle_log.MerkleLog(c, one_transaction=True)
    assert again.checkpoint("archiver.example/log", signer, at) == note  # unchanged tree: found, not re-signed
    c.execute("COMMIT")
    assert c.execute("SELECT COUNT(*) FROM checkpoints").fetchone()[0] == 1
    c.close()


# ------------------------------------------------------ the tree's right edge, kept between rounds


def _round(c: sqlite3.Connection, leaves: list[bytes], start: int, count: int,
           frontier: merkle_log.Frontier | None) -> tuple[merkle_log.MerkleLog, merkle_log.Frontier | None, list[str]]:
    """One commit round as archiver/committing.py runs it: a log object of one
    transaction, given the edge the last round left, appends ``count`` leaves
    and takes the root; returns the edge it leaves and the statements it ran."""
    seen: list[str] = []
    c.set_trace_callback(seen.append)
    c.execute("BEGIN IMMEDIATE")
    mine = merkle_log.MerkleLog(c, one_transaction=True, frontier=frontier)
    for i in range(start, start + count):
        assert mine.append(leaves[i], f"s{i}") == i
    assert mine.root() == ref_mth(leaves[: start + count]), f"size {start + count}"
    edge = mine.frontier()
    c.execute("COMMIT")
    c.set_trace_callback(None)
    return mine, edge, seen


def test_a_round_given_the_last_rounds_edge_appends_and_roots_without_reading_a_node(tmp_path: Path) -> None:
    """Rounds of 1-3 leaves up to 70, each given the edge the round before
    left: every root is RFC 6962's, and after the first round no round reads
    a leaf or a node -- one look at the log's last leaf checks the edge."""
    c = sqlite3.connect(tmp_path / "index.sqlite", isolation_level=None)
    c.executescript(logdb.LOG_SCHEMA)
    leaves = [leaf_data(i) for i in range(70)]
    edge, start, rounds = None, 0, 0
    while start < len(leaves):
        count = min(1 + rounds % 3, len(leaves) - start)
        _, edge, seen = _round(c, leaves, start, count, edge)
        start += count
        rounds += 1
        assert edge is not None and edge.size == start and edge.last_leaf == merkle.hash_leaf(leaves[start - 1])
        reads = [s for s in seen if s.startswith("SELECT")]
        if rounds > 1:
            assert reads == ["SELECT idx, leaf_hash FROM log_leaves ORDER BY idx DESC LIMIT 1"], reads
    # The nodes it stored are the ones a log object without the edge reads.
    fresh = merkle_log.MerkleLog(c)
    for size in range(71):
        assert fresh.root(size) == ref_mth(leaves[:size])
    c.close()


def test_an_edge_that_no_longer_ends_the_log_is_not_used(tmp_path: Path) -> None:
    """The edge is a hint: after another writer appended, after a rolled-back
    round, or when it does not name the log's last leaf (a forged or stale
    one of the same size), the round reads the log instead -- never a wrong root."""
    c = sqlite3.connect(tmp_path / "index.sqlite", isolation_level=None)
    c.executescript(logdb.LOG_SCHEMA)
    leaves = [leaf_data(i) for i in range(20)]
    _, edge, _ = _round(c, leaves, 0, 5, None)
    assert edge is not None
    # Another process appends leaf 5: the edge of size 5 is stale.
    c.execute("BEGIN IMMEDIATE")
    merkle_log.MerkleLog(c).append(leaves[5], "s5")
    c.execute("COMMIT")
    _, after_other, seen = _round(c, leaves, 6, 2, edge)
    assert any("FROM log_nodes" in s or "FROM log_leaves WHERE" in s for s in seen)
    assert after_other is not None and after_other.size == 8
    # A round that rolls back: its edge (size 9) is never offered; the old one still fits.
    c.execute("BEGIN IMMEDIATE")
    doomed = merkle_log.MerkleLog(c, one_transaction=True, frontier=after_other)
    doomed.append(b"rolled back", "gone")
    c.execute("ROLLBACK")
    _, edge9, seen = _round(c, leaves, 8, 1, after_other)
    assert [s for s in seen if s.startswith("SELECT")] == ["SELECT idx, leaf_hash FROM log_leaves ORDER BY idx DESC LIMIT 1"]
    # An edge of the right size whose last leaf is another: ignored.
    assert edge9 is not None
    forged = merkle_log.Frontier(9, merkle.hash_leaf(b"not leaf 8"), tuple((lvl, b"\x00" * 32) for lvl, _ in edge9.nodes))
    _, edge10, seen = _round(c, leaves, 9, 1, forged)
    assert any("FROM log_nodes" in s or "FROM log_leaves WHERE" in s for s in seen)
    assert edge10 is not None and edge10.size == 10
    c.close()

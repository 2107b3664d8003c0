"""Server-side checks of one snapshot, run when its page is opened.

The same questions ``archiver verify`` asks, for one snapshot only: does the
manifest hash to its digest and carry a valid signature by a key valid at
signing time; is every record it names in the WARC byte for byte; does the
response payload match; is its digest a leaf of the latest signed
checkpoint (with the inclusion proof); does it name the previous version's
manifest; which RFC 3161 tokens cover it. Every answer is recomputed from
the files, never read from a cached flag.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from archiver.canonical import canonical_json, sha256_hex
from archiver.errors import ArchiverError
from archiver.given import read_certificates
from archiver.provenance.keyring import ED25519, Keyring
from archiver.provenance.leaves import row_leaf
from archiver.provenance.log import MerkleLog
from archiver.provenance.merkle import hash_leaf, verify_inclusion
from archiver.provenance.notary import KEYRING_NAME
from archiver.provenance.notes import NoteVerifier, open_checkpoint
from store import logdb
from store.backends import WarcStore
from store.index import SnapshotRow
from store.scan import parse_record

log = logging.getLogger(__name__)

MAX_RECORD_BYTES = 256 * 1024 * 1024  # a record is never larger than the capture caps allow


@dataclass
class Check:
    name: str
    ok: bool | None  # None: not applicable
    detail: str


@dataclass
class SnapshotVerification:
    checks: list[Check] = field(default_factory=list)
    proof: dict[str, Any] | None = None
    timestamps: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok is not False for c in self.checks)

    def get(self, name: str) -> Check | None:
        return next((c for c in self.checks if c.name == name), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in self.checks],
            "proof": self.proof,
            "timestamps": self.timestamps,
        }


def load_keyring(archive: Any) -> Keyring | None:
    """The keys the panel checks signatures and checkpoints with: the readers'
    (archiver/signedreads.py: anchored on ``keys/`` or ``serve --public-key``),
    never ``keyring.json`` or the shared keyring alone, where an intruder
    could add a key of their own and sign a checkpoint over a log of theirs.
    None when this machine has no key to anchor on (every check then says so)."""
    from archiver.signedreads import reader_ring

    try:
        return reader_ring(archive, archive.reader_keys)
    except ArchiverError as exc:
        log.warning("no trusted keys for the verification panel: %s", exc)
        return None


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _b64(h: bytes) -> str:
    return base64.b64encode(h).decode("ascii")


def verify_snapshot(archive: Any, row: SnapshotRow) -> SnapshotVerification:
    result = SnapshotVerification()
    keyring = load_keyring(archive)
    try:
        manifest = archive.manifest(row)
    except ArchiverError as exc:
        result.checks.append(Check("signature", False, str(exc)))
        return result
    if manifest is None or not row.manifest_sha256:
        result.checks.append(Check("signature", False, "the snapshot has no signed manifest"))
        return result
    result.checks.append(_signature(manifest, row, keyring))
    result.checks.append(_records(archive.warcs, manifest))
    result.checks.append(inclusion_check(archive, row, keyring, result))
    result.checks.append(_chain(archive, row, manifest))
    result.timestamps = _timestamps(archive, row)
    return result


def _signature(manifest: dict[str, Any], row: SnapshotRow, keyring: Keyring | None) -> Check:
    data = canonical_json(manifest)
    if sha256_hex(data) != row.manifest_sha256:
        return Check("signature", False, "the manifest does not hash to its recorded digest")
    if not row.signature or not row.key_id:
        return Check("signature", False, "the manifest is not signed")
    if keyring is None:
        return Check("signature", False, f"no keyring ({KEYRING_NAME}) to check the signature with")
    try:
        sig = base64.b64decode(row.signature, validate=True)
        keyring.verify(row.key_id, data, sig, _parse_time(manifest.get("signed_at") or manifest["fetch_ended_at"]))
    except (ArchiverError, ValueError, KeyError) as exc:
        return Check("signature", False, f"key {row.key_id[:16]}…: {exc}")
    return Check("signature", True, f"Ed25519, key {row.key_id}")


def _records(warcs: WarcStore, manifest: dict[str, Any]) -> Check:
    records = manifest.get("records", [])
    for rec in records:
        where = f"{rec['type']} record at {rec['warc_file']}@{rec['offset']}"
        try:
            if int(rec["length"]) > MAX_RECORD_BYTES:
                return Check("records", False, f"{where}: larger than any capture")
            member = warcs.read_member(rec["warc_file"], int(rec["offset"]), int(rec["length"]))
            data = zlib.decompress(member, 16 + zlib.MAX_WBITS)
        except (ArchiverError, OSError, zlib.error, ValueError) as exc:
            return Check("records", False, f"{where}: unreadable ({exc})")
        if hashlib.sha256(data).hexdigest() != rec["sha256"]:
            return Check("records", False, f"{where}: differs from the signed manifest")
        if rec["type"] == "response":
            try:
                payload = parse_record(data).payload()
            except ValueError as exc:
                return Check("records", False, f"{where}: {exc}")
            hop_digests = {h.get("payload_sha256") for h in manifest.get("hops", [])}
            if hashlib.sha256(payload).hexdigest() not in hop_digests | {manifest.get("payload_sha256")}:
                return Check("records", False, f"{where}: payload differs from the signed payload SHA-256")
    return Check("records", True, f"{len(records)} WARC record(s) match the signed SHA-256 digests")


def inclusion_check(archive: Any, row: SnapshotRow, keyring: Keyring | None, result: SnapshotVerification) -> Check:
    if row.log_index is None or row.manifest_sha256 is None:
        return Check("inclusion", False, "the snapshot has no log entry")
    verifiers = [NoteVerifier.from_spki(k.name, k.public_key) for k in (keyring.keys if keyring else ()) if k.algorithm == ED25519]
    try:
        with archive.index.read() as conn:
            ledger = MerkleLog(conn)
            latest = ledger.latest_checkpoint()
            if latest is None:
                return Check("inclusion", False, "the log has no signed checkpoint")
            cp = open_checkpoint(latest.note, verifiers)
            if row.log_index >= cp.size:
                return Check("inclusion", False, f"leaf {row.log_index} is beyond the checkpoint (size {cp.size})")
            stored = ledger.leaf_hash(row.log_index)
            proof = ledger.inclusion_proof(row.log_index, cp.size)
        # the leaf's data: the digest, and the signature and key when the manifest signs its leaf
        data = row_leaf(row.manifest_sha256, row.signature, row.key_id, stored)
        if data is None:
            return Check("inclusion", False, f"log leaf {row.log_index} is not this manifest's digest (with its signature)")
        leaf = hash_leaf(data)
        result.proof = {
            "snapshot": row.id, "manifest_sha256": row.manifest_sha256, "leaf_index": row.log_index,
            "tree_size": cp.size, "leaf_data": _b64(data), "leaf_hash": _b64(leaf), "root": _b64(cp.root),
            "proof": [_b64(h) for h in proof], "checkpoint": latest.note,
        }
        verify_inclusion(leaf, row.log_index, cp.size, proof, cp.root)
    except ArchiverError as exc:
        return Check("inclusion", False, str(exc))
    return Check("inclusion", True, f"leaf {row.log_index} of the signed checkpoint of size {cp.size} ({cp.origin})")


def _chain(archive: Any, row: SnapshotRow, manifest: dict[str, Any]) -> Check:
    named = manifest.get("previous_manifest_sha256")
    if row.prev_id is None:
        if named is None:
            return Check("chain", None, "the first snapshot of this URL")
        return Check("chain", False, "names a previous manifest, but this is the URL's first snapshot")
    prev = archive.index.snapshot(row.prev_id)
    if prev is None or prev.manifest_sha256 != named:
        return Check("chain", False, "does not name the previous version's manifest")
    return Check("chain", True, f"names the manifest of {prev.id} ({prev.manifest_sha256[:16]}…)")


def _timestamps(archive: Any, row: SnapshotRow) -> list[dict[str, Any]]:
    """RFC 3161 tokens over checkpoints that include this snapshot, each checked
    against its checkpoint note and the configured TSA roots (``signing.tsa_roots``)."""
    from archiver.provenance.timestamping import load_tokens, verify_token

    if row.log_index is None:
        return []
    try:
        tokens = [t for t in load_tokens(archive.root) if t.tree_size > row.log_index][:5]
    except ArchiverError as exc:
        log.warning("cannot read timestamps: %s", exc)
        return []
    roots = read_certificates(archive.settings.signing.tsa_roots)
    out = []
    for t in tokens:
        with archive.index.read() as conn:
            note = logdb.checkpoint_at(conn, t.tree_size)
        ok, detail = False, f"no checkpoint of size {t.tree_size}"
        if note is not None:
            try:
                verify_token(t.token, note.note.encode("utf-8"), roots=roots)
                ok, detail = True, "valid"
            except ArchiverError as exc:
                detail = str(exc)
        out.append({"tree_size": t.tree_size, "tsa_url": t.tsa_url, "gen_time": t.gen_time.isoformat(),
                    "file": t.path.name, "ok": ok, "detail": detail})
    return out

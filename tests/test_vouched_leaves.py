"""A log leaf that holds its manifest's signature (provenance/leaves.py),
and the checkpoint that vouches for those signatures in ``verify``
(audit/leafvouch.py): ``verify`` skips libsodium for them, and must still
report every forged signature -- in the WARC and the index alike, with the
stored leaf rewritten to match, or a leaf in the older form."""

from __future__ import annotations

import base64
import hashlib
import json
import random
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from archiver.audit import claims
from archiver.provenance.leaves import LEAF_SIGNED, leaf_data, leaf_forms, row_leaf, signed_leaf_data
from archiver.provenance.merkle import hash_leaf
from conftest import warc_files
from store.scan import iter_members, parse_record
from test_claims_native import JUDGE, OTHER_REC, SIGNER, SIGNER_REC, _canonical, _manifest, needs_native
from test_verify import build, kinds, repoint_index, rewrite_warc, verify
from test_verify_settled import audit_counting


def _doc(m: dict[str, Any], signature: str | None = None) -> tuple[bytes, str, str]:
    data = _canonical(m)
    signature = signature or base64.b64encode(SIGNER.sign(data)).decode()
    digest = hashlib.sha256(data).hexdigest()
    doc = (b'{"key_id":"' + SIGNER_REC.key_id.encode() + b'","manifest":' + data + b',"manifest_sha256":"'
           + digest.encode() + b'","signature":"' + signature.encode() + b'"}')
    return doc, digest, signature


@needs_native
def test_the_native_reader_lets_a_checkpoint_vouch_only_for_its_key_below_its_size_in_the_signed_form():
    refs = [{"record_id": "<urn:uuid:r>", "sha256": "aa" * 32, "type": "response", "warc_file": "f", "offset": 1}]
    m = _manifest(random.Random(1), "01vouch", refs)
    m["log"] = {"index": 5, "origin": "archiver/test", "leaf": LEAF_SIGNED}
    target = "urn:archiver:manifest:01vouch"
    doc, digest, good = _doc(m)
    vouch = (SIGNER_REC.key_id, 6)
    found = claims.manifest(doc, target, JUDGE.raw_keys, vouch)
    assert found is not None and found.sig_ok
    assert found.leaf == hash_leaf(signed_leaf_data(digest, good, SIGNER_REC.key_id) or b"")
    # a forged signature is vouched for too -- with the leaf it would need, which the log does not hold
    raw = bytearray(base64.b64decode(good))
    raw[7] ^= 1
    forged = base64.b64encode(bytes(raw)).decode()
    found = claims.manifest(_doc(m, forged)[0], target, JUDGE.raw_keys, vouch)
    assert found is not None and found.sig_ok and found.leaf is not None and found.leaf != hash_leaf(
        signed_leaf_data(digest, good, SIGNER_REC.key_id) or b"")
    # ... and without a vouch libsodium refuses it
    found = claims.manifest(_doc(m, forged)[0], target, JUDGE.raw_keys)
    assert found is not None and not found.sig_ok and found.leaf is None
    # not vouched for: at or past the checkpoint's size, by another key, without the signed form
    for vouched in [(SIGNER_REC.key_id, 5), (OTHER_REC.key_id, 6), None]:
        found = claims.manifest(doc, target, JUDGE.raw_keys, vouched)
        assert found is not None and found.sig_ok and found.leaf is None, vouched
    for entry in [{"index": 5, "origin": "archiver/test"}, {"index": 5, "leaf": "manifest", "origin": "archiver/test"}]:
        m["log"] = entry
        found = claims.manifest(_doc(m)[0], target, JUDGE.raw_keys, vouch)
        assert found is not None and found.sig_ok and found.leaf is None, entry


def test_leaf_forms_of_a_row():
    digest, sig, key = "ab" * 32, base64.b64encode(bytes(range(64))).decode(), "cd" * 32
    data = signed_leaf_data(digest, sig, key)
    assert data == bytes.fromhex(digest) + bytes(range(64)) + key.encode()
    assert leaf_forms(digest, sig, key) == [bytes.fromhex(digest), data]
    assert leaf_data({"log": {"index": 1, "leaf": LEAF_SIGNED}}, digest, sig, key) == data
    assert leaf_data({"log": {"index": 1}}, digest, sig, key) == bytes.fromhex(digest)
    assert row_leaf(digest, sig, key, hash_leaf(data)) == data
    assert row_leaf(digest, sig, key, hash_leaf(bytes.fromhex(digest))) == bytes.fromhex(digest)
    assert row_leaf(digest, sig[:-4] + "AAA=", key, hash_leaf(data)) is None  # another signature: neither form
    for bad in [("zz" * 32, sig, key), (digest, "not base64", key), (digest, sig, ""), (digest, sig, "ké")]:
        assert signed_leaf_data(*bad) is None
    with pytest.raises(ValueError):
        leaf_data({"log": {"leaf": LEAF_SIGNED}}, digest, "short", key)


def _rows(data_dir: Path) -> list[tuple[str, int, str, str, str]]:
    with sqlite3.connect(data_dir / "index.sqlite3") as db:
        return db.execute("SELECT id, log_index, manifest_sha256, signature, key_id FROM snapshots ORDER BY log_index").fetchall()


def test_a_capture_logs_its_signature_in_its_leaf(site, cli):
    build(site, cli, n_urls=2, versions=2)
    with sqlite3.connect(cli.data_dir / "index.sqlite3") as db:
        stored = dict(db.execute("SELECT idx, leaf_hash FROM log_leaves"))
    manifests = {}
    for path in warc_files(cli.data_dir):
        for m in iter_members(path):
            rec = parse_record(m.data)
            if rec.headers.get("WARC-Type") == "metadata" and b'"manifest_sha256"' in rec.block:
                fields = json.loads(rec.block)
                manifests[fields["manifest"]["snapshot_id"]] = fields
    assert len(manifests) == 4
    for sid, index, digest, signature, key_id in _rows(cli.data_dir):
        fields = manifests[sid]
        assert fields["manifest"]["log"]["leaf"] == LEAF_SIGNED
        assert (fields["signature"], fields["key_id"]) == (signature, key_id)
        assert stored[index] == hash_leaf(bytes.fromhex(digest) + base64.b64decode(signature) + key_id.encode())


def _forge_signature(data_dir: Path, sid: str) -> str:
    """Flip one bit of ``sid``'s signature in its manifest record and its index
    row alike (no key needed), re-pointing the index at the rewritten files."""
    forged: list[str] = []

    def change(h: dict[str, str], b: bytes) -> Any:
        if h.get("WARC-Type") == "metadata" and h.get("WARC-Target-URI") == f"urn:archiver:manifest:{sid}":
            fields = json.loads(b)
            raw = bytearray(base64.b64decode(fields["signature"]))
            raw[3] ^= 0x10
            fields["signature"] = base64.b64encode(bytes(raw)).decode()
            forged.append(fields["signature"])
            return h, json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
        return h, b

    for path in warc_files(data_dir):
        rewrite_warc(path, change)
    db = sqlite3.connect(data_dir / "index.sqlite3")
    repoint_index(data_dir, db)
    db.execute("UPDATE snapshots SET signature=? WHERE id=?", (forged[0], sid))
    db.commit()
    db.close()
    return forged[0]


def test_verify_lets_the_checkpoint_vouch_and_still_reports_a_forged_signature(site, cli, monkeypatch):
    build(site, cli, n_urls=3, versions=2)
    report, one_by_one, vouched = audit_counting(cli.data_dir, False, monkeypatch)
    assert report["ok"] and report["checked"] == 6 and one_by_one == 0
    assert vouched == 6 and report["vouched"] == 6  # every signature vouched for by the checkpoint, none by libsodium
    sid, index, digest, _, key_id = _rows(cli.data_dir)[2]
    forged = _forge_signature(cli.data_dir, sid)
    code, report = verify(cli)
    assert code == 1 and (sid, "bad-signature") in kinds(report), report["problems"]
    assert report["vouched"] == 5
    # the forger rewrites the stored leaf to hold the forged signature: the checkpoint's root is lost
    with sqlite3.connect(cli.data_dir / "index.sqlite3") as db:
        db.execute("UPDATE log_leaves SET leaf_hash=? WHERE idx=?",
                   (hash_leaf(signed_leaf_data(digest, forged, key_id) or b""), index))
    code, report = verify(cli)
    assert code == 1 and {(sid, "bad-signature"), (None, "checkpoint")} <= kinds(report), report["problems"]
    assert {p["snapshot"] for p in report["problems"] if p["kind"] == "bad-signature"} == {sid}


def test_a_leaf_in_the_older_form_under_a_manifest_that_signs_its_leaf_is_reported(site, cli):
    """The log half takes either form (it reads no manifest); the manifest says which it must be."""
    build(site, cli, n_urls=1, versions=1)
    sid, index, digest, _, _ = _rows(cli.data_dir)[0]
    with sqlite3.connect(cli.data_dir / "index.sqlite3") as db:
        db.execute("UPDATE log_leaves SET leaf_hash=? WHERE idx=?", (hash_leaf(bytes.fromhex(digest)), index))
    code, report = verify(cli)
    assert code == 1 and (sid, "log-mismatch") in kinds(report), report["problems"]


def test_with_a_leaf_changed_nothing_is_vouched_for_and_the_report_is_the_one_by_one_report(site, cli, tmp_path,
                                                                                            monkeypatch):
    build(site, cli, n_urls=2, versions=2)
    sid, index, *_ = _rows(cli.data_dir)[1]
    with sqlite3.connect(cli.data_dir / "index.sqlite3") as db:
        db.execute("UPDATE log_leaves SET leaf_hash=zeroblob(32) WHERE idx=?", (index,))
    fast, fast_count, _ = audit_counting(cli.data_dir, False, monkeypatch)
    slow, _, _ = audit_counting(cli.data_dir, True, monkeypatch)
    assert fast == slow and not fast["ok"]
    assert fast_count == 4  # the checkpoint's root is not the leaves': every signature checked on its own
    assert {(None, "checkpoint"), (sid, "log-mismatch")} <= {(p["snapshot"], p["kind"]) for p in fast["problems"]}
    assert not {p["kind"] for p in fast["problems"]} & {"bad-signature", "untrusted-key"}


def test_verify_says_how_many_signatures_the_checkpoint_vouched_for_on_either_configuration(site, bcli, tmp_path):
    urls = build(site, bcli, n_urls=2, versions=2)
    code, report = verify(bcli)
    assert code == 0 and report["checked"] == 4 and report["vouched"] == 4, report
    code, report = verify(bcli, urls[0])  # some URLs: counted as they are checked
    assert code == 0 and report["checked"] == 2 and report["vouched"] == 2, report
    # an auditor pinning another key: the checkpoint vouches for nothing, every signature is checked (and refused)
    other = tmp_path / "other.pem"
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    other.write_bytes(Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    code, report = verify(bcli, "--public-key", str(other))
    assert code == 1 and report["vouched"] == 0
    assert {p["kind"] for p in report["problems"]} & {"untrusted-key", "bad-signature"}  # (shared: the root anchors)

"""A log leaf that holds its manifest's signature (provenance/leaves.py),
and the checkpoint that vouches for those signatures in ``verify``
(audit/leafvouch.py): ``verify`` skips libsodium for them, and must still
report every forged signature -- in the WARC and the index alike, with the
stored leaf rewritten to match, or a leaf in the older form."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from archiver.audit import claims
from archiver.provenance.leaves import LEAF_SIGNED, leaf_data, leaf_forms, row_leaf, signed_leaf_data
from archiver.provenance.merkle import hash_leaf
from conftest import article_html, warc_files
from store.scan import iter_members, parse_record
from test_claims_native import JUDGE, OTHER_REC, SIGNER, SIGNER_REC, _canonical, _manifest, needs_native
from test_scan_native import verify_failing_both_ways
from test_verify import build, kinds, repoint_index, rewrite_warc, verify
from test_verify_settled import audit_counting
from test_worker_keys import _key_id, machines  # noqa: F401


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
    vouch = {SIGNER_REC.key_id: 6, OTHER_REC.key_id: 100}
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
    for vouched in [{SIGNER_REC.key_id: 5}, {OTHER_REC.key_id: 6}, {}, None]:
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


# -- each key's latest checkpoint vouches for that key's manifests (round 11) --

def _checkpoints(cli) -> list[tuple[int, str | None, str]]:
    db = cli.db()
    try:
        return [(int(r[0]), r[1], r[2]) for r in db.execute("SELECT size, kept, note FROM checkpoints ORDER BY size")]
    finally:
        db.close()


def _key_ids(cli) -> list[str]:
    db = cli.db()
    try:
        return [r[0] for r in db.execute("SELECT key_id FROM snapshots ORDER BY log_index")]
    finally:
        db.close()


def _rotated(site, cli) -> tuple[list[str], Any]:
    """Four snapshots by the first key, `keys rotate`, four by the next; and the
    first key's signer (kept in memory: the rotation deleted its file)."""
    from archiver.archive import Archive

    urls = build(site, cli, n_urls=2, versions=2)
    with cli.environ(), Archive(cli.settings()) as archive:
        old = archive.provenance.keys.signer()
    assert cli("keys", "rotate").code == 0
    for u in range(2):
        for v in range(2, 4):
            url = site.page(f"/story{u}", f"<html lang='de'><body><article><p>Version {v}: {v} Menschen.</p>"
                                          "</article></body></html>")
            assert cli("snapshot", url, "--json").code == 0
    keys = _key_ids(cli)
    assert len(set(keys)) == 2 and keys[:4] == [old.key_id] * 4, keys
    return urls, old


def test_after_keys_rotate_both_keys_manifests_are_vouched_for(site, bcli, tmp_path):
    _, old = _rotated(site, bcli)
    pins: list[str] = []
    if bcli.shared:  # (a shared archive's rotated root is trusted as pinned: see test_pinned_root)
        assert bcli("keys", "export-public", str(tmp_path / "roots.pem")).code == 0
        pins = ["--public-key", str(tmp_path / "roots.pem")]
    code, report = verify(bcli, *pins)
    assert code == 0 and report["checked"] == 8, report["problems"]
    assert report["vouched"] == 8, report  # the old key's too: its last checkpoint is kept and vouches for them
    kept = [(size, why) for size, why, _ in _checkpoints(bcli)]
    assert (4, f"latest of {old.name}+") in [(s, (w or "")[:len(f"latest of {old.name}+")]) for s, w in kept], kept
    assert kept[-1] == (8, None), kept


def test_each_machine_of_a_shared_archive_has_its_manifests_vouched_for(site, machines, monkeypatch):  # noqa: F811
    root, one, _ = machines
    urls = [site.page(f"/m{i}", article_html(f"Lage {i}", [f"Es kamen {i}0.000 Menschen."])) for i in range(2)]
    assert root("snapshot", urls[0]).code == 0
    assert root("keys", "enroll", _key_id(one)).code == 0
    monkeypatch.setattr(socket, "gethostname", lambda: "elsewhere")  # another machine
    for url in urls:
        site.page(url[url.index("/m"):], article_html("Lage", [f"Es kamen {url[-1]}5.000 Menschen."]))
        assert one("snapshot", url).code == 0
    monkeypatch.undo()
    assert root("snapshot", urls[1]).code == 0  # the root machine signs the latest checkpoint again
    assert len(set(_key_ids(root))) == 2
    kept = [why for _, why, _ in _checkpoints(root)]
    assert kept[-1] is None and any((why or "").startswith("latest of worker-") for why in kept), kept
    for machine in (root, one):
        code, report = verify(machine)
        assert code == 0 and report["checked"] == 4 and report["vouched"] == 4, report


def _relog(cli, signer: Any) -> None:
    """Log the index's rows afresh (each leaf from its row's digest, signature
    and key), every checkpoint dropped, and sign one with ``signer``."""
    from datetime import datetime, timezone

    from archiver.provenance.log import MerkleLog

    rows = _rows(cli.data_dir)
    db = sqlite3.connect(cli.data_dir / "index.sqlite3", isolation_level=None)
    db.execute("BEGIN IMMEDIATE")
    (note,) = db.execute("SELECT note FROM checkpoints ORDER BY size DESC LIMIT 1").fetchone()
    for table in ("checkpoints", "log_leaves", "log_nodes"):
        db.execute(f"DELETE FROM {table}")
    ledger = MerkleLog(db)
    for sid, _, digest, signature, key_id in rows:
        ledger.append(signed_leaf_data(digest, signature, key_id) or b"", sid)
    ledger.checkpoint(note.split("\n", 1)[0], signer, datetime.now(timezone.utc))
    db.execute("COMMIT")
    db.close()


def test_a_checkpoint_of_the_new_key_never_vouches_for_the_old_keys_manifest(site, cli):
    """Whoever holds the new key rewrites a manifest of the old key's -- its
    signature in the WARC and the index, its stored leaf -- drops the old
    key's checkpoint and signs one over the rewritten log with the new key:
    the forged signature is still checked, and refused."""
    from archiver.archive import Archive

    _rotated(site, cli)
    sid = _rows(cli.data_dir)[1][0]
    _forge_signature(cli.data_dir, sid)
    with cli.environ(), Archive(cli.settings()) as archive:
        new = archive.provenance.keys.signer()
    _relog(cli, new)  # the forged signature's leaf, under the new key's checkpoint alone
    code, report = verify(cli)
    assert code == 1 and (sid, "bad-signature") in kinds(report), report["problems"]
    assert report["vouched"] == 4  # the new key's own four
    assert verify_failing_both_ways(cli)["checked"] == 8


def test_a_root_mismatch_at_one_keys_checkpoint_vouches_nothing_for_that_key(site, cli, monkeypatch):
    """The old key's kept checkpoint, signed by the old key over another root:
    the old key's manifests are each checked by libsodium; the new key's
    checkpoint still vouches for its own."""
    from archiver.provenance.notes import make_checkpoint, sign_note

    _, old = _rotated(site, cli)
    report, one_by_one, _ = audit_counting(cli.data_dir, False, monkeypatch)
    assert report["ok"] and report["vouched"] == 8 and one_by_one == 0
    (size, _why, note), = [c for c in _checkpoints(cli) if (c[1] or "").startswith("latest of ")]
    bogus = hashlib.sha256(b"another tree").digest()
    with sqlite3.connect(cli.data_dir / "index.sqlite3") as db:
        db.execute("UPDATE checkpoints SET root=?, note=? WHERE size=?",
                   (bogus, sign_note(make_checkpoint(note.split("\n", 1)[0], size, bogus), old), size))
    report, one_by_one, _ = audit_counting(cli.data_dir, False, monkeypatch)
    assert not report["ok"] and {p["kind"] for p in report["problems"]} == {"not-append-only"}, report["problems"]
    assert report["vouched"] == 4 and one_by_one == 4  # the old key's four, checked one by one
    assert verify_failing_both_ways(cli)["checked"] == 8


def test_native_and_pure_python_reports_of_a_rotated_archive_are_equal_but_for_vouched(site, cli):
    _rotated(site, cli)
    env = {**os.environ, **cli.env, "ARCHIVER_DATA_DIR": str(cli.data_dir)}
    outs = []
    for pure in ("", "1"):
        r = subprocess.run([sys.executable, "-m", "archiver", "verify", "--json"], capture_output=True, text=True,
                           env={**env, "ARCHIVER_PURE_PYTHON": pure}, timeout=120)
        assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
        outs.append(json.loads(r.stdout))
    assert (outs[0].pop("vouched"), outs[1].pop("vouched")) == (8, 0)
    assert outs[0] == outs[1]


def test_each_signers_latest_checkpoint_is_kept_until_it_signs_again(tmp_path):
    from datetime import datetime, timezone

    from archiver.provenance import log as merkle_log
    from store import logdb
    from test_ledger import _TestSigner

    c = sqlite3.connect(tmp_path / "index.sqlite", isolation_level=None)
    c.executescript(logdb.LOG_SCHEMA)
    a, b = _TestSigner("archiver.example/a"), _TestSigner("archiver.example/b")
    at = datetime(2025, 1, 2, tzinfo=timezone.utc)

    def sign(signer: Any, leaves: int = 1) -> None:
        c.execute("BEGIN IMMEDIATE")
        ledger = merkle_log.MerkleLog(c)
        for _ in range(leaves):
            ledger.append(hashlib.sha256(str(ledger.size()).encode()).digest(), None)
        ledger.checkpoint("archiver.example/log", signer, at)
        c.execute("COMMIT")

    def kept() -> list[tuple[int, str | None]]:
        return [(int(r[0]), r[1]) for r in c.execute("SELECT size, kept FROM checkpoints ORDER BY size")]

    va, vb = a.verifier(), b.verifier()
    ida, idb = f"{va.name}+{va.key_hash:08x}", f"{vb.name}+{vb.key_hash:08x}"
    sign(a)
    sign(a)
    assert kept() == [(2, None)]
    assert logdb.note_signer(c.execute("SELECT note FROM checkpoints").fetchone()[0]) == ida
    sign(b)
    assert kept() == [(2, f"latest of {ida}"), (3, None)]
    sign(b)
    assert kept() == [(2, f"latest of {ida}"), (4, None)]
    sign(a)  # a's earlier latest goes, b's is kept
    assert kept() == [(4, f"latest of {idb}"), (5, None)]
    assert logdb.keep_checkpoint(c, 4, "proof")  # handed out: kept for that, past b's next checkpoint
    logdb.keep_checkpoint(c, 5, "published")
    sign(b)
    assert kept() == [(4, "proof"), (5, "published"), (6, None)]
    sign(a)
    assert kept() == [(4, "proof"), (5, "published"), (6, f"latest of {idb}"), (7, None)]
    for bad in ["", "body\n", "body\n\nno dash\n", "body\n\n\u2014 name !!!!!!!!\n", "body\n\n\u2014 name AAA\n"]:
        assert logdb.note_signer(bad) is None


def test_at_most_64_keys_latest_checkpoints_vouch_and_each_only_by_its_own_key(tmp_path):
    """66 keys each sign a checkpoint in turn: the 64 newest vouch, each at
    its own size; one signed with a key the judge does not know, or under
    another key's name, vouches for nothing."""
    from datetime import datetime, timezone

    from archiver.audit.judge import Judge
    from archiver.audit.leafvouch import MAX_KEYS, LeafFold, checked_checkpoints
    from archiver.provenance import log as merkle_log
    from archiver.provenance.keyring import ED25519, KeyRecord, Keyring, key_id_for
    from store import logdb
    from test_ledger import _TestSigner

    c = sqlite3.connect(tmp_path / "index.sqlite", isolation_level=None)
    c.executescript(logdb.LOG_SCHEMA)
    at = datetime(2025, 1, 2, tzinfo=timezone.utc)
    signers = [_TestSigner("archiver") for _ in range(MAX_KEYS + 2)]
    records = [KeyRecord(key_id_for(s.public_key_spki()), ED25519, s.public_key_spki(), at, None, "archiver")
               for s in signers]
    stranger = _TestSigner("archiver")
    for s in [*signers, stranger]:
        c.execute("BEGIN IMMEDIATE")
        ledger = merkle_log.MerkleLog(c)
        ledger.append(hashlib.sha256(str(ledger.size()).encode()).digest(), None)
        ledger.checkpoint("archiver.example/log", s, at)
        c.execute("COMMIT")
    assert c.execute("SELECT COUNT(*) FROM checkpoints").fetchone()[0] == len(signers) + 1  # each key's latest
    judge = Judge(Keyring.of(records))
    vouches = checked_checkpoints(c, judge)
    assert [(v.key_id, v.size) for v in vouches] == [(r.key_id, i + 1) for i, r in enumerate(records)][-MAX_KEYS:]
    fold = LeafFold(vouches)
    assert fold.finish(c) == {v.key_id for v in vouches}
    # the last key's checkpoint rewritten to a root the leaves do not have: that key alone loses its vouch
    last = vouches[-1]
    from archiver.provenance.notes import make_checkpoint, sign_note

    bogus = hashlib.sha256(b"x").digest()
    c.execute("UPDATE checkpoints SET root=?, note=? WHERE size=?",
              (bogus, sign_note(make_checkpoint("archiver.example/log", last.size, bogus), signers[-1]), last.size))
    vouches = checked_checkpoints(c, judge)
    assert LeafFold(vouches).finish(c) == {v.key_id for v in vouches} - {last.key_id}
    # a checkpoint under one key's name and hash signed by another key: none for that key
    first = vouches[0]
    note = c.execute("SELECT note FROM checkpoints WHERE size=?", (first.size,)).fetchone()[0]
    assert first.key_id == records[2].key_id
    other = sign_note(make_checkpoint("archiver.example/log", first.size, first.root), signers[0])
    blob = base64.b64decode(note[note.rindex(" ") + 1:])[:4] + base64.b64decode(other[other.rindex(" ") + 1:])[4:]
    forged = note[:note.rindex(" ") + 1] + base64.b64encode(blob).decode() + "\n"  # its key hash, another's signature
    assert logdb.note_signer(forged) == logdb.note_signer(note)
    c.execute("UPDATE checkpoints SET note=? WHERE size=?", (forged, first.size))
    # (the next older key's checkpoint takes its place among the 64)
    assert {v.key_id for v in checked_checkpoints(c, judge)} == {r.key_id for r in [records[1], *records[3:]]}

"""`archiver verify` and `archiver repair`: an untouched archive verifies; each
kind of tampering or crash damage is named, with the snapshot, exit 1, and
no traceback."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from archiver.capture.records import intent_document, manifest_fields
from conftest import article_html, index_state, lose_commit, warc_files
from store.scan import iter_members, parse_record
from store.warc import gzip_member, sha256_label


def build(site, cli, n_urls: int = 2, versions: int = 2) -> list[str]:
    urls = []
    for u in range(n_urls):
        for v in range(versions):
            url = site.page(f"/story{u}", article_html(f"Bericht {u}", [f"Version {v}: {1000 * (v + 1)} Menschen kamen."]))
            r = cli("snapshot", url, "--json")
            assert r.code == 0, r.err
        urls.append(url)
    return urls


def verify(cli, *args: str):
    r = cli("verify", "--json", *args)
    assert "Traceback" not in r.err
    return r.code, json.loads(r.out) if r.out else None


def kinds(report) -> set[tuple[str | None, str]]:
    return {(p["snapshot"], p["kind"]) for p in report["problems"]}


def snapshot_ids(cli, url: str) -> list[str]:
    return [h["id"] for h in cli("history", url, "--json").json()]


def rewrite_warc(path: Path, change) -> None:
    """Rewrite a WARC member by member; ``change(headers, block)`` returns a
    new (headers, block), or None to drop the record. Digests are recomputed,
    as a careful forger would."""
    out = bytearray()
    for m in iter_members(path):
        rec = parse_record(m.data)
        changed = change(dict(rec.headers), rec.block)
        if changed is None:
            continue
        headers, block = changed
        if block != rec.block:
            headers["Content-Length"] = str(len(block))
            headers["WARC-Block-Digest"] = sha256_label(hashlib.sha256(block).digest())
            rtype = headers.get("WARC-Type")
            if rtype == "response":
                body = block[block.find(b"\r\n\r\n") + 4:]
                headers["WARC-Payload-Digest"] = sha256_label(hashlib.sha256(body).digest())
            elif "WARC-Payload-Digest" in headers and rtype in ("metadata", "resource"):  # payload = block
                headers["WARC-Payload-Digest"] = headers["WARC-Block-Digest"]
        head = "WARC/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        out += gzip_member(head.encode() + block + b"\r\n\r\n")  # compressed as the archive does
    path.write_bytes(bytes(out))


def test_untouched_archive_verifies(site, bcli):
    build(site, bcli)
    code, report = verify(bcli)
    assert code == 0 and report["ok"] is True and report["checked"] == 4 and report["problems"] == []
    human = bcli("verify")
    assert human.code == 0 and human.out.startswith("OK: 4 snapshot(s) checked")


def test_changed_payload_with_recomputed_digests_is_caught(site, bcli):
    urls = build(site, bcli)
    target = snapshot_ids(bcli, urls[0])[0]

    def forge(headers, block):
        if headers.get("WARC-Type") == "response" and b"Version 0: 1000" in block and urls[0] == headers["WARC-Target-URI"]:
            return headers, block.replace(b"1000 Menschen", b"9000 Menschen")
        return headers, block

    with bcli.warcs() as paths:
        for path in paths:
            rewrite_warc(path, forge)
        # warcio is satisfied: the forger recomputed the WARC digests.
        check = subprocess.run([sys.executable, "-m", "warcio.cli", "check", *map(str, paths)])
        assert check.returncode == 0
    code, report = verify(bcli)
    assert code == 1
    assert (target, "record-changed") in kinds(report) and (target, "payload-changed") in kinds(report)


def test_changed_signature_byte_is_caught(site, bcli):
    urls = build(site, bcli)
    target = snapshot_ids(bcli, urls[1])[1]
    db = bcli.db()
    sig = bytearray(base64.b64decode(db.execute("SELECT signature FROM snapshots WHERE id=?", (target,)).fetchone()[0]))
    sig[10] ^= 0x01
    db.execute("UPDATE snapshots SET signature=? WHERE id=?", (base64.b64encode(bytes(sig)).decode(), target))
    db.commit()
    db.close()
    code, report = verify(bcli)
    assert code == 1 and (target, "bad-signature") in kinds(report)


def test_deleted_index_rows_are_caught_and_repaired(site, bcli):
    urls = build(site, bcli)
    target = snapshot_ids(bcli, urls[0])[1]
    db = bcli.db()
    db.execute("DELETE FROM records WHERE snapshot_id=?", (target,))
    db.execute("DELETE FROM snapshots WHERE id=?", (target,))
    db.commit()
    db.close()
    code, report = verify(bcli)
    assert code == 1 and (target, "unindexed-capture") in kinds(report)
    r = bcli("repair")
    assert r.code == 0 and "re-indexed 1 signed snapshot(s)" in r.out
    code, report = verify(bcli)
    assert code == 0, report["problems"]


def test_records_removed_from_warc_are_caught(site, bcli):
    urls = build(site, bcli)
    target = snapshot_ids(bcli, urls[1])[0]
    db = bcli.db()
    ids = {r[0] for r in db.execute("SELECT record_id FROM records WHERE snapshot_id=?", (target,))}
    db.close()
    with bcli.warcs() as paths:
        for path in paths:
            rewrite_warc(path, lambda h, b: None if h.get("WARC-Record-ID") in ids else (h, b))
    code, report = verify(bcli)
    assert code == 1
    assert (target, "missing-record") in kinds(report) and (target, "manifest-missing") in kinds(report)


def test_warc_cut_short_is_caught(site, cli):
    urls = build(site, cli, n_urls=1)
    path = warc_files(cli.data_dir)[-1]
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])
    code, report = verify(cli)
    assert code == 1
    found = kinds(report)
    assert (None, "torn-file") in found
    last = snapshot_ids(cli, urls[0])[-1]
    assert (last, "manifest-missing") in found or (last, "missing-record") in found


def test_removal_of_newest_entries_is_caught_with_since(site, cli, tmp_path):
    build(site, cli, n_urls=2, versions=2)
    published = tmp_path / "checkpoint.txt"
    published.write_text(cli("checkpoint").out)
    assert verify(cli, "--since", str(published))[0] == 0
    # The operator quietly drops the two newest snapshots and their log entries.
    db = sqlite3.connect(cli.data_dir / "index.sqlite3")
    newest = [r[0] for r in db.execute("SELECT id FROM snapshots ORDER BY log_index DESC LIMIT 2")]
    for sid in newest:
        db.execute("DELETE FROM records WHERE snapshot_id=?", (sid,))
        db.execute("DELETE FROM snapshots WHERE id=?", (sid,))
    db.execute("DELETE FROM log_leaves WHERE idx >= 2")
    db.execute("DELETE FROM log_nodes WHERE (idx + 1) * (1 << level) > 2")
    db.execute("DELETE FROM checkpoints WHERE size > 2")
    db.commit()
    # The index keeps only the checkpoints that matter (the published one was
    # of size 4): the operator, who holds the key, signs one for size 2.
    resign_checkpoint(cli.data_dir, db, published.read_text().splitlines()[0])
    db.close()
    ids = set()
    for path in warc_files(cli.data_dir):
        for m in iter_members(path):
            rec = parse_record(m.data)
            fields = manifest_fields(rec)
            if fields and fields["manifest"]["snapshot_id"] in newest:
                ids |= {r["record_id"] for r in fields["manifest"]["records"]} | {rec.record_id}
    for path in warc_files(cli.data_dir):  # and the capture intents naming those records
        for m in iter_members(path):
            rec = parse_record(m.data)
            intent = intent_document(rec)
            if intent and {r["record_id"] for r in intent["intent"]["records"]} & ids:
                ids.add(rec.record_id)
    for path in warc_files(cli.data_dir):
        rewrite_warc(path, lambda h, b: None if h.get("WARC-Record-ID") in ids else (h, b))
    # The tree head the signer kept in keys/ catches it on this machine ...
    code, report = verify(cli)
    assert code == 1 and kinds(report) == {(None, "tree-head")}, report["problems"]
    # ... but the operator holds keys/ too: with the head moved aside (or on an
    # auditor's copy without keys/) and no published checkpoint, it looks whole ...
    (cli.data_dir / "keys" / "tree-head.json").rename(tmp_path / "tree-head.json")
    code, report = verify(cli)
    assert code == 0, report["problems"]
    # ... the earlier checkpoint proves entries were removed.
    code, report = verify(cli, "--since", str(published))
    assert code == 1 and (None, "not-append-only") in kinds(report)
    assert "fewer than the 4" in report["problems"][0]["detail"]


def test_archive_resigned_with_new_key_is_rejected_with_public_key(site, cli, tmp_path):
    build(site, cli)
    pinned = tmp_path / "archive-key.pem"
    assert cli("keys", "export-public", str(pinned)).code == 0
    assert verify(cli, "--public-key", str(pinned))[0] == 0
    # A forger replaces the keys and re-signs every manifest and the checkpoint.
    resign(cli.data_dir)
    assert verify(cli)[0] == 0, "the re-signed archive is self-consistent"
    code, report = verify(cli, "--public-key", str(pinned))
    assert code == 1
    assert {p["kind"] for p in report["problems"]} >= {"untrusted-key", "checkpoint"}
    assert sum(p["kind"] == "untrusted-key" for p in report["problems"]) == 4


def resign_checkpoint(data_dir: Path, db: sqlite3.Connection, origin: str) -> None:
    """Sign a checkpoint for the log as it now stands, with the archive's own key."""
    from datetime import datetime, timezone

    from archiver.provenance.keys import KeyStore
    from archiver.provenance.log import MerkleLog

    keys = KeyStore(data_dir / "keys", keyring_path=data_dir / "keyring.json", clock=lambda: datetime.now(timezone.utc))
    db.isolation_level = None
    db.execute("BEGIN IMMEDIATE")
    MerkleLog(db).checkpoint(origin, keys.signer(), datetime.now(timezone.utc))
    db.execute("COMMIT")


def repoint_index(data_dir: Path, db: sqlite3.Connection) -> None:
    """Re-point the index's rows at the records where rewritten WARC files now hold them."""
    for path in warc_files(data_dir):
        for m in iter_members(path):
            rec = parse_record(m.data)
            db.execute("UPDATE records SET warc_offset=?, warc_length=?, digest=? WHERE record_id=?",
                       (m.offset, m.length, bytes.fromhex(m.sha256), rec.record_id))
    db.execute("UPDATE snapshots SET warc_offset=(SELECT warc_offset FROM records WHERE record_id=response_record_id)")


def resign(data_dir: Path) -> None:
    from datetime import datetime, timezone

    from archiver.canonical import canonical_json
    from archiver.provenance.keys import KeyStore
    from archiver.provenance.leaves import leaf_data
    from archiver.provenance.log import MerkleLog

    shutil.rmtree(data_dir / "keys")
    (data_dir / "keyring.json").unlink()
    keys = KeyStore(data_dir / "keys", keyring_path=data_dir / "keyring.json",
                    clock=lambda: datetime(2020, 1, 1, tzinfo=timezone.utc))
    signer = keys.signer()
    db = sqlite3.connect(data_dir / "index.sqlite3")
    leaves: dict[int, tuple[bytes, str]] = {}  # a leaf holds its manifest's signature: the log is rebuilt too

    def swap(h, b):  # the manifests are in the WARC (the index keeps their digests): re-sign each there
        if h.get("WARC-Type") == "metadata" and h.get("Content-Type") == "application/json":
            fields = json.loads(b)
            sig = base64.b64encode(signer.sign(canonical_json(fields["manifest"]))).decode()
            fields["signature"], fields["key_id"] = sig, signer.key_id
            leaves[fields["manifest"]["log"]["index"]] = (
                leaf_data(fields["manifest"], fields["manifest_sha256"], sig, signer.key_id), fields["manifest"]["snapshot_id"])
            db.execute("UPDATE snapshots SET signature=?, key_id=? WHERE id=?",
                       (sig, signer.key_id, fields["manifest"]["snapshot_id"]))
            return h, json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
        return h, b

    for path in warc_files(data_dir):
        rewrite_warc(path, swap)
    repoint_index(data_dir, db)
    db.execute("DELETE FROM checkpoints")
    db.execute("DELETE FROM log_leaves")
    db.execute("DELETE FROM log_nodes")
    db.commit()
    db.isolation_level = None
    db.execute("BEGIN IMMEDIATE")
    forged = MerkleLog(db)
    for index in sorted(leaves):
        forged.append(*leaves[index])
    MerkleLog(db).checkpoint(db.execute("SELECT note FROM checkpoints").fetchone() or "archiver/forged", signer,
                             datetime.now(timezone.utc))
    db.execute("COMMIT")
    db.close()


def test_snapshot_killed_mid_write_leaves_a_repairable_archive(site, cli, tmp_path):
    """SIGKILL a bulk snapshot while it writes; the WARCs still read, the index
    is consistent with them, and `repair` restores a verifying archive."""
    body = article_html("Langer Bericht", ["Absatz mit Zahlen: 12.345 Einträge. " * 400])
    urls = [site.page(f"/k{i}", body.replace("Langer", f"Langer {i}")) for i in range(200)]
    listing = tmp_path / "urls.txt"
    listing.write_text("\n".join(urls))
    proc = cli.popen("snapshot", "-i", str(listing), "--workers", "4")
    db_path = cli.data_dir / "index.sqlite3"
    deadline = time.monotonic() + 60
    count = 0
    while time.monotonic() < deadline:
        if db_path.exists():
            try:
                with sqlite3.connect(db_path, timeout=1) as db:
                    count = db.execute("SELECT COUNT(*) FROM snapshots").fetchone()[0]
            except sqlite3.Error:
                count = 0
            if count >= 10:
                break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    proc.stdout.close()
    proc.stderr.close()
    assert count >= 10, "the capture process never got going"
    # Every committed snapshot is readable right away, before any repair.
    ids = [r[0] for r in sqlite3.connect(db_path).execute("SELECT url FROM snapshots")]
    for url in ids[:5]:
        assert cli("show", url, "--text").code == 0
    r = cli("repair")
    assert r.code == 0, r.err
    code, report = verify(cli)
    assert code == 0, report["problems"]
    check = subprocess.run([sys.executable, "-m", "warcio.cli", "check", *map(str, warc_files(cli.data_dir))],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout
    assert not any(p.name.endswith(".open") for p in warc_files(cli.data_dir))


def test_repair_commits_captures_whose_manifest_never_landed(site, bcli):
    """Records written, then the process died before signing: repair commits them."""
    from archiver.archive import Archive
    from archiver.capture.records import exchange_records
    url = site.page("/orphan", article_html("Nachricht", ["Es gab 42 Einsätze."]))
    with bcli.environ(), Archive(bcli.settings()) as archive:
        capture = archive.capturer.capture(url)
        archive.append_sealed(exchange_records(capture.final, archive.c.new_uuid))
    code, report = verify(bcli)
    assert code == 1 and "unindexed-capture" in {p["kind"] for p in report["problems"]}
    r = bcli("repair")
    assert "committed 1 unsigned capture(s)" in r.out
    code, report = verify(bcli)
    assert code == 0, report["problems"]
    assert "42 Einsätze" in bcli("show", url, "--text").out


def test_proofs_from_the_cli_check_against_the_published_checkpoint(site, bcli):
    from archiver.provenance.merkle import (
        hash_leaf,
        root_from_inclusion_proof,
        verify_consistency,
    )
    from archiver.provenance.notes import parse_checkpoint

    urls = build(site, bcli, n_urls=3, versions=1)
    early = parse_checkpoint(bcli("checkpoint").out.split("\n\n")[0] + "\n")
    build(site, bcli, n_urls=3, versions=2)
    late = parse_checkpoint(bcli("checkpoint").out.split("\n\n")[0] + "\n")
    doc = bcli("proof", urls[1], "--at", snapshot_ids(bcli, urls[1])[0]).json()
    data = base64.b64decode(doc["leaf_data"])  # the manifest's digest, its Ed25519 signature, the key's id
    assert data[:32] == bytes.fromhex(doc["manifest_sha256"]) and len(data) > 96
    leaf = hash_leaf(data)
    assert base64.b64decode(doc["leaf_hash"]) == leaf
    proof = [base64.b64decode(h) for h in doc["proof"]]
    assert root_from_inclusion_proof(leaf, doc["leaf_index"], late.size, proof) == late.root
    cons = bcli("proof", "--consistency", str(early.size)).json()
    verify_consistency(early.size, late.size, [base64.b64decode(h) for h in cons["proof"]], early.root, late.root)
    r = bcli("proof", "--consistency", "0")
    assert r.code == 1 and r.err.count("\n") == 1


def test_verify_while_a_writer_runs_raises_no_false_alarm(site, cli, tmp_path):
    """An auditor may run verify at any time, also while captures are committing."""
    body = article_html("Laufend", ["Ein Absatz mit 1.234 Wörtern. " * 300])
    urls = [site.page(f"/w{i}", body.replace("Laufend", f"Laufend {i}")) for i in range(150)]
    listing = tmp_path / "urls.txt"
    listing.write_text("\n".join(urls))
    proc = cli.popen("snapshot", "-i", str(listing), "--workers", "4")
    try:
        db_path = cli.data_dir / "index.sqlite3"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (db_path.exists() and sqlite3.connect(db_path).execute(
                "SELECT COUNT(*) FROM sqlite_master WHERE name='snapshots'").fetchone()[0]):
            time.sleep(0.05)
        runs = 0
        while proc.poll() is None and runs < 3:
            code, report = verify(cli)
            assert code == 0, report["problems"]
            runs += 1
        assert runs >= 1, "the writer finished before verify could run alongside it"
    finally:
        proc.communicate(timeout=120)
    assert proc.returncode == 0
    code, report = verify(cli)
    assert code == 0 and report["checked"] == 150 and report["pending"] == 0


def test_repair_relogs_a_capture_whose_log_index_was_taken(site, cli):
    """Process A signs a manifest at log index n and dies before its commit;
    process B then commits at index n. Repair signs A's capture again at the
    end of the log, and the archive verifies."""
    build(site, cli, n_urls=1, versions=1)
    url_a = site.page("/a", article_html("A", ["Es gab 11 Einsätze."]))
    state = index_state(cli.data_dir)
    assert cli("snapshot", url_a).code == 0
    sid = cli("history", url_a, "--json").json()[0]["id"]
    idx = lose_commit(cli.data_dir, sid, state)  # A's commit rolled back, as a crash before COMMIT would have
    url_b = site.page("/b", article_html("B", ["Es gab 12 Einsätze."]))
    assert cli("snapshot", url_b, "--json").lines()[0]["log_index"] == idx  # B takes A's index
    code, report = verify(cli)
    assert code == 1 and (sid, "unindexed-capture") in kinds(report)
    r = cli("repair")
    assert "re-indexed 1 signed snapshot(s)" in r.out
    code, report = verify(cli)
    assert code == 0, report["problems"]
    m = json.loads(cli("show", url_a, "--provenance").out)["manifest"]
    assert m["log"]["index"] == idx + 1 and m["relogged_from"]
    assert "11 Einsätze" in cli("show", url_a).out


def test_verify_urls_checks_only_their_snapshots(site, bcli):
    urls = build(site, bcli, n_urls=3, versions=2)
    code, report = verify(bcli, urls[0])
    assert code == 0 and report["checked"] == 2
    code, report = verify(bcli)
    assert code == 0 and report["checked"] == 6

"""What a machine's own keys/ vouches for: the key handed to auditors, and on
a shared archive the root key a worker pinned (real CLI; shared mode on real
PostgreSQL + SeaweedFS).

The keyring lives beside the index (``keyring.json``) or in it, writable by
someone who cannot read ``keys/``: neither the key an auditor pins
(``keys export-public``) nor what a worker takes over from another machine's
snapshot may rest on it."""

from __future__ import annotations

import json
import os
import stat
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from conftest import article_html
from test_unchanged_pages import PARAS, forge_text
from test_worker_keys import (  # noqa: F401
    _key_id,
    _keyring,
    _put_keyring,
    _rewritten_keyring,
    lost_worker_capture,
    machines,
)


def _evil_signer() -> tuple[Any, bytes]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from archiver.provenance.keyring import key_id_for
    from archiver.provenance.signatures import Signer

    key = Ed25519PrivateKey.generate()
    spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return Signer(key_id_for(spki), "evil", key), spki


def _pem_key_id(path: Path) -> str:
    from archiver.provenance.keyring import key_id_for
    from archiver.provenance.pinning import ed25519_spki_from_pem

    return key_id_for(ed25519_spki_from_pem(path.read_bytes(), str(path)))


def test_export_public_writes_this_machines_key_not_a_newer_keyring_entry(site, cli, tmp_path):
    """keyring.json is public and beside the index: someone who can write it
    adds a key of their own with a later start, which the keyring calls
    current. The key an auditor pins must be the one keys/ signs with."""
    from archiver.provenance.keyring import ED25519, KeyRecord, keyring_bytes, parse_keyring

    url = site.page("/a", article_html("Lage", PARAS))
    first = cli("snapshot", url, "--json")
    assert first.code == 0, first.err
    genuine = tmp_path / "genuine.pem"
    assert cli("keys", "export-public", str(genuine)).code == 0
    path = cli.data_dir / "keyring.json"
    records = parse_keyring(path.read_bytes(), str(path))
    evil, spki = _evil_signer()
    later = datetime.now(timezone.utc) + timedelta(minutes=1)
    path.write_bytes(keyring_bytes([*records, KeyRecord(evil.key_id, ED25519, spki, later, None, "archiver")]))

    exported = tmp_path / "exported.pem"
    r = cli("keys", "export-public", str(exported))
    assert r.code == 0, r.err
    assert _pem_key_id(exported) == _pem_key_id(genuine) != evil.key_id
    assert exported.read_bytes() == genuine.read_bytes()
    pinned = cli("verify", "--json", "--public-key", str(exported))
    assert pinned.code == 0, pinned.out


def test_a_worker_exports_only_a_pinned_root_and_pin_root_checks_its_file(site, machines, tmp_path):  # noqa: F811
    root, one, _ = machines
    url = site.page("/a", article_html("Lage", PARAS))
    assert root("snapshot", url).code == 0
    assert root("keys", "enroll", _key_id(one)).code == 0
    refused = one("keys", "export-public", str(tmp_path / "w.pem"))
    assert refused.code == 1 and "root key's machine" in refused.err and "Traceback" not in refused.err
    assert not (tmp_path / "w.pem").exists()

    bad = tmp_path / "bad.pem"
    bad.write_text("not a key\n")
    r = one("keys", "pin-root", str(bad))
    assert r.code == 1 and "one PEM public key" in r.err and len(r.err.strip().splitlines()) == 1
    assert root("keys", "pin-root", str(bad)).code == 2  # the root machine trusts its own key

    pem = tmp_path / "root.pem"
    assert root("keys", "export-public", str(pem)).code == 0
    r = one("keys", "pin-root", str(pem))
    assert r.code == 0 and _pem_key_id(pem) in r.out, r.err
    kept = one.data_dir / "keys" / "root-public.pem"
    assert stat.S_IMODE(os.lstat(kept).st_mode) == 0o600 and stat.S_ISREG(os.lstat(kept).st_mode)
    assert f"pinned root key: {_pem_key_id(pem)}" in one("keys", "show").out
    again = tmp_path / "again.pem"
    assert one("keys", "export-public", str(again)).code == 0 and again.read_bytes() == pem.read_bytes()

    os.unlink(kept)  # a symlink in keys/ is never followed
    os.symlink(pem, kept)
    r = one("keys", "export-public", str(again))
    assert r.code == 1 and "Traceback" not in r.err, r.err


def _worker_archive(worker: Any) -> Any:
    from archiver.archive import Archive

    return Archive(worker.settings())


def test_a_worker_with_the_root_pinned_vouches_for_the_root_machines_snapshot(site, machines, tmp_path):  # noqa: F811
    """A worker re-capturing a page another machine captured: without a pin it
    cannot tell an enrolled key from one an index writer planted, so it reads
    afresh; with the root pinned it checks the manifest against the keys that
    root enrolled -- and still refuses a row or text changed afterwards."""
    root, one, _ = machines
    url = site.page("/artikel", article_html("Stellen", PARAS))
    other = site.page("/anderer", article_html("Andere Stellen", PARAS))
    assert root("snapshot", url).code == 0 and root("snapshot", other).code == 0
    assert root("keys", "enroll", _key_id(one)).code == 0

    with one.environ(), _worker_archive(one) as archive:
        row = archive.index.last_snapshot(url)
        assert row is not None and archive.vouched(row) is None  # no pin: its own key only
    pem = tmp_path / "root.pem"
    assert root("keys", "export-public", str(pem)).code == 0
    assert one("keys", "pin-root", str(pem)).code == 0
    with one.environ(), _worker_archive(one) as archive:
        row = archive.index.last_snapshot(url)
        assert row is not None
        vouched = archive.vouched(row)
        assert vouched is not None and vouched.article is not None
        assert archive.signed_here.get(row.id) is not None  # checked once, remembered
        second = archive.snapshot(url)
        assert second.row.text_sha256 == row.text_sha256 and second.row.significance == "none"
        assert second.row.key_id == _key_id(one)
    with one.environ(), _worker_archive(one) as archive:
        genuine = archive.index.last_snapshot(other)
    forge_text(root, other, row_too=True)
    with one.environ(), _worker_archive(one) as archive:
        forged = archive.index.last_snapshot(other)
        assert genuine is not None and forged is not None
        assert forged.id == genuine.id and forged.text_sha256 != genuine.text_sha256
        assert archive.vouched(forged) is None


def test_a_root_an_index_writer_plants_is_not_what_a_pinned_worker_trusts(site, machines, tmp_path):  # noqa: F811
    """The index writer puts a root key of their own first, with a worker key
    it endorsed: a worker that pinned the genuine root trusts neither, and
    still knows its own enrolment (unpinned, the keyring's first root entry
    decided it). With every endorsement replaced, it refuses to sign."""
    root, one, _ = machines
    url = site.page("/a", article_html("Lage", PARAS))
    assert root("snapshot", url).code == 0
    assert root("keys", "enroll", _key_id(one)).code == 0
    pem = tmp_path / "root.pem"
    assert root("keys", "export-public", str(pem)).code == 0
    assert one("keys", "pin-root", str(pem)).code == 0
    from archiver.provenance.enrolment import ROOT, WORKER, endorse_key
    from archiver.provenance.keyring import ED25519, KeyRecord, keyring_bytes, parse_keyring

    genuine = _keyring(root)
    evil, spki = _evil_signer()
    helper, helper_spki = _evil_signer()
    now = datetime.now(timezone.utc) - timedelta(hours=1)
    planted = [endorse_key(KeyRecord(evil.key_id, ED25519, spki, now, None, "evil", role=ROOT), evil, now),
               endorse_key(KeyRecord(helper.key_id, ED25519, helper_spki, now, None, "w9", role=WORKER), evil, now)]
    records = parse_keyring(json.dumps(genuine), "index")
    _put_keyring(root, json.loads(keyring_bytes([*planted, *records])))  # a root of theirs first, and its worker
    with one.environ(), _worker_archive(one) as archive:
        ring = archive.own_ring()
        assert ring.find(evil.key_id) is None and ring.find(helper.key_id) is None
        assert ring.find(_key_id(one)) is not None and ring.find(_pem_key_id(pem)) is not None
    assert one("snapshot", url).code == 0  # enrolled by the pinned root: it signs (unpinned, it would not)
    _put_keyring(root, _rewritten_keyring(genuine, evil, spki, now))  # every endorsement replaced by theirs
    refused = one("snapshot", url)  # its genuine enrolment is gone: it signs nothing under the planted root
    assert refused.code == 1 and "not enrolled" in refused.err and "Traceback" not in refused.err


def test_a_pinned_worker_commits_what_another_worker_left(site, machines, monkeypatch, tmp_path):  # noqa: F811
    """Without a pin a worker defers another worker's lost capture to the root
    machine; with the root pinned it can check that key's enrolment and
    commits it itself."""
    root, one, _ = machines
    url = lost_worker_capture(site, machines, monkeypatch)
    pem = tmp_path / "root.pem"
    assert root("keys", "export-public", str(pem)).code == 0
    assert one("keys", "pin-root", str(pem)).code == 0
    done = one("repair", "--json")
    assert done.code == 0, done.err
    assert done.json()["deferred"] == [] and len(done.json()["reindexed"]) == 1, done.json()
    assert len(root("history", url, "--json").json()) == 2
    v = root("verify", "--json")
    assert v.json()["ok"], json.dumps(v.json()["problems"])


def test_plain_verify_on_a_pinned_worker_anchors_on_the_pinned_root(site, machines, tmp_path):  # noqa: F811
    """Plain `verify` trusts the keyring's first root entry, which an index
    writer can replace; on a worker that pinned the root it anchors there, as
    `verify --public-key` does."""
    from archiver.provenance.enrolment import ROOT, endorse_key
    from archiver.provenance.keyring import ED25519, KeyRecord, keyring_bytes, parse_keyring

    root, one, two = machines
    url = site.page("/a", article_html("Lage", PARAS))
    assert root("snapshot", url).code == 0
    assert root("keys", "enroll", _key_id(one)).code == 0
    assert one("snapshot", url).code == 0
    pem = tmp_path / "root.pem"
    assert root("keys", "export-public", str(pem)).code == 0
    assert one("keys", "pin-root", str(pem)).code == 0
    evil, spki = _evil_signer()
    now = datetime.now(timezone.utc) - timedelta(hours=1)
    planted = endorse_key(KeyRecord(evil.key_id, ED25519, spki, now, None, "evil", role=ROOT), evil, now)
    _put_keyring(root, json.loads(keyring_bytes([planted, *parse_keyring(json.dumps(_keyring(root)), "index")])))
    unpinned = two("verify", "--json")  # anchored on the planted root: the genuine signatures fail
    assert unpinned.code == 1 and not unpinned.json()["ok"]
    pinned = one("verify", "--json")
    assert pinned.code == 0 and pinned.json()["ok"] and pinned.json()["checked"] == 2, pinned.out
    assert one("verify", "--json", "--public-key", str(pem)).json()["ok"]


def test_export_public_after_rotations_pins_the_whole_history_in_one_file(site, cli, tmp_path):
    """A rotation retires the signing key; keys/ keeps its public half, so one
    export pins every key this archive signed with (before, an auditor had to
    have exported before each rotation)."""
    from archiver.provenance.pinning import pem_of, public_key_ders

    url = site.page("/k", article_html("Schlüssel", ["Vorher: 10 Teilnehmer."]))
    assert cli("snapshot", url).code == 0
    for n in (12, 14):
        assert cli("keys", "rotate").code == 0
        site.page("/k", article_html("Schlüssel", [f"Nachher: {n} Teilnehmer."]))
        assert cli("snapshot", url).code == 0
    pem = tmp_path / "all.pem"
    r = cli("keys", "export-public", str(pem))
    assert r.code == 0, r.err
    blocks = [pem_of(der) for der in public_key_ders(pem.read_bytes(), str(pem))]
    assert len(blocks) == 3 and len(set(blocks)) == 3
    kept = cli.data_dir / "keys" / "previous-public.pem"
    assert stat.S_IMODE(os.lstat(kept).st_mode) == 0o600
    v = cli("verify", "--json", "--public-key", str(pem))
    assert v.code == 0 and v.json()["checked"] == 3, v.out
    only_current = tmp_path / "current.pem"
    only_current.write_bytes(blocks[0])  # the current key first: alone it leaves the older snapshots untrusted
    r = cli("verify", "--json", "--public-key", str(only_current))
    assert r.code == 1 and "untrusted-key" in {p["kind"] for p in r.json()["problems"]}


def test_a_rotated_root_machine_still_trusts_the_workers_its_old_root_enrolled(site, machines, tmp_path):  # noqa: F811
    root, one, _ = machines
    url = site.page("/a", article_html("Lage", PARAS))
    assert root("snapshot", url).code == 0
    assert root("keys", "enroll", _key_id(one)).code == 0
    assert one("snapshot", url).code == 0
    assert root("keys", "rotate").code == 0
    with root.environ(), _worker_archive(root) as archive:
        ring = archive.own_ring()
        assert ring.find(_key_id(one)) is not None  # enrolled by the root key this machine held before
    pem = tmp_path / "roots.pem"
    assert root("keys", "export-public", str(pem)).code == 0
    v = root("verify", "--json", "--public-key", str(pem))
    assert v.code == 0 and v.json()["ok"], v.out
    # Unpinned, the first root key is the anchor and the chain of endorsements
    # leads to the new one: the old root endorsed it while it was still valid.
    v = root("verify", "--json")
    assert v.code == 0 and v.json()["ok"], v.out


def test_a_given_public_key_is_read_as_openssl_reads_it():
    """pinning.ed25519_spki checks the one DER form without OpenSSL (it loaded
    and re-encoded the key before): what pin-root and ``verify --public-key``
    accept, and the bytes they pin, must stay OpenSSL's verdict -- other key
    types and other encodings of an Ed25519 key refused."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from archiver.errors import SigningError
    from archiver.provenance.pinning import ed25519_spki

    def spki(key: Any) -> bytes:
        return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

    raw = os.urandom(32)
    for der in (bytes.fromhex("302a300506032b6570032100") + raw,
                bytes.fromhex("302c300706032b65700500032100") + raw,  # a NULL parameter
                bytes.fromhex("30812a300506032b6570032100") + raw,  # a long-form length
                bytes.fromhex("302a300506032b6570032100") + raw + b"\0",  # trailing bytes
                bytes.fromhex("302a300506032b6570032101") + raw,  # unused bits in the key's BIT STRING
                spki(rsa.generate_private_key(65537, 2048)), spki(ec.generate_private_key(ec.SECP384R1())),
                os.urandom(44), b""):
        try:
            key = serialization.load_der_public_key(der)
            openssl = (key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
                       if isinstance(key, Ed25519PublicKey) else None)
        except ValueError:
            openssl = None
        try:
            ours: bytes | None = ed25519_spki(der, "k.pem")
        except SigningError:
            ours = None
        assert ours == openssl, der.hex()

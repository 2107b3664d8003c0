"""Per-worker keys on a shared archive (real PostgreSQL + SeaweedFS): each
machine makes its own key, the root key's machine enrols it, and verify
trusts exactly the enrolled keys within their windows."""

from __future__ import annotations

import json
import os
import socket
import stat
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from conftest import CLI, _base_env, article_html, migrate_to_shared, shared_env


@pytest.fixture
def machines(tmp_path: Path, pg_server: Any, s3_server: Any) -> tuple[CLI, CLI, CLI]:
    """Three machines on one shared archive: the root key's, and two workers."""
    env = {**_base_env(tmp_path), **shared_env(pg_server, s3_server)}
    root = CLI(tmp_path / "root", env, "shared")
    one = CLI(tmp_path / "w1", {**env, "ARCHIVER_SIGNING_ROLE": "worker"}, "shared")
    two = CLI(tmp_path / "w2", {**env, "ARCHIVER_SIGNING_ROLE": "worker"}, "shared")
    return root, one, two


def _key_id(cli: CLI) -> str:
    """The worker's own key id, as `keys show` marks it (or names it while pending)."""
    r = cli("keys", "show")
    assert r.code == 0, r.err
    if "enroll " in r.err:
        return r.err.split("archiver keys enroll ")[1].split("`")[0]
    return next(line.split()[0] for line in r.out.splitlines() if "this machine" in line)


def _keyring(cli: CLI) -> dict[str, Any]:
    db = cli.db()
    try:
        row = db.execute("SELECT value FROM meta WHERE key='keyring'").fetchone()
    finally:
        db.close()
    return json.loads(row[0])


def _put_keyring(cli: CLI, doc: dict[str, Any]) -> None:
    db = cli.db()
    try:
        db.execute("UPDATE meta SET value=? WHERE key='keyring'", (json.dumps(doc),))
        db.commit()
    finally:
        db.close()


def _problems(cli: CLI) -> list[dict[str, Any]]:
    v = cli("verify", "--json")
    assert v.code == 1, v.out
    return v.json()["problems"]


def test_a_worker_signs_only_once_the_root_key_enrolled_it(site, machines, tmp_path, monkeypatch):
    root, one, two = machines
    url = site.page("/a", article_html("Lage", ["Es kamen 50.000 Menschen."]))
    assert root("snapshot", url).code == 0  # the first root machine registers the root key
    first_origin = root("checkpoint", "--json").json()["origin"]

    refused = one("snapshot", url)
    kid = _key_id(one)
    assert refused.code == 1 and "not enrolled" in refused.err and kid in refused.err, refused.err
    assert "Traceback" not in refused.err
    shown = one("keys", "show").out
    assert "pending enrolment" in shown and "worker-" in shown

    assert root("keys", "enroll", kid[:20]).code == 0
    again = root("keys", "enroll", kid)
    assert again.code == 1 and "already enrolled" in again.err
    site.page("/a", article_html("Lage", ["Es kamen 80.000 Menschen."]))
    monkeypatch.setattr(socket, "gethostname", lambda: "elsewhere")  # another machine
    signed = one("snapshot", "--json", url)
    monkeypatch.undo()
    assert signed.code == 0, signed.err
    assert signed.json()["significance"] == "substantive"
    assert root("history", "--json", url).json()[-1]["id"] == signed.json()["id"]

    # Its private key stayed on its machine: 0600 in a 0700 dir, and nowhere in the index.
    keys_dir = one.data_dir / "keys"
    assert stat.S_IMODE(os.stat(keys_dir).st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in keys_dir.glob("*.pem"))
    assert "PRIVATE" not in json.dumps(_keyring(root))
    assert not (one.data_dir / "keyring.json").exists()
    # The second worker's key is another key.
    assert _key_id(two) != kid

    # Every machine verifies; an auditor pins only the root key.
    for machine in (root, one, two):
        v = machine("verify", "--json")
        assert v.code == 0 and v.json()["checked"] == 2, v.out
    pem = tmp_path / "root.pem"
    assert root("keys", "export-public", str(pem)).code == 0
    pinned = one("verify", "--json", "--public-key", str(pem))
    assert pinned.code == 0, pinned.out
    cp = one("checkpoint", "--json").json()
    assert cp["vkey"].startswith("worker-")  # the appending worker signed this checkpoint
    assert cp["origin"] == first_origin  # one log, one origin, whichever machine appends
    proof = two("proof", url)
    assert proof.code == 0, proof.err

    # A WACZ from a worker checks out against the pinned root key.
    wacz = tmp_path / "a.wacz"
    unpinned = one("export", url, "--wacz", str(wacz))  # a worker's readers anchor on keys/: no root pinned here
    assert unpinned.code == 1 and "pin-root" in unpinned.err, unpinned.err
    assert one("export", url, "--wacz", str(wacz), "--public-key", str(pem)).code == 0
    checked = root("verify", "--wacz", str(wacz), "--public-key", str(pem), "--json")
    assert checked.code == 0, checked.out


def test_a_key_row_injected_without_a_valid_endorsement_vouches_for_nothing(site, machines, monkeypatch):
    """Someone with write access to the database (not the root key) marks a
    worker key as enrolled; the worker refuses to sign, and a manifest made
    by a modified worker that signs anyway fails verify."""
    import base64

    from archiver.provenance import keys as keys_module
    from archiver.provenance.signatures import Signer

    root, one, _ = machines
    url = site.page("/b", article_html("Lage", ["Es kamen 50.000 Menschen."]))
    assert root("snapshot", url).code == 0
    kid = _key_id(one)
    doc = _keyring(root)
    rootkey = next(k for k in doc["keys"] if k.get("role") == "root")
    entry = next(k for k in doc["keys"] if k["key_id"] == kid)
    entry["endorsement"] = {"by": rootkey["key_id"], "signed_at": entry["valid_from"], "valid_until": None,
                            "signature": base64.b64encode(b"\0" * 64).decode()}
    _put_keyring(root, doc)
    refused = one("snapshot", url)
    assert refused.code == 1 and "not enrolled" in refused.err, refused.err

    # A modified worker signs with its key anyway.
    real_register = keys_module.KeyStore._register
    monkeypatch.setattr(keys_module.KeyStore, "_register",
                        lambda self, *a: (real_register(self, *a)[0], False, None))
    site.page("/b", article_html("Lage", ["Es kamen 90.000 Menschen."]))
    assert one("snapshot", url).code == 0
    monkeypatch.undo()
    assert isinstance(Signer, type)
    kinds = {(p["kind"], p["snapshot"] is None) for p in _problems(root)}
    assert ("keyring", True) in kinds  # the forged endorsement is named
    assert ("bad-signature", False) in kinds  # the manifest of the unenrolled key
    details = " ".join(p["detail"] for p in _problems(root))
    assert kid[:16] in details


def test_a_worker_key_outside_its_window_is_rejected(site, machines, monkeypatch):
    """Enrolled until a time: the worker stops signing then, and a manifest
    a modified worker signs afterwards fails verify; a retired key likewise."""
    from archiver.provenance import keys as keys_module

    root, one, two = machines
    url = site.page("/c", article_html("Lage", ["Es kamen 50.000 Menschen."]))
    assert root("snapshot", url).code == 0
    # Long enough for enrol + one capture on a loaded machine (3 s was not).
    until = datetime.now(timezone.utc) + timedelta(seconds=10)
    kid = _key_id(one)
    assert root("keys", "enroll", kid, "--until", until.isoformat()).code == 0
    site.page("/c", article_html("Lage", ["Es kamen 60.000 Menschen."]))
    assert one("snapshot", url).code == 0  # inside the window
    time.sleep(max(0.0, (until - datetime.now(timezone.utc)).total_seconds()) + 0.2)
    late = one("snapshot", url)
    assert late.code == 1 and "valid until" in late.err, late.err
    assert root("verify", "--json").code == 0

    # A retired key: the root machine ends the second worker's window.
    kid2 = _key_id(two)
    assert root("keys", "enroll", kid2).code == 0
    site.page("/c", article_html("Lage", ["Es kamen 70.000 Menschen."]))
    assert two("snapshot", url).code == 0
    first = root("keys", "retire", kid2)
    assert first.code == 0 and "its window closed at" in first.out, first.err
    again = root("keys", "retire", kid2)  # an incident script run twice: the window stays where it was closed
    assert again.code == 0 and again.out == first.out, (again.out, again.err)
    refused = two("snapshot", url)
    assert refused.code == 1 and "retired" in refused.err, refused.err
    assert root("verify", "--json").code == 0  # what it signed inside its window still holds

    # A modified first worker signs after its window ended.
    real_register = keys_module.KeyStore._register
    monkeypatch.setattr(keys_module.KeyStore, "_register",
                        lambda self, *a: (real_register(self, *a)[0], False, None))
    site.page("/c", article_html("Lage", ["Es kamen 99.000 Menschen."]))
    assert one("snapshot", url).code == 0
    monkeypatch.undo()
    bad = [p for p in _problems(root) if p["kind"] == "bad-signature"]
    assert len(bad) == 1 and "was not valid at" in bad[0]["detail"], bad


def test_only_one_root_key_and_a_migrated_archive_keeps_its_rotated_keys(site, cli, pg_server, s3_server, tmp_path):
    """A second machine that believes it holds the root key is refused; an
    embedded archive migrated to shared mode imports its keyring (rotated keys
    included) under the root key, and keeps verifying as it grows."""
    url = site.page("/m", article_html("Lage", ["Es kamen 50.000 Menschen."]))
    assert cli("snapshot", url).code == 0
    assert cli("keys", "rotate").code == 0
    site.page("/m", article_html("Lage", ["Es kamen 60.000 Menschen."]))
    assert cli("snapshot", url).code == 0
    env = shared_env(pg_server, s3_server)
    r = migrate_to_shared(cli, env)
    assert r.code == 0, r.out + r.err
    shared = CLI(cli.data_dir, {**cli.env, **env}, "shared")
    site.page("/m", article_html("Lage", ["Es kamen 70.000 Menschen."]))
    assert shared("snapshot", url).code == 0  # registers the root key, importing keyring.json
    ring = _keyring(shared)["keys"]
    assert sum(1 for k in ring if k.get("role") == "root") == 1
    assert sum(1 for k in ring if k["algorithm"] == "ed25519") == 2
    v = shared("verify", "--json")
    assert v.code == 0 and v.json()["checked"] == 3, v.out

    other = CLI(tmp_path / "other-root", {**cli.env, **env}, "shared")
    refused = other("snapshot", url)
    assert refused.code == 1 and 'role = "worker"' in refused.err, refused.err


def _rewritten_keyring(doc: dict[str, Any], signer: Any, spki: bytes, now: datetime) -> dict[str, Any]:
    """The shared keyring as someone with database access (not a key file) rewrites
    it: a root key of their own first, which endorses itself and every other key."""
    from dataclasses import replace

    from archiver.provenance.enrolment import ROOT, endorse_key
    from archiver.provenance.keyring import ED25519, KeyRecord, keyring_bytes, parse_keyring

    evil_root = endorse_key(KeyRecord(signer.key_id, ED25519, spki, now, None, "evil", role=ROOT), signer, now)
    records = [endorse_key(replace(r, endorsement=None), signer, now) if r.algorithm == ED25519 else r
               for r in parse_keyring(json.dumps(doc), "index")]
    return json.loads(keyring_bytes([evil_root, *records]))


def test_repair_signs_nothing_a_keyring_rewritten_in_the_index_vouches_for(site, machines):
    """Whoever can write the index and the object store (not a machine's keys/)
    puts a root key of their own first in the shared keyring, endorses every
    key with it, and leaves a forged exchange with an intent their key signed.
    Repair trusted the keyring's first root entry, so it committed the forgery
    under the machine's genuine key -- on the root machine and on a worker."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from archiver.provenance.intent import INTENT_CONTENT_TYPE, sign_intent
    from archiver.provenance.keyring import key_id_for
    from archiver.provenance.signatures import Signer
    from test_trust_repair import FORGED, append, forged_pair, metadata

    root, one, _ = machines
    url = site.page("/a", article_html("Lage", ["Es kamen 50.000 Menschen."]))
    assert root("snapshot", url).code == 0
    assert root("keys", "enroll", _key_id(one)).code == 0
    assert one("snapshot", url).code == 0
    pinned = root.data_dir / "root.pem"  # the auditor's copy of the root key, taken before the attack
    assert root("keys", "export-public", str(pinned)).code == 0

    key = Ed25519PrivateKey.generate()
    spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    evil = Signer(key_id_for(spki), "evil", key)
    now = datetime.now(timezone.utc) - timedelta(hours=1)
    _put_keyring(root, _rewritten_keyring(_keyring(root), evil, spki, now))
    pair, names = forged_pair(url)
    intent = sign_intent([(n["record_id"], n["sha256"]) for n in names], evil, datetime.now(timezone.utc))  # not overtaken
    with one.warcs() as paths:
        append(paths[-1], pair + [metadata(url, intent.to_json(), INTENT_CONTENT_TYPE)])

    for machine in (one, root):  # a worker (it vouches for its own key only), then the root machine
        r = machine("repair", "--full", "--json")
        assert r.code == 0 and "internal error" not in r.err, r.err
        assert r.json()["recommitted"] == [] and r.json()["foreign"] == [], r.json()
        (left,) = r.json()["deferred"]  # listed, but by no key this machine vouches for: reported, never signed
        assert "capture intent does not verify" in left["reason"] and left["type"] == "metadata"
        assert len(root("history", url, "--json").json()) == 2
        assert FORGED.split()[3] not in root("show", url).out
    problems = root("verify", "--json", "--public-key", str(pinned)).json()["problems"]
    assert "foreign-record" in {p["kind"] for p in problems}, problems  # the forgery (and the keys it re-endorsed)


def lost_worker_capture(site: Any, machines: tuple[CLI, CLI, CLI], monkeypatch: pytest.MonkeyPatch) -> str:
    """The root machine captures a page and enrols both workers; the second
    worker's next capture of it loses its commit after its records and signed
    manifest were stored. Returns the page's URL."""
    from archiver.archive import Archive
    from store.errors import StoreError

    root, one, two = machines
    url = site.page("/a", article_html("Lage", ["Es kamen 50.000 Menschen."]))
    assert root("snapshot", url).code == 0
    for worker in (one, two):
        assert root("keys", "enroll", _key_id(worker)).code == 0
    with two.environ(), Archive(two.settings()) as archive:
        def lost(*args: Any, **kwargs: Any) -> None:
            raise StoreError("the index went away mid-commit")

        monkeypatch.setattr(type(archive.index), "insert_snapshot", lost)
        with pytest.raises(StoreError):
            archive.snapshot(url)
    monkeypatch.undo()
    return url


def test_a_capture_a_worker_leaves_for_the_root_machine_is_committed_by_its_repair(site, machines, monkeypatch):
    """A worker's commit is lost after its records and its signed manifest were
    stored (two objects). Another worker's repair cannot vouch for that key and
    defers the capture; it must leave the records' object unsettled as well as
    the manifest's, or the root machine's repair skips it, cannot find the
    records, and the signed capture never reaches the index."""
    root, one, two = machines
    url = lost_worker_capture(site, machines, monkeypatch)
    assert len(root("history", url, "--json").json()) == 1
    left = one("repair", "--json")
    assert left.code == 0, left.err
    assert len(left.json()["deferred"]) == 1 and len(root("history", url, "--json").json()) == 1
    done = root("repair", "--json")
    assert done.code == 0, done.err
    assert len(done.json()["reindexed"]) == 1, done.json()
    assert len(root("history", url, "--json").json()) == 2
    assert root("verify", "--json").json()["ok"]

"""Readers show only what is signed: every evidence path ends at a signature.

The attacker of the threat model can write the index, the object store and
the data directory, not ``keys/``. They write a snapshot's row, its text and
a manifest record together -- the manifest unsigned (a junk signature under
the archive's key id) or signed by a key of their own that they add to
``keyring.json``. Every digest then agrees; only the signature tells. No
reader may show it: ``show`` (text, HTML, JSON, provenance), ``history``,
``diff``, the web desk's pages, Memento, the feeds and the WACZ export.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import requests

from archiver.canonical import canonical_json, sha256_hex
from conftest import article_html
from test_trust_repair import member
from test_worker_keys import _key_id, machines  # noqa: F401 - fixture

FORGED_LINE = "Es kamen 90.000 Menschen."


def _snapshots(cli: Any, url: str) -> list[str]:
    first = cli("snapshot", url, "--json")
    assert first.code == 0, first.err
    return [h["id"] for h in cli("history", url, "--json").json()]


def _planted_key(cli: Any) -> tuple[str, Any]:
    """A key of the attacker's own, added to the archive's keyring.json (embedded)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from archiver.provenance.keyring import ED25519, KeyRecord, Keyring, _spki, key_id_for

    key = Ed25519PrivateKey.generate()
    spki = _spki(key)
    ring = Keyring(cli.data_dir / "keyring.json").load()
    record = KeyRecord(key_id_for(spki), ED25519, spki, datetime(2000, 1, 1, tzinfo=timezone.utc), None, "archiver")
    ring.save([*ring.keys, record])
    return record.key_id, key


def forge(cli: Any, url: str, snapshot_id: str, how: str, *reader: str, **changes: Any) -> dict[str, Any]:
    """Rewrite ``snapshot_id``: a new article text (``FORGED_LINE``), a manifest
    stating it (``changes`` too) appended to a WARC file, the row and its
    manifest record's location pointing at them. ``how``: "unsigned" (a junk
    signature under the archive's key id) or "own key" (signed by a key the
    attacker planted in keyring.json). ``reader``: options the forger's own
    ``show`` needs (``--public-key``). Returns the forged manifest document."""
    from archiver.capture.records import manifest_uri
    from archiver.changes.extract import Article
    from store.compact import pack

    real = cli("show", url, "--at", snapshot_id, "--provenance", *reader)
    assert real.code == 0, real.err
    real = real.json()
    article = {"title": "Bericht", "blocks": [FORGED_LINE], "language": "de", "method": "trafilatura"}
    text_sha = hashlib.sha256(Article.from_json(article).text().encode()).hexdigest()
    manifest = copy.deepcopy(real["manifest"])
    manifest.update(text_sha256=text_sha, **changes)
    data = canonical_json(manifest)
    if how == "own key":
        key_id, key = _planted_key(cli)
        signature = base64.b64encode(key.sign(data)).decode()
    else:
        key_id, signature = real["key_id"], base64.b64encode(b"\x01" * 64).decode()
    doc = {"manifest": manifest, "manifest_sha256": sha256_hex(data), "signature": signature, "key_id": key_id}
    block = json.dumps(doc).encode()
    record, _ = member({"WARC-Type": "metadata", "WARC-Record-ID": "<urn:uuid:00000000-0000-4000-8000-0000000000fe>",
                        "WARC-Date": "2026-11-29T12:00:00.000000Z", "WARC-Target-URI": manifest_uri(snapshot_id),
                        "Content-Type": "application/json"}, block)
    db = cli.db()
    try:
        (warc_file,) = db.execute("SELECT COALESCE(w.warc_name, r.warc_file) FROM records r LEFT JOIN warc_files w "
                                  "ON w.file_id = r.file_id WHERE r.snapshot_id=? AND r.type='metadata'",
                                  (snapshot_id,)).fetchone()
    finally:
        db.close()
    with cli.warcs() as paths:
        (path,) = [p for p in paths if p.name == Path(warc_file).name]
        offset = path.stat().st_size
        with open(path, "ab") as fh:
            fh.write(record)
    db = cli.db()
    try:
        db.execute("UPDATE records SET warc_offset=?, warc_length=? WHERE snapshot_id=? AND type='metadata'",
                   (offset, len(record), snapshot_id))
        db.execute("INSERT INTO texts (sha256, language, article_z, article_json) VALUES (?, 'de', ?, '')",
                   (text_sha, pack(json.dumps(article))))
        sets = {"manifest_sha256": doc["manifest_sha256"], "signature": signature, "key_id": key_id,
                "text_sha256": text_sha, **{k: v for k, v in changes.items() if k in ("significance", "status")}}
        db.execute(f"UPDATE snapshots SET {', '.join(f'{k}=?' for k in sets)} WHERE id=?", (*sets.values(), snapshot_id))
        db.commit()
    finally:
        db.close()
    return doc


def one_line_refusal(r: Any) -> None:
    assert r.code == 1 and r.err.count("\n") == 1 and "Traceback" not in r.err, (r.code, r.err)
    assert "does not verify" in r.err, r.err
    assert "90.000" not in r.out, r.out


def test_a_row_and_manifest_forged_together_are_shown_by_no_cli_reader(site, bcli):
    """An unsigned manifest, on both configurations."""
    _forged_together_shown_by_no_cli_reader(site, bcli, "unsigned")


def test_a_row_and_manifest_signed_by_a_key_added_to_keyring_json_are_shown_by_no_cli_reader(site, cli):
    """Signed by a key of the forger's own in ``keyring.json`` (embedded: a
    shared keyring trusts no key its root did not endorse, test_worker_keys)."""
    _forged_together_shown_by_no_cli_reader(site, cli, "own key")


def _forged_together_shown_by_no_cli_reader(site: Any, bcli: Any, how: str) -> None:
    url = site.page("/demo", article_html("Demo", ["Es kamen 1.000 Menschen."]))
    assert bcli("snapshot", url).code == 0
    site.page("/demo", article_html("Demo", ["Es kamen 2.000 Menschen."]))
    first, second = _snapshots(bcli, url)
    forge(bcli, url, second, how)
    for args in ([], ["--html"], ["--json"], ["--provenance"], ["--prov"]):
        one_line_refusal(bcli("show", url, *args))
    one_line_refusal(bcli("diff", url))
    # history lists it as not verifying: no significance, no figures, the reason
    r = bcli("history", url, "--json")
    assert r.code == 1, r.err
    items = {it["id"]: it for it in r.json()}
    assert items[second]["verified"] is False and items[second]["significance"] == "unverified"
    assert items[second]["figures"] == [] and "does not verify" in items[second]["problem"]
    assert items[first]["verified"] is True and items[first]["significance"] == "first"
    text = bcli("history", url)
    assert text.code == 1 and f"{second}  does not verify" in text.out, text.out
    # the snapshot before it is shown as ever
    assert "1.000" in bcli("show", url, "--at", first).out
    # no WACZ packs it
    r = bcli("export", url, "--wacz", str(bcli.data_dir.parent / "out.wacz"))
    one_line_refusal(r)


def test_a_forged_snapshot_is_refused_by_the_web_desk(site, bcli):
    from archiver.web.replay import archived_url
    from web_support import Server

    url = site.page("/demo", article_html("Demo", ["Es kamen 1.000 Menschen."]))
    assert bcli("snapshot", url).code == 0
    site.page("/demo", article_html("Demo", ["Es kamen 2.000 Menschen."]))
    first, second = _snapshots(bcli, url)
    forge(bcli, url, second, "unsigned", significance="substantive")
    server = Server(bcli)
    try:
        get = lambda path: requests.get(server.url(path), timeout=30)
        for path in (f"/snapshot/{second}", f"/snapshot/{second}/view", archived_url(second, url),
                     f"/snapshot/{second}/manifest.json", f"/api/v1/snapshot?url={url}", f"/api/v1/diff?url={url}",
                     f"/compare?url={url}"):
            page = get(path)
            assert page.status_code == 409 and "90.000" not in page.text, (path, page.status_code, page.text[:300])
            assert "does not verify" in page.text, (path, page.text[:300])
        assert "1.000" in get(archived_url(first, url)).text
        timeline = get(f"/timeline?url={url}")
        assert timeline.status_code == 200 and "does not verify" in timeline.text and "90.000" not in timeline.text
        changes = get("/?significance=all").text
        assert "does not verify" in changes
        mementos = get(f"/timemap/json/{url}").json()["mementos"]["list"]
        assert [m["id"] for m in mementos] == [first]
        assert second not in get(f"/timegate/{url}", ).url
        assert second not in get(f"/feeds/url.atom?url={url}").text
    finally:
        server.stop()


def test_an_auditor_pins_the_key_and_a_copy_without_keys_shows_nothing_unpinned(site, cli, tmp_path):
    import shutil

    url = site.page("/demo", article_html("Demo", ["Es kamen 1.000 Menschen."]))
    assert cli("snapshot", url).code == 0
    pem = tmp_path / "archive.pem"
    assert cli("keys", "export-public", str(pem)).code == 0
    copy_dir = tmp_path / "copy"
    shutil.copytree(cli.data_dir, copy_dir, ignore=shutil.ignore_patterns("keys"))
    from conftest import CLI

    auditor = CLI(copy_dir, cli.env)
    r = auditor("show", url)
    assert r.code == 1 and "--public-key" in r.err and r.err.count("\n") == 1, r.err
    assert not (copy_dir / "keys").exists()  # reading made no key
    assert "1.000" in auditor("show", url, "--public-key", str(pem)).out
    forge(auditor, url, auditor("history", url, "--json", "--public-key", str(pem)).json()[0]["id"], "own key",
          "--public-key", str(pem))
    one_line_refusal(auditor("show", url, "--public-key", str(pem)))
    # another key pinned: nothing this archive signed is shown under it
    other = tmp_path / "other.pem"
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    other.write_bytes(Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    r = cli("history", url, "--json", "--public-key", str(other))
    assert r.code == 1 and r.json()[0]["verified"] is False


def test_a_row_changed_alone_does_not_verify_and_rotated_keys_still_do(site, cli):
    url = site.page("/demo", article_html("Demo", ["Es kamen 1.000 Menschen."]))
    assert cli("snapshot", url).code == 0
    assert cli("keys", "rotate").code == 0
    site.page("/demo", article_html("Demo", ["Es kamen 1.000 Menschen.", "Neu."]))
    first, second = _snapshots(cli, url)
    assert cli("history", url).code == 0  # the first, signed by the rotated key, verifies
    db = cli.db()
    db.execute("UPDATE snapshots SET significance='substantive', status=500 WHERE id=?", (first,))
    db.commit()
    db.close()
    r = cli("show", url, "--at", first)
    one_line_refusal(r)
    assert "significance" in r.err and "status" in r.err
    assert "Neu." in cli("show", url, "--at", second).out


def test_a_stored_diff_changed_by_an_index_writer_is_listed_by_no_reader(site, bcli):
    """An index writer changes the figures of a genuine row's stored diff.
    The manifest signs the stored diff's digest (tests/test_signed_diff.py),
    so the row no longer verifies: no listing, page, feed or API shows the
    lie, and the snapshot itself is refused (409)."""
    from web_support import Server

    url = site.page("/demo", article_html("Demo", ["Es kamen 1.000 Menschen."]))
    assert bcli("snapshot", url).code == 0
    site.page("/demo", article_html("Demo", ["Es kamen 2.000 Menschen."]))
    first, second = _snapshots(bcli, url)
    lie = {"significance": "substantive", "figures": [{"before": "1.000", "after": "90.000", "before_value": 1000,
                                                       "after_value": 90000, "context": FORGED_LINE}]}
    db = bcli.db()
    db.execute("UPDATE snapshots SET diff_json=?, diff_z=NULL WHERE id=?", (json.dumps(lie), second))
    db.commit()
    db.close()
    r = bcli("history", url, "--json")
    assert r.code == 1, r.err
    item = {it["id"]: it for it in r.json()}[second]
    assert item["verified"] is False and item["figures"] == [] and "stored diff" in item["problem"]
    assert "90.000" not in bcli("history", url).out
    one_line_refusal(bcli("show", url, "--json"))
    server = Server(bcli)
    try:
        for path in (f"/timeline?url={url}", "/", f"/feeds/url.atom?url={url}", "/api/v1/changes",
                     f"/snapshot/{second}"):
            page = requests.get(server.url(path), timeout=30)
            assert page.status_code == (409 if "snapshot/" in path else 200), (path, page.status_code)
            assert "90.000" not in page.text, (path, page.text[:300])
    finally:
        server.stop()


def test_show_reads_the_anchor_without_openssl_and_an_encrypted_key_the_slow_way(site, cli, tmp_path):
    """The key file archiver writes gives the same public key read by libsodium
    as by the key store, and ``show`` loads no OpenSSL for it; an encrypted key
    (a passphrase) is read through the key store and verifies the same."""
    import os
    import subprocess
    import sys

    from archiver.provenance.keyring import _KEY_FILES, ED25519
    from archiver.provenance.publickeys import public_of_private
    from conftest import CLI, REPO

    url = site.page("/demo", article_html("Demo", ["Es kamen 1.000 Menschen."]))
    assert cli("snapshot", url).code == 0
    from archiver.provenance.notary import open_keystore

    settings = cli.settings()
    keys = open_keystore(settings, None, lambda: datetime.now(timezone.utc), "host")
    assert public_of_private(settings.key_path / _KEY_FILES[ED25519]) == keys.signer().public_key_spki()
    code = ("import sys\nfrom archiver.cli.main import main\n"
            f"rc = main(['--data-dir', {str(cli.data_dir)!r}, 'show', {url!r}])\n"
            "sys.stderr.write('crypto' if 'cryptography' in sys.modules else 'none')\nsys.exit(rc)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env={**os.environ, **cli.env, "PYTHONPATH": str(REPO)})
    assert p.returncode == 0 and "1.000" in p.stdout and p.stderr.endswith("none"), p.stderr[-500:]
    locked = CLI(tmp_path / "locked", {**cli.env, "ARCHIVER_KEY_PASSPHRASE": "geheim"})
    assert locked("snapshot", url).code == 0
    settings = locked.settings()
    assert public_of_private(settings.key_path / _KEY_FILES[ED25519]) is None  # encrypted: not read here
    with locked.environ():
        assert "1.000" in locked("show", url).out
    forge(locked, url, locked("history", url, "--json").json()[0]["id"], "own key")
    one_line_refusal(locked("show", url))


def test_a_manifest_is_checked_once_per_process_and_a_changed_row_still_refused(site, cli, monkeypatch):
    from archiver.archive import Archive
    from archiver.errors import NotVerified
    from archiver.provenance import manifest as manifest_module

    url = site.page("/demo", article_html("Demo", ["Es kamen 1.000 Menschen."]))
    assert cli("snapshot", url).code == 0
    site.page("/demo", article_html("Demo", ["Es kamen 2.000 Menschen."]))
    first, second = _snapshots(cli, url)
    checks = []
    real = manifest_module.check_signed_manifest
    monkeypatch.setattr(manifest_module, "check_signed_manifest", lambda *a: checks.append(1) or real(*a))
    with cli.environ(), Archive(cli.settings()) as archive:
        rows = archive.history(url)
        for _ in range(3):
            assert b"2.000" in archive.body(rows[-1])
            assert [h["verified"] for h in archive.history_json(url)] == [True, True]
        assert len(checks) == 2  # one per manifest, however often shown
        db = cli.db()
        db.execute("UPDATE snapshots SET status=500 WHERE id=?", (second,))
        db.commit()
        db.close()
        with pytest.raises(NotVerified, match="status"):
            archive.body(archive.history(url)[-1])  # remembered manifest, but the row is compared each time
        assert len(checks) == 2


def test_a_key_rotated_before_keys_kept_its_history_is_trusted_again_with_keep_rotated(site, cli, tmp_path):
    url = site.page("/demo", article_html("Demo", ["Es kamen 1.000 Menschen."]))
    assert cli("snapshot", url).code == 0
    old = tmp_path / "old.pem"
    assert cli("keys", "export-public", str(old)).code == 0
    assert cli("keys", "rotate").code == 0
    (cli.data_dir / "keys" / "previous-public.pem").unlink()  # as a rotation before it was kept left it
    one_line_refusal(cli("show", url))
    r = cli("keys", "keep-rotated", str(old))
    assert r.code == 0 and "kept 1 rotated key" in r.out, r.err
    assert "1.000" in cli("show", url).out
    assert "kept 0" in cli("keys", "keep-rotated", str(old)).out  # already kept
    exported = tmp_path / "all.pem"
    assert cli("keys", "export-public", str(exported)).code == 0 and exported.read_bytes().count(b"BEGIN") == 2


def test_machines_of_a_shared_archive_show_what_their_keys_dir_vouches_for(site, machines, monkeypatch, tmp_path):
    """The root machine shows what every key its root key enrolled signed; a
    worker what the root key pinned in its keys/ enrolled -- without a pin,
    only its own snapshots, and it says how to pin."""
    import socket

    root, one, _two = machines
    url = site.page("/a", article_html("Lage", ["Es kamen 50.000 Menschen."]))
    assert root("snapshot", url).code == 0
    kid = _key_id(one)
    assert root("keys", "enroll", kid).code == 0
    site.page("/a", article_html("Lage", ["Es kamen 80.000 Menschen."]))
    monkeypatch.setattr(socket, "gethostname", lambda: "elsewhere")
    assert one("snapshot", url).code == 0
    monkeypatch.undo()
    first, second = (h["id"] for h in root("history", url, "--json").json())
    assert root("history", url).code == 0 and "80.000" in root("show", url).out  # the worker's, enrolled by root
    assert "80.000" in one("show", url).out  # its own
    r = one("show", url, "--at", first)
    assert r.code == 1 and "pin-root" in r.err and "50.000" not in r.out, r.err
    pem = tmp_path / "root.pem"
    assert root("keys", "export-public", str(pem)).code == 0
    assert one("keys", "pin-root", str(pem)).code == 0
    assert "50.000" in one("show", url, "--at", first).out and one("history", url).code == 0


def test_the_panel_trusts_a_checkpoint_only_under_the_keys_in_keys_dir(site, cli):
    """The snapshot page's inclusion check opened the latest checkpoint with
    the keys of keyring.json: a checkpoint an intruder signed with a key
    they added there was "the signed checkpoint"."""
    from archiver.archive import Archive
    from archiver.provenance.notes import sign_note
    from archiver.provenance.signatures import Signer
    from archiver.web.verification import verify_snapshot

    url = site.page("/demo", article_html("Demo", ["Es kamen 1.000 Menschen."]))
    assert cli("snapshot", url).code == 0
    with cli.environ(), Archive(cli.settings()) as archive:
        assert verify_snapshot(archive, archive.history(url)[-1]).get("inclusion").ok
    key_id, key = _planted_key(cli)
    db = cli.db()
    (size, note), = db.execute("SELECT size, note FROM checkpoints ORDER BY size DESC LIMIT 1").fetchall()
    body = note.split("\n\n")[0] + "\n"
    db.execute("UPDATE checkpoints SET note=? WHERE size=?", (sign_note(body, Signer(key_id, "archiver", key)), size))
    db.commit()
    db.close()
    with cli.environ(), Archive(cli.settings()) as archive:
        check = verify_snapshot(archive, archive.history(url)[-1]).get("inclusion")
        assert check.ok is False, check.detail


def test_the_archived_view_takes_the_page_type_from_its_signed_record_not_the_row(site, bcli):
    """The row's content_type is no signed field: an index writer set a signed
    text/plain page's row to text/html and the desk served the signed bytes as
    HTML (sandboxed, scripts off, but rendered). The type now comes from the
    response record the manifest signs."""
    from archiver.web.replay import archived_url
    from web_support import Server

    url = site.page("/notes.txt", "<b>Es kamen 1.000 Menschen.</b>", content_type="text/plain; charset=utf-8")
    (sid,) = _snapshots(bcli, url)
    db = bcli.db()
    db.execute("UPDATE snapshots SET content_type='text/html' WHERE id=?", (sid,))
    db.commit()
    db.close()
    server = Server(bcli)
    try:
        page = requests.get(server.url(archived_url(sid, url)), timeout=30)
        assert page.status_code == 200, page.text[:300]
        assert page.headers["Content-Type"].startswith("text/plain"), page.headers["Content-Type"]
        assert page.text == "<b>Es kamen 1.000 Menschen.</b>"
    finally:
        server.stop()


def test_a_page_read_again_is_read_as_its_signed_record_says_not_as_the_row_says(site, bcli):
    """A snapshot whose stored text is gone is read again from its signed
    body -- as the type its signed response record states: an index writer
    who set the row's content_type to text/plain had `show` print the page's
    markup as its text, and `show --html` decode it in the row's charset."""
    url = site.page("/lage", article_html("Lage", ["Die Polizei zählte 50.000 Menschen auf der Straße.", "Es blieb ruhig."]))
    (sid,) = _snapshots(bcli, url)
    before = bcli("show", url)
    assert before.code == 0 and "zählte 50.000 Menschen auf der Straße" in before.out
    db = bcli.db()
    db.execute("DELETE FROM texts WHERE sha256=(SELECT text_sha256 FROM snapshots WHERE id=?)", (sid,))
    db.execute("UPDATE snapshots SET content_type='text/plain; charset=latin-1' WHERE id=?", (sid,))
    db.commit()
    db.close()
    after = bcli("show", url)
    assert after.code == 0, after.err
    assert after.out == before.out
    html = bcli("show", url, "--html")
    assert html.code == 0 and "zählte 50.000 Menschen auf der Straße" in html.out, html.out[:300]

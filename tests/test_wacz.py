"""WACZ export: py-wacz accepts it, ReplayWeb.page's signature check passes,
and `verify_wacz` checks it from the file alone and names what was changed."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import struct
import subprocess
import sys
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from warcio.archiveiterator import ArchiveIterator

from archiver import config
from archiver.archive import Archive
from archiver.audit.wacz_check import check_wacz, verify_wacz
from archiver.audit.wacz_export import export_wacz
from archiver.errors import NotFoundError
from conftest import article_html

WACZ_SCRIPT = Path(sys.executable).parent / "wacz"


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def open_archive(data_dir: Path) -> Archive:
    return Archive(config.load(environ={"ARCHIVER_DATA_DIR": str(data_dir), "ARCHIVER_ALLOW_PRIVATE": "1"}))


@pytest.fixture
def exported(site, cli, tmp_path):
    """An archive built through the CLI (a first capture, an unchanged one that
    becomes a revisit, an edit, a redirect), exported to a WACZ."""
    a = site.page("/politik/radwege", article_html("Radwege", ["Der Stadtrat stimmte mit 31 zu 12 Stimmen.", "Kosten: 8,5 Millionen Euro."]))
    b = site.page("/wirtschaft", article_html("Haushalt", ["Der Haushalt umfasst 2 Milliarden Euro."]))
    for url in (a, a, b):
        r = cli("snapshot", url, "--json")
        assert r.code == 0, r.err
    site.page("/politik/radwege", article_html("Radwege", ["Der Stadtrat stimmte mit 30 zu 12 Stimmen.", "Kosten: 8,5 Millionen Euro."]))
    assert cli("snapshot", a, "--json").code == 0
    site.routes["/kurz"] = lambda h: (
        h.send_response(302), h.send_header("Location", "/wirtschaft"), h.send_header("Content-Length", "0"), h.end_headers()
    )
    short = site.url("/kurz")
    assert cli("snapshot", short, "--json").code == 0
    out = tmp_path / "export" / "radwege.wacz"
    with open_archive(cli.data_dir) as archive:
        export_wacz(archive, [a, b, short], out, clock=utc_now)
        ids = {url: [s.id for s in archive.history(url)] for url in (a, b, short)}
    return out, ids, cli.data_dir


# ------------------------------------------------------------------ helpers


def entries(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist()}


def rewrite(path: Path, changes: dict[str, Callable[[bytes], bytes]]) -> None:
    """Rebuild the zip with some entries changed (a well-formed zip, as a forger makes it)."""
    with zipfile.ZipFile(path) as zf:
        items = [(i, zf.read(i)) for i in zf.infolist()]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as out:
        for info, data in items:
            if info.filename in changes:
                data = changes[info.filename](data)
            out.writestr(info, data)
    path.write_bytes(buf.getvalue())


def entry_data_offset(path: Path, name: str) -> int:
    """Where an entry's bytes start in the zip file (local header parsed here)."""
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(name)
    raw = path.read_bytes()
    name_len, extra_len = struct.unpack("<HH", raw[info.header_offset + 26 : info.header_offset + 30])
    return info.header_offset + 30 + name_len + extra_len


def locations(path: Path) -> list[dict]:
    return json.loads(entries(path)["provenance/locations.json"])["records"]


def by_snapshot(problems) -> dict[str | None, set[str]]:
    out: dict[str | None, set[str]] = {}
    for p in problems:
        out.setdefault(p.snapshot, set()).add(p.kind)
    return out


# ------------------------------------------------------------------ the format


def test_py_wacz_validates_the_export(exported):
    path, _, _ = exported
    p = subprocess.run([str(WACZ_SCRIPT), "validate", "-f", str(path)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "Validation succeeded" in p.stdout


def test_layout_pages_and_datapackage(exported):
    path, ids, _ = exported
    files = entries(path)
    with zipfile.ZipFile(path) as zf:
        assert zf.getinfo("archive/data.warc.gz").compress_type == zipfile.ZIP_STORED
    package = json.loads(files["datapackage.json"])
    assert package["profile"] == "data-package" and package["wacz_version"] == "1.1.1"
    assert package["created"].endswith("Z") and package["modified"] and package["software"].startswith("archiver")
    first_url = next(iter(ids))
    assert package["mainPageUrl"] == first_url and package["mainPageDate"]
    listed = {r["path"]: r for r in package["resources"]}
    assert set(listed) == set(files) - {"datapackage.json", "datapackage-digest.json"}
    for name, res in listed.items():
        assert res["hash"] == "sha256:" + hashlib.sha256(files[name]).hexdigest()
        assert res["bytes"] == len(files[name]) and res["name"] == Path(name).name

    header, *pages = [json.loads(line) for line in files["pages/pages.jsonl"].splitlines()]
    assert header["format"] == "json-pages-1.0" and header["id"] == "pages" and header["title"]
    assert sorted(p["id"] for p in pages) == sorted(i for v in ids.values() for i in v)
    assert {p["url"] for p in pages} == set(ids)
    assert all(p["ts"].endswith("Z") and p["title"] for p in pages)
    assert any(p["title"] == "Radwege" for p in pages)

    # the ZipNum layout py-wacz writes: gzip blocks + an index of them
    idx = files["indexes/index.idx"].decode().splitlines()
    assert idx[0].startswith("!meta 0 ") and json.loads(idx[0].split(" ", 2)[2])["filename"] == "index.cdx.gz"
    blocks = files["indexes/index.cdx.gz"]
    cdx = []
    for line in idx[1:]:
        block = json.loads(line.split(" ", 2)[2])
        part = blocks[block["offset"]: block["offset"] + block["length"]]
        assert block["digest"] == "sha256:" + hashlib.sha256(part).hexdigest()
        lines = gzip.decompress(part).decode().splitlines()
        assert lines[0].startswith(line.split(" ", 2)[0] + " ")  # the block's first key
        cdx += lines
    assert cdx == gzip.decompress(blocks).decode().splitlines()
    assert cdx == sorted(cdx) and len(cdx) >= 4
    for line in cdx:
        fields = json.loads(line.split(" ", 2)[2])
        assert fields["filename"] == "data.warc.gz" and int(fields["length"]) > 0
        assert fields.get("mime") != "application/json" and "urn:archiver:" not in fields["url"]
    # every page is replayable from the index: its URL at its capture second
    stamps = {(json.loads(line.split(" ", 2)[2])["url"], line.split(" ")[1]) for line in cdx}
    for page in pages:
        ts = page["ts"].replace("-", "").replace(":", "").replace("T", "")[:14]
        assert (page["url"], ts) in stamps
    with zipfile.ZipFile(path) as zf:
        assert zf.getinfo("indexes/index.cdx.gz").compress_type == zipfile.ZIP_STORED


def test_warc_holds_exact_stored_members_and_revisit_originals(exported):
    path, ids, data_dir = exported
    warc = entries(path)["archive/data.warc.gz"]
    records = list(ArchiveIterator(io.BytesIO(warc)))
    assert records[0].rec_type == "warcinfo"
    types = {r.rec_type for r in records}
    assert {"request", "response", "revisit", "metadata"} <= types
    ids_in_warc = {r.rec_headers.get_header("WARC-Record-ID") for r in records}
    refers = [r.rec_headers.get_header("WARC-Refers-To") for r in records if r.rec_type == "revisit"]
    assert refers and all(t in ids_in_warc for t in refers)
    # Every exported record is byte-for-byte the member in the archive's WARC files.
    with open_archive(data_dir) as archive:
        for loc in locations(path):
            row = archive.index.record(loc["record_id"])
            stored = (data_dir / "warcs" / row.warc_file).read_bytes()[row.warc_offset : row.warc_offset + row.warc_length]
            assert warc[loc["offset"] : loc["offset"] + loc["length"]] == stored


def test_signature_verifies_as_replayweb_page_does(exported):
    """Independent of archiver: SPKI import, raw r||s, ECDSA P-384 with SHA-256
    over the ASCII "sha256:<hex>" string, as WebCrypto verify() does."""
    path, _, _ = exported
    files = entries(path)
    digest = json.loads(files["datapackage-digest.json"])
    package = json.loads(files["datapackage.json"])
    expected_hash = "sha256:" + hashlib.sha256(files["datapackage.json"]).hexdigest()
    assert digest["path"] == "datapackage.json" and digest["hash"] == expected_hash
    signed = digest["signedData"]
    assert signed["hash"] == expected_hash and signed["created"] == package["created"] and signed["software"]

    key = serialization.load_der_public_key(base64.b64decode(signed["publicKey"]))
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp384r1"
    raw = base64.b64decode(signed["signature"])
    assert len(raw) == 96
    der = encode_dss_signature(int.from_bytes(raw[:48], "big"), int.from_bytes(raw[48:], "big"))
    key.verify(der, signed["hash"].encode("ascii"), ec.ECDSA(hashes.SHA256()))
    with pytest.raises(InvalidSignature):
        key.verify(der, ("sha256:" + "0" * 64).encode("ascii"), ec.ECDSA(hashes.SHA256()))


def test_no_private_key_material_inside(exported):
    path, _, data_dir = exported
    keys_dir = data_dir / "keys"
    blobs = [path.read_bytes(), *entries(path).values()]  # raw zip, and every entry inflated
    needles: list[bytes] = [str(keys_dir).encode()]
    key_files = [p for p in keys_dir.iterdir() if p.is_file() and p.suffix == ".pem"]  # (tree-head.json: public)
    assert {p.name for p in key_files} >= {"ed25519.pem", "ecdsa-p384.pem"}
    for p in key_files:
        needles.append(p.name.encode())
        content = p.read_bytes()
        if not content:
            continue
        needles.append(content)
        key = serialization.load_pem_private_key(content, password=None)
        needles.append(key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        pem_body = b"".join(content.strip().splitlines()[1:-1])
        needles.append(pem_body)
        if isinstance(key, ec.EllipticCurvePrivateKey):
            needles.append(key.private_numbers().private_value.to_bytes(48, "big"))
        else:
            needles.append(key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()))
    for needle in needles:
        for blob in blobs:
            assert needle not in blob
            assert base64.b64encode(needle) not in blob
    assert b"PRIVATE KEY" not in b"".join(blobs)


def test_export_is_crash_safe_and_unknown_url_leaves_nothing(exported, tmp_path):
    path, ids, data_dir = exported
    before = path.read_bytes()
    with open_archive(data_dir) as archive:
        with pytest.raises(NotFoundError):
            export_wacz(archive, ["http://127.0.0.1:9/never-captured"], path, clock=utc_now)
        assert path.read_bytes() == before  # the old file is untouched
        export_wacz(archive, [next(iter(ids))], path, clock=utc_now)  # replaced whole
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temp files left
    assert verify_wacz(path) == []


# ------------------------------------------------------------------ verify_wacz


def test_untouched_export_verifies(exported):
    path, ids, _ = exported
    report = check_wacz(path)
    assert report.problems == [] and report.ok
    assert report.checked == sum(len(v) for v in ids.values())
    assert report.to_json() == {"ok": True, "checked": report.checked, "problems": []}


def test_changed_warc_byte_names_the_snapshot(exported):
    path, ids, _ = exported
    loc = next(l for l in locations(path) if l["type"] == "response" and l["snapshot_id"] == ids[next(iter(ids))][0])
    pos = entry_data_offset(path, "archive/data.warc.gz") + loc["offset"] + loc["length"] // 2
    raw = bytearray(path.read_bytes())
    raw[pos] ^= 0x01
    path.write_bytes(bytes(raw))
    problems = verify_wacz(path)
    found = by_snapshot(problems)
    assert "record-digest" in found.get(loc["snapshot_id"], set()), problems
    assert {"zip-crc", "resource-hash"} <= found.get(None, set())
    assert all(p.to_json().keys() == {"snapshot", "kind", "detail"} for p in problems)


def test_altered_manifest_signature_names_the_snapshot(exported):
    path, ids, _ = exported
    victim = ids[next(iter(ids))][1]

    def tamper(data: bytes) -> bytes:
        lines = []
        for line in data.splitlines():
            entry = json.loads(line)
            if entry["snapshot_id"] == victim:
                sig = bytearray(base64.b64decode(entry["signature"]))
                sig[0] ^= 0x80
                entry["signature"] = base64.b64encode(bytes(sig)).decode()
            lines.append(json.dumps(entry).encode())
        return b"\n".join(lines) + b"\n"

    rewrite(path, {"provenance/manifests.jsonl": tamper})
    found = by_snapshot(verify_wacz(path))
    assert "signature" in found.get(victim, set())
    assert "resource-hash" in found.get(None, set())
    assert all("signature" not in kinds for sid, kinds in found.items() if sid not in (victim, None))


def test_altered_datapackage_is_reported(exported):
    path, _, _ = exported

    def retitle(data: bytes) -> bytes:
        package = json.loads(data)
        package["title"] = "something else"
        return json.dumps(package, indent=2).encode()

    rewrite(path, {"datapackage.json": retitle})
    problems = verify_wacz(path)
    assert any(p.kind == "datapackage-digest" and p.snapshot is None for p in problems), problems


def test_repackaged_forgery_is_caught_by_the_signed_manifests(exported):
    """A forger changes a payload, recomputes every package hash and re-signs
    the package with their own P-384 key: the package signature is valid, but
    the Ed25519-signed manifest still names the snapshot whose record changed."""
    path, ids, _ = exported
    victim = ids[next(iter(ids))][0]
    files = entries(path)
    loc = next(l for l in locations(path) if l["type"] == "response" and l["snapshot_id"] == victim)
    warc = bytearray(files["archive/data.warc.gz"])
    member = gzip.decompress(bytes(warc[loc["offset"] : loc["offset"] + loc["length"]]))
    forged = gzip.compress(member.replace(b"31 zu 12", b"13 zu 12"), mtime=0)
    assert forged != member
    files["archive/data.warc.gz"] = bytes(warc[: loc["offset"]]) + forged + bytes(warc[loc["offset"] + loc["length"] :])
    package = json.loads(files["datapackage.json"])
    for res in package["resources"]:
        res["hash"] = "sha256:" + hashlib.sha256(files[res["path"]]).hexdigest()
        res["bytes"] = len(files[res["path"]])
    files["datapackage.json"] = json.dumps(package).encode()
    h = "sha256:" + hashlib.sha256(files["datapackage.json"]).hexdigest()
    key = ec.generate_private_key(ec.SECP384R1())
    r, s = decode_dss_signature(key.sign(h.encode(), ec.ECDSA(hashes.SHA256())))
    spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    files["datapackage-digest.json"] = json.dumps({"path": "datapackage.json", "hash": h, "signedData": {
        "hash": h, "created": package["created"], "software": "forger",
        "signature": base64.b64encode(r.to_bytes(48, "big") + s.to_bytes(48, "big")).decode(),
        "publicKey": base64.b64encode(spki).decode()}}).encode()
    # Locations of later records shift; the forger fixes those too.
    shift = len(forged) - loc["length"]
    doc = json.loads(files["provenance/locations.json"])
    for rec in doc["records"]:
        if rec["offset"] > loc["offset"]:
            rec["offset"] += shift
        if rec["record_id"] == loc["record_id"]:
            rec["length"] = len(forged)
    files["provenance/locations.json"] = json.dumps(doc).encode()
    for res in package["resources"]:
        res["hash"] = "sha256:" + hashlib.sha256(files[res["path"]]).hexdigest()
        res["bytes"] = len(files[res["path"]])
    files["datapackage.json"] = json.dumps(package).encode()
    h = "sha256:" + hashlib.sha256(files["datapackage.json"]).hexdigest()
    r, s = decode_dss_signature(key.sign(h.encode(), ec.ECDSA(hashes.SHA256())))
    digest = json.loads(files["datapackage-digest.json"])
    digest["hash"] = digest["signedData"]["hash"] = h
    digest["signedData"]["signature"] = base64.b64encode(r.to_bytes(48, "big") + s.to_bytes(48, "big")).decode()
    files["datapackage-digest.json"] = json.dumps(digest).encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data, compress_type=zipfile.ZIP_STORED if name.startswith("archive/") else zipfile.ZIP_DEFLATED)
    path.write_bytes(buf.getvalue())

    found = by_snapshot(verify_wacz(path))
    assert "record-digest" in found.get(victim, set()), found
    assert "wacz-key" in found.get(None, set())  # signed, but not by a key of this archive
    assert "wacz-signature" not in found.get(None, set())
    # The unchanged capture that revisits the forged response inherits the problem.
    revisit = ids[next(iter(ids))][1]
    assert found.get(revisit) == {"revisit-target"}, found
    assert set(found) == {victim, revisit, None}, found


def test_pinned_public_key_rejects_a_keyring_swap(exported, tmp_path):
    path, _, data_dir = exported
    ring = json.loads((data_dir / "keyring.json").read_text())
    ed = next(k for k in ring["keys"] if k["algorithm"] == "ed25519")
    pem = serialization.load_der_public_key(base64.b64decode(ed["public_key"])).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert verify_wacz(path, public_key=pem) == []
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    other = Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    problems = verify_wacz(path, public_key=other)
    assert any(p.kind == "public-key" for p in problems), problems


def test_missing_or_broken_file_is_one_problem(tmp_path):
    assert [p.kind for p in verify_wacz(tmp_path / "nope.wacz")] == ["zip"]
    junk = tmp_path / "junk.wacz"
    junk.write_bytes(b"not a zip at all")
    assert [p.kind for p in verify_wacz(junk)] == ["zip"]


def test_cli_export_then_verify_wacz(exported, cli, tmp_path):
    """`archiver export URL... --wacz FILE` and `archiver verify --wacz FILE`, as users run them."""
    _, ids, _ = exported
    out = tmp_path / "cli.wacz"
    r = cli("export", *ids, "--wacz", str(out))
    assert r.code == 0, r.err
    r = cli("verify", "--wacz", str(out), "--json")
    assert r.code == 0 and r.json()["ok"] is True, r.out + r.err
    raw = bytearray(out.read_bytes())
    loc = next(l for l in locations(out) if l["type"] == "response")
    raw[entry_data_offset(out, "archive/data.warc.gz") + loc["offset"] + 40] ^= 0x10
    out.write_bytes(bytes(raw))
    r = cli("verify", "--wacz", str(out), "--json")
    assert r.code == 1 and loc["snapshot_id"] in {p["snapshot"] for p in r.json()["problems"]}
    assert "Traceback" not in r.err

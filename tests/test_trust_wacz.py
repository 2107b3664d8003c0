"""A WACZ from a stranger: every replayable record must be signed for, the
package key must be the archive's, and no input may cost unbounded memory."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import zipfile
import zlib
from datetime import datetime, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from archiver.audit.wacz_check import verify_wacz
from archiver.provenance.keyring import ECDSA_P384, KeyRecord, key_id_for
from conftest import CLI, REPO, article_html
from store.warc import sha256_label
from test_trust_repair import member
from test_wacz import entries, exported  # noqa: F401 - fixture

WARC = "archive/data.warc.gz"
INDEX = "indexes/index.cdx.gz"
STORED = ("archive/", INDEX)


def rezip(path: Path, files: dict[str, bytes]) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data, compress_type=zipfile.ZIP_STORED if name.startswith(STORED) else zipfile.ZIP_DEFLATED)
    path.write_bytes(buf.getvalue())


def resign(files: dict[str, bytes]) -> None:
    """Update datapackage.json and sign it with a fresh P-384 key, which the
    forger also adds to the bundled keyring -- exactly what a player checks."""
    key = ec.generate_private_key(ec.SECP384R1())
    spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    ring = json.loads(files["provenance/keyring.json"])
    ring["keys"].append(KeyRecord(key_id_for(spki), ECDSA_P384, spki, datetime(2000, 1, 1, tzinfo=timezone.utc),
                                  None, "archiver").to_json())
    files["provenance/keyring.json"] = json.dumps(ring).encode()
    package = json.loads(files["datapackage.json"])
    package["resources"] = [
        {**res, "hash": "sha256:" + hashlib.sha256(files[res["path"]]).hexdigest(), "bytes": len(files[res["path"]])}
        for res in package["resources"] if res["path"] in files
    ]
    files["datapackage.json"] = json.dumps(package).encode()
    h = "sha256:" + hashlib.sha256(files["datapackage.json"]).hexdigest()
    r, s = decode_dss_signature(key.sign(h.encode(), ec.ECDSA(hashes.SHA256())))
    files["datapackage-digest.json"] = json.dumps({"path": "datapackage.json", "hash": h, "signedData": {
        "hash": h, "created": package["created"], "software": "forger",
        "signature": base64.b64encode(r.to_bytes(48, "big") + s.to_bytes(48, "big")).decode(),
        "publicKey": base64.b64encode(spki).decode()}}).encode()


def forge(path: Path, *, drop_endorsement: bool = False) -> str:
    """The issue's recipe: append an unsigned response for a page of the
    package, list it in the CDXJ index and in pages.jsonl, update the
    datapackage and re-sign it with a fresh P-384 key added to the keyring."""
    files = entries(path)
    index = gzip.decompress(files[INDEX])
    first = json.loads(index.splitlines()[0].split(b" ", 2)[2])
    url, surt = first["url"], index.split(b" ", 1)[0].decode()
    body = article_html("Radwege", ["Der Stadtrat lehnte mit 3 zu 40 Stimmen ab."]).encode()
    http = b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    record, _ = member({"WARC-Type": "response", "WARC-Record-ID": "<urn:uuid:0f0f0f0f-0000-4000-8000-000000000001>",
                        "WARC-Date": "2026-11-29T13:00:00.000000Z", "WARC-Target-URI": url,
                        "Content-Type": "application/http; msgtype=response",
                        "WARC-Payload-Digest": sha256_label(hashlib.sha256(body).digest())}, http)
    offset = len(files[WARC])
    files[WARC] += record
    files[INDEX] += gzip.compress(f"{surt} 20261129130000 ".encode() + json.dumps(  # one more ZipNum block
        {"url": url, "mime": "text/html", "status": "200", "length": str(len(record)), "offset": str(offset),
         "filename": "data.warc.gz"}).encode() + b"\n")
    files["pages/pages.jsonl"] += json.dumps({"id": "forged", "url": url, "ts": "2026-11-29T13:00:00Z",
                                              "title": "Radwege"}).encode() + b"\n"
    if drop_endorsement:
        files.pop("provenance/keyring-endorsement.json")
    resign(files)
    rezip(path, files)
    return url


def archive_key_pem(data_dir: Path) -> bytes:
    ring = json.loads((data_dir / "keyring.json").read_text())
    ed = next(k for k in ring["keys"] if k["algorithm"] == "ed25519")
    return serialization.load_der_public_key(base64.b64decode(ed["public_key"])).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_the_forged_wacz_recipe_fails_with_and_without_the_public_key(exported):  # noqa: F811
    path, _, data_dir = exported
    pem = archive_key_pem(data_dir)
    assert verify_wacz(path) == [] and verify_wacz(path, public_key=pem) == []
    forge(path)
    for pinned in (None, pem):
        kinds = {p.kind for p in verify_wacz(path, public_key=pinned)}
        assert {"unsigned-record", "unsigned-index", "unsigned-page", "wacz-key"} <= kinds, kinds
        assert "wacz-signature" not in kinds and "resource-hash" not in kinds  # the package itself is consistent


def test_dropping_the_endorsement_does_not_bind_a_new_package_key(exported):  # noqa: F811
    path, _, data_dir = exported
    forge(path, drop_endorsement=True)
    pinned = {p.kind: p.detail for p in verify_wacz(path, public_key=archive_key_pem(data_dir))}
    assert "not bound to the given public key" in pinned["wacz-key"]
    assert "unsigned-record" in {p.kind for p in verify_wacz(path)}


def test_an_unsigned_record_alone_is_flagged_by_the_cli(exported, cli, tmp_path):  # noqa: F811
    path, _, _ = exported
    files = entries(path)
    page = json.loads(files["pages/pages.jsonl"].splitlines()[1])
    record, _ = member({"WARC-Type": "resource", "WARC-Record-ID": "<urn:uuid:0f0f0f0f-0000-4000-8000-000000000002>",
                        "WARC-Date": "2026-11-29T13:00:00.000000Z", "WARC-Target-URI": page["url"] + "/extra.js",
                        "Content-Type": "application/javascript"}, b"alert(1)")
    files[WARC] += record
    resign(files)
    rezip(path, files)
    r = cli.process("verify", "--wacz", str(path), "--json")
    assert r.code == 1
    unsigned = [p for p in r.json()["problems"] if p["kind"] == "unsigned-record"]
    assert len(unsigned) == 1 and "extra.js" in unsigned[0]["detail"], r.out


def bomb(record_id: str, url: str, size: int = 1 << 30) -> bytes:
    """One gzip member that inflates to ``size`` bytes (a 1 GiB record in ~1 MB)."""
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    out = [z.compress(f"WARC/1.1\r\nWARC-Type: response\r\nWARC-Record-ID: {record_id}\r\nWARC-Target-URI: {url}\r\n"
                      f"Content-Type: application/http; msgtype=response\r\nContent-Length: {size}\r\n\r\n".encode())]
    zeros = b"\0" * (1 << 20)
    out += [z.compress(zeros) for _ in range(size >> 20)]
    out.append(z.flush())
    return b"".join(out)


# VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec from the forking
# parent (here: pytest), while VmHWM is this process image's own peak.
_MEASURED = (
    "import re, sys\n"
    "from archiver.cli.main import main\n"
    "code = main(sys.argv[1:])\n"
    "sys.stdout.flush()\n"
    "status = open('/proc/self/status').read()\n"
    "print(re.search(r'VmHWM:\\s+(\\d+) kB', status).group(1), file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def peak_rss_mib(args: list[str], env: dict[str, str]) -> tuple[int, str, float]:
    """Run the real CLI in its own process; its exit code, stdout and peak
    resident memory in MiB (measured by the process itself)."""
    p = subprocess.run([sys.executable, "-c", _MEASURED, *args], capture_output=True, text=True, env=env, timeout=300)
    return p.returncode, p.stdout, int(p.stderr.strip().splitlines()[-1]) / 1024


def verify_wacz_peak(path: Path, cli: CLI, what: str) -> tuple[int, str, float]:
    """``verify --wacz PATH --json`` in a process of its own: exit code, stdout
    and peak RSS in MiB, printed with ``what`` the package holds."""
    code, out, rss = peak_rss_mib(["verify", "--wacz", str(path), "--json"],
                                  {**os.environ, **cli.env, "PYTHONPATH": str(REPO)})
    print(f"verify --wacz, {what} ({path.stat().st_size >> 10} KiB): exit {code}, peak RSS {rss:.0f} MiB")
    return code, out, rss


def test_a_gzip_bomb_wacz_is_refused_with_bounded_memory(exported, cli):  # noqa: F811
    """Record locations (and the WARC itself) lead to a member that inflates
    to 1 GiB: verify refuses it after at most 64 MiB of output per record."""
    path, _, _ = exported
    files = entries(path)
    doc = json.loads(files["provenance/locations.json"])
    victim = next(r for r in doc["records"] if r["type"] == "response")
    payload = bomb(victim["record_id"], victim.get("target_uri", "http://example.org/"))
    victim["offset"], victim["length"] = len(files[WARC]), len(payload)
    files[WARC] += payload
    files["provenance/locations.json"] = json.dumps(doc).encode()
    resign(files)
    rezip(path, files)
    assert path.stat().st_size < 3 << 20
    code, out, rss = verify_wacz_peak(path, cli, "a gzip-bomb WACZ")
    assert code == 1
    details = " ".join(p["detail"] for p in json.loads(out)["problems"])
    assert "inflates beyond" in details
    assert rss < 400, f"peak RSS {rss:.0f} MiB"


def test_millions_of_junk_lines_cost_bounded_memory_and_output(exported, cli):  # noqa: F811
    """A 40 KB package whose manifests.jsonl and pages.jsonl hold two million
    junk lines each: every line used to become a problem (13 GiB of memory
    and 2 GB of JSON for twenty million). Lines are now read one at a time,
    at most as many as an export can hold, and the problems listed are
    capped, with one saying how many more there were."""
    path, ids, _ = exported
    files = entries(path)
    genuine = sum(1 for line in files["provenance/manifests.jsonl"].splitlines() if line.strip())
    files["provenance/manifests.jsonl"] += b"1\n" * 2_000_000
    files["pages/pages.jsonl"] += b"[]\n" * 2_000_000
    resign(files)
    rezip(path, files)
    assert path.stat().st_size < 1 << 20
    code, out, rss = verify_wacz_peak(path, cli, "a package of junk lines")
    assert code == 1
    report = json.loads(out)
    problems = report["problems"]
    assert report["checked"] == genuine
    assert len(problems) <= 10_001
    assert problems[-1]["kind"] == "more-problems" and "further problems are not listed" in problems[-1]["detail"]
    assert "manifest" in {p["kind"] for p in problems}
    assert rss < 400, f"peak RSS {rss:.0f} MiB"


def forge_checkpoint(files: dict[str, bytes], size_text: str) -> None:
    """A checkpoint of ``size_text`` signed by a fresh Ed25519 key the forger
    adds to the bundled keyring (what verify checks the note with, unpinned)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from archiver.provenance.keyring import ED25519
    from archiver.provenance.notes import note_key_hash

    key = Ed25519PrivateKey.generate()
    spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    ring = json.loads(files["provenance/keyring.json"])
    ring["keys"].append(KeyRecord(key_id_for(spki), ED25519, spki, datetime(2000, 1, 1, tzinfo=timezone.utc),
                                  None, "forger").to_json())
    files["provenance/keyring.json"] = json.dumps(ring).encode()
    origin = files["provenance/checkpoint.txt"].decode().split("\n", 1)[0]
    body = f"{origin}\n{size_text}\n{base64.b64encode(bytes(32)).decode()}\n"
    blob = note_key_hash("forger", b"\x01" + spki[-32:]).to_bytes(4, "big") + key.sign(body.encode())
    files["provenance/checkpoint.txt"] = f"{body}\n\u2014 forger {base64.b64encode(blob).decode()}\n".encode()


def test_a_checkpoint_whose_size_no_log_can_have_is_a_finding(exported):  # noqa: F811
    """A tree size of 2**63 or of 5,000 digits (Python refuses to convert
    more than 4,300) is reported as a checkpoint problem; the check went on
    to crash on it (an internal error, every other finding lost)."""
    path, _, _ = exported
    original = entries(path)
    for size_text in ("9" * 5000, str(1 << 63)):
        files = dict(original)
        forge_checkpoint(files, size_text)
        resign(files)
        rezip(path, files)
        problems = verify_wacz(path)
        details = [p.detail for p in problems if p.kind == "checkpoint"]
        assert details and "tree size" in details[0], problems
        assert "wacz-key" in {p.kind for p in problems}


def test_many_records_that_inflate_large_cost_bounded_memory(exported, cli):  # noqa: F811
    """Twenty records of 60 MiB each (each under the per-record bound, 60 KiB
    compressed) that one manifest names: every parsed record was kept, 1.2 GiB
    for a 1.3 MiB package. Now what is kept is bounded, and the inflating
    counts against the package's budget like every other entry's."""
    path, _, _ = exported
    files = entries(path)
    doc = json.loads(files["provenance/locations.json"])
    listed = []
    for i in range(20):
        rid = f"<urn:uuid:0f0f0f0f-0000-4000-8000-{i:012d}>"
        payload = bomb(rid, "http://example.org/", 60 << 20)
        doc["records"].append({"record_id": rid, "snapshot_id": "big", "type": "response",
                               "offset": len(files[WARC]), "length": len(payload)})
        listed.append({"record_id": rid, "type": "response", "sha256": hashlib.sha256(payload).hexdigest()})
        files[WARC] += payload
    files["provenance/locations.json"] = json.dumps(doc).encode()
    files["provenance/manifests.jsonl"] += json.dumps(
        {"snapshot_id": "big", "manifest": {"snapshot_id": "big", "records": listed}}).encode() + b"\n"
    resign(files)
    rezip(path, files)
    assert path.stat().st_size < 2 << 20
    code, out, rss = verify_wacz_peak(path, cli, "a package of 20 large records")
    assert code == 1
    assert "big" in {p["snapshot"] for p in json.loads(out)["problems"]}
    assert rss < 400, f"peak RSS {rss:.0f} MiB"


def test_locations_and_proofs_floods_cost_bounded_memory(exported, cli):  # noqa: F811
    """locations.json and proofs.json were parsed whole: 30 MB of ``{},``
    (a few KiB in the zip) became 794 MiB of Python objects, and the member
    limit allows 256 MiB. Now they are read entry by entry, each entry
    bounded, at most as many as the manifests can use, and only what is
    checked is kept."""
    path, _, _ = exported
    files = entries(path)
    flood = b"{}," * (10 << 20)  # 30 MiB of empty entries each
    doc = json.loads(files["provenance/locations.json"])
    files["provenance/locations.json"] = (b'{"warc": "archive/data.warc.gz", "records": ['
                                          + flood + json.dumps(doc["records"])[1:].encode() + b"}")
    proofs = json.loads(files["provenance/proofs.json"])
    files["provenance/proofs.json"] = (b'{"checkpoint_size": %d, "proofs": [' % proofs["checkpoint_size"]
                                       + flood + json.dumps(proofs["proofs"])[1:].encode() + b"}")
    resign(files)
    rezip(path, files)
    assert path.stat().st_size < 1 << 20
    code, out, rss = verify_wacz_peak(path, cli, "a package of empty locations and proofs")
    assert code == 1
    report = json.loads(out)
    kinds = {p["kind"] for p in report["problems"]}
    assert "malformed" in kinds, report["problems"][:5]
    assert rss < 200, f"peak RSS {rss:.0f} MiB"


def _flood_document(files: dict[str, bytes], which: str, flood: bytes) -> None:
    """Put ``flood`` (30 MB of ``{},``) into one JSON value of document ``which``."""
    if which == "manifests":
        files["provenance/manifests.jsonl"] += (b'{"snapshot_id": "x", "manifest": {"snapshot_id": "x", "records": ['
                                                + flood + b"{}]}}\n")
    elif which == "many-manifests":  # lines each within any line cap, together the document's size
        line = b'{"snapshot_id": "x", "manifest": {"snapshot_id": "x", "records": [' + flood[: 3 * 349_525] + b"{}]}}\n"
        files["provenance/manifests.jsonl"] += line * 30
    elif which == "pages":
        files["pages/pages.jsonl"] += b'{"id": "x", "url": "http://example.org/", "junk": [' + flood + b"{}]}\n"
    elif which == "index":
        files[INDEX] += gzip.compress(b'org,example)/ 20261129130000 {"url": "http://example.org/", "junk": ['
                                      + flood + b'{}], "offset": "0", "filename": "data.warc.gz"}\n')
    elif which == "datapackage":
        package = json.loads(files["datapackage.json"])
        files["datapackage.json"] = json.dumps(package)[:-1].encode() + b', "junk": [' + flood + b"{}]}"
    elif which == "keyring":
        files["provenance/keyring.json"] = files["provenance/keyring.json"].rstrip()[:-1] + b', "junk": [' + flood + b"{}]}"


@pytest.mark.parametrize("which", ["manifests", "many-manifests", "pages", "index", "datapackage", "keyring"])
def test_a_flood_in_any_json_document_costs_bounded_memory(exported, cli, which):  # noqa: F811
    """30 MB of ``{},`` (a few KiB zipped) in one value of each JSON document
    of the package: each was parsed whole (about 25 bytes of memory per byte),
    and manifest entries were all kept until the end."""
    path, _, _ = exported
    files = entries(path)
    _flood_document(files, which, b"{}," * (10 << 20))
    rezip(path, files)
    assert path.stat().st_size < 1 << 20
    code, out, rss = verify_wacz_peak(path, cli, f"a 30 MB flood in {which}")
    assert code == 1
    json.loads(out)
    assert rss < 200, f"peak RSS {rss:.0f} MiB"

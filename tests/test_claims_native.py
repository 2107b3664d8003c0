"""verify's native reading of signed manifests and intents
(archiver/audit/_claimsc.c, wrapped by archiver/audit/claims.py) against the
Python reference it accelerates: a scanning task (audit/scanner.py) over the
same WARC bytes must give the same result -- summaries, verdicts, problems
and their wording, leftovers, intents -- with the native reader and without
it, on manifests and intents that are valid, malformed (types, shapes, JSON
outside the subset the C code reads) and forged (a changed byte, a wrong
digest, a flipped signature bit, another key's signature, a key outside its
window, a record of another snapshot, a missing record, a cut member).

Where the extension could not be built the tests skip, except on CI, where
it must be built (``.ci/run`` installs its headers)."""

from __future__ import annotations

import base64
import copy
import dataclasses
import gzip
import hashlib
import json
import os
import random
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from archiver.audit import claims, scanner
from archiver.audit.judge import Judge
from archiver.provenance.keyring import ED25519, KeyRecord, Keyring, key_id_for
from archiver.provenance.manifest import signed_records
from conftest import warc_files
from test_scan_native import verify_failing_both_ways
from test_verify import build, rewrite_warc

NATIVE = claims._mod
needs_native = pytest.mark.skipif(NATIVE is None and not os.environ.get("CI"), reason="archiver.audit._claimsc is not built here")

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _key(seed: int, valid_from: datetime = T0, valid_until: datetime | None = None) -> tuple[Ed25519PrivateKey, KeyRecord]:
    private = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"key %d" % seed).digest())
    der = private.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, KeyRecord(key_id=key_id_for(der), algorithm=ED25519, public_key=der, valid_from=valid_from,
                              valid_until=valid_until, name="archiver")


SIGNER, SIGNER_REC = _key(1)
OTHER, OTHER_REC = _key(2)  # a key not in the keyring
RETIRED, RETIRED_REC = _key(3, valid_until=T0 + timedelta(days=30))  # in the keyring, valid in January only
JUDGE = Judge(Keyring.of([SIGNER_REC, RETIRED_REC]))


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


# -- a generator of manifest documents, most valid, many not ---------------------------------------

def _manifest(rng: random.Random, sid: str, refs: list[dict[str, Any]]) -> dict[str, Any]:
    m: dict[str, Any] = {
        "snapshot_id": sid, "url": "http://example.test/a", "final_url": "http://example.test/a",
        "fetch_ended_at": "2026-03-01T10:00:00.5Z", "signed_at": "2026-03-01T10:00:01Z",
        "payload_sha256": "ab" * 32, "previous_manifest_sha256": rng.choice([None, "cd" * 32]),
        "records": copy.deepcopy(refs), "log": {"index": rng.randint(0, 10**6), "origin": "archiver/test"},
        "hops": [{"status": 200, "request_headers": {"Accept": "*/*"}, "tls": None}], "status": 200,
        "requisites": {"found": 0, "items": [], "limit": None, "not_fetched": 0}, "manifest_version": 1,
    }
    if rng.random() < 0.2:
        m["relogged_from"] = "ef" * 32
    if rng.random() < 0.5:
        m["diff_sha256"] = "0d" * 32
    if rng.random() < 0.3:  # a requisite's records, signed for too
        m["requisites"]["items"] = [{"url": "http://example.test/s.css", "records": copy.deepcopy(refs[:1])},
                                    {"url": "http://example.test/x.png", "outcome": "too-large"}]
    return m


MANIFEST_MUTATIONS: list[tuple[str, Any]] = [  # (dotted path, new value); "<del>" deletes
    ("snapshot_id", 5), ("snapshot_id", "<del>"), ("url", None), ("url", ""), ("final_url", ["x"]),
    ("log", None), ("log.index", "3"), ("log.index", True), ("log.index", 3.5), ("log.index", 10**30),
    ("log.index", -7), ("log", "<del>"), ("records", {}), ("records", "<del>"), ("records.0", "x"),
    ("records.0.record_id", 5), ("records.0.sha256", None), ("records.0.type", "<del>"), ("records.0.warc_file", "<del>"),
    ("records.0.warc_file", 7), ("records.0.offset", "12"), ("records.0.offset", None), ("records.0.offset", "<del>"),
    ("records.0.offset", 1.5), ("records.0.offset", 10**20), ("records.0.offset", -1), ("payload_sha256", 5),
    ("payload_sha256", "<del>"), ("payload_sha256", None), ("previous_manifest_sha256", 1), ("relogged_from", []),
    ("diff_sha256", 7), ("diff_sha256", None), ("diff_sha256", ["x"]), ("diff_sha256", "é"),
    ("signed_at", "<del>"), ("signed_at", None), ("signed_at", ""), ("signed_at", 0), ("signed_at", "2026-03-01T10:00:01"),
    ("signed_at", "2025-03-01T10:00:01Z"), ("signed_at", "yesterday"), ("signed_at", "2026-01-15T00:00:00Z"),
    ("fetch_ended_at", "<del>"), ("requisites", None), ("requisites", "<del>"), ("requisites", []),
    ("requisites.items", None), ("requisites.items", {}), ("requisites.items", [5]), ("requisites.items", [{"records": 5}]),
    ("requisites.items", [{"records": None}]), ("requisites.items", [{"records": [5]}]),
    ("requisites.items", [{"records": [{"record_id": 5, "sha256": "x"}]}]), ("url", "http://example.test/ä"),
    ("url", 'http://example.test/"q"'), ("url", "http://example.test/\\x"), ("url", "tab\there"), ("hops.0.status", 2.5),
    ("hops.0.status", -0), ("hops", json.loads("[" * 40 + "1" + "]" * 40)),
    ("x" * 3, {"b": 1, "a": [True, False, None]}), ("status", 1e300),
]


def _mutate(m: dict[str, Any], path: str, value: Any) -> None:
    keys = path.split(".")
    at: Any = m
    for k in keys[:-1]:
        at = at[int(k)] if isinstance(at, list) else at.get(k)
        if not isinstance(at, (dict, list)):
            return
    last = keys[-1]
    if isinstance(at, list):
        if int(last) < len(at):
            at[int(last)] = value
    elif value == "<del>":
        at.pop(last, None)
    else:
        at[last] = value


def _manifest_block(rng: random.Random, m: dict[str, Any]) -> bytes:
    """The record block archiver writes for ``m`` -- or, often, one that differs."""
    if rng.random() < 0.5:
        _mutate(m, *rng.choice(MANIFEST_MUTATIONS))
    data = _canonical(m)
    form = rng.random()
    if form < 0.04:
        data = json.dumps(m, sort_keys=True).encode()  # spaces
    elif form < 0.08:
        data = json.dumps(m, sort_keys=False, separators=(",", ":")).encode()  # keys unsorted
    elif form < 0.1:
        data = data[:-1] + b',"url":"http://example.test/b"}'  # a key twice: JSON keeps the last
    elif form < 0.12:
        data = json.dumps(m, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()  # escapes
    key, rec = rng.choices([(SIGNER, SIGNER_REC), (OTHER, OTHER_REC), (RETIRED, RETIRED_REC)], weights=[10, 1, 1])[0]
    signature = base64.b64encode(key.sign(data)).decode()
    digest = hashlib.sha256(data).hexdigest()
    key_id = rec.key_id
    damage = rng.random()
    if damage < 0.05:
        data = data.replace(b"example", b"exbmple", 1)  # signed bytes changed after signing
        digest = hashlib.sha256(data).hexdigest() if rng.random() < 0.5 else digest
    elif damage < 0.1:
        raw = bytearray(base64.b64decode(signature))
        raw[rng.randrange(64)] ^= 1 << rng.randrange(8)
        signature = base64.b64encode(bytes(raw)).decode()
    elif damage < 0.12:
        digest = hashlib.sha256(data + b" ").hexdigest()  # a stated digest of other bytes
    elif damage < 0.14:
        digest = digest.upper()
    elif damage < 0.16:
        key_id = rng.choice([key_id.upper(), key_id[:-1], "", "zz" + key_id[2:]])
    elif damage < 0.2:
        signature = rng.choice([signature.rstrip("="), signature[:-4] + "AAA=", signature + "==", "", "not base64!",
                                signature[:40], base64.b64encode(b"\0" * 64).decode(),
                                base64.urlsafe_b64encode(base64.b64decode(signature)).decode()])
    doc = (b'{"key_id":' + json.dumps(key_id).encode() + b',"manifest":' + data + b',"manifest_sha256":'
           + json.dumps(digest).encode() + b',"signature":' + json.dumps(signature).encode() + b"}")
    if rng.random() < 0.05:
        doc = rng.choice([doc.replace(b'{"key_id"', b'{ "key_id"'), doc + b" ", doc.replace(b'"signature"', b'"signature2"'),
                          json.dumps({"manifest": m, "key_id": key_id, "signature": signature,
                                      "manifest_sha256": digest}).encode(), b"[]", b"{}", doc[:-1]])
    return doc


def _intent_block(rng: random.Random, named: list[tuple[str, str]]) -> bytes:
    body: Any = {"v": 1, "created_at": "2026-03-01T10:00:00Z", "records": [{"record_id": r, "sha256": s} for r, s in named]}
    doc: Any = {"intent": body, "key_id": SIGNER_REC.key_id, "signature": base64.b64encode(b"\1" * 64).decode()}
    if rng.random() < 0.4:
        path, value = rng.choice([
            ("v", 1.0), ("v", True), ("v", "1"), ("v", 2), ("v", "<del>"), ("created_at", 5), ("created_at", "<del>"),
            ("records", {}), ("records", [5]), ("records", [{"record_id": "x"}]), ("records", [{"record_id": 5, "sha256": 6}]),
            ("records", []), ("records", "<del>"), ("extra", [1, {"z": None}]),
        ])
        _mutate(body, path, value)
    if rng.random() < 0.1:
        doc = rng.choice([{**doc, "key_id": 5}, {**doc, "signature": None}, {k: v for k, v in doc.items() if k != "intent"},
                          {**doc, "intent": []}, [doc]])
    data = _canonical(doc) if rng.random() < 0.9 else json.dumps(doc).encode()
    return data if rng.random() < 0.97 else data[:-2]  # not JSON at all


def _warc_record(rtype: str, rid: str, block: bytes, target: str, content_type: str) -> bytes:
    head = (f"WARC/1.1\r\nWARC-Type: {rtype}\r\nWARC-Record-ID: {rid}\r\nWARC-Date: 2026-03-01T10:00:00Z\r\n"
            f"WARC-Target-URI: {target}\r\nContent-Type: {content_type}\r\n"
            f"WARC-Block-Digest: sha256:{hashlib.sha256(block).hexdigest()}\r\nContent-Length: {len(block)}\r\n\r\n")
    return head.encode() + block + b"\r\n\r\n"


def _capture(rng: random.Random, n: int) -> list[bytes]:
    """One capture's records as archiver writes them -- request, response,
    intent, manifest -- with the manifest's and intent's claims, now and then
    on a record of another capture, a missing record or changed bytes."""
    sid = f"01snapshot{n:06d}"
    request = _warc_record("request", f"<urn:uuid:req-{n}>", b"GET /a HTTP/1.1\r\nHost: example.test\r\n\r\n",
                           "http://example.test/a", "application/http; msgtype=request")
    response = _warc_record("response", f"<urn:uuid:resp-{n}>", b"HTTP/1.1 200 OK\r\n\r\n<p>%d Menschen</p>" % n,
                            "http://example.test/a", "application/http; msgtype=response")
    refs = [{"record_id": f"<urn:uuid:resp-{n}>", "sha256": hashlib.sha256(response).hexdigest(), "type": "response",
             "warc_file": "test.warc.gz", "offset": 100 * n, "length": len(response)},
            {"record_id": f"<urn:uuid:req-{n}>", "sha256": hashlib.sha256(request).hexdigest(), "type": "request",
             "warc_file": "test.warc.gz", "offset": 100 * n + 50}]
    claim = rng.random()
    if claim < 0.05:
        refs[0]["record_id"] = f"<urn:uuid:resp-{n - 1}>"  # a record of another snapshot (its bytes are not these)
    elif claim < 0.1:
        refs.append({"record_id": f"<urn:uuid:gone-{n}>", "sha256": "00" * 32, "type": "resource", "warc_file": "x"})
    elif claim < 0.15:
        refs[1]["sha256"] = hashlib.sha256(request + b"x").hexdigest()  # the record's bytes changed
    target = rng.choices([f"urn:archiver:manifest:{sid}", "http://example.test/a", f"urn:archiver:manifest:{sid}x",
                          "urn:archiver:manifest:", "urn:archiver:manifesto"], weights=[20, 2, 1, 1, 1])[0]
    manifest = _warc_record("metadata", f"<urn:uuid:man-{n}>", _manifest_block(rng, _manifest(rng, sid, refs)), target,
                            rng.choices(["application/json", "application/JSON"], weights=[30, 1])[0])
    intent = _warc_record("metadata", f"<urn:uuid:int-{n}>",
                          _intent_block(rng, [(r["record_id"], r["sha256"]) for r in refs[:2]]),
                          f"urn:archiver:intent:{n}", "application/vnd.archiver.intent+json")
    return [request, response, intent, manifest]


def _file(seed: int) -> bytes:
    rng = random.Random(seed)
    records = [r for n in range(rng.randint(1, 6)) for r in _capture(rng, seed * 10 + n)]
    data = b"".join(gzip.compress(r, mtime=0) for r in records)
    if rng.random() < 0.05:
        data = data[: rng.randrange(len(data))]  # a cut member
    return data


def _task(path: Path, native: Any) -> scanner.TaskResult:
    saved = claims.native
    claims.native = native
    try:
        return scanner.scan_task([scanner.Piece(str(path), path.name)], {}, JUDGE)
    finally:
        claims.native = saved


def _fast(data: bytes) -> int:
    """How many manifests of a file the native reader reads and accepts on its own."""
    count = 0
    for member in data.split(b"\x1f\x8b\x08\x00\x00\x00\x00\x00")[1:]:
        try:
            record = gzip.decompress(b"\x1f\x8b\x08\x00\x00\x00\x00\x00" + member)
        except (OSError, EOFError):
            continue
        if b"Content-Type: application/json\r\n" in record and b"WARC-Type: metadata" in record:
            head, _, block = record.partition(b"\r\n\r\n")
            target = head.split(b"WARC-Target-URI: ")[1].split(b"\r\n")[0].decode()
            found = claims.manifest(block[:-4], target, JUDGE.raw_keys)
            count += found is not None and found.sig_ok and JUDGE.in_window(found.key_id, found.signed_at)
    return count


def _same(a: scanner.TaskResult, b: scanner.TaskResult) -> None:
    assert dataclasses.asdict(a) == dataclasses.asdict(b)


@needs_native
def test_a_task_reads_generated_manifests_and_intents_the_same_with_and_without_the_native_reader(tmp_path):
    fast = manifests = 0
    kinds: set[str] = set()
    for seed in range(300):
        path = tmp_path / "test.warc.gz"
        data = _file(seed)
        path.write_bytes(data)
        pure = _task(path, None)
        _same(_task(path, NATIVE), pure)
        fast += _fast(data)
        manifests += len(pure.rows)
        kinds.update(p[1] for p in pure.problems)
        kinds.update(s.verdict.split(":")[0] for s in pure.loose if s.verdict)
        kinds.update(s.sig_problem[0] for s in pure.loose if s.sig_problem)
    # the generator reaches both sides: most manifests read natively, and refusals of each kind
    assert fast > manifests // 3, (fast, manifests)
    assert {"foreign-record", "bad-signature", "manifest signature does not verify"} <= kinds, kinds


@needs_native
def test_forgeries_are_refused_alike():
    """Each forgery the native reader could be fooled by, one at a time: it
    either leaves the manifest to the reference or agrees with it."""
    sid = "01forgery"
    refs = [{"record_id": "<urn:uuid:r>", "sha256": "aa" * 32, "type": "response", "warc_file": "f", "offset": 1}]
    m = _manifest(random.Random(0), sid, refs)
    data = _canonical(m)
    good = base64.b64encode(SIGNER.sign(data)).decode()

    def doc(data: bytes = data, signature: str = good, digest: str | None = None, key_id: str = SIGNER_REC.key_id) -> bytes:
        return (b'{"key_id":"' + key_id.encode() + b'","manifest":' + data + b',"manifest_sha256":"'
                + (digest or hashlib.sha256(data).hexdigest()).encode() + b'","signature":"' + signature.encode() + b'"}')

    target = f"urn:archiver:manifest:{sid}"
    found = claims.manifest(doc(), target, JUDGE.raw_keys)
    assert found is not None and found.sig_ok and found.sid == sid
    assert found.claims == tuple((r["record_id"], r["sha256"], r["type"], r["warc_file"], r["offset"]) for r in signed_records(m))
    flipped = bytearray(base64.b64decode(good))
    flipped[5] ^= 4
    changed = data.replace(b"example", b"exbmple", 1)
    for forged in [doc(signature=base64.b64encode(bytes(flipped)).decode()),  # wrong signature
                   doc(signature=base64.b64encode(OTHER.sign(data)).decode()),  # another key's signature
                   doc(signature=base64.b64encode(OTHER.sign(data)).decode(), key_id=OTHER_REC.key_id),  # a key not trusted
                   doc(data=changed, signature=good)]:  # changed bytes, digest recomputed
        found = claims.manifest(forged, target, JUDGE.raw_keys)
        assert found is not None and not found.sig_ok
    for outside in [doc(digest="00" * 32),  # wrong digest
                    doc(data=changed, digest=hashlib.sha256(data).hexdigest()),  # changed bytes, digest kept
                    doc().replace(b'"snapshot_id":"01forgery"', b'"snapshot_id":"01forgerz"')]:
        assert claims.manifest(outside, target, JUDGE.raw_keys) is None
    assert claims.manifest(doc(), "urn:archiver:manifest:01other", JUDGE.raw_keys) is None  # another snapshot's record
    assert claims.manifest(doc(), target, {}) is not None and not claims.manifest(doc(), target, {}).sig_ok


@needs_native
def test_verify_reports_forged_manifests_the_same_with_and_without_the_native_reader(site, cli, tmp_path):
    """The real CLI as a process, ARCHIVER_PURE_PYTHON=1 or not, on an archive
    whose manifests were forged in place: a flipped signature bit, a changed
    signed byte with its digests recomputed, and a manifest naming a record
    of another snapshot re-signed by a key the keyring does not hold."""
    build(site, cli, n_urls=2, versions=2)
    state = {"n": 0}

    def tamper(headers: dict[str, str], block: bytes):
        if headers.get("Content-Type") != "application/json":
            return headers, block
        state["n"] += 1
        fields = json.loads(block)
        if state["n"] == 1:
            raw = bytearray(base64.b64decode(fields["signature"]))
            raw[0] ^= 1
            fields["signature"] = base64.b64encode(bytes(raw)).decode()
        elif state["n"] == 2:
            fields["manifest"]["status"] = 201
            fields["manifest_sha256"] = hashlib.sha256(_canonical(fields["manifest"])).hexdigest()
        elif state["n"] == 3:
            fields["manifest"]["records"][0]["record_id"] = "<urn:uuid:another>"
            data = _canonical(fields["manifest"])
            fields["manifest_sha256"] = hashlib.sha256(data).hexdigest()
            fields["signature"] = base64.b64encode(OTHER.sign(data)).decode()
        else:
            return headers, block
        m = _canonical(fields["manifest"])
        block = (b'{"key_id":"' + fields["key_id"].encode() + b'","manifest":' + m + b',"manifest_sha256":"'
                 + fields["manifest_sha256"].encode() + b'","signature":"' + fields["signature"].encode() + b'"}')
        return headers, block  # its digests recomputed, as a careful forger would

    for warc in warc_files(cli.data_dir):
        rewrite_warc(warc, tamper)
    assert state["n"] >= 3
    found = {p["kind"] for p in verify_failing_both_ways(cli)["problems"]}
    assert {"foreign-record", "manifest-mismatch", "record-changed"} <= found, found


@needs_native
def test_under_python_dev_mode_the_reader_is_clean(tmp_path):
    """The generator again in a child under ``-X dev`` (its allocator catches a write past a buffer)."""
    code = ("import sys; sys.path.insert(0, 'tests'); import test_claims_native as t, pathlib; "
            f"p = pathlib.Path({str(tmp_path)!r}) / 'test.warc.gz'\n"
            "for seed in range(60):\n"
            "    p.write_bytes(t._file(seed)); t._same(t._task(p, t.NATIVE), t._task(p, None))\n")
    r = subprocess.run([sys.executable, "-X", "dev", "-c", code], capture_output=True, text=True, timeout=300,
                       cwd=Path(__file__).resolve().parent.parent)
    assert r.returncode == 0, r.stderr[-2000:]


def test_in_window_answers_as_the_key_records_own_check_at_every_boundary():
    """Judge.in_window (asked per manifest a scan reads, each key's window
    looked up once) says what KeyRecord.valid_at says of the parsed signing
    time -- at the window's first instant, its last, just outside, in other
    zones -- and False for an unknown key, a time without a zone or no time."""
    judge = Judge(Keyring.of([SIGNER_REC, RETIRED_REC]))
    until = RETIRED_REC.valid_until
    assert until is not None
    for record in (SIGNER_REC, RETIRED_REC):
        for at in (T0 - timedelta(microseconds=1), T0, T0 + timedelta(days=3), until - timedelta(microseconds=1), until,
                   until + timedelta(seconds=1)):
            for text in (at.isoformat(), at.isoformat().replace("+00:00", "Z"),
                         at.astimezone(timezone(timedelta(hours=-5))).isoformat()):
                assert judge.in_window(record.key_id, text) == record.valid_at(at), (record.name, text)
    assert judge.in_window(SIGNER_REC.key_id, (T0 + timedelta(days=1)).isoformat())
    for bad in ((T0 + timedelta(days=1)).replace(tzinfo=None).isoformat(), "", "yesterday", "2026-13-01T00:00:00Z"):
        assert not judge.in_window(SIGNER_REC.key_id, bad), bad
    assert not judge.in_window(OTHER_REC.key_id, (T0 + timedelta(days=1)).isoformat())
    assert not judge.in_window(OTHER_REC.key_id, (T0 + timedelta(days=1)).isoformat())  # (remembered as unknown)

"""verify's fast record reading stays strict: the header read by WARC 1.1's
grammar (a header other tools could read differently is malformed), the
block and payload digests of every record checked where claimed -- signed
records too --, the same verdicts with zlib as with ISA-L, and the same
signatures accepted with OpenSSL alone as with libsodium first."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
from datetime import datetime, timezone

import pytest

from archiver.audit.judge import Judge
from archiver.audit.scanner import Piece, scan_task
from archiver.provenance import keyring as keyring_mod
from store import checked
from store.checked import iter_checked
from store.fields import content_length, parse_fields
from store.scan import TornTail
from store.warc import sha256_label
from test_verify import build, kinds, verify


def _label(data: bytes) -> str:
    return sha256_label(hashlib.sha256(data).digest())


def record(rtype: str, block: bytes, *, rid: str = "<urn:uuid:1>", extra: str = "", payload: bytes | None = None,
           block_label: str | None = None, payload_label: str | None = None) -> bytes:
    """One uncompressed WARC record, its digests right unless given."""
    head = (f"WARC/1.1\r\nWARC-Type: {rtype}\r\nWARC-Record-ID: {rid}\r\nWARC-Target-URI: http://example.test/\r\n"
            f"WARC-Block-Digest: {block_label or _label(block)}\r\n")
    if payload is not None or payload_label is not None:
        head += f"WARC-Payload-Digest: {payload_label or _label(payload or b'')}\r\n"
    head += extra + f"Content-Type: application/http; msgtype={rtype}\r\nContent-Length: {len(block)}\r\n\r\n"
    return head.encode() + block + b"\r\n\r\n"


HTTP = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n"
BODY = b"<p>42 Menschen</p>" * 40


def scan(*records: bytes, keep: bool = False) -> list:
    data = b"".join(gzip.compress(r) for r in records)
    return list(iter_checked(io.BytesIO(data), keep_all=lambda _h: keep))


# -- the header grammar ------------------------------------------------------

@pytest.mark.parametrize("head, why", [
    (b"WARC/1.1\r\nWARC-Type: response\r\nWARC-Type: warcinfo\r\n\r\n", "given twice"),
    (b"WARC/1.1\r\nWARC-Type: response\r\nwarc-type: warcinfo\r\n\r\n", "given twice"),
    (b"WARC/1.1\r\nContent-Length: 5\r\nContent-Length: 50\r\n\r\n", "given twice"),
    (b"WARC/1.1\r\nWARC Type: response\r\n\r\n", "malformed"),
    (b"WARC/1.1\r\nWARC-Type response\r\n\r\n", "malformed"),
    (b"WARC/1.1\r\nWARC-Type: resp\x00onse\r\n\r\n", "malformed"),
    (b"WARC/1.1\r\nWARC-Type: response\nWARC-Type: warcinfo\r\n\r\n", "malformed"),
    (b"WARC/1.1\r\nWARC-Type: response\rX: y\r\n\r\n", "malformed"),
    (b"WARC/1.1\r\nWARC-Target-URI: http://x/\xff\xfe\r\n\r\n", "not UTF-8"),
    (b"WARC/2.0\r\nWARC-Type: response\r\n\r\n", "malformed"),
    (b"HTTP/1.1 200 OK\r\n\r\n", "not a WARC record"),
])
def test_a_header_other_readers_could_take_differently_is_malformed(head, why):
    with pytest.raises(ValueError, match=why):
        parse_fields(head + b"body")


def test_the_grammar_still_reads_what_it_allows():
    headers, end = parse_fields(b"WARC/1.0\r\nWARC-Type: response\r\nWARC-Concurrent-To: <a>\r\n"
                                b"WARC-Concurrent-To: <b>\r\nX-Note: one\r\n\ttwo \r\nEmpty:\r\n\r\nblock")
    assert headers["WARC-Type"] == "response" and headers["X-Note"] == "one two" and headers["Empty"] == ""
    assert end == len(b"WARC/1.0\r\nWARC-Type: response\r\nWARC-Concurrent-To: <a>\r\n"
                      b"WARC-Concurrent-To: <b>\r\nX-Note: one\r\n\ttwo \r\nEmpty:")
    for bad in ("+5", "1_0", " 5", "5 x", "", "٥"):
        with pytest.raises(ValueError):
            content_length({"Content-Length": bad})
    assert content_length({"Content-Length": "0042"}) == 42


# -- digests, streamed -------------------------------------------------------

def test_block_and_payload_digests_are_checked_as_the_bytes_stream():
    good = record("response", HTTP + BODY, payload=BODY)
    bad_block = record("response", HTTP + BODY, payload=BODY, block_label=_label(b"x"))
    bad_payload = record("response", HTTP + BODY, payload=b"other")
    items = scan(good, bad_block, bad_payload)
    assert [(i.block_ok, i.payload_ok) for i in items] == [(True, True), (False, True), (True, False)]
    assert items[0].payload_sha256 == hashlib.sha256(BODY).hexdigest()
    assert all(i.error is None and i.sha256 == hashlib.sha256(r).hexdigest()
               for i, r in zip(items, (good, bad_block, bad_payload)))


def test_a_large_record_is_hashed_in_pieces_and_kept_only_as_far_as_its_head():
    body = bytes(range(256)) * 20_000  # 5 MB: many inflate chunks, several reads
    rec = record("response", HTTP + body, payload=body)
    (item,) = scan(rec)
    assert (item.block_ok, item.payload_ok, item.whole) == (True, True, False)
    assert len(item.data) == checked.HEAD and item.sha256 == hashlib.sha256(rec).hexdigest()
    (bad,) = scan(record("response", HTTP + body, payload=body[:-1]))
    assert bad.payload_ok is False


def test_chunked_payloads_are_dechunked_and_revisits_not_checked_against_their_own_block():
    chunked_http = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunks = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    good, bad = (record("response", chunked_http + chunks, payload=p) for p in (b"hello world", chunks))
    revisit = record("revisit", HTTP, payload=b"the original's payload")
    items = scan(good, bad, revisit)
    assert [i.payload_ok for i in items] == [True, False, None]
    assert items[0].payload_sha256 == hashlib.sha256(b"hello world").hexdigest()


def test_metadata_payload_is_its_block():
    doc = b'{"a":1}'
    items = scan(record("metadata", doc, payload=doc), record("metadata", doc, payload=b"{}"), keep=True)
    assert [(i.block_ok, i.payload_ok, i.whole) for i in items] == [(True, True, True), (True, False, True)]


def test_a_record_whose_length_or_ending_lies_is_malformed():
    rec = record("response", HTTP + BODY, payload=BODY)
    short = rec.replace(f"Content-Length: {len(HTTP + BODY)}".encode(), f"Content-Length: {len(HTTP + BODY) + 9}".encode())
    trailing = rec + b"hidden bytes inside the same gzip member"
    items = scan(short, trailing)
    assert "Content-Length says" in items[0].error
    assert "CRLF CRLF" in items[1].error


def test_zlib_and_isal_give_the_same_verdicts(monkeypatch):
    import zlib

    monkeypatch.setattr(checked, "native", None)  # the Python path's inflaters (the native one: test_scan_native.py)
    recs = [record("response", HTTP + BODY, payload=BODY), record("response", HTTP + BODY, payload=b"x"),
            record("request", b"GET / HTTP/1.1\r\n\r\n", payload=b"")]
    data = b"".join(gzip.compress(r) for r in recs) + gzip.compress(recs[0])[:40]  # and a torn tail

    def verdicts() -> list:
        return [(i.sha256, i.block_ok, i.payload_ok, i.error) if not isinstance(i, TornTail) else ("torn", i.offset)
                for i in iter_checked(io.BytesIO(data))]

    fast = verdicts()
    monkeypatch.setattr(checked, "_inflate", zlib)
    monkeypatch.setattr(checked, "INFLATE_ERRORS", (zlib.error,))
    assert verdicts() == fast and fast[-1][0] == "torn" and fast[1][2] is False


def test_a_signed_record_whose_own_payload_digest_is_wrong_is_reported(tmp_path):
    """The index vouches for the record's bytes (its SHA-256 matches), yet its
    WARC-Payload-Digest is wrong: the digest is checked all the same."""
    rec = record("response", HTTP + BODY, rid="<urn:uuid:r1>", payload=b"not the body")
    path = tmp_path / "a.warc.gz"
    path.write_bytes(gzip.compress(rec))
    rows = {"<urn:uuid:r1>": ("s1", "a.warc.gz", 0, hashlib.sha256(rec).hexdigest())}
    result = scan_task([Piece(str(path), "a.warc.gz")], rows, Judge(None))
    assert [p[1] for p in result.problems] == ["payload-digest"]


# -- end to end ----------------------------------------------------------------

def test_a_forged_record_hiding_behind_a_second_warc_type_is_caught(site, cli):
    """Appended with its type given twice, a forged response passed as a
    warcinfo (which no manifest names) when the last field won; replay tools
    reading the first would serve it."""
    build(site, cli, n_urls=1, versions=1)
    code, report = verify(cli)
    assert code == 0, report["problems"]
    forged = record("response", HTTP + b"<p>9000 Menschen</p>", rid="<urn:uuid:f0>", payload=b"<p>9000 Menschen</p>",
                    extra="WARC-Type: warcinfo\r\n")
    (path,) = [p for p in (cli.data_dir / "warcs").iterdir() if p.name.endswith(".warc.gz")]
    with open(path, "ab") as fh:
        fh.write(gzip.compress(forged))
    code, report = verify(cli)
    assert code == 1
    assert (None, "bad-record") in kinds(report)
    assert any("given twice" in p["detail"] for p in report["problems"])


def test_signatures_are_judged_alike_with_and_without_libsodium(monkeypatch):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    rec = keyring_mod.KeyRecord(key_id=keyring_mod.key_id_for(der), algorithm=keyring_mod.ED25519, public_key=der,
                                valid_from=datetime(2020, 1, 1, tzinfo=timezone.utc), valid_until=None, name="t")
    ring = keyring_mod.Keyring.of([rec])
    good = key.sign(b"manifest")
    bad = bytearray(good)
    bad[5] ^= 1
    at = datetime(2024, 1, 1, tzinfo=timezone.utc)

    def judged() -> list[bool]:
        out = []
        for data, sig in ((b"manifest", good), (b"manifest!", good), (b"manifest", bytes(bad)), (b"manifest", good[:63])):
            try:
                ring.verify(rec.key_id, data, sig, at)
                out.append(True)
            except Exception:
                out.append(False)
        return out

    assert keyring_mod.ed25519_sodium(der, b"manifest", good) is True
    with_sodium = judged()
    monkeypatch.setattr(keyring_mod, "sodium", lambda: None)
    assert keyring_mod.ed25519_sodium(der, b"manifest", good) is False
    assert judged() == with_sodium == [True, False, False, False]



def test_verify_names_the_timestamps_directory_as_timestamping_does():
    """logcheck skips loading the RFC 3161 code when no tokens are stored: it
    must look where timestamping stores them."""
    from archiver.audit.logcheck import TIMESTAMPS
    from archiver.provenance.timestamping import TIMESTAMPS_DIR

    assert TIMESTAMPS == TIMESTAMPS_DIR


def test_a_manifest_read_from_its_own_bytes_is_the_one_the_general_reader_sees():
    """signed_manifest splits a manifest record by position; it must agree
    with json's reading of it, and decline whatever it cannot read exactly."""
    from archiver.capture.records import manifest_fields, signed_manifest
    from store.scan import ParsedRecord

    manifest = {"snapshot_id": "s1", "url": "http://x/", "final_url": "http://x/", "log": {"index": 0},
                "records": [{"record_id": "<urn:uuid:a>", "sha256": "0" * 64, "type": "response"}],
                "note": '","signature":"AAAA","manifest_sha256":"' + "1" * 64}
    canonical = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()

    def rec(doc: dict) -> ParsedRecord:
        body = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
        return ParsedRecord({"WARC-Type": "metadata", "Content-Type": "application/json",
                             "WARC-Target-URI": "urn:archiver:manifest:s1"}, body)

    doc = {"key_id": "ab" * 32, "manifest": manifest, "manifest_sha256": hashlib.sha256(canonical).hexdigest(),
           "signature": "c2lnbmF0dXJl+/=="}
    fields, data = signed_manifest(rec(doc))
    assert fields == manifest_fields(rec(doc)) and data == canonical
    assert signed_manifest(rec({**doc, "manifest_sha256": "2" * 64})) is None  # bytes not the stated digest's
    assert signed_manifest(rec({**doc, "extra": 1})) is None  # another shape: the general reader's
    umlaut = {**manifest, "url": "http://x/ü"}
    signed = hashlib.sha256(json.dumps(umlaut, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()).hexdigest()
    assert signed_manifest(rec({**doc, "manifest": umlaut, "manifest_sha256": signed})) is None  # escaped in the record
    assert manifest_fields(rec({**doc, "extra": 1})) is not None


def test_a_record_read_in_one_call_and_one_streamed_in_pieces_get_the_same_verdicts(monkeypatch):
    chunked_http = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunks = b"5\r\nhello\r\n0\r\n\r\n"
    recs = [record("response", HTTP + BODY, payload=BODY), record("response", HTTP + BODY, payload=b"x"),
            record("response", HTTP + BODY, payload=BODY, block_label="sha256:zz"),
            record("request", b"GET / HTTP/1.1\r\n\r\n", payload=b""), record("revisit", HTTP, payload=b"orig"),
            record("response", chunked_http + chunks, payload=b"hello"), record("metadata", b"{}", payload=b"{}"),
            record("metadata", b"{}", payload=b"[]"), record("resource", b"abc", payload=b"abc", block_label="sha1:" + "A" * 32),
            record("response", HTTP + BODY, payload=BODY) + b"tail", record("warcinfo", b"a: b\r\n")]

    def verdicts() -> list:
        return [(i.sha256, i.block_ok, i.payload_ok, i.payload_sha256, i.error, i.whole, i.data[:300]) for i in scan(*recs)]

    monkeypatch.setattr(checked, "native", None)  # the Python paths (the native one: test_scan_native.py)
    one_call = verdicts()
    monkeypatch.setattr(checked, "FEED_SIZE", 7)  # every record now streams past in pieces
    assert verdicts() == one_call
    assert [v[1:3] for v in one_call[:5]] == [(True, True), (True, False), (False, True), (True, True), (True, None)]

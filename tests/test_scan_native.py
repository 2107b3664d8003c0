"""verify's native scanner (store/_scanc.c) against the pure-Python reading
it accelerates (store/checked.py): the same records, offsets, digests and
verdicts -- error texts and torn tails included -- on valid, malformed and
forged input, from a seeded generator of WARC files; bounds and buffer ends
held under ``python -X dev`` (its allocator catches a write past a buffer);
and ``archiver verify`` saying the same either way on a tampered archive.

Where the extension could not be built the differential tests skip, except
on CI, where it must be built (``.ci/run`` installs its headers)."""

from __future__ import annotations

import base64
import dataclasses
import gzip
import hashlib
import io
import json
import os
import random
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from conftest import warc_files
from store import checked
from store.checked import Checked, iter_checked
from store.scan import TornTail
from test_verify import build, rewrite_warc

NATIVE = checked._native_mod
needs_native = pytest.mark.skipif(NATIVE is None and not os.environ.get("CI"), reason="store._scanc is not built here")
FIELDS = [f.name for f in dataclasses.fields(Checked)]  # offset, length, sha256, data, whole, headers, ...


# -- a generator of WARC records, most well formed, many not --------------------------------------

def _label(data: bytes, rng: random.Random) -> str:
    digest = hashlib.sha256(data).digest()
    return rng.choices([
        "sha256:" + digest.hex(), "sha256:" + digest.hex().upper(), "SHA256:" + digest.hex(),
        "sha256:" + base64.b32encode(digest).decode(), "sha1:" + base64.b32encode(hashlib.sha1(data).digest()).decode(),
        "sha256:" + hashlib.sha256(data + b"x").hexdigest(), "sha256:zz" + digest.hex()[2:], "sha256:" + digest.hex()[:62],
        "sha256:" + digest.hex()[:30] + " " + digest.hex()[30:63], "md5:" + hashlib.md5(data).hexdigest(), "",
    ], weights=[30, 2, 2, 2, 2, 3, 1, 1, 1, 1, 1])[0]


def _block(rtype: str, rng: random.Random) -> tuple[bytes, bytes]:
    """(block, payload) for a record of this type."""
    body = rng.choice([b"", b"<p>42 Menschen</p>" * rng.randint(1, 300), rng.randbytes(rng.randint(1, 2000)),
                       b"\r\n\r\n", b"chunked"])
    if rtype in ("response", "request", "revisit", "Response"):
        head = rng.choice([
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nX-Note: CHUNKED maybe\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: example.test\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n",  # no end of head
            b"",
        ])
        if b"Transfer-Encoding: chunked" in head and rng.random() < 0.7:
            return head + b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n", body
        return head + body, body
    if rtype == "metadata":
        block = json.dumps({"a": rng.random(), "b": "x" * rng.randint(0, 500)}).encode()
        return block, block
    return body, body


ODD_LINES = [  # header lines to add: most outside the native scanner's plain shape, some inside it
    "X-Note: one\ttwo", "X-Folded: one\r\n two", "X-Folded: one\r\n\ttwo", "X-Name: Müller", "X-Ctl: a\x01b",
    "X-Lone: a\nb", "X-Lone: a\rb", "WARC Type: response", "No-Colon", ": empty name", "X-Spaces:    padded   ",
    "X-Tight:value", "X-Empty:", "X-Del: a\x7fb", "X-Trailing-CR: a\r", "X-" + "n" * 70_000 + ": long", "X-\xe9: latin",
    "WARC-Concurrent-To: <urn:uuid:a>\r\nWARC-Concurrent-To: <urn:uuid:b>",  # may repeat
    "WARC-Protocol: http/1.1\r\nwarc-protocol: tls/1.3",
]


def _record(rng: random.Random) -> bytes:
    rtype = rng.choices(["response", "request", "revisit", "metadata", "resource", "warcinfo", "", "Response"],
                        weights=[8, 5, 3, 5, 2, 1, 1, 1])[0]
    block, payload = _block(rtype, rng)
    fields = [("WARC-Type", rtype), ("WARC-Record-ID", f"<urn:uuid:{rng.getrandbits(64):x}>"),
              ("WARC-Target-URI", f"http://example.test/{rng.randint(0, 9)}"), ("WARC-Date", "2026-11-30T02:39:24Z")]
    if rng.random() < 0.9:
        fields.append(("WARC-Block-Digest", _label(block, rng)))
    if rng.random() < 0.7:
        fields.append(("WARC-Payload-Digest", _label(payload if rng.random() < 0.9 else block, rng)))
    fields.append(("Content-Type", "application/http; msgtype=response"))
    length = str(len(block))
    version = "WARC/1.1"
    lines: list[str] = []
    mutation = rng.random()
    if mutation < 0.5:
        kind = rng.randrange(len(ODD_LINES) + 6)
        if kind < len(ODD_LINES):
            lines.append(ODD_LINES[kind])
        elif kind == len(ODD_LINES):
            fields.append(rng.choice(fields))  # a field twice
        elif kind == len(ODD_LINES) + 1:
            fields.append((fields[0][0].lower(), "warcinfo"))  # twice, in another case
        elif kind == len(ODD_LINES) + 2:
            version = rng.choice(["WARC/1.0", "WARC/2.0", "warc/1.1", "WARC/1.1 "])
        elif kind == len(ODD_LINES) + 3:
            length = rng.choice(["+5", "5x", "", " ", "0" + length, "9" * 20, length + " ", "\u0665", "-1", length * 2])
        elif kind == len(ODD_LINES) + 4:
            fields.append(("content-length", length))
            length = ""
        else:
            length = str(len(block) + rng.choice([-1, 1, 4, -4]))
    if length != "":
        fields.append(("Content-Length", length) if rng.random() < 0.95 else ("Content-Length", length + "\x00"))
    body = [f"{k}: {v}" for k, v in fields] + lines
    rng.shuffle(body) if rng.random() < 0.2 else None
    head = (version + "\r\n" + "\r\n".join(body) + "\r\n\r\n").encode("utf-8", "surrogateescape")
    if rng.random() < 0.03:
        head = head.replace(b"\xc3\xa9", b"\xe9")  # not UTF-8
    end = rng.choices([b"\r\n\r\n", b"\r\n", b"", b"\r\n\r\nX"], weights=[40, 1, 1, 1])[0]
    return head + block + end


def _member(data: bytes, rng: random.Random) -> bytes:
    z = zlib.compressobj(rng.choice([1, 6, 9]), zlib.DEFLATED, 31)
    return z.compress(data) + z.flush() if rng.random() < 0.5 else gzip.compress(data, mtime=0)


def _file(seed: int) -> bytes:
    rng = random.Random(seed)
    members = [_member(_record(rng), rng) for _ in range(rng.randint(1, 40))]
    if rng.random() < 0.1:  # a large record: the streaming path's, between small ones
        big = b"WARC/1.1\r\nWARC-Type: resource\r\nContent-Length: 300000\r\n\r\n" + rng.randbytes(300_000) + b"\r\n\r\n"
        members.insert(rng.randrange(len(members) + 1), gzip.compress(big, mtime=0))
    data = bytearray(b"".join(members))
    damage = rng.random()
    if damage < 0.1:
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)  # a flipped bit: CRC, deflate or header
    elif damage < 0.15:
        del data[rng.randrange(len(data)):]  # torn
    elif damage < 0.2:
        data += rng.randbytes(rng.randint(1, 50))  # garbage after the last member
    elif damage < 0.22:
        data += b"\x1f\x8b\x08\x00"  # a member's first bytes and no more
    return bytes(data)


def _verdict(item: Checked, keep_all) -> tuple:
    """Every field of a record as read, but how much of it was kept only where
    it is read on: the whole of a record kept (a manifest or an intent), else
    its first bytes. (The pure-Python path's two readings already differ in
    what they keep of a malformed record, which verify reports and reads no
    further.)"""
    kept = item.data if item.error is None and item.headers is not None and keep_all(item.headers) else None
    return tuple(getattr(item, f) for f in FIELDS if f not in ("whole", "data")) + (item.data[:checked.HEAD], kept)


def _read(data: bytes, *, native: object, start: int = 0, stop: int | None = None, keep: str = "metadata") -> list:
    saved = checked.native
    checked.native = native
    try:
        fh = io.BytesIO(data)
        fh.seek(start)
        keep_all = (lambda _h: True) if keep == "all" else (lambda h: h.get("WARC-Type") == "metadata")
        return [("torn", i.offset, i.length, i.reason) if isinstance(i, TornTail) else _verdict(i, keep_all)
                for i in iter_checked(fh, start=start, stop=stop, keep_all=keep_all)]
    finally:
        checked.native = saved


def _judged_natively(data: bytes) -> int:
    """Records the native scanner judged itself (not handed back as bytes)."""
    pos, count = 0, 0
    while pos < len(data):
        found, pos, handoff = NATIVE.scan(data, pos, 0, -1, checked.SMALL)
        count += sum(1 for t in found if t[4] is not None)
        if handoff:
            break
    return count


def check_seeds(seeds: range) -> int:
    """Native and pure-Python readings of each seed's file are equal; how many records the native scanner judged itself."""
    fast = 0
    for seed in seeds:
        data = _file(seed)
        rng = random.Random(~seed)
        checked.READ_SIZE = rng.choice([1 << 20, 1 << 20, 4096, rng.randint(100, 30_000)])  # buffer ends inside members
        try:
            keep = rng.choice(["metadata", "all"])
            pure = _read(data, native=None, keep=keep)
            assert _read(data, native=NATIVE, keep=keep) == pure, f"seed {seed}"
            offsets = [r[1] if r[0] == "torn" else r[0] for r in pure]
            if len(offsets) > 2:  # a piece of the file, as verify cuts large ones
                a, b = sorted(rng.sample(offsets, 2))
                assert _read(data, native=NATIVE, start=a, stop=b) == _read(data, native=None, start=a, stop=b), f"seed {seed}"
            fast += _judged_natively(data)
        finally:
            checked.READ_SIZE = 1 << 20
    return fast


@needs_native
def test_the_native_scanner_reads_every_generated_file_as_the_python_code_does():
    assert NATIVE is not None, "store._scanc must be built on CI (.ci/run installs gcc, zlib and OpenSSL headers)"
    assert check_seeds(range(400)) > 1500  # many records are plain: the native judging is exercised, not only its hand-backs


@needs_native
def test_under_python_dev_mode_no_buffer_is_overrun(tmp_path):
    """-X dev puts guard bytes around every PyMem block (the native scanner's
    buffers among them) and checks them on free."""
    code = "import sys; sys.path.insert(0, 'tests'); import test_scan_native as t; print(t.check_seeds(range(400, 520)))"
    r = subprocess.run([sys.executable, "-X", "dev", "-c", code], capture_output=True, text=True, timeout=240,
                       cwd=Path(__file__).resolve().parent.parent)
    assert r.returncode == 0, r.stderr[-2000:]
    assert int(r.stdout.strip()) > 300


@needs_native
def test_native_and_python_agree_on_records_archiver_writes_and_their_forgeries():
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n"
    body = b"<p>42 Menschen</p>" * 50
    block = head + body

    def rec(extra: str = "", blabel: str | None = None, plabel: str | None = None, rtype: str = "response") -> bytes:
        h = (f"WARC/1.1\r\nWARC-Type: {rtype}\r\nWARC-Record-ID: <urn:uuid:1>\r\n{extra}"
             f"WARC-Block-Digest: {blabel or 'sha256:' + hashlib.sha256(block).hexdigest()}\r\n"
             f"WARC-Payload-Digest: {plabel or 'sha256:' + hashlib.sha256(body).hexdigest()}\r\n"
             f"Content-Length: {len(block)}\r\n\r\n")
        return h.encode() + block + b"\r\n\r\n"

    recs = [rec(), rec(blabel="sha256:" + "0" * 64), rec(plabel="sha256:" + "0" * 64), rec("WARC-Type: warcinfo\r\n"),
            rec("warc-type: warcinfo\r\n"), rec(rtype="revisit", plabel="sha256:" + "1" * 64), rec(rtype="metadata")]
    data = b"".join(gzip.compress(r) for r in recs)
    native = _read(data, native=NATIVE)
    assert native == _read(data, native=None)
    names = [f for f in FIELDS if f not in ("whole", "data")]
    verdicts = [(r[names.index("block_ok")], r[names.index("payload_ok")], r[names.index("error")]) for r in native]
    assert verdicts[:3] == [(True, True, None), (False, True, None), (True, False, None)]
    assert "given twice" in verdicts[3][2] and "given twice" in verdicts[4][2]  # the hidden second WARC-Type
    assert verdicts[5] == (True, None, None)  # a revisit's payload digest names the original's
    assert verdicts[6] == (True, False, None)  # metadata: payload = block


def test_verify_reports_the_same_with_and_without_the_native_scanner(site, cli, tmp_path):
    """The real CLI as a process, ARCHIVER_PURE_PYTHON=1 or not: the same
    report on a tampered archive (a forged record behind a second WARC-Type,
    a changed response with its digests recomputed, a record with a wrong
    block digest)."""
    build(site, cli, n_urls=2, versions=2)
    warc = warc_files(cli.data_dir)[0]
    state = {"n": 0}

    def tamper(headers: dict[str, str], block: bytes):
        if headers.get("WARC-Type") != "response":
            return headers, block
        state["n"] += 1
        if state["n"] == 1:
            return headers, block.replace(b"Menschen", b"Leute")
        return headers, block

    rewrite_warc(warc, tamper)
    raw = bytearray(warc.read_bytes())
    forged = (b"WARC/1.1\r\nWARC-Type: response\r\nWARC-Type: warcinfo\r\nWARC-Record-ID: <urn:uuid:f>\r\n"
              b"Content-Length: 4\r\n\r\nfake\r\n\r\n")
    bad_digest = (b"WARC/1.1\r\nWARC-Type: resource\r\nWARC-Record-ID: <urn:uuid:g>\r\nWARC-Block-Digest: sha256:"
                  + b"0" * 64 + b"\r\nContent-Length: 4\r\n\r\nfake\r\n\r\n")
    chunks = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nfake\r\n0\r\n\r\n"  # a bad chunk size
    bad_chunks = (b"WARC/1.1\r\nWARC-Type: response\r\nWARC-Record-ID: <urn:uuid:h>\r\nContent-Length: %d\r\n\r\n"
                  % len(chunks) + chunks + b"\r\n\r\n")
    raw += gzip.compress(forged) + gzip.compress(bad_digest) + gzip.compress(bad_chunks)
    warc.write_bytes(bytes(raw))
    found = {p["kind"] for p in verify_failing_both_ways(cli)["problems"]}
    assert {"record-changed", "bad-record", "block-digest"} <= found, found


def verify_failing_both_ways(cli) -> dict:
    """``archiver verify --json`` on a damaged archive, with and without the
    native parts: both fail cleanly (exit 1, no traceback) with the same JSON --
    but for ``vouched``, how the native reader's signatures were checked (the
    pure-Python reference checks every one itself: audit/leafvouch.py)."""
    env = {**os.environ, **cli.env, "ARCHIVER_DATA_DIR": str(cli.data_dir)}
    outs = []
    for pure in ("", "1"):
        r = subprocess.run([sys.executable, "-m", "archiver", "verify", "--json"], capture_output=True, text=True,
                           env={**env, "ARCHIVER_PURE_PYTHON": pure}, timeout=120)
        assert r.returncode == 1 and "Traceback" not in r.stderr
        outs.append(json.loads(r.stdout))
    assert outs[1].pop("vouched") == 0
    outs[0].pop("vouched")
    assert outs[0] == outs[1]
    return outs[0]

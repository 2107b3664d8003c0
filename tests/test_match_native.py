"""A scanning task's native bookkeeping of plain records
(archiver/audit/_matchc.c ``settle``), and its reading of signed records
found where the index has them (``_Task._signed_record``, with the native
manifest reader), against the Python they stand in for (audit/scanner.py
``_Task._record`` and the reference reader): the same WARC bytes and the
same index rows give the same task result -- problems and their wording, leftovers,
records not where the index has them, misplaced rows, summaries -- with it
and without it. The index rows are those of the records, now and then
wrong: another offset, file or SHA-256, a row for a record that is not
there, a record without a row, a record id twice, a digest its header
claims wrongly, a manifest waiting for a record before it arrives.

Where the extension could not be built the tests skip, except on CI."""

from __future__ import annotations

import base64
import dataclasses
import gzip
import hashlib
import json
import os
import random
import types
from pathlib import Path
from typing import Any

import pytest

from archiver.audit import claims, scanner
from store.checked import iter_plain
from test_claims_native import (
    JUDGE,
    OTHER,
    OTHER_REC,
    RETIRED,
    RETIRED_REC,
    SIGNER,
    SIGNER_REC,
    _canonical,
    _capture,
    _manifest,
    _warc_record,
)

NATIVE = scanner._matchc
needs_native = pytest.mark.skipif(NATIVE is None and not os.environ.get("CI"), reason="archiver.audit._matchc is not built here")


def _as_revisit(rng: random.Random, record: bytes) -> bytes:
    """A response made a revisit naming another record, its payload digest
    in one of the forms a label may take (settle notes archiver's own form,
    ``sha256:`` and 64 hex digits in either case; the reference any other)."""
    payload = hashlib.sha256(record).digest()
    label = rng.choice([f"sha256:{payload.hex()}", f"SHA256:{payload.hex().upper()}", f"sha256:{payload.hex()[:63]}g",
                        f"sha256:{base64.b32encode(payload).decode()}", f"sha1:{base64.b32encode(payload[:20]).decode()}",
                        f"sha256:{payload.hex()[:62]}", None])
    fields = "WARC-Type: revisit\r\n" + ("" if rng.random() < 0.1 else "WARC-Refers-To: <urn:uuid:resp-0>\r\n")
    fields += "" if label is None else f"WARC-Payload-Digest: {label}\r\n"
    return record.replace(b"WARC-Type: response\r\n", fields.encode(), 1)


def _records(rng: random.Random, seed: int) -> list[bytes]:
    captures = [_capture(rng, seed * 10 + n) for n in range(rng.randint(1, 6))]
    for c in captures:
        if rng.random() < 0.3:
            c[1] = _as_revisit(rng, c[1])
    records = [r for c in captures for r in c]
    if rng.random() < 0.3:  # group commit: every capture's records first, then the manifests
        records = [r for c in captures for r in c[:3]] + [c[3] for c in captures]
    if rng.random() < 0.3:  # a manifest before its records: they arrive while it waits
        i = rng.randrange(len(records))
        records.insert(0, records.pop(i))
    if rng.random() < 0.2:  # a record id twice, with other bytes
        i = rng.randrange(len(records))
        records.insert(rng.randrange(len(records)), records[i].replace(b"example.test", b"exbmple.test", 1))
    if rng.random() < 0.2:  # a digest its header claims wrongly, or a record no manifest names
        records.append(_warc_record(rng.choice(["resource", "response", "revisit", "warcinfo", "metadata"]),
                                    f"<urn:uuid:extra-{seed}>", b"HTTP/1.1 200 OK\r\n\r\nx", "http://example.test/x",
                                    "application/http; msgtype=response"))
        if rng.random() < 0.5:
            records[-1] = records[-1].replace(b"sha256:", b"sha256:00", 1)[:-4] + b"\r\n\r\n"
    return records


def _index(rng: random.Random, path: Path) -> scanner.IndexRows:
    """The index's rows for the records of ``path``, now and then wrong."""
    rows: scanner.IndexRows = {}
    with open(path, "rb") as fh:
        for item in iter_plain(fh):
            if not isinstance(item, tuple):
                continue
            rid = item[4].get("WARC-Record-ID", "")
            row = (f"snap-{rid}", path.name, item[0], item[2])
            damage = rng.random()
            if damage < 0.04:
                continue  # no row
            if damage < 0.08:
                row = (row[0], row[1], row[2] + 1, row[3])
            elif damage < 0.11:
                row = (row[0], "other.warc.gz", row[2], row[3])
            elif damage < 0.14:
                row = (row[0], row[1], row[2], "ab" * 32)
            rows[rid] = row
    if rng.random() < 0.2:
        rows["<urn:uuid:nowhere>"] = ("snap-x", path.name, 5, "cd" * 32)
    return rows


def _task(path: Path, rows: scanner.IndexRows, settle: Any, summaries: Any = None) -> scanner.TaskResult:
    """A task with every native part (settle given; summaries: its stand-in
    for _matchc.summaries) or none (the reference)."""
    saved = scanner.settle, claims.native, scanner._matchc
    scanner.settle, claims.native = settle, claims._mod if settle is not None else None
    if summaries is not None:
        scanner._matchc = types.SimpleNamespace(settle=NATIVE.settle, summaries=summaries)
    try:
        return scanner.scan_task([scanner.Piece(str(path), path.name)], dict(rows), JUDGE)
    finally:
        scanner.settle, claims.native, scanner._matchc = saved


@needs_native
def test_a_task_keeps_the_same_books_with_and_without_the_native_bookkeeping(tmp_path):
    settled = signed = total = noted = rows_made = 0
    kinds: set[str] = set()
    for seed in range(300):
        rng = random.Random(seed)
        records = _records(rng, seed)
        data = b"".join(gzip.compress(r, mtime=0) for r in records)
        if rng.random() < 0.05:
            data = data[: rng.randrange(len(data))]  # a cut member
        path = tmp_path / "test.warc.gz"
        path.write_bytes(data)
        rows = _index(rng, path)
        pure = _task(path, rows, None)
        calls: list[int] = []
        summed: list[int] = []

        taken: list[int] = []

        def counting(found: list[Any], i: int, *rest: Any) -> int:
            j = NATIVE.settle(found, i, *rest)
            calls.append(j - i)
            taken.append(sum(isinstance(t, tuple) and t[4] is not None and t[4].get("WARC-Type") == "metadata"
                             for t in found[i:j]))
            return j

        def summing(manifests: list[Any], i: int, *rest: Any) -> int:
            j = NATIVE.summaries(manifests, i, *rest)
            summed.append(j - i)
            return j

        native = _task(path, rows, counting, summing)
        assert dataclasses.asdict(native) == dataclasses.asdict(pure), seed
        noted += len(native.refers) + len(native.revisits)
        assert [type(s) for _, s in native.leftovers] == [scanner.Seen] * len(native.leftovers)
        settled += sum(calls)
        signed += sum(taken)
        rows_made += sum(summed)
        total += pure.count
        kinds.update(p[1] for p in pure.problems)
    # the generator reaches both sides: most plain records settled natively, and each kind of problem
    assert settled > total // 3, (settled, total)
    assert signed > total // 8, (signed, total)  # manifests and intents taken natively too
    assert {"index-mismatch", "block-digest", "foreign-record"} <= kinds, kinds
    assert noted > 0  # revisits reach the task's books
    assert rows_made > total // 40, (rows_made, total)  # summaries made natively (most manifests here are damaged)


@needs_native
def test_settle_stops_at_what_it_does_not_keep_and_refuses_what_is_not_its_input():
    seen = scanner.Seen
    good = (0, 10, "aa" * 32, b"", {"WARC-Record-ID": "<r1>", "WARC-Type": "response", "WARC-Target-URI": "u"},
            0, True, True, "bb" * 32)
    index = {"<r1>": ("s", "f", 0, "aa" * 32)}
    pending: dict[str, list[Any]] = {}
    located: set[str] = set()
    assert NATIVE.settle([good], 0, "f", index, {}, pending, located, seen) == 1
    assert pending == {"<r1>": [("f", 0, 10, "aa" * 32, "response", "bb" * 32, "u")]} and located == {"<r1>"}
    stops = [
        good[:6] + (False,) + good[7:],  # block digest refused
        good[:7] + (False,) + good[8:],  # payload digest refused
        good[:4] + (None,) + good[5:],  # not read by the scanner
        good[:4] + ({**good[4], "WARC-Type": "metadata"},) + good[5:],
        good[:4] + ({**good[4], "WARC-Type": "warcinfo"},) + good[5:],
        good[:4] + ({"WARC-Type": "response"},) + good[5:],  # no record id
        (1,) + good[1:],  # not where the index has it
        good[:2] + ("cc" * 32,) + good[3:],  # other bytes than the index's
        good[:8],
    ]
    for item in stops:
        assert NATIVE.settle([item], 0, "f", index, {}, {}, set(), seen) == 0, item
    assert NATIVE.settle([good], 0, "g", index, {}, {}, set(), seen) == 0  # another file
    assert NATIVE.settle([good], 0, "f", index, {"<r1>": ["aa" * 32]}, {}, set(), seen) == 0  # a manifest waits for it
    assert NATIVE.settle([good, good[:8], good], 0, "f", index, {}, {}, set(), seen) == 1
    with pytest.raises(TypeError):
        NATIVE.settle([good], 0, "f", index, {}, {}, set(), int)
    with pytest.raises(TypeError):
        NATIVE.settle((good,), 0, "f", index, {}, {}, set(), seen)


@needs_native
def test_settle_notes_a_revisit_as_the_reference_does_and_leaves_other_labels_to_it():
    """A revisit settle takes is noted as _Task._revisit notes it (what it
    names, the payload hex its label states); a label in any other form, or
    a header missing, stops it there with nothing noted (the reference reads
    that label), and so does a call without the books to note it in."""
    from store.scan import label_hex

    head = {"WARC-Record-ID": "<v1>", "WARC-Type": "revisit", "WARC-Target-URI": "u", "WARC-Refers-To": "<o1>",
            "WARC-Payload-Digest": "SHA256:" + "AB" * 32}
    rev = (0, 10, "aa" * 32, b"", head, 0, True, None, None)
    index = {"<v1>": ("s", "f", 0, "aa" * 32)}
    refers: dict[Any, Any] = {}
    books = ({}, [], [], [], None, {}, None, None, None, "x", refers)
    pending: dict[str, list[Any]] = {}
    assert NATIVE.settle([rev], 0, "f", index, {}, pending, set(), scanner.Seen, books) == 1
    assert refers == {("<v1>", "aa" * 32): ("<o1>", label_hex(head["WARC-Payload-Digest"]))} == {("<v1>", "aa" * 32): ("<o1>", "ab" * 32)}
    assert pending == {"<v1>": [("f", 0, 10, "aa" * 32, "revisit", None, "u")]}
    payload = bytes.fromhex("ab" * 32)
    for other in [{**head, "WARC-Payload-Digest": "sha256:" + base64.b32encode(payload).decode()},
                  {**head, "WARC-Payload-Digest": "sha256:" + "ab" * 31 + "a "},
                  {**head, "WARC-Payload-Digest": "sha256: " + "ab" * 31 + "abc"},
                  {k: v for k, v in head.items() if k != "WARC-Refers-To"},
                  {k: v for k, v in head.items() if k != "WARC-Payload-Digest"}]:
        refers.clear()
        assert NATIVE.settle([rev[:4] + (other,) + rev[5:]], 0, "f", index, {}, {}, set(), scanner.Seen, books) == 0, other
        assert refers == {}
    assert NATIVE.settle([rev], 0, "f", index, {}, {}, set(), scanner.Seen) == 0  # nowhere to note it
    assert NATIVE.settle([rev], 0, "f", index, {}, {}, set(), scanner.Seen, books[:10]) == 0


@needs_native
def test_settle_takes_a_manifest_only_when_its_signature_holds_and_changes_nothing_when_it_does_not(tmp_path):
    """Forgeries that reach settle's signed-record path: a flipped signature,
    another key's, a key outside its window, bytes changed after signing.
    Each stops it at the manifest with every book as it was (the reference
    then reads it); the genuine one is taken, its claims answered."""
    sid = "01settled"
    request = _warc_record("request", "<urn:uuid:q>", b"GET / HTTP/1.1\r\n\r\n", "http://example.test/a",
                           "application/http; msgtype=request")
    refs = [{"record_id": "<urn:uuid:q>", "sha256": hashlib.sha256(request).hexdigest(), "type": "request",
             "warc_file": "f.warc.gz", "offset": 0}]
    data = _canonical(_manifest(random.Random(1), sid, refs))

    def manifest_record(signer: Any = SIGNER, rec: Any = SIGNER_REC, body: bytes = data) -> bytes:
        signature = base64.b64encode(signer.sign(data)).decode()
        doc = (b'{"key_id":"' + rec.key_id.encode() + b'","manifest":' + body + b',"manifest_sha256":"'
               + hashlib.sha256(body).hexdigest().encode() + b'","signature":"' + signature.encode() + b'"}')
        return _warc_record("metadata", "<urn:uuid:m>", doc, f"urn:archiver:manifest:{sid}", "application/json")

    def books_after(manifest: bytes) -> tuple[int, Any]:
        path = tmp_path / "f.warc.gz"
        path.write_bytes(gzip.compress(request, mtime=0) + gzip.compress(manifest, mtime=0))
        with open(path, "rb") as fh:
            found = [t for t in iter_plain(fh)]
        index = {t[4]["WARC-Record-ID"]: (sid, "f.warc.gz", t[0], t[2]) for t in found}
        waiting: dict[str, Any] = {}
        pending: dict[str, Any] = {}
        located: set[str] = set()
        books = ({}, [], [], [], claims._mod.manifest, JUDGE.raw_keys, JUDGE.in_window, scanner.ParsedRecord,
                 claims._mod.intent, "application/vnd.archiver.intent+json")
        claims.prepare()
        j = NATIVE.settle(found, 0, "f.warc.gz", index, waiting, pending, located, scanner.Seen, books)
        return j, (waiting, {k: [s[:2] for s in v] for k, v in pending.items()}, located, books[:4])

    j, (waiting, pending, located, (resolved, unplaced, manifests, intents)) = books_after(manifest_record())
    assert j == 2 and pending == {} and waiting == {} and located == {"<urn:uuid:q>", "<urn:uuid:m>"}
    assert resolved == {"<urn:uuid:q>": (refs[0]["sha256"], None)} and unplaced == [] and intents == []
    assert [(m[0][0], m[1], m[2]) for m in manifests] == [(sid, f"f.warc.gz@{len(gzip.compress(request, mtime=0))}", "<urn:uuid:m>")]
    untouched = ({}, {"<urn:uuid:q>": [("f.warc.gz", 0)]}, {"<urn:uuid:q>"}, ({}, [], [], []))
    flipped = manifest_record().replace(b'","signature":"', b'","signature":"A', 1).replace(b'="}', b'"}', 1)
    assert not JUDGE.in_window(RETIRED_REC.key_id, json.loads(data)["signed_at"])
    for forged in [flipped, manifest_record(OTHER), manifest_record(OTHER, OTHER_REC), manifest_record(RETIRED, RETIRED_REC),
                   manifest_record(body=data.replace(b"example", b"exbmple", 1))]:
        assert books_after(forged) == (1, untouched)


@needs_native
def test_summaries_make_the_rows_finish_makes_and_stop_at_what_they_do_not():
    """_matchc.summaries against _Task._summary, the reference, on the same
    books: a manifest settle took whose claims are all answered (a response,
    a revisit with and without a note of what it names, a request) gives the
    same row, payloads and revisit notes; it stops, appending nothing, at a
    claim unanswered or answered with other bytes, a response id holding a
    tab (written as JSON), one beyond ASCII, and an entry the reference made."""
    def signed(sid: str, claims_: tuple[Any, ...], diff: str | None = None) -> tuple[Any, ...]:
        return claims.Signed(sid, "http://a.test/", "pp" * 32, None, None, "2026-01-02T00:00:00Z", "dd" * 32,
                             "k" * 64, "sig==", True, claims_, diff)

    def claim(rid: str, sha: str, kind: str) -> tuple[Any, ...]:
        return (rid, sha, kind, "f.warc.gz", 0)

    resolved = {"<q>": ("aa" * 32, None), "<r>": ("bb" * 32, "cc" * 32), "<v>": ("ee" * 32, None),
                "<w>": ("ff" * 32, None), "<t\tab>": ("11" * 32, "22" * 32), "<ü>": ("33" * 32, "44" * 32)}
    refers = {("<v>", "ee" * 32): ("<r>", "cc" * 32)}
    good = [(tuple(signed("s1", (claim("<r>", "bb" * 32, "response"), claim("<q>", "aa" * 32, "request"),
                                 claim("<v>", "ee" * 32, "revisit"), claim("<w>", "ff" * 32, "revisit")))), "f@1", "<m1>"),
            (tuple(signed("s2", (claim("<q>", "aa" * 32, "request"),), "ab" * 32)), "f@2", "<m2>"),  # a signed diff
            (tuple(signed("s3", ())), "f@3", "<m3>")]
    stoppers = [(tuple(signed("s4", (claim("<r>", "00" * 32, "response"),))), "f@4", "<m4>"),
                (tuple(signed("s5", (claim("<gone>", "00" * 32, "request"),))), "f@5", "<m5>"),
                (tuple(signed("s6", (claim("<t\tab>", "11" * 32, "response"),))), "f@6", "<m6>"),
                (tuple(signed("s7", (claim("<ü>", "33" * 32, "response"),))), "f@7", "<m7>")]

    def books() -> scanner._Task:
        task = scanner._Task({}, JUDGE)
        task.resolved, task.refers = dict(resolved), dict(refers)
        return task

    for stopper in [*stoppers, None]:
        manifests = good + ([stopper] if stopper is not None else []) + good[:1]
        native, reference = books(), books()
        out = native.out
        j = NATIVE.summaries(manifests, 0, native.resolved, out.rows, out.payloads, out.revisits, native.refers)
        assert j == (len(good) if stopper is not None else len(manifests))
        for entry in manifests[:j]:
            reference._summary(entry)
        assert (out.rows, out.payloads, out.revisits) == (reference.out.rows, reference.out.payloads,
                                                         reference.out.revisits), stopper
    assert out.revisits[:2] == [("s1", "<v>", "<r>", "cc" * 32), ("s1", "<w>", "", None)]
    assert out.rows[0][14] == f"\n<r>\t{'cc' * 32}\n<v>\t\n<w>\t" and out.rows[1][14] is None
    assert (out.rows[0][16], out.rows[1][16]) == (None, "ab" * 32)  # the signed diff digest, for verify's check
    summary = scanner.Summary("s", "u", "f@9", "<m9>", None, "dd", None, None, None, None, None, "bad", None)
    assert NATIVE.summaries([(summary, [])], 0, {}, [], [], [], {}) == 0


def test_the_bookkeeping_is_off_without_native_parts():
    """ARCHIVER_PURE_PYTHON=1 leaves it out, as every native part of verify."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", "from archiver.audit import scanner; print(scanner.settle is None)"],
                         capture_output=True, text=True, env={**os.environ, "ARCHIVER_PURE_PYTHON": "1"}, check=True)
    assert out.stdout.strip() == "True"

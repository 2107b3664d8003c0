"""The audit's scanning half: hash every record of the WARC files and match
them with the signed manifests beside them, in worker processes.

A task is a run of consecutive WARC bytes (several small files, or a piece
of a large one). Its worker keeps state only for that run: a capture's
records and its manifest lie next to each other, so nearly every record is
matched with the signed claim on it inside the task, and only what is left
over -- records no manifest in the run names, claims no record in the run
answers, intents not settled there, index rows not found where they point --
goes back to the main process, with one compact summary per manifest. So
memory is bounded by the task, not by the archive.

Per record the work is inflating and hashing (``store.checked``): the
record's SHA-256 for the manifest's claim, its block and payload digests
against its own header's claims, each record's bytes read once. Only
metadata records (a manifest or an intent) are kept whole, to be read.
The bookkeeping of a plain record -- found where the index has it, set
aside for a claim -- is done many records at a call by ``settle``
(``archiver/audit/_matchc.c``) where it is built; any record that needs
judging goes through ``_Task._record``, the reference.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, NamedTuple

from archiver.audit import claims as native_claims
from archiver.audit.judge import Judge
from archiver.canonical import canonical_json, sha256_hex
from archiver.capture.records import (
    INTENT_CONTENT_TYPE,
    intent_document,
    is_manifest_record,
    manifest_fields,
    signed_manifest,
)
from archiver.provenance.intent import parse_intent
from archiver.provenance.manifest import signed_diff_digest, signed_records
from store.checked import from_native, iter_batches
from store.scan import ParsedRecord, TornTail, label_hex, open_current

log = logging.getLogger(__name__)

_matchc: types.ModuleType | None
try:  # the bookkeeping of plain records in C (optional, as the other native parts)
    from archiver.audit import _matchc
except ImportError:  # pragma: no cover - _Task._record is the reference
    _matchc = None
settle: Any = None if os.environ.get("ARCHIVER_PURE_PYTHON") or _matchc is None else _matchc.settle


Claim = tuple[str, str, str, str, Any]  # (record id, sha256, type, warc file, offset) as a manifest names it
IndexRows = dict[str, tuple[str, str, int, str]]  # record id -> (snapshot, warc file, offset, sha256)


class Seen(NamedTuple):
    """What the scan found for one record (a tuple: one is made per record)."""

    warc_file: str
    offset: int
    length: int
    sha256: str
    type: str
    payload_sha256: str | None
    target_uri: str = ""


@dataclass
class Summary:
    """One signed-manifest record as found in the WARCs, judged."""

    sid: str
    url: str
    where: str
    record_id: str
    stated: str | None  # the digest the record states
    digest: str  # what the manifest hashes to
    signature: str | None
    key_id: str | None
    payload: str | None
    prev: str | None
    relogged_from: str | None
    verdict: str | None  # why it cannot vouch for records; None: its signature verifies
    sig_problem: tuple[str, str] | None  # (kind, detail) for the snapshot's signature check
    responses: tuple[tuple[str, str | None], ...] = ()  # (record id, payload SHA-256; None for a revisit) matched in the task
    unresolved: tuple[Claim, ...] = ()  # claims no record of the task answered
    diff: str | None = None  # the diff_sha256 it signs (the index's stored diff must hash to it)
    leaf: bytes | None = None  # its signature vouched for by the checkpoint: the leaf hash that must be stored (claims.Signed)


SUMMARY_COLUMNS = ("sid", "url", "where_", "record_id", "stated", "digest", "signature", "key_id", "payload", "prev",
                   "relogged_from", "verdict", "sig_kind", "sig_detail", "responses", "unresolved", "diff", "leaf")


def summary_row(s: Summary) -> tuple[object, ...]:
    """A summary as a row of the audit's scratch table (SUMMARY_COLUMNS; see scratch.py)."""
    kind, detail = s.sig_problem if s.sig_problem else (None, None)
    return (s.sid, s.url, s.where, s.record_id, s.stated, s.digest, s.signature, s.key_id, s.payload, s.prev,
            s.relogged_from, s.verdict, kind, detail, pack_responses(s.responses) if s.responses else None,
            json.dumps(s.unresolved) if s.unresolved else None, s.diff, s.leaf)


def pack_responses(responses: tuple[tuple[str, str | None], ...]) -> str:
    """(record id, payload SHA-256 or None) pairs as scratch-table text: a
    tab-separated line each (one per snapshot, read back per snapshot: JSON
    cost more than the rest of the lookup), or JSON when an id holds a tab
    or a line break."""
    if any("\t" in r or "\n" in r for r, _ in responses):
        return json.dumps(responses)
    return "".join(f"\n{r}\t{p or ''}" for r, p in responses)


def unpack_responses(text: str) -> tuple[tuple[str, str | None], ...]:
    if text[0] != "\n":
        return tuple((r, p) for r, p in json.loads(text))
    return tuple((r, p or None) for r, _, p in (line.partition("\t") for line in text[1:].split("\n")))


@dataclass(frozen=True)
class Piece:
    """Bytes [start, stop) of one WARC file (stop None: to its end)."""

    path: str
    name: str
    start: int = 0
    stop: int | None = None


@dataclass
class TaskResult:
    ends: list[tuple[str, int, int]] = field(default_factory=list)  # (file, start, where its scan ended)
    count: int = 0
    problems: list[tuple[str | None, str, str, str]] = field(default_factory=list)  # (snapshot, kind, detail, file)
    rows: list[tuple[object, ...]] = field(default_factory=list)  # one scratch-table row per manifest (summary_row)
    loose: list[Summary] = field(default_factory=list)  # manifests with unresolved claims or a failed signature
    leftovers: list[tuple[str, Seen]] = field(default_factory=list)  # records no manifest of the task claimed
    unplaced: list[tuple[str, Seen]] = field(default_factory=list)  # claimed, but not where the index has them
    intents: list[tuple[Any, str, str, tuple[str, ...]]] = field(default_factory=list)  # (doc, where, id, named ids settled)
    misplaced: list[tuple[str, str, str, int]] = field(default_factory=list)  # index rows not found: (id, snapshot, file, offset)
    revisits: list[tuple[str, str, str, str | None]] = field(default_factory=list)  # signed revisits: (snapshot, id, refers-to id, payload it states)
    payloads: list[tuple[str, str]] = field(default_factory=list)  # signed responses: (id, payload SHA-256), originals for the revisits
    refers: list[tuple[str, str, str, str | None]] = field(default_factory=list)  # revisits left over: (id, sha256, refers-to, stated)


_JUDGE: Judge | None = None


def init_worker(judge: Judge) -> None:
    """Pool initializer: the keys arrive once per process, not once per task."""
    global _JUDGE
    _JUDGE = judge


def scan_task(pieces: list[Piece], index_rows: IndexRows, judge: Judge | None = None) -> TaskResult:
    """Scan ``pieces`` in order; ``index_rows`` are the index's records in them."""
    judge = judge or _JUDGE
    assert judge is not None, "scan_task needs a judge (init_worker)"
    task = _Task(index_rows, judge)
    collecting = gc.isenabled()
    gc.disable()  # a task makes tuples by the hundred thousand, none in a cycle: collecting them was ~7 % of its CPU
    try:
        for piece in pieces:
            task.scan(piece)
        return task.finish()
    finally:
        if collecting:
            gc.enable()


_RESPONSES = ("response", "revisit")  # the claims whose payload a summary keeps (its responses)


def _signed_summary(s: native_claims.Signed, where: str, rid: str) -> Summary:
    """The summary of a manifest the native reader read and whose signature holds."""
    return Summary(sid=s.sid, url=s.url, where=where, record_id=rid, stated=s.digest, digest=s.digest,
                   signature=s.signature, key_id=s.key_id, payload=s.payload, prev=s.prev,
                   relogged_from=s.relogged_from, verdict=None, sig_problem=None, diff=s.diff, leaf=s.leaf)


def _read_whole(headers: dict[str, str]) -> bool:
    """Records kept whole while scanning: metadata (a manifest or an intent to read)."""
    return headers.get("WARC-Type") == "metadata"


class _Task:
    def __init__(self, index_rows: IndexRows, judge: Judge) -> None:
        self.index = index_rows
        self.judge = judge
        self.out = TaskResult()
        self.pending: dict[str, list[Seen]] = {}  # records awaiting a claim
        self.waiting: dict[str, list[str]] = {}  # record id -> SHA-256s claimed by a valid manifest, no record yet
        self.resolved: dict[str, tuple[str, str | None]] = {}  # record id -> (sha256, payload sha256) matched
        # (summary, claims) as _match keeps them; or, from settle, (the native reader's tuple, where, id) of a
        # manifest whose signature holds (finish makes the summary of it: no verdict, no signature problem)
        self.manifests: list[tuple[Any, ...]] = []
        self.intents: list[tuple[ParsedRecord, str, str, tuple[str, ...] | None]] = []  # (record, where, id, named ids)
        self.located: set[str] = set()
        self.refers: dict[tuple[str, str], tuple[str, str | None]] = {}  # (revisit id, sha256) -> (WARC-Refers-To, payload hex it states)
        self.books: tuple[Any, ...] | None = None  # what settle needs to take signed records and revisits too (see _matchc.c)
        if settle is not None:
            native_claims.prepare()
            reader = native_claims.native
            self.books = (self.resolved, self.out.unplaced, self.manifests, self.intents,
                          reader.manifest if reader is not None else None, judge.raw_keys, judge.in_window,
                          ParsedRecord, reader.intent if reader is not None else None, INTENT_CONTENT_TYPE, self.refers,
                          judge.vouched)

    # -- reading ---------------------------------------------------------------
    def scan(self, piece: Piece) -> None:
        fh = open_current(Path(piece.path))
        if fh is None:
            self.out.ends.append((piece.name, piece.start, piece.start))
            return  # gone while we looked (renamed twice): its records are newer than the scan
        end = piece.start
        with fh:
            fh.seek(piece.start)
            for batch in iter_batches(fh, start=piece.start, stop=piece.stop, keep_all=_read_whole, raw=True):
                end = self._batch(piece.name, batch)
        self.out.ends.append((piece.name, piece.start, end))

    def _batch(self, name: str, batch: list[Any]) -> int:
        """The members of one read, in order; returns where the last ends.
        Plain records (revisits noted as _revisit notes them), and signed
        manifests and intents in the plain shape where the index has them,
        go through ``settle`` (audit/_matchc.c) many at a call; it stops at
        any other, which is read here."""
        i, n = 0, len(batch)
        while i < n:
            if settle is not None:
                i = settle(batch, i, name, self.index, self.waiting, self.pending, self.located, Seen, self.books)
                if i >= n:
                    break
            self._item(name, batch[i])
            i += 1
        last = batch[-1]
        if isinstance(last, tuple):  # judged by the native scanner: the common case, read as it came
            self.out.count += n
            return int(last[0] + last[1])
        self.out.count += n - isinstance(last, TornTail)
        return last.offset + last.length

    def _item(self, name: str, item: Any) -> None:
        if isinstance(item, tuple) and item[4] is None:  # outside the native scanner's subset: read as store.checked reads it
            item = from_native(item, _read_whole)
        if isinstance(item, tuple):
            if item[4].get("WARC-Type") != "metadata" or not self._signed_record(name, item):
                self._record(name, *item)
        elif isinstance(item, TornTail):
            self.out.problems.append((None, "torn-file", f"{name}: {item.length} bytes at offset {item.offset}: {item.reason}", name))
        elif item.headers is None or item.error is not None:
            self.out.problems.append((None, "bad-record", f"{name}@{item.offset}: {item.error}", name))
        else:
            self._record(name, item.offset, item.length, item.sha256, item.data, item.headers,
                         item.block_start, item.block_ok, item.payload_ok, item.payload_sha256)

    def _signed_record(self, name: str, t: tuple[Any, ...]) -> bool:
        """A manifest the native reader accepts, or an intent, in the plain
        shape and where the index has it with these bytes: what _record does
        with it, without the steps that cannot find anything wrong with it.
        False, having done nothing: anything else, for _record to read."""
        offset, _length, sha, data, headers, block_start, block_ok, payload_ok, _ = t
        rid = headers.get("WARC-Record-ID")
        if rid is None or block_ok is False or payload_ok is False:
            return False
        row = self.index.get(rid)  # an intent has none; a manifest's must put it here, with these bytes
        if row is not None and (row[1] != name or row[2] != offset or row[3] != sha):
            return False
        kind = headers.get("Content-Type")  # (named otherwise, it is found by _record's case-blind lookup)
        if kind == "application/json" and row is not None:
            target = headers.get("WARC-Target-URI")
            found = None if target is None else native_claims.manifest(data[block_start : len(data) - 4], target,
                                                                       self.judge.raw_keys, self.judge.vouched)
            if found is None or not found.sig_ok or not self.judge.in_window(found.key_id, found.signed_at):
                return False  # _record reads it again and judges it
            self.located.add(rid)
            self._signed(found, f"{name}@{offset}", rid)
            return True
        if kind == INTENT_CONTENT_TYPE:
            if row is not None:
                self.located.add(rid)
            block = data[block_start : len(data) - 4]
            self.intents.append((ParsedRecord(headers, block), f"{name}@{offset}", rid, native_claims.intent(block)))
            return True
        return False

    # -- one record ------------------------------------------------------------
    def _record(self, name: str, offset: int, length: int, sha: str, data: bytes, headers: dict[str, str],
                block_start: int, block_ok: bool | None, payload_ok: bool | None, payload_sha: str | None) -> None:
        """One well-formed record, its digests checked (``data``: whole when it is metadata)."""
        problems = self.out.problems
        rid = headers.get("WARC-Record-ID", "")
        rtype = headers.get("WARC-Type", "")
        if block_ok is False:
            problems.append((None, "block-digest", f"{name}@{offset} {rid}: block digest does not match", name))
        if payload_ok is False:
            problems.append((None, "payload-digest", f"{name}@{offset} {rid}: payload digest does not match", name))
        row = self.index.get(rid)
        seen = Seen(name, offset, length, sha, rtype, payload_sha if rtype == "response" else None,
                    headers.get("WARC-Target-URI", ""))
        placed = row is not None and self._locate(rid, seen, row)
        if placed and row is not None and row[3] != sha:  # the bytes are judged against the manifests; the index's claim is reported
            problems.append((row[0], "index-mismatch", f"{name}@{offset} {rid}: the index's SHA-256 of this record differs from its bytes", name))
        if rtype == "metadata":
            where = f"{name}@{offset}"
            rec = ParsedRecord(headers, data[block_start : len(data) - 4])  # kept whole (see _read_whole)
            if is_manifest_record(rec):
                fast = native_claims.manifest(rec.block, rec.header("WARC-Target-URI") or "", self.judge.raw_keys)
                if fast is not None and fast.sig_ok and self.judge.in_window(fast.key_id, fast.signed_at):
                    self._signed(fast, where, rid)
                else:
                    fields_of = signed_manifest(rec)
                    fields = fields_of[0] if fields_of is not None else manifest_fields(rec)
                    if fields is None:
                        problems.append((None, "foreign-record", f"{where} {rid}: metadata record that is not a well-formed signed manifest", name))
                        return
                    self._manifest(fields, where, rid, fields_of[1] if fields_of is not None else None)
                if not placed:
                    self.out.unplaced.append((rid, seen))
                return
            if rec.header("Content-Type") == INTENT_CONTENT_TYPE:  # read in full at the end (finish): never left over
                self.intents.append((rec, where, rid, native_claims.intent(rec.block)))
                return
        elif rtype == "warcinfo":
            return  # describes its file; no manifest names it
        elif rtype == "revisit":
            self._revisit(headers, sha)
        wanted = self.waiting.get(rid)
        if wanted and sha in wanted:
            wanted.remove(sha)
            if not wanted:
                del self.waiting[rid]
            self.resolved[rid] = (sha, seen.payload_sha256)
            if not placed:
                self.out.unplaced.append((rid, seen))
        else:
            self.pending.setdefault(rid, []).append(seen)

    def _revisit(self, headers: dict[str, str], sha: str) -> None:
        """Note which original a revisit names and the payload it says that holds:
        checked against the original's own payload once every task is in
        (``verify.Auditor._check_revisits``) -- a signed revisit whose original
        holds other content replays what was never fetched."""
        self.refers[(headers.get("WARC-Record-ID", ""), sha)] = (
            headers.get("WARC-Refers-To", ""), label_hex(headers.get("WARC-Payload-Digest", "")))

    def _locate(self, rid: str, seen: Seen, row: tuple[str, str, int, str] | None) -> bool:
        """Is the record where the index has it? A wrong place is reported here."""
        if row is None:
            return False
        self.located.add(rid)
        if (row[1], row[2]) != (seen.warc_file, seen.offset):
            self.out.problems.append((row[0], "index-mismatch", f"record {rid} is at {seen.warc_file}@{seen.offset}, index says {row[1]}@{row[2]}", seen.warc_file))
        return True

    def _manifest(self, fields: dict[str, Any], where: str, rid: str, signed: bytes | None = None) -> None:
        """Judge one manifest; ``signed``: its bytes as the record holds them,
        which hash to the stated digest (see signed_manifest)."""
        manifest = fields["manifest"]
        sig_problem = None
        if signed is not None:  # the stated digest is these bytes' own: one signature check decides
            data, digest = signed, fields["manifest_sha256"]
            sig_problem = self.judge.signature_problem(manifest, data, fields["signature"], fields["key_id"])
        if signed is None or sig_problem is not None:  # anything else: the general path, and its exact verdicts
            data = canonical_json(manifest)
            digest = sha256_hex(data)
            sig_problem = self.judge.signature_problem(manifest, data, fields.get("signature"), fields.get("key_id"))
        verdict = self.judge.manifest_problem(fields, digest, sig_problem)
        summary = Summary(
            sid=manifest["snapshot_id"], url=manifest.get("url") or "", where=where, record_id=rid,
            stated=fields.get("manifest_sha256"), digest=digest, signature=fields.get("signature"),
            key_id=fields.get("key_id"), payload=manifest.get("payload_sha256"),
            prev=manifest.get("previous_manifest_sha256"), relogged_from=manifest.get("relogged_from"),
            verdict=verdict, sig_problem=sig_problem, diff=signed_diff_digest(manifest),
        )
        claims: list[Claim] = []
        for r in signed_records(manifest):
            crid, sha = r.get("record_id"), r.get("sha256")
            if isinstance(crid, str) and isinstance(sha, str):
                claims.append((crid, sha, str(r.get("type")), str(r.get("warc_file")), r.get("offset")))
        self._match(summary, claims)

    def _signed(self, s: native_claims.Signed, where: str, rid: str) -> None:
        """A manifest the native reader read and whose signature libsodium
        accepted by a key valid at its signing time: what _manifest concludes
        for it (no signature problem, no verdict), without reading it again."""
        self._match(_signed_summary(s, where, rid), s.claims)

    def _match(self, summary: Summary, claims: Iterable[Claim]) -> None:
        """Match a manifest's claims with the records the task has seen (an
        invalid manifest vouches for nothing), and keep it for finish()."""
        pending, resolved, waiting = self.pending, self.resolved, self.waiting
        vouches = summary.verdict is None
        for claim in claims:
            crid, sha = claim[0], claim[1]
            if not vouches or resolved.get(crid, ("",))[0] == sha:
                continue  # a record matched once stays matched
            copies = pending.get(crid)
            match = next((s for s in copies if s.sha256 == sha), None) if copies else None
            if match is None:
                waiting.setdefault(crid, []).append(sha)
                continue
            copies.remove(match)  # type: ignore[union-attr]
            if not copies:
                del pending[crid]
            resolved[crid] = (sha, match.payload_sha256)
            if crid not in self.index:
                self.out.unplaced.append((crid, match))
        self.manifests.append((summary, list(claims)))

    # -- what goes back ---------------------------------------------------------
    def _summary(self, entry: tuple[Any, ...]) -> None:
        """One manifest's scratch row, and the summary kept when it is loose."""
        out, resolved = self.out, self.resolved
        if len(entry) == 3:  # taken by settle: a manifest whose signature holds
            found, where, rid = entry
            claims = found[10]
            responses: list[tuple[str, str | None]] = []
            answered = True
            for c in claims:
                r = resolved.get(c[0])
                if r is None or r[0] != c[1]:
                    answered = False  # a claim unanswered: the general way below
                    break
                if c[2] in _RESPONSES:
                    responses.append((c[0], r[1]))
            if answered:  # summary_row of the summary _signed makes, every claim answered
                out.rows.append((found[0], found[1], where, rid, found[6], found[6], found[8], found[7], found[2],
                                 found[3], found[4], None, None, None,
                                 pack_responses(tuple(responses)) if responses else None, None, found[11], found[12]))
                self._originals(found[0], responses)
                return
            summary = _signed_summary(native_claims.Signed._make(found), where, rid)
        else:
            summary, claims = entry
        matched: list[Claim] = []
        unresolved: list[Claim] = []
        for c in claims:  # (a claim twice is matched or not alike: the same tuple)
            r = resolved.get(c[0]) if summary.verdict is None else None
            (matched if r is not None and r[0] == c[1] else unresolved).append(c)
        summary.responses = tuple((c[0], resolved[c[0]][1]) for c in matched if c[2] in _RESPONSES)
        self._originals(summary.sid, summary.responses)
        summary.unresolved = tuple(unresolved)
        out.rows.append(summary_row(summary))  # made here: tuples cross to the main process cheaply
        if summary.unresolved or summary.verdict is not None:
            out.loose.append(summary)

    def _originals(self, sid: str, responses: Iterable[tuple[str, str | None]]) -> None:
        """A valid manifest's matched responses (a payload: a possible original)
        and revisits (what they name), for verify's check of revisit originals."""
        for rid, payload in responses:
            if payload is not None:
                self.out.payloads.append((rid, payload))
            else:
                refers_to, stated = self.refers.get((rid, self.resolved[rid][0]), ("", None))
                self.out.revisits.append((sid, rid, refers_to, stated))

    def finish(self) -> TaskResult:
        out, resolved = self.out, self.resolved
        manifests = self.manifests
        i, n = 0, len(manifests)
        while i < n:  # the manifests settle took, every claim answered, made rows many at a call (_matchc.c)
            if settle is not None and _matchc is not None:
                i = _matchc.summaries(manifests, i, resolved, out.rows, out.payloads, out.revisits, self.refers)
                if i >= n:
                    break
            self._summary(manifests[i])
            i += 1
        out.leftovers = [(rid, s) for rid, copies in self.pending.items() for s in copies]
        out.refers = [(rid, sha, *named) for (rid, sha), named in self.refers.items()
                      if any(s.sha256 == sha for s in self.pending.get(rid, ()))]  # claimed, if at all, in the main process
        for rec, where, rid, named in self.intents:
            doc = None
            if named is None:
                doc = intent_document(rec)
                intent = parse_intent(doc)
                named = tuple(r for r, _ in intent.records) if intent else ()
            settled = [r for r in named if r in resolved]
            if not named or len(settled) != len(named):
                out.intents.append((intent_document(rec) if doc is None else doc, where, rid, tuple(settled)))
        out.misplaced = [(rid, row[0], row[1], row[2]) for rid, row in self.index.items() if rid not in self.located]
        return out


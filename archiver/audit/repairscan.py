"""What ``repair`` reads of the WARC files: every record streamed once, and
only what the index does not already account for kept.

A healthy archive's records are all in the index, so even ``repair --full``
keeps almost nothing: records are looked up in the index in batches as they
stream by (by id, with the SHA-256 of their exact bytes), and of the rest only
the location and WARC headers are kept; their bytes are read again when a
decision needs them (few records: what a crash left, or what someone else
appended). Memory no longer grows with the archive, and time grows with its
bytes -- holding every record of every file made ``--full`` 8.1x slower
from 10k to 50k snapshots (issue 12).
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator

from archiver.capture.records import intent_document, is_manifest_record, manifest_fields
from archiver.errors import ArchiverError
from archiver.provenance.intent import Intent, parse_intent
from archiver.provenance.manifest import signed_records
from store.errors import CorruptRecordError
from store.rowforms import stored_hex
from store.scan import MAX_MEMBER, Member, ParsedRecord, TornTail, iter_members, parse_record
from store.warc import OPEN_SUFFIX, RecordLocation, final_name
from store.warcfiles import open_regular

if TYPE_CHECKING:
    from archiver.archive import Archive

log = logging.getLogger(__name__)

BATCH = 512  # records looked up in the index with one query
BATCH_BYTES = 8 << 20  # manifest and intent records held until their batch is looked up
LOADED = 8  # records kept decompressed while repair decides (least recently used dropped)


@dataclass(eq=False)
class Scanned:
    """One record as repair keeps it: where it lies and its WARC headers; its
    bytes (``rec``) are read again on demand."""

    name: str
    member: Member  # offset, length and SHA-256; ``data`` is dropped
    headers: dict[str, str]
    reader: RecordReader

    @property
    def rec(self) -> ParsedRecord:
        return self.reader.load(self)

    @property
    def record_id(self) -> str:
        return self.headers.get("WARC-Record-ID", "")

    @property
    def type(self) -> str:
        return self.headers.get("WARC-Type", "")

    def location(self) -> RecordLocation:
        h = self.headers
        return RecordLocation(
            record_id=h.get("WARC-Record-ID", ""),
            record_type=h.get("WARC-Type", ""),
            target_uri=h.get("WARC-Target-URI", ""),
            date=h.get("WARC-Date", ""),
            warc_file=self.name,
            offset=self.member.offset,
            length=self.member.length,
            sha256=self.member.sha256,
            payload_digest=h.get("WARC-Payload-Digest"),
        )


class RecordReader:
    """Reads a kept record's bytes again: from the scanned local file, else
    through the archive's WARC store; the last few stay decompressed."""

    def __init__(self, archive: Archive) -> None:
        self.archive = archive
        self.paths: dict[str, Path] = {}  # final name -> the local file scanned
        self._loaded: OrderedDict[tuple[str, int], ParsedRecord] = OrderedDict()

    def load(self, s: Scanned) -> ParsedRecord:
        key = (s.name, s.member.offset)
        rec = self._loaded.get(key)
        if rec is None:
            data, sha = self._inflate(s.name, s.member.offset, s.member.length)
            if sha != s.member.sha256:
                raise CorruptRecordError(f"{s.name}@{s.member.offset}: the record changed since repair read it")
            rec = self._remember(key, parse_record(data))
        self._loaded.move_to_end(key)
        return rec

    def at(self, name: str, offset: int, length: int) -> Scanned | None:
        """The record the index places at (name, offset, length), as it is
        stored now; None when it is not readable there."""
        try:
            data, sha = self._inflate(name, offset, length)
            rec = parse_record(data)
        except (ArchiverError, ValueError, OSError) as exc:
            log.warning("cannot read the indexed record at %s@%d: %s", name, offset, exc)
            return None
        self._remember((name, offset), rec)
        return Scanned(name, Member(offset, length, sha, b""), rec.headers, self)

    def _remember(self, key: tuple[str, int], rec: ParsedRecord) -> ParsedRecord:
        self._loaded[key] = rec
        if len(self._loaded) > LOADED:
            self._loaded.popitem(last=False)
        return rec

    def _inflate(self, name: str, offset: int, length: int) -> tuple[bytes, str]:
        path = self.paths.get(name)
        if path is not None and path.exists():
            with open_regular(path) as fh:
                fh.seek(offset)
                raw = fh.read(length)
        else:
            raw = self.archive.warcs.read_member(name, offset, length)
        z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            data = z.decompress(raw, MAX_MEMBER + 1)
        except zlib.error as exc:
            raise CorruptRecordError(f"{name}@{offset}: not a gzip member: {exc}") from exc
        if len(data) > MAX_MEMBER or not z.eof:
            raise CorruptRecordError(f"{name}@{offset}: not one whole record of at most {MAX_MEMBER} bytes")
        return data, hashlib.sha256(data).hexdigest()


@dataclass
class Scan:
    """What the WARC files hold that the index does not account for (live
    writers' files left out), and the index lookups to decide about it."""

    archive: Archive
    reader: RecordReader
    records: dict[str, Scanned] = field(default_factory=dict)  # first copy of each id the index lacks
    manifests: list[tuple[dict[str, Any], Scanned]] = field(default_factory=list)  # not committed
    intents: list[tuple[Intent, Scanned]] = field(default_factory=list)  # whose records are not all indexed
    strays: list[tuple[Scanned, str]] = field(default_factory=list)  # records no archiver writes, with why
    unreadable: list[tuple[str, Member, str]] = field(default_factory=list)
    vouched: set[str] = field(default_factory=set)  # ids committed manifests name that the index lacks
    seen: int = 0  # records read
    _batch: list[tuple[Scanned, ParsedRecord | None]] = field(default_factory=list)
    _held: int = 0  # bytes of the metadata records in the batch

    # -- streaming -------------------------------------------------------
    def add(self, name: str, member: Member, rec: ParsedRecord) -> None:
        """One record read: batched for the index lookup; only a metadata
        record (a manifest or an intent) keeps its bytes until then."""
        self.seen += 1
        if rec.type == "warcinfo":
            return  # a file's head: nothing names it, nothing to account for
        whole = rec if rec.type == "metadata" else None
        self._batch.append((Scanned(name, Member(member.offset, member.length, member.sha256, b""),
                                    rec.headers, self.reader), whole))
        self._held += len(rec.block) if whole is not None else 0
        if len(self._batch) >= BATCH or self._held >= BATCH_BYTES:
            self.flush()

    def flush(self) -> None:
        batch, self._batch, self._held = self._batch, [], 0
        if not batch:
            return
        indexed = self.indexed_shas(s.record_id for s, _ in batch)
        docs: list[tuple[Scanned, ParsedRecord | None, Any, Any]] = []  # (scanned, rec, manifest fields, intent doc)
        for s, rec in batch:
            if indexed.get(s.record_id) == s.member.sha256:
                continue  # the index holds these exact bytes (a committed manifest's record too)
            fields = manifest_fields(rec) if rec is not None else None
            doc = intent_document(rec) if rec is not None and fields is None else None
            docs.append((s, rec, fields, doc))
        intents = {id(s): parse_intent(doc) for s, _, _, doc in docs if doc is not None}
        wanted = {rid for i in intents.values() if i is not None for rid, _ in i.records}
        wanted |= {r["record_id"] for _, _, f, _ in docs if f is not None for r in signed_records(f["manifest"])}
        indexed.update(self.indexed_shas(wanted - indexed.keys()))
        committed = self.committed({f["manifest"]["snapshot_id"] for _, _, f, _ in docs if f is not None})
        for s, rec, fields, doc in docs:
            if fields is not None and (fields["manifest"]["snapshot_id"], fields.get("manifest_sha256")) in committed:
                # Committed already (perhaps signed by a key rotated out since): verify checks it.
                self.vouched.update(r["record_id"] for r in signed_records(fields["manifest"])
                                    if r["record_id"] not in indexed)
                continue
            if doc is not None and (i := intents[id(s)]) is not None and all(rid in indexed for rid, _ in i.records):
                continue  # its capture is committed: nothing left to vouch for
            first = self.records.setdefault(s.record_id, s)
            if first is not s:
                if first.member.sha256 != s.member.sha256:
                    self.strays.append((s, f"another record under the id of {first.name}@{first.member.offset}"))
                continue  # an exact copy: the first stands for both
            if fields is not None:
                self.manifests.append((fields, s))
            elif rec is not None and is_manifest_record(rec):
                self.strays.append((s, "metadata record that is not a well-formed signed manifest"))
            elif doc is not None:
                intent = intents[id(s)]
                if intent is None:
                    self.strays.append((s, "malformed capture intent"))
                else:
                    self.intents.append((intent, s))

    # -- the index -------------------------------------------------------
    def indexed_shas(self, ids: Iterable[str]) -> dict[str, str]:
        """record id -> SHA-256 the index holds, for those of ``ids`` it holds."""
        out: dict[str, str] = {}
        for chunk in _chunks(sorted(set(ids)), BATCH):
            marks = ",".join("?" * len(chunk))
            out.update((str(r[0]), stored_hex(r[1], r[2])) for r in self.archive.index.query(
                f"SELECT record_id, sha256, digest FROM records WHERE record_id IN ({marks})", tuple(chunk)))
        return out

    def committed(self, snapshot_ids: Iterable[str]) -> set[tuple[str, str | None]]:
        """(snapshot id, manifest digest) the index holds for these snapshots:
        each one's manifest, and the earlier manifest a re-logged one replaced."""
        from store.rowforms import relogged_from_json

        out: set[tuple[str, str | None]] = set()
        for chunk in _chunks(sorted(set(snapshot_ids)), BATCH):
            marks = ",".join("?" * len(chunk))
            for r in self.archive.index.query(
                f"SELECT id, manifest_sha256, relogged_from, CASE WHEN manifest_json LIKE ? THEN manifest_json END "
                f"FROM snapshots WHERE id IN ({marks})", ("%relogged_from%", *chunk)):
                sid = str(r[0])
                out.add((sid, r[1]))
                for old in (r[2], relogged_from_json(r[3])):
                    if old is not None:
                        out.add((sid, old))
        return out

    def is_snapshot(self, snapshot_id: str) -> bool:
        return bool(self.archive.index.query("SELECT 1 FROM snapshots WHERE id=?", (snapshot_id,)))

    def lookup(self, record_id: str) -> Scanned | None:
        """A record by id: one the scan kept, else the one the index places."""
        found = self.records.get(record_id)
        if found is not None:
            return found
        row = self.archive.index.record(record_id)
        return self.reader.at(row.warc_file, row.warc_offset, row.warc_length) if row is not None else None


class Known:
    """Record ids accounted for: those the index holds, those committed
    manifests name, and those repair adopts as it goes."""

    def __init__(self, scan: Scan) -> None:
        self.scan = scan
        self.ids: set[str] = set(scan.vouched)
        self._indexed: dict[str, str | None] = {}  # lookups made: id -> the index's SHA-256 (None: absent)

    def add(self, record_id: str) -> None:
        self.ids.add(record_id)

    def update(self, record_ids: Iterable[str]) -> None:
        self.ids.update(record_ids)

    def _index_sha(self, record_id: str) -> str | None:
        if record_id not in self._indexed:
            self._indexed[record_id] = self.scan.indexed_shas([record_id]).get(record_id)
        return self._indexed[record_id]

    def __contains__(self, record_id: object) -> bool:
        return isinstance(record_id, str) and (record_id in self.ids or self._index_sha(record_id) is not None)

    def accounts(self, s: Scanned) -> bool:
        """Is a record the scan kept accounted for now? It was not in the index
        with these bytes when read, so only if repair adopted it or a
        committed manifest names it (a changed copy of an indexed record is not)."""
        return s.record_id in self.ids


def scan_paths(archive: Archive, scan: Scan, paths: list[Path], result: Any, skip: set[str] | frozenset[str],
               busy_file: Any, live_file: Any, marks: dict[str, int], start_of: Any) -> Scan:
    """Read every record of ``paths`` (each from its watermark in ``marks``)
    but settled files in ``skip`` and live writers' files."""
    for path in paths:
        name = final_name(path)
        if busy_file(name):
            result.skipped.append(name)  # another live daemon's: its captures are still committing
            continue
        if path.name.endswith(OPEN_SUFFIX) and live_file(name):
            continue  # a live writer's file: its captures are still committing
        if not path.name.endswith(OPEN_SUFFIX) and name in skip:
            result.settled += 1
            continue
        start = start_of(path, marks.get(name, 0))
        result.scanned.append(name)
        if start:
            result.scanned_from[name] = start
        try:
            members = iter_members(path, start)
            first = next(members, None)  # opens the file
        except FileNotFoundError:
            continue  # renamed or rotated meanwhile; the next run sees it
        scan.reader.paths[name] = path
        for item in _with_first(first, members):
            if isinstance(item, TornTail):
                continue
            try:
                rec = parse_record(item.data)
            except ValueError as exc:
                scan.unreadable.append((name, Member(item.offset, item.length, item.sha256, b""), str(exc)))
                continue
            scan.add(name, item, rec)
    scan.flush()
    return scan


def _with_first(first: Member | TornTail | None, rest: Iterator[Member | TornTail]) -> Iterator[Member | TornTail]:
    return itertools.chain([first] if first is not None else [], rest)


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]

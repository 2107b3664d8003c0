"""``archiver repair``: bring the index back in line with the WARC files.

A crash can leave (a) a WARC file still named ``.open`` whose writer is gone,
possibly with a torn last record; (b) a signed manifest in a WARC whose index
commit never happened; (c) request/response records written before the
manifest was. Repair closes (a) -- moving torn bytes to a side file, never
deleting them -- and commits (b) and (c) as snapshots, so nothing captured is
lost. Safe to run while other processes write: it skips files they own.

Nothing unsigned gets signed: (b) only when the manifest's signature
verifies under the archive's own key (from ``keys/``; on a shared archive's
root machine, a key that key enrolled), (c) only when a capture intent signed
with such a key names each record's exact bytes. Every other
record -- appended by whoever could write the data directory -- is
``foreign``: listed in ``quarantine.jsonl``, never signed, never deleted.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Collection, Iterator

from archiver.audit.quarantine import QUARANTINE_NAME, WARC_NAME, overtaken, quarantine, writer_alive
from archiver.audit.recovered import http_headers, recovered_capture
from archiver.audit.repairscan import Known, RecordReader, Scan, Scanned, scan_paths
from archiver.canonical import canonical_json, sha256_hex
from archiver.capture.http import Capture
from archiver.capture.records import (
    manifest_record,
)
from archiver.capture.requisite_records import REQUISITE_HOP, RequisitePlan
from archiver.committing import record_row
from archiver.errors import ArchiverError, LedgerError, VerificationError
from archiver.provenance.intent import Intent, check_intent
from archiver.provenance.keyring import Keyring
from archiver.provenance.leaves import leaf_data
from archiver.provenance.log import MerkleLog
from archiver.provenance.manifest import check_signed_manifest, signed_records
from store.index import SnapshotRow
from store.scan import (
    Member,
    TornTail,
    iter_members,
    label_hex,
)
from store.warc import (
    OPEN_SUFFIX,
    RecordLocation,
    decode_content,
    final_name,
    fsync_dir,
    list_warcs,
    warc_date,
)
from store.warcmerge import stray_copies

if TYPE_CHECKING:
    from archiver.archive import Archive

log = logging.getLogger(__name__)



@dataclass
class RepairResult:
    closed: list[str] = field(default_factory=list)
    torn: list[str] = field(default_factory=list)
    reindexed: list[str] = field(default_factory=list)
    recommitted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    scanned: list[str] = field(default_factory=list)  # files read record by record
    scanned_from: dict[str, int] = field(default_factory=dict)  # those read from their watermark on, not whole
    settled: int = 0  # closed files skipped: settled and unchanged since (see audit/settled.py)
    foreign: list[dict[str, Any]] = field(default_factory=list)  # records quarantined, with the reason
    overtaken: list[dict[str, Any]] = field(default_factory=list)  # unsigned captures a later snapshot overtook
    deferred: list[dict[str, Any]] = field(default_factory=list)  # signed by listed keys this machine cannot vouch for

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()

    def summary(self) -> str:
        parts = [
            f"closed {len(self.closed)} stale WARC file(s)",
            f"set aside {len(self.torn)} torn tail(s)",
            f"re-indexed {len(self.reindexed)} signed snapshot(s)",
            f"committed {len(self.recommitted)} unsigned capture(s)",
        ]
        if self.skipped:
            parts.append(f"skipped {len(self.skipped)} file(s) in use")
        if self.overtaken:
            parts.append(f"set aside {len(self.overtaken)} unsigned capture(s) a later snapshot of their URL "
                         "overtook (kept, never signed)")
        if self.deferred:
            parts.append(f"left {len(self.deferred)} record(s) signed by keys this machine cannot vouch for "
                         "(the root machine's repair commits its workers')")
        if self.foreign:
            parts.append(f"quarantined {len(self.foreign)} foreign record(s) (never signed; see {QUARANTINE_NAME})")
        return "repair: " + ", ".join(parts)


def close_stale(warc_dir: Path, hostname: str, result: RepairResult, marks: dict[str, int] | None = None) -> None:
    """Close `.open` files whose writer died, setting any torn tail aside.
    ``marks``: where each file's unaccounted tail starts (read from there only)."""
    for path in list_warcs(warc_dir):
        if not path.name.endswith(OPEN_SUFFIX):
            continue
        name = final_name(path)
        if writer_alive(name, hostname):
            result.skipped.append(name)
            continue
        for item in iter_members(path, _start(path, (marks or {}).get(name, 0))):
            if isinstance(item, TornTail):
                side = warc_dir / f"{name}.torn-{item.offset}"
                with open(path, "r+b") as fh:
                    fh.seek(item.offset)
                    side.write_bytes(fh.read())
                    fh.truncate(item.offset)
                    fh.flush()
                    os.fsync(fh.fileno())
                result.torn.append(side.name)
                log.warning("set aside %d torn bytes of %s in %s", item.length, name, side.name)
        os.replace(path, warc_dir / name)
        fsync_dir(warc_dir)
        result.closed.append(name)


def _start(path: Path, mark: int) -> int:
    """Where to read ``path`` from: its watermark, unless the file is shorter (read it whole)."""
    try:
        return mark if 0 < mark <= path.stat().st_size else 0
    except OSError:
        return 0


@contextlib.contextmanager
def scan_warcs(archive: Archive, result: RepairResult, skip: set[str] | frozenset[str] = frozenset(),
               busy: Collection[tuple[str, int]] = (), marks: dict[str, int] | None = None) -> Iterator[Scan]:
    """Read every record of every WARC file no live writer owns, except the
    settled ones in ``skip``, each from its watermark in ``marks`` (if any);
    the scan is used inside the context (the files it read stay readable)."""
    if busy:  # live writers' objects are not even downloaded
        skip = frozenset(skip) | {n for n in archive.warcs.names() if written_by(n, busy)}
    with archive.warcs.local_files(skip) as paths:  # object stores: downloaded in parallel, settled ones not
        scan = Scan(archive, RecordReader(archive))
        yield scan_paths(
            archive, scan, paths, result, skip, busy_file=lambda name: written_by(name, busy),
            live_file=lambda name: writer_alive(name, archive.c.hostname) and name not in result.closed,
            marks=marks or {}, start_of=_start,
        )


def written_by(name: str, writers: Collection[tuple[str, int]]) -> bool:
    """Was WARC file ``name`` written by one of ``writers`` (host, pid)?"""
    m = WARC_NAME.match(name)
    if not m or not writers:
        return False
    return (m.group("host"), int(m.group("pid"))) in {(re.sub(r"[^A-Za-z0-9.-]", "-", h), p) for h, p in writers}


def trusted_ring(archive: Archive) -> Keyring:
    """The keys repair accepts signatures by: what this machine's own ``keys/``
    vouches for (provenance/pinning.py ``own_ring``) -- never a keyring's
    say-so, which anyone who can write the data directory (or the shared
    index) could extend or replace. Embedded: this machine's key. A shared
    archive's root machine, and a worker that pinned the root key: every key
    that root key enrolled, so they commit what a dead worker signed and
    left; a worker without a pin: its own key only."""
    return archive.own_ring()


def listed_ring(archive: Archive) -> Keyring | None:
    """On a shared archive, the keys its keyring lists as enrolled (the first
    root entry trusted, as plain ``verify`` does). What such a key signed and
    this machine cannot vouch for (another worker's, seen by a worker; one
    enrolled by a root key rotated out since, or by a root key planted in the
    index) is left alone: neither committed nor quarantined, but reported.
    None on an embedded archive."""
    if not archive.settings.storage.shared_index:
        return None
    from archiver.provenance.ringstore import trusted_keyring

    return trusted_keyring(archive)


def manifest_problem(fields: dict[str, Any], ring: Keyring, lookup: Callable[[str], Scanned | None]) -> str | None:
    """Why a signed manifest found in a WARC must not be adopted; None when it may."""
    try:
        check_signed_manifest(fields, ring)
    except (VerificationError, ArchiverError) as exc:
        return f"manifest signature does not verify under this archive's key: {exc}"
    for r in signed_records(fields["manifest"]):
        found = lookup(r["record_id"])
        if found is not None and found.member.sha256 != r["sha256"]:
            return f"{r['type']} record {r['record_id']} differs from the signed manifest"
    return None


def intent_problem(intent: Intent, ring: Keyring, lookup: Callable[[str], Scanned | None]) -> str | None:
    """Why an intent's records must not be committed; None when they may."""
    try:
        check_intent(intent, ring)
    except (VerificationError, ArchiverError) as exc:
        return f"capture intent does not verify under this archive's key: {exc}"
    if len(intent.records) < 2 or len(intent.records) % 2:
        return "capture intent does not list response/request pairs"
    for rid, sha in intent.records:
        found = lookup(rid)
        if found is None:
            return f"record {rid} of the intent is missing"
        if found.member.sha256 != sha:
            return f"record {rid} differs from its signed intent"
    return None


def repair(archive: Archive, *, full: bool = False, busy: Collection[tuple[str, int]] = ()) -> RepairResult:
    """Bring the index in line with the WARC files. Bounded by what a crash can
    have left: files marked settled (audit/settled.py) are skipped unless
    ``full``; every file scanned and wholly accounted for is marked settled.
    ``busy``: (host, pid) of live writers elsewhere (the shared mode's other
    daemons), whose files hold captures still on their way to a commit.

    Time grows with the bytes read, memory with what the index does not
    account for (archiver/audit/repairscan.py), not with the archive."""
    from archiver.audit.settled import mark_settled, settled_files, watermarks

    why = archive.provenance.head_problem()  # nothing is signed over a rewritten log (provenance/treehead.py)
    if why is not None:
        raise LedgerError(f"repair refused: {why} (kept in {archive.settings.key_path}); run archiver verify")
    result = RepairResult()
    marks = {} if full else watermarks(archive.index)
    close_stale(archive.warc_dir, archive.c.hostname, result, marks)
    with archive.index.read() as conn:
        stray = stray_copies(conn)  # copies an interrupted compaction left; its next run deletes them
    skip = stray | (set() if full else settled_files(archive.index, archive.warcs))
    with scan_warcs(archive, result, skip, busy, marks) as scan:
        unsettled = _adopt(archive, scan, result)
    unsettled.update(e["warc_file"] for e in result.foreign)  # each repair reports them again
    mark_settled(archive.index, archive.warcs, (n for n in result.scanned if n not in unsettled))
    return result


@dataclass
class Rotation:
    """What ``rotate_keys`` did: the new key ids, and the repair run first (or why it could not run)."""

    new_keys: dict[str, str]
    repaired: RepairResult | None
    repair_failed: str | None = None


def rotate_keys(archive: Archive) -> Rotation:
    """Repair, then rotate this machine's keys.

    A crash can leave a capture's records and the intent this machine's key
    signed for them without their commit. Repair adopts only what the keys
    this machine vouches for signed, and a rotated-out key is not one of them
    (its private half is gone, and whoever stole it is whom a rotation shuts
    out): rotating first would turn that lost commit into a foreign record.
    A repair that cannot run (say, a log that does not extend the kept tree
    head) does not stop the rotation -- a rotation may be the answer to a
    compromise -- it is reported."""
    repaired: RepairResult | None = None
    failed: str | None = None
    try:
        repaired = repair(archive)
    except ArchiverError as exc:
        failed = str(exc)
        log.warning("rotation: repair before it failed: %s", exc)
    return Rotation(archive.provenance.keys.rotate(), repaired, failed)


def _adopt(archive: Archive, scan: Scan, result: RepairResult) -> set[str]:
    """Commit what this archive provably started, quarantine the rest; returns
    the files holding something repair could not account for."""
    unsettled: set[str] = set()
    ring = trusted_ring(archive)
    others = listed_ring(archive)
    known = Known(scan)
    foreign: list[tuple[Scanned, str]] = list(scan.strays)

    def defer(meta: Scanned, ids: Collection[str], why: str) -> None:
        """Signed by a key the shared keyring lists, which this machine cannot vouch for."""
        known.add(meta.record_id)
        known.update(ids)
        unsettled.add(meta.name)
        # Its records' files too: marked settled, the repair that may sign the
        # capture (the root machine's) would skip them and never find them.
        unsettled.update(found.name for found in map(scan.records.get, ids) if found is not None)
        result.deferred.append(_foreign_entry(meta.location(), why))
        log.warning("left %s@%d unsigned (for the root machine's repair): %s", meta.name, meta.member.offset, why)

    def vouched(meta: Scanned, ids: Collection[str], problem: Callable[[Any], str | None]) -> bool:
        """Whether this machine's ring vouches for ``meta``; if not, it is
        deferred (the shared keyring's listed keys vouch) or foreign."""
        why = problem(ring)
        if why is None:
            return True
        if others is not None and problem(others) is None:
            defer(meta, ids, why)
        else:
            foreign.append((meta, why))
        return False

    for fields, meta in sorted(scan.manifests, key=lambda fm: fm[0]["manifest"]["log"]["index"]):
        ids = [r["record_id"] for r in signed_records(fields["manifest"])]
        if not vouched(meta, ids, lambda keys: manifest_problem(fields, keys, scan.lookup)):  # noqa: B023 - called at once
            continue
        known.add(meta.record_id)
        known.update(ids)
        sid = fields["manifest"]["snapshot_id"]
        if scan.is_snapshot(sid):
            continue
        located = {r["record_id"]: scan.lookup(r["record_id"]) for r in signed_records(fields["manifest"])}
        if any(found is None for found in located.values()):
            unsettled.add(meta.name)
            log.warning("signed capture %s (%s@%d) not committed: some of its records were not found "
                        "(run `archiver repair --full`)", sid, meta.name, meta.member.offset)
            continue
        _reindex(archive, fields, meta, {k: v for k, v in located.items() if v is not None})
        result.reindexed.append(sid)
    # Exchanges written before their manifest: commit them, if this archive's intent vouches for them.
    for intent, meta in sorted(scan.intents, key=lambda im: (im[1].name, im[1].member.offset)):
        if all(rid in known for rid, _ in intent.records):
            known.add(meta.record_id)  # its capture is committed: nothing left to vouch for
            continue
        ids = [rid for rid, _ in intent.records]
        if not vouched(meta, ids, lambda keys: intent_problem(intent, keys, scan.lookup)):  # noqa: B023 - called at once
            continue
        known.add(meta.record_id)
        if any(rid in known for rid in ids):
            known.update(ids)
            continue  # committed already
        known.update(ids)
        pairs = [scan.lookup(rid) for rid in ids]
        capture, locations, last, requisites = recovered_capture([p for p in pairs if p is not None])
        newer = overtaken(archive.index, capture.url, intent.created_at)
        if newer is not None:
            result.overtaken.append({"url": capture.url, "intent": meta.record_id, "written_at": intent.created_at,
                                     "warc_file": meta.name, "offset": meta.member.offset, "overtaken_by": newer})
            log.warning("capture of %s written at %s (intent %s@%d) is set aside unsigned: snapshot %s of the URL, "
                        "captured later, was committed first", capture.url, intent.created_at, meta.name,
                        meta.member.offset, newer)
            continue
        row = _commit_orphan(archive, capture, locations, last, scan, requisites)
        result.recommitted.append(row.id)
    listed = {id(s) for s, _ in foreign}
    for scanned in scan.records.values():
        if id(scanned) not in listed and not known.accounts(scanned):
            foreign.append((scanned, f"{scanned.type} record that no signed manifest or capture intent of this archive names"))
    result.foreign = [_foreign_entry(s.location(), why) for s, why in foreign]
    result.foreign += [_foreign_entry(_unparsed_location(name, m), f"not a WARC record: {why}") for name, m, why in scan.unreadable]
    for entry in result.foreign:
        log.warning("foreign record %s@%s (%s): %s", entry["warc_file"], entry["offset"], entry["record_id"] or "-", entry["reason"])
    quarantine(archive.root, result.foreign, archive.c.clock)
    log.info("repair read %d record(s); kept %d the index does not account for", scan.seen, len(scan.records))
    return unsettled


def _unparsed_location(name: str, member: Member) -> RecordLocation:
    return RecordLocation("", "", "", "", name, member.offset, member.length, member.sha256, None)


def _foreign_entry(loc: RecordLocation, reason: str) -> dict[str, Any]:
    return {"record_id": loc.record_id, "type": loc.record_type, "target_uri": loc.target_uri,
            "warc_file": loc.warc_file, "offset": loc.offset, "length": loc.length, "sha256": loc.sha256,
            "reason": reason}


def _reindex(archive: Archive, fields: dict[str, Any], meta: Any, records: dict[str, Scanned]) -> None:
    """Commit a signed manifest whose index transaction was lost."""
    manifest = fields["manifest"]
    digest = sha256_hex(canonical_json(manifest))
    url = manifest["url"]
    response_id = [r for r in manifest["records"] if r["type"] in ("response", "revisit")][-1]["record_id"]
    resp = records[response_id]
    relogged: tuple[str, int] | None = None
    with archive.provenance.signing() as conn:
        ledger = MerkleLog(conn)
        archive.provenance.vouch(ledger)  # nothing signed over a rewritten log (provenance/treehead.py)
        prev = archive.index.last_snapshot(url, conn)
        prev_digest = prev.manifest_sha256 if prev else None
        if ledger.size() == manifest["log"]["index"] and manifest.get("previous_manifest_sha256") == prev_digest:
            # (its signature was checked above: a leaf that holds it vouches for it)
            ledger.append(leaf_data(manifest, digest, fields["signature"], fields["key_id"]), manifest["snapshot_id"])
            archive.provenance.checkpoint(conn, ledger)
        else:
            # Another writer took this log index (or extended the URL's chain)
            # after the crash: sign the manifest again at the log's end, and
            # write the new one beside the old, which it names.
            old_digest = digest
            log.warning("re-logging %s: its log index %s was taken", manifest["snapshot_id"], manifest["log"]["index"])
            # A diff digest names the diff with the previous snapshot it was signed
            # after; with another previous one it would vouch for the wrong pair.
            kept = {k: v for k, v in manifest.items()
                    if k != "diff_sha256" or manifest.get("previous_manifest_sha256") == prev_digest}
            signed = archive.provenance.sign_snapshot(
                conn,
                lambda idx, origin: {**kept, "log": {"origin": origin, "index": idx},
                                     "previous_manifest_sha256": prev_digest, "relogged_from": old_digest},
                manifest["snapshot_id"],
            )
            resp_loc = resp.location()
            (meta_loc,) = archive.writer.append([manifest_record(
                manifest["snapshot_id"], warc_date(archive.c.clock()), resp_loc.record_id, signed.record_fields(),
                archive.c.new_uuid)], pending=True)  # until COMMIT: a rollback leaves it for the next repair
            archive.note_written([meta_loc])
            relogged = (meta_loc.warc_file, meta_loc.offset)
            manifest, digest = signed.manifest, signed.digest
            fields = signed.record_fields()
            meta = _Relocated(meta_loc)
        http = http_headers(resp.rec)
        row = SnapshotRow(
            id=manifest["snapshot_id"], url=url, seq=archive.index.next_seq(conn, url), final_url=manifest["final_url"],
            captured_at=manifest["fetch_started_at"], ended_at=manifest["fetch_ended_at"], status=manifest["status"],
            content_type=http.get_header("Content-Type") if http else None, payload_sha256=manifest["payload_sha256"],
            revisit=resp.rec.type == "revisit", original_id=None, warc_file=resp.name, warc_offset=resp.member.offset,
            warc_length=resp.member.length, response_record_id=response_id, text_sha256=manifest.get("text_sha256"),
            prev_id=prev.id if prev else None, significance=manifest.get("significance", "none"), diff_json=None,
            manifest_json=canonical_json(manifest).decode("utf-8"), manifest_sha256=digest,
            signature=fields["signature"], key_id=fields["key_id"], log_index=manifest["log"]["index"],
        )
        rows = [record_row(row.id, i // 2, records[r["record_id"]].location()) for i, r in enumerate(manifest["records"])]
        rows.append(record_row(row.id, rows[-1].hop if rows else 0, meta.location()))
        page_ids = {r["record_id"] for r in manifest["records"]}
        rows += [record_row(row.id, REQUISITE_HOP, records[r["record_id"]].location())
                 for r in signed_records(manifest) if r["record_id"] not in page_ids]
        archive.index.insert_snapshot(conn, row, rows)
    archive.note_indexed(r.warc_file for r in rows)
    if relogged is not None:
        archive.writer.settle([relogged])
    if row.text_sha256 and archive.index.text(row.text_sha256) is None:
        article = archive.article(row)
        if article is not None:
            with archive.index.write() as conn:
                archive.index.put_text(conn, row.text_sha256, article.language, article.to_json())


@dataclass
class _Relocated:
    """A record repair itself just wrote: only its location is needed."""

    loc: RecordLocation

    def location(self) -> RecordLocation:
        return self.loc



def _commit_orphan(archive: Archive, capture: Capture, locations: list[RecordLocation], last: Scanned,
                   scan: Scan,
                   requisites: tuple[RequisitePlan, list[RecordLocation]] | None = None) -> SnapshotRow:
    final = capture.final
    revisit = last.rec.type == "revisit"
    encoding = final.response_headers.get("content-encoding", "")
    if revisit:
        label = last.rec.headers.get("WARC-Payload-Digest", "")
        payload_sha256 = label_hex(label) or ""
        final.body = _revisited_body(archive, scan, last.rec.headers.get("WARC-Refers-To", ""), encoding, payload_sha256)
    else:
        payload_sha256 = final.payload_sha256
        final.body = decode_content(final.payload, encoding)
    content_type = final.response_headers.get("content-type", "")
    article = archive.read_article(archive.index.last_snapshot(capture.url), final.body, content_type, final.url)
    return archive.commit_located(capture, locations, article=article, payload_sha256=payload_sha256,
                                  content_type=content_type, revisit=revisit, requisites=requisites).row


def _revisited_body(archive: Archive, scan: Scan, original_id: str, encoding: str, payload_sha256: str) -> bytes:
    """The decoded body a recovered revisit stands for: from the scan, or --
    the original lying in the part of a file repair did not read (settled, or
    before the watermark) -- from the index's record of it; empty (no text)
    unless that record holds the payload the revisit's signed intent names:
    the index may point anywhere."""
    from archiver.capture.originals import stored_payload

    target = scan.records.get(original_id)
    try:
        if target is not None:
            payload = target.rec.payload()
        else:
            row = archive.index.record(original_id) if original_id else None
            if row is None:
                return b""
            payload = stored_payload(archive.warcs.read_record(row.warc_file, row.warc_offset, row.warc_length))
    except (ArchiverError, ValueError) as exc:
        log.warning("cannot read the original %s of a recovered revisit: %s", original_id, exc)
        return b""
    if hashlib.sha256(payload).hexdigest() != payload_sha256:
        log.warning("the original %s of a recovered revisit does not hold its payload; no text is read", original_id)
        return b""
    return decode_content(payload, encoding)
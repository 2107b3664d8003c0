"""The snapshot flow's critical section: sign, log and index a group of captures.

Why its own module: this is the only part of a capture that holds the
index's write lock, so it is kept to what needs the lock -- the URL's
previous snapshot as committed, the log index, the signature, the leaf, the
manifest records' one write + fsync, the rows -- while fetching, extraction,
diffing and WARC building run before it in the capture threads.
:class:`archiver.grouping.GroupCommitter` hands it the captures that arrived
together; it commits them in one index transaction with one WARC fsync and
one signed checkpoint. The crash argument is in docs/architecture.md
("Crash safety of a capture").
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from archiver.audit.settled import store_watermarks
from archiver.canonical import canonical_json, sha256_hex
from archiver.capture.http import Capture
from archiver.capture.records import manifest_record
from archiver.capture.requisite_records import REQUISITE_HOP, RequisitePlan
from archiver.grouping import Handoff
from archiver.provenance.manifest import SignedManifest, build_manifest, diff_bytes
from archiver.results import SnapshotResult
from store.index import RecordRow, SnapshotRow
from store.warc import RecordLocation, warc_date

if TYPE_CHECKING:
    from archiver.archive import Archive
    from archiver.changes.extract import Article
    from archiver.provenance.log import MerkleLog
    from archiver.provenance.signatures import Signer

log = logging.getLogger(__name__)


class Fence(Protocol):
    """A condition a capture must still meet when it is written and committed
    (archiver/daemon/claims.py: a shared worker's lease on the URL)."""

    def confirm(self, conn: Any = None) -> None:
        """Raise an ArchiverError if not; ``conn``: the commit's transaction."""


@dataclass
class Pending:
    """One capture waiting to be signed and indexed, with what was read for it
    outside the lock; ``result`` or ``error`` is its outcome."""

    snapshot_id: str
    capture: Capture
    locations: list[RecordLocation]
    article: Article | None
    text_sha: str | None
    payload_sha256: str
    content_type: str
    revisit: bool
    requisites: tuple[RequisitePlan, list[RecordLocation]] | None
    prev_guess: SnapshotRow | None
    diff: dict[str, Any] | None
    # The article as the index stores it, packed before the lock (None: packed
    # in the transaction; b"": the index has it already, under the URL's
    # previous snapshot, and rows of texts are never deleted).
    text_packed: bytes | None = None
    region: tuple[str, int] | None = None  # where the writer put its records (None: repair's)
    fence: Fence | None = None  # a shared daemon's lease, confirmed inside the commit
    reader: str | None = None  # how ``article`` was read (ArchiveReads.reader)
    handoff: Handoff | None = None  # gives its worker's place back once the commit only waits (grouping.py)
    result: SnapshotResult | None = None
    error: BaseException | None = None

    @property
    def url(self) -> str:
        return self.capture.url


@dataclass
class _Signed:
    pending: Pending
    prev: SnapshotRow | None
    significance: str
    diff_json: str | None  # the diff as stored: the bytes its signed digest names
    signed: SignedManifest
    meta: Any  # the metadata record carrying the signed manifest


def commit_group(archive: Archive, batch: list[Pending]) -> None:
    """Commit ``batch``, setting each item's outcome. Two captures of one URL
    never share a transaction (the later one's previous snapshot is the
    earlier one), so a batch runs as rounds of distinct URLs."""
    while batch:
        seen: set[str] = set()
        now: list[Pending] = []
        later: list[Pending] = []
        for p in batch:
            (later if p.url in seen else now).append(p)
            seen.add(p.url)
        try:
            _commit_round(archive, now)
        except BaseException as exc:  # the round rolled back: its items failed, later rounds still run
            for p in now:
                if p.error is None:
                    p.result, p.error = None, exc
        batch = later


def _commit_round(archive: Archive, batch: list[Pending]) -> None:
    from archiver.errors import ArchiverError
    from archiver.provenance.log import MerkleLog

    notary = archive.provenance
    with notary.signing() as conn:
        # This transaction's view of the log: its size is kept, and the edge of
        # the tree the last round committed is used when the log still ends there.
        ledger = MerkleLog(conn, one_transaction=True, frontier=notary.frontier)
        signer = notary.keys.signer()  # one look at the key file per round, not two per capture
        notary.vouch(ledger)  # nothing is signed over a log that does not extend the last signed tree head
        ready: list[_Signed] = []
        # Fences first, before any leaf, in one order (by URL, as heartbeats
        # renew leases): a lost lease fails its capture alone, and two
        # transactions that lock the same source rows cannot deadlock.
        for p in sorted(batch, key=lambda p: p.url):
            try:
                if p.fence is not None:
                    p.fence.confirm(conn)
            except ArchiverError as exc:
                p.error = exc
        for p in batch:
            if p.error is not None:
                continue
            size = ledger.size()
            try:
                ready.append(_sign(archive, conn, p, ledger, signer))
            except ArchiverError as exc:
                if ledger.size() != size:
                    raise  # its leaf is in the transaction: the round rolls back
                p.error = exc
        if not ready:
            return
        # One write and one fsync for every manifest of the round; the records
        # they sign were written (unsynced) to the same writer before, so this
        # fsync makes them durable too -- before the COMMIT below. It runs
        # while the rows are inserted and the checkpoint signed, and is
        # waited for before the transaction may commit.
        # Pending until COMMIT: a round that rolls back leaves its signed
        # manifests where the next watermark stops, for repair to find.
        metas = archive.writer.append([s.meta for s in ready], pending=True, sync=False)
        synced = archive.writer.start_sync()
        try:
            archive.note_written(metas)
            inserted = [_insert(archive, conn, s, loc) for s, loc in zip(ready, metas)]
            results = [result for result, _ in inserted]
            rows = Counter(name for _, names in inserted for name in names)
            ledger.vouch()  # those rows were no log rows: the size need not be read again
            notary.checkpoint(conn, ledger, signer)
            edge = ledger.frontier()
            regions = [s.pending.region for s in ready if s.pending.region is not None]
            regions.append((metas[0].warc_file, metas[0].offset))
            # Only the files this round touched can have a new watermark or row count.
            touched = {name for name, _ in regions}
            marks = archive.writer.watermarks(settling=regions)
            store_watermarks(archive.index, conn, {
                name: (offset, archive.indexed.get(name, 0) + rows[name])
                for name, offset in marks.items() if name in touched})
        finally:
            for p in batch:  # what is left are waits (two fsyncs): the next captures may start
                if p.handoff is not None:
                    p.handoff.give_back()
            synced()  # the WARC bytes are durable before COMMIT (a failed fsync rolls back)
    notary.frontier = edge  # committed: the next round may start from it
    archive.writer.settle(regions)
    archive.note_indexed(rows.elements())  # rounds never overlap (one leader at a time)
    for s, result in zip(ready, results):
        s.pending.result = result
        archive.signed_here.note(s.pending.snapshot_id, s.pending.payload_sha256, s.pending.text_sha)


def _committed_prev(archive: Archive, conn: Any, p: Pending) -> SnapshotRow | None:
    """The URL's newest snapshot as committed (read in this transaction): the
    row read before the lock when it still is (same id, same signed
    manifest: a snapshot's other columns never change), else read again."""
    newest = archive.index.newest_of(conn, p.url)
    guess = p.prev_guess
    if newest is None:
        return None
    if guess is not None and newest == (guess.id, guess.manifest_sha256):
        return guess
    return archive.index.last_snapshot(p.url, conn)


def _sign(archive: Archive, conn: Any, p: Pending, ledger: MerkleLog, signer: Signer) -> _Signed:
    prev = _committed_prev(archive, conn, p)
    diff = p.diff
    if (prev and prev.id) != (p.prev_guess and p.prev_guess.id):
        diff = archive._diff(prev, p.article)  # another capture of the URL committed meanwhile
    if prev is None:
        significance = "first"
    elif diff:
        significance = diff["significance"]
    else:
        significance = _payload_significance(prev, p.payload_sha256)
    # The diff as the index will store it, and its digest signed: of the diff
    # actually stored (recomputed above when the URL's previous snapshot changed).
    stored = diff_bytes(diff) if (diff and prev) else None
    requisites = p.requisites
    signed = archive.provenance.sign_snapshot(
        conn,
        lambda log_index, origin: build_manifest(
            snapshot_id=p.snapshot_id,
            capture=p.capture,
            locations=p.locations,
            text_sha256=p.text_sha,
            payload_sha256=p.payload_sha256,
            significance=significance,
            prev_manifest_sha256=prev.manifest_sha256 if prev else None,
            log_index=log_index,
            log_origin=origin,
            hostname=archive.c.hostname,
            requisites=requisites[0].manifest(requisites[1]) if requisites else None,
            diff_sha256=sha256_hex(stored) if stored is not None else None,
        ),
        p.snapshot_id,
        checkpoint=False,
        ledger=ledger,
        signer=signer,
    )
    meta = manifest_record(
        p.snapshot_id, warc_date(archive.c.clock()), p.locations[-2].record_id, signed.record_fields(),
        archive.c.new_uuid, signed.canonical,
    )
    return _Signed(p, prev, significance, stored.decode("utf-8") if stored is not None else None, signed, meta)


def _insert(archive: Archive, conn: Any, s: _Signed, meta_loc: RecordLocation) -> tuple[SnapshotResult, list[str]]:
    """Insert the snapshot's rows; its result, and the file of each record row."""
    p, prev, signed = s.pending, s.prev, s.signed
    final = p.capture.final
    if p.article is not None and p.text_sha is not None and p.text_packed != b"":
        archive.index.put_text(conn, p.text_sha, p.article.language,
                               p.text_packed if p.text_packed is not None else p.article.to_json())
    response_loc = p.locations[-2]
    row = SnapshotRow(
        id=p.snapshot_id,
        url=p.url,
        seq=prev.seq + 1 if prev else 1,  # prev: the URL's newest snapshot, read in this transaction
        final_url=final.url,
        captured_at=warc_date(p.capture.started_at),
        ended_at=warc_date(p.capture.ended_at),
        status=final.status,
        content_type=p.content_type or None,
        payload_sha256=p.payload_sha256,
        revisit=p.revisit,
        original_id=None,
        warc_file=response_loc.warc_file,
        warc_offset=response_loc.offset,
        warc_length=response_loc.length,
        response_record_id=response_loc.record_id,
        text_sha256=p.text_sha,
        prev_id=prev.id if prev else None,
        significance=s.significance,
        diff_json=s.diff_json,
        manifest_json=(signed.canonical or canonical_json(signed.manifest)).decode("utf-8"),
        manifest_sha256=signed.digest,
        signature=signed.signature,
        key_id=signed.key_id,
        log_index=signed.manifest["log"]["index"],
        reader=p.reader,
    )
    rows = _record_rows(p.snapshot_id, p.capture, p.locations, meta_loc)
    rows += [record_row(p.snapshot_id, REQUISITE_HOP, loc) for loc in (p.requisites[1] if p.requisites else [])]
    archive.index.insert_snapshot(conn, row, rows)
    counts = {k: v for k, v in signed.manifest["requisites"].items() if k != "items"} if p.requisites else None
    return SnapshotResult(row, dict(final.response_headers), counts), [r.warc_file for r in rows]


def _payload_significance(prev: SnapshotRow, payload_sha256: str) -> str:
    """Without article text (images, PDFs), only the bytes can be compared."""
    return "none" if prev.payload_sha256 == payload_sha256 else "substantive"


def _record_rows(
    snapshot_id: str, capture: Capture, locations: list[RecordLocation], meta_loc: RecordLocation
) -> list[RecordRow]:
    rows = []
    for i, loc in enumerate(locations):
        rows.append(record_row(snapshot_id, i // 2, loc))
    rows.append(record_row(snapshot_id, len(capture.hops) - 1, meta_loc))
    return rows


def record_row(snapshot_id: str, hop: int, loc: RecordLocation) -> RecordRow:
    """The index row of one record of a snapshot (``hop``: its exchange; -1 for requisites)."""
    return RecordRow(
        record_id=loc.record_id,
        snapshot_id=snapshot_id,
        hop=hop,
        type=loc.record_type,
        target_uri=loc.target_uri,
        date=loc.date,
        warc_file=loc.warc_file,
        warc_offset=loc.offset,
        warc_length=loc.length,
        sha256=loc.sha256,
        payload_digest=loc.payload_digest,
    )

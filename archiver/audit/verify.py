"""The audit: re-hash every WARC record, check every signature, the per-URL
hash chain and the Merkle log, and cross-check WARC files against the index.

It reads the files once, in order, holding one record at a time. It trusts
the index only as a claim to be checked against the WARCs; the keyring kept
with the archive is trusted unless the auditor pins keys with
``--public-key``. :func:`verify` raises :class:`VerificationError` when
anything is wrong -- a result flag could be ignored, an exception cannot.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

from archiver.audit.problems import Findings
from archiver.audit.repair import read_quarantine, writer_alive
from archiver.canonical import canonical_json, sha256_hex
from archiver.capture.records import intent_document, is_manifest_record, manifest_fields
from archiver.errors import ArchiverError, VerificationError
from archiver.provenance.enrolment import is_shared_ring, trusted_ring
from archiver.provenance.keyring import ED25519, KeyRecord, Keyring
from archiver.provenance.ringstore import archive_keyring
from archiver.provenance.intent import check_intent, parse_intent
from archiver.provenance.log import MerkleLog
from archiver.provenance.manifest import check_signed_manifest
from archiver.provenance.merkle import (
    hash_leaf,
    root_from_leaf_hashes,
    roots_at_sizes,
    verify_consistency,
)
from archiver.provenance.manifest import signed_records
from archiver.provenance.notary import KEYRING_NAME
from archiver.provenance.notes import NoteVerifier, open_checkpoint
from store import logdb
from store.index import SnapshotRow
from store.scan import (
    Member,
    TornTail,
    digest_matches,
    iter_members_of,
    label_hex,
    label_matches,
    open_current,
    parse_record,
)
from store.warc import OPEN_SUFFIX, final_name

if TYPE_CHECKING:
    from archiver.archive import Archive

log = logging.getLogger(__name__)

SETTLE_WAIT = 2.0  # seconds a running writer gets to commit a capture verify found uncommitted


@dataclass(frozen=True)
class _Unindexed:
    """A signed capture (manifest or intent) that the index did not hold."""

    warc_file: str
    snapshot: str | None  # from a manifest
    records: tuple[str, ...]  # from an intent: the record ids it names
    detail: str


@dataclass
class Report(Findings):
    checked: int = 0
    records: int = 0
    files: int = 0
    pending: int = 0  # records of a running writer whose commit is still under way

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "records": self.records,
            "files": self.files,
            "pending": self.pending,
            "problems": self.problems_json(),
        }


@dataclass(frozen=True)
class _Seen:
    """What the scan found for one record."""

    warc_file: str
    offset: int
    length: int
    sha256: str
    type: str
    payload_sha256: str | None
    target_uri: str = ""


@dataclass
class FileScan:
    """What one WARC file holds (pickled back from a scanning process)."""

    seen: list[tuple[str, _Seen]] = field(default_factory=list)  # (record id, what it is), in file order
    manifests: list[dict[str, Any]] = field(default_factory=list)  # signed-manifest documents + _where, _record_id
    intents: list[tuple[Any, str, str]] = field(default_factory=list)  # (intent document, where, record id)
    problems: list[tuple[str | None, str, str]] = field(default_factory=list)
    count: int = 0


def scan_file(path: Path, signed: frozenset[tuple[str, str]] = frozenset()) -> FileScan:
    """One WARC file: what each record is and hashes to, manifests, problems.

    ``signed`` holds (record id, SHA-256) pairs that signed manifests claim.
    A record whose bytes hash to its claimed value is authenticated as a
    whole (once the manifest's signature checks out), so re-hashing its block
    and payload would add nothing: they are checked only for other records.
    That halves the hashing, which is most of the audit's cost.
    """
    name = final_name(path)
    out = FileScan()
    fh = open_current(path)
    if fh is None:
        return out  # gone while we looked (renamed twice): its records are newer than the scan
    with fh:
        _scan_members(name, iter_members_of(fh), signed, out)
    return out


def _scan_members(name: str, members: Iterable[Member | TornTail], signed: frozenset[tuple[str, str]], out: FileScan) -> None:
    problems = out.problems
    for item in members:
        if isinstance(item, TornTail):
            problems.append((None, "torn-file", f"{name}: {item.length} bytes at offset {item.offset}: {item.reason}"))
            continue
        out.count += 1
        where = f"{name}@{item.offset}"
        try:
            rec = parse_record(item.data)
        except ValueError as exc:
            problems.append((None, "bad-record", f"{where}: {exc}"))
            continue
        authenticated = (rec.record_id, item.sha256) in signed
        block_digest = rec.headers.get("WARC-Block-Digest")
        if block_digest and not authenticated and not digest_matches(block_digest, rec.block):
            problems.append((None, "block-digest", f"{where} {rec.record_id}: block digest does not match"))
        payload_sha = None
        label = rec.headers.get("WARC-Payload-Digest") or ""
        if rec.type == "response" and authenticated and label.lower().startswith("sha256:"):
            payload_sha = label_hex(label)
        elif rec.type == "response":
            payload = rec.payload()
            digest = hashlib.sha256(payload).digest()
            payload_sha = digest.hex()
            ok = label_matches(label, digest) if label.lower().startswith("sha256:") else digest_matches(label, payload)
            if label and not ok:
                problems.append((None, "payload-digest", f"{where} {rec.record_id}: payload digest does not match"))
        elif is_manifest_record(rec):
            fields = manifest_fields(rec)
            if fields is None:
                problems.append((None, "foreign-record", f"{where} {rec.record_id}: metadata record that is not a well-formed signed manifest"))
                continue
            else:
                out.manifests.append({**fields, "_where": where, "_record_id": rec.record_id})
        elif (doc := intent_document(rec)) is not None:
            out.intents.append((doc, where, rec.record_id))
        out.seen.append((rec.record_id, _Seen(name, item.offset, item.length, item.sha256, rec.type, payload_sha, rec.headers.get("WARC-Target-URI", ""))))


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class Auditor:
    """Runs every check over one archive directory."""

    def __init__(
        self,
        archive: Archive,
        *,
        urls: Iterable[str] | None = None,
        trusted_keys: list[KeyRecord] | None = None,
        since_note: str | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.archive = archive
        self.urls = set(urls) if urls else None
        ring = archive_keyring(archive)
        self.keyring_problems: list[str] = []
        if ring is not None and is_shared_ring(ring.keys):
            # A shared keyring: trust the root key (the pinned one, if any) and
            # the worker keys it enrolled, each within its endorsed window.
            anchors = [k.public_key for k in trusted_keys] if trusted_keys is not None else None
            ring, self.keyring_problems = trusted_ring(ring.keys, anchors)
            trusted_keys = None
        self.keyring = ring
        self.trusted = trusted_keys
        self.since_note = since_note
        self.progress = progress or (lambda _msg: None)
        self.report = Report()
        self.seen: dict[str, _Seen] = {}
        self.warc_manifests: dict[str, dict[str, Any]] = {}  # snapshot id -> metadata record fields
        self.all_manifests: list[dict[str, Any]] = []  # every manifest record, re-logged ones too
        self.intents: list[tuple[Any, str, str]] = []
        self.dupes: list[tuple[str, _Seen]] = []
        self.unindexed: list[_Unindexed] = []  # signed captures not (yet) in the index

    # -- entry ---------------------------------------------------------------
    def run(self) -> Report:
        # Snapshots committed before the scan starts must be wholly in the
        # files it reads; anything committed later is checked only for what
        # it adds to the log. So a writer running meanwhile causes no false alarm.
        for problem in self.keyring_problems:
            self.report.add(None, "keyring", problem)
        self.rows = self.archive.index.all_snapshots()
        with self.archive.warcs.local_files() as paths:  # object stores: downloaded in parallel
            self._scan_files(paths)
        self._check_snapshots()
        self._check_log()
        return self.report

    # -- 1. the WARC files ---------------------------------------------------
    def _scan_files(self, paths: list[Path]) -> None:
        """Scan files in parallel processes (hashing is the cost; files are independent)."""
        self.report.files = len(paths)
        self.live = {final_name(p) for p in paths if p.name.endswith(OPEN_SUFFIX) and writer_alive(final_name(p), self.archive.c.hostname)}
        signed = frozenset(
            (r["record_id"], r["sha256"])
            for row in self.rows if row.manifest_json
            for r in signed_records(json.loads(row.manifest_json))
        )
        workers = min(len(paths), os.cpu_count() or 1)
        results: Iterable[FileScan]
        if workers <= 1:
            results = map(scan_file, paths, [signed] * len(paths))
        else:
            pool = ProcessPoolExecutor(max_workers=workers)
            results = pool.map(scan_file, paths, [signed] * len(paths))
        try:
            for path, scanned in zip(paths, results):
                self.progress(final_name(path))
                self._merge(final_name(path), scanned)
        finally:
            if workers > 1:
                pool.shutdown()

    def _merge(self, name: str, scanned: FileScan) -> None:
        self.report.records += scanned.count
        for rid, seen in scanned.seen:
            if rid in self.seen:
                self.dupes.append((rid, seen))  # a second record under a taken id: which is genuine is decided later
            else:
                self.seen[rid] = seen
        self.all_manifests.extend(scanned.manifests)
        self.intents.extend(scanned.intents)
        for fields in scanned.manifests:
            sid = fields["manifest"]["snapshot_id"]
            # A snapshot re-logged by `repair` has two signed manifests;
            # the one the index holds is checked, the other names it.
            known = self.warc_manifests.get(sid)
            if known is None or fields["manifest"].get("relogged_from") == known.get("manifest_sha256"):
                self.warc_manifests[sid] = fields
        for p in scanned.problems:
            if name in self.live and p[1] in ("torn-file", "foreign-record"):
                self.report.pending += 1  # a live writer's record still being written
                continue
            self.report.add(*p)

    # -- 2. the snapshots ------------------------------------------------------
    def _check_snapshots(self) -> None:
        index = self.archive.index
        indexed_ids = {r.id for r in index.all_snapshots()}  # read after the scan: may include newer commits
        prev_digest: dict[str, str | None] = {}
        for row in self.rows:
            if self.urls is not None and row.url not in self.urls:
                continue
            self.report.checked += 1
            self._check_snapshot(row, prev_digest.get(row.url))
            prev_digest[row.url] = row.manifest_sha256
        self._check_unclaimed(indexed_ids)

    # -- 2b. records no signed manifest names ----------------------------------
    def _ring(self) -> Keyring | None:
        return self._pinned_ring() if self.trusted is not None else self.keyring

    def _wanted(self, url: str | None) -> bool:
        return self.urls is None or url in self.urls

    def _check_unclaimed(self, indexed_ids: set[str]) -> None:
        """Every record in the WARCs must be vouched for: named by a signed manifest
        (or be one), or -- a crash's leftovers, for `repair` -- covered by a signed
        capture intent. Anything else is a ``foreign-record``: someone who could
        write the files put it there, and nothing may replay it as evidence."""
        rows = {r.id: r for r in self.rows}
        ring = self._ring()
        accounted: set[str] = set()
        for fields in self.all_manifests:
            manifest, where = fields["manifest"], fields["_where"]
            row = rows.get(manifest["snapshot_id"])
            if row is not None and (fields.get("manifest_sha256"), fields.get("signature")) == (row.manifest_sha256, row.signature):
                why = None  # the index's copy: its signature is checked with the snapshot
            else:
                why = self._manifest_problem(fields, ring)
            accounted.add(fields["_record_id"])  # judged here, whatever the verdict
            if why is None:
                accounted.update(r["record_id"] for r in signed_records(manifest))
            elif where.split("@")[0] in self.live:
                self.report.pending += 1
            elif self._wanted(manifest.get("url")):
                self.report.add(manifest["snapshot_id"], "foreign-record", f"{where} {fields['_record_id']}: {why}")
        for sid, fields in self.warc_manifests.items():
            if sid in indexed_ids or self._manifest_problem(fields, ring) is not None:
                continue
            if fields["_where"].split("@")[0] in self.live:
                self.report.pending += 1  # signed by a running writer, commit under way
            elif self._wanted(fields["manifest"].get("url")):
                self.unindexed.append(_Unindexed(
                    fields["_where"].split("@")[0], sid, (),
                    f"{fields['_where']}: signed capture of {fields['manifest'].get('url')} is missing from the index (run `archiver repair`)"))
        for doc, where, rid in self.intents:
            self._check_intent(doc, where, rid, ring, accounted)
        quarantined = {(e["warc_file"], e["offset"]) for e in read_quarantine(self.archive.root)}
        unclaimed = [(rid, seen) for rid, seen in self.seen.items() if rid not in accounted] + self.dupes
        for rid, seen in unclaimed:
            if seen.type == "warcinfo":
                continue
            if seen.warc_file in self.live:
                self.report.pending += 1
            elif self.urls is None or seen.target_uri in self.urls:
                note = " (quarantined by repair)" if (seen.warc_file, seen.offset) in quarantined else ""
                self.report.add(None, "foreign-record", f"{seen.warc_file}@{seen.offset} {rid}: {seen.type} record that no signed manifest names{note}")
        self._report_unindexed()

    def _report_unindexed(self) -> None:
        """Report signed captures missing from the index -- after letting running
        writers finish. A capture's records and its manifest may land in two files
        when its writer rotates between them, so a file closed before the scan can
        still hold a capture whose commit is under way. While the process that wrote
        such a file runs, the index is asked again for a moment (commits take
        milliseconds); what is still missing then is reported. Only signed captures
        get this grace: foreign records were reported above regardless."""
        waiting = self.unindexed
        deadline = time.monotonic() + SETTLE_WAIT
        while waiting:
            waiting = [u for u in waiting if not self._now_indexed(u)]
            running = [u for u in waiting if self._writer_running(u.warc_file)]
            if not running or time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        for u in waiting:
            self.report.add(u.snapshot, "unindexed-capture", u.detail)

    def _now_indexed(self, u: _Unindexed) -> bool:
        if u.snapshot is not None:
            return self.archive.index.snapshot(u.snapshot) is not None
        return bool(u.records) and all(self.archive.index.record(r) is not None for r in u.records)

    def _writer_running(self, warc_file: str) -> bool:
        """Another process that wrote this file is still running here."""
        return writer_alive(warc_file, self.archive.c.hostname) and not warc_file.endswith(f"-{os.getpid()}.warc.gz")

    def _manifest_problem(self, fields: dict[str, Any], ring: Keyring | None) -> str | None:
        if ring is None:
            return f"no keyring ({KEYRING_NAME}) to check its signature with"
        try:
            check_signed_manifest(fields, ring)
        except (VerificationError, ArchiverError) as exc:
            return f"manifest signature does not verify: {exc}"
        return None

    def _check_intent(self, doc: Any, where: str, rid: str, ring: Keyring | None, accounted: set[str]) -> None:
        """A capture intent vouches for records only if its signature verifies;
        one whose records a manifest already names needs no check."""
        intent = parse_intent(doc)
        named = [r for r, _ in intent.records] if intent else []
        if intent is not None and named and all(r in accounted for r in named):
            accounted.add(rid)
            return
        if where.split("@")[0] in self.live:
            accounted.add(rid)
            accounted.update(named)
            return
        try:
            if intent is None or ring is None:
                raise VerificationError("malformed capture intent" if intent is None else "no keyring")
            check_intent(intent, ring)
        except (VerificationError, ArchiverError) as exc:
            self.report.add(None, "foreign-record", f"{where} {rid}: capture intent that does not verify: {exc}")
            accounted.add(rid)  # reported here, not again below
            return
        accounted.add(rid)
        intact = [r for r, sha in intent.records if (s := self._genuine(r, sha)) is not None and s.sha256 == sha]
        if len(intact) == len(named):
            accounted.update(named)
            self.unindexed.append(_Unindexed(where.split("@")[0], None, tuple(named), f"{where}: capture of {self.seen[named[0]].target_uri} whose records landed before its manifest (run `archiver repair`)"))

    def _genuine(self, rid: str, sha256: str) -> _Seen | None:
        """The record with this id -- the copy with these bytes when the id occurs twice."""
        seen = self.seen.get(rid)
        if seen is not None and seen.sha256 != sha256:
            for i, (d_rid, d) in enumerate(self.dupes):
                if d_rid == rid and d.sha256 == sha256:
                    self.dupes[i] = (rid, seen)
                    self.seen[rid] = seen = d
                    break
        return seen

    def _check_snapshot(self, row: Any, expected_prev: str | None) -> None:
        sid = row.id
        if not row.manifest_json or not row.manifest_sha256:
            self.report.add(sid, "no-manifest", "snapshot has no signed manifest in the index")
            return
        manifest = json.loads(row.manifest_json)
        digest = sha256_hex(canonical_json(manifest))
        if digest != row.manifest_sha256:
            self.report.add(sid, "manifest-digest", "manifest does not hash to its recorded digest")
        self._check_signature(sid, manifest, digest, row.signature, row.key_id)
        # The copy in the WARC must be the same signed manifest.
        in_warc = self.warc_manifests.get(sid)
        if in_warc is None:
            self.report.add(sid, "manifest-missing", "the WARC files hold no metadata record with this snapshot's manifest")
        elif in_warc.get("manifest_sha256") != digest or in_warc.get("signature") != row.signature:
            self.report.add(sid, "manifest-mismatch", f"{in_warc['_where']}: WARC manifest differs from the index")
        # Every record the manifest names (the page's and its requisites'), byte for byte.
        for rec in signed_records(manifest):
            seen = self._genuine(rec["record_id"], rec["sha256"])
            if seen is None:
                self.report.add(sid, "missing-record", f"{rec['type']} record {rec['record_id']} ({rec['warc_file']}@{rec['offset']}) is not in any WARC file")
            elif seen.sha256 != rec["sha256"]:
                self.report.add(sid, "record-changed", f"{rec['type']} record {rec['record_id']} at {seen.warc_file}@{seen.offset} differs from the signed manifest")
        response = self.seen.get(row.response_record_id)
        if response is not None and response.type == "response" and response.payload_sha256 != manifest.get("payload_sha256"):
            self.report.add(sid, "payload-changed", "response payload does not match the signed payload SHA-256")
        if manifest.get("payload_sha256") != row.payload_sha256:
            self.report.add(sid, "index-mismatch", "index payload SHA-256 differs from the signed manifest")
        for rr in self.archive.index.records_for(sid):
            seen = self.seen.get(rr.record_id)
            if seen is not None and (seen.warc_file, seen.offset) != (rr.warc_file, rr.warc_offset):
                self.report.add(sid, "index-mismatch", f"record {rr.record_id} is at {seen.warc_file}@{seen.offset}, index says {rr.warc_file}@{rr.warc_offset}")
        if manifest.get("previous_manifest_sha256") != expected_prev:
            self.report.add(sid, "chain-broken", "previous_manifest_sha256 does not name the URL's previous snapshot")

    def _check_signature(self, sid: str | None, manifest: dict[str, Any], digest: str, signature: str | None, key_id: str | None) -> None:
        if not signature or not key_id:
            self.report.add(sid, "bad-signature", "manifest is not signed")
            return
        try:
            sig = base64.b64decode(signature, validate=True)
        except ValueError:
            self.report.add(sid, "bad-signature", "signature is not valid base64")
            return
        try:
            at = _parse_time(str(manifest.get("signed_at") or manifest.get("fetch_ended_at")))
        except ValueError:
            self.report.add(sid, "bad-signature", "manifest has no valid signing time")
            return
        data = canonical_json(manifest)
        keyring = self.keyring
        if self.trusted is not None:
            if key_id not in {k.key_id for k in self.trusted}:
                self.report.add(sid, "untrusted-key", f"signed by key {key_id[:16]}…, not by the given public key")
                return
            keyring = self._pinned_ring()
        if keyring is None:
            self.report.add(sid, "bad-signature", f"no keyring ({KEYRING_NAME}) to check signatures with")
            return
        try:
            keyring.verify(key_id, data, sig, at)
        except VerificationError as exc:
            self.report.add(sid, "bad-signature", str(exc))

    # -- 3. the log ------------------------------------------------------------
    def _check_log(self) -> None:
        with self.archive.index.read() as conn:  # one consistent view of the whole log
            ledger = MerkleLog(conn)
            size = ledger.size()
            log_rows = conn.execute("SELECT idx, leaf_hash, snapshot_id FROM log_leaves ORDER BY idx").fetchall()
            leaves = [bytes(r[1]) for r in log_rows]
            snapshots = {r[0]: r[2] for r in log_rows}
            latest = ledger.latest_checkpoint()
            # Read with the leaves, so a snapshot committed meanwhile is in neither.
            rows = [SnapshotRow.from_row(r) for r in conn.execute("SELECT * FROM snapshots")]
            kept = logdb.kept_checkpoints(conn)
            consistency = None
            if self.since_note is not None:
                consistency = self._since(ledger, size)
        if len(leaves) != size:
            self.report.add(None, "log-gap", f"log has {len(leaves)} leaves but size {size}")
        for row in rows:
            if self.urls is not None and row.url not in self.urls:
                continue
            if row.log_index is None or row.manifest_sha256 is None:
                continue
            if row.log_index >= len(leaves):
                self.report.add(row.id, "log-missing", f"log has no leaf {row.log_index}")
            elif leaves[row.log_index] != hash_leaf(bytes.fromhex(row.manifest_sha256)):
                self.report.add(row.id, "log-mismatch", f"log leaf {row.log_index} is not this snapshot's manifest digest")
        known = {r.id for r in rows}
        for idx, sid in snapshots.items():
            if sid not in known and sid not in self.warc_manifests:
                self.report.add(sid, "log-orphan", f"log leaf {idx} names a snapshot that is neither indexed nor in the WARCs")
        root = root_from_leaf_hashes(leaves)
        if latest is None:
            if size:
                self.report.add(None, "checkpoint", "the log has leaves but no signed checkpoint")
            return
        if latest.size != size:
            self.report.add(None, "checkpoint", f"latest checkpoint is for size {latest.size}, the log has {size} leaves")
        elif latest.root != root:
            self.report.add(None, "checkpoint", "log root does not match the latest signed checkpoint")
        try:
            cp = open_checkpoint(latest.note, self._note_verifiers())
            if cp.size != latest.size or cp.root != latest.root:
                self.report.add(None, "checkpoint", "signed checkpoint note disagrees with its stored size/root")
        except (VerificationError, ArchiverError) as exc:
            self.report.add(None, "checkpoint", f"checkpoint signature: {exc}")
        if consistency:
            self.report.add(None, "not-append-only", consistency)
        self._check_kept([c for c in kept if c.size != latest.size], leaves)
        self._check_timestamps({c.size: c.note for c in kept})

    def _check_kept(self, kept: list[logdb.CheckpointRow], leaves: list[bytes]) -> None:
        """Every kept earlier checkpoint is signed, and its root is the root of
        the log's first entries of its size: the log only ever grew."""
        roots = roots_at_sizes(leaves, [c.size for c in kept])
        verifiers = self._note_verifiers() if kept else []
        for c in kept:
            try:
                cp = open_checkpoint(c.note, verifiers)
                if cp.size != c.size or cp.root != c.root:
                    self.report.add(None, "checkpoint", f"signed checkpoint note of size {c.size} disagrees with its stored size/root")
            except (VerificationError, ArchiverError) as exc:
                self.report.add(None, "checkpoint", f"checkpoint of size {c.size}: signature: {exc}")
            if c.size not in roots:
                self.report.add(None, "not-append-only", f"the log has {len(leaves)} entries, fewer than the {c.size} "
                                "of a kept signed checkpoint: entries were removed")
            elif roots[c.size] != c.root:
                self.report.add(None, "not-append-only", f"the first {c.size} entries no longer hash to the root of the "
                                "kept signed checkpoint of that size: history was rewritten")

    def _check_timestamps(self, notes: dict[int, str]) -> None:
        """Each stored RFC 3161 token must cover the signed checkpoint of its tree size."""
        from archiver.provenance.timestamping import load_tokens, verify_token

        try:
            tokens = load_tokens(self.archive.root)
        except ArchiverError as exc:
            self.report.add(None, "timestamp", f"cannot read stored timestamps: {exc}")
            return
        roots = [Path(p).read_bytes() for p in self.archive.settings.signing.tsa_roots] or None
        for tok in tokens:
            note = notes.get(tok.tree_size)
            if note is None:
                self.report.add(None, "timestamp", f"{tok.path.name}: no checkpoint of size {tok.tree_size} to cover")
                continue
            try:
                verify_token(tok.token, note.encode("utf-8"), roots=roots)
            except ArchiverError as exc:
                self.report.add(None, "timestamp", f"{tok.path.name}: {exc}")

    def _since(self, ledger: MerkleLog, size: int) -> str | None:
        """Prove the log extends an earlier published checkpoint; a message if not."""
        assert self.since_note is not None
        try:
            old = open_checkpoint(self.since_note, self._note_verifiers())
        except (VerificationError, ArchiverError) as exc:
            return f"the --since checkpoint does not verify: {exc}"
        if old.size > size:
            return f"the log has {size} entries, fewer than the {old.size} of the earlier checkpoint: entries were removed"
        if old.size == 0:
            return None
        try:
            if ledger.root(old.size) != old.root:
                return f"the first {old.size} entries no longer hash to the earlier checkpoint's root: history was rewritten"
            verify_consistency(old.size, size, ledger.consistency_proof(old.size, size), old.root, ledger.root(size))
        except (VerificationError, ArchiverError) as exc:
            return f"no consistency proof from size {old.size} to {size}: {exc}"
        return None

    def _pinned_ring(self) -> Keyring:
        """Only the pinned keys, with the archive keyring's validity windows where it has them."""
        assert self.trusted is not None
        known = {k.key_id: k for k in (self.keyring.keys if self.keyring else ())}
        ring = Keyring(self.archive.root / "pinned-keys")
        ring._records = [known.get(k.key_id, k) for k in self.trusted]
        return ring

    def _note_verifiers(self) -> list[NoteVerifier]:
        keys = self.trusted if self.trusted is not None else (self.keyring.keys if self.keyring else ())
        return [NoteVerifier.from_spki(k.name, k.public_key) for k in keys if k.algorithm == ED25519]


def load_public_keys(paths: Iterable[Path]) -> list[KeyRecord]:
    """Keys an auditor pins with ``--public-key`` (PEM SPKI files)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from archiver.provenance.keyring import key_id_for

    out = []
    for path in paths:
        try:
            key = serialization.load_pem_public_key(Path(path).read_bytes())
        except (OSError, ValueError) as exc:
            raise ArchiverError(f"cannot read public key {path}: {exc}") from exc
        if not isinstance(key, ed25519.Ed25519PublicKey):
            raise ArchiverError(f"{path}: expected the archive's Ed25519 signing key")
        der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        out.append(
            KeyRecord(key_id=key_id_for(der), algorithm=ED25519, public_key=der,
                      valid_from=_EPOCH,
                      valid_until=None, name="archiver")
        )
    return out


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def audit(archive: Archive, **kwargs: Any) -> Report:
    """Every check, collected; use :func:`verify` where failure must stop you."""
    return Auditor(archive, **kwargs).run()


def verify_archive(archive: Archive, **kwargs: Any) -> Report:
    """Run the audit; raise VerificationError carrying the report if anything is wrong."""
    report = audit(archive, **kwargs)
    if not report.ok:
        err = VerificationError(f"{len(report.problems)} problem(s) found in {archive.root}", report.problems)
        err.report = report  # type: ignore[attr-defined]
        raise err
    return report

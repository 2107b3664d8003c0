"""The audit: re-hash every WARC record, check every signature, the per-URL
hash chain and the Merkle log, and cross-check WARC files against the index.

It trusts the index only as a claim to be checked against the WARCs; the
keyring kept with the archive is trusted unless the auditor pins keys with
``--public-key``. :func:`verify` raises :class:`VerificationError` when
anything is wrong -- a result flag could be ignored, an exception cannot.

Cost is linear in the archive and memory is not: the files are hashed in
worker processes (``scanner``), each matching records with the manifests
beside them; one summary per manifest goes to a scratch table on disk
(``scratch``), and the index's snapshots are copied beside it while the
workers scan; after the scan one query tells apart the snapshots whose
check could find nothing wrong, and only the others are checked one by one;
the log is checked in a pass of its own (``logcheck``), beside the scan.
Only what does not match inside a task -- leftovers: records and claims
across a file boundary, or tampering -- is held in memory.

At about 860 lines this module is over the house's 500 on purpose: it is one
class, the Auditor, whose phases (plan the tasks, merge their results, check
the snapshots, account for what no manifest claims) all read and extend the
same leftovers and findings; the parts with a concern of their own already
live beside it (scanner, scratch, logcheck, judge, quarantine), and cutting
the rest apart would pass that shared state between modules instead.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from archiver.audit import claims as native_claims
from archiver.audit.judge import Judge, load_public_keys, pinned_anchor
from archiver.audit.leafvouch import LeafFold, checked_checkpoints
from archiver.audit.logcheck import check_log, report_orphans
from archiver.audit.problems import DIFF_MISMATCH, Findings
from archiver.audit.quarantine import overtaken, read_quarantine, writer_alive
from archiver.audit.scanner import Claim, IndexRows, Piece, Seen, Summary, TaskResult, init_worker, scan_task
from archiver.audit.scratch import Found, ManifestTable, chosen
from archiver.canonical import canonical_json, sha256_hex
from archiver.errors import ArchiverError, LedgerError, VerificationError
from archiver.provenance import treehead
from archiver.provenance.intent import check_intent, parse_intent
from archiver.provenance.keyring import KeyRecord, Keyring
from archiver.provenance.manifest import signed_diff_digest, signed_records, stored_diff_sha256
from archiver.provenance.merkle import hash_leaf
from store.compact import unpack, unpack_utf8
from store.errors import StoreError
from store.fields import parse_fields
from store.rowforms import in_file, stored_hex
from store.scan import Member, iter_members_of, open_current
from store.warc import OPEN_SUFFIX, final_name
from store.warcmerge import stray_copies

if TYPE_CHECKING:
    from concurrent.futures import Future

    from archiver.archive import Archive

__all__ = ["Auditor", "Report", "audit", "verify_archive", "load_public_keys"]

log = logging.getLogger(__name__)

SETTLE_WAIT = 2.0  # seconds a running writer gets to commit a capture verify found uncommitted
TASK_BYTES = (1 << 19, 4 << 20)  # a scanning task's share of the WARC bytes: at least (the last tasks: no core left scanning alone for long), at most (memory in flight scales with it)
FIRST_TASK = 1 << 20  # the share of each core's first task (see _plan)
TASK_FILES = 400  # small files (object-store appends) per task at most
ROW_BATCH = 500  # index snapshots per query
_FILE = "COALESCE((SELECT warc_name FROM warc_files WHERE file_id = {t}.file_id), {t}.warc_file)"  # a row's file, either form
_PLACED = (f"(SELECT COUNT(*) FROM records r WHERE r.record_id = s.response_record_id AND r.warc_offset = s.warc_offset "
           f"AND r.warc_length = s.warc_length AND (r.file_id = s.file_id OR {_FILE.format(t='r')} = {_FILE.format(t='s')})) "
           "AS placed")
"""1 when a snapshot row locates its response record where the records table does (readers follow the row's location)."""


@dataclass(frozen=True)
class _Unindexed:
    """A signed capture (manifest or intent) that the index did not hold."""

    warc_file: str
    snapshot: str | None  # from a manifest
    records: tuple[str, ...]  # from an intent: the record ids it names
    detail: str
    url: str = ""  # from an intent: its page's URL and when it was written
    written_at: str = ""


@dataclass
class Report(Findings):
    checked: int = 0
    records: int = 0
    files: int = 0
    pending: int = 0  # records of a running writer whose commit is still under way
    overtaken: int = 0  # unsigned captures a later snapshot of their URL overtook (audit/quarantine.py)
    vouched: int = 0  # snapshots checked whose signature their key's latest checkpoint vouched for (audit/leafvouch.py)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "vouched": self.vouched,
            "records": self.records,
            "files": self.files,
            "pending": self.pending,
            "overtaken": self.overtaken,
            "problems": self.problems_json(),
        }


@dataclass(frozen=True)
class _Task:
    pieces: list[Piece]
    split: bool  # one piece of a file scanned in several


def _cores() -> int:
    """The cores this process may run on (taskset, a container's CPU set), not the machine's."""
    machine = os.cpu_count() or 1
    try:
        return max(1, min(machine, len(os.sched_getaffinity(0))))
    except AttributeError:  # pragma: no cover - platforms without sched_getaffinity
        return machine


def _named(cands: list[Found], digest: str | None, signature: str | None) -> Found | None:
    """The WARC manifest a row without its own copy names: the one hashing to
    its digest (with its signature, if one does); else any, to report."""
    hashed = [c for c in cands if c.digest == digest]
    signed = [c for c in hashed if c.signature == signature]
    pick = signed or hashed or cands
    return pick[-1] if pick else None


class Auditor:
    """Runs every check over one archive."""

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
        self.judge, self.keyring_problems = Judge.of(archive, trusted_keys or pinned_anchor(archive))
        self.keyring: Keyring | None = self.judge.keyring
        self.trusted = self.judge.trusted
        self.since_note = since_note
        self.progress = progress or (lambda _msg: None)
        self.report = Report()
        # What tasks left over (small unless files were tampered with or split captures):
        self.seen: dict[str, Seen] = {}
        self.dupes: list[tuple[str, Seen]] = []
        self.unplaced: dict[str, Seen] = {}
        self.misplaced: list[tuple[str, str, str, int]] = []
        self.loose: list[Summary] = []  # manifests with unresolved claims or a failed signature
        self.intents: list[tuple[Any, str, str, tuple[str, ...]]] = []
        self.index_copies: set[str] = set()  # where the index's own (failing) manifests lie
        self.unindexed: list[_Unindexed] = []
        self.refers: dict[tuple[str, str], tuple[str, str | None]] = {}  # revisits tasks left over: what they name
        self.paths: dict[str, Path] = {}
        self._held: list[TaskResult] = []  # pieces of a cut file, merged once all are in
        self._held_from = 0  # the scratch table's last row before the held pieces' rows
        self._log: tuple[threading.Thread, Findings, list[Any]] | None = None  # the log check, running beside the scan
        self._fold: LeafFold | None = None  # the vouching checkpoints' leaves, folded in the view (_vouch)
        self._vouching: frozenset[str] = frozenset()  # ... the keys whose checkpoint's root they hash to
        # where the copy of the index's snapshots has got to (_copy_snapshots): the last (url, seq), the last (url, digest)
        self._copied: tuple[tuple[str, int] | None, tuple[str, str | None]] | None = (None, ("", None))

    # -- entry ---------------------------------------------------------------
    def run(self) -> Report:
        # Snapshots committed before the scan starts must be wholly in the files
        # it reads: the snapshots checked are read in a transaction opened before
        # the scan. Anything committed later is checked only for what it adds to
        # the log, so a writer running meanwhile causes no false alarm.
        for problem in self.keyring_problems:
            self.report.add(None, "keyring", problem)
        self.manifests = ManifestTable()
        collecting = gc.isenabled()
        gc.disable()  # the tasks' results arrive as tuples by the hundred thousand, none in a cycle: ~5 % of this process's CPU
        try:
            # The view starts before the files are listed: a snapshot committed
            # in between would have its manifest in a file opened (by rotation)
            # after the listing, and look manifest-missing. It ends before the
            # unclaimed records are judged, which asks the index again.
            with contextlib.ExitStack() as view:
                conn = view.enter_context(self.archive.index.read())
                conn.execute("SELECT COUNT(*) FROM snapshots").fetchone()  # the view starts here
                self._vouch(conn)
                stray = stray_copies(conn)  # copies a WARC compaction leaves (store/warcmerge.py)
                for name in self.archive.warcs.irregular():
                    self.report.add(None, "foreign-file", f"{name} in the WARC store is no regular file (a FIFO, "
                                    "device or directory); not read")
                with self.archive.warcs.local_files() as paths:  # object stores: downloaded in parallel
                    paths = [p for p in paths if final_name(p) not in stray]
                    self.paths = {final_name(p): p for p in paths}
                    self._scan_files(conn, paths)
                    self.manifests.seal()
                    self._check_snapshots(conn)
                    self._check_revisits()
                    view.close()
                    self._check_misplaced()
                    self._check_unclaimed()
            self._start_log()  # (started beside the scan; here only when there was nothing to scan)
            self._finish_log()
            self._check_head()
        finally:
            self.manifests.close()
            if collecting:
                gc.enable()
        return self.report

    def _vouch(self, conn: Any) -> None:
        """Let each key's latest checkpoint whose signature verifies vouch for
        the signatures by that key its leaves hold (audit/leafvouch.py): the
        workers then skip libsodium for those manifests, and the leaves are
        folded once in this view to see that each checkpoint's root is
        theirs. Not in the pure-Python reference, which checks every
        signature."""
        if native_claims.native is None:
            return
        vouches = checked_checkpoints(conn, self.judge)
        if vouches:
            self._fold = LeafFold(vouches)
            self.judge = dataclasses.replace(self.judge, vouched=self._fold.sizes)

    def _start_log(self) -> None:
        """Check the log (logcheck.py) in a thread while the files are scanned:
        it needs nothing the scan finds but the manifests of orphan leaves,
        which are judged once the scan is done (_finish_log). Started after
        the worker processes are: a fork while this thread holds a lock
        could leave that lock held in the child."""
        if self._log is not None:
            return
        findings = Findings()
        outcome: list[Any] = []  # what check_log returned, or what it raised

        def run() -> None:
            try:
                outcome.append(check_log(self.archive, self.judge, findings, wanted=self._wanted, in_warcs=None,
                                         since_note=self.since_note))
            except BaseException as exc:  # raised again by the main thread (_finish_log)
                outcome.append(exc)

        thread = threading.Thread(target=run, name="verify-log", daemon=True)
        thread.start()
        self._log = (thread, findings, outcome)

    def _finish_log(self) -> None:
        """Wait for the log check; its findings follow the scan's, as when it ran after it."""
        assert self._log is not None
        thread, findings, outcome = self._log
        thread.join()
        if isinstance(outcome[0], BaseException):
            raise outcome[0]
        report_orphans(outcome[0], self.manifests.has, findings)
        self.report.problems.extend(findings.problems)

    def _check_head(self) -> None:
        """The log must extend the tree head this machine's key last signed,
        kept in ``keys/`` (provenance/treehead.py), when it can be read here:
        a log rewritten in the index and its old checkpoints destroyed passes
        every other check."""
        path = self.archive.settings.key_path / treehead.NAME
        try:
            why = treehead.index_problem(self.archive.index, treehead.read_head(path))
        except LedgerError as exc:
            if isinstance(exc.__cause__, PermissionError):  # another user's keys/: not this auditor's to read
                log.info("verify: %s", exc)
                return
            why = str(exc)
        if why is not None:
            self.report.add(None, "tree-head", f"{why} ({path})")

    def _wanted(self, url: str | None) -> bool:
        return self.urls is None or url in self.urls

    # -- 1. the WARC files ---------------------------------------------------
    def _scan_files(self, conn: Any, paths: list[Path]) -> None:
        """Hash the files in worker processes, a bounded number of tasks in flight."""
        self.report.files = len(paths)
        self.live = {final_name(p) for p in paths if p.name.endswith(OPEN_SUFFIX) and writer_alive(final_name(p), self.archive.c.hostname)}
        sizes = {p: _size(p) for p in paths}
        self._conn = conn
        tasks = list(self._plan(conn, paths, sizes))
        workers = min(len(tasks), _cores())
        if workers <= 1:
            self._start_log()
            for task in tasks:
                self._take(task, scan_task(task.pieces, self._rows(conn, task.pieces), self.judge))
            self._flush()
            return
        from concurrent.futures import ProcessPoolExecutor  # multiprocessing: only when there is more than one task

        native_claims.prepare()  # libsodium loaded once, here: the workers inherit it

        with ProcessPoolExecutor(max_workers=workers, initializer=init_worker, initargs=(self.judge,)) as pool:
            ahead: list[tuple[_Task, Future[TaskResult]]] = []
            for task in tasks:
                ahead.append((task, pool.submit(scan_task, task.pieces, self._rows(conn, task.pieces))))
                if len(ahead) >= workers:  # (the first submit started every worker process)
                    self._start_log()  # once each has a task: the log's Python would hold up the next ones' rows
                if len(ahead) >= 2 * workers:
                    done, fut = ahead.pop(0)
                    self._take(done, self._meanwhile(conn, fut))
            self._start_log()
            for done, fut in ahead:
                self._take(done, self._meanwhile(conn, fut))
        self._flush()

    def _meanwhile(self, conn: Any, fut: Future[TaskResult]) -> TaskResult:
        """A task's result; until it is in, the index's snapshots are copied."""
        while not fut.done() and (self._copy_snapshots(conn) or (self._fold is not None and self._fold.step(conn))):
            pass
        return fut.result()

    def _plan(self, conn: Any, paths: list[Path], sizes: dict[Path, int]) -> Iterator[_Task]:
        """Consecutive files grouped, or one large file cut at record offsets the
        index gives (checked afterwards: each piece must end where the next begins).

        Tasks shrink as the work left does (a quarter of each core's part of
        it, within TASK_BYTES): the first are large, so there are few to hand
        out, and the last are small, so no core hashes a big last piece alone
        while the others wait. The very first, one per core, are small
        (FIRST_TASK): a worker starts once its first task's index rows are
        read, and a large first task kept the last core waiting for them."""
        lo, hi = TASK_BYTES
        cores = _cores()
        whole = left = sum(sizes.values())
        first = max(lo, min(hi, FIRST_TASK))

        def share(done: int = 0) -> int:
            if whole - left + done < cores * first:
                return first
            return max(lo, min(hi, (left - done) // (4 * cores)))

        group: list[Piece] = []
        total = 0
        for path in paths:
            name, size = final_name(path), sizes[path]
            if size > 2 * share():
                if group:
                    yield _Task(group, False)
                    left -= total
                    group, total = [], 0
                cuts = self._cuts(conn, name, share, size)
                left -= size
                if len(cuts) > 1:
                    for start, stop in zip(cuts, [*cuts[1:], None]):
                        yield _Task([Piece(str(path), name, start, stop)], True)
                    continue
                left += size  # not cut after all: it joins the group
            group.append(Piece(str(path), name))
            total += size
            if total >= share() or len(group) >= TASK_FILES:
                yield _Task(group, False)
                left -= total
                group, total = [], 0
        if group:
            yield _Task(group, False)

    def _cuts(self, conn: Any, name: str, share: Callable[[int], int], size: int) -> list[int]:
        """Where to cut a file: record offsets about ``share(bytes cut off so far)`` apart."""
        cuts = [0]
        terms = in_file(conn, name)
        while cuts[-1] + share(cuts[-1]) < size:
            found = [row[0] for where, args in terms
                     for row in conn.execute(f"SELECT MIN(warc_offset) FROM records WHERE {where} AND warc_offset >= ?",
                                             (*args, cuts[-1] + share(cuts[-1]))).fetchall() if row[0] is not None]
            if not found or int(min(found)) <= cuts[-1]:
                break
            cuts.append(int(min(found)))
        return cuts

    def _rows(self, conn: Any, pieces: list[Piece]) -> IndexRows:
        """The index's records in these pieces: where each should be, and its SHA-256."""
        sql = "SELECT record_id, snapshot_id, warc_offset, sha256, digest FROM records WHERE "
        out: IndexRows = {}
        for p in pieces:
            for where, args in in_file(conn, p.name):
                rows = conn.execute(sql + f"{where} AND warc_offset >= ? AND warc_offset < ?",
                                    (*args, p.start, p.stop if p.stop is not None else 1 << 62)).fetchall()
                out.update({r[0]: (r[1], p.name, int(r[2]), stored_hex(r[3], r[4])) for r in rows})
        return out

    def _take(self, task: _Task, result: TaskResult) -> None:
        """Merge a task's result; a file cut in pieces only once all its pieces
        are in -- but its manifests' rows, nearly all of a result, go to the
        scratch table at once (taken out again if the file must be read
        whole), so that little is left to merge after the last task."""
        if not task.split:
            self._merge(result)
            return
        piece = task.pieces[0]
        if piece.start == 0:
            self._flush()
            self._held_from = self.manifests.last()
        self.manifests.add(result.rows)
        result.rows = []
        self._held.append(result)
        if piece.stop is None:
            self._flush()

    def _flush(self) -> None:
        held, self._held = self._held, []
        if not held:
            return
        ends = [e for r in held for e in r.ends]
        if all(a[2] == b[1] for a, b in zip(ends, ends[1:])):
            for r in held:
                self._merge(r)
            return
        # A cut fell inside a record (the index's offsets were wrong): scan the file whole.
        self.manifests.drop_after(self._held_from)
        name = ends[0][0]
        log.warning("verify: %s did not split at the index's record offsets; scanning it whole", name)
        whole = [Piece(str(self.paths[name]), name)]
        self._merge(scan_task(whole, self._rows(self._conn, whole), self.judge))

    def _merge(self, result: TaskResult) -> None:
        self.report.records += result.count
        for name in dict.fromkeys(e[0] for e in result.ends):
            self.progress(name)
        for rid, seen in result.leftovers:
            if rid in self.seen:
                self.dupes.append((rid, seen))  # a second record under a taken id: which is genuine is decided later
            else:
                self.seen[rid] = seen
        self.unplaced.update(result.unplaced)
        self.misplaced.extend(result.misplaced)
        self.intents.extend(result.intents)
        self.manifests.add(result.rows)
        self.manifests.add_revisits(result.revisits, result.payloads)
        self.refers.update(((rid, sha), (refers_to, stated)) for rid, sha, refers_to, stated in result.refers)
        self.loose.extend(result.loose)
        for sid, kind, detail, name in result.problems:
            if name in self.live and kind in ("torn-file", "foreign-record"):
                self.report.pending += 1  # a live writer's record still being written
            elif sid is None or kind != "index-mismatch" or self._wanted_snapshot(sid):
                self.report.add(sid, kind, detail)

    def _wanted_snapshot(self, sid: str) -> bool:
        if self.urls is None:
            return True
        row = self.archive.index.snapshot(sid)
        return row is not None and row.url in self.urls

    # -- 2. the snapshots ------------------------------------------------------
    def _copy_snapshots(self, conn: Any) -> bool:
        """Copy the next batch of the index's snapshots, in (url, seq) order,
        to the scratch table (what _check_snapshots reads); False once all
        are. Called while the workers scan, so that this reading overlaps it."""
        if self._copied is None:
            return False
        last, prev = self._copied
        # the stored leaf at the row's log index, when that is below its key's vouching checkpoint's size
        sizes = sorted(self._fold.sizes.items()) if self._fold is not None else []
        leaf = ("NULL" if not sizes else "(SELECT leaf_hash FROM log_leaves WHERE idx = s.log_index AND idx < CASE s.key_id "
                f"{' '.join('WHEN ? THEN ?' for _ in sizes)} ELSE 0 END)")
        args = tuple(x for pair in sizes for x in pair)
        cols = (f"id, url, seq, payload_sha256, response_record_id, manifest_json, manifest_sha256, signature, key_id, "
                f"manifest_z, {_PLACED}, diff_json, diff_z, {leaf}")
        if last is None:
            rows = conn.execute(f"SELECT {cols} FROM snapshots s ORDER BY url, seq LIMIT {ROW_BATCH}", args).fetchall()
        else:
            rows = conn.execute(f"SELECT {cols} FROM snapshots s WHERE url > ? OR (url = ? AND seq > ?) "
                                f"ORDER BY url, seq LIMIT {ROW_BATCH}", (*args, last[0], last[0], last[1])).fetchall()
        if not rows:
            self._copied = None
            return False
        out = []
        for r in rows:  # expected: the digest the URL's previous snapshot has (prev: url, its last digest)
            out.append((*r[:10], prev[1] if prev[0] == r[1] else None, r[10], stored_diff_digest(r[11], r[12]),
                        None if r[13] is None else bytes(r[13])))
            prev = (r[1], r[6])
        self.manifests.add_snapshots(out)
        self._copied = ((rows[-1][1], int(rows[-1][2])), prev)
        return True

    def _check_revisits(self) -> None:
        """Every signed revisit's original -- the record its WARC-Refers-To
        names -- must be a response a signed manifest names, holding the
        payload the revisit states (the digests the scan took of each: nothing
        is read again). A capture made before originals were checked could
        sign a revisit of other content (archiver/capture/originals.py)."""
        for sid, rid, refers_to, stated, signed in self.manifests.revisits_astray():
            left = self._left_over(refers_to)
            if not self._wanted_snapshot(sid) or (stated is not None and stated in left):
                continue
            signed = signed or bool(left)
            why = ("states no SHA-256 payload digest" if stated is None
                   else f"whose payload is not the {stated[:16]}… it states" if signed
                   else "which is no response a signed manifest names")
            self.report.add(sid, "revisit-original", f"revisit {rid} refers to {refers_to or 'no record'}, {why}"
                            if stated is not None else f"revisit {rid} {why}")

    def _left_over(self, rid: str) -> set[str | None]:
        """The payloads of responses ``rid`` among the records no manifest
        claimed inside their task (a capture whose records and manifest were
        scanned in two tasks): an original whose manifest's claim is settled
        here, or -- when no signed manifest names it -- a foreign record,
        reported as such (_check_unclaimed)."""
        copies = [s for r, s in ((rid, self.seen.get(rid)), (rid, self.unplaced.get(rid)), *self.dupes) if r == rid]
        return {s.payload_sha256 for s in copies if s is not None and s.type == "response"}

    def _check_snapshots(self, conn: Any) -> None:
        """Every snapshot the index held before the scan, in (url, seq) order:
        those whose check would find nothing wrong told apart in one query
        (scratch.SETTLED), the others checked one by one, in batches."""
        while self._copy_snapshots(conn):
            pass
        self._vouching = self._fold.finish(conn) if self._fold is not None else frozenset()
        total, rows = self.manifests.snapshots(self.urls is not None, self._vouching)
        checked = 0
        while batch := rows.fetchmany(ROW_BATCH):
            found = self.manifests.lookup([r[0] for r in batch])
            for r in batch:
                sid, url = r[0], r[1]
                cands = found.get(sid, [])
                for c in cands:
                    if c.verdict is not None and (c.stated, c.signature) == (r[6], r[7]):
                        self.index_copies.add(c.where)  # the index's copy: judged with the snapshot
                if not self._wanted(url):
                    continue
                checked += 1
                self._check_snapshot(r, _named(cands, r[6], r[7]) if r[5] is None and r[9] is None
                                     else chosen(cands) if cands else None, r[10])
        self.report.checked += checked if self.urls is not None else total
        if self.urls is None and self._vouching:  # (asked for some URLs, each is counted as it is checked)
            self.report.vouched = self.manifests.vouched()

    def _check_snapshot(self, r: Any, in_warc: Found | None, expected_prev: str | None) -> None:
        sid, _url, _seq, payload_sha, response_id, text, manifest_sha, signature, key_id, packed = r[:10]
        if packed is not None:  # schema 6 stores it compressed
            try:
                text = unpack(packed)
            except StoreError as exc:
                self.report.add(sid, "manifest-digest", f"the index's manifest cannot be read: {exc}")
                return
        if not manifest_sha or (text is not None and not text):
            self.report.add(sid, "no-manifest", "snapshot has no signed manifest in the index")
            return
        manifest: dict[str, Any] | None = None
        if text is None:  # schema 9: the manifest is only in the WARC, named by the row's digest
            if in_warc is None or in_warc.digest != manifest_sha:
                self.report.add(sid, "manifest-missing", "the WARC files hold no metadata record with this snapshot's manifest"
                                if in_warc is None else f"no manifest in the WARC files hashes to the index's digest ({in_warc.where} differs)")
                self._check_indexed_records(sid)
                return
            digest = manifest_sha
            if (in_warc.signature, in_warc.key_id) != (signature, key_id):
                try:  # the row's signature or key differs from the WARC's: judge the row's against the manifest
                    manifest = self.archive.manifest_named(sid, manifest_sha)
                except ArchiverError as exc:
                    self.report.add(sid, "manifest-missing", str(exc))
                    return
        elif hashlib.sha256(text.encode("utf-8")).hexdigest() == manifest_sha:
            digest = manifest_sha  # stored canonical: no need to parse it to know its digest
        else:
            manifest = json.loads(text)
            digest = sha256_hex(canonical_json(manifest))
            if digest != manifest_sha:
                self.report.add(sid, "manifest-digest", "manifest does not hash to its recorded digest")
        same = (in_warc is not None and in_warc.digest == digest
                and in_warc.signature == signature and in_warc.key_id == key_id)
        if same:
            assert in_warc is not None
            sig_problem, payload, prev = in_warc.sig_problem, in_warc.payload, in_warc.prev
            if in_warc.leaf is not None and key_id in self._vouching and in_warc.leaf == r[13]:
                self.report.vouched += self.urls is not None
            elif in_warc.leaf is not None:
                # the checkpoint was to vouch for its signature, and does not: check it
                sig_problem = self._signature_problem(sid, manifest_sha, signature, key_id)
                if r[13] is not None and r[13] == hash_leaf(bytes.fromhex(manifest_sha)):
                    # the older form, which logcheck takes (it reads no manifest): this one states the other
                    self.report.add(sid, "log-mismatch", "its log leaf holds its digest alone, not its signature, "
                                    "which its manifest says it does")
            claims: Iterable[Claim] = in_warc.unresolved  # the rest were matched with their records in the scan
            responses = dict(in_warc.responses)
        else:  # the index's copy differs from the WARC's (or there is none): judge it on its own
            if manifest is None:
                manifest = json.loads(text or "null")
            sig_problem = self.judge.signature_problem(manifest, canonical_json(manifest), signature, key_id)
            payload, prev = manifest.get("payload_sha256"), manifest.get("previous_manifest_sha256")
            claims = [(str(c.get("record_id")), str(c.get("sha256")), str(c.get("type")), str(c.get("warc_file")), c.get("offset"))
                      for c in signed_records(manifest)]
            responses = {}
        if sig_problem:
            self.report.add(sid, *sig_problem)
        if in_warc is None:
            self.report.add(sid, "manifest-missing", "the WARC files hold no metadata record with this snapshot's manifest")
        elif in_warc.stated != digest or in_warc.signature != signature:
            self.report.add(sid, "manifest-mismatch", f"{in_warc.where}: WARC manifest differs from the index")
        # Every record the manifest names (the page's and its requisites'), byte for byte.
        split: list[tuple[str, str, str, str | None]] = []  # revisits matched with this manifest here, not in a task
        for rid, sha, rtype, warc_file, offset in claims:
            seen = self._find(rid, sha)
            if seen is None:
                self.report.add(sid, "missing-record", f"{rtype} record {rid} ({warc_file}@{offset}) is not in any WARC file")
            elif seen.sha256 != sha:
                self.report.add(sid, "record-changed", f"{rtype} record {rid} at {seen.warc_file}@{seen.offset} differs from the signed manifest")
            elif seen.type == "revisit" and (rid, sha) in self.refers:
                split.append((sid, rid, *self.refers[(rid, sha)]))
        if split:
            self.manifests.add_revisits(split, [])
        named = {c[0] for c in claims if c[2] in ("response", "revisit")}
        if response_id in responses:
            response_payload = responses[response_id]  # None: a revisit, which has no payload of its own
        else:
            response = self.seen.get(response_id) or self.unplaced.get(response_id)
            response_payload = response.payload_sha256 if response is not None and response.type == "response" else None
        if response_id not in responses and response_id not in named:
            self.report.add(sid, "response-record", f"the index names record {response_id} as this snapshot's response; "
                            "its signed manifest names no such response or revisit")
        elif not r[11]:
            self.report.add(sid, "response-record", f"the index locates this snapshot's response elsewhere than "
                            f"its record {response_id}")
        if response_payload is not None and response_payload != payload:
            self.report.add(sid, "payload-changed", "response payload does not match the signed payload SHA-256")
        elif response_payload is None and payload is not None and (response_id in responses or any(
                r[1] == response_id for r in split)):
            stated = self.manifests.stated(sid, response_id)  # the original holds it: _check_revisits
            if stated != payload:
                self.report.add(sid, "revisit-original", f"revisit {response_id} names payload {str(stated)[:16]}…, "
                                "not the signed payload SHA-256")
        if payload != payload_sha:
            self.report.add(sid, "index-mismatch", "index payload SHA-256 differs from the signed manifest")
        if prev != expected_prev:
            self.report.add(sid, "chain-broken", "previous_manifest_sha256 does not name the URL's previous snapshot")
        signed_diff = in_warc.diff if same and in_warc is not None else signed_diff_digest(manifest or {})
        if signed_diff is not None and r[12] is not None and r[12] != signed_diff:
            self.report.add(sid, DIFF_MISMATCH, "the index's stored diff does not hash to the diff_sha256 its signed "
                            "manifest states (readers refuse the snapshot)")

    def _signature_problem(self, sid: str, digest: str, signature: str | None, key_id: str | None) -> tuple[str, str] | None:
        """The signature check of a snapshot's manifest in the WARCs, read again."""
        try:
            manifest = self.archive.manifest_named(sid, digest)
        except ArchiverError as exc:
            return "bad-signature", f"its manifest cannot be read to check its signature: {exc}"
        return self.judge.signature_problem(manifest, canonical_json(manifest), signature, key_id)

    # -- finding a record the scan did not match -------------------------------
    def _check_indexed_records(self, sid: str) -> None:
        """A snapshot whose signed manifest is gone: its records as the index
        lists them (with the digests committed beside the signed ones) must
        still be in the WARC files, byte for byte."""
        for rec in self.archive.index.records_for(sid):
            seen = self._find(rec.record_id, rec.sha256)
            if seen is None:
                self.report.add(sid, "missing-record", f"{rec.type} record {rec.record_id} ({rec.warc_file}@{rec.warc_offset}) is not in any WARC file")
            elif seen.sha256 != rec.sha256:
                self.report.add(sid, "record-changed", f"{rec.type} record {rec.record_id} at {seen.warc_file}@{seen.offset} differs from the index")

    def _find(self, rid: str, sha256: str) -> Seen | None:
        """The record with this id (the copy with these bytes when there are
        several): from what the tasks left over, else read where the index has it."""
        seen = self._genuine(rid, sha256)
        if seen is not None:
            return seen
        seen = self.unplaced.get(rid)
        if seen is not None:
            return seen
        return self._probe(rid)

    def _probe(self, rid: str) -> Seen | None:
        """Read one record where the index says it is: one a task matched with
        another manifest (a re-logged capture names the same records twice)."""
        row = self.archive.index.record(rid)
        path = self.paths.get(row.warc_file) if row is not None else None
        if row is None or path is None:
            return None
        fh = open_current(path)
        if fh is None:
            return None
        with fh:
            fh.seek(row.warc_offset)
            item = next(iter_members_of(fh, start=row.warc_offset), None)
        if not isinstance(item, Member):
            return None
        try:
            headers, _ = parse_fields(item.data)  # strictly, as the scan reads every record
        except ValueError:
            return None
        if headers.get("WARC-Record-ID") != rid:
            return None
        from store.scan import label_hex

        label = headers.get("WARC-Payload-Digest") or ""
        payload = label_hex(label) if headers.get("WARC-Type") == "response" else None
        return Seen(row.warc_file, item.offset, item.length, item.sha256, headers.get("WARC-Type", ""), payload,
                    headers.get("WARC-Target-URI", ""))

    def _genuine(self, rid: str, sha256: str) -> Seen | None:
        """The record with this id -- the copy with these bytes when the id occurs twice."""
        seen = self.seen.get(rid)
        if seen is not None and seen.sha256 != sha256:
            for i, (d_rid, d) in enumerate(self.dupes):
                if d_rid == rid and d.sha256 == sha256:
                    self.dupes[i] = (rid, seen)
                    self.seen[rid] = seen = d
                    break
        return seen

    def _check_misplaced(self) -> None:
        """Index rows whose record was not where they point: found elsewhere?"""
        for rid, sid, warc_file, offset in self.misplaced:
            seen = self.seen.get(rid) or self.unplaced.get(rid)
            if seen is not None and (seen.warc_file, seen.offset) != (warc_file, offset) and self._wanted_snapshot(sid):
                self.report.add(sid, "index-mismatch", f"record {rid} is at {seen.warc_file}@{seen.offset}, index says {warc_file}@{offset}")

    # -- 3. records no signed manifest names ----------------------------------
    def _check_unclaimed(self) -> None:
        """Every record in the WARCs must be vouched for: named by a signed manifest
        (or be one), or -- a crash's leftovers, for `repair` -- covered by a signed
        capture intent. Anything else is a ``foreign-record``: someone who could
        write the files put it there, and nothing may replay it as evidence."""
        accounted: set[str] = set()
        for s in self.loose:
            if s.verdict is None or s.where in self.index_copies:
                accounted.update(c[0] for c in s.unresolved)
            elif s.where.split("@")[0] in self.live:
                self.report.pending += 1
            elif self._wanted(s.url):
                self.report.add(s.sid, "foreign-record", f"{s.where} {s.record_id}: {s.verdict}")
        for group in self.manifests.unindexed():
            s = chosen(group)
            if s.verdict is not None:
                continue
            if s.where.split("@")[0] in self.live:
                self.report.pending += 1  # signed by a running writer, commit under way
            elif self._wanted(s.url):
                self.unindexed.append(_Unindexed(
                    s.where.split("@")[0], s.sid, (),
                    f"{s.where}: signed capture of {s.url} is missing from the index (run `archiver repair`)"))
        for doc, where, rid, settled in self.intents:
            accounted.update(settled)  # matched with a manifest inside the intent's task
            self._check_intent(doc, where, rid, accounted)
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

    def _check_intent(self, doc: Any, where: str, rid: str, accounted: set[str]) -> None:
        """A capture intent vouches for records only if its signature verifies;
        one whose records a manifest already names needs no check."""
        intent = parse_intent(doc)
        named = [r for r, _ in intent.records] if intent else []
        if intent is not None and named and all(r in accounted for r in named):
            return
        if where.split("@")[0] in self.live:
            accounted.update(named)
            return
        ring = self.judge.ring()
        try:
            if intent is None or ring is None:
                raise VerificationError("malformed capture intent" if intent is None else "no keyring")
            check_intent(intent, ring)
        except (VerificationError, ArchiverError) as exc:
            self.report.add(None, "foreign-record", f"{where} {rid}: capture intent that does not verify: {exc}")
            return
        intact = [r for r, sha in intent.records if (s := self._genuine(r, sha)) is not None and s.sha256 == sha]
        if len(intact) == len(named):
            accounted.update(named)
            target = self.seen[named[0]].target_uri if named else ""
            self.unindexed.append(_Unindexed(where.split("@")[0], None, tuple(named), f"{where}: capture of {target} whose records landed before its manifest (run `archiver repair`)", target, intent.created_at))

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
            if u.snapshot is None and u.url and overtaken(self.archive.index, u.url, u.written_at) is not None:
                self.report.overtaken += 1  # set aside, as repair does: never signed, not missing
                continue
            self.report.add(u.snapshot, "unindexed-capture", u.detail)

    def _now_indexed(self, u: _Unindexed) -> bool:
        if u.snapshot is not None:
            return self.archive.index.snapshot(u.snapshot) is not None
        return bool(u.records) and all(self.archive.index.record(r) is not None for r in u.records)

    def _writer_running(self, warc_file: str) -> bool:
        """Another process that wrote this file is still running here."""
        return writer_alive(warc_file, self.archive.c.hostname) and not warc_file.endswith(f"-{os.getpid()}.warc.gz")


def stored_diff_digest(plain: str | None, packed: bytes | None) -> str | None:
    """The SHA-256 of a row's stored diff text (``diff_json``, or packed in
    ``diff_z`` since schema 6); None when it stores none, "" when the packed
    value does not unpack (it hashes to nothing a manifest signs)."""
    if packed is not None:
        data = bytes(packed)
        return _short_diff_digest(data) if len(data) <= _SHORT_DIFF else _diff_digest(data)
    return stored_diff_sha256(plain) if plain is not None else None


_SHORT_DIFF = 512  # packed bytes: an unchanged page's diff is the same short document on every re-capture


def _diff_digest(packed: bytes) -> str:
    try:  # the stored text's UTF-8 as packed: no decoding and encoding again
        return sha256_hex(unpack_utf8(packed))
    except StoreError:
        return ""


_short_diff_digest = functools.lru_cache(maxsize=1024)(_diff_digest)  # (packs to the same bytes: store/compact.py)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        other = Path(str(path)[: -len(OPEN_SUFFIX)]) if str(path).endswith(OPEN_SUFFIX) else Path(str(path) + OPEN_SUFFIX)
        try:
            return other.stat().st_size
        except OSError:
            return 0


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

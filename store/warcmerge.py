"""Compaction: merge the small per-append WARC objects of an object store
into large WARC files, without changing a byte of any record.

Every append on S3 is its own small object (store/objects.py). Compaction
copies whole objects -- their own warcinfo record included, member by member,
byte for byte -- behind a fresh warcinfo record into one large WARC 1.1
object, so every record's digests, the manifests that sign them and the log
stay valid; only the index's locations move.

Only objects whose every record is committed are taken (a capture still under
way, or a crash's leftovers awaiting ``repair``, stay where they are), and a
journal row in ``meta`` makes each step recoverable:

1. journal ``pending`` (target name, sources), then upload the large object;
2. one index transaction moves every location (records, snapshots) of the
   sources into the target and flips the journal to ``committed``;
3. the sources are deleted, then the journal row -- at once, or by a later
   run once ``keep_sources`` seconds have passed, so that an audit whose
   index view predates the commit can still read them.

A crash before 2 leaves an unreferenced target (the next run deletes it); a
crash after 2 leaves sources that are exact copies of what the target holds
(the next run deletes them). ``verify`` accepts such byte-identical copies of
signed records at every point. Captures running meanwhile write new objects
and are never touched.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from store.errors import StoreError
from store.rowforms import in_file, warc_file_id
from store.scan import Member, iter_members_of, parse_headers
from store.warc import parse_warc_date, serialize_record, warc_date, warcinfo_record

log = logging.getLogger(__name__)

JOURNAL = "compaction:"  # meta key prefix: compaction:<target> -> {"state", "sources"}
MARK = "-compact-"  # in a compacted object's name: never compacted again
MARKS = ("warc_settled:", "warc_indexed:")  # audit/settled.py's per-file marks, dropped for objects that move
INTENT_URN = "urn:archiver:intent:"  # capture intents are not indexed; they travel with their records
HEADER_BYTES = 8192  # enough of each record to read its headers


@dataclass
class Compacted:
    """What one run did (the ``archiver compact-warcs --json`` document)."""

    files: list[dict[str, Any]] = field(default_factory=list)  # target, sources, bytes
    skipped: list[str] = field(default_factory=list)  # objects with records not (yet) committed
    recovered: list[str] = field(default_factory=list)  # journal rows of an interrupted run finished

    def to_json(self) -> dict[str, Any]:
        return {"files": self.files, "skipped": self.skipped, "recovered": self.recovered,
                "objects": sum(len(f["sources"]) for f in self.files)}


@dataclass
class Compactor:
    """Compacts one archive's object store; ``stage`` is called after each
    durable step (tests stop there to model a crash)."""

    index: Any
    store: Any
    info_fields: dict[str, str]
    clock: Callable[[], datetime]
    record_id: Callable[[], str]
    target_size: int
    prefix: str = "archiver"
    min_objects: int = 2
    keep_sources: float = 0.0  # seconds committed sources stay before a later run deletes them
    stage: Callable[[str], None] = lambda _name: None

    def run(self) -> Compacted:
        done = Compacted()
        with self.index.hold_exclusive("compaction", f"pid {os.getpid()}"):
            self.recover(done)
            sizes = self.store.sizes()
            candidates = sorted(n for n, size in sizes.items() if MARK not in n and size < self.target_size)
            with tempfile.TemporaryDirectory(prefix="archiver-compact-") as tmp:
                batch: list[tuple[str, Path]] = []
                total = 0
                for name in candidates:
                    path = Path(tmp) / name
                    self.store.download(name, path, sizes[name])
                    if not self._committed(name, path):
                        done.skipped.append(name)
                        path.unlink()
                        continue
                    batch.append((name, path))
                    total += path.stat().st_size
                    if total >= self.target_size:
                        self._merge(batch, Path(tmp), done)
                        batch, total = [], 0
                if len(batch) >= self.min_objects:
                    self._merge(batch, Path(tmp), done)
        return done

    # -- which objects may move --------------------------------------------------
    def _committed(self, name: str, path: Path) -> bool:
        """Every record of the object is indexed there (intents and warcinfo aside)."""
        with self.index.read() as conn:
            indexed = {int(r[0]) for where, args in in_file(conn, name)
                       for r in conn.execute(f"SELECT warc_offset FROM records WHERE {where}", args).fetchall()}
        if not indexed:
            return False
        with open(path, "rb") as fh:
            for member in iter_members_of(fh, keep=HEADER_BYTES):
                if not isinstance(member, Member):
                    return False
                try:
                    headers, _ = parse_headers(member.data)
                except ValueError:
                    return False
                kind = headers.get("WARC-Type", "")
                if kind == "warcinfo" or (kind == "metadata" and headers.get("WARC-Target-URI", "").startswith(INTENT_URN)):
                    continue
                if member.offset not in indexed:
                    return False
        return True

    # -- one large object ----------------------------------------------------------
    def _merge(self, batch: list[tuple[str, Path]], tmp: Path, done: Compacted) -> None:
        now = self.clock()
        target = f"{self.prefix}{MARK}{now.strftime('%Y%m%d%H%M%S%f')}-{secrets.token_hex(4)}.warc.gz"
        sources = [name for name, _ in batch]
        self._journal(target, "pending", sources)
        self.stage("journal")
        path = tmp / target
        bases: dict[str, int] = {}
        fields = {**self.info_fields, "description": f"compacted from {len(sources)} WARC objects, records copied byte for byte"}
        with open(path, "wb") as out:
            out.write(serialize_record(warcinfo_record(target, fields, warc_date(now), self.record_id()))[0])
            for name, src in batch:
                bases[name] = out.tell()
                with open(src, "rb") as fh:
                    while chunk := fh.read(1 << 20):
                        out.write(chunk)
        size = path.stat().st_size
        self.store.upload(path, target)  # checks the stored size
        self.stage("uploaded")
        with self.index.write() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key=?", (JOURNAL + target,)).fetchone()
            if row is None or json.loads(row[0]).get("state") != "pending":
                raise StoreError(f"compaction journal for {target} changed under this run")
            target_id = warc_file_id(conn, target)
            for name in sources:
                for where, args in in_file(conn, name):
                    # a moved row keeps its form: by id, or (until compact rewrites it) by name
                    new = ("file_id=?", target_id) if where.startswith("file_id") else ("warc_file=?", target)
                    for table in ("records", "snapshots"):
                        conn.execute(f"UPDATE {table} SET {new[0]}, warc_offset=warc_offset+? WHERE {where}",
                                     (new[1], bases[name], *args))
                for mark in MARKS:
                    conn.execute("DELETE FROM meta WHERE key=?", (mark + name,))
            self.index.set_meta(conn, JOURNAL + target, json.dumps(
                {"state": "committed", "sources": sources, "at": warc_date(self.clock())}))
        self.stage("committed")
        if self.keep_sources <= 0:
            self._finish(target, sources)
        done.files.append({"target": target, "sources": sources, "bytes": size})
        log.info("compacted %d WARC objects into %s (%d bytes)", len(sources), target, size)
        for _, src in batch:
            src.unlink()
        path.unlink()

    def _journal(self, target: str, state: str, sources: list[str]) -> None:
        with self.index.write() as conn:
            self.index.set_meta(conn, JOURNAL + target, json.dumps({"state": state, "sources": sources}))

    def _finish(self, target: str, sources: list[str]) -> None:
        """After the commit: the sources are copies; delete them, then the journal row."""
        for name in sources:
            self.store.delete(name)
            self.stage("deleted-one")
        self.index.execute("DELETE FROM meta WHERE key=?", (JOURNAL + target,))

    # -- an interrupted run --------------------------------------------------------
    def recover(self, done: Compacted) -> None:
        """Finish what a crashed run journalled: drop an uncommitted target,
        or delete a committed run's remaining sources."""
        for key, value in self.index.query("SELECT key, value FROM meta WHERE key LIKE ?", (JOURNAL + "%",)):
            target = str(key)[len(JOURNAL):]
            entry = json.loads(value)
            if entry.get("state") == "committed":
                at = parse_warc_date(str(entry.get("at", "")))
                if at is not None and (self.clock() - at).total_seconds() < self.keep_sources:
                    continue  # an audit that started before the commit may still be reading them
                self._finish(target, list(entry.get("sources", [])))
            else:
                self.store.delete(target)
                self.index.execute("DELETE FROM meta WHERE key=?", (key,))
            done.recovered.append(target)
            log.info("finished an interrupted compaction into %s (%s)", target, entry.get("state"))


def journal_names(conn: Any) -> set[str]:
    """Every target and source a compaction journal row names."""
    names: set[str] = set()
    for key, value in conn.execute("SELECT key, value FROM meta WHERE key LIKE ?", (JOURNAL + "%",)).fetchall():
        try:
            sources = json.loads(value).get("sources", [])
        except (ValueError, AttributeError):
            continue
        names.add(str(key)[len(JOURNAL):])
        names.update(str(s) for s in sources if isinstance(s, str))
    return names


def stray_copies(conn: Any, seen_before: set[str] = frozenset()) -> set[str]:  # type: ignore[assignment]
    """Objects an interrupted or running compaction leaves as mere copies: named
    by a journal (now, or when ``seen_before`` was read) and pointed to by no
    index row in this view -- an uncommitted target, or committed sources.
    The audit and repair pass over them; the next ``compact`` deletes them."""
    return {n for n in journal_names(conn) | set(seen_before)
            if not any(conn.execute(f"SELECT 1 FROM records WHERE {where} LIMIT 1", args).fetchone()
                       for where, args in in_file(conn, n))}

"""The audit's scratch tables: one row per signed manifest found in the WARC
files (``wm``), and the index's snapshots as the audit's view of the index
holds them (``ix``), copied while the files are scanned.

An archive has as many manifests as snapshots, so they are not kept in a
dict: SQLite's private temporary database (an unnamed file, deleted on
close) holds them, with a bounded page cache, so the audit's memory stays
the same whatever the archive's size.

With both in one database, the snapshots whose check could find nothing
wrong -- one manifest in the WARCs, with the index's digest, signature and
key, its signature and claims settled in the scan, the payload and chain
the index says (:data:`SETTLED`, the very conditions under which
``verify.Auditor._check_snapshot`` reports no problem) -- are told apart by
one query after the scan, and only the others are checked one by one.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Iterable, Iterator
from typing import Any, NamedTuple

from archiver.audit.scanner import SUMMARY_COLUMNS, Claim, unpack_responses

CACHE_KIB = 16_384  # page cache; the rest spills to the temporary file

_COLUMNS = SUMMARY_COLUMNS
SNAPSHOT_COLUMNS = ("id", "url", "seq", "payload_sha256", "response_record_id", "manifest_json", "manifest_sha256",
                    "signature", "key_id", "manifest_z")  # the index's, as verify checks a snapshot
_IX = (*SNAPSHOT_COLUMNS, "expected", "placed", "diff", "leaf")  # expected: the digest previous_manifest_sha256 must be
# (the URL's previous snapshot's); placed: 1 when the row's location (file, offset, length) is its response record's, as
# the records table has it; diff: the SHA-256 of the row's stored diff (None: it stores none); leaf: the stored leaf hash
# at the row's log index when that is below the size of its key's vouching checkpoint (audit/leafvouch.py), else None
_NL, _TAB = "char(10)", "char(9)"
_LINE = f"{_NL} || ix.response_record_id || {_TAB}"  # a response's line in wm.responses (scanner.pack_responses)
SETTLED = f"""ix.manifest_json IS NULL AND ix.manifest_z IS NULL AND ix.manifest_sha256 != ''
    AND instr(ix.response_record_id, {_NL}) = 0 AND instr(ix.response_record_id, {_TAB}) = 0
    AND (SELECT COUNT(*) = 1 AND MIN(
            wm.digest = ix.manifest_sha256 AND wm.stated = ix.manifest_sha256
            AND wm.signature IS ix.signature AND wm.key_id IS ix.key_id
            AND wm.verdict IS NULL AND wm.sig_kind IS NULL AND wm.unresolved IS NULL
            AND wm.payload IS ix.payload_sha256 AND wm.prev IS ix.expected
            AND (wm.diff IS NULL OR ix.diff IS NULL OR wm.diff = ix.diff)
            AND {{leaf}}
            AND (wm.responses = {_LINE} || wm.payload
                 OR wm.responses = {_LINE} AND EXISTS (SELECT 1 FROM rv WHERE rv.rid = ix.response_record_id
                                                       AND rv.sid = ix.id AND rv.stated = wm.payload)))
         FROM wm WHERE wm.sid = ix.id)
    AND ix.placed = 1"""
""" A snapshot row (ix) whose check finds nothing wrong, in SQL: its manifest
only in the WARCs (schema 9 on), one manifest there for it, whose stated and
computed digest, signature and key are the row's, whose signature verified
and claims were all answered in its task, which signs the row's payload and
names the URL's previous snapshot, whose signed diff digest (if any) is the
row's stored diff's (if it stores one), whose signature libsodium accepted or
its key's checkpoint vouches for (its leaf computed from the record is the
one stored at the row's log index, under a checkpoint of that key whose root
the stored leaves hash to: :data:`VOUCHED`), and whose task found the row's response
record and no other -- with the signed payload, or a revisit stating the
signed payload (its original is checked to hold it: ``REVISITS_ASTRAY``) --
where the row locates it. NULL anywhere counts as not settled: such a row is
checked one by one."""

REVISITS_ASTRAY = """SELECT rv.sid, rv.rid, rv.refers_to, rv.stated,
        EXISTS (SELECT 1 FROM rp WHERE rp.rid = rv.refers_to) FROM rv
    WHERE rv.stated IS NULL OR NOT EXISTS (SELECT 1 FROM rp WHERE rp.rid = rv.refers_to AND rp.payload = rv.stated)
    ORDER BY rv.n"""
""" Signed revisits whose original -- the record their WARC-Refers-To names --
is no response a valid signed manifest names, or holds another payload than
the one the revisit states: each with whether its original is a signed
response at all."""


CHECKED = "wm.leaf IS NULL"  # SETTLED's {leaf} when no checkpoint vouches: every signature checked by libsodium
# ... and when some do (audit/leafvouch.py): the keys in vk, whose checkpoint's root the stored leaves hash to
VOUCHED = "(wm.leaf IS NULL OR wm.leaf = ix.leaf AND wm.key_id IN (SELECT key_id FROM vk))"


class ManifestTable:
    def __init__(self) -> None:
        self.db = sqlite3.connect("", isolation_level=None)  # "": private, on disk, gone on close
        self.db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        self.db.execute("PRAGMA journal_mode=OFF")
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute(f"CREATE TABLE wm(seq INTEGER PRIMARY KEY, {', '.join(_COLUMNS)})")
        self.db.execute(f"CREATE TABLE ix(n INTEGER PRIMARY KEY, {', '.join(_IX)})")
        self.db.execute("CREATE TABLE rv(n INTEGER PRIMARY KEY, sid, rid, refers_to, stated)")  # signed revisits
        self.db.execute("CREATE TABLE rp(rid, payload)")  # signed responses' payloads
        self.db.execute("CREATE TABLE vk(key_id TEXT PRIMARY KEY)")  # the keys whose checkpoint vouches (snapshots)
        self.db.execute("BEGIN")
        self._sealed = False

    def close(self) -> None:
        self.db.close()

    def add(self, rows: Iterable[tuple[object, ...]]) -> None:
        """Summaries as rows (scanner.summary_row: the workers make them)."""
        self.db.executemany(f"INSERT INTO wm({', '.join(_COLUMNS)}) VALUES({', '.join('?' * len(_COLUMNS))})", rows)

    def last(self) -> int:
        """Where the manifests added so far end (for :meth:`drop_after`)."""
        return int(self.db.execute("SELECT COALESCE(MAX(seq), 0) FROM wm").fetchone()[0])

    def drop_after(self, last: int) -> None:
        """Take out the manifests added after :meth:`last` said ``last``."""
        self.db.execute("DELETE FROM wm WHERE seq > ?", (last,))

    def add_revisits(self, revisits: list[tuple[str, str, str, str | None]], payloads: list[tuple[str, str]]) -> None:
        """Signed revisits (snapshot, id, original's id, payload stated) and
        signed responses (id, payload): matched once all are in (seal)."""
        if revisits:
            self.db.executemany("INSERT INTO rv(sid, rid, refers_to, stated) VALUES(?, ?, ?, ?)", revisits)
        if payloads:
            self.db.executemany("INSERT INTO rp(rid, payload) VALUES(?, ?)", payloads)

    def revisits_astray(self) -> sqlite3.Cursor:
        """:data:`REVISITS_ASTRAY`, once sealed."""
        return self.db.execute(REVISITS_ASTRAY)

    def stated(self, sid: str, rid: str) -> str | None:
        """The payload a signed revisit ``rid`` of snapshot ``sid`` states; None when there is none."""
        row = self.db.execute("SELECT stated FROM rv WHERE rid = ? AND sid = ? LIMIT 1", (rid, sid)).fetchone()
        return row[0] if row else None

    def seal(self) -> None:
        """All manifests are in: index them for lookups."""
        self.db.execute("CREATE INDEX wm_sid ON wm(sid)")
        self.db.execute("CREATE INDEX rv_rid ON rv(rid)")
        self.db.execute("CREATE INDEX rp_rid ON rp(rid, payload)")
        self._sealed = True

    def lookup(self, sids: list[str]) -> dict[str, list[Found]]:
        """The manifests of these snapshots, each list in scan order."""
        out: dict[str, list[Found]] = {}
        marks = ",".join("?" * len(sids))
        make = Found._make
        for r in self.db.execute(f"SELECT {', '.join(_COLUMNS)} FROM wm WHERE sid IN ({marks}) ORDER BY seq", sids):
            out.setdefault(r[0], []).append(make(r))
        return out

    def add_snapshots(self, rows: Iterable[tuple[object, ...]]) -> None:
        """The index's snapshots (_IX), in (url, seq) order."""
        self.db.executemany(f"INSERT INTO ix({', '.join(_IX)}) VALUES({', '.join('?' * len(_IX))})", rows)

    def snapshots(self, every: bool, vouched: Collection[str] = ()) -> tuple[int, sqlite3.Cursor]:
        """How many snapshots were copied, and those to check one by one, in
        (url, seq) order (each row: _IX): every one, or those not
        :data:`SETTLED` (``vouched``: the keys whose checkpoint vouches for
        the signatures by that key its leaves hold, see audit/leafvouch.py)."""
        self.db.executemany("INSERT OR IGNORE INTO vk(key_id) VALUES(?)", [(k,) for k in vouched])
        total = int(self.db.execute("SELECT COUNT(*) FROM ix").fetchone()[0])
        where = "" if every else f"WHERE NOT COALESCE(({SETTLED.format(leaf=VOUCHED if vouched else CHECKED)}), 0)"
        return total, self.db.execute(f"SELECT {', '.join(_IX)} FROM ix {where} ORDER BY n")

    def vouched(self) -> int:
        """How many snapshots have a manifest whose leaf, computed from the
        record, is the one the index stores under its key's vouching
        checkpoint (one :meth:`snapshots` was told of)."""
        return int(self.db.execute("SELECT COUNT(*) FROM ix WHERE ix.leaf IS NOT NULL AND EXISTS "
                                   "(SELECT 1 FROM wm WHERE wm.sid = ix.id AND wm.leaf = ix.leaf "
                                   "AND wm.key_id IN (SELECT key_id FROM vk))").fetchone()[0])

    def unindexed(self) -> Iterator[list[Found]]:
        """Manifests of snapshots no index row named (none copied, see
        add_snapshots), grouped by snapshot."""
        group: list[Found] = []
        for r in self.db.execute(f"SELECT {', '.join(_COLUMNS)} FROM wm WHERE sid IS NULL "
                                 "OR sid NOT IN (SELECT id FROM ix WHERE id IS NOT NULL) ORDER BY sid, seq"):
            s = Found._make(r)
            if group and group[0].sid != s.sid:
                yield group
                group = []
            group.append(s)
        if group:
            yield group

    def has(self, sid: str) -> bool:
        return self.db.execute("SELECT 1 FROM wm WHERE sid=? LIMIT 1", (sid,)).fetchone() is not None


class Found(NamedTuple):
    """A manifest's summary as the scratch table holds it (scanner.Summary's
    fields, read lazily): made per snapshot checked, so made cheaply."""

    sid: str
    url: str
    where: str
    record_id: str
    stated: str | None
    digest: str
    signature: str | None
    key_id: str | None
    payload: str | None
    prev: str | None
    relogged_from: str | None
    verdict: str | None
    sig_kind: str | None
    sig_detail: str | None
    responses_text: str | None
    unresolved_text: str | None
    diff: str | None
    leaf: bytes | None

    @property
    def sig_problem(self) -> tuple[str, str] | None:
        return (self.sig_kind, self.sig_detail or "") if self.sig_kind is not None else None

    @property
    def responses(self) -> tuple[tuple[str, str | None], ...]:
        return unpack_responses(self.responses_text) if self.responses_text else ()

    @property
    def unresolved(self) -> tuple[Claim, ...]:
        return tuple(tuple(x) for x in json.loads(self.unresolved_text)) if self.unresolved_text else ()  # type: ignore[misc]


def chosen(cands: list[Any]) -> Any:
    """The manifest a snapshot is checked against when its id has several: a
    snapshot re-logged by `repair` has two, and the later names the earlier."""
    pick = cands[0]
    for c in cands[1:]:
        if c.relogged_from == pick.stated:
            pick = c
    return pick

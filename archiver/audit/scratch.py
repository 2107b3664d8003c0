"""The audit's scratch table: one row per signed manifest found in the WARC
files, looked up by snapshot id while the index's snapshots stream past.

An archive has as many manifests as snapshots, so they are not kept in a
dict: SQLite's private temporary database (an unnamed file, deleted on
close) holds them, with a bounded page cache, so the audit's memory stays
the same whatever the archive's size.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

from archiver.audit.scanner import SUMMARY_COLUMNS, Claim, unpack_responses

CACHE_KIB = 16_384  # page cache; the rest spills to the temporary file

_COLUMNS = SUMMARY_COLUMNS


class ManifestTable:
    def __init__(self) -> None:
        self.db = sqlite3.connect("", isolation_level=None)  # "": private, on disk, gone on close
        self.db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        self.db.execute("PRAGMA journal_mode=OFF")
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute(f"CREATE TABLE wm(seq INTEGER PRIMARY KEY, indexed INTEGER NOT NULL DEFAULT 0, {', '.join(_COLUMNS)})")
        self.db.execute("BEGIN")
        self._sealed = False

    def close(self) -> None:
        self.db.close()

    def add(self, rows: Iterable[tuple[object, ...]]) -> None:
        """Summaries as rows (scanner.summary_row: the workers make them)."""
        self.db.executemany(f"INSERT INTO wm({', '.join(_COLUMNS)}) VALUES({', '.join('?' * len(_COLUMNS))})", rows)

    def seal(self) -> None:
        """All manifests are in: index them for lookups."""
        self.db.execute("CREATE INDEX wm_sid ON wm(sid)")
        self._sealed = True

    def lookup(self, sids: list[str]) -> dict[str, list[Found]]:
        """The manifests of these snapshots, each list in scan order; marks them indexed."""
        out: dict[str, list[Found]] = {}
        marks = ",".join("?" * len(sids))
        make = Found._make
        for r in self.db.execute(f"SELECT {', '.join(_COLUMNS)} FROM wm WHERE sid IN ({marks}) ORDER BY seq", sids):
            out.setdefault(r[0], []).append(make(r))
        self.db.execute(f"UPDATE wm SET indexed=1 WHERE sid IN ({marks})", sids)
        return out

    def unindexed(self) -> Iterator[list[Found]]:
        """Manifests of snapshots no index row named, grouped by snapshot."""
        group: list[Found] = []
        for r in self.db.execute(f"SELECT {', '.join(_COLUMNS)} FROM wm WHERE indexed=0 ORDER BY sid, seq"):
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

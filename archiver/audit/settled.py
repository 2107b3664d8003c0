"""Which closed WARC files are settled: every record in them accounted for.

Why: start-up repair used to decompress every record of every file (11 s and
2 GB at 50,000 snapshots). A crash can only leave work in files it was
writing, so a file is marked settled -- its size and how many index records
point into it -- when a process closes it with every capture committed, or
when repair has accounted for all of it. A later repair skips a settled file
while both figures still match: a byte appended, or index rows lost (a
restored backup), makes it unsettled again. ``archiver repair --full``
ignores the marks.

Marks are index rows (``meta`` keys ``warc_settled:<name>``), written in the
index's own transactions; a mark never vouches for content (verify checks
every indexed record's digest), only for "nothing here needs re-indexing".

A file still being written (or closed with captures uncommitted) is not
settled, but most of it is accounted for: every commit also stores, in the
same transaction, the file's *watermark* (``warc_indexed:<name>``): the
offset before which every byte belongs to a committed capture (its records,
its intent, its manifest) or is the warcinfo -- the start of the earliest
capture of this writer still uncommitted, else all it wrote
(:meth:`store.warc.WarcFileWriter.watermarks`) -- with the number of index
rows then pointing into the file. Repair reads such a file only from its
watermark, the bytes a crash can have left, while the index still holds
that many rows for it; otherwise (rows lost, or a watermark past the end of
a file cut short) it reads the file whole.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from typing import Iterable

from store.backends import WarcStore
from store.index import Index

log = logging.getLogger(__name__)

PREFIX = "warc_settled:"
WATERMARK = "warc_indexed:"


def _record_counts(index: Index) -> dict[str, int]:
    return index.record_counts()


def mark_settled(index: Index, warcs: WarcStore, names: Iterable[str]) -> None:
    """Mark closed files settled at their current size and record count."""
    names = sorted(set(names))
    if not names:
        return
    counts = _record_counts(index)
    marks = []
    sizes = warcs.sizes(names)  # closed files only: an .open one has another name
    for name in names:
        size = sizes.get(name)
        if size is None:
            continue
        marks.append((PREFIX + name, json.dumps({"size": size, "records": counts.get(name, 0)})))
    if marks:
        with index.write() as conn:
            conn.executemany(
                "INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value", marks
            )
        log.info("marked %d WARC file(s) settled", len(marks))


def settled_files(index: Index, warcs: WarcStore) -> set[str]:
    """Closed files whose mark still matches their size and index record count."""
    rows = index.query("SELECT key, value FROM meta WHERE key LIKE ?", (PREFIX + "%",))
    if not rows:
        return set()
    counts = _record_counts(index)
    sizes = warcs.sizes()
    out = set()
    for key, value in rows:
        name = key[len(PREFIX):]
        size = sizes.get(name)
        try:
            mark = json.loads(value)
        except ValueError:
            continue
        if mark.get("size") == size and mark.get("records") == counts.get(name, 0):
            out.add(name)
    return out


def store_watermarks(index: Index, conn: sqlite3.Connection, marks: dict[str, tuple[int, int]]) -> None:
    """Store each file's (watermark, index rows pointing into it) inside the
    caller's transaction -- the commit they describe."""
    for name, (offset, records) in marks.items():
        index.set_meta(conn, WATERMARK + name, json.dumps({"offset": offset, "records": records}))


def watermarks(index: Index) -> dict[str, int]:
    """Each file's stored watermark, while the index still holds as many rows
    pointing into the file as when it was stored (rows lost -- an index
    restored from an older backup -- and the file is read whole, as are
    files without a watermark)."""
    rows = index.query("SELECT key, value FROM meta WHERE key LIKE ?", (WATERMARK + "%",))
    if not rows:
        return {}
    counts = _record_counts(index)
    out = {}
    for key, value in rows:
        name = key[len(WATERMARK):]
        try:
            mark = json.loads(value)
            offset, records = int(mark["offset"]), int(mark["records"])
        except (ValueError, TypeError, KeyError):
            continue
        if records == counts.get(name, 0):
            out[name] = offset
    return out

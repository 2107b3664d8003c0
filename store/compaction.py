"""Rewrite an index's rows stored in an older form in the current one.

Upgrading an index rewrites nothing (old rows are read as they are); this is
the explicit, resumable step that shrinks an old archive, in batches, each
batch one transaction -- a crash leaves every row whole, in one form or the
other, and running it again carries on:

- a snapshot's copy of its signed manifest (kept in the index before schema
  9) is dropped once the WARC's manifest record is confirmed to hash to the
  row's digest (``in_warc``, the caller's check: reading a WARC record is
  the service's business). A copy the WARC does not confirm is kept, packed:
  it may be the only intact one, and ``verify`` reports the difference;
- diff JSON and article texts stored before schema 6 are packed
  (``store.compact``); signed bytes never change;
- record and snapshot rows written before schema 10 name their WARC file by
  its id (``warc_files``) instead of by name, and record rows written before
  schema 11 hold their SHA-256 as 32 bytes instead of 64 hex characters.

WARC records are read before each batch's transaction, so captures never
wait behind a ranged GET. Checkpoints signed before schema 6 stay (any of
them may have been handed out). Then SQLite's file is VACUUMed, which
returns the freed pages to the file system.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable

from store.compact import pack, unpack
from store.errors import StoreError
from store.index import Index
from store.rowforms import LEGACY_FILE, digest_bytes, relogged_from_json, warc_file_id

log = logging.getLogger(__name__)

BATCH = 500

# (snapshot id, manifest digest) -> does the WARC hold that manifest?
InWarc = Callable[[str, str], bool]


@dataclass
class Compacted:
    """What one compaction rewrote."""

    snapshots: int = 0
    records: int = 0  # record rows that now name their WARC file by id
    texts: int = 0
    manifests_dropped: int = 0  # index copies the WARC confirmed, dropped
    manifests_kept: int = 0  # index copies the WARC did not confirm, kept (packed)

    def to_json(self) -> dict[str, Any]:
        return {"snapshots": self.snapshots, "records": self.records, "texts": self.texts,
                "manifests_dropped": self.manifests_dropped, "manifests_kept": self.manifests_kept}


def compact(index: Index, in_warc: InWarc, batch: int = BATCH) -> Compacted:
    """Rewrite every row still in an old form; returns how many were rewritten."""
    done = Compacted()
    last = ""
    while True:  # keyset pages over the primary key: each batch costs its own rows, not a scan
        rows = index.query(
            "SELECT id, manifest_json, manifest_z, diff_json, manifest_sha256, warc_file FROM snapshots WHERE id > ? "
            f"AND (manifest_json IS NOT NULL OR manifest_z IS NOT NULL OR diff_json IS NOT NULL OR {LEGACY_FILE}) "
            "ORDER BY id LIMIT ?",
            (last, batch),
        )
        updates = [_rewrite(tuple(r)[:5], in_warc, done) if _old_json(r) else None for r in rows]
        with index.write() as conn:
            for r, update in zip(rows, updates):
                if update is not None:
                    sid, digest, values = update
                    conn.execute(
                        "UPDATE snapshots SET manifest_z=?, manifest_json=NULL, diff_z=COALESCE(?, diff_z), diff_json=NULL, "
                        "relogged_from=COALESCE(relogged_from, ?) WHERE id=? AND manifest_sha256 IS ?",
                        (*values, sid, digest),
                    )
                if r[5]:
                    conn.execute("UPDATE snapshots SET file_id=?, warc_file='' WHERE id=? AND warc_file=?",
                                 (warc_file_id(conn, r[5]), r[0], r[5]))
        done.snapshots += len(rows)
        if len(rows) < batch:
            break
        last = rows[-1][0]
    while True:  # a partial index lists the old-form rows (hex digest; a name, too, before schema 10): each batch shrinks it
        with index.write() as conn:
            records = conn.execute(
                "SELECT record_id, warc_file, sha256 FROM records WHERE sha256 > '' LIMIT ?", (batch,)
            ).fetchall()
            ids: dict[str, int] = {}
            for rid, name, sha in records:
                if name and name not in ids:
                    ids[name] = warc_file_id(conn, name)
                conn.execute("UPDATE records SET file_id=COALESCE(?, file_id), warc_file='', digest=?, sha256='' "
                             "WHERE record_id=?", (ids.get(name), digest_bytes(sha), rid))
        done.records += len(records)
        if len(records) < batch:
            break
    last = ""
    while True:
        with index.write() as conn:
            texts = conn.execute(
                "SELECT sha256, article_json FROM texts WHERE sha256 > ? ORDER BY sha256 LIMIT ?", (last, batch)
            ).fetchall()
            for sha, article in texts:
                if article:
                    conn.execute("UPDATE texts SET article_z=?, article_json='' WHERE sha256=?", (pack(article), sha))
                    done.texts += 1
        if len(texts) < batch:
            break
        last = texts[-1][0]
    log.info("index %s: %d snapshot rows rewritten (%d manifest copies dropped, %d kept), %d record rows, %d texts packed",
             index.where, done.snapshots, done.manifests_dropped, done.manifests_kept, done.records, done.texts)
    index.reclaim()
    return done


def _old_json(row: Any) -> bool:
    return row[1] is not None or row[2] is not None or row[3] is not None


def _rewrite(row: tuple[Any, ...], in_warc: InWarc, done: Compacted) -> tuple[str, str | None, tuple[Any, ...]]:
    """One row's new manifest_z, diff_z and relogged_from."""
    sid, plain, packed, diff, digest = row
    manifest = plain
    if manifest is None and packed is not None:
        try:
            manifest = unpack(packed)
        except StoreError:
            manifest = None  # unreadable: verify reports it; the WARC's copy decides below
    keep: bytes | None = None
    if plain is not None or packed is not None:
        if digest and in_warc(sid, digest):
            done.manifests_dropped += 1
        else:
            keep = pack(plain) if plain is not None else packed
            done.manifests_kept += 1
    return sid, digest, (keep, pack(diff) if diff is not None else None, relogged_from_json(manifest))

"""Rewrite an index's rows stored before schema 6 in the compact form.

Upgrading an index rewrites nothing (old rows are read as they are); this is
the explicit, resumable step that shrinks an old archive: manifest and diff
JSON of each snapshot, and each article text, are packed (``store.compact``)
in batches, each batch one transaction -- a crash leaves every row whole, in
one form or the other, and running it again carries on. Signed bytes do not
change: a manifest is packed exactly as stored. Checkpoints signed before
schema 6 stay (any of them may have been handed out). Then SQLite's file is
VACUUMed, which returns the freed pages to the file system.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from store.compact import pack
from store.index import Index, relogged_from_json

log = logging.getLogger(__name__)

BATCH = 500


@dataclass
class Compacted:
    """What one compaction rewrote."""

    snapshots: int = 0
    texts: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"snapshots": self.snapshots, "texts": self.texts}


def compact(index: Index, batch: int = BATCH) -> Compacted:
    """Pack every row still in the old form; returns how many were rewritten."""
    done = Compacted()
    last = ""
    while True:  # keyset pages over the primary key: each batch costs its own rows, not a scan
        with index.write() as conn:
            rows = conn.execute(
                "SELECT id, manifest_json, diff_json FROM snapshots WHERE id > ? ORDER BY id LIMIT ?", (last, batch)
            ).fetchall()
            for sid, manifest, diff in rows:
                if manifest is None and diff is None:
                    continue
                conn.execute(
                    "UPDATE snapshots SET manifest_z=COALESCE(?, manifest_z), manifest_json=NULL, "
                    "diff_z=COALESCE(?, diff_z), diff_json=NULL, relogged_from=COALESCE(relogged_from, ?) WHERE id=?",
                    (pack(manifest) if manifest is not None else None, pack(diff) if diff is not None else None,
                     relogged_from_json(manifest), sid),
                )
                done.snapshots += 1
        if len(rows) < batch:
            break
        last = rows[-1][0]
    last = ""
    while True:
        with index.write() as conn:
            rows = conn.execute(
                "SELECT sha256, article_json FROM texts WHERE sha256 > ? ORDER BY sha256 LIMIT ?", (last, batch)
            ).fetchall()
            for sha, article in rows:
                if article:
                    conn.execute("UPDATE texts SET article_z=?, article_json='' WHERE sha256=?", (pack(article), sha))
                    done.texts += 1
        if len(rows) < batch:
            break
        last = rows[-1][0]
    log.info("index %s: %d snapshot rows and %d texts packed", index.where, done.snapshots, done.texts)
    index.reclaim()
    return done

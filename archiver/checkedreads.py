"""The readers' half of the one checked path: what ``ArchiveReads`` shows of
a snapshot passes through here first (signedreads.py says why and how).

Kept apart from reading.py so that module stays about reads. A listing
(``history``, the timeline, the Changes page, ``/api/v1/changes``) shows a
snapshot that does not verify as ``unverified`` with no figures; one that
verifies with the figures its manifest signs: the index's stored diff,
whose bytes hash to the manifest's ``diff_sha256`` (checked with the rest of
the row, :meth:`SignedReads.check`: a stored diff that does not is a row
that does not verify). A manifest that signs no diff (written before diffs
were signed) or a row that lost its diff (re-indexed by ``repair``) gets the
figures of the diff between its signed text and the signed text of the
snapshot its manifest names as previous, recomputed; those are remembered
per process by the two manifests' digests.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from archiver.errors import ArchiverError
from archiver.lru import LRU
from archiver.signedreads import Signed, SignedReads

if TYPE_CHECKING:
    from archiver.changes.extract import Article
    from archiver.provenance.keyring import KeyRecord
    from store.index import Index, SnapshotRow

log = logging.getLogger(__name__)

UNVERIFIED = "unverified"  # a listing's significance for a snapshot that does not verify
FIGURES_CACHED = 10_000


class CheckedReads:
    """Mixed into ``ArchiveReads``: each row checked against its signed manifest."""

    index: Index
    reader_keys: list[KeyRecord] | None = None  # an auditor's pinned keys (--public-key): readers trust only these

    if TYPE_CHECKING:

        def _manifest_fields(self, row: SnapshotRow) -> dict[str, Any]: ...
        def stored_article(self, row: SnapshotRow) -> Article | None: ...
        def _same_method(self, prev: SnapshotRow, before: Article, after: Article) -> Article: ...

    @property
    def signed_reads(self) -> SignedReads:
        """The one check every reader passes a row through (signedreads.py), built on first use."""
        found = self.__dict__.get("_signed_reads")
        if found is None:
            from archiver.provenance.pinning import OwnRingCache
            from archiver.signedreads import reader_hint, reader_ring

            ring = OwnRingCache(lambda: reader_ring(self, self.reader_keys))
            hint = "" if self.reader_keys is not None else reader_hint(self)
            found = self.__dict__.setdefault("_signed_reads", SignedReads(ring.with_key, hint=hint))
        return found  # type: ignore[no-any-return]

    def signed(self, row: SnapshotRow) -> Signed:
        """What ``row``'s verified manifest signs; NotVerified (one line) otherwise."""
        return self.signed_reads.check(row, lambda: self._manifest_fields(row))

    def checked_fields(self, row: SnapshotRow) -> dict[str, Any]:
        """``row``'s manifest document (manifest, digest, signature, key id), verified (:meth:`signed`)."""
        fields = self._manifest_fields(row)
        self.signed_reads.check(row, lambda: fields)
        return fields

    def verdict(self, row: SnapshotRow) -> str | None:
        """Why ``row`` is not shown (None: it verifies)."""
        try:
            self.signed(row)
        except ArchiverError as exc:
            return str(exc)
        return None

    def listing(self, rows: list[SnapshotRow]) -> list[tuple[SnapshotRow, str | None]]:
        """Each row as a listing shows it, with why it does not verify (None: it
        does). One that does not: significance ``unverified``, no diff. One that
        does: its signed diff as stored, else a diff that holds only the figures
        recomputed from signed texts."""
        out: list[tuple[SnapshotRow, str | None]] = []
        for row in rows:
            try:
                signed = self.signed(row)
            except ArchiverError as exc:
                out.append((replace(row, significance=UNVERIFIED, diff_json=None), str(exc)))
                continue
            if signed.diff_sha256 is not None and row.diff_json is not None:
                out.append((row, None))  # its stored diff hashes to the signed digest (signed() checked it)
                continue
            out.append((replace(row, diff_json=json.dumps({"significance": signed.significance,
                                                           "figures": self.signed_figures(row, signed)})), None))
        return out

    def shown(self, rows: list[SnapshotRow]) -> list[SnapshotRow]:
        """``rows`` as a listing shows them (:meth:`listing`)."""
        return [row for row, _ in self.listing(rows)]

    def verified(self, rows: list[SnapshotRow]) -> list[SnapshotRow]:
        """Only the rows that verify, as a listing shows them (Memento lists, feeds:
        what a client would replay or announce as evidence)."""
        return [row for row, problem in self.listing(rows) if problem is None]

    def signed_figures(self, row: SnapshotRow, signed: Signed) -> list[dict[str, Any]]:
        """The figures that changed between the signed text of the snapshot
        ``row``'s manifest names as previous and its own; [] when it has no
        substantive change, or when there is no such pair to diff (a first
        snapshot, a page without text, a previous one that does not verify)."""
        stored = (row.diff or {}).get("figures") or []
        if signed.significance != "substantive" and not stored:
            return []  # no figure changed, by the signature's word: nothing to recompute
        key = (signed.previous_manifest_sha256 or "", row.manifest_sha256 or "")
        return self._figures_cache().get(key, lambda: self._recompute_figures(row, signed))

    def _figures_cache(self) -> LRU[list[dict[str, Any]]]:
        found = self.__dict__.get("_figures")
        if found is None:
            found = self.__dict__.setdefault("_figures", LRU(FIGURES_CACHED))
        return found  # type: ignore[no-any-return]

    def _recompute_figures(self, row: SnapshotRow, signed: Signed) -> list[dict[str, Any]]:
        from archiver.changes.diff import diff_articles

        prev = self.index.snapshot(row.prev_id) if row.prev_id else None
        if prev is None or not signed.previous_manifest_sha256 or prev.manifest_sha256 != signed.previous_manifest_sha256:
            log.warning("snapshot %s: its previous snapshot in the index is not the one its manifest names; "
                        "no figures shown (run archiver verify)", row.id)
            return []
        try:
            self.signed(prev)
            before, after = self.stored_article(prev), self.stored_article(row)
            if before is None or after is None:
                return []
            return [f.to_json() for f in diff_articles(self._same_method(prev, before, after), after).figures]
        except ArchiverError as exc:  # NotVerified among them
            log.warning("snapshot %s: no figures shown: %s", row.id, exc)
            return []

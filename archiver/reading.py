"""The reading half of the Archive facade: history, bodies, articles, diffs.

Split from ``archive.py`` (which builds the components and runs the
snapshot flow) so each half stays small; ``Archive`` inherits these, so
callers see one facade. Nothing here writes to the archive.

What a new capture may take over from an earlier snapshot (``vouched``,
``reusable_article``, the text it diffs against) is takeover.py's.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archiver.canonical import canonical_json, sha256_hex
from archiver.capture.originals import NotTheOriginal, check_original, stored_payload
from archiver.capture.records import manifest_fields
from archiver.capture.userinfo import strip_userinfo
from archiver.checkedreads import UNVERIFIED, CheckedReads
from archiver.config import Settings
from archiver.errors import ArchiverError, NotFoundError, NotVerified, UsageError
from archiver.results import SnapshotResult
from store.backends import WarcStore
from store.errors import CorruptRecordError
from store.index import Index, SnapshotRow
from store.rowforms import RecordRow
from store.scan import label_hex
from store.warc import StoredRecord
from store.warcreader import MAX_RECORD_BYTES, inflate_member, parse_stored_record

if TYPE_CHECKING:
    from archiver.changes.diff import DiffResult
    from archiver.changes.extract import Article, ExtractLimits

log = logging.getLogger(__name__)

HTML_TYPES = ("text/html", "application/xhtml+xml", "text/plain", "application/xml", "text/xml")


class ArchiveReads(CheckedReads):
    """Reads over the index and WARC store that ``Archive`` sets up; every
    reader passes a row through :class:`CheckedReads` first."""

    settings: Settings
    root: Path
    index: Index
    warcs: WarcStore

    def history(self, url: str) -> list[SnapshotRow]:
        url = strip_userinfo(url)  # archived under the URL without credentials
        rows = self.index.history(url)
        if not rows:
            raise NotFoundError(f"no snapshots of {url} in {self.root}")
        return rows

    def resolve(self, url: str, snapshot_id: str | None) -> SnapshotRow:
        """A URL's snapshot by id (or unique id prefix); the newest when None."""
        if snapshot_id is None:
            return self.history(url)[-1]
        matches = self.index.find_snapshots(strip_userinfo(url), snapshot_id)
        if not matches:
            raise NotFoundError(f"no snapshot {snapshot_id!r} of {url}")
        if len(matches) > 1:
            raise UsageError(f"snapshot id prefix {snapshot_id!r} is ambiguous ({len(matches)} matches)")
        return matches[0]

    def snapshot_by_id(self, snapshot_id: str) -> SnapshotRow:
        """A snapshot by its full id, whatever its URL."""
        row = self.index.snapshot(snapshot_id)
        if row is None:
            raise NotFoundError(f"no snapshot {snapshot_id!r} in the archive")
        return row

    def history_json(self, url: str) -> list[dict[str, Any]]:
        """The contract's history items (``archiver history --json``)."""
        return [history_item(r, problem) for r, problem in self.listing(self.history(url))]

    def manifest(self, row: SnapshotRow) -> dict[str, Any] | None:
        """The snapshot's signed manifest; None when it has none.

        A row written before schema 9 holds a copy. Since then the manifest
        is read where it always was too: the WARC's metadata record that the
        snapshot's record rows locate (one ranged read on object storage).
        Only a manifest that hashes to the row's digest -- the one the
        signature covers -- is returned, so a reader never shows another
        (a re-logged snapshot has two records; a forged one is refused).
        """
        if row.manifest_json:
            return json.loads(row.manifest_json)  # type: ignore[no-any-return]
        if not row.manifest_sha256:
            return None
        return self.manifest_named(row.id, row.manifest_sha256)

    def manifest_named(self, snapshot_id: str, digest: str) -> dict[str, Any]:
        """The manifest of a snapshot whose canonical form hashes to ``digest``,
        from the WARC; CorruptRecordError when no manifest record holds it."""
        return self._fields_named(snapshot_id, digest)["manifest"]  # type: ignore[no-any-return]

    def _fields_named(self, snapshot_id: str, digest: str) -> dict[str, Any]:
        """The manifest record's document (manifest, digest, signature, key id) whose manifest hashes to ``digest``."""
        for rec in self.index.manifest_records(snapshot_id):
            fields = manifest_fields(_Read(self.warcs.read_record(rec.warc_file, rec.warc_offset, rec.warc_length)))
            if fields is not None and sha256_hex(canonical_json(fields["manifest"])) == digest:
                return fields
        raise CorruptRecordError(
            f"snapshot {snapshot_id}: no manifest record in the WARC files hashes to its signed digest (run archiver verify)"
        )

    def _manifest_fields(self, row: SnapshotRow) -> dict[str, Any]:
        """``row``'s manifest with the signature over it: the WARC record's
        (an old row's copy in the index comes with the row's signature)."""
        if row.manifest_json:
            return {"manifest": json.loads(row.manifest_json), "manifest_sha256": row.manifest_sha256,
                    "signature": row.signature, "key_id": row.key_id}
        if not row.manifest_sha256:
            raise NotVerified(f"snapshot {row.id} has no signed manifest; not shown")
        return self._fields_named(row.id, row.manifest_sha256)

    def snapshot_json(self, row: SnapshotRow) -> dict[str, Any]:
        """``archiver show --json``: the snapshot with its signed manifest."""
        fields = self.checked_fields(row)
        data = SnapshotResult(self.listing([row])[0][0]).to_json()  # its figures from the signed texts
        data["manifest"] = fields["manifest"]
        text = self.index.text(row.text_sha256) if row.text_sha256 else None
        data["extraction"] = ({"method": text.get("method"), "notes": list(text.get("notes") or [])}
                              if text is not None else None)
        return data

    def signed_manifest(self, row: SnapshotRow) -> dict[str, Any]:
        """``archiver show --provenance``: manifest, digest, signature, key id."""
        fields = self.checked_fields(row)
        return {
            "manifest": fields["manifest"],
            "manifest_sha256": row.manifest_sha256,
            "signature": fields["signature"],
            "key_id": fields["key_id"],
        }

    def recent_changes(
        self, significances: tuple[str, ...], *, url_contains: str = "", limit: int = 50, offset: int = 0
    ) -> list[SnapshotRow]:
        """Newest snapshots of the given significances across all URLs, newest first.

        One indexed query per significance (newest first, stopping at
        ``offset + limit``), merged here: the cost follows the page asked
        for, not the size of the archive.
        """
        like = "%" + url_contains.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows: list[SnapshotRow] = []
        for significance in significances:
            rows.extend(self.index.newest(significance, like, offset + limit))
        rows.sort(key=lambda r: (r.captured_at, r.id), reverse=True)
        return rows[offset : offset + limit]

    def body(self, row: SnapshotRow) -> bytes:
        """The decoded response body of a snapshot (following a revisit), only
        when the snapshot verifies (:meth:`signed`) and its payload is the one
        its signed manifest names.

        Why: the row's location and a revisit's original are the index's word;
        whoever can write the index (or an archive signed before revisit
        originals were checked) could make this snapshot serve another
        record's content. CorruptRecordError, one line, instead."""
        return self._body(row, self.signed(row).payload_sha256)

    def _body(self, row: SnapshotRow, signed: str | None) -> bytes:
        """``row``'s body, when its payload hashes to ``signed`` (its verified manifest's)."""
        rec = self.warcs.read_record(row.warc_file, row.warc_offset, row.warc_length)
        return self._content(row, self.original_of(rec) if rec.type == "revisit" else rec, signed)

    def _content(self, row: SnapshotRow, rec: StoredRecord, signed: str | None) -> bytes:
        """The body of ``row``'s response ``rec`` (a revisit's original), when its payload hashes to ``signed``."""
        try:
            payload = stored_payload(rec)
        except ValueError as exc:
            raise CorruptRecordError(f"snapshot {row.id}: its record's body does not decode: {exc}") from exc
        if signed is None or hashlib.sha256(payload).hexdigest() != signed:
            raise CorruptRecordError(f"snapshot {row.id}: the record the index locates for it does not hold the payload "
                                     "its signed manifest names; not served (run archiver verify)")
        return rec.content

    def signed_claims(self, row: SnapshotRow) -> dict[str, str]:
        """The records ``row``'s verified manifest signs for (record id -> SHA-256
        of the uncompressed record); NotVerified when it does not verify.
        What a reader checks a record the index lists for a snapshot against."""
        return claims_of(self.checked_fields(row)["manifest"])

    def original_of(self, revisit: StoredRecord) -> StoredRecord:
        """The response a revisit record names (WARC-Refers-To), only when it
        holds the payload the revisit states (``capture/originals.py``
        ``check_original``: read once, the check a capture makes before naming
        it); CorruptRecordError otherwise."""
        target = revisit.header("WARC-Refers-To") or ""
        orig = self.index.record(target)
        if orig is None:
            raise NotFoundError(f"revisit {revisit.header('WARC-Record-ID')} refers to a record missing from the index: {target}")
        try:
            if orig.record_id != target:
                raise NotTheOriginal("the index's record has another id")
            return check_original(self.warcs, orig, label_hex(revisit.header("WARC-Payload-Digest") or "") or "").stored()
        except NotTheOriginal as exc:
            raise CorruptRecordError(f"revisit {revisit.header('WARC-Record-ID')} refers to {target}, which does not hold "
                                     f"the payload the revisit names ({exc}); not served (run archiver verify)") from exc

    def article(self, row: SnapshotRow) -> Article | None:
        """``row``'s article (stored, else read from its body as its signed
        response record's type says: :meth:`page`), only when ``row`` verifies."""
        self.signed(row)  # the row's text digest is then the signed one
        stored = self.stored_article(row)
        if stored is not None:
            return stored
        body, content_type = self.page(row)
        return self._extract(body, content_type, row.final_url)

    def _article_of(self, row: SnapshotRow, payload_sha256: str | None) -> Article | None:
        """``row``'s stored article when it hashes to the row's digest, else
        read from its body (checked against ``payload_sha256``) as the row's
        content type says (the index's word: a capture comparing with a key
        it does not vouch for, takeover.py)."""
        stored = self.stored_article(row)
        if stored is not None:
            return stored
        return self._extract(self._body(row, payload_sha256), row.content_type or "", row.final_url)

    def page(self, row: SnapshotRow) -> tuple[bytes, str]:
        """``row``'s decoded body and the Content-Type its response record
        states ("" when it states none), only when ``row`` verifies: one read
        of that record, checked against the SHA-256 its manifest signs for it,
        its payload (a revisit's original's) against the signed payload digest.
        Why the record's type, not the row's column: nothing signs the column,
        and the type decides how the signed bytes are read (as HTML, as text,
        in which charset)."""
        fields = self._manifest_fields(row)
        signed = self.signed_reads.check(row, lambda: fields)
        return self._page(row, claims_of(fields["manifest"]), signed.payload_sha256)

    def _page(self, row: SnapshotRow, claims: dict[str, str], payload_sha256: str | None) -> tuple[bytes, str]:
        """:meth:`page` with the claims and payload digest of a manifest the caller checked.
        The record the row locates must be the response the row names, as signed."""
        stored = self._signed_member(row.warc_file, row.warc_offset, row.warc_length,
                                     claims.get(row.response_record_id), row.response_record_id)
        if stored is None:
            raise CorruptRecordError(f"snapshot {row.id}: its response record is not the one its signed manifest "
                                     "names; not served (run archiver verify)")
        content = self.original_of(stored) if stored.type == "revisit" else stored
        ctype = _content_type(stored) or _content_type(content)  # a revisit without one: its original's
        return self._content(row, content, payload_sha256), ctype

    def signed_record(self, rec: RecordRow, signed: str | None) -> StoredRecord | None:
        """Record ``rec`` as stored, only when its bytes hash to ``signed`` (the
        SHA-256 a verified manifest names for it); None otherwise."""
        return self._signed_member(rec.warc_file, rec.warc_offset, rec.warc_length, signed, rec.record_id)

    def _signed_member(self, warc_file: str, offset: int, length: int, signed: str | None,
                       record_id: str) -> StoredRecord | None:
        """The record stored at ``warc_file@offset``, only when its bytes hash to ``signed``."""
        if signed is None or length > MAX_RECORD_BYTES:
            return None
        try:
            member = self.warcs.read_member(warc_file, offset, length)
            if hashlib.sha256(inflate_member(member)).hexdigest() != signed:
                return None
            return parse_stored_record(io.BytesIO(member), warc_file, offset)
        except (ArchiverError, ValueError) as exc:
            log.warning("record %s: %s", record_id, exc)
            return None

    def stored_article(self, row: SnapshotRow) -> Article | None:
        """``row``'s stored article, only when it hashes to the row's text digest.

        Why: a stored text that does not is never shown, nor diffed against
        (the next capture signs the diff's significance), nor taken over."""
        from archiver.changes.extract import Article

        if not row.text_sha256:
            return None
        data = self.index.text(row.text_sha256)
        if data is None:
            return None
        article = Article.from_json(data) if isinstance(data, dict) else None
        if article is not None and sha256_hex(article.text().encode("utf-8")) == row.text_sha256:
            return article
        log.warning("snapshot %s: its stored text does not hash to its digest (run archiver verify)", row.id)
        return None

    def diff(self, url: str, from_id: str | None, to_id: str | None) -> dict[str, Any]:
        """The contract's diff JSON: from, to, significance, figures, changes."""
        a, b, result = self.diff_result(url, from_id, to_id)
        return {"from": a.id, "to": b.id, "url": url, **result.to_json()}

    def diff_result(self, url: str, from_id: str | None, to_id: str | None) -> tuple[SnapshotRow, SnapshotRow, DiffResult]:
        from archiver.changes.diff import diff_articles

        a, b = self.diff_pair(url, from_id, to_id)
        art_a, art_b = self.article(a), self.article(b)
        if art_a is None or art_b is None:
            raise NotFoundError(f"snapshots of {url} have no article text to compare")
        return a, b, diff_articles(self._same_method(a, art_a, art_b), art_b)

    def diff_pair(
        self, url: str, from_id: str | None, to_id: str | None, history: list[SnapshotRow] | None = None
    ) -> tuple[SnapshotRow, SnapshotRow]:
        """Which two snapshots a diff compares: default the last two; ``--to`` alone: it and the one before."""
        history = history if history is not None else self.history(url)
        if from_id is None and to_id is None:
            if len(history) < 2:
                raise NotFoundError(f"{url} has only one snapshot; nothing to diff")
            return history[-2], history[-1]
        b = self.resolve(url, to_id)
        if from_id is None:
            earlier = [r for r in history if r.seq < b.seq]
            if not earlier:
                raise NotFoundError(f"snapshot {b.id} is the first of {url}; nothing to diff")
            return earlier[-1], b
        return self.resolve(url, from_id), b

    # -- helpers ---------------------------------------------------------------
    def _extract(self, body: bytes, content_type: str, url: str, *, method: str | None = None) -> Article | None:
        """The article of a response body, read with ``method`` when given; None when there is none."""
        from archiver.changes.extract import extract_article

        if not is_text_type(content_type):
            return None
        if not body:
            return None
        try:
            return extract_article(
                body, content_type=content_type, url=url, language_hint=self.settings.diff.default_language or None,
                method=method, limits=self.extract_limits(),
            )
        except ArchiverError as exc:
            log.warning("no article text for %s: %s", url, exc)
            return None

    def extract_limits(self) -> ExtractLimits:
        from archiver.changes.extract import ExtractLimits

        d = self.settings.diff
        return ExtractLimits(max_elements=d.extract_max_elements, max_depth=d.extract_max_depth,
                             max_text=d.extract_max_text, timeout=d.extract_timeout)

    def reader(self) -> str | None:
        """How this archive reads a page now (``changes.extract.reader_id``), stored with each new text."""
        from archiver.changes.extract import reader_id

        return reader_id(self.extract_limits(), self.settings.diff.default_language or None)

    def _same_method(self, prev: SnapshotRow, before: Article, after: Article) -> Article:
        """``before`` read the way ``after`` was, so a diff never compares two methods.

        The method only changes when the kept one finds no text at all; then
        the earlier version is read again from its WARC record.
        """
        if before.method is None or after.method is None or before.method == after.method:
            return before
        try:
            again = self._extract(*self.page(prev), prev.final_url, method=after.method)  # as its signed record says
        except ArchiverError as exc:
            log.warning("could not re-read %s with %s: %s", prev.id, after.method, exc)
            return before
        return again if again is not None and again.method == after.method else before


def _content_type(rec: StoredRecord) -> str:
    http = rec.http_headers
    return str((http.get_header("Content-Type") if http is not None else None) or "")


def claims_of(manifest: dict[str, Any]) -> dict[str, str]:
    """Record id -> SHA-256 of every record ``manifest`` signs for."""
    from archiver.provenance.manifest import signed_records

    return {str(r.get("record_id")): str(r.get("sha256")) for r in signed_records(manifest)}


def is_text_type(content_type: str) -> bool:
    """Whether a response of this type (none given counts) may hold article text."""
    return not content_type or any(t in content_type.lower() for t in HTML_TYPES)


def history_item(r: SnapshotRow, problem: str | None = None) -> dict[str, Any]:
    """One item of ``archiver history --json`` (and ``/api/v1/history``).
    ``problem``: why the snapshot does not verify -- then its significance is
    ``unverified`` and its figures are left out, never the index's claims."""
    return {
        "id": r.id,
        "captured_at": r.captured_at,
        "status": r.status,
        "payload_sha256": r.payload_sha256,
        "significance": UNVERIFIED if problem else r.significance,
        "revisit": r.revisit,
        "figures": [] if problem else (r.diff or {}).get("figures", []),
        "verified": problem is None,
        **({"problem": problem} if problem else {}),
    }


class _Read:
    """A stored record as ``manifest_fields`` reads one (its block is the payload as stored)."""

    def __init__(self, rec: StoredRecord) -> None:
        self.rec = rec
        self.type = rec.type
        self.block = rec.raw_payload

    def header(self, name: str) -> str | None:
        return self.rec.header(name)

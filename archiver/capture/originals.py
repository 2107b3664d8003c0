"""Revisit originals, checked against their bytes before a capture names one.

A revisit record says "my payload is that earlier record's": replay tools
(pywb, ReplayWeb.page, the web desk, ``show --html``) serve the original in
its place, and the capture signs the revisit. The index says which record
holds a payload -- but whoever can write the index (not ``keys/``) could
point a URL's payload digest at another record, and the capture would sign a
snapshot that replays content it never fetched. So the original the index
proposes is read back from the WARC and its payload hashed: only a record
that is what the index says (its id, URL and date) and holds exactly this
payload becomes a revisit's original; otherwise the capture is stored whole.
"""

from __future__ import annotations

import hashlib
import io
import logging
from dataclasses import dataclass
from typing import Any

from store.errors import CorruptRecordError, StoreError
from store.index import RecordRow
from store.scan import parse_record
from store.warcreader import MAX_RECORD_BYTES, StoredRecord, dechunk, inflate_member, parse_stored_record

log = logging.getLogger(__name__)


class NotTheOriginal(CorruptRecordError):
    """The record the index names as a revisit's original is not one: what it
    is instead, in one line."""


@dataclass(frozen=True)
class Original:
    """A revisit's original, checked against its bytes (:func:`check_original`)."""

    row: RecordRow
    member: bytes  # its stored gzip member, read once: a reader builds the served record from it

    def stored(self) -> StoredRecord:
        """The record as readers serve it (HTTP headers, decoded content), from the bytes already read."""
        return parse_stored_record(io.BytesIO(self.member), self.row.warc_file, self.row.warc_offset)


def check_original(warcs: Any, rec: RecordRow, payload_sha256: str) -> Original:
    """``rec`` -- the index's word for where a payload is -- read back once and
    checked: a response whose id, URL and date are the index's and whose
    payload hashes to ``payload_sha256``; NotTheOriginal otherwise.

    The one check of an original: a capture naming one in a revisit
    (:class:`CheckedOriginals`), a reader following a revisit to its content
    (``ArchiveReads.original_of``: ``show --html``, the web desk) and the WACZ
    export all pass through it."""
    # The member's bytes, inflated and split by archiver's own parser: warcio's
    # reader (which also decodes the body) doubled the CPU of an unchanged re-capture.
    if rec.warc_length > MAX_RECORD_BYTES:
        raise NotTheOriginal(f"its {rec.warc_length} bytes are more than any record archiver writes")
    try:
        member = warcs.read_member(rec.warc_file, rec.warc_offset, rec.warc_length)
        data = inflate_member(member) if member[:2] == b"\x1f\x8b" else member  # bounded: a gzip bomb is refused
        stored = parse_record(data)
        payload = stored.payload()
    except (StoreError, OSError, ValueError) as exc:
        raise NotTheOriginal(f"unreadable: {exc}") from exc
    if stored.type != "response":
        raise NotTheOriginal(f"the record there is a {stored.type or 'non-record'}, not a response")
    for name, want in (("WARC-Record-ID", rec.record_id), ("WARC-Target-URI", rec.target_uri),
                       ("WARC-Date", rec.date)):
        if stored.headers.get(name) != want:
            raise NotTheOriginal(f"its {name} is not the index's")
    if hashlib.sha256(payload).hexdigest() != payload_sha256:
        raise NotTheOriginal("its payload is not the one named")
    return Original(rec, member)


class CheckedOriginals:
    """The index's revisit originals, each read back and checked (``warcs``: the WARC store)."""

    def __init__(self, index: Any, warcs: Any) -> None:
        self.index = index
        self.warcs = warcs

    def original_for_payload(self, url: str, payload_sha256: str) -> RecordRow | None:
        """The page's original (see ``store.index``), if its bytes hold this payload."""
        return self._checked(self.index.original_for_payload(url, payload_sha256), payload_sha256)

    def response_with_payload(self, target_uri: str, payload_sha256: str) -> RecordRow | None:
        """A requisite's original (see ``store.index``), if its bytes hold this payload."""
        return self._checked(self.index.response_with_payload(target_uri, payload_sha256), payload_sha256)

    def _checked(self, rec: RecordRow | None, payload_sha256: str) -> RecordRow | None:
        if rec is None:
            return None
        try:
            return check_original(self.warcs, rec, payload_sha256).row
        except NotTheOriginal as exc:
            log.warning("not a revisit of %s (%s@%d): %s; the response is stored whole",
                        rec.record_id, rec.warc_file, rec.warc_offset, exc)
            return None


def stored_payload(stored: Any) -> bytes:
    """A stored response's payload as WARC digests it (transfer-encoding removed,
    content-encoding kept); ValueError for a chunked body that does not decode."""
    http = stored.http_headers
    if http is not None and "chunked" in (http.get_header("Transfer-Encoding") or "").lower():
        return dechunk(stored.raw_payload)
    return bytes(stored.raw_payload)

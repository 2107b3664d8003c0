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
import logging
import zlib
from typing import Any

from store.errors import StoreError
from store.index import RecordRow
from store.scan import parse_record
from store.warcreader import dechunk

log = logging.getLogger(__name__)


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
        why = self._problem(rec, payload_sha256)
        if why is None:
            return rec
        log.warning("not a revisit of %s (%s@%d): %s; the response is stored whole",
                    rec.record_id, rec.warc_file, rec.warc_offset, why)
        return None

    def _problem(self, rec: RecordRow, payload_sha256: str) -> str | None:
        # The member's bytes, inflated and split by archiver's own parser: warcio's
        # reader (which also decodes the body) doubled the CPU of an unchanged re-capture.
        try:
            member = self.warcs.read_member(rec.warc_file, rec.warc_offset, rec.warc_length)
            data = zlib.decompress(member, 16 + zlib.MAX_WBITS) if member[:2] == b"\x1f\x8b" else member
            stored = parse_record(data)
            payload = stored.payload()
        except (StoreError, OSError, zlib.error, ValueError) as exc:
            return f"unreadable: {exc}"
        if stored.type != "response":
            return f"the record there is a {stored.type or 'non-record'}, not a response"
        for name, want in (("WARC-Record-ID", rec.record_id), ("WARC-Target-URI", rec.target_uri),
                           ("WARC-Date", rec.date)):
            if stored.headers.get(name) != want:
                return f"its {name} is not the index's"
        if hashlib.sha256(payload).hexdigest() != payload_sha256:
            return "its payload is not this capture's"
        return None


def stored_payload(stored: Any) -> bytes:
    """A stored response's payload as WARC digests it (transfer-encoding removed,
    content-encoding kept); ValueError for a chunked body that does not decode."""
    http = stored.http_headers
    if http is not None and "chunked" in (http.get_header("Transfer-Encoding") or "").lower():
        return dechunk(stored.raw_payload)
    return bytes(stored.raw_payload)

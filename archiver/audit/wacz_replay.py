"""What a player would replay from a WACZ must be signed for.

A player replays whatever ``index.cdxj`` and ``pages.jsonl`` point at in
``data.warc.gz``; the package signature only says who packed them. So every
response, revisit or resource record in the WARC must be one a verified
manifest names, byte for byte, and every index line and page must lead to
one. Anything else was added after the archive signed it: someone's
forgery, replayable as if it were evidence.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from archiver.audit.problems import Findings
from archiver.audit.wacz_format import (
    INDEX_PATH,
    MAX_DOCUMENT_BYTES,
    MAX_INDEX_LINES,
    MAX_LINE_BYTES,
    MAX_RECORD_BYTES,
    MAX_SNAPSHOTS,
    PAGES_PATH,
    WARC_PATH,
)
from archiver.audit.wacz_reader import WaczZip, capped_lines, split_lines
from archiver.provenance.manifest import signed_records
from store.scan import TornTail, iter_members_of, parse_headers
from store.warcreader import inflate_pieces

REPLAYABLE = ("response", "revisit", "resource")
HEAD_BYTES = 64 << 10  # of each record kept while scanning: its WARC headers
LEGACY_INDEX_PATH = "indexes/index.cdxj"  # exports before the ZipNum layout


def url_key(value: Any) -> bytes:
    """What a page's URL is compared by: a digest (a stranger's URL may be long)."""
    return hashlib.sha256(repr(value).encode("utf-8", "replace")).digest()


@dataclass
class Verified:
    """What the replay checks need of the manifests that verified -- not the
    manifests, which a stranger's package may make as large as it likes."""

    signed: set[tuple[str, str]] = field(default_factory=set)  # (record id, SHA-256) of every record they sign
    page_urls: dict[str, set[bytes]] = field(default_factory=dict)  # snapshot id -> url_key of url, final_url

    def add(self, sid: str, manifest: dict[str, Any]) -> None:
        self.signed.update(
            (r["record_id"], r["sha256"])
            for r in signed_records(manifest)  # the page's records and its requisites'
            if isinstance(r.get("record_id"), str) and isinstance(r.get("sha256"), str)
        )
        self.page_urls.setdefault(sid, set()).update((url_key(manifest.get("url")), url_key(manifest.get("final_url"))))


@dataclass
class ReplayCheck:
    z: WaczZip
    report: Findings
    verified: Verified
    signed_offsets: set[int] = field(default_factory=set)

    def check_records(self) -> None:
        """One bounded pass over data.warc.gz: each replayable record is signed for."""
        signed = self.verified.signed
        entry = self.z.open_entry(WARC_PATH)
        for item in iter_members_of(entry, MAX_RECORD_BYTES, keep=HEAD_BYTES):
            if isinstance(item, TornTail):
                self.report.add(None, "record-unreadable", f"{WARC_PATH}@{item.offset}: {item.reason}; the rest is not checked")
                return
            self.z._spend(WARC_PATH, item.length)
            try:
                headers, _ = parse_headers(item.data)
            except ValueError as exc:
                self.report.add(None, "record-unreadable", f"{WARC_PATH}@{item.offset}: {exc}")
                continue
            rtype, rid = headers.get("WARC-Type", ""), headers.get("WARC-Record-ID", "")
            if rtype not in REPLAYABLE:
                continue
            entry.seek(item.offset)
            member_sha = hashlib.sha256(entry.read(item.length)).hexdigest()  # what older exports signed
            entry.seek(item.offset + item.length)
            if (rid, item.sha256) in signed or (rid, member_sha) in signed:
                self.signed_offsets.add(item.offset)
            else:
                self.report.add(None, "unsigned-record", f"{WARC_PATH}@{item.offset} {rid}: {rtype} of "
                                f"{headers.get('WARC-Target-URI', '?')} that no verified manifest names")

    def check_index(self) -> None:
        """Every CDXJ line must lead to a signed record."""
        for name in (INDEX_PATH, LEGACY_INDEX_PATH):
            if name in self.z.infos:
                self._check_index(name)

    def _check_index(self, name: str) -> None:
        if not name.endswith(".gz"):
            self._check_lines(name, self.z.lines(name, MAX_INDEX_LINES))
            return
        if self.z.infos[name].file_size > MAX_DOCUMENT_BYTES:
            self.report.add(None, "malformed", f"{name} is more than {MAX_DOCUMENT_BYTES} bytes")
            return
        # ZipNum: gzip blocks of CDXJ lines, inflated and split as they are read
        lines = split_lines(inflate_pieces(self.z.chunks(name), MAX_DOCUMENT_BYTES, what="the index"), MAX_LINE_BYTES)
        try:
            self._check_lines(name, capped_lines(lines, name, MAX_INDEX_LINES, self.report))
        except ValueError as exc:
            self.report.add(None, "malformed", f"{name}: {exc}")

    def _check_lines(self, index_name: str, lines: Iterable[bytes | None]) -> None:
        warc_name = WARC_PATH.rsplit("/", 1)[-1]
        for n, line in enumerate(lines, start=1):
            if line is None:
                self.report.add(None, "malformed", f"{index_name} line {n} is longer than {MAX_LINE_BYTES} bytes")
                continue
            if not line.strip():
                continue
            try:
                fields = json.loads(line.split(b" ", 2)[2])
                offset, name = int(fields["offset"]), str(fields.get("filename", ""))
            except (IndexError, KeyError, TypeError, ValueError):
                self.report.add(None, "malformed", f"{index_name} line {n} is not a CDXJ line")
                continue
            if name.rsplit("/", 1)[-1] != warc_name or offset not in self.signed_offsets:
                self.report.add(None, "unsigned-index", f"{index_name} line {n}: {fields.get('url')} points at "
                                f"{name}@{offset}, not a record a verified manifest names")

    def check_pages(self) -> None:
        """Every page must be a verified snapshot of its URL."""
        if PAGES_PATH not in self.z.infos:
            return
        for n, line in enumerate(self.z.lines(PAGES_PATH, MAX_SNAPSHOTS + 1), start=1):  # + its header line
            if line is not None and not line.strip():
                continue
            try:
                page = json.loads(line) if line is not None else None
            except ValueError:
                page = None
            if not isinstance(page, dict):
                self.report.add(None, "malformed", f"{PAGES_PATH} line {n} is not a JSON object")
                continue
            if "format" in page and "url" not in page:
                continue  # the header line
            urls = self.verified.page_urls.get(str(page.get("id")))
            if urls is None or url_key(page.get("url")) not in urls:
                self.report.add(None, "unsigned-page", f"{PAGES_PATH} line {n}: page {page.get('url')} "
                                f"({page.get('id')}) is not a verified snapshot of that URL")

"""WARC records as bytes: dates, the warcinfo record, one record per gzip
member, and where a batch of records written contiguously lies.

The encoding the writer (``store.warcwriter``) and the S3 store
(``store.objects``) share, so the two cannot drift apart.
"""

from __future__ import annotations

import gzip
import hashlib
import re
import socket
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Sequence

from store.errors import StoreError
from store.warcdigest import sha256_label

try:
    from isal import igzip_lib as _igzip
except ImportError:  # pragma: no cover - isal is a dependency; zlib is the fallback
    _igzip = None  # type: ignore[assignment]

WARC_VERSION = "1.1"
#: How each record's gzip member is compressed (``[archive] warc_gzip``); both
#: are plain gzip that every WARC reader inflates. "fast": ISA-L's level 2,
#: about a twelfth of zlib's CPU on real news pages for about 14 % more bytes;
#: "small": zlib's level 6 (the only choice before).
GZIP_MODES = ("fast", "small")
_WARC_HEAD = b"WARC/" + WARC_VERSION.encode("ascii") + b"\r\n"
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # a tab may stand in a value; nothing else below space


class WarcRecord:
    """One WARC record to write: its named fields in order and its block, exact.

    Why not warcio's builder: it parses an HTTP block and writes its own
    rendering of the headers, so a server's ``Content-Type:text/html``
    (no space) was stored as another block than the one whose digest the
    record declares. Here the block is written byte for byte as given --
    for a response, the bytes on the wire -- and nothing is parsed or
    copied on the capture path. ``Content-Type`` and ``Content-Length``
    are added when serialised.
    """

    __slots__ = ("rec_type", "fields", "block", "content_type")

    def __init__(self, rec_type: str, fields: list[tuple[str, str]], block: bytes, content_type: str) -> None:
        self.rec_type = rec_type
        self.fields = fields  # WARC-Type first; never Content-Type or Content-Length
        self.block = block
        self.content_type = content_type

    def header(self, name: str) -> str | None:
        """A named field's value (the first, as a reader takes it); None when absent."""
        lower = name.lower()
        for key, value in self.fields:
            if key.lower() == lower:
                return value
        return None

    def to_bytes(self) -> bytes:
        """The record as it goes into the file (before compression); a field
        with a line break or another control character is refused, never
        written (it would forge the fields after it)."""
        if _CONTROL.search("".join(k + v for k, v in self.fields)):
            raise StoreError(f"refusing to write a {self.rec_type} record: a header field holds a control character")
        head = "".join(f"{k}: {v}\r\n" for k, v in self.fields)
        head += f"Content-Type: {self.content_type}\r\nContent-Length: {len(self.block)}\r\n\r\n"
        return b"".join((_WARC_HEAD, head.encode("utf-8"), self.block, b"\r\n\r\n"))


def new_record(
    rec_type: str, target_uri: str, record_id: str, date: str, block: bytes, content_type: str,
    extra: Sequence[tuple[str, str]] = (),
) -> WarcRecord:
    """A record with the usual fields first (type, id, date, target), then ``extra``."""
    fields = [("WARC-Type", rec_type), ("WARC-Record-ID", record_id), ("WARC-Date", date)]
    if target_uri:
        fields.append(("WARC-Target-URI", target_uri))
    fields.extend(extra)
    return WarcRecord(rec_type, fields, block, content_type)


def warc_date(when: datetime) -> str:
    """WARC 1.1 date, always UTC and always with six fraction digits
    (warcio drops them on a whole second, which would make one capture's
    dates differ in form from the next one's)."""
    # isoformat, not strftime: the same text, at a third of the cost (ten per capture)
    return when.astimezone(timezone.utc).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"




@dataclass(frozen=True)
class RecordLocation:
    """Where one record landed: enough to read it back and to prove it."""

    record_id: str
    record_type: str
    target_uri: str
    date: str
    warc_file: str  # final name (without ``.open``)
    offset: int
    length: int  # compressed length of the gzip member
    sha256: str  # hex SHA-256 of the uncompressed record (survives recompression)
    payload_digest: str | None  # the WARC-Payload-Digest header value, if any


@dataclass
class WarcInfo:
    """What the warcinfo record at the head of each file says about its writer."""

    software: str
    operator: str = ""
    hostname: str = field(default_factory=socket.gethostname)
    is_part_of: str = ""
    description: str = ""

    def fields(self) -> dict[str, str]:
        return {
            "software": self.software,
            "format": "WARC File Format 1.1",
            "conformsTo": "https://iipc.github.io/warc-specifications/specifications/warc-format/warc-1.1/",
            "hostname": self.hostname,
            "operator": self.operator,
            "isPartOf": self.is_part_of,
            "description": self.description,
        }


def warcinfo_record(filename: str, fields: dict[str, str], date: str, record_id: str | None = None) -> WarcRecord:
    """A warcinfo record with a SHA-256 block digest (warcio's own adds SHA-1)."""
    body = b"".join(f"{k}: {v}\r\n".encode("utf-8") for k, v in fields.items() if v)
    if record_id is None:
        from warcio.statusandheaders import StatusAndHeadersParser  # not on a reader's start-up

        record_id = StatusAndHeadersParser.make_warc_id()
    head = [("WARC-Type", "warcinfo"), ("WARC-Record-ID", record_id)]
    if filename:
        head.append(("WARC-Filename", filename))
    head += [("WARC-Date", date), ("WARC-Block-Digest", sha256_label(hashlib.sha256(body).digest()))]
    return WarcRecord("warcinfo", head, body, "application/warc-fields")


def parse_warc_date(value: str) -> datetime | None:
    """A WARC-Date as an aware datetime; None when it is not one."""
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)


def gzip_member(data: bytes, mode: str = "fast") -> bytes:
    """``data`` as one gzip member (no name, time 0: the same bytes give the same member)."""
    if mode == "fast" and _igzip is not None:
        return _igzip.compress(data, 2, flag=_igzip.COMP_GZIP)
    if mode not in GZIP_MODES:
        raise StoreError(f"unknown WARC gzip mode {mode!r}: one of {', '.join(GZIP_MODES)}")
    return gzip.compress(data, compresslevel=6, mtime=0)


def serialize_record(record: WarcRecord, gzip_mode: str = "fast") -> tuple[bytes, str]:
    """One record as one gzip member, with the SHA-256 of the uncompressed record."""
    data = record.to_bytes()
    return gzip_member(data, gzip_mode), hashlib.sha256(data).hexdigest()


Seal = Callable[[list[tuple[str, str]]], WarcRecord]


def serialize_sealed(
    records: Sequence[WarcRecord], seal: Seal | None, gzip_mode: str = "fast"
) -> tuple[list[tuple[bytes, str]], list[bytes]]:
    """Each record as (gzip member, SHA-256), and the members to write: the
    records' own, then the seal's record over their digests when given."""
    serialized = [serialize_record(r, gzip_mode) for r in records]
    members = [m for m, _ in serialized]
    if seal is not None:
        digests = [(r.header("WARC-Record-ID") or "", d) for r, (_, d) in zip(records, serialized)]
        members.append(serialize_record(seal(digests), gzip_mode)[0])
    return serialized, members


def locations_for(
    records: Sequence[WarcRecord], serialized: Sequence[tuple[bytes, str]], name: str, start: int
) -> list[RecordLocation]:
    """Where records written contiguously from offset ``start`` of ``name`` lie."""
    out = []
    offset = start
    for record, (member, digest) in zip(records, serialized):
        h = record
        out.append(
            RecordLocation(
                record_id=h.header("WARC-Record-ID") or "",
                record_type=record.rec_type,
                target_uri=h.header("WARC-Target-URI") or "",
                date=h.header("WARC-Date") or "",
                warc_file=name,
                offset=offset,
                length=len(member),
                sha256=digest,
                payload_digest=h.header("WARC-Payload-Digest"),
            )
        )
        offset += len(member)
    return out


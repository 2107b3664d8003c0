"""WARC records as bytes: dates, the warcinfo record, one record per gzip
member, and where a batch of records written contiguously lies.

The encoding the writer (``store.warcwriter``) and the S3 store
(``store.objects``) share, so the two cannot drift apart.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import socket
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Sequence

from warcio.recordloader import ArcWarcRecord
from warcio.statusandheaders import StatusAndHeaders, StatusAndHeadersParser
from warcio.warcwriter import WARCWriter

from store.warcdigest import sha256_label

WARC_VERSION = "1.1"
GZIP_LEVEL = 6
_BUILDER = WARCWriter(io.BytesIO(), gzip=False, warc_version=WARC_VERSION)


def warc_date(when: datetime) -> str:
    """WARC 1.1 date, always UTC and always with six fraction digits
    (warcio drops them on a whole second, which would make one capture's
    dates differ in form from the next one's)."""
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")




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


def warcinfo_record(filename: str, fields: dict[str, str], date: str, record_id: str | None = None) -> ArcWarcRecord:
    """A warcinfo record with a SHA-256 block digest (warcio's own adds SHA-1)."""
    body = b"".join(f"{k}: {v}\r\n".encode("utf-8") for k, v in fields.items() if v)
    headers = StatusAndHeaders("", [], protocol="WARC/" + WARC_VERSION)
    headers.add_header("WARC-Type", "warcinfo")
    headers.add_header("WARC-Record-ID", record_id or StatusAndHeadersParser.make_warc_id())
    if filename:
        headers.add_header("WARC-Filename", filename)
    headers.add_header("WARC-Date", date)
    headers.add_header("WARC-Block-Digest", sha256_label(hashlib.sha256(body).digest()))
    return _BUILDER.create_warc_record(
        "", "warcinfo", warc_headers=headers, payload=io.BytesIO(body), length=len(body),
        warc_content_type="application/warc-fields",
    )


def parse_warc_date(value: str) -> datetime | None:
    """A WARC-Date as an aware datetime; None when it is not one."""
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)


def serialize_record(record: ArcWarcRecord) -> tuple[bytes, str]:
    """One record as one gzip member (warcio serialises, we compress at level 6),
    with the SHA-256 of the uncompressed record."""
    raw = io.BytesIO()
    plain = WARCWriter(raw, gzip=False, warc_version=WARC_VERSION)
    plain.write_record(record)
    data = raw.getvalue()
    return gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0), hashlib.sha256(data).hexdigest()



Seal = Callable[[list[tuple[str, str]]], ArcWarcRecord]


def serialize_sealed(
    records: Sequence[ArcWarcRecord], seal: Seal | None
) -> tuple[list[tuple[bytes, str]], list[bytes]]:
    """Each record as (gzip member, SHA-256), and the members to write: the
    records' own, then the seal's record over their digests when given."""
    serialized = [serialize_record(r) for r in records]
    members = [m for m, _ in serialized]
    if seal is not None:
        digests = [(r.rec_headers.get_header("WARC-Record-ID"), d) for r, (_, d) in zip(records, serialized)]
        members.append(serialize_record(seal(digests))[0])
    return serialized, members



def locations_for(
    records: Sequence[ArcWarcRecord], serialized: Sequence[tuple[bytes, str]], name: str, start: int
) -> list[RecordLocation]:
    """Where records written contiguously from offset ``start`` of ``name`` lie."""
    out = []
    offset = start
    for record, (member, digest) in zip(records, serialized):
        h = record.rec_headers
        out.append(
            RecordLocation(
                record_id=h.get_header("WARC-Record-ID"),
                record_type=h.get_header("WARC-Type"),
                target_uri=h.get_header("WARC-Target-URI") or "",
                date=h.get_header("WARC-Date"),
                warc_file=name,
                offset=offset,
                length=len(member),
                sha256=digest,
                payload_digest=h.get_header("WARC-Payload-Digest"),
            )
        )
        offset += len(member)
    return out


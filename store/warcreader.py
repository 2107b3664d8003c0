"""Reading WARC records back: by (file, offset), one stream's first record,
or every record of a file; payloads with transfer- and content-encoding removed.
"""

from __future__ import annotations

import functools
import io
import logging
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Callable, Iterable, Iterator

from store.errors import CorruptRecordError
from store.warcfiles import open_regular, resolve

if TYPE_CHECKING:  # warcio is imported when a record is read through it, not by the scanners
    from warcio.recordloader import ArcWarcRecord
    from warcio.statusandheaders import StatusAndHeaders

log = logging.getLogger(__name__)


@dataclass
class StoredRecord:
    """A record read back: its headers, HTTP headers and the raw block bytes."""

    rec_headers: StatusAndHeaders
    http_headers: StatusAndHeaders | None
    raw_payload: bytes  # payload as stored (after HTTP headers; transfer-encoding intact)

    @functools.cached_property
    def content(self) -> bytes:
        """The payload with transfer- and content-encoding removed, decoded when
        first asked for. Why not at once: a record is read from where the index
        says, before it is checked, and readers ask for its content only after
        its ``raw_payload`` hashed to the signed digest -- a planted 2 KB record
        whose body is gzip of a gigabyte was decoded on every read (2 GiB peak)."""
        return _decode_payload(self.http_headers, self.raw_payload)

    @property
    def type(self) -> str:
        return str(self.rec_headers.get_header("WARC-Type"))

    def header(self, name: str) -> str | None:
        value = self.rec_headers.get_header(name)
        return None if value is None else str(value)


MAX_RECORD_BYTES = 64 << 20  # one record inflated (archiver records stay below: 50 MiB body cap + headers)


def inflate_member(member: bytes, cap: int = MAX_RECORD_BYTES, sink: Callable[[bytes], object] | None = None) -> bytes:
    """The gzip member(s) ``member`` holds, inflated; ValueError when damaged or
    when it inflates beyond ``cap`` (a gzip bomb is refused after ``cap``
    bytes, never inflated whole). With ``sink``, each piece goes there
    instead and nothing is kept."""
    out: list[bytes] = []
    _inflate(io.BytesIO(member).read, cap, sink or out.append, first_only=False)
    return b"".join(out)


def _inflate(read: Callable[[int], bytes], cap: int, keep: Callable[[bytes], object], *, first_only: bool) -> None:
    """:func:`inflate_pieces` of what ``read`` gives, each piece into ``keep``."""
    for data in inflate_pieces(iter(lambda: read(1 << 16), b""), cap, first_only=first_only):
        keep(data)


def inflate_pieces(pieces: Iterable[bytes], cap: int, *, first_only: bool = False,
                   what: str = "record") -> Iterator[bytes]:
    """The gzip members the bytes ``pieces`` give (only the first, with
    ``first_only``), inflated in bounded pieces as they are asked for;
    ValueError when one is damaged or ends early, or when they inflate beyond
    ``cap`` bytes (``what`` names them in that message). One loop for the
    records read here and the WACZ readers' ZipNum index (audit/wacz_replay)."""
    given = (p for p in pieces if p)
    size = 0
    pending = next(given, b"")
    if not pending and not first_only:
        return  # no member at all
    try:
        while True:
            z = zlib.decompressobj(16 + zlib.MAX_WBITS)
            while not z.eof:
                if not pending:
                    pending = next(given, b"")
                    if not pending:
                        raise ValueError("not a valid gzip member: it ends early")
                data = z.decompress(pending, min(1 << 20, cap - size + 1))  # bounded pieces
                pending = z.unconsumed_tail
                size += len(data)
                if size > cap:
                    raise ValueError(f"{what} inflates beyond {cap} bytes; refusing it")
                if data:
                    yield data
            if first_only:
                return
            pending = z.unused_data or next(given, b"")
            if not pending:
                return
    except zlib.error as exc:
        raise ValueError(f"not a valid gzip member: {exc}") from exc


def read_member(directory: Path, name: str, offset: int, length: int) -> bytes:
    """The exact stored bytes of one record (its gzip member)."""
    path = resolve(directory, name)
    with open_regular(path) as fh:
        fh.seek(offset)
        data = fh.read(length)
    if len(data) != length:
        raise CorruptRecordError(f"{name}@{offset}: file is shorter than the indexed record")
    return data


def read_record(directory: Path, name: str, offset: int) -> StoredRecord:
    """Read the record at ``offset`` of WARC ``name``."""
    path = resolve(directory, name)
    try:
        with open_regular(path) as fh:
            fh.seek(offset)
            return parse_stored_record(fh, name, offset)
    except OSError as exc:
        raise CorruptRecordError(f"{name}@{offset}: unreadable WARC record: {exc}") from exc


def parse_stored_record(stream: BinaryIO, name: str, offset: int) -> StoredRecord:
    """The first record of ``stream`` (positioned at ``offset`` of ``name``).

    A gzip member is inflated here, within MAX_RECORD_BYTES, before warcio
    reads it: the location comes from the index, which can name any bytes,
    and warcio inflates a record whole (a planted 1 MB member of a 1 GiB
    record cost 700 MiB per read, before anything was checked)."""
    from warcio.archiveiterator import ArchiveIterator
    from warcio.exceptions import ArchiveLoadFailed

    start = stream.read(2)
    stream.seek(-len(start), 1)
    if start == b"\x1f\x8b":
        try:
            stream = io.BytesIO(_first_member(stream))
        except ValueError as exc:
            raise CorruptRecordError(f"{name}@{offset}: unreadable WARC record: {exc}") from exc
    try:
        for record in ArchiveIterator(stream):
            raw = record.raw_stream.read()
            return StoredRecord(record.rec_headers, record.http_headers, raw)
    except (ArchiveLoadFailed, OSError, EOFError, zlib.error, ValueError) as exc:
        raise CorruptRecordError(f"{name}@{offset}: unreadable WARC record: {exc}") from exc
    raise CorruptRecordError(f"{name}@{offset}: no WARC record at this offset")



def _first_member(stream: BinaryIO, cap: int = MAX_RECORD_BYTES) -> bytes:
    """The first gzip member of ``stream``, inflated; ValueError beyond ``cap``
    bytes or when it is not a whole gzip member."""
    out: list[bytes] = []
    _inflate(stream.read, cap, out.append, first_only=True)
    return b"".join(out)


def _decode_payload(headers: StatusAndHeaders | None, raw: bytes) -> bytes:
    if headers is None:
        return raw
    body = raw
    if (headers.get_header("Transfer-Encoding") or "").lower().find("chunked") >= 0:
        body = dechunk(body)
    return decode_content(body, headers.get_header("Content-Encoding") or "")


def decode_content(body: bytes, encoding: str) -> bytes:
    """Remove gzip/deflate content-encoding; a body that does not decode stays as stored."""
    encoding = encoding.lower().strip()
    try:
        if encoding in ("gzip", "x-gzip"):
            return zlib.decompress(body, 16 + zlib.MAX_WBITS)
        if encoding == "deflate":
            try:
                return zlib.decompress(body)
            except zlib.error:
                return zlib.decompress(body, -zlib.MAX_WBITS)
    except zlib.error:
        log.warning("stored body declares %s but does not decode", encoding)
    return body


def dechunk(data: bytes) -> bytes:
    """Remove HTTP/1.1 chunked transfer-encoding; tolerant of a missing terminator."""
    out = bytearray()
    pos = 0
    while pos < len(data):
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            break
        size_text = data[pos:eol].split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError as exc:
            raise ValueError(f"bad chunk size {size_text!r}") from exc
        if size == 0:
            break
        start = eol + 2
        out += data[start : start + size]
        pos = start + size + 2
    return bytes(out)


def iter_records(path: Path) -> Iterator[tuple[int, int, ArcWarcRecord]]:
    """Every record of a file with its offset and member length, payload read.

    Raises :class:`CorruptRecordError` at the first torn record.
    """
    from warcio.archiveiterator import ArchiveIterator
    from warcio.exceptions import ArchiveLoadFailed

    with open(path, "rb") as fh:
        it = ArchiveIterator(fh)
        try:
            for record in it:
                record.raw_stream.read()
                offset = it.get_record_offset()
                yield offset, 0, record
        except (ArchiveLoadFailed, EOFError, zlib.error, ValueError) as exc:
            raise CorruptRecordError(f"{path.name}: torn or unreadable record: {exc}") from exc

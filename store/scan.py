"""Stream a WARC file member by member: offsets, exact bytes' SHA-256, and
the parsed record -- one pass, one record in memory at a time.

This is the audit's view of the files: it trusts nothing the index says and
does not stop at the first problem; a torn tail is reported as such.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

from store.warc import dechunk, label_bytes
from store.warcfiles import open_regular

READ_SIZE = 1 << 20
FEED_SIZE = 1 << 14  # compressed bytes per zlib call (see iter_members_of)
MAX_MEMBER = 1 << 30  # one record inflated; archiver's own stay far below (50 MiB body cap)


@dataclass
class Member:
    """One gzip member (= one record) as it lies in the file."""

    offset: int
    length: int
    sha256: str  # of the uncompressed record (what manifests sign)
    data: bytes  # decompressed record


@dataclass
class TornTail:
    """Bytes at the end of a file that do not form a complete member."""

    offset: int
    length: int
    reason: str


@dataclass
class ParsedRecord:
    headers: dict[str, str]
    block: bytes

    @property
    def type(self) -> str:
        return self.headers.get("WARC-Type", "")

    @property
    def record_id(self) -> str:
        return self.headers.get("WARC-Record-ID", "")

    def header(self, name: str) -> str | None:
        """A named field, matched without regard to case (as WARC names are)."""
        if name in self.headers:
            return self.headers[name]
        lower = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == lower), None)

    def http_split(self) -> tuple[bytes, bytes]:
        """(HTTP head incl. blank line, entity body as stored)."""
        end = self.block.find(b"\r\n\r\n")
        if end < 0:
            return self.block, b""
        return self.block[: end + 4], self.block[end + 4 :]

    def payload(self) -> bytes:
        """Entity body with transfer-encoding removed (what WARC 1.1 digests)."""
        head, body = self.http_split()
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"transfer-encoding" and b"chunked" in value.lower():
                return dechunk(body)
        return body


def iter_members(path: Path, start: int = 0) -> Iterator[Member | TornTail]:
    """Every complete member of ``path`` (from offset ``start``, a member's
    start), then a TornTail if the end is broken."""
    with open_regular(path) as fh:
        fh.seek(start)
        yield from iter_members_of(fh, start=start)


def open_current(path: Path, attempts: int = 3) -> BinaryIO | None:
    """Open a WARC file by the name it was listed under or, since a writer may
    have closed (renamed) it meanwhile, by its other name; None when gone."""
    path = Path(path)
    other = path.with_name(path.name[: -len(".open")] if path.name.endswith(".open") else path.name + ".open")
    for _ in range(attempts):
        for candidate in (path, other):
            try:
                return open_regular(candidate)
            except FileNotFoundError:
                continue
    return None


def iter_members_of(
    fh: BinaryIO,
    max_member: int = MAX_MEMBER,
    keep: int | None = None,
    *,
    start: int = 0,
    stop: int | None = None,
    keep_all: Callable[[bytes], bool] | None = None,
) -> Iterator[Member | TornTail]:
    """Every complete member of an open file, then a TornTail if the end is broken.

    A member that inflates beyond ``max_member`` bytes ends the scan as a
    TornTail too: output is taken at most a chunk at a time, so a gzip bomb
    costs ``max_member`` bytes of memory, not its inflated size. With
    ``keep``, a Member's ``data`` is only its first ``keep`` bytes (its
    SHA-256 still covers all): enough for the headers, in constant memory --
    unless ``keep_all`` (given those first bytes) asks for the whole record.

    ``start`` is the file offset ``fh`` is positioned at (offsets are
    reported from it); with ``stop`` the scan ends before the first member
    that starts at or after it, so one file can be scanned in pieces.

    Compressed input is fed to zlib in small slices of a large read: zlib
    copies whatever follows a member's end, so feeding it the whole read
    would copy a megabyte per small record.
    """
    buf = memoryview(b"")
    pos = 0  # next unread byte of buf
    base = start  # file offset of buf[0]
    while True:
        if pos >= len(buf):
            base += len(buf)
            buf, pos = memoryview(fh.read(READ_SIZE)), 0
            if not buf:
                return
        member_start = base + pos
        if stop is not None and member_start >= stop:
            return
        z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        out: list[bytes] = []
        kept = 0  # bytes in out
        whole = keep is None
        decided = keep is None
        digest = hashlib.sha256()
        size = 0
        while True:
            if pos >= len(buf):
                base += len(buf)
                buf, pos = memoryview(fh.read(READ_SIZE)), 0
                if not buf:
                    yield TornTail(member_start, base - member_start, "file ends inside a record")
                    return
            piece = buf[pos : pos + FEED_SIZE]
            try:
                data = z.decompress(piece, min(READ_SIZE, max_member - size + 1))  # bounded pieces
            except zlib.error as exc:
                yield TornTail(member_start, _file_size(fh) - member_start, f"corrupt gzip data: {exc}")
                return
            size += len(data)
            if size > max_member:
                yield TornTail(member_start, _file_size(fh) - member_start, f"record inflates beyond {max_member} bytes")
                return
            digest.update(data)
            if whole or kept < (keep or 0):
                out.append(data)
                kept += len(data)
            if not decided and (kept >= (keep or 0) or z.eof):
                decided = True
                if keep_all is not None and keep_all(b"".join(out)):
                    whole = True
            pos += len(piece) - len(z.unused_data if z.eof else z.unconsumed_tail)
            if z.eof:
                break
        record = b"".join(out)
        yield Member(member_start, base + pos - member_start, digest.hexdigest(), record if whole else record[:keep])


def _file_size(fh: BinaryIO) -> int:
    pos = fh.tell()
    fh.seek(0, 2)
    size = int(fh.tell())
    fh.seek(pos)
    return size


def parse_headers(data: bytes) -> tuple[dict[str, str], int]:
    """The named fields of a decompressed WARC record (or its first bytes),
    and where its header block ends; ValueError when it is not one."""
    end = data.find(b"\r\n\r\n")
    if end < 0 or not data.startswith(b"WARC/"):
        raise ValueError("not a WARC record")
    headers: dict[str, str] = {}
    for line in data[:end].decode("utf-8", "replace").split("\r\n")[1:]:
        name, _, value = line.partition(":")
        headers[name.strip()] = value.strip()
    return headers, end


def parse_record(data: bytes, parsed: tuple[dict[str, str], int] | None = None) -> ParsedRecord:
    """Split a decompressed WARC record into its named fields and its block
    (``parsed``: what :func:`parse_headers` already said of it)."""
    headers, end = parsed or parse_headers(data)
    try:
        length = int(headers.get("Content-Length", ""))
    except ValueError as exc:
        raise ValueError("record has no valid Content-Length") from exc
    block = data[end + 4 : end + 4 + length]
    if len(block) != length:
        raise ValueError(f"record block is {len(block)} bytes, Content-Length says {length}")
    return ParsedRecord(headers, block)


def _label(label: str) -> tuple[str, bytes] | None:
    """label_bytes, with archiver's own form (``sha256:`` and 64 hex digits) read
    first: at that length no other encoding of a SHA-256 can be meant."""
    if len(label) == 71 and label[:7].lower() == "sha256:":
        try:
            return "sha256", bytes.fromhex(label[7:])
        except ValueError:
            pass
    return label_bytes(label)


def digest_matches(label: str, data: bytes) -> bool:
    """Check a WARC digest label (``alg:value``, base32/base16/base64) against data."""
    parsed = _label(label)
    if parsed is None:
        return False
    algo, raw = parsed
    return hashlib.new(algo, data).digest() == raw


def label_hex(label: str) -> str | None:
    """The hex of a SHA-256 digest label in any encoding; None otherwise."""
    parsed = _label(label)
    return parsed[1].hex() if parsed is not None and parsed[0] == "sha256" else None


def label_matches(label: str, digest: bytes) -> bool:
    """Does a WARC digest label name this raw digest (any RFC 4648 encoding)?"""
    parsed = _label(label)
    return parsed is not None and parsed[1] == digest

"""The audit's one pass over a WARC file: every gzip member inflated once, and
while its bytes stream past, three digests taken -- the whole record's
SHA-256 (what a signed manifest names), its block's and its payload's (what
the record's own WARC-Block-Digest and WARC-Payload-Digest claim) -- from
memoryview slices of the inflated chunks, never a copy of a large record.

A record is kept whole only when the caller asks (a manifest or intent to
read) or when its payload cannot be hashed as it streams (chunked transfer
coding, an HTTP head past the first chunk); otherwise only its first bytes
are kept. Inflating uses ISA-L (``isal``) where it is installed -- about
twice zlib's speed, same checks of the gzip CRC and length -- and zlib
otherwise.

Compressed input is fed in small slices of a large read: the inflater
copies whatever follows a member's end, so feeding it a whole read would
copy a megabyte per small record.

Records up to ``SMALL`` bytes go, a whole read at a time, through the native
scanner (``store/_scanc.c``) where it is built: it inflates and hashes each
in C and checks the header and digests of a record in the plain shape
archiver writes; any other record comes back as bytes and is judged here
(``_whole_record``), so the verdicts are this module's either way
(tests/test_scan_native.py holds the two paths to the same answers). Set
``ARCHIVER_PURE_PYTHON=1`` to leave it out.
"""

from __future__ import annotations

import hashlib
import os
import types
import zlib
from dataclasses import dataclass
from typing import Any, BinaryIO, Callable, Iterator

from store.fields import content_length, parse_fields
from store.scan import FEED_SIZE, MAX_MEMBER, READ_SIZE, ParsedRecord, TornTail, _label

_inflate: types.ModuleType
try:  # ISA-L: the same deflate, about twice as fast
    from isal import isal_zlib as _inflate
except ImportError:  # pragma: no cover - isal is a dependency; zlib is the fallback
    _inflate = zlib

_native_mod: types.ModuleType | None
try:  # verify's native scanner for small records (optional: built where a compiler and the headers are)
    from store import _scanc as _native_mod
except ImportError:  # pragma: no cover - the pure-Python path below is the reference
    _native_mod = None
native: Any = None if os.environ.get("ARCHIVER_PURE_PYTHON") else _native_mod
SMALL = 1 << 18  # inflated bytes: a record up to this size is read whole in one native call

INFLATE_ERRORS: tuple[type[Exception], ...] = (zlib.error, getattr(_inflate, "error", zlib.error))
HEAD = 16_384  # inflated bytes read before a record's digests are set up (its headers and HTTP head are in there)
NO_OWN_PAYLOAD = frozenset({"revisit"})  # its payload digest names the original's payload
HTTP_TYPES = frozenset({"response", "request"})


def inflater() -> Any:
    """A gzip-member decompressor (ISA-L when installed)."""
    return _inflate.decompressobj(31)


@dataclass(slots=True)
class Checked:
    """One gzip member (one record) as the audit found it."""

    offset: int
    length: int
    sha256: str  # of the whole inflated record
    data: bytes  # the whole record when kept, else its first bytes
    whole: bool
    headers: dict[str, str] | None  # None: malformed (see error)
    block_start: int = 0  # where the block begins in data
    error: str | None = None  # why the record is not well formed
    block_ok: bool | None = None  # WARC-Block-Digest matches (None: none claimed)
    payload_ok: bool | None = None  # WARC-Payload-Digest matches (None: none claimed, or a revisit's)
    payload_sha256: str | None = None  # hex SHA-256 of the payload (responses and requests)


class _Digests:
    """The block and payload digests of one record, fed as its bytes stream."""

    def __init__(self, headers: dict[str, str], end: int, head: bytes) -> None:
        self.ranges: list[tuple[Any, int, int]] = []
        self.start = end + 4
        self.stop = self.start + content_length(headers)
        claim = headers.get("WARC-Block-Digest")
        self.block_claimed = claim is not None  # a claim that cannot be read does not match
        self.block_label = _label(claim) if claim is not None else None
        self.block = self._hasher(self.block_label, self.start)
        rtype = headers.get("WARC-Type", "")
        claim = headers.get("WARC-Payload-Digest")
        self.payload_claimed = claim is not None and rtype not in NO_OWN_PAYLOAD
        self.payload_label = _label(claim) if claim is not None and self.payload_claimed else None
        self.payload = self.sha = None
        self.chunked = False
        if rtype in HTTP_TYPES:
            http_end = head.find(b"\r\n\r\n", self.start, min(self.stop, len(head)))
            if http_end < 0 and self.stop > len(head):
                self.chunked = True  # HTTP head past the first chunk: payload taken from the whole record
                return
            pstart = http_end + 4 if http_end >= 0 else self.stop
            if http_end >= 0 and _is_chunked(head[self.start:http_end]):
                self.chunked = True
                return
            self.sha = hashlib.sha256()
            self.ranges.append((self.sha, pstart, self.stop))
            if self.payload_label is not None and self.payload_label[0] != "sha256":
                self.payload = self._hasher(self.payload_label, pstart)
        elif self.payload_label is not None:  # payload = block: one hash serves both when the algorithms agree
            same = self.block_label is not None and self.block_label[0] == self.payload_label[0]
            self.payload = self.block if same else self._hasher(self.payload_label, self.start)

    def _hasher(self, label: tuple[str, bytes] | None, start: int) -> Any:
        if label is None:
            return None
        h = hashlib.new(label[0])
        self.ranges.append((h, start, self.stop))
        return h

    def feed(self, data: memoryview, pos: int) -> None:
        end = pos + len(data)
        for h, a, b in self.ranges:
            lo, hi = max(a, pos), min(b, end)
            if lo < hi:
                h.update(data[lo - pos : hi - pos])

    def finish(self, item: Checked, size: int, tail: bytes) -> None:
        if size < self.stop:
            item.error = f"record block is {size - self.start} bytes, Content-Length says {self.stop - self.start}"
            return
        if size != self.stop + 4 or tail != b"\r\n\r\n":
            item.error = "record does not end with CRLF CRLF right after its Content-Length bytes"
            return
        if self.block_claimed:
            item.block_ok = self.block is not None and self.block_label is not None and self.block.digest() == self.block_label[1]
        if self.sha is not None:
            item.payload_sha256 = self.sha.hexdigest()
        if self.payload_claimed and not self.chunked:
            h = self.payload if self.payload is not None else self.sha
            item.payload_ok = h is not None and self.payload_label is not None and h.digest() == self.payload_label[1]


def _is_chunked(http_head: bytes) -> bool:
    if b"chunked" not in http_head.lower():
        return False
    for line in http_head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"transfer-encoding" and b"chunked" in value.lower():
            return True
    return False


Plain = tuple[Any, ...]  # a record the native scanner judged itself: its tuple (see store/_scanc.c)


def iter_checked(
    fh: BinaryIO,
    *,
    start: int = 0,
    stop: int | None = None,
    keep_all: Callable[[dict[str, str]], bool] = lambda _h: False,
    max_member: int = MAX_MEMBER,
) -> Iterator[Checked | TornTail]:
    """Every member of an open file as :func:`iter_plain` reads it, each as a Checked."""
    for item in iter_plain(fh, start=start, stop=stop, keep_all=keep_all, max_member=max_member):
        yield from_native(item, keep_all) if isinstance(item, tuple) else item


def iter_plain(
    fh: BinaryIO,
    *,
    start: int = 0,
    stop: int | None = None,
    keep_all: Callable[[dict[str, str]], bool] = lambda _h: False,
    max_member: int = MAX_MEMBER,
) -> Iterator[Checked | TornTail | Plain]:
    """Every member of an open file from ``start`` (a member's offset, where
    ``fh`` is positioned) until the first that starts at or after ``stop``,
    as :func:`iter_batches` reads them, one at a time."""
    for batch in iter_batches(fh, start=start, stop=stop, keep_all=keep_all, max_member=max_member):
        yield from batch


def iter_batches(
    fh: BinaryIO,
    *,
    start: int = 0,
    stop: int | None = None,
    keep_all: Callable[[dict[str, str]], bool] = lambda _h: False,
    max_member: int = MAX_MEMBER,
    raw: bool = False,
) -> Iterator[list[Checked | TornTail | Plain]]:
    """Every member of an open file from ``start`` (a member's offset, where
    ``fh`` is positioned) until the first that starts at or after ``stop``,
    each with its digests checked; then a TornTail if the end is broken --
    in lists: all that a native scan of one read found (so a caller can take
    them in one call of its own), or one member read here.
    ``keep_all(headers)`` says which records to keep whole. A member that
    inflates beyond ``max_member`` bytes ends the scan as a TornTail (output
    is taken a bounded chunk at a time: a gzip bomb costs that much at most).

    A record the native scanner judged itself comes as its tuple (Plain:
    offset, length, sha256, the whole record, headers, block start, block
    and payload verdicts, payload SHA-256), which the audit reads without
    making a Checked of it; any other as a Checked -- or, with ``raw``, as
    the native scanner's tuple with headers None, for the caller to make a
    Checked of (:func:`from_native`) if it reads it at all."""
    buf = memoryview(b"")
    pos = 0  # next unread byte of buf
    base = start  # file offset of buf[0]
    limit = min(READ_SIZE, max_member + 1)
    bulk = native if max_member >= SMALL else None
    handed = -1  # file offset of the member the native scanner handed back
    while True:
        if pos >= len(buf):
            base += len(buf)
            buf, pos = memoryview(fh.read(READ_SIZE)), 0
            if not buf:
                return
        if bulk is not None and base + pos != handed:
            found, pos, handoff = bulk.scan(buf, pos, base, -1 if stop is None else stop, SMALL)
            if found:
                yield found if raw else [t if t[4] is not None else from_native(t, keep_all) for t in found]
            if not handoff:
                if pos < len(buf):
                    return  # at stop
                continue
            handed = base + pos  # cut by the end of buf, corrupt, or large: read below
        member_start = base + pos
        if stop is not None and member_start >= stop:
            return
        z = inflater()
        piece = buf[pos : pos + FEED_SIZE]
        try:
            data = z.decompress(piece, limit)
        except INFLATE_ERRORS as exc:
            yield [TornTail(member_start, _file_size(fh) - member_start, f"corrupt gzip data: {exc}")]
            return
        if len(data) > max_member:
            yield [TornTail(member_start, _file_size(fh) - member_start, f"record inflates beyond {max_member} bytes")]
            return
        pos += len(piece) - len(z.unused_data if z.eof else z.unconsumed_tail)
        if z.eof:  # the common case: a small record inflated in one call
            small = _whole_record(data, keep_all)
            small.offset, small.length, small.sha256 = member_start, base + pos - member_start, hashlib.sha256(data).hexdigest()
            yield [small]
            continue
        digest = hashlib.sha256(data)
        head: list[bytes] = [data]  # inflated chunks until set up, then (when kept whole) all of them
        size = len(data)
        tail = data[-4:]
        limited = len(data) == limit  # the call stopped at its output limit: more may be buffered
        item: Checked | None = None
        digests = None
        while True:
            if item is None and (z.eof or size >= HEAD):
                first = b"".join(head) if len(head) != 1 else head[0]
                head = [first]
                item, digests = _set_up(first, keep_all)
                if digests is not None:
                    digests.feed(memoryview(first), 0)
            if z.eof:
                break
            if pos >= len(buf):
                base += len(buf)
                buf, pos = memoryview(fh.read(READ_SIZE)), 0
            if not buf and not limited:
                yield [TornTail(member_start, base - member_start, "file ends inside a record")]
                return
            piece = buf[pos : pos + FEED_SIZE]
            room = min(READ_SIZE, max_member - size + 1)
            try:
                data = z.decompress(piece, room)
            except INFLATE_ERRORS as exc:
                yield [TornTail(member_start, _file_size(fh) - member_start, f"corrupt gzip data: {exc}")]
                return
            limited = len(data) == room
            if size + len(data) > max_member:
                yield [TornTail(member_start, _file_size(fh) - member_start, f"record inflates beyond {max_member} bytes")]
                return
            pos += len(piece) - len(z.unused_data if z.eof else z.unconsumed_tail)
            if data:
                digest.update(data)
                tail = data[-4:] if len(data) >= 4 else (tail + data)[-4:]
                if item is None or item.whole:
                    head.append(data)
                if digests is not None:
                    digests.feed(memoryview(data), size)
                size += len(data)
        assert item is not None
        item.offset, item.length, item.sha256 = member_start, base + pos - member_start, digest.hexdigest()
        record = b"".join(head) if len(head) != 1 else head[0]
        item.data = record if item.whole else record[:HEAD]
        if digests is not None:
            _finish(item, digests, record, size, tail)
        yield [item]


def _finish(item: Checked, digests: _Digests, record: bytes, size: int, tail: bytes) -> None:
    digests.finish(item, size, tail)
    if digests.chunked and item.error is None:
        _payload_from_whole(item, record, digests)


def from_native(t: tuple[Any, ...], keep_all: Callable[[dict[str, str]], bool]) -> Checked:
    """A record as the native scanner found it (see _scanc.c: a tuple per record)."""
    offset, length, sha, data, headers, block_start, block_ok, payload_ok, payload_sha = t
    if headers is None:  # not in the plain shape: judged here, as if read by this module alone
        item = _whole_record(data, keep_all)
        item.offset, item.length, item.sha256 = offset, length, sha
        return item
    whole = keep_all(headers)
    return Checked(offset, length, sha, data if whole else data[:HEAD], whole, headers, block_start,
                   None, block_ok, payload_ok, payload_sha)


def _whole_record(data: bytes, keep_all: Callable[[dict[str, str]], bool]) -> Checked:
    """A record inflated whole in one call, its digests checked on slices of
    it -- what _Digests does for a record streamed in chunks, without the
    bookkeeping (most records are small; tests check the two agree)."""
    try:
        headers, end = parse_fields(data)
        start = end + 4
        stop = start + content_length(headers)
    except ValueError as exc:
        return Checked(0, 0, "", data[:HEAD], False, None, error=str(exc))
    whole = keep_all(headers)
    item = Checked(0, 0, "", data if whole else data[:HEAD], whole, headers, block_start=start)
    if len(data) < stop:
        item.error = f"record block is {len(data) - start} bytes, Content-Length says {stop - start}"
        return item
    if len(data) != stop + 4 or not data.endswith(b"\r\n\r\n"):
        item.error = "record does not end with CRLF CRLF right after its Content-Length bytes"
        return item
    view = memoryview(data)
    block = view[start:stop]
    rtype = headers.get("WARC-Type", "")
    block_digest: tuple[str, bytes] | None = None
    claim = headers.get("WARC-Block-Digest")
    if claim is not None:
        label = _label(claim)
        if label is not None:
            block_digest = (label[0], hashlib.new(label[0], block).digest())
        item.block_ok = block_digest is not None and label is not None and block_digest[1] == label[1]
    claim = headers.get("WARC-Payload-Digest")
    claimed = claim is not None and rtype not in NO_OWN_PAYLOAD
    label = _label(claim) if claim is not None and claimed else None
    if rtype in HTTP_TYPES:
        http_end = data.find(b"\r\n\r\n", start, stop)
        if http_end >= 0 and _is_chunked(data[start:http_end]):
            item.whole, item.data = True, data  # as a streamed one is kept (to dechunk it)
            try:
                payload: bytes | memoryview = ParsedRecord(headers, bytes(block)).payload()
            except ValueError as exc:
                item.error = f"chunked payload cannot be read: {exc}"
                return item
        else:
            payload = view[http_end + 4 : stop] if http_end >= 0 else view[stop:stop]
        sha = hashlib.sha256(payload).digest()
        item.payload_sha256 = sha.hex()
        if claimed:
            item.payload_ok = label is not None and (sha if label[0] == "sha256" else hashlib.new(label[0], payload).digest()) == label[1]
    elif claimed:
        same = block_digest is not None and label is not None and block_digest[0] == label[0]
        digest = block_digest[1] if same and block_digest is not None else hashlib.new(label[0], block).digest() if label else b""
        item.payload_ok = label is not None and digest == label[1]
    return item


def _set_up(first: bytes, keep_all: Callable[[dict[str, str]], bool]) -> tuple[Checked, _Digests | None]:
    """What a record is, from its first inflated bytes, and its digests' hashers."""
    try:
        headers, end = parse_fields(first)
        digests = _Digests(headers, end, first)
    except ValueError as exc:
        return Checked(0, 0, "", b"", False, None, error=str(exc)), None
    whole = digests.chunked or keep_all(headers)
    return Checked(0, 0, "", b"", whole, headers, block_start=digests.start), digests


def _payload_from_whole(item: Checked, record: bytes, digests: _Digests) -> None:
    """A chunked (or oddly long-headed) HTTP payload, from the record kept whole."""
    assert item.headers is not None
    try:
        payload = ParsedRecord(item.headers, record[digests.start : digests.stop]).payload()
    except ValueError as exc:
        item.error = f"chunked payload cannot be read: {exc}"
        return
    item.payload_sha256 = hashlib.sha256(payload).hexdigest()
    if digests.payload_claimed:
        label = digests.payload_label
        item.payload_ok = label is not None and hashlib.new(label[0], payload).digest() == label[1]


def _file_size(fh: BinaryIO) -> int:
    pos = fh.tell()
    fh.seek(0, 2)
    size = int(fh.tell())
    fh.seek(pos)
    return size

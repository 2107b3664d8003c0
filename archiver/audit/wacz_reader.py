"""Reading a stranger's WACZ safely: the zip container and its WARC records.

Every size is checked before it is trusted; the checker builds on this.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeVar, cast

from archiver.audit.problems import Findings, Problem
from archiver.audit.wacz_format import (
    MAX_DOCUMENT_BYTES,
    MAX_LINE_BYTES,
    WarcMember,
    digest_ok,
    parse_member,
)

_CHUNK = 1 << 20
INFLATE_BUDGET_BASE = 512 << 20  # bytes any package may inflate to, in all ...
INFLATE_BUDGET_RATIO = 64  # ... plus this many times its own size
CACHE_BYTES = 64 << 20  # of records kept for a second look (revisit originals, metadata)
# Problems listed for one package: a 40 KB file of 20 million junk lines was
# 20 million problems (13 GiB of memory, 2 GB of output). The rest are counted.
MAX_PROBLEMS = 10_000


@dataclass
class WaczReport(Findings):
    """What ``archiver verify --wacz`` prints: ``ok, checked, problems``."""

    checked: int = 0
    omitted: int = 0  # problems found beyond MAX_PROBLEMS, counted only

    def add(self, snapshot: str | None, kind: str, detail: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            super().add(snapshot, kind, detail)
        else:
            self.omitted += 1

    def finish(self) -> None:
        """Say how many problems were left unlisted (once, at the end)."""
        if self.omitted:
            self.problems.append(Problem(None, "more-problems", f"{self.omitted} further problems are not listed"))
            self.omitted = 0

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "checked": self.checked, "problems": self.problems_json()}


# --------------------------------------------------------------------------
# Verification: the file alone
# --------------------------------------------------------------------------


class WaczZip:
    """Read zip entries without trusting ZipFile's error handling.

    Reads each entry's bytes itself (stored or deflated) and checks the CRC
    itself, so a damaged entry is reported and still examined, which lets a
    changed WARC byte be traced to the snapshot whose record it hit.
    """

    def __init__(self, path: Path, report: WaczReport) -> None:
        self.path = path
        self.report = report
        self.fh: BinaryIO = open(path, "rb")
        # Everything inflated from this package, all entries and passes together:
        # a stranger's file may be a zip bomb, so work is bounded by its size.
        self.budget = INFLATE_BUDGET_BASE + INFLATE_BUDGET_RATIO * os.fstat(self.fh.fileno()).st_size
        self.zf = zipfile.ZipFile(self.fh)
        self.infos: dict[str, zipfile.ZipInfo] = {}
        for info in self.zf.infolist():
            if info.filename in self.infos:
                report.add(None, "zip", f"entry {info.filename} appears twice")
            self.infos[info.filename] = info
        self._crc_checked: set[str] = set()
        self._damaged: set[str] = set()

    def close(self) -> None:
        self.zf.close()
        self.fh.close()

    def _data_offset(self, info: zipfile.ZipInfo) -> int:
        self.fh.seek(info.header_offset)
        header = self.fh.read(30)
        if len(header) != 30 or header[:4] != b"PK\x03\x04":
            raise zipfile.BadZipFile(f"bad local header for {info.filename}")
        name_len, extra_len = struct.unpack("<HH", header[26:30])
        return info.header_offset + 30 + name_len + extra_len

    def chunks(self, name: str) -> Iterator[bytes]:
        """The entry's uncompressed bytes in chunks; reports a CRC mismatch once."""
        info = self.infos[name]
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise zipfile.BadZipFile(f"{name}: unsupported compression {info.compress_type}")
        start = self._data_offset(info)
        remaining = info.compress_size
        inflater = zlib.decompressobj(-zlib.MAX_WBITS) if info.compress_type == zipfile.ZIP_DEFLATED else None
        crc = 0
        pos = start
        size = 0
        pending = b""
        while remaining > 0 or pending:
            if not pending:
                self.fh.seek(pos)
                pending = self.fh.read(min(_CHUNK, remaining))
                if not pending:
                    raise zipfile.BadZipFile(f"{name} is truncated")
                pos += len(pending)
                remaining -= len(pending)
            try:
                # At most one chunk out per call: a small input never becomes a huge buffer.
                data = inflater.decompress(pending, _CHUNK) if inflater else pending
            except zlib.error as exc:
                if name not in self._damaged:  # once, however often the entry is read
                    self._damaged.add(name)
                    self.report.add(None, "zip-crc", f"{name}: compressed data is damaged: {exc}")
                return
            pending = inflater.unconsumed_tail if inflater else b""
            crc = zlib.crc32(data, crc)
            size += len(data)
            self._spend(name, len(data))
            if size > info.file_size:
                raise zipfile.BadZipFile(f"{name} inflates beyond its declared {info.file_size} bytes")
            yield data
            if inflater is not None and inflater.eof:
                break
        if inflater:
            tail = inflater.flush()
            crc = zlib.crc32(tail, crc)
            size += len(tail)
            if tail:
                yield tail
        if name not in self._crc_checked:
            self._crc_checked.add(name)
            if crc != info.CRC or size != info.file_size:
                self.report.add(None, "zip-crc", f"{name}: stored CRC-32 or size does not match its bytes")

    def _spend(self, name: str, n: int) -> None:
        self.budget -= n
        if self.budget < 0:
            raise zipfile.BadZipFile(f"{name}: the package inflates to far more than its size; refusing (zip bomb?)")

    def read(self, name: str, limit: int = MAX_DOCUMENT_BYTES) -> bytes:
        """A whole entry in memory -- only for the package's small documents."""
        if self.infos[name].file_size > limit:
            raise zipfile.BadZipFile(f"{name} is {self.infos[name].file_size} bytes, more than the {limit} allowed")
        return b"".join(self.chunks(name))

    def lines(self, name: str, max_lines: int, max_line: int = MAX_LINE_BYTES, *,
              report: Findings | None = None) -> Iterator[bytes | None]:
        """A line document's lines, one at a time (without their line ends),
        at most ``max_lines`` (a problem, told to ``report``, says where the
        rest was left unchecked): millions of lines are never one list of
        them. A line longer than ``max_line`` is None (its bytes are never
        gathered: one line of the whole document would be parsed whole)."""
        if self.infos[name].file_size > MAX_DOCUMENT_BYTES:
            raise zipfile.BadZipFile(f"{name} is {self.infos[name].file_size} bytes, "
                                     f"more than the {MAX_DOCUMENT_BYTES} allowed")
        yield from capped_lines(split_lines(self.chunks(name), max_line), name, max_lines,
                                self.report if report is None else report)

    def open_entry(self, name: str) -> BinaryIO:
        """A seekable view of an entry: the bytes in place when stored, else
        inflated into a temporary file (within the package's budget)."""
        info = self.infos[name]
        if info.compress_type == zipfile.ZIP_STORED:
            return cast(BinaryIO, _Region(self.fh, self._data_offset(info), info.compress_size))
        spool = tempfile.TemporaryFile()
        for chunk in self.chunks(name):
            spool.write(chunk)
        spool.seek(0)
        return cast(BinaryIO, spool)

    def digest(self, name: str) -> tuple[str, int]:
        h = hashlib.sha256()
        size = 0
        for chunk in self.chunks(name):
            h.update(chunk)
            size += len(chunk)
        return "sha256:" + h.hexdigest(), size

    def range_reader(self, name: str) -> Callable[[int, int], bytes]:
        """Random access into an entry; a read beyond its end gives b""."""
        entry = self.open_entry(name)
        end = entry.seek(0, 2)

        def read(offset: int, length: int) -> bytes:
            if offset < 0 or length < 0 or offset + length > end:
                return b""
            entry.seek(offset)
            return entry.read(length)

        return read


def split_lines(pieces: Iterable[bytes], max_line: int) -> Iterator[bytes | None]:
    """The lines of the bytes ``pieces`` give, without their line ends; None
    for a line longer than ``max_line`` bytes, which is not kept."""
    partial: list[bytes] = []
    size = 0
    over = False
    for chunk in pieces:
        start = 0
        while True:
            end = chunk.find(b"\n", start)
            piece = chunk[start:] if end < 0 else chunk[start:end]
            if not over:
                size += len(piece)
                if size > max_line:
                    over, partial = True, []
                else:
                    partial.append(piece)
            if end < 0:
                break
            yield None if over else b"".join(partial).rstrip(b"\r")
            partial, size, over = [], 0, False
            start = end + 1
    if over:
        yield None
    elif any(partial):
        yield b"".join(partial).rstrip(b"\r")


T = TypeVar("T")


def capped_lines(lines: Iterable[T], name: str, max_lines: int, report: Findings) -> Iterator[T]:
    """The first ``max_lines`` of ``lines``; one problem if there are more."""
    for n, line in enumerate(lines, start=1):
        if n > max_lines:
            report.add(None, "malformed", f"{name} has more than {max_lines} lines; the rest is not checked")
            return
        yield line


class _Region(io.RawIOBase):
    """A stored zip entry as a read-only, seekable file over the zip's own handle."""

    def __init__(self, fh: BinaryIO, start: int, size: int) -> None:
        self._fh, self._start, self._size, self._pos = fh, start, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def read(self, n: int = -1) -> bytes:
        n = self._size - self._pos if n is None or n < 0 else min(n, self._size - self._pos)
        if n <= 0:
            return b""
        self._fh.seek(self._start + self._pos)
        data = self._fh.read(n)
        self._pos += len(data)
        return data

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)


class WarcRecords:
    """Records of ``data.warc.gz`` found through the locations file.

    A stranger's locations may name any number of records, each up to the
    per-record bound when inflated: what is kept is bounded
    (:data:`CACHE_BYTES` of raw and as much of parsed records; the rest is
    read again when asked for), and every byte read or inflated is spent
    from the package's budget (``spend``), so the work is bounded too."""

    def __init__(self, read: Callable[[int, int], bytes] | None, where: dict[str, dict[str, Any]],
                 spend: Callable[[int], None] = lambda n: None) -> None:
        self._read = read
        self._where = where
        self._spend = spend
        self._members: dict[str, bytes | None] = {}
        self._parsed: dict[str, WarcMember | None] = {}
        self._kept = 0  # bytes held by the two caches
        self._by_snapshot: dict[tuple[str, str], list[str]] | None = None

    def _keep(self, n: int) -> bool:
        if self._kept + n > CACHE_BYTES:
            return False
        self._kept += n
        return True

    def member(self, rid: str) -> bytes | None:
        if rid in self._members:
            return self._members[rid]
        loc = self._where.get(rid)
        data = None
        if loc is not None and self._read is not None:
            try:
                offset, length = int(loc["offset"]), int(loc["length"])
                data = self._read(offset, length)
                if len(data) != length:
                    data = None
            except (KeyError, TypeError, ValueError):
                data = None
        if data is not None:
            self._spend(len(data))
        if self._keep(len(data or b"")):
            self._members[rid] = data
        return data

    def digest_ok(self, rid: str, expected: object) -> bool:
        """Does the record have the signed digest (see wacz_format.digest_ok)? Its
        inflating is spent from the budget."""
        member = self.member(rid)
        return member is not None and digest_ok(member, expected, self._spend)

    def sha256_ok(self, rid: str) -> bool | None:
        expected = (self._where.get(rid) or {}).get("sha256")
        if self.member(rid) is None or not isinstance(expected, str):
            return None
        return self.digest_ok(rid, expected)

    def parsed(self, rid: str) -> WarcMember | None:
        if rid in self._parsed:
            return self._parsed[rid]
        member = self.member(rid)
        rec = None
        if member is not None:
            with contextlib.suppress(ValueError):
                rec = parse_member(member)
                self._spend(len(rec.block))
                if rec.header("WARC-Record-ID") != rid:
                    rec = None
        if self._keep(len(rec.block) if rec is not None else 0):
            self._parsed[rid] = rec
        return rec

    def of_snapshot(self, sid: str, rtype: str) -> list[str]:
        if self._by_snapshot is None:  # one pass, not one per snapshot
            self._by_snapshot = {}
            for rid, loc in self._where.items():
                key = (str(loc.get("snapshot_id")), str(loc.get("type")))
                self._by_snapshot.setdefault(key, []).append(rid)
        return self._by_snapshot.get((sid, rtype), [])

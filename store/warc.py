"""WARC files: an append-only writer with rotation, and a reader by (file, offset).

Each writing process owns one open file (``.open`` suffix until closed), so
concurrent processes never interleave bytes. Every record is its own gzip
member, so a record can be read back from its offset alone and a torn tail
damages only the record being written. A batch of records is written with one
``write``; ``append(..., sync=True)`` then ``fsync``-s the file, which makes
every byte written before it durable too. The archive writes a capture's
exchange records without a sync and syncs once with its signed manifest,
before the index commit (docs/architecture.md, "Crash safety"); a file is
also synced before it is closed, so rotation never leaves unsynced bytes.

Longer than most modules (about 700 lines) because it is the one place that
writes and reads archiver's WARC files -- the file layout, the digest labels
and the record encoding are kept together so the writer and the reader
cannot drift apart.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import io
import logging
import os
import socket
import threading
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Iterator, Sequence

from warcio.archiveiterator import ArchiveIterator
from warcio.exceptions import ArchiveLoadFailed
from warcio.recordloader import ArcWarcRecord
from warcio.statusandheaders import StatusAndHeaders, StatusAndHeadersParser
from warcio.warcwriter import WARCWriter

from store.errors import CorruptRecordError, StoreError

log = logging.getLogger(__name__)

OPEN_SUFFIX = ".open"
WARC_VERSION = "1.1"
GZIP_LEVEL = 6
_BUILDER = WARCWriter(io.BytesIO(), gzip=False, warc_version=WARC_VERSION)


def warc_date(when: datetime) -> str:
    """WARC 1.1 date, always UTC and always with six fraction digits
    (warcio drops them on a whole second, which would make one capture's
    dates differ in form from the next one's)."""
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def sha256_label(data_digest: bytes) -> str:
    """The WARC digest label archiver writes: ``sha256:`` + lowercase hex.

    WARC 1.1 says ``digest-value = token``; base32's ``=`` padding is not a
    token character (jwarc rejects it), and warcio's checker compares an
    unpadded base32 SHA-256 as base64 and fails it. Hex is a token that
    warcio, jwarc and pywb all read. Older archives hold padded base32:
    :func:`label_bytes` reads every form.
    """
    return "sha256:" + data_digest.hex()


def _b32decode(value: str) -> bytes:
    bare = value.upper().rstrip("=")
    return base64.b32decode(bare + "=" * (-len(bare) % 8))


DIGEST_SIZES = {"sha1": 20, "sha256": 32, "sha512": 64, "md5": 16}


def label_bytes(label: str | None) -> tuple[str, bytes] | None:
    """(algorithm, raw digest) of a WARC digest label; None when unreadable.

    Reads base32 (padded as warcio writes it, or not), hex and base64 --
    the RFC 4648 encodings the WARC standard allows -- checked against the
    algorithm's digest size so one encoding cannot pass for another.
    """
    if not label or ":" not in label:
        return None
    algo, _, value = label.partition(":")
    algo = algo.strip().lower().replace("-", "")
    size = DIGEST_SIZES.get(algo)
    value = value.strip()
    if size is None or not value or len(value) > 200:
        return None
    decoders = (
        _b32decode,
        bytes.fromhex,
        lambda v: base64.b64decode(v + "=" * (-len(v) % 4), validate=True),
        lambda v: base64.urlsafe_b64decode(v + "=" * (-len(v) % 4)),
    )
    for decode in decoders:
        try:
            raw = decode(value)
        except ValueError:  # binascii.Error is a ValueError
            continue
        if len(raw) == size:
            return algo, raw
    return None


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


class WarcFileWriter:
    """Appends records to this process's current WARC file, rotating by size.

    Thread-safe: a lock serialises appends from the capture worker pool.

    Each file's warcinfo record comes first and is dated no later than any
    record in the file: records carry the time their capture *began*, which
    precedes the file when a capture runs while the file is opened. Callers
    announce a capture with :meth:`hold` so the warcinfo is dated before it;
    a batch older than the open file's warcinfo (a capture nobody announced)
    starts a new file rather than break the order.
    """

    def __init__(
        self,
        directory: Path,
        info: WarcInfo,
        *,
        prefix: str = "archiver",
        max_size: int = 1_000_000_000,
        clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
        record_id: Callable[[], str] | None = None,
        fsync: bool = True,
    ) -> None:
        self.directory = Path(directory)
        self.info = info
        self.prefix = prefix
        self.max_size = max_size
        self.clock = clock
        self.do_fsync = fsync
        self.record_id = record_id  # for the warcinfo records; warcio's random uuid4 when None
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._name: str | None = None
        self._size = 0
        self._serial = 0
        self._pid = os.getpid()
        self._closed = False
        self._dirty = False  # bytes written to the open file since its last fsync
        # Where repair must start reading each file after a crash: the regions
        # (file, start offset) of captures written but not yet committed, and
        # how far this writer wrote each file (see :meth:`watermarks`).
        self._regions: dict[str, dict[int, int]] = {}
        self._ends: dict[str, int] = {}
        self._info_date: datetime | None = None  # the open file's warcinfo date
        self._holds: list[datetime] = []  # start times of captures under way

    @contextlib.contextmanager
    def hold(self, started: datetime) -> Iterator[None]:
        """Announce a capture that began at ``started`` and will append later."""
        with self._lock:
            self._holds.append(started)
        try:
            yield
        finally:
            with self._lock:
                self._holds.remove(started)

    # -- file lifecycle -------------------------------------------------
    def _new_name(self) -> str:
        name = warc_name(self.prefix, self.clock(), self._serial, self.info.hostname, self._pid)
        self._serial += 1
        return name

    def _open(self, floor: datetime | None = None) -> None:
        make_private_dir(self.directory)
        info_date = min([self.clock(), *self._holds, *([floor] if floor else [])])
        while True:
            name = self._new_name()
            path = self.directory / (name + OPEN_SUFFIX)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
            except FileExistsError:
                continue
            break
        self._fd, self._name, self._size = fd, name, 0
        info = warcinfo_record(
            name, self.info.fields(), warc_date(info_date), self.record_id() if self.record_id else None
        )
        try:
            self._write_members([serialize_record(info)[0]], sync=False)
            _fsync_dir(self.directory)  # the new name survives a power cut (the records' fsync keeps its bytes)
        except OSError as exc:
            # A full disk: leave no empty or torn file behind, one per attempt.
            os.close(fd)
            self._fd, self._name = None, None
            with contextlib.suppress(OSError):
                path.unlink()
            raise StoreError(f"cannot start WARC {name}: {exc.strerror or exc}") from exc
        self._info_date = info_date
        log.info("opened WARC %s", name)

    def close(self) -> None:
        """Close the current file and drop its ``.open`` suffix; later appends fail.

        Appends hold the lock for their whole write, so closing waits for an
        append under way and no append can start a new file afterwards (a
        daemon abandoning captures at shutdown leaves no stray file).
        """
        with self._lock:
            self._close_locked()
            self._closed = True

    def _close_locked(self) -> None:
        if self._fd is None or self._name is None:
            return
        if self._dirty and self.do_fsync:
            os.fsync(self._fd)  # every record durable before the name says the file is complete
            self._dirty = False
        os.close(self._fd)
        src = self.directory / (self._name + OPEN_SUFFIX)
        os.replace(src, self.directory / self._name)
        _fsync_dir(self.directory)
        log.info("closed WARC %s (%d bytes)", self._name, self._size)
        self._fd, self._name = None, None

    def __enter__(self) -> "WarcFileWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing --------------------------------------------------------
    def _write_members(self, members: Sequence[bytes], sync: bool = True) -> list[tuple[int, int]]:
        assert self._fd is not None
        spans = []
        offset = self._size
        for m in members:
            spans.append((offset, len(m)))
            offset += len(m)
        data = b"".join(members)
        view = memoryview(data)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            self._dirty = True
            if sync and self.do_fsync:
                os.fsync(self._fd)
                self._dirty = False
        except OSError:
            # Take back a partial write (a full disk), so the file ends on a
            # whole record and the next append does not follow torn bytes.
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._size)
            raise
        self._size = offset
        return spans

    def append(
        self,
        records: Sequence[ArcWarcRecord],
        seal: Callable[[list[tuple[str, str]]], ArcWarcRecord] | None = None,
        *,
        sync: bool = True,
        pending: bool = False,
    ) -> list[RecordLocation]:
        """Write records contiguously to one file and say where they are.

        ``pending``: the records belong to captures not yet committed; their
        region (file, offset of the first record) holds back the file's
        watermark until :meth:`settle` is called with it.

        ``sync``: fsync before returning -- the records and everything this
        writer wrote before them are then durable. The fsync runs outside the
        writer's lock (on a duplicate of the file's descriptor), so other
        threads' appends go on meanwhile. ``sync=False`` leaves the records
        to the next synced append (or the file's close).

        ``seal`` gets the (record id, SHA-256) of each record and returns one
        more record written after them in the same write (the signed intent
        that lets ``repair`` tell this process's records from anyone else's);
        its location is not returned.
        """
        serialized, members = serialize_sealed(records, seal)
        dates = [parse_warc_date(r.rec_headers.get_header("WARC-Date") or "") for r in records]
        earliest = min((d for d in dates if d is not None), default=None)
        with self._lock:
            if self._closed:
                raise StoreError("the WARC writer is closed (shutting down); record not written")
            older = earliest is not None and self._info_date is not None and earliest < self._info_date
            if self._fd is None or self._size >= self.max_size or older:
                self._close_locked()
                self._open(earliest)
            assert self._name is not None and self._fd is not None
            try:
                spans = self._write_members(members, sync=False)
            except OSError as exc:
                raise StoreError(f"cannot write WARC {self._name}: {exc.strerror or exc}") from exc
            name = self._name
            self._ends[name] = self._size
            if pending and spans:
                starts = self._regions.setdefault(name, {})
                starts[spans[0][0]] = starts.get(spans[0][0], 0) + 1
            # A rotation meanwhile closes (and syncs) the file; the duplicate stays valid.
            fd = os.dup(self._fd) if sync and self.do_fsync else None
        if fd is not None:
            try:
                os.fsync(fd)
            except OSError as exc:
                raise StoreError(f"cannot write WARC {name}: {exc.strerror or exc}") from exc
            finally:
                os.close(fd)
        return locations_for(records, serialized, name, spans[0][0] if spans else 0)


    def settle(self, regions: Iterable[tuple[str, int]]) -> None:
        """The captures written at these regions are committed."""
        with self._lock:
            for name, start in regions:
                starts = self._regions.get(name, {})
                if starts.get(start, 0) > 1:
                    starts[start] -= 1
                else:
                    starts.pop(start, None)

    def watermarks(self, settling: Iterable[tuple[str, int]] = ()) -> dict[str, int]:
        """For each file this writer wrote: the offset before which every byte
        is accounted for once the captures at ``settling`` commit -- the
        start of the earliest capture still pending, else all it wrote.
        Stored with each commit, it bounds start-up repair to the tail a
        crash can have left (archiver/audit/settled.py)."""
        leaving: dict[tuple[str, int], int] = {}
        for region in settling:
            leaving[region] = leaving.get(region, 0) + 1
        with self._lock:
            out = {}
            for name, end in self._ends.items():
                open_starts = [start for start, n in self._regions.get(name, {}).items()
                               if n > leaving.get((name, start), 0)]
                out[name] = min(open_starts, default=end)
            return out


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


def warc_name(prefix: str, when: datetime, serial: int, hostname: str, pid: int) -> str:
    """A WARC file name unique per writer: time, serial, host and process."""
    stamp = when.astimezone(timezone.utc).strftime("%Y%m%d%H%M%S%f")
    host = "".join(c if c.isalnum() or c in "-." else "-" for c in hostname)
    return f"{prefix}-{stamp}-{serial:05d}-{host}-{pid}.warc.gz"


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


def make_private_dir(directory: Path) -> None:
    """Create ``directory`` (and parents) if missing; one this call creates is
    0700 whatever the umask. An existing one keeps the mode its owner chose."""
    directory = Path(directory)
    if directory.is_dir():
        return
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(directory, 0o700)


def hold_dir(directory: Path) -> int:
    """Create ``directory`` if missing and hold it with a shared ``flock``:
    the archive is in use. Returns the fd; closing it lets go.

    Whoever removes an (empty) archive takes the lock exclusively first, so
    it never removes one another process has open. A directory removed
    between creating and locking it is created again.
    """
    import fcntl

    while True:
        make_private_dir(directory)
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        fcntl.flock(fd, fcntl.LOCK_SH)
        try:
            if os.stat(directory).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- reading --------------------------------------------------------------
def resolve(directory: Path, name: str) -> Path:
    """The path of a WARC by its final name, whether or not it is still open."""
    path = Path(directory) / name
    if path.exists():
        return path
    open_path = path.with_name(name + OPEN_SUFFIX)
    if open_path.exists():
        return open_path
    raise StoreError(f"WARC file {name} is missing from {directory}")


def final_name(path: Path) -> str:
    name = Path(path).name
    return name[: -len(OPEN_SUFFIX)] if name.endswith(OPEN_SUFFIX) else name


def list_warcs(directory: Path) -> list[Path]:
    directory = Path(directory)
    if not directory.exists():
        return []
    return sorted(
        p for p in directory.iterdir() if p.name.endswith(".warc.gz") or p.name.endswith(".warc.gz" + OPEN_SUFFIX)
    )


@dataclass
class StoredRecord:
    """A record read back: its headers, HTTP headers and the raw block bytes."""

    rec_headers: StatusAndHeaders
    http_headers: StatusAndHeaders | None
    raw_payload: bytes  # payload as stored (after HTTP headers; transfer-encoding intact)
    content: bytes  # payload with transfer- and content-encoding removed

    @property
    def type(self) -> str:
        return str(self.rec_headers.get_header("WARC-Type"))

    def header(self, name: str) -> str | None:
        value = self.rec_headers.get_header(name)
        return None if value is None else str(value)


def read_member(directory: Path, name: str, offset: int, length: int) -> bytes:
    """The exact stored bytes of one record (its gzip member)."""
    path = resolve(directory, name)
    with open(path, "rb") as fh:
        fh.seek(offset)
        data = fh.read(length)
    if len(data) != length:
        raise CorruptRecordError(f"{name}@{offset}: file is shorter than the indexed record")
    return data


def read_record(directory: Path, name: str, offset: int) -> StoredRecord:
    """Read the record at ``offset`` of WARC ``name``."""
    path = resolve(directory, name)
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            return parse_stored_record(fh, name, offset)
    except OSError as exc:
        raise CorruptRecordError(f"{name}@{offset}: unreadable WARC record: {exc}") from exc


def parse_stored_record(stream: BinaryIO, name: str, offset: int) -> StoredRecord:
    """The first record of ``stream`` (positioned at ``offset`` of ``name``)."""
    try:
        for record in ArchiveIterator(stream):
            raw = record.raw_stream.read()
            return StoredRecord(record.rec_headers, record.http_headers, raw, _decode_payload(record, raw))
    except (ArchiveLoadFailed, OSError, EOFError, zlib.error, ValueError) as exc:
        raise CorruptRecordError(f"{name}@{offset}: unreadable WARC record: {exc}") from exc
    raise CorruptRecordError(f"{name}@{offset}: no WARC record at this offset")


class LocalWarcStore:
    """The WARC files of one archive in a local directory (the embedded mode)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.where = str(self.directory)

    def writer(self, info: WarcInfo, **options: Any) -> WarcFileWriter:
        return WarcFileWriter(self.directory, info, **options)

    def read_member(self, name: str, offset: int, length: int) -> bytes:
        return read_member(self.directory, name, offset, length)

    def read_record(self, name: str, offset: int, length: int | None = None) -> StoredRecord:
        return read_record(self.directory, name, offset)

    def names(self) -> list[str]:
        return [final_name(p) for p in list_warcs(self.directory)]

    def sizes(self, names: Iterable[str] | None = None) -> dict[str, int]:
        """Sizes of closed files (all, or these names; missing ones left out)."""
        wanted = [p.name for p in list_warcs(self.directory) if not p.name.endswith(OPEN_SUFFIX)] if names is None else names
        out = {}
        for name in wanted:
            try:
                out[name] = (self.directory / name).stat().st_size
            except OSError:
                continue
        return out

    @contextlib.contextmanager
    def local_files(self, skip: Iterable[str] = ()) -> Iterator[list[Path]]:
        """The files themselves (``.open`` ones included): what the audit scans.
        ``skip`` is for stores that must fetch: local files cost nothing."""
        yield list_warcs(self.directory)

    def exists(self) -> bool:
        return bool(list_warcs(self.directory))


def _decode_payload(record: ArcWarcRecord, raw: bytes) -> bytes:
    headers = record.http_headers
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
    with open(path, "rb") as fh:
        it = ArchiveIterator(fh)
        try:
            for record in it:
                record.raw_stream.read()
                offset = it.get_record_offset()
                yield offset, 0, record
        except (ArchiveLoadFailed, EOFError, zlib.error, ValueError) as exc:
            raise CorruptRecordError(f"{path.name}: torn or unreadable record: {exc}") from exc

"""The WARC writer: one append-only file per process, rotated by size.

Each writing process owns one open file (``.open`` suffix until closed), so
concurrent processes never interleave bytes. Every record is its own gzip
member, so a record can be read back from its offset alone and a torn tail
damages only the record being written. A batch of records is written with one
``write``; ``append(..., sync=True)`` then ``fsync``-s the file, which makes
every byte written before it durable too. The archive writes a capture's
exchange records without a sync and syncs once with its signed manifest,
before the index commit (docs/architecture.md, "Crash safety"); a file is
also synced before it is closed, so rotation never leaves unsynced bytes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

from store.errors import StoreError
from store.warcfiles import OPEN_SUFFIX, fsync_dir, make_private_dir, warc_name
from store.warcrecord import (
    RecordLocation,
    WarcInfo,
    WarcRecord,
    locations_for,
    parse_warc_date,
    serialize_record,
    serialize_sealed,
    warc_date,
    warcinfo_record,
)

log = logging.getLogger(__name__)


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
        gzip_mode: str = "fast",
    ) -> None:
        self.directory = Path(directory)
        self.info = info
        self.prefix = prefix
        self.max_size = max_size
        self.clock = clock
        self.do_fsync = fsync
        self.gzip_mode = gzip_mode  # store.warcrecord.GZIP_MODES
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
        self._syncer: ThreadPoolExecutor | None = None  # runs start_sync's fsyncs

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
            self._write_members([serialize_record(info, self.gzip_mode)[0]], sync=False)
            fsync_dir(self.directory)  # the new name survives a power cut (the records' fsync keeps its bytes)
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
            syncer, self._syncer = self._syncer, None
        if syncer is not None:
            syncer.shutdown()

    def _close_locked(self) -> None:
        if self._fd is None or self._name is None:
            return
        if self._dirty and self.do_fsync:
            os.fsync(self._fd)  # every record durable before the name says the file is complete
            self._dirty = False
        os.close(self._fd)
        src = self.directory / (self._name + OPEN_SUFFIX)
        os.replace(src, self.directory / self._name)
        fsync_dir(self.directory)
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
        records: Sequence[WarcRecord],
        seal: Callable[[list[tuple[str, str]]], WarcRecord] | None = None,
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
        serialized, members = serialize_sealed(records, seal, self.gzip_mode)
        dates = [parse_warc_date(r.header("WARC-Date") or "") for r in records]
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

    def start_sync(self) -> Callable[[], None]:
        """Start making every byte written so far durable, in another thread;
        the returned ``wait()`` returns once it is (StoreError when the fsync
        failed) and must be called once. Why: the caller's index work runs
        meanwhile instead of after the fsync (archiver/committing.py); the
        fsync releases the GIL."""
        with self._lock:
            if self._fd is None or not self.do_fsync:
                return lambda: None
            fd, name = os.dup(self._fd), self._name
            if self._syncer is None:
                self._syncer = ThreadPoolExecutor(1, thread_name_prefix="warc-fsync")
            future = self._syncer.submit(os.fsync, fd)

        def wait() -> None:
            try:
                future.result()
            except OSError as exc:
                raise StoreError(f"cannot write WARC {name}: {exc.strerror or exc}") from exc
            finally:
                os.close(fd)

        return wait


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

"""WARC storage in an S3-compatible object store (AWS S3, MinIO, SeaweedFS,
Ceph RGW): the shared mode's counterpart of a local WARC directory.

Durability: object stores cannot append, and a snapshot must count as
committed only once its records are durable in the shared store. So every
``append`` is its own small WARC object (a warcinfo record, then the
records, each its own gzip member, exactly as in a local file), uploaded with
one PUT that returns only when the store has it. The archive appends a
capture's exchange records before its index transaction and the signed
metadata record inside it, before COMMIT; so a commit can only name objects
that are already stored, and a crash leaves at most objects without a commit
-- what ``verify`` reports and ``repair`` re-indexes, as for a local file.
A PUT is atomic: there is no torn tail and no ``.open`` state on this store.

Readers fetch one record with a ranged GET; the audit downloads objects in
parallel into a private temporary directory and scans them like local files.
Credentials come from boto3's usual chain (environment, shared files,
instance roles); they are never logged or written into the archive.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import shutil
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence
from urllib.parse import urlparse

from store.errors import CorruptRecordError, StoreError
from store.s3bounded import AnswerTooLarge, bound_answers
from store.s3deadline import DEFAULT_DEADLINE, Deadline, watch_connections
from store.warc import (
    RecordLocation,
    Seal,
    StoredRecord,
    WarcInfo,
    WarcRecord,
    locations_for,
    parse_stored_record,
    parse_warc_date,
    serialize_record,
    serialize_sealed,
    warc_date,
    warc_name,
    warcinfo_record,
)
from store.warcfiles import check_name
from store.warcreader import MAX_RECORD_BYTES

log = logging.getLogger(__name__)

DOWNLOAD_WORKERS = 8
_READ_PIECE = 1 << 20
# Pages of one listing (up to 1,000 objects each): more is a store that lists
# without end, not an archive (compaction keeps one to a few thousand objects).
MAX_LISTED_PAGES = 100_000
# A record whose stored length the index does not give: no gzip member of a
# record archiver writes (inflated at most MAX_RECORD_BYTES) is longer.
_UNKNOWN_LENGTH = MAX_RECORD_BYTES + (1 << 20)
# A whole object's download or upload has, beyond s3.deadline
# (DEFAULT_DEADLINE), one more second for every MIN_RATE bytes of it.
MIN_RATE = 1 << 20


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` -> (bucket, prefix without slashes at the ends)."""
    parts = urlparse(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise StoreError(f"WARC storage {url!r} is not an s3://bucket/prefix URL")
    return parts.netloc, parts.path.strip("/")


def make_client(endpoint_url: str = "", region: str = "", *, connect_timeout: float = 10, read_timeout: float = 60) -> Any:
    """A boto3 S3 client with timeouts and bounded retries, whose requests keep
    the total deadline an S3WarcStore sets (store.s3deadline) and whose
    buffered answers are capped (store.s3bounded); credentials from boto3's chain."""
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"max_attempts": 3, "mode": "standard"},
        s3={"addressing_style": "path"},
        max_pool_connections=32,
    )
    client = boto3.session.Session().client(
        "s3", endpoint_url=endpoint_url or None, region_name=region or None, config=config
    )
    watch_connections(client)
    bound_answers(client)
    return client


def _s3_errors() -> tuple[type[BaseException], ...]:
    from botocore.exceptions import BotoCoreError, ClientError

    return (BotoCoreError, ClientError, OSError, AnswerTooLarge)


class S3WarcStore:
    """The WARC files of one archive: objects under ``s3://bucket/prefix/``."""

    def __init__(self, url: str, client: Any, *, deadline: float = DEFAULT_DEADLINE) -> None:
        self.url = url
        self.bucket, self.prefix = parse_s3_url(url)
        self.client = client
        self.deadline = deadline
        self.where = f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    @contextlib.contextmanager
    def _within(self, failure: str, seconds: float = 0) -> Iterator[None]:
        """One request (with botocore's retries and the reading of its body)
        within the deadline; past it, a StoreError ``failure: ...`` however
        the cut-off request ended."""
        deadline = Deadline(seconds or self.deadline)
        try:
            with deadline:
                yield
        except Exception as exc:
            if deadline.expired:
                raise StoreError(f"{failure}: no whole answer within the {deadline.seconds:g} s deadline "
                                 "(s3.deadline)") from exc
            raise
        if deadline.expired:
            raise StoreError(f"{failure}: no whole answer within the {deadline.seconds:g} s deadline (s3.deadline)")

    def key(self, name: str) -> str:
        check_name(name)  # a name from the index, never a path out of the prefix
        return f"{self.prefix}/{name}" if self.prefix else name

    # -- writing ---------------------------------------------------------------
    def writer(self, info: WarcInfo, **options: Any) -> "ObjectWarcWriter":
        return ObjectWarcWriter(self, info, **options)

    def put(self, name: str, data: bytes) -> None:
        """Store one whole object; returns only once the store has acknowledged it."""
        failure = f"cannot store WARC object {self.where}/{name}"
        with self._within(failure, self.deadline + len(data) / MIN_RATE):
            try:
                self.client.put_object(Bucket=self.bucket, Key=self.key(name), Body=data, ContentType="application/warc")
            except _s3_errors() as exc:
                raise StoreError(f"{failure}: {_brief(exc)}") from exc

    # -- reading ---------------------------------------------------------------
    def _get(self, name: str, offset: int, length: int) -> bytes:
        """Bytes ``offset`` .. ``offset + length`` of an object (fewer at its end).
        Never more: a store that answers the range with a longer body (a
        hostile or broken one) is cut off after ``length`` bytes, not buffered."""
        data = bytearray()
        sent = self._read_object(name, (offset, length), data.extend)
        if sent > length:
            raise CorruptRecordError(f"{name}@{offset}: the store sent more than the {length} bytes asked for")
        return bytes(data)

    def _read_object(self, name: str, span: tuple[int, int], sink: Callable[[bytes], object],
                     seconds: float = 0) -> int:
        """Bytes ``span`` = (offset, length) of object ``name`` into ``sink``, in
        one ranged GET within the deadline (``seconds``: another than
        ``s3.deadline``; ``length`` 0: an object listed as empty). The body is
        streamed and read to one byte past ``length`` at most: the count
        returned tells the caller whether the store sent more than asked."""
        offset, length = span
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key(name)}
        if length:
            args["Range"] = f"bytes={offset}-{offset + length - 1}"
        failure = f"cannot read WARC object {self.where}/{name}"
        with self._within(failure, seconds):
            try:
                return _read_at_most(self.client.get_object(**args)["Body"], length, sink)
            except _s3_errors() as exc:
                if _not_found(exc):
                    raise StoreError(f"WARC file {name} is missing from {self.where}") from exc
                raise StoreError(f"{failure}: {_brief(exc)}") from exc

    def read_member(self, name: str, offset: int, length: int) -> bytes:
        """The exact stored bytes of one record, by one ranged GET."""
        data = self._get(name, offset, length)
        if len(data) != length:
            raise CorruptRecordError(f"{name}@{offset}: object is shorter than the indexed record")
        return data

    def read_record(self, name: str, offset: int, length: int | None = None) -> StoredRecord:
        """The record at ``offset``: the indexed member when its length is known,
        else what one record can take of the rest of the object."""
        data = self._get(name, offset, length or _UNKNOWN_LENGTH)
        return parse_stored_record(io.BytesIO(data), name, offset)

    def names(self) -> list[str]:
        """Every WARC object's name (without the prefix), sorted."""
        return sorted(self._listing())

    def _listing(self) -> dict[str, int]:
        """Name -> size of every WARC object, page by page. The store's word on
        when the listing ends is not trusted: a continuation token seen before
        (botocore stops only on the same one twice in a row, so A, B, A, B ...
        listed forever) or more than MAX_LISTED_PAGES pages end it with an error."""
        out: dict[str, int] = {}
        start = f"{self.prefix}/" if self.prefix else ""
        seen: set[bytes] = set()
        args: dict[str, Any] = {"Bucket": self.bucket, "Prefix": start}
        failure = f"cannot list WARC objects in {self.where}"
        try:
            for _ in range(MAX_LISTED_PAGES):
                with self._within(failure):
                    page = self.client.list_objects_v2(**args)
                for obj in page.get("Contents", []):
                    name = str(obj["Key"])[len(start):]
                    if obj["Key"].startswith(start) and "/" not in name and name.endswith(".warc.gz"):
                        out[name] = int(obj["Size"])
                token = page.get("NextContinuationToken")
                if not page.get("IsTruncated") or not token:
                    return out
                digest = hashlib.sha256(str(token).encode()).digest()
                if digest in seen:
                    raise StoreError(f"cannot list WARC objects in {self.where}: the store's listing goes round "
                                     "in a circle (a continuation token came back)")
                seen.add(digest)
                args["ContinuationToken"] = token
        except _s3_errors() as exc:
            raise StoreError(f"cannot list WARC objects in {self.where}: {_brief(exc)}") from exc
        raise StoreError(f"cannot list WARC objects in {self.where}: the store's listing has more than "
                         f"{MAX_LISTED_PAGES} pages")

    def download(self, name: str, path: Path, size: int) -> None:
        """Object ``name`` into the new file ``path``: at most ``size`` bytes,
        the size the store listed. A store that sends more -- a hostile or
        broken one, an endless body -- is cut off with an error instead of
        filling the disk (boto3's download_file wrote whatever came); the
        object's WARC records are then checked as any file's are."""
        with open(path, "xb") as out:
            written = self._read_object(name, (0, size), out.write, self.deadline + size / MIN_RATE)
        if written > size:
            raise StoreError(f"cannot read WARC object {self.where}/{name}: the store sent more than the {size} "
                             "bytes it lists for it")

    def _fetch(self, name: str, path: Path, size: int) -> bool:
        """Download; False when the object no longer exists."""
        try:
            self.download(name, path, size)
        except StoreError as exc:
            if isinstance(exc.__cause__, BaseException) and _not_found(exc.__cause__):
                return False
            raise
        return True

    def delete(self, name: str) -> None:
        """Remove one object (compaction's copied sources); a missing one is fine."""
        failure = f"cannot delete WARC object {self.where}/{name}"
        with self._within(failure):
            try:
                self.client.delete_object(Bucket=self.bucket, Key=self.key(name))
            except _s3_errors() as exc:
                if not _not_found(exc):
                    raise StoreError(f"{failure}: {_brief(exc)}") from exc

    def upload(self, path: Path, name: str) -> None:
        """Store a local WARC file as object ``name`` (multipart when large),
        then check the stored size: an upload is done only when it is whole."""
        size = path.stat().st_size
        failure = f"cannot store WARC object {self.where}/{name}"
        try:
            # boto3's transfer threads send the parts: their sockets keep botocore's
            # timeouts only (the PUT of a capture, put(), keeps the deadline)
            self.client.upload_file(str(path), self.bucket, self.key(name), ExtraArgs={"ContentType": "application/warc"})
            with self._within(failure):
                stored = self.client.head_object(Bucket=self.bucket, Key=self.key(name))["ContentLength"]
        except _s3_errors() as exc:
            raise StoreError(f"{failure}: {_brief(exc)}") from exc
        if stored != size:
            raise StoreError(f"WARC object {self.where}/{name} has {stored} bytes, the file {size}")

    def sizes(self, names: Iterable[str] | None = None) -> dict[str, int]:
        """Sizes of objects (all, or these names; missing ones left out): a
        HEAD per name for a few, one listing for many."""
        wanted = None if names is None else list(names)
        if wanted is not None and len(wanted) <= 100:
            out = {}
            for name in wanted:
                failure = f"cannot read WARC object {self.where}/{name}"
                with self._within(failure):
                    try:
                        out[name] = int(self.client.head_object(Bucket=self.bucket, Key=self.key(name))["ContentLength"])
                    except _s3_errors() as exc:
                        if not _not_found(exc):
                            raise StoreError(f"{failure}: {_brief(exc)}") from exc
            return out
        listed = self._listing()
        return listed if wanted is None else {n: listed[n] for n in wanted if n in listed}

    @contextlib.contextmanager
    def local_files(self, skip: Iterable[str] = ()) -> Iterator[list[Path]]:
        """Every object as a local file (downloaded in parallel into a private
        temporary directory, removed afterwards): what the audit scans. Names
        in ``skip`` (settled files a repair passes over) are listed but not
        fetched: their paths do not exist."""
        tmp = Path(tempfile.mkdtemp(prefix="archiver-scan-"))
        try:
            listed = self._listing()
            names = sorted(listed)
            skipped = set(skip)
            fetch = [n for n in names if n not in skipped]
            with ThreadPoolExecutor(max_workers=DOWNLOAD_WORKERS, thread_name_prefix="s3-get") as pool:
                fetched = list(pool.map(self._fetch, fetch, [tmp / n for n in fetch], [listed[n] for n in fetch]))
            # An object compaction removed after the listing is gone, not an error:
            # its records are in the compacted object, listed or scanned next time.
            gone = {n for n, ok in zip(fetch, fetched) if not ok}
            yield [tmp / n for n in names if n not in gone]
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def irregular(self) -> list[str]:
        return []  # objects are bytes: no FIFO or device can stand in for one

    def exists(self) -> bool:
        failure = f"cannot list WARC objects in {self.where}"
        with self._within(failure):
            try:
                resp = self.client.list_objects_v2(Bucket=self.bucket, Prefix=self.key(""), MaxKeys=1)
            except _s3_errors() as exc:
                raise StoreError(f"{failure}: {_brief(exc)}") from exc
        return bool(resp.get("Contents"))


class ObjectWarcWriter:
    """Each ``append`` becomes one WARC object (warcinfo + the records)."""

    def __init__(
        self,
        store: S3WarcStore,
        info: WarcInfo,
        *,
        prefix: str = "archiver",
        max_size: int = 0,  # unused: one object per append
        clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
        record_id: Callable[[], str] | None = None,
        gzip_mode: str = "fast",
    ) -> None:
        self.store = store
        self.gzip_mode = gzip_mode  # store.warcrecord.GZIP_MODES
        self.info = info
        self.prefix = prefix
        self.clock = clock
        self.record_id = record_id
        self._lock = threading.Lock()
        self._serial = 0
        self._closed = False
        self._pid = os.getpid()

    def append(self, records: Sequence[WarcRecord], seal: Seal | None = None, *, sync: bool = True,
               pending: bool = False) -> list[RecordLocation]:
        """Upload the records (and ``seal``'s record over their digests, as
        :meth:`store.warc.WarcFileWriter.append` does) as one new object, and
        say where each record is. Every PUT is durable when it returns, so
        ``sync`` changes nothing here."""
        with self._lock:
            if self._closed:
                raise StoreError("the WARC writer is closed (shutting down); record not written")
            serial, self._serial = self._serial, self._serial + 1
        now = self.clock()
        name = warc_name(self.prefix, now, serial, self.info.hostname, self._pid)
        # The warcinfo record comes first in time too: dated no later than the records.
        dates = [parse_warc_date(r.header("WARC-Date") or "") for r in records]
        info_date = min([now, *(d for d in dates if d is not None)])
        head = warcinfo_record(name, self.info.fields(), warc_date(info_date), self.record_id() if self.record_id else None)
        first = serialize_record(head, self.gzip_mode)[0]
        serialized, members = serialize_sealed(records, seal, self.gzip_mode)
        self.store.put(name, first + b"".join(members))
        log.info("stored WARC object %s (%d records)", name, len(records))
        return locations_for(records, serialized, name, len(first))

    def start_sync(self) -> Callable[[], None]:
        """Nothing to wait for: every PUT was durable when it returned."""
        return lambda: None

    def settle(self, regions: Iterable[tuple[str, int]]) -> None:
        """Nothing to track: an object is never appended to, so repair reads it whole."""

    def watermarks(self, settling: Iterable[tuple[str, int]] = ()) -> dict[str, int]:
        return {}

    @contextlib.contextmanager
    def hold(self, started: datetime) -> Iterator[None]:
        """Nothing to hold: each object's warcinfo is dated by its own records."""
        yield

    def close(self) -> None:
        with self._lock:
            self._closed = True


def _read_at_most(body: Any, limit: int, write: Callable[[bytes], object]) -> int:
    """Pass an answer's body to ``write`` in pieces, up to ``limit`` bytes and
    one more -- enough to tell that the store sent more than it should, never
    the rest of it -- then close it; returns the bytes passed on."""
    done = 0
    try:
        while done <= limit:
            piece = body.read(min(_READ_PIECE, limit + 1 - done))
            if not piece:
                break
            write(piece)
            done += len(piece)
    finally:
        body.close()
    return done


def _not_found(exc: BaseException) -> bool:
    code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", "")) if hasattr(exc, "response") else ""
    return code in ("NoSuchKey", "404", "NotFound")


def _brief(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__

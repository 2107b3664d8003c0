"""The storage seams: what an index and a WARC store must offer, and the
factories that pick an implementation from a setting.

Two configurations exist:

* embedded (the default): ``index.sqlite3`` and ``warcs/`` in the data
  directory -- :class:`store.index.Index` and :class:`store.warc.LocalWarcStore`;
* shared: a ``postgresql://`` index (:class:`store.pg.PgIndex`) and an
  ``s3://bucket/prefix`` WARC store (:class:`store.objects.S3WarcStore`), which
  several workers on several machines use at once.

The two halves are chosen independently (PostgreSQL with local WARCs is a
valid single-machine setup). The PostgreSQL and S3 client libraries are
imported only when configured, so the embedded mode never needs them.
"""

from __future__ import annotations

import contextlib
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Protocol, Sequence

from store.errors import StoreError
from store.index import Index, RecordRow, SnapshotRow
from store.s3deadline import DEFAULT_DEADLINE
from store.warc import LocalWarcStore, RecordLocation, Seal, StoredRecord, WarcInfo, WarcRecord


class IndexStore(Protocol):
    """What the archive asks of its index (the methods of :class:`Index`)."""

    where: str

    def write(self) -> contextlib.AbstractContextManager[sqlite3.Connection]: ...
    def read(self) -> contextlib.AbstractContextManager[sqlite3.Connection]: ...
    def query(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]: ...
    def execute(self, sql: str, args: tuple[Any, ...] = ()) -> None: ...
    def close(self) -> None: ...
    def last_snapshot(self, url: str, conn: sqlite3.Connection | None = None) -> SnapshotRow | None: ...
    def history(self, url: str) -> list[SnapshotRow]: ...
    def snapshot(self, snapshot_id: str) -> SnapshotRow | None: ...
    def all_snapshots(self) -> list[SnapshotRow]: ...
    def insert_snapshot(self, conn: sqlite3.Connection, row: SnapshotRow, records: list[RecordRow]) -> None: ...
    def records_for(self, snapshot_id: str) -> list[RecordRow]: ...
    def record_ids(self) -> set[str]: ...
    def meta(self, key: str) -> str | None: ...


class WarcWriter(Protocol):
    def append(self, records: Sequence[WarcRecord], seal: Seal | None = None, *, sync: bool = True,
               pending: bool = False) -> list[RecordLocation]: ...
    def start_sync(self) -> Callable[[], None]: ...
    def settle(self, regions: Iterable[tuple[str, int]]) -> None: ...
    def watermarks(self, settling: Iterable[tuple[str, int]] = ()) -> dict[str, int]: ...
    def hold(self, started: datetime) -> contextlib.AbstractContextManager[None]: ...
    def close(self) -> None: ...


class WarcStore(Protocol):
    """Where the WARC files live: a local directory or an object store prefix."""

    where: str

    def writer(self, info: WarcInfo, **options: Any) -> WarcWriter: ...
    def read_member(self, name: str, offset: int, length: int) -> bytes: ...
    def read_record(self, name: str, offset: int, length: int | None = None) -> StoredRecord: ...
    def names(self) -> list[str]: ...
    def sizes(self, names: Iterable[str] | None = None) -> dict[str, int]: ...
    def local_files(self, skip: Iterable[str] = ()) -> contextlib.AbstractContextManager[list[Path]]: ...
    def exists(self) -> bool: ...
    def irregular(self) -> list[str]: ...  # WARC names that are no regular file (never read)


@dataclass(frozen=True)
class StorageConfig:
    """Where an archive's index and WARC files are (from the settings)."""

    data_dir: Path
    index: str = ""  # "" = SQLite in data_dir; or a postgresql:// URL
    warcs: str = ""  # "" = data_dir/warcs; or s3://bucket/prefix
    s3_endpoint_url: str = ""
    s3_region: str = ""
    s3_deadline: float = DEFAULT_DEADLINE  # seconds one object-store request may take in all
    pool_size: int = 10

    @property
    def shared_index(self) -> bool:
        return self.index.startswith(("postgresql://", "postgres://"))

    @property
    def shared_warcs(self) -> bool:
        return self.warcs.startswith("s3://")


def _check(config: StorageConfig) -> None:
    if config.index and not config.shared_index:
        raise StoreError(f"archive.index must be empty (SQLite) or a postgresql:// URL, not {config.index.split(':')[0]!r}...")
    if config.warcs and not config.shared_warcs:
        raise StoreError("archive.warcs must be empty (local directory) or an s3://bucket/prefix URL")


def open_index(config: StorageConfig) -> Index:
    _check(config)
    if config.shared_index:
        from store.pg import PgIndex

        return PgIndex(config.index, max_connections=config.pool_size)
    return Index(config.data_dir / "index.sqlite3")


def open_warcs(config: StorageConfig) -> LocalWarcStore | Any:
    _check(config)
    if config.shared_warcs:
        from store.objects import S3WarcStore, make_client

        return S3WarcStore(config.warcs, make_client(config.s3_endpoint_url, config.s3_region),
                           deadline=config.s3_deadline)
    return LocalWarcStore(config.data_dir / "warcs")


def index_exists(config: StorageConfig) -> bool:
    """Is there an archive index already (without creating one)?"""
    _check(config)
    if config.shared_index:
        from store.pg import database_exists

        return database_exists(config.index)
    return (config.data_dir / "index.sqlite3").exists()


@contextlib.contextmanager
def opened(config: StorageConfig) -> Iterator[tuple[Index, Any]]:
    """The index and WARC store of one archive, closed afterwards."""
    index = open_index(config)
    try:
        yield index, open_warcs(config)
    finally:
        index.close()

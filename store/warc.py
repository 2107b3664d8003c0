"""WARC files: the local store, and the one import path for the WARC layer.

The layer is split by concern, as warcio's own layout is:
``store.warcdigest`` (digest labels), ``store.warcrecord`` (dates, warcinfo,
one record per gzip member, record locations), ``store.warcfiles`` (names,
the ``.open`` suffix, listing, private directories), ``store.warcwriter``
(the append-only writer with rotation) and ``store.warcreader`` (reading by
(file, offset), payload decoding). Their public names are re-exported here,
so ``from store.warc import ...`` keeps working for every caller.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterable, Iterator

from store.warcdigest import DIGEST_SIZES, label_bytes, sha256_label
from store.warcfiles import (
    OPEN_SUFFIX,
    final_name,
    fsync_dir,
    hold_dir,
    irregular_warcs,
    list_warcs,
    make_private_dir,
    resolve,
    warc_name,
)
from store.warcreader import (
    StoredRecord,
    dechunk,
    decode_content,
    iter_records,
    parse_stored_record,
    read_member,
    read_record,
)
from store.warcrecord import (
    GZIP_MODES,
    WARC_VERSION,
    RecordLocation,
    Seal,
    WarcInfo,
    WarcRecord,
    gzip_member,
    locations_for,
    new_record,
    parse_warc_date,
    serialize_record,
    serialize_sealed,
    warc_date,
    warcinfo_record,
)
from store.warcwriter import WarcFileWriter

_fsync_dir = fsync_dir  # the name callers used before the split

__all__ = [
    "DIGEST_SIZES", "GZIP_MODES", "OPEN_SUFFIX", "WARC_VERSION", "LocalWarcStore", "RecordLocation", "Seal",
    "StoredRecord", "WarcFileWriter", "WarcInfo", "WarcRecord", "dechunk", "decode_content", "final_name", "fsync_dir",
    "gzip_member", "hold_dir", "iter_records", "label_bytes", "list_warcs", "locations_for", "make_private_dir", "new_record",
    "parse_stored_record", "parse_warc_date", "read_member", "read_record", "resolve", "serialize_record",
    "serialize_sealed", "sha256_label", "warc_date", "warc_name", "warcinfo_record",
]


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

    def irregular(self) -> list[str]:
        return irregular_warcs(self.directory)


"""WACZ 1.1.1 export, signed, and its verification from the file alone.

Why this shape: a WACZ is what an auditor opens in ReplayWeb.page or hands to
someone else, so it has to stand on its own. It carries

* ``archive/data.warc.gz``: the exact stored gzip members of every record of
  the exported URLs (the bytes the signed manifests hash), after a warcinfo
  record of the export's own;
* ``indexes/index.cdxj`` and ``pages/pages.jsonl`` for replay;
* ``provenance/``: each snapshot's signed manifest, the latest signed log
  checkpoint, an inclusion proof per snapshot against it, where each record
  sits in ``data.warc.gz``, and the archive's *public* keyring;
* ``datapackage.json`` with a SHA-256 per file, and ``datapackage-digest.json``
  signed in the wacz-auth anonymous mode (ECDSA P-384, as ReplayWeb.page checks).

:func:`verify_wacz` checks all of it with nothing but the file: the package
signature proves the package is unchanged since export; the Ed25519
manifests, checkpoint and proofs prove the records are what the archive
signed at capture time, whoever exported them.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import gzip
import hashlib
import io
import json
import logging
import os
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, BinaryIO

from cryptography.hazmat.primitives import serialization

from archiver import __version__
from archiver.canonical import canonical_json, sha256_hex
from archiver.errors import (
    CorruptRecordError,
    StoreError,
    UsageError,
    VerificationError,
)
from archiver.provenance.ledger import (
    MerkleLog,
    NoteVerifier,
    hash_leaf,
    open_checkpoint,
    verify_inclusion,
)
from archiver.provenance.notary import KEYRING_NAME
from archiver.provenance.signing import (
    ECDSA_P384,
    ED25519,
    KeyRecord,
    Keyring,
    KeyStore,
    key_id_for,
    passphrase_from_env,
    verify_wacz_signature,
)
from store.index import RecordRow, SnapshotRow
from store.warc import WarcInfo, dechunk, read_member, warc_date

__all__ = [
    "WACZ_VERSION",
    "Problem",
    "WaczReport",
    "export_wacz",
    "check_wacz",
    "verify_wacz",
]

from archiver.audit.problems import Problem

log = logging.getLogger(__name__)

WACZ_VERSION = "1.1.1"
SOFTWARE = f"archiver {__version__}"

WARC_PATH = "archive/data.warc.gz"
INDEX_PATH = "indexes/index.cdxj"
PAGES_PATH = "pages/pages.jsonl"
MANIFESTS_PATH = "provenance/manifests.jsonl"
CHECKPOINT_PATH = "provenance/checkpoint.txt"
PROOFS_PATH = "provenance/proofs.json"
LOCATIONS_PATH = "provenance/locations.json"
KEYRING_PATH = "provenance/keyring.json"
DATAPACKAGE = "datapackage.json"
DIGEST = "datapackage-digest.json"

# A snapshot's key is created or rotated in the moment it is signed, just
# after the fetch ends; a manifest may therefore predate its key's window by
# up to a capture's length. Anything older is treated as backdating.
KEY_CLOCK_SKEW = timedelta(minutes=10)

_CHUNK = 1 << 20
_INDEXED_TYPES = "response,revisit,resource"  # metadata shares the page URL: keep it out of replay


# --------------------------------------------------------------------------
# Problems (the verify contract: {snapshot, kind, detail})
# --------------------------------------------------------------------------


@dataclass
class WaczReport:
    """What ``archiver verify --wacz`` prints: ``ok, checked, problems``."""

    checked: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, snapshot: str | None, kind: str, detail: str) -> None:
        self.problems.append(Problem(snapshot, kind, detail))

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "checked": self.checked, "problems": [p.to_json() for p in self.problems]}


# --------------------------------------------------------------------------
# WARC members: parsing and digests (shared by export and verify)
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Record:
    """A WARC record parsed from one gzip member: headers (lower-case) and block."""

    headers: dict[str, str]
    block: bytes
    sha256: str  # hex SHA-256 of the uncompressed record: what manifests sign

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    @property
    def type(self) -> str:
        return self.headers.get("warc-type", "")

    def http_split(self) -> tuple[bytes, bytes] | None:
        """(HTTP head, payload) for request/response records carrying HTTP."""
        ctype = (self.header("Content-Type") or "").lower()
        if self.type not in ("response", "request") or not ctype.startswith("application/http"):
            return None
        end = self.block.find(b"\r\n\r\n")
        if end < 0:
            return self.block, b""
        return self.block[: end + 4], self.block[end + 4 :]


def _parse_member(member: bytes) -> _Record:
    """Parse one stored record; raises ValueError when it is not a whole WARC record."""
    try:
        data = gzip.decompress(member)
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"not a valid gzip member: {exc}") from exc
    end = data.find(b"\r\n\r\n")
    if end < 0 or not data.startswith(b"WARC/"):
        raise ValueError("no WARC header block")
    headers: dict[str, str] = {}
    for line in data[:end].split(b"\r\n")[1:]:
        name, sep, value = line.partition(b":")
        if sep:
            headers[name.decode("utf-8", "replace").strip().lower()] = value.decode("utf-8", "replace").strip()
    try:
        length = int(headers.get("content-length", ""))
    except ValueError as exc:
        raise ValueError("no valid Content-Length") from exc
    block = data[end + 4 : end + 4 + length]
    if len(block) != length:
        raise ValueError(f"record block is truncated ({len(block)} of {length} bytes)")
    return _Record(headers, block, hashlib.sha256(data).hexdigest())


def _digest_ok(member: bytes, expected: object) -> bool:
    """Does ``member`` have the signed record digest?

    Manifests sign the SHA-256 of the uncompressed record (it survives
    recompression); archives written before that signed the gzip member's
    bytes. Either identifies the record's content, so either is accepted.
    """
    if not isinstance(expected, str):
        return False
    if hashlib.sha256(member).hexdigest() == expected:
        return True
    try:
        return hashlib.sha256(gzip.decompress(member)).hexdigest() == expected
    except (OSError, EOFError, zlib.error):
        return False


_DIGEST_SIZES = {"sha1": 20, "sha256": 32, "sha512": 64, "md5": 16}


def _label_bytes(label: str | None) -> tuple[str, bytes] | None:
    """(algorithm, raw digest) of a WARC digest label (``sha256:BASE32`` or hex)."""
    if not label or ":" not in label:
        return None
    algo, _, value = label.partition(":")
    algo = algo.strip().lower().replace("-", "")
    size = _DIGEST_SIZES.get(algo)
    if size is None:
        return None
    value = value.strip()
    with contextlib.suppress(binascii.Error, ValueError):
        raw = base64.b32decode(value.upper() + "=" * (-len(value) % 8))
        if len(raw) == size:
            return algo, raw
    with contextlib.suppress(ValueError):
        raw = bytes.fromhex(value)
        if len(raw) == size:
            return algo, raw
    return None


def _digest_matches(label: str | None, *candidates: bytes) -> bool | None:
    """True/False when ``label`` is a digest we can check, None when it is not."""
    parsed = _label_bytes(label)
    if parsed is None:
        return None
    algo, raw = parsed
    return any(hashlib.new(algo, c).digest() == raw for c in candidates)


def _record_digest_problems(rec: _Record) -> list[tuple[str, str]]:
    """Block and payload digests of one record, as (kind, detail) pairs."""
    out: list[tuple[str, str]] = []
    block_label = rec.header("WARC-Block-Digest")
    if _digest_matches(block_label, rec.block) is False:
        out.append(("block-digest", f"{rec.type} record block does not match {block_label}"))
    if rec.type == "revisit":
        return out  # its payload digest names the original's payload
    payload_label = rec.header("WARC-Payload-Digest")
    split = rec.http_split()
    payload = split[1] if split else rec.block
    candidates = [payload]
    if split and b"chunked" in split[0].lower():
        with contextlib.suppress(ValueError):
            candidates.append(dechunk(payload))
    if _digest_matches(payload_label, *candidates) is False:
        out.append(("payload-digest", f"{rec.type} record payload does not match {payload_label}"))
    return out


def _hex_to_label(hex_digest: str) -> str:
    return "sha256:" + base64.b32encode(bytes.fromhex(hex_digest)).decode("ascii")


# --------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------


@dataclass
class _Item:
    """One record to copy: its index row and owning snapshot (bytes read when written)."""

    row: RecordRow
    snapshot_id: str | None


def _utc(dt: datetime) -> datetime:
    if dt.tzinfo is None:
        raise UsageError("the export clock must return timezone-aware datetimes")
    return dt.astimezone(timezone.utc)


def _rfc3339(dt: datetime) -> str:
    return _utc(dt).strftime("%Y-%m-%dT%H:%M:%SZ")


def _json_bytes(obj: Any, *, indent: int | None = 2) -> bytes:
    return (json.dumps(obj, indent=indent, ensure_ascii=False, sort_keys=False) + "\n").encode("utf-8")


def _load_member(archive: Any, row: RecordRow) -> bytes:
    """The stored member, refused when it no longer matches the index."""
    member = read_member(archive.warc_dir, row.warc_file, row.warc_offset, row.warc_length)
    if not _digest_ok(member, row.sha256):
        raise CorruptRecordError(
            f"{row.warc_file}@{row.warc_offset}: record {row.record_id} of snapshot {row.snapshot_id} "
            "does not match its indexed digest; run `archiver verify`"
        )
    return member


def _collect(archive: Any, urls: Sequence[str]) -> tuple[list[SnapshotRow], list[_Item]]:
    """Every snapshot of ``urls`` and every record to export, originals first.

    Only revisit records are read here (for WARC-Refers-To); the rest are
    streamed one by one when the WARC is written.
    """
    snapshots: list[SnapshotRow] = []
    for url in dict.fromkeys(urls):
        snapshots.extend(archive.history(url))  # NotFoundError names an unknown URL
    snapshots.sort(key=lambda s: (s.log_index is None, s.log_index or 0, s.captured_at, s.id))
    items: list[_Item] = []
    seen: set[str] = set()
    for snap in snapshots:
        for row in archive.index.records_for(snap.id):
            if row.record_id not in seen:
                seen.add(row.record_id)
                items.append(_Item(row, snap.id))
    # A revisit is only replayable with the response it refers to, which
    # may belong to a snapshot outside this export.
    originals: list[_Item] = []
    for item in items:
        if item.row.type != "revisit":
            continue
        try:
            target = _parse_member(_load_member(archive, item.row)).header("WARC-Refers-To")
        except ValueError as exc:
            raise CorruptRecordError(f"revisit {item.row.record_id} is unreadable: {exc}") from exc
        if not target or target in seen:
            continue
        row = archive.index.record(target)
        if row is None:
            log.warning("revisit %s refers to %s, which is not in the index", item.row.record_id, target)
            continue
        seen.add(target)
        originals.append(_Item(row, row.snapshot_id))
    return snapshots, originals + items


def _title_of(archive: Any, snap: SnapshotRow) -> str:
    if snap.text_sha256:
        data = archive.index.text(snap.text_sha256)
        if data and data.get("title"):
            return str(data["title"])
    return snap.url


def _export_warcinfo(clock_now: datetime, snapshots: Sequence[SnapshotRow], operator: str) -> bytes:
    """The export's own warcinfo record, as one gzip member."""
    from warcio.warcwriter import WARCWriter

    out = io.BytesIO()
    builder = WARCWriter(out, gzip=True, warc_version="1.1")
    info = WarcInfo(
        software=f"archiver/{__version__}",
        operator=operator,
        description=(
            f"archiver WACZ export of {len(snapshots)} snapshot(s); the records that follow are "
            "byte-for-byte the stored gzip members, see provenance/ in the WACZ"
        ),
    )
    record = builder.create_warcinfo_record("data.warc.gz", info.fields())
    record.rec_headers.replace_header("WARC-Date", warc_date(clock_now))
    builder.write_record(record)
    return out.getvalue()


def _write_cdxj(warc_path: Path, out_path: Path) -> None:
    from cdxj_indexer.main import CDXJIndexer

    indexer = CDXJIndexer(
        str(out_path),
        [str(warc_path)],
        sort=True,
        post_append=True,
        filename=Path(WARC_PATH).name,
        fields="referrer",
        records=_INDEXED_TYPES,
    )
    indexer.process_all()


def _keystore(archive: Any, clock: Callable[[], datetime]) -> KeyStore:
    """Built like ``Notary.open``: same keys dir, keyring and passphrase."""
    settings = archive.settings
    return KeyStore(
        settings.key_path,
        keyring_path=settings.data_path / KEYRING_NAME,
        passphrase=passphrase_from_env(os.environ),
        clock=clock,
    )


def _public_keyring(records: Sequence[KeyRecord]) -> bytes:
    """The keyring as public JSON: rebuilt field by field, never copied from disk."""
    return _json_bytes({"version": 1, "keys": [r.to_json() for r in records]})


@dataclass
class _LogEvidence:
    """The latest signed checkpoint and each snapshot's inclusion proof against it."""

    note: str | None
    size: int
    proofs: list[dict[str, Any]]


def _log_evidence(archive: Any, snapshots: Sequence[SnapshotRow]) -> _LogEvidence:
    with archive.index.read() as conn:  # one consistent view: proofs match the checkpoint
        mlog = MerkleLog(conn)
        cp = mlog.latest_checkpoint()
        if cp is None:
            return _LogEvidence(None, 0, [])
        proofs = [
            {
                "snapshot_id": snap.id,
                "leaf_index": snap.log_index,
                "tree_size": cp.size,
                "hashes": [base64.b64encode(h).decode("ascii") for h in mlog.inclusion_proof(snap.log_index, cp.size)],
            }
            for snap in snapshots
            if snap.log_index is not None and snap.log_index < cp.size
        ]
        return _LogEvidence(cp.note, cp.size, proofs)


def _write_warc(archive: Any, items: Sequence[_Item], path: Path, warcinfo: bytes) -> list[dict[str, Any]]:
    """Our warcinfo, then each stored member as is; returns where each landed."""
    locations: list[dict[str, Any]] = []
    with open(path, "wb") as fh:
        offset = fh.write(warcinfo)
        for item in items:
            member = _load_member(archive, item.row)
            fh.write(member)
            locations.append(
                {
                    "record_id": item.row.record_id,
                    "type": item.row.type,
                    "snapshot_id": item.snapshot_id,
                    "offset": offset,
                    "length": len(member),
                    "sha256": item.row.sha256,
                }
            )
            offset += len(member)
    return locations


def _manifest_line(snap: SnapshotRow) -> bytes:
    return _json_bytes(
        {
            "snapshot_id": snap.id,
            "url": snap.url,
            "manifest": json.loads(snap.manifest_json) if snap.manifest_json else None,
            "manifest_sha256": snap.manifest_sha256,
            "signature": snap.signature,
            "key_id": snap.key_id,
        },
        indent=None,
    )


def export_wacz(archive: Any, urls: list[str], out_path: Path, *, clock: Callable[[], datetime]) -> Path:
    """Write every snapshot of ``urls`` to a signed WACZ at ``out_path``.

    The file appears whole or not at all (temp file, fsync, rename). Raises
    NotFoundError for a URL without snapshots, StoreError/CorruptRecordError
    when the archive cannot be read, SigningError when the keys cannot be used.
    """
    if not urls:
        raise UsageError("export needs at least one URL")
    out_path = Path(out_path)
    now = _utc(clock())
    created = _rfc3339(now)
    snapshots, items = _collect(archive, urls)
    keys = _keystore(archive, clock)
    signer = keys.wacz_signer()  # first use creates the P-384 key and lists it in the keyring
    ring = keys.keyring()
    evidence = _log_evidence(archive, snapshots)
    main = [s for s in snapshots if s.url == urls[0]][-1]  # the first URL's newest snapshot
    package: dict[str, Any] = {
        "profile": "data-package",
        "wacz_version": WACZ_VERSION,
        "title": _package_title(snapshots),
        "description": (
            "Exported by archiver. Every snapshot's records are signed (provenance/manifests.jsonl) "
            "and logged in an append-only Merkle log (provenance/checkpoint.txt, provenance/proofs.json); "
            "check with `archiver verify --wacz FILE`."
        ),
        "created": created,
        "modified": created,
        "software": SOFTWARE,
        "mainPageUrl": main.url,
        "mainPageDate": main.captured_at,
        "resources": [],
    }

    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_path.parent, prefix=".wacz-") as work_dir:
        warc_path = Path(work_dir) / "data.warc.gz"
        warcinfo = _export_warcinfo(now, snapshots, archive.settings.archive.operator)
        locations = _write_warc(archive, items, warc_path, warcinfo)
        cdxj_path = Path(work_dir) / "index.cdxj"
        _write_cdxj(warc_path, cdxj_path)

        pages = [{"format": "json-pages-1.0", "id": "pages", "title": package["title"]}]
        pages += [{"id": s.id, "url": s.url, "ts": s.captured_at, "title": _title_of(archive, s)} for s in snapshots]
        small_files: dict[str, bytes] = {
            PAGES_PATH: b"".join(_json_bytes(p, indent=None) for p in pages),
            MANIFESTS_PATH: b"".join(_manifest_line(s) for s in snapshots),
            PROOFS_PATH: _json_bytes({"checkpoint_size": evidence.size, "proofs": evidence.proofs}),
            LOCATIONS_PATH: _json_bytes({"warc": WARC_PATH, "records": locations}),
            KEYRING_PATH: _public_keyring(ring.keys),
        }
        if evidence.note is not None:
            small_files[CHECKPOINT_PATH] = evidence.note.encode("utf-8")

        fd, tmp_name = tempfile.mkstemp(dir=out_path.parent, prefix=f".{out_path.name}.", suffix=".tmp")
        tmp = Path(tmp_name)
        zip_time = now.timetuple()[:6]
        try:
            with os.fdopen(fd, "wb") as raw:
                with zipfile.ZipFile(raw, "w", allowZip64=True) as zf:
                    resources = package["resources"]
                    info = zipfile.ZipInfo.from_file(warc_path, WARC_PATH)
                    info.date_time, info.compress_type = zip_time, zipfile.ZIP_STORED  # the spec: WARCs stored
                    resources.append(_add_file(zf, info, warc_path))
                    info = zipfile.ZipInfo(INDEX_PATH, zip_time)
                    info.compress_type = zipfile.ZIP_DEFLATED
                    resources.append(_add_file(zf, info, cdxj_path))
                    for path, data in small_files.items():
                        _write_entry(zf, path, data, zip_time)
                        resources.append(_resource(path, data))
                    package_bytes = _json_bytes(package)
                    _write_entry(zf, DATAPACKAGE, package_bytes, zip_time)
                    digest_hash = "sha256:" + hashlib.sha256(package_bytes).hexdigest()
                    signed = {
                        "hash": digest_hash,
                        "created": created,
                        "software": SOFTWARE,
                        "signature": signer.sign_wacz(digest_hash),
                        "publicKey": signer.public_key_b64,
                    }
                    digest_doc = {"path": DATAPACKAGE, "hash": digest_hash, "signedData": signed}
                    _write_entry(zf, DIGEST, _json_bytes(digest_doc), zip_time)
                raw.flush()
                os.fsync(raw.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, out_path)
        except OSError as exc:
            raise StoreError(f"cannot write WACZ {out_path}: {exc.strerror or exc}") from exc
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
    _fsync_dir(out_path.parent)
    log.info("exported %d snapshot(s), %d record(s) to %s", len(snapshots), len(items), out_path)
    return out_path


def _write_entry(zf: zipfile.ZipFile, path: str, data: bytes, when: tuple[int, ...]) -> None:
    info = zipfile.ZipInfo(path, when)  # type: ignore[arg-type]
    info.compress_type = zipfile.ZIP_DEFLATED
    zf.writestr(info, data)


def _package_title(snapshots: Sequence[SnapshotRow]) -> str:
    urls = list(dict.fromkeys(s.url for s in snapshots))
    if len(urls) == 1:
        return f"archiver: {urls[0]} ({len(snapshots)} snapshot{'s' if len(snapshots) != 1 else ''})"
    return f"archiver: {len(urls)} URLs, {len(snapshots)} snapshots"


def _resource(path: str, data: bytes) -> dict[str, Any]:
    return {
        "name": Path(path).name.lower(),
        "path": path,
        "hash": "sha256:" + hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
    }


def _add_file(zf: zipfile.ZipFile, info: zipfile.ZipInfo, src: Path) -> dict[str, Any]:
    """Stream ``src`` into the zip, hashing on the way."""
    h = hashlib.sha256()
    size = 0
    with open(src, "rb") as fh, zf.open(info, "w", force_zip64=info.file_size > 0x7FFFFFFF) as out:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
            out.write(chunk)
            size += len(chunk)
    return {"name": Path(info.filename).name.lower(), "path": info.filename, "hash": f"sha256:{h.hexdigest()}", "bytes": size}


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# --------------------------------------------------------------------------
# Verification: the file alone
# --------------------------------------------------------------------------


class _Zip:
    """Read zip entries without trusting ZipFile's error handling.

    Reads each entry's bytes itself (stored or deflated) and checks the CRC
    itself, so a damaged entry is reported and still examined, which lets a
    changed WARC byte be traced to the snapshot whose record it hit.
    """

    def __init__(self, path: Path, report: WaczReport) -> None:
        self.path = path
        self.report = report
        self.fh: BinaryIO = open(path, "rb")
        self.zf = zipfile.ZipFile(self.fh)
        self.infos: dict[str, zipfile.ZipInfo] = {}
        for info in self.zf.infolist():
            if info.filename in self.infos:
                report.add(None, "zip", f"entry {info.filename} appears twice")
            self.infos[info.filename] = info
        self._crc_checked: set[str] = set()

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
        while remaining > 0:
            self.fh.seek(pos)
            raw = self.fh.read(min(_CHUNK, remaining))
            if not raw:
                raise zipfile.BadZipFile(f"{name} is truncated")
            pos += len(raw)
            remaining -= len(raw)
            try:
                data = inflater.decompress(raw) if inflater else raw
            except zlib.error as exc:
                self.report.add(None, "zip-crc", f"{name}: compressed data is damaged: {exc}")
                return
            crc = zlib.crc32(data, crc)
            size += len(data)
            yield data
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

    def read(self, name: str) -> bytes:
        return b"".join(self.chunks(name))

    def digest(self, name: str) -> tuple[str, int]:
        h = hashlib.sha256()
        size = 0
        for chunk in self.chunks(name):
            h.update(chunk)
            size += len(chunk)
        return "sha256:" + h.hexdigest(), size

    def range_reader(self, name: str) -> Callable[[int, int], bytes]:
        """Random access into an entry: direct seeks when stored, else one inflate."""
        info = self.infos[name]
        if info.compress_type == zipfile.ZIP_STORED:
            start = self._data_offset(info)

            def read_stored(offset: int, length: int) -> bytes:
                if offset < 0 or length < 0 or offset + length > info.compress_size:
                    return b""
                self.fh.seek(start + offset)
                return self.fh.read(length)

            return read_stored
        data = self.read(name)
        return lambda offset, length: data[offset : offset + length] if offset >= 0 and length >= 0 else b""


def verify_wacz(path: Path, *, public_key: bytes | None = None) -> list[Problem]:
    """Every problem found in the WACZ at ``path`` (empty: it verifies).

    ``public_key`` (Ed25519 SPKI, PEM or DER, e.g. from ``archiver keys
    export-public``) pins the key that must have signed the checkpoint, so a
    package re-signed wholesale under another key is refused.
    """
    return check_wacz(path, public_key=public_key).problems


def check_wacz(path: Path, *, public_key: bytes | None = None) -> WaczReport:
    """Like :func:`verify_wacz`, with the count of snapshots checked."""
    report = WaczReport()
    try:
        z = _Zip(Path(path), report)
    except FileNotFoundError:
        report.add(None, "zip", f"{path} does not exist")
        return report
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        report.add(None, "zip", f"{path} is not a readable zip file: {exc}")
        return report
    try:
        _Checker(z, report, public_key).run()
    except (zipfile.BadZipFile, OSError, zlib.error, EOFError) as exc:
        report.add(None, "zip", f"{path}: {exc}")
    finally:
        z.close()
    return report


class _Checker:
    """The checks, in order; each adds problems rather than stopping early."""

    def __init__(self, z: _Zip, report: WaczReport, public_key: bytes | None) -> None:
        self.z = z
        self.report = report
        self.public_key = public_key
        self.package: dict[str, Any] = {}
        self.keyring: Keyring | None = None
        self._wacz_key: Any = None

    def add(self, snapshot: str | None, kind: str, detail: str) -> None:
        self.report.add(snapshot, kind, detail)

    def json_entry(self, name: str, *, required: bool = True) -> Any:
        if name not in self.z.infos:
            if required:
                self.add(None, "missing-file", f"{name} is missing")
            return None
        try:
            return json.loads(self.z.read(name))
        except ValueError as exc:
            self.add(None, "malformed", f"{name} is not valid JSON: {exc}")
            return None

    def run(self) -> None:
        self.check_package()
        self.check_digest()
        with tempfile.TemporaryDirectory(prefix="archiver-wacz-") as tmp:
            self.load_keyring(Path(tmp))
        checkpoint = self.load_checkpoint()
        self.check_snapshots(checkpoint)

    # -- datapackage.json and its signed digest ------------------------------

    def check_package(self) -> None:
        package = self.json_entry(DATAPACKAGE)
        if not isinstance(package, dict):
            return
        self.package = package
        if package.get("profile") != "data-package":
            self.add(None, "datapackage", "profile is not 'data-package'")
        if package.get("wacz_version") != WACZ_VERSION:
            self.add(None, "datapackage", f"wacz_version is {package.get('wacz_version')!r}, want {WACZ_VERSION}")
        resources = package.get("resources")
        if not isinstance(resources, list):
            self.add(None, "datapackage", "resources is not a list")
            return
        listed: set[str] = set()
        for res in resources:
            rpath = res.get("path") if isinstance(res, dict) else None
            if not isinstance(rpath, str):
                self.add(None, "datapackage", f"resource without a path: {res!r}"[:200])
                continue
            listed.add(rpath)
            if rpath not in self.z.infos:
                self.add(None, "missing-file", f"{rpath} is listed in datapackage.json but not in the zip")
                continue
            actual, size = self.z.digest(rpath)
            if res.get("hash") != actual:
                self.add(None, "resource-hash", f"{rpath}: {actual} does not match datapackage.json {res.get('hash')}")
            if res.get("bytes") != size:
                self.add(None, "resource-hash", f"{rpath}: {size} bytes, datapackage.json says {res.get('bytes')}")
        for name in self.z.infos:
            if name not in listed and name not in (DATAPACKAGE, DIGEST) and not name.endswith("/"):
                self.add(None, "unlisted-file", f"{name} is not listed in datapackage.json")

    def check_digest(self) -> None:
        doc = self.json_entry(DIGEST)
        if not isinstance(doc, dict) or DATAPACKAGE not in self.z.infos:
            return
        actual, _ = self.z.digest(DATAPACKAGE)
        if doc.get("path") != DATAPACKAGE:
            self.add(None, "datapackage-digest", "datapackage-digest.json does not name datapackage.json")
        if doc.get("hash") != actual:
            self.add(None, "datapackage-digest", f"datapackage.json is {actual}, its digest file says {doc.get('hash')}")
        signed = doc.get("signedData")
        if not isinstance(signed, dict):
            self.add(None, "wacz-signature", "datapackage-digest.json is not signed")
            return
        if signed.get("hash") != doc.get("hash"):
            self.add(None, "wacz-signature", "signedData.hash differs from the digest's hash")
        if signed.get("created") != self.package.get("created"):
            self.add(None, "wacz-signature", "signedData.created differs from datapackage.json created")
        try:
            verify_wacz_signature(str(signed.get("hash", "")), str(signed.get("signature", "")), str(signed.get("publicKey", "")))
        except VerificationError as exc:
            self.add(None, "wacz-signature", str(exc))
        self._wacz_key = signed.get("publicKey")

    # -- keys and the checkpoint ---------------------------------------------

    def load_keyring(self, tmp: Path) -> None:
        if KEYRING_PATH not in self.z.infos:
            self.add(None, "missing-file", f"{KEYRING_PATH} is missing")
            return
        path = tmp / "keyring.json"
        path.write_bytes(self.z.read(KEYRING_PATH))
        try:
            self.keyring = Keyring(path).load()
            self.keyring.keys  # noqa: B018 - parse now, while the file exists
        except VerificationError as exc:
            self.add(None, "keyring", str(exc))
            self.keyring = None
            return
        wacz_key = self._wacz_key
        if isinstance(wacz_key, str):
            try:
                kid = key_id_for(base64.b64decode(wacz_key, validate=True))
            except (binascii.Error, ValueError):
                return  # already reported as a bad signature
            record = self.keyring.find(kid)
            if record is None or record.algorithm != ECDSA_P384:
                self.add(None, "wacz-key", "the package was signed by a key that is not in its keyring")
                return
            try:
                created = datetime.fromisoformat(str(self.package.get("created")))
            except ValueError:
                self.add(None, "datapackage", "created is not an RFC 3339 time")
                return
            if created.tzinfo is None:
                created = created.replace(tzinfo=timezone.utc)
            # `created` is taken just before the key may be created (first export),
            # and is truncated to seconds: allow the same skew as for manifests.
            if created < record.valid_from - KEY_CLOCK_SKEW or (
                record.valid_until is not None and created >= record.valid_until
            ):
                self.add(None, "wacz-key", f"package key {kid[:16]} was not valid at created {self.package.get('created')}")

    def _note_verifiers(self) -> list[NoteVerifier]:
        if self.keyring is None:
            return []
        records = [r for r in self.keyring.keys if r.algorithm == ED25519]
        if self.public_key is not None:
            try:
                pinned = _spki_from(self.public_key)
            except VerificationError as exc:
                self.add(None, "public-key", str(exc))
                return []
            records = [r for r in records if r.public_key == pinned]
            if not records:
                self.add(None, "public-key", "the given public key is not in the package's keyring: re-signed archive?")
                return []
        out = []
        for r in records:
            try:
                out.append(NoteVerifier.from_spki(r.name, r.public_key))
            except VerificationError as exc:
                self.add(None, "keyring", f"key {r.key_id[:16]}: {exc}")
        return out

    def load_checkpoint(self) -> Any:
        if CHECKPOINT_PATH not in self.z.infos:
            self.add(None, "missing-file", f"{CHECKPOINT_PATH} is missing")
            return None
        verifiers = self._note_verifiers()
        if not verifiers:
            self.add(None, "checkpoint", "no key to check the checkpoint with")
            return None
        try:
            note = self.z.read(CHECKPOINT_PATH).decode("utf-8")
            return open_checkpoint(note, verifiers)
        except (UnicodeDecodeError, VerificationError) as exc:
            self.add(None, "checkpoint", f"checkpoint does not verify: {exc}")
            return None

    # -- per snapshot --------------------------------------------------------

    def check_snapshots(self, checkpoint: Any) -> None:
        if MANIFESTS_PATH not in self.z.infos:
            self.add(None, "missing-file", f"{MANIFESTS_PATH} is missing")
            return
        entries: list[dict[str, Any]] = []
        for n, line in enumerate(self.z.read(MANIFESTS_PATH).splitlines(), start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                entry = None
            if not isinstance(entry, dict) or not isinstance(entry.get("snapshot_id"), str):
                self.add(None, "manifest", f"{MANIFESTS_PATH} line {n} is not a snapshot entry")
                continue
            entries.append(entry)
        self.report.checked = len(entries)

        locations = self.json_entry(LOCATIONS_PATH) or {}
        where: dict[str, dict[str, Any]] = {}
        for loc in locations.get("records", []) if isinstance(locations, dict) else []:
            if isinstance(loc, dict) and isinstance(loc.get("record_id"), str):
                where[loc["record_id"]] = loc
        read_warc = self.z.range_reader(WARC_PATH) if WARC_PATH in self.z.infos else None
        if read_warc is None:
            self.add(None, "missing-file", f"{WARC_PATH} is missing")
        proofs_doc = self.json_entry(PROOFS_PATH) or {}
        proofs = {
            p.get("snapshot_id"): p
            for p in (proofs_doc.get("proofs", []) if isinstance(proofs_doc, dict) else [])
            if isinstance(p, dict)
        }
        records = _WarcRecords(read_warc, where)
        chains: dict[str, list[tuple[int, str, dict[str, Any]]]] = {}
        for entry in entries:
            sid = entry["snapshot_id"]
            manifest = entry.get("manifest")
            if not isinstance(manifest, dict):
                self.add(sid, "unsigned", "snapshot has no signed manifest")
                continue
            digest = sha256_hex(canonical_json(manifest))
            self.check_manifest(sid, entry, manifest, digest)
            self.check_records(sid, manifest, digest, entry, records)
            self.check_inclusion(sid, manifest, digest, proofs.get(sid), checkpoint)
            log_index = (manifest.get("log") or {}).get("index")
            chains.setdefault(str(manifest.get("url")), []).append(
                (log_index if isinstance(log_index, int) else -1, digest, manifest)
            )
        self.check_chains(chains)

    def check_manifest(self, sid: str, entry: dict[str, Any], manifest: dict[str, Any], digest: str) -> None:
        if manifest.get("snapshot_id") != sid:
            self.add(sid, "manifest", f"manifest names snapshot {manifest.get('snapshot_id')!r}")
        if entry.get("manifest_sha256") != digest:
            self.add(sid, "manifest-digest", f"manifest hashes to {digest}, entry says {entry.get('manifest_sha256')}")
        if self.keyring is None:
            self.add(sid, "signature", "no keyring to check the manifest signature with")
            return
        key_id = str(entry.get("key_id") or "")
        record = self.keyring.find(key_id)
        if record is None:
            self.add(sid, "signature", f"signing key {key_id[:16]} is not in the keyring")
            return
        try:
            signature = base64.b64decode(str(entry.get("signature") or ""), validate=True)
        except (binascii.Error, ValueError):
            self.add(sid, "signature", "signature is not valid base64")
            return
        at = _signature_time(manifest, record)
        if at is None:
            self.add(sid, "key-validity", f"capture time precedes key {key_id[:16]}'s validity window")
            at = record.valid_from
        try:
            self.keyring.verify(key_id, canonical_json(manifest), signature, at)
        except VerificationError as exc:
            kind = "key-validity" if "was not valid" in str(exc) else "signature"
            self.add(sid, kind, str(exc))

    def check_records(
        self, sid: str, manifest: dict[str, Any], digest: str, entry: dict[str, Any], records: _WarcRecords
    ) -> None:
        listed = manifest.get("records")
        if not isinstance(listed, list) or not listed:
            self.add(sid, "manifest", "manifest lists no records")
            return
        final: _Record | None = None
        for rec in listed:
            rid = rec.get("record_id") if isinstance(rec, dict) else None
            if not isinstance(rid, str):
                self.add(sid, "manifest", "manifest record without an id")
                continue
            member = records.member(rid)
            if member is None:
                self.add(sid, "record-missing", f"record {rid} is not in {WARC_PATH}")
                continue
            if not _digest_ok(member, rec.get("sha256")):
                self.add(sid, "record-digest", f"{rec.get('type')} record {rid} does not match the signed manifest")
                continue
            parsed = records.parsed(rid)
            if parsed is None:
                self.add(sid, "record-unreadable", f"record {rid} is not a readable WARC record")
                continue
            for kind, detail in _record_digest_problems(parsed):
                self.add(sid, kind, f"{rid}: {detail}")
            if parsed.type in ("response", "revisit"):
                final = parsed
            if parsed.type == "revisit":
                self.check_revisit(sid, rid, parsed, records)
        payload = manifest.get("payload_sha256")
        if final is not None and isinstance(payload, str):
            try:
                expected = ("sha256", bytes.fromhex(payload))
            except ValueError:
                expected = None
            if _label_bytes(final.header("WARC-Payload-Digest")) != expected:
                self.add(sid, "payload-digest", "final response's payload digest differs from the manifest's payload_sha256")
        self.check_metadata(sid, digest, entry, records)

    def check_revisit(self, sid: str, rid: str, revisit: _Record, records: _WarcRecords) -> None:
        target = revisit.header("WARC-Refers-To")
        original = records.parsed(target) if target else None
        if original is None:
            self.add(sid, "revisit-target", f"revisit {rid} refers to {target}, which is not in the package")
            return
        if target is not None and records.member(target) is not None and records.sha256_ok(target) is False:
            self.add(sid, "revisit-target", f"original {target} of revisit {rid} does not match its recorded digest")
        if _label_bytes(original.header("WARC-Payload-Digest")) != _label_bytes(revisit.header("WARC-Payload-Digest")):
            self.add(sid, "revisit-target", f"revisit {rid} and its original {target} name different payloads")
        for kind, detail in _record_digest_problems(original):
            self.add(sid, "revisit-target", f"original {target}: {detail}")

    def check_metadata(self, sid: str, digest: str, entry: dict[str, Any], records: _WarcRecords) -> None:
        """The metadata record in the WARC must carry this very manifest and signature."""
        for rid in records.of_snapshot(sid, "metadata"):
            parsed = records.parsed(rid)
            if parsed is None:
                continue
            try:
                fields = json.loads(parsed.block)
            except ValueError:
                continue
            if isinstance(fields, dict) and fields.get("manifest_sha256") == digest:
                if fields.get("signature") != entry.get("signature"):
                    self.add(sid, "metadata-record", "the WARC metadata record carries a different signature")
                return
        self.add(sid, "metadata-record", "no metadata record in the WARC carries this manifest")

    def check_inclusion(
        self, sid: str, manifest: dict[str, Any], digest: str, proof: dict[str, Any] | None, checkpoint: Any
    ) -> None:
        if checkpoint is None:
            return  # reported once, at package level
        log_info = manifest.get("log") or {}
        if log_info.get("origin") != checkpoint.origin:
            self.add(sid, "log-origin", f"manifest is for log {log_info.get('origin')!r}, checkpoint for {checkpoint.origin!r}")
        if proof is None:
            self.add(sid, "inclusion", "no inclusion proof for this snapshot")
            return
        index = log_info.get("index")
        if proof.get("leaf_index") != index:
            self.add(sid, "inclusion", f"proof is for leaf {proof.get('leaf_index')}, manifest says {index}")
            return
        if proof.get("tree_size") != checkpoint.size:
            self.add(sid, "inclusion", f"proof is for tree size {proof.get('tree_size')}, checkpoint is {checkpoint.size}")
            return
        try:
            hashes = [base64.b64decode(h, validate=True) for h in proof.get("hashes") or []]
            verify_inclusion(hash_leaf(bytes.fromhex(digest)), int(index), checkpoint.size, hashes, checkpoint.root)  # type: ignore[arg-type]
        except (binascii.Error, ValueError, TypeError) as exc:
            self.add(sid, "inclusion", f"malformed inclusion proof: {exc}")
        except VerificationError as exc:
            self.add(sid, "inclusion", str(exc))

    def check_chains(self, chains: dict[str, list[tuple[int, str, dict[str, Any]]]]) -> None:
        for url, links in chains.items():
            links.sort(key=lambda link: link[0])
            previous: str | None = None
            for n, (_, digest, manifest) in enumerate(links):
                sid = str(manifest.get("snapshot_id"))
                claimed = manifest.get("previous_manifest_sha256")
                if n == 0:
                    if claimed is not None:
                        self.add(sid, "chain", f"first snapshot of {url} in the package names a previous manifest {claimed[:16]}… that is missing")
                elif claimed != previous:
                    self.add(sid, "chain", f"previous manifest of {url} should be {str(previous)[:16]}…, manifest says {str(claimed)[:16]}…")
                previous = digest


class _WarcRecords:
    """Records of ``data.warc.gz`` found through the locations file, cached."""

    def __init__(self, read: Callable[[int, int], bytes] | None, where: dict[str, dict[str, Any]]) -> None:
        self._read = read
        self._where = where
        self._members: dict[str, bytes | None] = {}
        self._parsed: dict[str, _Record | None] = {}

    def member(self, rid: str) -> bytes | None:
        if rid not in self._members:
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
            self._members[rid] = data
        return self._members[rid]

    def sha256_ok(self, rid: str) -> bool | None:
        member = self.member(rid)
        expected = (self._where.get(rid) or {}).get("sha256")
        if member is None or not isinstance(expected, str):
            return None
        return _digest_ok(member, expected)

    def parsed(self, rid: str) -> _Record | None:
        if rid not in self._parsed:
            member = self.member(rid)
            rec = None
            if member is not None:
                with contextlib.suppress(ValueError):
                    rec = _parse_member(member)
                    if rec.header("WARC-Record-ID") != rid:
                        rec = None
            self._parsed[rid] = rec
        return self._parsed[rid]

    def of_snapshot(self, sid: str, rtype: str) -> list[str]:
        return [rid for rid, loc in self._where.items() if loc.get("snapshot_id") == sid and loc.get("type") == rtype]


def _signature_time(manifest: dict[str, Any], record: KeyRecord) -> datetime | None:
    """When the manifest was signed, as far as it tells: right after its fetch.

    Returns the time to check the key's window at, or None when the capture
    is older than the key by more than :data:`KEY_CLOCK_SKEW` (backdating).
    """
    raw = manifest.get("fetch_ended_at") or manifest.get("fetch_started_at")
    try:
        at = datetime.fromisoformat(str(raw))
    except ValueError:
        return record.valid_from
    if at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    if at < record.valid_from:
        if record.valid_from - at > KEY_CLOCK_SKEW:
            return None
        return record.valid_from
    return at


def _spki_from(public_key: bytes) -> bytes:
    """SPKI DER from a PEM or DER public key."""
    try:
        if public_key.lstrip().startswith(b"-----"):
            key = serialization.load_pem_public_key(public_key)
        else:
            key = serialization.load_der_public_key(public_key)
    except (ValueError, TypeError) as exc:
        raise VerificationError("the given public key is not a PEM or DER public key") from exc
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

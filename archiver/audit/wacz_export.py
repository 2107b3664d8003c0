"""WACZ 1.1.1 export, signed (wacz-auth anonymous mode), standing on its own.

Why this shape: a WACZ is what an auditor opens in ReplayWeb.page or hands to
someone else, so it has to stand on its own. It carries

* ``archive/data.warc.gz``: the exact stored gzip members of every record of
  the exported URLs (the bytes the signed manifests hash), after a warcinfo
  record of the export's own;
* ``indexes/index.cdx.gz`` + ``indexes/index.idx`` (the ZipNum CDXJ layout
  py-wacz writes, which pywb, ReplayWeb.page and ``wacz validate`` all
  load) and ``pages/pages.jsonl`` for replay;
* ``provenance/``: each snapshot's signed manifest, the latest signed log
  checkpoint, an inclusion proof per snapshot against it, where each record
  sits in ``data.warc.gz``, and the archive's *public* keyring;
* ``datapackage.json`` with a SHA-256 per file, and ``datapackage-digest.json``
  signed in the wacz-auth anonymous mode (ECDSA P-384, as ReplayWeb.page checks).

``archiver.audit.wacz_check`` verifies all of it with nothing but the file.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archiver import __version__
from archiver.audit.wacz_format import (
    CHECKPOINT_PATH,
    DATAPACKAGE,
    DIGEST,
    ENDORSEMENT_PATH,
    INDEX_IDX_PATH,
    INDEX_PATH,
    KEYRING_PATH,
    LOCATIONS_PATH,
    MANIFESTS_PATH,
    PAGES_PATH,
    PROOFS_PATH,
    WACZ_VERSION,
    WARC_PATH,
    digest_ok,
    parse_member,
)
from archiver.capture.originals import NotTheOriginal, check_original
from archiver.errors import (
    CorruptRecordError,
    StoreError,
    UsageError,
)
from archiver.provenance.endorsement import endorse
from archiver.provenance.files import fsync_dir
from archiver.provenance.keyring import KeyRecord
from archiver.provenance.keys import KeyStore
from archiver.provenance.log import MerkleLog
from archiver.provenance.notary import open_keystore
from store.index import RecordRow, SnapshotRow
from store.scan import label_hex
from store.warc import WarcInfo, parse_warc_date, serialize_record, warc_date, warcinfo_record

if TYPE_CHECKING:
    from archiver.archive import Archive

log = logging.getLogger(__name__)

SOFTWARE = f"archiver {__version__}"
_CHUNK = 1 << 20
_INDEXED_TYPES = "response,revisit,resource"  # manifests and intents are evidence, not captures: not replayed


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


def _load_member(archive: Archive, row: RecordRow) -> bytes:
    """The stored member, refused when it no longer matches the index."""
    member = archive.warcs.read_member(row.warc_file, row.warc_offset, row.warc_length)
    if not digest_ok(member, row.sha256):
        raise CorruptRecordError(
            f"{row.warc_file}@{row.warc_offset}: record {row.record_id} of snapshot {row.snapshot_id} "
            "does not match its indexed digest; run `archiver verify`"
        )
    return member


def _collect(archive: Archive, urls: Sequence[str]) -> tuple[list[SnapshotRow], list[_Item]]:
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
        claims = archive.signed_claims(snap)  # the index lists the records; each must be one the manifest signs
        for row in archive.index.records_for(snap.id):
            if row.type != "metadata" and claims.get(row.record_id) != row.sha256:
                raise CorruptRecordError(f"record {row.record_id} the index lists for snapshot {snap.id} is not one "
                                         "its signed manifest names; run `archiver verify`")
            if row.record_id not in seen:
                seen.add(row.record_id)
                items.append(_Item(row, snap.id))
    # A revisit is only replayable with the response it refers to, which
    # may belong to a snapshot outside this export.
    originals: list[_Item] = []
    payloads: dict[str, str] = {}  # original's id -> the payload (SHA-256, hex) it was checked to hold
    for item in items:
        if item.row.type != "revisit":
            continue
        try:
            revisit = parse_member(_load_member(archive, item.row))
        except ValueError as exc:
            raise CorruptRecordError(f"revisit {item.row.record_id} is unreadable: {exc}") from exc
        target = revisit.header("WARC-Refers-To")
        if not target:
            continue
        original = archive.index.record(target)
        if original is None:
            log.warning("revisit %s refers to %s, which is not in the index", item.row.record_id, target)
            continue
        stated = label_hex(revisit.header("WARC-Payload-Digest") or "") or ""
        if payloads.get(target) != stated:
            try:  # the check a capture makes before naming an original, and readers before serving one
                check_original(archive.warcs, original, stated)
            except NotTheOriginal as exc:
                raise CorruptRecordError(f"revisit {item.row.record_id} of snapshot {item.snapshot_id} refers to {target}, "
                                         f"which does not hold the payload the revisit names ({exc}); run `archiver verify`"
                                         ) from exc
            payloads[target] = stated
        if target in seen:
            continue
        seen.add(target)
        originals.append(_Item(original, original.snapshot_id))
    return snapshots, originals + items


def _title_of(archive: Archive, snap: SnapshotRow) -> str:
    """The page's title for pages.jsonl: its stored article's, only when that
    article hashes to the snapshot's (signed, checked) text digest."""
    article = archive.stored_article(snap)
    return article.title if article is not None and article.title else snap.url


def _export_warcinfo(clock_now: datetime, snapshots: Sequence[SnapshotRow], items: Sequence[_Item], operator: str) -> bytes:
    """The export's own warcinfo record, as one gzip member.

    It heads records captured before the export, so it is dated no later
    than the earliest of them (WARC readers expect warcinfo first in time
    too); the export's own time is in its description.
    """
    info = WarcInfo(
        software=f"archiver/{__version__}",
        operator=operator,
        description=(
            f"archiver WACZ export of {len(snapshots)} snapshot(s), made {warc_date(clock_now)}; the records "
            "that follow are byte-for-byte the stored gzip members, see provenance/ in the WACZ"
        ),
    )
    dates = [d for d in (parse_warc_date(i.row.date) for i in items) if d is not None]
    return serialize_record(warcinfo_record("data.warc.gz", info.fields(), warc_date(min([clock_now, *dates]))))[0]


def _write_index(warc_path: Path, blocks_path: Path, idx_path: Path) -> None:
    """The WARC's CDXJ index as gzip blocks (``blocks_path``) and their index (``idx_path``)."""
    from cdxj_indexer.main import CDXJIndexer

    with open(blocks_path, "wb") as blocks:
        indexer = CDXJIndexer(
            str(idx_path),
            [str(warc_path)],
            sort=True,
            post_append=True,
            compress=blocks,
            data_out_name=Path(INDEX_PATH).name,
            digest_records=True,
            filename=Path(WARC_PATH).name,
            fields="referrer",
            records=_INDEXED_TYPES,
        )
        indexer.process_all()


def _keystore(archive: Archive, clock: Callable[[], datetime]) -> KeyStore:
    """Built like ``Notary.open``: same keys dir, keyring and passphrase."""
    return open_keystore(archive.settings, archive.index, clock, archive.c.hostname)


def _public_keyring(records: Sequence[KeyRecord]) -> bytes:
    """The keyring as public JSON: rebuilt field by field, never copied from disk."""
    return _json_bytes({"version": 1, "keys": [r.to_json() for r in records]})


@dataclass
class _LogEvidence:
    """The latest signed checkpoint and each snapshot's inclusion proof against it."""

    note: str | None
    size: int
    proofs: list[dict[str, Any]]


def _log_evidence(archive: Archive, snapshots: Sequence[SnapshotRow]) -> _LogEvidence:
    """The package's checkpoint is kept in the index (``exported``), so the
    archive can show the very note a WACZ was checked against."""
    archive.provenance.hand_out("exported")
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
    if cp.kept is None:  # a capture signed a newer one since hand_out
        archive.provenance.keep_checkpoint(cp.size, "exported")
    return _LogEvidence(cp.note, cp.size, proofs)


def _write_warc(archive: Archive, items: Sequence[_Item], path: Path, warcinfo: bytes) -> list[dict[str, Any]]:
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


def _manifest_line(snap: SnapshotRow, manifest: dict[str, Any] | None) -> bytes:
    return _json_bytes(
        {
            "snapshot_id": snap.id,
            "url": snap.url,
            "manifest": manifest,
            "manifest_sha256": snap.manifest_sha256,
            "signature": snap.signature,
            "key_id": snap.key_id,
        },
        indent=None,
    )


def export_wacz(archive: Archive, urls: list[str], out_path: Path, *, clock: Callable[[], datetime]) -> Path:
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
    identity = keys.signer()  # endorses the bundled keyring (and lists itself first, if new)
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
        warcinfo = _export_warcinfo(now, snapshots, items, archive.settings.archive.operator)
        locations = _write_warc(archive, items, warc_path, warcinfo)
        blocks_path, idx_path = Path(work_dir) / "index.cdx.gz", Path(work_dir) / "index.idx"
        _write_index(warc_path, blocks_path, idx_path)

        pages = [{"format": "json-pages-1.0", "id": "pages", "title": package["title"]}]
        pages += [{"id": s.id, "url": s.url, "ts": s.captured_at, "title": _title_of(archive, s)} for s in snapshots]
        small_files: dict[str, bytes] = {
            PAGES_PATH: b"".join(_json_bytes(p, indent=None) for p in pages),
            MANIFESTS_PATH: b"".join(_manifest_line(s, archive.manifest(s)) for s in snapshots),
            PROOFS_PATH: _json_bytes({"checkpoint_size": evidence.size, "proofs": evidence.proofs}),
            LOCATIONS_PATH: _json_bytes({"warc": WARC_PATH, "records": locations}),
            KEYRING_PATH: _public_keyring(ring.keys),
        }
        # The archive's Ed25519 key vouches for the bundled keyring, package key included.
        small_files[ENDORSEMENT_PATH] = _json_bytes(endorse(small_files[KEYRING_PATH], identity, now))
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
                    info.compress_type = zipfile.ZIP_STORED  # gzip blocks read by offset
                    resources.append(_add_file(zf, info, blocks_path))
                    info = zipfile.ZipInfo(INDEX_IDX_PATH, zip_time)
                    info.compress_type = zipfile.ZIP_DEFLATED
                    resources.append(_add_file(zf, info, idx_path))
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
            fsync_dir(out_path.parent)  # the rename durable: a failed fsync is a failed export, not a silent one
        except OSError as exc:
            raise StoreError(f"cannot write WACZ {out_path}: {exc.strerror or exc}") from exc
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
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



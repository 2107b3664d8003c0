"""``archiver repair``: bring the index back in line with the WARC files.

A crash can leave (a) a WARC file still named ``.open`` whose writer is gone,
possibly with a torn last record; (b) a signed manifest in a WARC whose index
commit never happened; (c) request/response records written before the
manifest was. Repair closes (a) -- moving torn bytes to a side file, never
deleting them -- and commits (b) and (c) as snapshots, so nothing captured is
lost. Safe to run while other processes write: it skips files they own.
"""

from __future__ import annotations

import io
import logging
import os
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from warcio.statusandheaders import StatusAndHeadersParser

from archiver.canonical import canonical_json, sha256_hex
from archiver.capture.http import REDIRECT_STATUSES, Capture, Hop
from archiver.capture.records import manifest_fields, metadata_record
from archiver.provenance.log import MerkleLog
from store.index import RecordRow, SnapshotRow
from store.scan import (
    Member,
    ParsedRecord,
    TornTail,
    iter_members,
    label_hex,
    parse_record,
)
from store.warc import (
    OPEN_SUFFIX,
    RecordLocation,
    _fsync_dir,
    decode_content,
    final_name,
    list_warcs,
)

if TYPE_CHECKING:
    from archiver.archive import Archive

log = logging.getLogger(__name__)

_NAME = re.compile(r"^(?P<prefix>.+)-(?P<stamp>\d{20})-(?P<serial>\d{5})-(?P<host>.+)-(?P<pid>\d+)\.warc\.gz$")


@dataclass
class RepairResult:
    closed: list[str] = field(default_factory=list)
    torn: list[str] = field(default_factory=list)
    reindexed: list[str] = field(default_factory=list)
    recommitted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()

    def summary(self) -> str:
        parts = [
            f"closed {len(self.closed)} stale WARC file(s)",
            f"set aside {len(self.torn)} torn tail(s)",
            f"re-indexed {len(self.reindexed)} signed snapshot(s)",
            f"committed {len(self.recommitted)} unsigned capture(s)",
        ]
        if self.skipped:
            parts.append(f"skipped {len(self.skipped)} file(s) in use")
        return "repair: " + ", ".join(parts)


def writer_alive(name: str, hostname: str) -> bool:
    """Is the process that owns this WARC file (by the pid in its name) still running here?"""
    m = _NAME.match(name)
    if not m or m.group("host") != re.sub(r"[^A-Za-z0-9.-]", "-", hostname):
        return False  # another host's file: it cannot be writing here now
    pid = int(m.group("pid"))
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def close_stale(warc_dir: Path, hostname: str, result: RepairResult) -> None:
    """Close `.open` files whose writer died, setting any torn tail aside."""
    for path in list_warcs(warc_dir):
        if not path.name.endswith(OPEN_SUFFIX):
            continue
        name = final_name(path)
        if writer_alive(name, hostname):
            result.skipped.append(name)
            continue
        for item in iter_members(path):
            if isinstance(item, TornTail):
                side = warc_dir / f"{name}.torn-{item.offset}"
                with open(path, "r+b") as fh:
                    fh.seek(item.offset)
                    side.write_bytes(fh.read())
                    fh.truncate(item.offset)
                    fh.flush()
                    os.fsync(fh.fileno())
                result.torn.append(side.name)
                log.warning("set aside %d torn bytes of %s in %s", item.length, name, side.name)
        os.replace(path, warc_dir / name)
        _fsync_dir(warc_dir)
        result.closed.append(name)


@dataclass
class _Scanned:
    name: str
    member: Member
    rec: ParsedRecord

    def location(self) -> RecordLocation:
        h = self.rec.headers
        return RecordLocation(
            record_id=h.get("WARC-Record-ID", ""),
            record_type=h.get("WARC-Type", ""),
            target_uri=h.get("WARC-Target-URI", ""),
            date=h.get("WARC-Date", ""),
            warc_file=self.name,
            offset=self.member.offset,
            length=self.member.length,
            sha256=self.member.sha256,
            payload_digest=h.get("WARC-Payload-Digest"),
        )


def repair(archive: Archive) -> RepairResult:
    result = RepairResult()
    close_stale(archive.warc_dir, archive.c.hostname, result)
    records: dict[str, _Scanned] = {}
    manifests: dict[str, tuple[dict[str, Any], _Scanned]] = {}
    for path in list_warcs(archive.warc_dir):
        name = final_name(path)
        if path.name.endswith(OPEN_SUFFIX) and writer_alive(name, archive.c.hostname) and name not in result.closed:
            continue  # a live writer's file: its captures are still committing
        for item in iter_members(path):
            if isinstance(item, TornTail):
                continue
            try:
                rec = parse_record(item.data)
            except ValueError:
                continue
            scanned = _Scanned(name, item, rec)
            records[rec.record_id] = scanned
            fields = manifest_fields(rec)
            if fields is not None:
                manifests[fields["manifest"]["snapshot_id"]] = (fields, scanned)
    indexed = {r.id for r in archive.index.all_snapshots()}
    indexed_records = archive.index.record_ids()
    claimed: set[str] = set()
    for sid, (fields, meta) in sorted(manifests.items(), key=lambda kv: kv[1][0]["manifest"]["log"]["index"]):
        claimed.update(r["record_id"] for r in fields["manifest"]["records"])
        if sid in indexed:
            continue
        if all(r["record_id"] in records for r in fields["manifest"]["records"]):
            _reindex(archive, fields, meta, records)
            result.reindexed.append(sid)
    # Exchanges written before any manifest: commit them now, as new snapshots.
    for capture, locations, rec in _orphan_captures(records, indexed_records | claimed):
        row = _commit_orphan(archive, capture, locations, rec, records)
        result.recommitted.append(row.id)
    return result


def _reindex(archive: Archive, fields: dict[str, Any], meta: Any, records: dict[str, _Scanned]) -> None:
    """Commit a signed manifest whose index transaction was lost."""
    manifest = fields["manifest"]
    digest = sha256_hex(canonical_json(manifest))
    url = manifest["url"]
    response_id = [r for r in manifest["records"] if r["type"] in ("response", "revisit")][-1]["record_id"]
    resp = records[response_id]
    with archive.index.write() as conn:
        ledger = MerkleLog(conn)
        prev = archive.index.last_snapshot(url, conn)
        prev_digest = prev.manifest_sha256 if prev else None
        if ledger.size() == manifest["log"]["index"] and manifest.get("previous_manifest_sha256") == prev_digest:
            ledger.append(bytes.fromhex(digest), manifest["snapshot_id"])
            ledger.checkpoint(archive.provenance.origin, archive.provenance.keys.signer(), archive.c.clock())
        else:
            # Another writer took this log index (or extended the URL's chain)
            # after the crash: sign the manifest again at the log's end, and
            # write the new one beside the old, which it names.
            old_digest = digest
            log.warning("re-logging %s: its log index %s was taken", manifest["snapshot_id"], manifest["log"]["index"])
            signed = archive.provenance.sign_snapshot(
                conn,
                lambda idx, origin: {**manifest, "log": {"origin": origin, "index": idx},
                                     "previous_manifest_sha256": prev_digest, "relogged_from": old_digest},
                manifest["snapshot_id"],
            )
            resp_loc = resp.location()
            (meta_loc,) = archive.writer.append([metadata_record(
                manifest["final_url"], resp_loc.date, resp_loc.record_id, signed.record_fields(), archive.c.new_uuid)])
            manifest, digest = signed.manifest, signed.digest
            fields = signed.record_fields()
            meta = _Relocated(meta_loc)
        http = _http_headers(resp.rec)
        row = SnapshotRow(
            id=manifest["snapshot_id"], url=url, seq=archive.index.next_seq(conn, url), final_url=manifest["final_url"],
            captured_at=manifest["fetch_started_at"], ended_at=manifest["fetch_ended_at"], status=manifest["status"],
            content_type=http.get_header("Content-Type") if http else None, payload_sha256=manifest["payload_sha256"],
            revisit=resp.rec.type == "revisit", original_id=None, warc_file=resp.name, warc_offset=resp.member.offset,
            warc_length=resp.member.length, response_record_id=response_id, text_sha256=manifest.get("text_sha256"),
            prev_id=prev.id if prev else None, significance=manifest.get("significance", "none"), diff_json=None,
            manifest_json=canonical_json(manifest).decode("utf-8"), manifest_sha256=digest,
            signature=fields["signature"], key_id=fields["key_id"], log_index=manifest["log"]["index"],
        )
        rows = [_record_row(row.id, i // 2, records[r["record_id"]].location()) for i, r in enumerate(manifest["records"])]
        rows.append(_record_row(row.id, rows[-1].hop if rows else 0, meta.location()))
        archive.index.insert_snapshot(conn, row, rows)
    if row.text_sha256 and archive.index.text(row.text_sha256) is None:
        article = archive.article(row)
        if article is not None:
            with archive.index.write() as conn:
                archive.index.put_text(conn, row.text_sha256, article.language, article.to_json())


@dataclass
class _Relocated:
    """A record repair itself just wrote: only its location is needed."""

    loc: RecordLocation

    def location(self) -> RecordLocation:
        return self.loc


def _record_row(sid: str, hop: int, loc: RecordLocation) -> RecordRow:
    return RecordRow(loc.record_id, sid, hop, loc.record_type, loc.target_uri, loc.date, loc.warc_file, loc.offset,
                     loc.length, loc.sha256, loc.payload_digest)


def _http_headers(rec: ParsedRecord) -> Any:
    head, _ = rec.http_split()
    try:
        return StatusAndHeadersParser(["HTTP/1.0", "HTTP/1.1"], verify=False).parse(io.BytesIO(head))
    except Exception:  # noqa: BLE001 - a broken head only loses the content type
        return None


def _orphan_captures(records: dict[str, _Scanned], known: set[str]):  # type: ignore[no-untyped-def]
    """Group unclaimed response/request pairs into captures (redirect chains)."""
    requests_for = {
        s.rec.headers.get("WARC-Concurrent-To"): s for s in records.values() if s.rec.type == "request"
    }
    pending = [
        s for s in records.values()
        if s.rec.type in ("response", "revisit") and s.rec.record_id not in known and s.rec.record_id in requests_for
    ]
    pending.sort(key=lambda s: (s.name, s.member.offset))
    chain: list[_Scanned] = []
    for s in pending:
        if chain and not _redirects_to(chain[-1], s):
            yield _capture(chain, requests_for)
            chain = []
        chain.append(s)
    if chain:
        yield _capture(chain, requests_for)


def _redirects_to(prev: _Scanned, nxt: _Scanned) -> bool:
    http = _http_headers(prev.rec)
    if http is None or prev.name != nxt.name:
        return False
    status = int((http.get_statuscode() or "0")[:3] or 0)
    location = http.get_header("Location")
    if status not in REDIRECT_STATUSES or not location:
        return False
    from urllib.parse import urljoin

    return urljoin(prev.rec.headers.get("WARC-Target-URI", ""), location) == nxt.rec.headers.get("WARC-Target-URI")


def _capture(chain: list[_Scanned], requests_for: dict[str | None, _Scanned]):  # type: ignore[no-untyped-def]
    hops = []
    locations = []
    for s in chain:
        req = requests_for[s.rec.record_id]
        http = _http_headers(s.rec)
        when = datetime.fromisoformat(s.rec.headers["WARC-Date"].replace("Z", "+00:00"))
        hops.append(Hop(
            url=s.rec.headers.get("WARC-Target-URI", ""), started_at=when, ended_at=when,
            request_bytes=req.rec.block, response_bytes=s.rec.block,
            status=int((http.get_statuscode() or "0")[:3]) if http else 0, ip=s.rec.headers.get("WARC-IP-Address"),
            tls=None, request_headers=_header_dict(req.rec), response_headers={k.lower(): v for k, v in (http.headers if http else [])},
            body=b"", payload=s.rec.payload(),
        ))
        locations += [s.location(), req.location()]
    return Capture(url=hops[0].url, hops=hops), locations, chain[-1]


def _header_dict(rec: ParsedRecord) -> dict[str, str]:
    http = _http_headers(rec)
    return dict(http.headers) if http else {}


def _commit_orphan(archive: Archive, capture: Capture, locations: list[RecordLocation], last: _Scanned,
                   records: dict[str, _Scanned]) -> SnapshotRow:
    final = capture.final
    revisit = last.rec.type == "revisit"
    if revisit:
        label = last.rec.headers.get("WARC-Payload-Digest", "")
        payload_sha256 = label_hex(label) or ""
        target = records.get(last.rec.headers.get("WARC-Refers-To", ""))
        body = target.rec.payload() if target else b""
    else:
        payload_sha256 = final.payload_sha256
        body = final.payload
    content_type = final.response_headers.get("content-type", "")
    final.body = decode_content(body, final.response_headers.get("content-encoding", ""))
    article = archive._extract(final.body, content_type, final.url)
    return archive.commit_located(capture, locations, article=article, payload_sha256=payload_sha256,
                                  content_type=content_type, revisit=revisit).row

"""The Archive: one object built from settings that every command calls.

It owns the components (capturer, WARC writer, index, keys, log) and runs
the snapshot flow of DESIGN.md: capture -> WARC append + fsync -> extract and
diff -> signed manifest + log leaf + metadata record -> one index commit.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence

from archiver import __version__
from archiver.canonical import canonical_json, sha256_hex
from archiver.capture.addresses import AddressPolicy
from archiver.capture.deadline import Resolver, system_resolver
from archiver.capture.http import Capture, CaptureLimits, Capturer
from archiver.capture.outbound import Outbound
from archiver.capture.userinfo import strip_userinfo
from archiver.capture.records import (
    RevisitTarget,
    exchange_records,
    intent_uri,
    manifest_record,
    metadata_record,
    record_id,
)
from archiver.capture.requisite_records import REQUISITE_HOP, RequisitePlan, plan_records
from archiver.capture.requisites import RequisiteLimits, Requisites, fetch_requisites
from archiver.config import Settings
from archiver.errors import ArchiverError, NotFoundError, UsageError
from archiver.ids import SnapshotIds, random_uuid
from archiver.provenance.manifest import build_manifest
from store.backends import WarcStore, WarcWriter, open_index, open_warcs
from store.index import RecordRow, SnapshotRow
from store.warc import RecordLocation, WarcInfo, hold_dir, warc_date

if TYPE_CHECKING:
    from archiver.changes.diff import DiffResult
    from archiver.changes.extract import Article
    from archiver.provenance.notary import Notary

log = logging.getLogger(__name__)

HTML_TYPES = ("text/html", "application/xhtml+xml", "text/plain", "application/xml", "text/xml")


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class SnapshotResult:
    """What ``archiver snapshot --json`` prints for one URL."""

    row: SnapshotRow
    response_headers: dict[str, str] = field(default_factory=dict)  # final hop, lower-case names
    requisites: dict[str, Any] | None = None  # the manifest's requisite counts; None when not fetched

    def to_json(self) -> dict[str, Any]:
        r = self.row
        diff = r.diff or {}
        return {
            "id": r.id,
            "url": r.url,
            "final_url": r.final_url,
            "captured_at": r.captured_at,
            "status": r.status,
            "payload_sha256": r.payload_sha256,
            "warc_file": r.warc_file,
            "warc_offset": r.warc_offset,
            "significance": r.significance,
            "revisit": r.revisit,
            "log_index": r.log_index,
            "figures": diff.get("figures", []),
            **({"requisites": self.requisites} if self.requisites is not None else {}),
        }


@dataclass(frozen=True)
class SnapshotFailure:
    url: str
    error: str

    def to_json(self) -> dict[str, Any]:
        return {"url": self.url, "error": self.error}


@dataclass
class Components:
    """Injectable collaborators; tests pass a fixed clock and id generators."""

    clock: Callable[[], datetime] = utc_now
    new_uuid: Callable[[], str] = random_uuid
    resolver: Resolver = system_resolver  # name -> addresses; every outbound request resolves once
    snapshot_ids: Callable[[], str] | None = None
    hostname: str = field(default_factory=socket.gethostname)


class Archive:
    def __init__(self, settings: Settings, components: Components | None = None) -> None:
        self.settings = settings
        self.c = components or Components()
        self.root = settings.data_path
        self.warc_dir = self.root / "warcs"  # the embedded store's directory
        self._dir_fd = hold_dir(self.root)  # in use: never removed as empty meanwhile (cli.main)
        try:
            self.index = open_index(settings.storage)
        except BaseException:
            os.close(self._dir_fd)
            raise
        try:
            self.warcs: WarcStore = open_warcs(settings.storage)
        except BaseException:
            self.index.close()
            os.close(self._dir_fd)
            raise
        self.new_snapshot_id = self.c.snapshot_ids or SnapshotIds(self.c.clock)
        self._writer: WarcWriter | None = None
        self._capturer: Capturer | None = None
        self._outbound: Outbound | None = None
        self._provenance: Notary | None = None
        # Capture threads reach the lazily built components at once; without
        # this lock two of them could each open a WARC file (one left .open).
        self._build_lock = threading.Lock()
        # Files this process wrote, and captures whose records were written but
        # not committed: with none of those, close() marks the files settled so
        # start-up repair need not read them (audit/settled.py).
        self._written: set[str] = set()
        self._unsettled = 0

    # -- lazily built components (read-only commands never open a WARC) -----
    @property
    def writer(self) -> WarcWriter:
        if self._writer is not None:
            return self._writer
        with self._build_lock:
            if self._writer is None:
                self._writer = self._make_writer()
        return self._writer

    def _make_writer(self) -> WarcWriter:
        return self.warcs.writer(
            WarcInfo(
                software=f"archiver/{__version__}",
                operator=self.settings.archive.operator,
                hostname=self.c.hostname,
                description="archiver snapshots: request/response/revisit records and signed manifests",
            ),
            prefix=self.settings.archive.warc_prefix,
            max_size=self.settings.archive.warc_max_size,
            clock=self.c.clock,
            record_id=lambda: record_id(self.c.new_uuid),
        )

    @property
    def outbound(self) -> Outbound:
        """The one vetted outbound HTTP path (captures, feeds, webhooks)."""
        if self._outbound is None:
            cs = self.settings.capture
            self._outbound = Outbound(
                AddressPolicy.from_settings(cs.allow_private, cs.allow_networks, cs.deny_networks),
                ca_bundle=cs.ca_bundle or True,
                resolver=self.c.resolver,
            )
        return self._outbound

    @property
    def capturer(self) -> Capturer:
        if self._capturer is not None:
            return self._capturer
        with self._build_lock:
            if self._capturer is None:
                self._capturer = self._make_capturer()
        return self._capturer

    def _make_capturer(self) -> Capturer:
        cs = self.settings.capture
        return Capturer(
            outbound=self.outbound,
            limits=CaptureLimits(
                connect_timeout=cs.connect_timeout,
                read_timeout=cs.read_timeout,
                total_timeout=cs.total_timeout,
                max_body_bytes=cs.max_body_bytes,
                max_decoded_bytes=cs.max_decoded_bytes,
                max_redirects=cs.max_redirects,
            ),
            user_agent=cs.user_agent.format(version=__version__, contact=cs.contact),
            clock=self.c.clock,
        )

    @property
    def provenance(self) -> Notary:
        if self._provenance is not None:
            return self._provenance
        from archiver.provenance.notary import Notary

        with self._build_lock:
            if self._provenance is None:
                self._provenance = Notary.open(
                    self.settings, self.index, clock=self.c.clock, hostname=self.c.hostname
                )
        return self._provenance

    def close(self) -> None:
        with self._build_lock:
            writer = self._writer
        if writer is not None:
            writer.close()
            with self._build_lock:
                written, clean = set(self._written), self._unsettled == 0
            if written and clean:
                from archiver.audit.settled import mark_settled

                try:
                    mark_settled(self.index, self.warcs, written)
                except ArchiverError as exc:  # only costs the next repair a read of these files
                    log.warning("cannot mark WARC files settled: %s", exc)
        self.index.close()
        if self._dir_fd >= 0:
            os.close(self._dir_fd)
            self._dir_fd = -1

    def note_written(self, locations: list[RecordLocation], *, unsettled: int = 0) -> None:
        """Remember the files records went to (and captures not yet committed) for close()."""
        with self._build_lock:
            self._written.update(loc.warc_file for loc in locations)
            self._unsettled += unsettled

    def __enter__(self) -> "Archive":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- snapshot --------------------------------------------------------------
    def snapshot(self, url: str, *, headers: dict[str, str] | None = None) -> SnapshotResult:
        """Capture ``url`` now and commit it; raises ArchiverError on failure."""
        with self.writer.hold(self.c.clock()):  # the file's warcinfo is dated before this capture
            capture = self.capturer.capture(url, headers=headers)
            return self.commit_capture(capture, self.requisites(capture))

    def requisites(self, capture: Capture) -> Requisites | None:
        """Fetch what the captured page needs to look right; None when turned off."""
        cs = self.settings.capture
        if not cs.requisites:
            return None
        body = None
        if capture.final.status == 304:  # not modified: the page is the previous snapshot's
            prev = self.index.last_snapshot(capture.url)
            body = self.body(prev) if prev is not None else None
        limits = RequisiteLimits(cs.requisites_max_count, cs.requisites_max_bytes, cs.requisites_timeout,
                                 cs.requisites_workers)
        return fetch_requisites(self.capturer, capture, limits, body=body)

    def snapshot_many(
        self, urls: Iterable[str], *, workers: int | None = None
    ) -> Iterator[SnapshotResult | SnapshotFailure]:
        """Capture many URLs with a bounded pool, yielding results as they finish."""
        urls = list(urls)
        workers = max(1, min(workers or self.settings.capture.workers, len(urls) or 1))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="capture") as pool:
            futures = {pool.submit(self.snapshot, u): u for u in urls}
            for fut in as_completed(futures):
                url = futures[fut]
                try:
                    yield fut.result()
                except ArchiverError as exc:
                    yield SnapshotFailure(strip_userinfo(url), str(exc))

    def commit_capture(self, capture: Capture, requisites: Requisites | None = None) -> SnapshotResult:
        """Write a fresh capture's records (and its requisites'), then sign and index it."""
        final = capture.final
        url = capture.url
        content_type = final.response_headers.get("content-type", "")
        prev_guess = self.index.last_snapshot(url)
        if final.status == 304 and prev_guess is not None:
            # A conditional request answered 304: the content is the previous snapshot's.
            payload_sha256 = prev_guess.payload_sha256
            content_type = prev_guess.content_type or ""
            article = self.article(prev_guess)
        else:
            payload_sha256 = final.payload_sha256
            article = self.read_article(prev_guess, final.body, content_type, final.url)
        # Deduplicate the final payload against this URL's earlier responses.
        original = self.index.original_for_payload(url, payload_sha256)
        records = []
        for i, hop in enumerate(capture.hops):
            target = None
            if i == len(capture.hops) - 1 and original is not None:
                target = RevisitTarget(original.target_uri, original.date, original.record_id, original.payload_digest)
            records.extend(exchange_records(hop, self.c.new_uuid, target))
        plan = plan_records(requisites, self.index, self.c.new_uuid) if requisites is not None else None
        located = self.append_sealed(records, plan.records if plan else [])
        self.note_written(located, unsettled=1)
        result = self.commit_located(
            capture, located[: len(records)], article=article, payload_sha256=payload_sha256,
            content_type=content_type, revisit=original is not None,
            requisites=(plan, located[len(records):]) if plan else None,
        )
        self.note_written([], unsettled=-1)
        return result

    def append_sealed(self, records: list[Any], extra: Sequence[Any] = ()) -> list[RecordLocation]:
        """Append a capture's records (the page's, then ``extra``: its requisites')
        followed by its signed intent (provenance/intent.py), so that ``repair``
        can later prove this archive wrote them."""
        from archiver.provenance.intent import INTENT_CONTENT_TYPE, sign_intent

        signer = self.provenance.keys.signer()
        response = records[-2].rec_headers

        def seal(digests: list[tuple[str, str]]) -> Any:
            intent = sign_intent(digests, signer, self.c.clock())
            return metadata_record(
                intent_uri(response.get_header("WARC-Record-ID")), response.get_header("WARC-Date"),
                response.get_header("WARC-Record-ID"), intent.to_json(), self.c.new_uuid, INTENT_CONTENT_TYPE,
            )

        return self.writer.append([*records, *extra], seal=seal)

    def commit_located(
        self,
        capture: Capture,
        locations: list[RecordLocation],
        *,
        article: Article | None,
        payload_sha256: str,
        content_type: str,
        revisit: bool,
        requisites: tuple[RequisitePlan, list[RecordLocation]] | None = None,
    ) -> SnapshotResult:
        """Sign and index a capture whose records are already in a WARC file.

        Also the path ``repair`` takes for records whose index commit was lost.
        ``requisites`` are the page's requisite records and where they landed.
        """
        final = capture.final
        url = capture.url
        prev_guess = self.index.last_snapshot(url)
        text_sha = sha256_hex(article.text().encode("utf-8")) if article is not None else None
        diff = self._diff(prev_guess, article)
        snapshot_id = self.new_snapshot_id()
        with self.index.write() as conn:
            prev = self.index.last_snapshot(url, conn)
            if (prev and prev.id) != (prev_guess and prev_guess.id):
                diff = self._diff(prev, article)
            if prev is None:
                significance = "first"
            elif diff:
                significance = diff["significance"]
            else:
                significance = _payload_significance(prev, payload_sha256)
            signed = self.provenance.sign_snapshot(
                conn,
                lambda log_index, origin: build_manifest(
                    snapshot_id=snapshot_id,
                    capture=capture,
                    locations=locations,
                    text_sha256=text_sha,
                    payload_sha256=payload_sha256,
                    significance=significance,
                    prev_manifest_sha256=prev.manifest_sha256 if prev else None,
                    log_index=log_index,
                    log_origin=origin,
                    hostname=self.c.hostname,
                    requisites=requisites[0].manifest(requisites[1]) if requisites else None,
                ),
                snapshot_id,
            )
            response_loc = locations[-2]
            meta = manifest_record(
                snapshot_id, warc_date(self.c.clock()), response_loc.record_id, signed.record_fields(), self.c.new_uuid
            )
            (meta_loc,) = self.writer.append([meta])
            self.note_written([meta_loc])
            if article is not None and text_sha is not None:
                self.index.put_text(conn, text_sha, article.language, article.to_json())
            row = SnapshotRow(
                id=snapshot_id,
                url=url,
                seq=self.index.next_seq(conn, url),
                final_url=final.url,
                captured_at=warc_date(capture.started_at),
                ended_at=warc_date(capture.ended_at),
                status=final.status,
                content_type=content_type or None,
                payload_sha256=payload_sha256,
                revisit=revisit,
                original_id=None,
                warc_file=response_loc.warc_file,
                warc_offset=response_loc.offset,
                warc_length=response_loc.length,
                response_record_id=response_loc.record_id,
                text_sha256=text_sha,
                prev_id=prev.id if prev else None,
                significance=significance,
                diff_json=json.dumps(diff, ensure_ascii=False) if (diff and prev) else None,
                manifest_json=canonical_json(signed.manifest).decode("utf-8"),
                manifest_sha256=signed.digest,
                signature=signed.signature,
                key_id=signed.key_id,
                log_index=signed.manifest["log"]["index"],
            )
            rows = _record_rows(snapshot_id, capture, locations, meta_loc)
            rows += [_row(snapshot_id, REQUISITE_HOP, loc) for loc in (requisites[1] if requisites else [])]
            self.index.insert_snapshot(conn, row, rows)
        if self.settings.signing.tsa_urls:
            self.provenance.timestamp_latest(
                self.settings.signing.tsa_urls, self.root, self.settings.signing.tsa_timeout
            )
        log.info("captured %s status=%s significance=%s id=%s", url, final.status, significance, snapshot_id)
        counts = {k: v for k, v in signed.manifest["requisites"].items() if k != "items"} if requisites else None
        return SnapshotResult(row, dict(final.response_headers), counts)

    # -- reading ---------------------------------------------------------------
    def history(self, url: str) -> list[SnapshotRow]:
        url = strip_userinfo(url)  # archived under the URL without credentials
        rows = self.index.history(url)
        if not rows:
            raise NotFoundError(f"no snapshots of {url} in {self.root}")
        return rows

    def resolve(self, url: str, snapshot_id: str | None) -> SnapshotRow:
        """A URL's snapshot by id (or unique id prefix); the newest when None."""
        if snapshot_id is None:
            return self.history(url)[-1]
        matches = self.index.find_snapshots(strip_userinfo(url), snapshot_id)
        if not matches:
            raise NotFoundError(f"no snapshot {snapshot_id!r} of {url}")
        if len(matches) > 1:
            raise UsageError(f"snapshot id prefix {snapshot_id!r} is ambiguous ({len(matches)} matches)")
        return matches[0]

    def snapshot_by_id(self, snapshot_id: str) -> SnapshotRow:
        """A snapshot by its full id, whatever its URL."""
        row = self.index.snapshot(snapshot_id)
        if row is None:
            raise NotFoundError(f"no snapshot {snapshot_id!r} in the archive")
        return row

    def history_json(self, url: str) -> list[dict[str, Any]]:
        """The contract's history items (``archiver history --json``)."""
        return [history_item(r) for r in self.history(url)]

    def snapshot_json(self, row: SnapshotRow) -> dict[str, Any]:
        """``archiver show --json``: the snapshot with its signed manifest."""
        data = SnapshotResult(row).to_json()
        data["manifest"] = json.loads(row.manifest_json) if row.manifest_json else None
        text = self.index.text(row.text_sha256) if row.text_sha256 else None
        data["extraction"] = ({"method": text.get("method"), "notes": list(text.get("notes") or [])}
                              if text is not None else None)
        return data

    def signed_manifest(self, row: SnapshotRow) -> dict[str, Any]:
        """``archiver show --provenance``: manifest, digest, signature, key id."""
        return {
            "manifest": json.loads(row.manifest_json or "null"),
            "manifest_sha256": row.manifest_sha256,
            "signature": row.signature,
            "key_id": row.key_id,
        }

    def recent_changes(
        self, significances: tuple[str, ...], *, url_contains: str = "", limit: int = 50, offset: int = 0
    ) -> list[SnapshotRow]:
        """Newest snapshots of the given significances across all URLs, newest first.

        One indexed query per significance (newest first, stopping at
        ``offset + limit``), merged here: the cost follows the page asked
        for, not the size of the archive.
        """
        like = "%" + url_contains.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows: list[SnapshotRow] = []
        for significance in significances:
            found = self.index.query(
                "SELECT * FROM snapshots WHERE significance=? AND url LIKE ? ESCAPE '\\' "
                "ORDER BY captured_at DESC, id DESC LIMIT ?",
                (significance, like, offset + limit),
            )
            rows.extend(SnapshotRow.from_row(r) for r in found)
        rows.sort(key=lambda r: (r.captured_at, r.id), reverse=True)
        return rows[offset : offset + limit]

    def body(self, row: SnapshotRow) -> bytes:
        """The decoded response body of a snapshot (following a revisit)."""
        rec = self.warcs.read_record(row.warc_file, row.warc_offset, row.warc_length)
        if rec.type == "revisit":
            target = rec.header("WARC-Refers-To")
            rows = [r for r in self.index.query("SELECT * FROM records WHERE record_id=?", (target,))]
            if not rows:
                raise NotFoundError(f"revisit {row.id} refers to a record missing from the index: {target}")
            orig = RecordRow(**dict(rows[0]))
            rec = self.warcs.read_record(orig.warc_file, orig.warc_offset, orig.warc_length)
        return rec.content

    def article(self, row: SnapshotRow) -> Article | None:
        from archiver.changes.extract import Article

        if row.text_sha256:
            data = self.index.text(row.text_sha256)
            if data is not None:
                return Article.from_json(data)
        return self._extract(self.body(row), row.content_type or "", row.final_url)

    def diff(self, url: str, from_id: str | None, to_id: str | None) -> dict[str, Any]:
        """The contract's diff JSON: from, to, significance, figures, changes."""
        a, b, result = self.diff_result(url, from_id, to_id)
        return {"from": a.id, "to": b.id, "url": url, **result.to_json()}

    def diff_result(self, url: str, from_id: str | None, to_id: str | None) -> tuple[SnapshotRow, SnapshotRow, DiffResult]:
        from archiver.changes.diff import diff_articles

        a, b = self.diff_pair(url, from_id, to_id)
        art_a, art_b = self.article(a), self.article(b)
        if art_a is None or art_b is None:
            raise NotFoundError(f"snapshots of {url} have no article text to compare")
        return a, b, diff_articles(self._same_method(a, art_a, art_b), art_b)

    def diff_pair(
        self, url: str, from_id: str | None, to_id: str | None, history: list[SnapshotRow] | None = None
    ) -> tuple[SnapshotRow, SnapshotRow]:
        """Which two snapshots a diff compares: default the last two; ``--to`` alone: it and the one before."""
        history = history if history is not None else self.history(url)
        if from_id is None and to_id is None:
            if len(history) < 2:
                raise NotFoundError(f"{url} has only one snapshot; nothing to diff")
            return history[-2], history[-1]
        b = self.resolve(url, to_id)
        if from_id is None:
            earlier = [r for r in history if r.seq < b.seq]
            if not earlier:
                raise NotFoundError(f"snapshot {b.id} is the first of {url}; nothing to diff")
            return earlier[-1], b
        return self.resolve(url, from_id), b

    # -- helpers ---------------------------------------------------------------
    def _extract(self, body: bytes, content_type: str, url: str, *, method: str | None = None) -> Article | None:
        """The article of a response body, read with ``method`` when given; None when there is none."""
        from archiver.changes.extract import ExtractLimits, extract_article

        if content_type and not any(t in content_type.lower() for t in HTML_TYPES):
            return None
        if not body:
            return None
        d = self.settings.diff
        limits = ExtractLimits(max_elements=d.extract_max_elements, max_depth=d.extract_max_depth,
                               max_text=d.extract_max_text, timeout=d.extract_timeout)
        try:
            return extract_article(
                body, content_type=content_type, url=url, language_hint=d.default_language or None,
                method=method, limits=limits,
            )
        except ArchiverError as exc:
            log.warning("no article text for %s: %s", url, exc)
            return None

    def read_article(self, prev: SnapshotRow | None, body: bytes, content_type: str, url: str) -> Article | None:
        """The article of a new capture, read with the method of the URL's previous snapshot ``prev``."""
        return self._extract(body, content_type, url, method=self._method_of(prev))

    def _method_of(self, prev: SnapshotRow | None) -> str | None:
        """The extraction method of a URL's previous capture: kept, so furniture cannot flip it."""
        if prev is None or not prev.text_sha256:
            return None
        data = self.index.text(prev.text_sha256)
        return str(data.get("method")) if data and data.get("method") else None

    def _same_method(self, prev: SnapshotRow, before: Article, after: Article) -> Article:
        """``before`` read the way ``after`` was, so a diff never compares two methods.

        The method only changes when the kept one finds no text at all; then
        the earlier version is read again from its WARC record.
        """
        if before.method is None or after.method is None or before.method == after.method:
            return before
        try:
            again = self._extract(self.body(prev), prev.content_type or "", prev.final_url, method=after.method)
        except ArchiverError as exc:
            log.warning("could not re-read %s with %s: %s", prev.id, after.method, exc)
            return before
        return again if again is not None and again.method == after.method else before

    def _diff(self, prev: SnapshotRow | None, article: Article | None) -> dict[str, Any] | None:
        from archiver.changes.diff import diff_articles

        if prev is None or article is None:
            return None
        before = self.article(prev)
        if before is None:
            return None
        return diff_articles(self._same_method(prev, before, article), article).to_json()


def history_item(r: SnapshotRow) -> dict[str, Any]:
    """One item of ``archiver history --json`` (and ``/api/v1/history``)."""
    return {
        "id": r.id,
        "captured_at": r.captured_at,
        "status": r.status,
        "payload_sha256": r.payload_sha256,
        "significance": r.significance,
        "revisit": r.revisit,
        "figures": (r.diff or {}).get("figures", []),
    }


def _payload_significance(prev: SnapshotRow, payload_sha256: str) -> str:
    """Without article text (images, PDFs), only the bytes can be compared."""
    return "none" if prev.payload_sha256 == payload_sha256 else "substantive"


def _record_rows(
    snapshot_id: str, capture: Capture, locations: list[RecordLocation], meta_loc: RecordLocation
) -> list[RecordRow]:
    rows = []
    for i, loc in enumerate(locations):
        rows.append(_row(snapshot_id, i // 2, loc))
    rows.append(_row(snapshot_id, len(capture.hops) - 1, meta_loc))
    return rows


def _row(snapshot_id: str, hop: int, loc: RecordLocation) -> RecordRow:
    return RecordRow(
        record_id=loc.record_id,
        snapshot_id=snapshot_id,
        hop=hop,
        type=loc.record_type,
        target_uri=loc.target_uri,
        date=loc.date,
        warc_file=loc.warc_file,
        warc_offset=loc.offset,
        warc_length=loc.length,
        sha256=loc.sha256,
        payload_digest=loc.payload_digest,
    )

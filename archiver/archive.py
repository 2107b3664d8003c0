"""The Archive: one object built from settings that every command calls.

It owns the components (capturer, WARC writer, index, keys, log: built in
:mod:`archiver.components`) and runs the snapshot flow of DESIGN.md:
capture -> WARC append + fsync -> extract and diff -> signed manifest + log
leaf + metadata record -> one index commit.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from enum import Enum
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence

from archiver.canonical import sha256_hex
from archiver.capture.records import (
    RevisitTarget,
    exchange_records,
    intent_uri,
    metadata_record,
)
from archiver.capture.userinfo import strip_userinfo
from archiver.components import ArchiveComponents
from archiver.components import Components as Components  # re-exported: built by callers with an Archive
from archiver.components import utc_now as utc_now
from archiver.errors import ArchiverError, CaptureError
from archiver.grouping import GroupCommitter, Handoff, in_workers
from archiver.reading import is_text_type
from archiver.results import SnapshotFailure as SnapshotFailure
from archiver.results import SnapshotResult as SnapshotResult
from store.index import SnapshotRow, packed_article
from store.warc import RecordLocation

if TYPE_CHECKING:  # the capture stack (urllib3, TLS, requisites) loads when a capture needs it, not on a reader's start-up
    from archiver.capture.http import Capture
    from archiver.capture.requisite_records import RequisitePlan
    from archiver.capture.requisites import Requisites
    from archiver.changes.extract import Article
    from archiver.committing import Fence, Pending
    from archiver.pages import PageReading

log = logging.getLogger(__name__)


class _Unread(Enum):
    """Marks an argument the caller has not read yet (None is a real answer)."""

    UNREAD = 0


class Archive(ArchiveComponents):
    """Runs the snapshot flow over the components :class:`ArchiveComponents`
    builds from settings (the reading half is :class:`ArchiveReads`, what a
    capture takes over from an earlier snapshot :class:`CaptureTakeover`)."""

    # -- snapshot --------------------------------------------------------------
    def snapshot(self, url: str, *, headers: dict[str, str] | None = None, fence: Fence | None = None,
                 written: Callable[[], None] | None = None) -> SnapshotResult:
        """Capture ``url`` now and commit it; raises ArchiverError on failure.
        ``fence``: a shared daemon's lease on the URL, confirmed before the
        capture's records are written and again in its commit (LeaseLost).
        ``written``: called once every request of the capture is done, its
        records are written and it has nothing left but to wait for its commit
        (archiver/grouping.py: queued behind another commit round, its own
        round at its fsyncs, or that round slow) -- the caller's worker may
        start the next capture (:meth:`snapshot_many`, the daemon's
        dispatcher); not called for a capture that fails before."""
        with self.writer.hold(self.c.clock()):  # the file's warcinfo is dated before this capture
            capture = self.capturer.capture(url, headers=headers)
            prev_guess = self.index.last_snapshot(capture.url)
            reading = self.read_page(capture, prev_guess)
            return self.commit_capture(capture, self.requisites(capture, reading), reading, prev_guess, fence,
                                       written=written)

    def read_page(self, capture: Capture, prev: SnapshotRow | None) -> PageReading:
        """Parse the captured page once: the requisites it names and its article
        (read with the method kept for the URL; a 304's is ``prev``'s own)."""
        from archiver.changes.extract import deterministic
        from archiver.pages import PageJob, PageReading

        final = capture.final
        content_type = final.response_headers.get("content-type", "")
        not_modified = final.status == 304 and prev is not None
        wants_refs = self.settings.capture.requisites and ("html" in content_type.lower() or not content_type)
        body = final.body
        vouched = None
        if not_modified:
            assert prev is not None
            # The content is the previous snapshot's: signed again only as this key signed it.
            vouched = self.vouched(prev)
            if vouched is None:
                raise CaptureError(
                    f"{final.url} answered 304 Not Modified, but this archive's key cannot vouch for the "
                    f"previous snapshot {prev.id} it refers to; nothing recorded (the next capture asks afresh)"
                )
            body = self.body(prev) if wants_refs else b""  # the page is the previous snapshot's
        # An unchanged page read the same way before: its stored text, not a new extraction.
        reused = None if not_modified else self.reusable_article(prev, final.payload_sha256, content_type)
        wants_article = reused is None and not not_modified and bool(body) and is_text_type(content_type)
        reading = PageReading()
        if body and (wants_refs or wants_article):
            reading = self.pages.read(PageJob(
                body, content_type, final.url, self.extract_limits(), self._method_of(prev) if wants_article else None,
                self.settings.diff.default_language or None, refs=wants_refs, article=wants_article))
        if reading.error and wants_article:
            log.warning("no article text for %s: %s", final.url, reading.error)
        if vouched is not None:  # a 304
            return replace(reading, article=vouched.article, reader=prev.reader if prev and vouched.article else None)
        if reused is not None or (reading.article is not None and deterministic(reading.article)):
            return replace(reading, article=reused or reading.article, reader=self.reader(), reused=reused is not None)
        return reading

    def requisites(self, capture: Capture, reading: PageReading | None = None) -> Requisites | None:
        """Fetch what the captured page needs to look right (what ``reading``
        found in it; read here when not given); None when turned off."""
        cs = self.settings.capture
        if not cs.requisites:
            return None
        if reading is None:
            reading = self.read_page(capture, self.index.last_snapshot(capture.url))
        from archiver.capture.requisites import RequisiteLimits, fetch_requisites

        limits = RequisiteLimits(cs.requisites_max_count, cs.requisites_max_bytes, cs.requisites_timeout,
                                 cs.requisites_workers)
        return fetch_requisites(self.capturer, capture, limits, reading.refs)

    def snapshot_many(
        self, urls: Iterable[str], *, workers: int | None = None
    ) -> Iterator[SnapshotResult | SnapshotFailure]:
        """Capture many URLs, ``workers`` at a time, yielding results as they finish.
        A capture holds a worker's place until its records are written, then
        waits for its commit in a thread of its own (archiver/grouping.py)."""
        urls = list(urls)
        workers = max(1, min(workers or self.settings.capture.workers, len(urls) or 1))
        self.parallel(workers)
        for url, outcome in in_workers(urls, workers, lambda u, give_back: self.snapshot(u, written=give_back)):
            if isinstance(outcome, ArchiverError):
                yield SnapshotFailure(strip_userinfo(url), str(outcome))
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                yield outcome

    def commit_capture(self, capture: Capture, requisites: Requisites | None, reading: PageReading,
                       prev_guess: SnapshotRow | None, fence: Fence | None = None,
                       written: Callable[[], None] | None = None) -> SnapshotResult:
        """Write a fresh capture's records (and its requisites'), then sign and index it.

        ``reading`` is what :meth:`read_page` read from it; ``prev_guess`` the
        URL's previous snapshot as read before (checked again under the lock);
        ``written`` is called once the records are written, before the commit."""
        final = capture.final
        url = capture.url
        content_type = final.response_headers.get("content-type", "")
        article = reading.article
        if final.status == 304 and prev_guess is not None:
            # A conditional request answered 304: the content is the previous snapshot's.
            payload_sha256 = prev_guess.payload_sha256
            content_type = prev_guess.content_type or ""
        else:
            payload_sha256 = final.payload_sha256
        # Deduplicate the final payload against this URL's earlier responses, each read back (the
        # index is not proof); a URL not captured before has none: no lookup for a first capture.
        from archiver.capture.originals import CheckedOriginals

        originals = CheckedOriginals(self.index, self.warcs)
        original = originals.original_for_payload(url, payload_sha256) if prev_guess is not None else None
        records = []
        for i, hop in enumerate(capture.hops):
            target = None
            if i == len(capture.hops) - 1 and original is not None:
                target = RevisitTarget(original.target_uri, original.date, original.record_id, original.payload_digest)
            records.extend(exchange_records(hop, self.c.new_uuid, target))
        plan = None
        if requisites is not None:
            from archiver.capture.requisite_records import plan_records

            plan = plan_records(requisites, originals, self.c.new_uuid)
        if fence is not None:
            fence.confirm()  # a lease lost while fetching: nothing of this capture is written
        located = self.append_sealed(records, plan.records if plan else [])
        self.note_written(located, unsettled=1)
        handoff = Handoff(written) if written is not None else None  # a lone capture: no place to give back
        if handoff is not None and self.helpers.elsewhere:
            handoff.give_back()  # the next capture mostly waits for a helper process: overlap pays (grouping.py)
        try:
            result = self.commit_located(
                capture, located[: len(records)], article=article, payload_sha256=payload_sha256,
                content_type=content_type, revisit=original is not None,
                requisites=(plan, located[len(records):]) if plan else None, prev_guess=prev_guess,
                region=(located[0].warc_file, located[0].offset), fence=fence, reader=reading.reader,
                same_text=reading.reused, handoff=handoff,
            )
        finally:
            if handoff is not None:
                handoff.give_back()
        self.note_written([], unsettled=-1)
        return result

    def append_sealed(self, records: list[Any], extra: Sequence[Any] = ()) -> list[RecordLocation]:
        """Append a capture's records (the page's, then ``extra``: its requisites')
        followed by its signed intent (provenance/intent.py), so that ``repair``
        can later prove this archive wrote them."""
        from archiver.provenance.intent import INTENT_CONTENT_TYPE, sign_intent

        signer = self.provenance.keys.signer()
        response = records[-2]
        response_id, response_date = response.header("WARC-Record-ID") or "", response.header("WARC-Date") or ""

        def seal(digests: list[tuple[str, str]]) -> Any:
            intent = sign_intent(digests, signer, self.c.clock())
            return metadata_record(intent_uri(response_id), response_date, response_id, intent.to_json(),
                                   self.c.new_uuid, INTENT_CONTENT_TYPE)

        # Not synced here: the fsync that comes with the capture's signed
        # manifest makes these bytes durable too, before the index commits.
        return self.writer.append([*records, *extra], seal=seal, sync=False, pending=True)

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
        prev_guess: SnapshotRow | None | _Unread = _Unread.UNREAD,
        region: tuple[str, int] | None = None,
        fence: Fence | None = None,
        reader: str | None = None,
        same_text: bool = False,
        handoff: Handoff | None = None,
    ) -> SnapshotResult:
        """Sign and index a capture whose records are already in a WARC file.

        Also the path ``repair`` takes for records whose index commit was lost.
        ``region`` is where this process's writer put them (pending until
        committed: see :meth:`store.warc.WarcFileWriter.watermarks`).
        ``requisites`` are the page's requisite records and where they landed;
        ``reader`` how ``article`` was read (``ArchiveReads.reader``; None: unknown);
        ``same_text``: ``article`` is ``prev_guess``'s own stored article (an
        unchanged page's, reused): the diff against it is "none" unread.
        ``handoff`` gives the capture's worker place back once it only waits.
        ``prev_guess`` is the URL's previous snapshot as the caller already read
        it: the diff against it runs here, before the write lock; inside the
        transaction the previous snapshot is read again, authoritatively
        (archiver/committing.py). Captures that arrive together are committed
        together (archiver/grouping.py).
        """
        from archiver.committing import Pending

        if prev_guess is _Unread.UNREAD:
            prev_guess = self.index.last_snapshot(capture.url)
        text_sha = sha256_hex(article.text().encode("utf-8")) if article is not None else None
        packed = None
        if article is not None:  # packed here, not while the group holds the write lock
            known = prev_guess is not None and prev_guess.text_sha256 == text_sha
            packed = b"" if known else packed_article(article.to_json())
        pending = Pending(
            snapshot_id=self.new_snapshot_id(), capture=capture, locations=locations, article=article,
            text_sha=text_sha, payload_sha256=payload_sha256, content_type=content_type, revisit=revisit,
            requisites=requisites, prev_guess=prev_guess, diff=self._guess_diff(prev_guess, article, same_text),
            text_packed=packed,
            region=region, fence=fence, reader=reader if article is not None else None, handoff=handoff,
        )
        self.committer.submit(pending, handoff)
        if pending.error is not None:
            raise pending.error
        assert pending.result is not None
        if self.settings.signing.tsa_urls:
            self.provenance.timestamp_latest(
                self.settings.signing.tsa_urls, self.root, self.settings.signing.tsa_timeout
            )
        row = pending.result.row
        log.info("captured %s status=%s significance=%s id=%s", row.url, row.status, row.significance, row.id)
        return pending.result

    def _guess_diff(self, prev: SnapshotRow | None, article: Article | None, same_text: bool) -> dict[str, Any] | None:
        """The diff against the URL's previous snapshot as read before the lock.
        Its own stored article again is "none" without reading it a third
        time: :meth:`CaptureTakeover._diff` compares the same text read the same
        way, whose flattened forms are equal."""
        if same_text and prev is not None and article is not None:
            from archiver.changes.result import DiffResult

            return DiffResult("none").to_json()
        return self._diff(prev, article)

    @property
    def committer(self) -> GroupCommitter[Pending]:
        if self._committer is not None:
            return self._committer
        from archiver.committing import commit_group

        with self._build_lock:
            if self._committer is None:
                self._committer = GroupCommitter(
                    lambda batch: commit_group(self, batch), self.settings.capture.commit_group_max
                )
        return self._committer



"""One attempt of the daemon, outside its threads and clocks: capture a
source (conditionally, against the snapshot its validators came with) or
poll a feed, and write the outcome -- the sources row, the lease released,
the webhook deliveries queued -- in the caller's transaction.

Split out of ``scheduler`` so the daemon loop stays about when to run what.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable

from archiver.daemon.feeds import capturer_fetch, read_feed
from archiver.daemon.notify import enqueue_changes
from archiver.daemon.schedule import stamp, utc
from archiver.daemon.sources import FEED, Source, Sources
from archiver.errors import ArchiverError, LeaseLost

if TYPE_CHECKING:
    from archiver.archive import Archive
    from archiver.committing import Fence
    from store.backends import IndexStore

log = logging.getLogger(__name__)

CHANGED = ("first", "cosmetic", "substantive")  # text changed: the adaptive clock restarts


@dataclass(frozen=True)
class Outcome:
    """What one attempt found, for the sources row."""

    status: int | None
    error: str | None
    snapshot_id: str | None = None
    significance: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    enrolled: int = 0  # feeds: new articles found
    lease_lost: bool = False  # another worker holds the source now: nothing to record


def capture_source(archive: Archive, source: Source, fence: Fence | None = None,
                   written: Callable[[], None] | None = None) -> Outcome:
    """Capture a source; conditionally when its validators came with the
    snapshot the archive holds last for it. ``fence``: the shared worker's
    lease on it (a capture that lost it comes back ``lease_lost``);
    ``written``: see :meth:`Archive.snapshot`."""
    headers: dict[str, str] = {}
    last = archive.index.last_snapshot(source.url)
    if last is not None and last.id == source.last_snapshot_id and archive.vouched(last) is not None:
        # Conditional only against the snapshot the validators came with, and
        # only when this archive's key signed it: a 304 signs its content again.
        if source.etag:
            headers["If-None-Match"] = source.etag
        if source.last_modified:
            headers["If-Modified-Since"] = source.last_modified
    try:
        result = archive.snapshot(source.url, headers=headers or None, fence=fence, written=written)
    except LeaseLost as exc:
        return Outcome(None, str(exc), lease_lost=True)
    except ArchiverError as exc:
        return Outcome(None, str(exc))
    row = result.row
    h = result.response_headers
    if row.status == 304:
        etag, modified = h.get("etag") or source.etag, h.get("last-modified") or source.last_modified
    elif row.status == 200:
        etag, modified = h.get("etag"), h.get("last-modified")
    else:
        etag, modified = None, None
    error = f"HTTP {row.status}" if row.status >= 400 else None
    return Outcome(row.status, error, row.id, row.significance, etag, modified)


def poll_feed(archive: Archive, sources: Sources, source: Source, limit: int) -> Outcome:
    """Poll a feed through the capturer and watch up to ``limit`` new articles it lists."""
    try:
        items = read_feed(source.url, capturer_fetch(archive.capturer))
    except ArchiverError as exc:
        return Outcome(None, str(exc))
    added = sources.enrol(items.urls, origin=source.url, notify=source.notify, limit=limit)
    if added:
        log.info("feed %s: %d new article(s) enrolled", source.url, len(added))
    return Outcome(200, None, enrolled=len(added))


def record_outcome(
    conn: Any, url: str, o: Outcome, *, now: datetime,
    plan: Callable[[Source, datetime | None, int], datetime], lease_owner: str | None, threshold: str,
) -> tuple[Source | None, datetime | None, int, int]:
    """Write an attempt's outcome to the source's row in ``conn``'s
    transaction: (the source as it now stands, or None when it was unwatched
    meanwhile; its next due time from ``plan``; failures in a row; webhook
    deliveries queued). ``lease_owner``: this worker, whose lease it releases."""
    row = conn.execute("SELECT * FROM sources WHERE url=?", (url,)).fetchone()
    current = Source.from_row(row) if row is not None and row["active"] else None
    if current is None:  # unwatched while we were capturing
        return None, None, 0, 0
    if lease_owner is not None and row["lease_owner"] not in (None, lease_owner):
        # Another worker took the source over (this one was cut off for a
        # lease): the row, and the due time it plans, are that worker's now.
        return current, None, current.failures, 0
    failures = current.failures + 1 if o.error else 0
    last_change = now if o.significance in CHANGED and o.snapshot_id else utc(current.last_change_at)
    next_due = plan(current, last_change, failures)
    sets: dict[str, Any] = {
        "last_attempt_at": stamp(now),
        "next_due": stamp(next_due),
        "last_status": o.status,
        "last_error": o.error,
        "failures": failures,
    }
    if o.snapshot_id:
        sets.update(last_capture_at=stamp(now), last_snapshot_id=o.snapshot_id,
                    etag=o.etag, last_modified=o.last_modified)
        if o.significance in CHANGED:
            sets["last_change_at"] = stamp(now)
    if lease_owner is not None and row["lease_owner"] == lease_owner:
        sets.update(lease_owner=None, lease_until=None, claimed_due=None)
    conn.execute(f"UPDATE sources SET {', '.join(f'{k}=?' for k in sets)} WHERE url=?", (*sets.values(), url))
    queued = 0
    if o.snapshot_id and current.notify:
        queued = enqueue_changes(conn, url, current.notify, current.last_snapshot_id, current.added_at, threshold, now)
    return current, next_due, failures, queued


def requeue_changes(index: IndexStore, threshold: str, now: datetime) -> int:
    """Queue the notifications of changes recorded but not queued (a crash
    between the two); returns how many."""
    queued = 0
    rows = index.query(
        "SELECT url, notify, last_snapshot_id, added_at FROM sources "
        "WHERE active=1 AND notify IS NOT NULL AND notify != '' AND kind != ?",
        (FEED,),
    )
    if rows:
        with index.write() as conn:  # one transaction, before any capture runs
            for r in rows:
                queued += enqueue_changes(conn, r["url"], r["notify"], r["last_snapshot_id"], r["added_at"],
                                          threshold, now)
    return queued

"""Webhooks: tell a newsroom the moment a watched article changes.

A change is queued in the index (``notifications``) in the same transaction
that records the capture's outcome, and a background thread delivers the
queue with retries. So a capture never waits for a webhook, a restart
neither loses a queued change nor queues it twice (one row per snapshot and
webhook), and a delivered change is marked sent and never re-posted.

A receiver is a remote party and is not trusted to be quick or small: each
delivery goes through the vetted outbound path (address policy, connect to
the vetted address) under one total deadline, reads at most a small reply,
and deliveries run in parallel with a cap per receiver, so one slow or
endless receiver never delays another.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import urlsplit

from archiver import __version__
from archiver.capture.deadline import Deadline
from archiver.capture.outbound import Outbound, Timeouts
from archiver.capture.userinfo import strip_userinfo
from archiver.config import NotifySettings
from archiver.daemon.schedule import stamp, utc
from archiver.errors import ArchiverError, CaptureError, ConfigError
from store.index import Index, SnapshotRow

if TYPE_CHECKING:
    from archiver.daemon.claims import Claims

log = logging.getLogger(__name__)

LEVELS = {"none": 0, "cosmetic": 1, "substantive": 2}
MAX_CHANGES = 20  # changes listed in one webhook body; the total is given too
BATCH = 200

# (webhook URL, JSON body, headers, timeout) -> HTTP status; raises OSError/ArchiverError
Poster = Callable[[str, bytes, dict[str, str], float], int]


class DeliveryError(ArchiverError):
    """A webhook could not be reached or refused the notification."""


def threshold_level(threshold: str) -> int:
    if threshold not in ("substantive", "cosmetic"):
        raise ConfigError(f"notify.threshold must be 'substantive' or 'cosmetic', got {threshold!r}")
    return LEVELS[threshold]


def should_notify(significance: str, threshold: str) -> bool:
    """Only text changes at or above the threshold; a first capture is no change."""
    return LEVELS.get(significance, -1) >= threshold_level(threshold)


def summarize(diff: dict[str, Any]) -> str:
    """One line a person can read in a chat message."""
    parts = []
    for f in diff.get("figures") or []:
        if f.get("before") is None:
            parts.append(f"figure added: {f.get('after')}")
        elif f.get("after") is None:
            parts.append(f"figure removed: {f.get('before')}")
        else:
            parts.append(f"figure changed: {f['before']} -> {f['after']}")
    changes = diff.get("changes") or []
    if changes:
        ops: dict[str, int] = {}
        for c in changes:
            ops[c.get("op", "change")] = ops.get(c.get("op", "change"), 0) + 1
        parts.append(f"{len(changes)} text change(s) (" + ", ".join(f"{n} {op}" for op, n in sorted(ops.items())) + ")")
    return "; ".join(parts) or "text changed"


def build_payload(row: SnapshotRow, prev_captured_at: str | None, detected_at: datetime) -> dict[str, Any]:
    """The webhook body for snapshot ``row`` (compared with ``row.prev_id``)."""
    diff = row.diff or {}
    changes = diff.get("changes") or []
    return {
        "event": "change",
        "url": row.url,
        "significance": row.significance,
        "from_id": row.prev_id,
        "to_id": row.id,
        "from_captured_at": prev_captured_at,
        "to_captured_at": row.captured_at,
        "detected_at": stamp(detected_at),
        "status": row.status,
        "figures": diff.get("figures") or [],
        "changes": changes[:MAX_CHANGES],
        "changes_total": len(changes),
        "summary": summarize(diff),
        "software": f"archiver/{__version__}",
    }


def enqueue_changes(
    conn: sqlite3.Connection, url: str, webhook: str, after_snapshot_id: str | None, since: str | None,
    threshold: str, now: datetime,
) -> int:
    """Queue a notification for each change of ``url`` after the snapshot the
    source last saw (or, for a source that saw none, captured since ``since``).

    Runs inside the caller's write transaction; idempotent by (snapshot, webhook).
    """
    levels = [s for s, n in LEVELS.items() if n >= threshold_level(threshold)]
    marks = ",".join("?" * len(levels))
    floor_args: tuple[int | str, ...]
    if after_snapshot_id:
        row = conn.execute("SELECT seq FROM snapshots WHERE id=?", (after_snapshot_id,)).fetchone()
        floor_sql, floor_args = "s.seq > ?", (int(row[0]) if row else 0,)
    else:
        floor_sql, floor_args = "s.captured_at >= ?", (since or "",)
    rows = conn.execute(
        f"SELECT s.*, p.captured_at AS prev_captured_at FROM snapshots s LEFT JOIN snapshots p ON p.id = s.prev_id "
        f"WHERE s.url=? AND {floor_sql} AND s.significance IN ({marks}) ORDER BY s.seq",
        (url, *floor_args, *levels),
    ).fetchall()
    queued = 0
    for r in rows:
        snap = SnapshotRow.from_row(r)
        payload = build_payload(snap, r["prev_captured_at"], now)
        cur = conn.execute(
            "INSERT OR IGNORE INTO notifications(snapshot_id, webhook, url, significance, payload_json, created_at, "
            "next_attempt_at) VALUES(?,?,?,?,?,?,?)",
            (snap.id, webhook, url, snap.significance, json.dumps(payload, ensure_ascii=False), stamp(now), stamp(now)),
        )
        queued += cur.rowcount
    return queued


@dataclass(frozen=True)
class QueueCounts:
    pending: int
    sent: int
    failed: int


def queue_counts(index: Index) -> QueueCounts:
    counts = {r[0]: r[1] for r in index.query("SELECT state, COUNT(*) FROM notifications GROUP BY state")}
    return QueueCounts(counts.get("pending", 0), counts.get("sent", 0), counts.get("failed", 0))


def receiver_of(webhook: str) -> str:
    """The origin a webhook URL points at: deliveries are capped per receiver."""
    parts = urlsplit(webhook)
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{parts.scheme}://{parts.hostname}:{port or (443 if parts.scheme == 'https' else 80)}"


def http_poster(outbound: Outbound, max_reply_bytes: int = 65536) -> Poster:
    """POST through the vetted outbound path; the whole delivery within ``timeout``.

    At most ``max_reply_bytes`` of the reply are read and the rest is left
    unread (the connection is closed): only the status matters.
    """

    def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
        deadline = Deadline.after(timeout)
        try:
            with outbound.open(
                "POST", url, headers=headers, body=body, deadline=deadline, timeouts=Timeouts(timeout, timeout)
            ) as exchange:
                exchange.read(max_reply_bytes, truncate=True)
                return exchange.status
        except CaptureError as exc:  # the URL's path and query (often the secret) never reach the error or a log
            shown = receiver_of(url)
            raise DeliveryError(f"webhook {shown}: {str(exc).replace(strip_userinfo(url), shown)}") from exc

    return post


class Notifier:
    """Delivers queued notifications: a dispatch thread and a pool of senders.

    ``settings.workers`` deliveries run at once, at most
    ``settings.per_receiver`` to one receiver (scheme, host, port).
    """

    def __init__(
        self,
        index: Index,
        settings: NotifySettings,
        *,
        post: Poster,
        clock: Callable[[], datetime],
        idle_wait: float = 5.0,
        claims: Claims | None = None,
    ) -> None:
        threshold_level(settings.threshold)
        self.index = index
        self.settings = settings
        self.post = post
        self.clock = clock
        self.idle_wait = idle_wait
        self.claims = claims  # shared mode: a delivery is leased, so one worker posts it
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(max_workers=max(1, settings.workers), thread_name_prefix="webhook")
        self._lock = threading.Lock()
        self._inflight: dict[int, str] = {}  # notification id -> receiver
        self._futures: set[Future[int]] = set()
        self.sent = 0
        self.failed = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="notify", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float) -> None:
        """Let deliveries in progress finish (bounded by ``timeout``), then stop."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._lock:
            pending = set(self._futures)
        wait_futures(pending, timeout)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                _, blocked = self._dispatch_due()
                wait = self.idle_wait if blocked else self._next_wait()
            except ArchiverError as exc:
                log.warning("notification queue: %s", exc)
                wait = self.idle_wait
            self._wake.wait(wait)  # a finished delivery wakes this early
            self._wake.clear()

    def _next_wait(self) -> float:
        with self._lock:
            busy = sorted(self._inflight)
        marks = ",".join("?" * len(busy))
        rows = self.index.query(
            "SELECT MIN(next_attempt_at) FROM notifications WHERE state='pending'"
            + (f" AND id NOT IN ({marks})" if busy else ""),
            tuple(busy),
        )
        due = utc(rows[0][0]) if rows and rows[0][0] else None
        if due is None:
            return self.idle_wait
        return max(0.05, min(self.idle_wait, (due - self.clock()).total_seconds()))

    def deliver_due(self) -> int:
        """One pass over the due notifications, waiting for it; returns how many were sent."""
        futures, _ = self._dispatch_due()
        return sum(f.result() for f in futures)

    def _dispatch_due(self) -> tuple[list[Future[int]], bool]:
        """Hand every due notification whose receiver has room to the pool.

        Returns the new deliveries and whether a due one had to wait for room.
        Rows are taken a few per webhook (window), so a receiver with a long
        backlog cannot fill the batch and starve the others.
        """
        cap = max(1, self.settings.per_receiver)
        futures: list[Future[int]] = []
        blocked = False
        # The query runs under the lock: a delivery that finishes meanwhile has
        # marked its row first and leaves ``_inflight`` only after, so a row read
        # as still pending is always recognised as in flight -- never sent twice.
        with self._lock:
            rows = self.index.query(
                "SELECT id, snapshot_id, webhook, url, payload_json, attempts FROM ("
                " SELECT *, ROW_NUMBER() OVER (PARTITION BY webhook ORDER BY id) AS nth FROM notifications"
                " WHERE state='pending' AND (next_attempt_at IS NULL OR next_attempt_at <= ?)"
                " AND (lease_until IS NULL OR lease_until < ?)) AS due"  # PostgreSQL needs the alias
                " WHERE nth <= ? ORDER BY id LIMIT ?",
                (stamp(self.clock()), stamp(self.clock()), 2 * cap, BATCH),
            )
            load: dict[str, int] = {}
            for receiver in self._inflight.values():
                load[receiver] = load.get(receiver, 0) + 1
            chosen: list[tuple[sqlite3.Row, str]] = []
            for row in rows:
                if row["id"] in self._inflight:
                    continue
                receiver = receiver_of(row["webhook"])
                if load.get(receiver, 0) >= cap:
                    blocked = True
                    continue
                load[receiver] = load.get(receiver, 0) + 1
                chosen.append((row, receiver))
            if self.claims is not None and chosen:
                # Shared mode: only the deliveries this worker leased (no other posts them).
                hold = max(self.claims.lease.total_seconds(), 2 * self.settings.timeout)
                mine = self.claims.claim_notifications([r["id"] for r, _ in chosen], hold)
                chosen = [(r, receiver) for r, receiver in chosen if r["id"] in mine]
            for row, receiver in chosen:
                if self._stop.is_set():
                    break
                self._inflight[row["id"]] = receiver
                future = self._pool.submit(self._deliver_one, row)
                self._futures.add(future)
                futures.append(future)
        return futures, blocked

    def _deliver_one(self, row: sqlite3.Row) -> int:
        try:
            return self._deliver(row)
        except ArchiverError as exc:  # the index, not the receiver: retried on the next pass
            log.warning("notification %s: %s", row["id"], exc)
            return 0
        finally:
            with self._lock:
                self._inflight.pop(row["id"], None)
                self._futures = {f for f in self._futures if not f.done()}
            self._wake.set()

    def _deliver(self, row: sqlite3.Row) -> int:
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": f"archiver/{__version__} (webhook)",
            # Receivers may deduplicate on this: a crash between the POST and
            # marking it sent is the one case that repeats a delivery.
            "X-Archiver-Delivery": f"{row['snapshot_id']}",
        }
        attempts = int(row["attempts"]) + 1
        hook = receiver_of(row["webhook"])  # for the logs: scheme://host:port only (a secret may be its path)
        try:
            status = self.post(row["webhook"], row["payload_json"].encode("utf-8"), headers, self.settings.timeout)
            error = None if 200 <= status < 300 else f"HTTP {status}"
        except (OSError, ArchiverError) as exc:
            error = str(exc)
        now = self.clock()
        if error is None:
            self.index.execute(
                "UPDATE notifications SET state='sent', attempts=?, sent_at=?, last_error=NULL, lease_owner=NULL, "
                "lease_until=NULL WHERE id=?",
                (attempts, stamp(now), row["id"]),
            )
            self.sent += 1
            log.info("notified %s of %s (%s)", hook, row["url"], row["snapshot_id"])
            return 1
        if attempts >= max(1, self.settings.retries):
            self.index.execute(
                "UPDATE notifications SET state='failed', attempts=?, last_error=?, lease_owner=NULL, lease_until=NULL "
                "WHERE id=?",
                (attempts, error, row["id"]),
            )
            self.failed += 1
            log.warning("gave up notifying %s of %s after %d attempts: %s", hook, row["url"], attempts, error)
            return 0
        delay = self.settings.backoff * (2 ** (attempts - 1))
        self.index.execute(
            "UPDATE notifications SET attempts=?, last_error=?, next_attempt_at=?, lease_owner=NULL, lease_until=NULL "
            "WHERE id=?",
            (attempts, error, stamp(now + timedelta(seconds=delay)), row["id"]),
        )
        log.info("webhook %s failed (%s); retry %d in %.0fs", hook, error, attempts + 1, delay)
        return 0

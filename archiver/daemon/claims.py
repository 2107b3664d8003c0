"""The shared schedule on the index: workers, leases, claims, politeness.

Several ``archiver daemon`` processes (on any machines) share one archive by
claiming due sources from the ``sources`` table, ``SELECT ... FOR UPDATE SKIP
LOCKED`` in a short transaction of their own (PostgreSQL; SQLite's one
writer gives the same with its single daemon). A claim is a lease: the row
names its worker and ``lease_until``, and the due time it is for
(``claimed_due``). The worker renews the leases of its queued and running
sources with each heartbeat (every lease/4 s) and releases one in the same
transaction that records the attempt and sets the next due time.

A worker that stops heartbeating for a lease is stale. One live worker (the
one holding the ``repair`` role) commits what the stale worker left in the
store, marks it dead, and only then are its leases free: so a capture the
dead worker committed is found (a snapshot at or after the claimed due time)
and recorded instead of captured twice, and one it never committed is
captured again.

Politeness across workers: with ``daemon.per_host_delay`` the claim also
takes the host's row in ``hosts`` (SKIP LOCKED) and moves its next allowed
claim time (one source per host per delay is handed out), and right before it
sends the request the worker takes the host's turn (``take_turn``): it waits
until the delay has passed since the host's last request from any worker
(``last_sent_at``) and records its own. A claimed capture may start late on a
busy machine; only the moment of sending is what the host sees, so one host
sees one request per delay from all workers whatever the lag between claim
and fetch. The turn is held until the fetch is over (``end_turn``): while
it is, ``last_sent_at`` lies in the future (at most ``in_flight`` seconds
ahead: a worker that dies mid-fetch blocks its host no longer), and ending
it sets the time the fetch ended. A worker descheduled between taking its
turn and sending therefore cannot bring its request and the next worker's
closer together than the delay: the next turn is measured from a moment
after this request went out.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable
from urllib.parse import urlsplit

from archiver.daemon.schedule import stamp, utc
from archiver.errors import ArchiverError, LeaseLost
from store.index import Index

log = logging.getLogger(__name__)

RUNNING, STOPPED, DEAD = "running", "stopped", "dead"
#: taken for stale by another worker, whose repair is committing what it left: it may be alive (its
#: heartbeats were cut off, say by a database restart), so its own commits are refused meanwhile
REAPING = "reaping"
TURN_RETRY = 0.02  # seconds before asking again for a host's turn another worker holds
IN_FLIGHT_POLL = 0.1  # seconds between asks while another worker's fetch from the host is in flight
FORGET_AFTER = timedelta(days=7)
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)  # rows of stopped or dead workers are dropped after this long


@dataclass(frozen=True)
class Worker:
    """One daemon among the workers: its name, and the host and pid its WARC files are named by."""

    name: str
    host: str
    pid: int

    @classmethod
    def here(cls, configured: str, hostname: str) -> "Worker":
        pid = os.getpid()
        return cls(configured or f"{hostname}-{pid}", hostname, pid)


@dataclass(frozen=True)
class Claim:
    """A source this worker now holds. ``done_by``: a snapshot a dead worker
    committed for this due time already -- record it, do not capture again."""

    url: str
    due: str  # the due time claimed (the claim's own time for a never planned source)
    done_by: str | None = None


def host_of(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


class Claims:
    def __init__(
        self,
        index: Index,
        worker: Worker,
        *,
        lease: float,
        per_host_delay: float,
        clock: Callable[[], datetime],
        in_flight: float = 120.0,
    ) -> None:
        """``in_flight``: the longest a fetch may take (the capture's total deadline)."""
        self.index = index
        self.worker = worker
        self.lease = timedelta(seconds=max(1.0, lease))
        self.per_host_delay = timedelta(seconds=max(0.0, per_host_delay))
        self.in_flight = timedelta(seconds=max(0.0, in_flight))
        self.clock = clock
        self._turns: dict[str, str] = {}  # URL -> the in-flight mark its turn wrote
        self._turns_lock = threading.Lock()

    # -- the workers table ----------------------------------------------------
    def register(self) -> None:
        """This worker is running (a restart under the same name takes its row over)."""
        now = stamp(self.clock())
        w = self.worker
        with self.index.write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO workers(name, host, pid, started_at, heartbeat_at, state, status_json) "
                "VALUES(?,?,?,?,?,?,?)",
                (w.name, w.host, w.pid, now, now, RUNNING, None),
            )
            # Leases a previous run under this name held lapse now (that process is
            # gone; the start-up repair before this committed what it left). The
            # owner and due time stay, so the next claim checks for a commit.
            conn.execute("UPDATE sources SET lease_until=? WHERE lease_owner=?", (stamp(EPOCH), w.name))

    def heartbeat(self, holding: Iterable[str], status: dict[str, Any]) -> None:
        """Renew the leases of ``holding`` (queued or running here) and the worker's row."""
        now = self.clock()
        until = stamp(now + self.lease)
        urls = sorted(holding)  # one lock order with the commits' lease checks (archiver/committing.py)
        with self.index.claim() as conn:
            conn.execute(  # a reap under way stays one: only its end (mark_dead) lets this worker run again
                "UPDATE workers SET heartbeat_at=?, state=CASE WHEN state=? THEN state ELSE ? END, status_json=? "
                "WHERE name=?",
                (stamp(now), REAPING, RUNNING, json.dumps(status, ensure_ascii=False), self.worker.name),
            )
            if urls:
                conn.executemany(
                    "UPDATE sources SET lease_until=? WHERE url=? AND lease_owner=?",
                    [(until, u, self.worker.name) for u in urls],
                )
            conn.execute("DELETE FROM workers WHERE state != ? AND heartbeat_at < ?",
                         (RUNNING, stamp(now - FORGET_AFTER)))

    def stopped(self) -> None:
        """A clean stop: leases released at once, so others need not wait them out."""
        with self.index.claim() as conn:
            conn.execute("UPDATE sources SET lease_owner=NULL, lease_until=NULL, claimed_due=NULL WHERE lease_owner=?",
                         (self.worker.name,))
            conn.execute("UPDATE notifications SET lease_owner=NULL, lease_until=NULL WHERE lease_owner=?",
                         (self.worker.name,))
            conn.execute("UPDATE workers SET state=?, heartbeat_at=? WHERE name=?",
                         (STOPPED, stamp(self.clock()), self.worker.name))

    def stale(self) -> list[str]:
        """Running workers whose heartbeat is older than a lease (dead, or cut
        off), and those a reap left unfinished (its reaper died or lost the index)."""
        cutoff = stamp(self.clock() - self.lease)
        rows = self.index.query("SELECT name FROM workers WHERE ((state=? AND heartbeat_at < ?) OR state=?) AND name != ?",
                                (RUNNING, cutoff, REAPING, self.worker.name))
        return [r[0] for r in rows]

    def begin_reap(self, names: Iterable[str]) -> list[str]:
        """Fence stale workers off before their leftovers are committed: from
        this transaction on, a commit of theirs fails its lease check
        (:class:`LeaseFence`), so a worker that was only cut off cannot commit
        a capture the repair commits as well. Returns those fenced (still
        stale, or already being reaped)."""
        cutoff = stamp(self.clock() - self.lease)
        fenced = []
        with self.index.write() as conn:
            for name in sorted(names):  # one lock order for every reaper
                cur = conn.execute("UPDATE workers SET state=? WHERE name=? AND ((state=? AND heartbeat_at < ?) OR state=?)",
                                   (REAPING, name, RUNNING, cutoff, REAPING))
                if cur.rowcount:
                    fenced.append(name)
        return fenced

    def live_writers(self) -> list[tuple[str, int]]:
        """(host, pid) of the other live workers: their WARC files are still being committed."""
        cutoff = stamp(self.clock() - self.lease)
        rows = self.index.query("SELECT host, pid FROM workers WHERE state=? AND heartbeat_at >= ? AND name != ?",
                                (RUNNING, cutoff, self.worker.name))
        return [(r[0], int(r[1])) for r in rows]

    def mark_dead(self, names: Iterable[str]) -> None:
        """After their leftovers are committed: their leases are free to take."""
        with self.index.write() as conn:
            conn.executemany("UPDATE workers SET state=? WHERE name=? AND state=?", [(DEAD, n, REAPING) for n in names])

    # -- claiming sources -----------------------------------------------------
    def claim(self, limit: int) -> list[Claim]:
        """Take up to ``limit`` due sources: never planned ones first, then by due time."""
        if limit <= 0:
            return []
        now = self.clock()
        now_s, until = stamp(now), stamp(now + self.lease)
        # Free: no lease, or an expired one whose owner is not a stale worker
        # still to be reaped (a live worker renews all it holds, so its expired
        # lease was dropped; a dead one's waits until its leftovers are committed).
        free = ("(lease_owner IS NULL OR (lease_until < ? AND lease_owner NOT IN "
                f"(SELECT name FROM workers WHERE (state='running' AND heartbeat_at < ?) OR state='{REAPING}')))")
        cols = "SELECT url, next_due, lease_owner, claimed_due FROM sources WHERE active=1 AND "
        want = limit * 4 if self.per_host_delay else limit  # spare rows for hosts that must wait
        taken: list[Claim] = []
        with self.index.claim() as conn:
            stale = stamp(now - self.lease)
            rows = conn.execute(f"{cols}next_due IS NULL AND {free} ORDER BY url LIMIT ?{self.index.skip_locked}",
                                (now_s, stale, want)).fetchall()
            if len(rows) < want:
                rows += conn.execute(
                    f"{cols}next_due <= ? AND {free} ORDER BY next_due LIMIT ?{self.index.skip_locked}",
                    (now_s, now_s, stale, want - len(rows)),
                ).fetchall()
            if self.per_host_delay:
                rows = self._polite(conn, rows, now)
            for r in rows[:limit]:
                # Taken over from a holder that let go without recording: did it commit?
                done_by = self._committed_for(conn, r[0], r[3]) if r[2] is not None else None
                # A never planned source is due from this claim on.
                taken.append(Claim(r[0], r[1] or now_s, done_by))
            if taken:  # one statement: a round trip per row would cost more than the claim
                marks = ",".join("?" * len(taken))
                conn.execute(
                    "UPDATE sources SET lease_owner=?, lease_until=?, claimed_due=COALESCE(next_due, ?) "
                    f"WHERE url IN ({marks})",
                    (self.worker.name, until, now_s, *(c.url for c in taken)),
                )
        return taken

    def _polite(self, conn: Any, rows: list[Any], now: datetime) -> list[Any]:
        """One source per host whose next allowed time has come; the host's row moves on."""
        first: dict[str, Any] = {}
        for r in rows:
            first.setdefault(host_of(r[0]), r)
        out = []
        for host in sorted(first):  # one lock order for every worker: no deadlock between claimers
            conn.execute("INSERT OR IGNORE INTO hosts(host, next_allowed_at) VALUES(?, ?)", (host, stamp(now)))
            row = conn.execute(f"SELECT next_allowed_at FROM hosts WHERE host=?{self.index.skip_locked}",
                               (host,)).fetchone()
            if row is None:
                continue  # another worker is claiming for this host right now
            allowed = utc(row[0])
            if allowed is not None and allowed > now:
                continue
            conn.execute("UPDATE hosts SET next_allowed_at=? WHERE host=?", (stamp(now + self.per_host_delay), host))
            out.append(first[host])
        return out

    def take_turn(self, url: str) -> float:
        """Take the host's turn to be sent a request now: 0.0 when taken (the
        host's last request is now), else the seconds to wait before asking
        again. A late start also pushes the host's next claim on."""
        if not self.per_host_delay:
            return 0.0
        host = host_of(url)
        now = self.clock()
        with self.index.claim() as conn:
            conn.execute("INSERT OR IGNORE INTO hosts(host, next_allowed_at) VALUES(?, ?)", (host, stamp(now)))
            row = conn.execute(f"SELECT last_sent_at, next_allowed_at FROM hosts WHERE host=?{self.index.skip_locked}",
                               (host,)).fetchone()
            if row is None:
                return TURN_RETRY  # another worker is taking this host's turn right now
            last = utc(row[0])
            if last is not None and last + self.per_host_delay > now:
                wait = (last + self.per_host_delay - now).total_seconds()
                return max(TURN_RETRY, min(wait, IN_FLIGHT_POLL) if last > now else wait)
            reserved = utc(row[1])
            following = now + self.per_host_delay
            mark = stamp(now + self.in_flight)
            conn.execute("UPDATE hosts SET last_sent_at=?, next_allowed_at=? WHERE host=?",
                         (mark, stamp(max(following, reserved) if reserved else following), host))
        with self._turns_lock:
            self._turns[url] = mark
        return 0.0

    def wait_turn(self, url: str, wait: Callable[[float], bool]) -> bool:
        """Take the host's turn, waiting with ``wait(seconds)`` (True: stop)
        between asks. False: stopping, or the index is unreachable --
        politeness cannot be kept, so no request (the lease lapses and the
        source is claimed again)."""
        while True:
            try:
                pause = self.take_turn(url)
            except ArchiverError as exc:
                log.error("cannot take the host's turn for %s; its lease lapses: %s", url, exc)
                return False
            if pause <= 0:
                return True
            if wait(pause):
                return False

    def end_turn_quietly(self, url: str) -> None:
        """:meth:`end_turn` where a failure only costs time: the mark lapses by itself."""
        try:
            self.end_turn(url)
        except ArchiverError as exc:
            log.warning("cannot end the host's turn for %s (it lapses on its own): %s", url, exc)

    def end_turn(self, url: str, conn: Any = None) -> None:
        """The fetch from ``url`` is over: the host's last request is now, and
        the next worker's turn counts from here. Nothing when this worker holds
        no turn for it (ended already, or no delay). ``conn``: a transaction to
        do it in (its caller calls :meth:`turn_ended` once that commits)."""
        with self._turns_lock:
            mark = self._turns.get(url)
        if mark is None:
            return
        sql = "UPDATE hosts SET last_sent_at=? WHERE host=? AND last_sent_at=?"  # only while it is still our mark
        args = (stamp(self.clock()), host_of(url), mark)
        if conn is not None:
            conn.execute(sql, args)
            return
        with self.index.claim() as own:
            own.execute(sql, args)
        self.turn_ended(url)

    def turn_ended(self, url: str) -> None:
        with self._turns_lock:
            self._turns.pop(url, None)

    @staticmethod
    def _committed_for(conn: Any, url: str, due: str | None) -> str | None:
        """The snapshot a previous holder committed for due time ``due``, if any
        (a capture starts after its claim, so at or after the due time)."""
        when = utc(due)
        if when is None:
            return None
        row = conn.execute("SELECT id, captured_at FROM snapshots WHERE url=? ORDER BY seq DESC LIMIT 1",
                           (url,)).fetchone()
        if row is None:
            return None
        captured = utc(row[1])
        return str(row[0]) if captured is not None and captured >= when else None

    def fence(self, url: str) -> "LeaseFence":
        """The check a capture of ``url`` passes before its records are written
        and again inside its commit: this worker still holds the lease."""
        return LeaseFence(self, url)

    def release(self, url: str) -> None:
        """Give a claimed source back untouched (unwatched meanwhile)."""
        with self.index.claim() as conn:
            conn.execute("UPDATE sources SET lease_owner=NULL, lease_until=NULL, claimed_due=NULL "
                         "WHERE url=? AND lease_owner=?", (url, self.worker.name))

    # -- webhook deliveries ---------------------------------------------------
    def claim_notifications(self, ids: list[int], hold: float | None = None) -> set[int]:
        """Of these pending deliveries, the ones this worker now holds for
        ``hold`` seconds (default: a lease; no other worker posts them meanwhile)."""
        if not ids:
            return set()
        now = self.clock()
        marks = ",".join("?" * len(ids))
        with self.index.claim() as conn:
            rows = conn.execute(
                f"SELECT id FROM notifications WHERE id IN ({marks}) AND state='pending' "
                f"AND (lease_until IS NULL OR lease_until < ?){self.index.skip_locked}",
                (*ids, stamp(now)),
            ).fetchall()
            got = {int(r[0]) for r in rows}
            if got:
                until = stamp(now + (self.lease if hold is None else timedelta(seconds=hold)))
                conn.executemany("UPDATE notifications SET lease_owner=?, lease_until=? WHERE id=?",
                                 [(self.worker.name, until, i) for i in sorted(got)])
        return got


@dataclass(frozen=True)
class WorkerRow:
    name: str
    host: str
    pid: int
    started_at: str
    heartbeat_at: str
    state: str  # running, stopped, dead; a running one whose heartbeat is older than a lease shows "stale"
    status: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "host": self.host, "pid": self.pid, "started_at": self.started_at,
                "heartbeat_at": self.heartbeat_at, "state": self.state, **{
                    k: self.status.get(k) for k in ("captures", "failures", "queued", "running", "leases")}}


@dataclass(frozen=True)
class LeaseFence:
    """Fencing for one claimed capture (archiver/committing.py calls it).

    A worker cut off from the database for longer than a lease is reaped:
    another worker commits what it left, marks it dead and takes its sources.
    If the cut-off worker then came back with a capture still running and
    committed it, the URL would get a second snapshot for one due time,
    captured *before* the one already committed -- its diff against that newer
    snapshot would report the page's edit backwards. So the capture confirms
    the lease before its records are written (a capture that lost it is
    dropped: nothing of it is written, the source is another worker's) and
    again in the commit transaction, holding the source's row so that no
    claim can take it meanwhile."""

    claims: Claims
    url: str

    def confirm(self, conn: Any = None) -> None:
        """Raise LeaseLost unless this worker holds the lease on the URL. ``conn``:
        the commit's transaction (the row stays locked until it ends); None: a
        short transaction of its own."""
        if conn is None:  # right after the fetch: which also ends the host's turn (Claims.end_turn)
            with self.claims.index.claim() as own:
                self.claims.end_turn(self.url, own)
                self._check(own)
            self.claims.turn_ended(self.url)
        else:
            self._check(conn)

    def _check(self, conn: Any) -> None:
        # This worker's row first (the order heartbeats lock in), held to the
        # transaction's end: a reap that fenced it off (Claims.begin_reap)
        # either came before -- the capture is refused, the repair commits it
        # -- or waits for this commit and then finds it committed.
        me = self.claims.worker.name
        state = conn.execute(f"SELECT state FROM workers WHERE name=?{self.claims.index.for_update}", (me,)).fetchone()
        if state is not None and state[0] == REAPING:
            raise LeaseLost(f"{self.url}: another worker took this one for stale (its heartbeats were cut off) and is "
                            "committing what it left; this capture is not signed here")
        row = conn.execute(f"SELECT lease_owner FROM sources WHERE url=?{self.claims.index.for_update}",
                           (self.url,)).fetchone()
        owner = row[0] if row is not None else None
        if owner != self.claims.worker.name:
            holder = "no longer watched" if row is None else f"held by {owner}" if owner else "released"
            raise LeaseLost(f"{self.url}: this worker's lease was taken over ({holder}) while it was capturing; "
                            "its capture is not signed")


def list_workers(index: Index, now: datetime, lease: float) -> list[WorkerRow]:
    """Every worker the index knows, running ones first."""
    cutoff = now - timedelta(seconds=max(1.0, lease))
    out = []
    for r in index.query("SELECT name, host, pid, started_at, heartbeat_at, state, status_json FROM workers"):
        state = r[5]
        beat = utc(r[4])
        if state == RUNNING and beat is not None and beat < cutoff:
            state = "stale"
        try:
            status = json.loads(r[6]) if r[6] else {}
        except ValueError:
            status = {}
        out.append(WorkerRow(r[0], r[1], int(r[2]), r[3], r[4], state, status if isinstance(status, dict) else {}))
    order = {RUNNING: 0, "stale": 1, STOPPED: 2, DEAD: 3}
    return sorted(out, key=lambda w: (order.get(w.state, 4), w.name))

"""``archiver daemon``: re-capture watched sources on their schedules.

A :class:`~archiver.daemon.timers.DueQueue` keeps the clock: one next time
per source, set again after each attempt with the time the schedule policy
picks (adaptive interval, backoff, jitter). A due source only queues its URL
with the Dispatcher, which runs captures on a bounded pool under per-host
politeness. The source list is read once per start or change.

Shared mode (a PostgreSQL index): the database keeps the clock instead, and
any number of daemons on any machines share the work -- each claims due
sources with a lease (``claims.py``, ``claimloop.py``) and releases it in the
transaction that records the attempt and the next due time.

(One attempt's capture and its record-and-plan transaction are
``attempts``; the clocks, claims, dispatch, webhooks and the status file are
modules of their own. What stays here, a little over the house's 500 lines,
is the one loop both modes run -- start-up repair, reaping, reload, stop --
which reads better whole than split by mode.)

Restart-safe: each attempt writes the source's next due time to the index,
and a start plans from there (an overdue source runs once, spread by jitter:
no catch-up burst). Signals: SIGTERM/SIGINT stop taking work and give
running captures ``daemon.shutdown_grace`` seconds; SIGHUP reloads sources.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from archiver.config import Settings
from archiver.daemon.attempts import Outcome, capture_source, poll_feed, record_outcome, requeue_changes
from archiver.daemon.claimloop import ClaimLoop
from archiver.daemon.claims import Claim, Claims, Worker
from archiver.daemon.dispatch import Dispatcher, Politeness, Work
from archiver.daemon.durations import parse_duration
from archiver.daemon.notify import (
    Notifier,
    http_poster,
    threshold_level,
)
from archiver.daemon.schedule import AdaptivePolicy, Every, SchedulePolicy, stamp, utc
from archiver.daemon.sources import FEED, Plan, Source, Sources, load_sources_file
from archiver.daemon.statusfile import STATUS_NAME, install_signals, read_status, status_paths, write_status
from archiver.daemon.timers import DueQueue
from archiver.errors import ArchiverError
from archiver.grouping import THREADS_PER_WORKER

if TYPE_CHECKING:
    from archiver.archive import Archive

log = logging.getLogger(__name__)

TICK = 0.5  # main loop: signals, source changes, status file
RECORD_RETRY = 60.0  # seconds; when the index could not take an attempt's outcome


@dataclass
class Stats:
    started_at: str = ""
    captures: int = 0
    failures: int = 0
    feed_polls: int = 0
    enrolled: int = 0
    last: dict[str, Any] = field(default_factory=dict)


def policy_from(settings: Settings, rng: random.Random | None = None) -> SchedulePolicy:
    d = settings.daemon
    return SchedulePolicy(
        adaptive=AdaptivePolicy(),
        max_backoff=parse_duration(d.max_backoff),
        jitter=d.jitter,
        rng=rng or random.Random(),
    )


class Daemon:
    """The running service around one Archive."""

    def __init__(
        self,
        archive: Archive,
        settings: Settings,
        *,
        clock: Callable[[], datetime],
        sources_file: Path | None = None,
        rng: random.Random | None = None,
    ) -> None:
        threshold_level(settings.notify.threshold)
        self.archive = archive
        self.settings = settings
        self.clock = clock
        self.sources_file = sources_file
        self.sources = Sources(archive.index, clock)
        self.policy = policy_from(settings, rng)
        self.feed_every = Every.parse(settings.daemon.feed_every)
        d = settings.daemon
        self.dispatcher = Dispatcher(self._attempt, Politeness(d.workers, d.per_host_concurrency, d.per_host_delay),
                                     threads_per_worker=THREADS_PER_WORKER)
        self.shared = archive.index.shared
        self.worker = Worker.here(d.worker_name, archive.c.hostname)
        self.claims: Claims | None = None
        self.claim_loop: ClaimLoop | None = None
        if self.shared:
            c = settings.capture
            self.claims = Claims(archive.index, self.worker, lease=d.lease, per_host_delay=d.per_host_delay,
                                 clock=clock, in_flight=c.total_timeout + c.requisites_timeout)
            # As many held as run: a worker's capture waiting for its commit no longer holds up its worker.
            self.claim_loop = ClaimLoop(self.claims, capacity=d.workers * THREADS_PER_WORKER,
                                        holding=self.dispatcher.urls,
                                        hand=self._claimed, status=self._beat_status, reap=self._reap)
        self.notifier = Notifier(
            archive.index,
            settings.notify,
            post=http_poster(archive.outbound, settings.notify.max_reply_bytes),
            clock=clock,
            claims=self.claims,
        )
        # Missed times collapse into one run, and there is no misfire limit:
        # late is better than a source silently unscheduled.
        self.due = DueQueue(self._due, clock)
        self.status_path = Path(settings.data_path) / STATUS_NAME
        self.stats = Stats()
        self._lock = threading.RLock()
        self._planned: dict[str, str] = {}  # url -> the `every` it was planned with
        self._generation = -1
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._stopping = False

    # -- lifecycle ----------------------------------------------------------
    def request_stop(self) -> None:
        self._stop.set()

    def request_reload(self) -> None:
        self._reload.set()

    def run(self) -> int:
        """Run until a stop is requested; returns how many captures were abandoned."""
        self.stats.started_at = stamp(self.clock())
        log.info("daemon starting (pid %d) on %s", os.getpid(), self.settings.data_path)
        try:
            self._repair()  # first: a previous run's leases are checked against what it committed
            if self.claims is not None:
                self.claims.register()
            if self.sources_file is not None:
                self._load_file()
            self._requeue_notifications()
            active = self.sources.plans() if self.shared else self._sync(initial=True)
            self._warn_impolite(active)
            self.notifier.start()
            self.archive.parallel(self.settings.daemon.workers)
            self.dispatcher.start()
            if self.claim_loop is not None:
                self.claim_loop.start()
                log.info("daemon started as worker %s of a shared archive: %d source(s), %d capture slot(s)",
                         self.worker.name, len(active), self.settings.daemon.workers)
            else:
                self.due.start()
                log.info("daemon started: %d source(s), %d worker(s)", len(self._planned), self.settings.daemon.workers)
            self.write_status("running")
            self._loop()
        finally:
            left = self._shutdown()
        return left

    def _loop(self) -> None:
        last_status = 0.0
        while not self._stop.is_set():
            self._stop.wait(TICK)
            try:
                if self._reload.is_set():
                    self._reload.clear()
                    log.info("SIGHUP: reloading sources")
                    if self.sources_file is not None:
                        self._load_file()
                    if not self.shared:
                        self._sync(force=True)
                elif not self.shared and self.sources.generation() != self._generation:
                    self._sync()
            except ArchiverError as exc:  # e.g. the index stayed locked: try again next tick
                log.error("cannot reload sources: %s", exc)
            if time.monotonic() - last_status >= 1.0:
                self.write_status("running")
                last_status = time.monotonic()

    def _repair(self, dead: list[str] | None = None) -> bool:
        """What a crash left behind is committed before new work starts (DESIGN: "or the next start").

        Shared mode: the other live workers' files are left alone (their
        captures are still committing), and one worker repairs at a time (the
        ``repair`` role); returns False when another holds it."""
        from archiver.audit.repair import repair

        busy = self.claims.live_writers() if self.claims is not None else []
        try:
            with self.archive.index.hold_exclusive("repair", self.worker.name):
                result = repair(self.archive, busy=busy)
        except ArchiverError as exc:
            if dead is not None:  # another worker is repairing (or the index is down): a later pass retries
                log.info("repair for stale worker(s) %s deferred: %s", ", ".join(dead), exc)
                return False
            log.error("start-up repair failed (run `archiver repair`): %s", exc)
            return False
        except Exception as exc:  # noqa: BLE001 - whatever is in the files, the service starts
            log.error("start-up repair failed (run `archiver repair`): %s: %s", type(exc).__name__, exc)
            return False
        if result.closed or result.reindexed or result.recommitted or result.foreign:
            log.warning("%s%s", "start-up " if dead is None else f"after stale worker(s) {', '.join(dead)}: ",
                        result.summary())
        return True

    # -- the shared schedule ------------------------------------------------
    def _reap(self, stale: list[str]) -> None:
        """Workers that stopped heartbeating: commit what they left, then free their leases."""
        if self.claims is not None and not (stale := self.claims.begin_reap(stale)):  # fenced off first
            return  # (another worker reaped them meanwhile, or they came back)
        log.warning("worker(s) %s stopped heartbeating; committing what they left", ", ".join(stale))
        if self._repair(stale) and self.claims is not None:
            self.claims.mark_dead(stale)
            log.info("worker(s) %s marked dead; their sources are taken over", ", ".join(stale))

    def _claimed(self, claim: Claim) -> None:
        """A claimed source: capture it, or (a dead worker committed it) record that capture."""
        if claim.done_by is None:
            self.dispatcher.submit(Work.for_url(claim.url))
            return
        source = self.sources.get(claim.url)
        row = self.archive.index.snapshot(claim.done_by)
        if source is None or row is None:
            return
        log.info("%s: due %s was captured (%s) by an attempt that died or lost the index before recording it; "
                 "recorded now, not captured again", claim.url, claim.due, row.id)
        self._record(source, Outcome(row.status, f"HTTP {row.status}" if row.status >= 400 else None,
                                     row.id, row.significance))

    def _beat_status(self) -> dict[str, Any]:
        queued, running = self.dispatcher.counts()
        with self._lock:
            return {"captures": self.stats.captures, "failures": self.stats.failures, "queued": queued,
                    "running": running, "leases": queued + running, "last": self.stats.last}

    def _shutdown(self) -> int:
        grace = self.settings.daemon.shutdown_grace
        started = time.monotonic()
        with self._lock:
            self._stopping = True
        self.write_status("stopping")
        self.due.stop()
        if self.claim_loop is not None:
            self.claim_loop.stop_claiming()
        left = self.dispatcher.stop(grace)
        if left:
            log.warning("stopping: abandoning %d capture(s) still running after %.0fs", left, grace)
        self.notifier.stop(max(0.1, grace - (time.monotonic() - started)))
        if self.claim_loop is not None:
            self.claim_loop.stop()  # the heartbeat, last: running captures kept their leases
        if self.claims is not None and not left:
            # With abandoned captures the leases stay: the worker turns stale, and
            # the one that reaps it commits what it left before anyone recaptures.
            try:
                self.claims.stopped()
            except ArchiverError as exc:
                log.warning("cannot release this worker's leases (they expire on their own): %s", exc)
        self.write_status("stopped")
        log.info("daemon stopped")
        return left

    # -- planning -----------------------------------------------------------
    def _load_file(self) -> None:
        assert self.sources_file is not None
        try:
            specs = load_sources_file(self.sources_file, self.settings.daemon.default_every)
        except ArchiverError as exc:
            log.error("sources file not loaded: %s", exc)
            return
        self.sources.watch_many(specs, self.settings.daemon.default_every, checked=True)
        log.info("loaded %d source(s) from %s", len(specs), self.sources_file)

    def _sync(self, *, initial: bool = False, force: bool = False) -> Sequence[Plan]:
        """Bring the due queue in line with the active sources (returned)."""
        self._generation = self.sources.generation()
        now = self.clock()
        listed = self.sources.plans()
        active = {s.url: s for s in listed}
        planned: list[tuple[str, datetime]] = []
        moved: list[tuple[str, str]] = []  # (next_due, url) to write: a restart that keeps the schedule writes nothing
        # Under the lock: a job added here cannot finish (and write its own
        # next due time) before this plan is written.
        with self._lock:
            if self._stopping:
                return listed
            for url in list(self._planned):
                if url not in active:
                    del self._planned[url]
                    self._remove_job(url)
            busy = set(self.dispatcher.urls())  # one look, not a lock round per source
            intervals: dict[tuple[str, str], Every] = {}  # a few distinct intervals among 100,000 sources
            for s in active.values():
                if s.url in busy:
                    continue  # replanned when its attempt finishes
                known = self._planned.get(s.url)
                if known is not None and known == s.every and s.next_due is not None and not force:
                    continue
                every = intervals.get((s.kind, s.every))
                if every is None:
                    every = intervals[(s.kind, s.every)] = self._every(s)
                if known is not None and known != s.every:
                    # A changed interval is planned afresh from the last attempt.
                    when = self.policy.on_start(every, utc(s.last_change_at), None, now, utc(s.last_attempt_at))
                    moved.append((stamp(when), s.url))
                else:
                    stored = utc(s.next_due)
                    when = self.policy.on_start(every, utc(s.last_change_at), stored, now, utc(s.last_attempt_at))
                    if when != stored:
                        moved.append((stamp(when), s.url))
                planned.append((s.url, when))
            if moved:
                with self.archive.index.write() as conn:
                    conn.executemany("UPDATE sources SET next_due=? WHERE url=?", moved)
            for url, _ in planned:
                self._planned[url] = active[url].every
            self.due.set_many(planned)
        if not initial and planned:
            log.info("sources changed: %d (re)planned, %d watched", len(planned), len(self._planned))
        return listed

    def _every(self, s: Source | Plan) -> Every:
        try:
            return self.feed_every if s.kind == FEED and s.every == "adaptive" else s.schedule
        except ArchiverError:
            log.warning("%s: bad interval %r; using adaptive", s.url, s.every)
            return Every(None)

    def _add_job(self, url: str, when: datetime) -> None:
        self.due.set(url, when)

    def _remove_job(self, url: str) -> None:
        self.due.remove(url)

    def _due(self, url: str) -> None:
        """A source came due: only queue the URL; the Dispatcher runs it."""
        self.dispatcher.submit(Work.for_url(url))

    def _warn_impolite(self, active: Sequence[Plan]) -> None:
        minimum = parse_duration(self.settings.daemon.politeness_minimum)
        fast = [s.url for s in active if (self._every(s).seconds or minimum) < minimum]
        if fast:
            log.warning(
                "%d source(s) are captured more often than daemon.politeness_minimum (%s), e.g. %s",
                len(fast), self.settings.daemon.politeness_minimum, fast[0],
            )

    # -- one attempt --------------------------------------------------------
    def _attempt(self, work: Work) -> None:
        try:
            self._attempt_one(work)
        finally:
            if self.claim_loop is not None:
                self.claim_loop.wake()  # a slot is free

    def _attempt_one(self, work: Work) -> None:
        try:
            source = self.sources.get(work.url)
            if (source is None or not source.active) and self.claims is not None:
                self.claims.release(work.url)
        except ArchiverError as exc:  # the index is unreachable: the source stays due (its lease lapses)
            log.error("cannot start %s; retrying in %.0fs: %s", work.url, RECORD_RETRY, exc)
            with self._lock:
                if not self._stopping and not self.shared:
                    self._add_job(work.url, self.clock() + timedelta(seconds=RECORD_RETRY))
            return
        if source is None or not source.active:
            return
        if not self._wait_turn(source.url):
            return  # stopping: the lease is released or lapses, the source stays due
        started = time.monotonic()
        try:
            outcome = self._poll_feed(source) if source.kind == FEED else self._capture(source, work)
        except ArchiverError as exc:  # e.g. the index unreachable before the capture began: one line
            outcome = Outcome(None, str(exc))
        except Exception as exc:  # a bug must not unschedule the source: back off instead
            log.exception("capture of %s crashed", source.url)
            outcome = Outcome(None, f"internal error: {type(exc).__name__}: {exc}")
        self._end_turn(source.url)
        duration = time.monotonic() - started
        if outcome.lease_lost:
            # Cut off for longer than a lease: the source is another worker's now,
            # and its row is that worker's to write. Nothing of this capture was
            # signed (archiver/daemon/claims.py: LeaseFence).
            log.warning("capture of %s dropped after %.2fs: %s", source.url, duration, outcome.error)
            with self._lock:
                self.stats.captures += 1  # an attempt, like any other, that failed
                self.stats.failures += 1
            return
        try:
            try:
                next_due, failures = self._record(source, outcome)
            except ArchiverError as exc:  # the index is unreachable: one line, no traceback
                log.error("cannot record the outcome for %s; retrying in %.0fs: %s", source.url, RECORD_RETRY, exc)
                raise
            except Exception:
                log.exception("cannot record the outcome for %s; retrying in %.0fs", source.url, RECORD_RETRY)
                raise
        except Exception:
            next_due, failures = self.clock() + timedelta(seconds=RECORD_RETRY), source.failures + 1
            with self._lock:
                if not self._stopping and not self.shared:  # shared: the lease lapses and the source is due again
                    self._add_job(source.url, next_due)
        with self._lock:
            self.stats.captures += 1
            if outcome.error:
                self.stats.failures += 1
            self.stats.last = {"url": source.url, "status": outcome.status, "significance": outcome.significance,
                               "error": outcome.error, "at": stamp(self.clock()), "duration": round(duration, 3)}
        what = "poll" if source.kind == FEED else "capture"
        if outcome.error:
            wait = (next_due - self.clock()).total_seconds() if next_due else 0
            log.info("%s %s status=%s duration=%.2fs failed (%d in a row): %s; next try in %.0fs",
                     what, source.url, outcome.status or "-", duration, failures, outcome.error, wait)
        else:
            result = (f"new_articles={outcome.enrolled}" if source.kind == FEED
                      else f"significance={outcome.significance}")
            log.info("%s %s status=%s %s duration=%.2fs", what, source.url, outcome.status, result, duration)

    def _wait_turn(self, url: str) -> bool:
        """Shared mode: wait for the host's turn across all workers (False:
        stopping, or the index is unreachable: no request, the lease lapses)."""
        return self.claims is None or self.claims.wait_turn(url, self._stop.wait)

    def _end_turn(self, url: str) -> None:
        """Shared mode: the host's turn ends with the attempt if the fetch did
        not end it (a failed fetch, a lost lease)."""
        if self.claims is not None:
            self.claims.end_turn_quietly(url)

    def _capture(self, source: Source, work: Work) -> Outcome:
        fence = self.claims.fence(source.url) if self.claims is not None else None
        return capture_source(self.archive, source, fence, written=lambda: self.dispatcher.free(work))

    def _poll_feed(self, source: Source) -> Outcome:
        outcome = poll_feed(self.archive, self.sources, source, self.settings.daemon.feed_max_new)
        if outcome.error is None:
            with self._lock:
                self.stats.feed_polls += 1
                self.stats.enrolled += outcome.enrolled
        return outcome

    def _record(self, source: Source, o: Outcome) -> tuple[datetime | None, int]:
        """Write the attempt's outcome, queue notifications, plan the next run."""
        now = self.clock()

        def plan(current: Source, last_change: datetime | None, failures: int) -> datetime:
            return self.policy.after_capture(self._every(current), last_change, failures, now)

        with self.archive.index.write() as conn:
            current, next_due, failures, queued = record_outcome(
                conn, source.url, o, now=now, plan=plan, lease_owner=self.worker.name if self.shared else None,
                threshold=self.settings.notify.threshold)
        if queued:
            self.notifier.wake()  # after COMMIT: the deliveries are there to take
        if self.shared:
            return next_due, failures
        with self._lock:
            if next_due is None or self._stopping:
                self._planned.pop(source.url, None)
                return next_due, failures
            self._planned[source.url] = current.every if current else source.every
            self._add_job(source.url, next_due)
        return next_due, failures

    def _requeue_notifications(self) -> None:
        """Changes recorded but not queued (a crash between the two) are queued now."""
        queued = requeue_changes(self.archive.index, self.settings.notify.threshold, self.clock())
        if queued:
            log.info("queued %d notification(s) for changes found at start-up", queued)

    # -- status -------------------------------------------------------------
    def status(self, state: str) -> dict[str, Any]:
        queued, running = self.dispatcher.counts()
        with self._lock:
            s = self.stats
            return {
                "state": state,
                "pid": os.getpid(),
                "worker": self.worker.name if self.shared else None,
                "started_at": s.started_at,
                "heartbeat_at": stamp(self.clock()),
                "data_dir": str(self.settings.data_path),
                "scheduled": len(self._planned),
                "queued": queued,
                "running": running,
                "captures": s.captures,
                "failures": s.failures,
                "feed_polls": s.feed_polls,
                "enrolled": s.enrolled,
                "notifications_sent": self.notifier.sent,
                "notifications_failed": self.notifier.failed,
                "last": s.last,
            }

    def write_status(self, state: str) -> None:
        write_status(self.status_path.parent, self.status(state))


__all__ = ["Daemon", "Outcome", "install_signals", "read_status", "status_paths", "policy_from"]

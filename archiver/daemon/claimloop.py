"""The shared mode's clock: a heartbeat thread, and one that claims due work.

Where the embedded daemon keeps its own due queue (``timers.py``), a daemon
on a shared index asks the database: every lease/4 seconds the heartbeat
renews this worker's leases; each claim pass commits what a dead worker left
(then frees its leases), and claims as many
due sources as the local pool has room for, handing them to the Dispatcher.
An unreachable index only pauses claiming (logged once per outage); the
captures in flight fail or finish on their own. A worker judges others stale
only after its own heartbeats have gone through for a whole lease: after an
outage every heartbeat in the table is old, and the others need a moment to
renew theirs before anyone may take their sources.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

from archiver.daemon.claims import Claim, Claims
from archiver.errors import ArchiverError

log = logging.getLogger(__name__)

TICK = 0.5  # seconds between claim passes when there is nothing to do
BUSY_TICK = 0.05  # when the last pass filled every free slot: more may be due
OUTAGE_TICK = 2.0  # while the index is unreachable


class ClaimLoop:
    def __init__(
        self,
        claims: Claims,
        *,
        capacity: int,
        holding: Callable[[], list[str]],
        hand: Callable[[Claim], None],
        status: Callable[[], dict[str, Any]],
        reap: Callable[[list[str]], None],
        tick: float = TICK,
    ) -> None:
        self.claims = claims
        self.capacity = max(1, capacity)
        self.holding = holding
        self.hand = hand
        self.status = status
        self.reap = reap
        self.tick = tick
        self.beat_every = max(0.2, claims.lease.total_seconds() / 4)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        # Since when this worker's heartbeats have gone through without a
        # break (inf while they fail): only then may it judge others stale.
        self._alive_since = float("inf")
        self._alive = threading.Lock()
        self._claiming = True

    def start(self) -> None:
        # Heartbeats run on a thread of their own, so a slow claim pass or a
        # long repair of a dead worker's leftovers never lets this worker's
        # own leases lapse.
        self._threads = [threading.Thread(target=self._beat, name="heartbeat", daemon=True),
                         threading.Thread(target=self._run, name="claims", daemon=True)]
        for t in self._threads:
            t.start()

    def wake(self) -> None:
        self._wake.set()

    def stop_claiming(self, timeout: float = 5.0) -> None:
        """Take no more work; the heartbeat goes on renewing what still runs."""
        self._claiming = False
        self._wake.set()
        if len(self._threads) > 1:
            self._threads[1].join(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        self._claiming = False
        self._stop.set()
        self._wake.set()
        for t in self._threads:
            t.join(timeout)

    def _beat(self) -> None:
        failing = False
        while not self._stop.is_set():
            try:
                self.claims.heartbeat(self.holding(), self.status())
                with self._alive:
                    if self._alive_since == float("inf"):
                        self._alive_since = time.monotonic()
                if failing:
                    log.info("heartbeat: index reachable again")
                failing = False
            except ArchiverError as exc:
                with self._alive:
                    self._alive_since = float("inf")
                if not failing:
                    log.warning("heartbeat failed (retrying): %s", exc)
                failing = True
            except Exception:  # noqa: BLE001 - a bug must not stop the heartbeat
                log.exception("heartbeat failed")
            self._stop.wait(self.beat_every)

    def _steady(self) -> bool:
        """Have this worker's heartbeats gone through for a whole lease?"""
        with self._alive:
            return time.monotonic() - self._alive_since >= self.claims.lease.total_seconds()

    def _run(self) -> None:
        next_check = 0.0
        failing = False
        while self._claiming and not self._stop.is_set():
            wait = self.tick
            try:
                if time.monotonic() >= next_check:
                    next_check = time.monotonic() + self.beat_every
                    stale = self.claims.stale() if self._steady() else []
                    if stale:
                        self.reap(stale)
                free = self.capacity - len(self.holding())
                got = self.claims.claim(free) if free > 0 else []
                for claim in got:
                    if not self._claiming:
                        break  # still leased: released by the clean stop
                    self.hand(claim)
                if failing:
                    log.info("index reachable again: claiming resumes")
                    failing = False
                if got and len(got) >= free:
                    wait = BUSY_TICK
            except ArchiverError as exc:
                if not failing:
                    log.warning("cannot claim due sources (retrying every %.0fs): %s", OUTAGE_TICK, exc)
                failing = True
                wait = OUTAGE_TICK
            except Exception:  # noqa: BLE001 - a bug must not stop the clock
                log.exception("claim pass failed")
                wait = OUTAGE_TICK
            self._wake.wait(wait)
            self._wake.clear()

"""The shared mode's clock: one thread that heartbeats and claims due work.

Where the embedded daemon keeps its own due queue (``timers.py``), a daemon
on a shared index asks the database: each pass renews this worker's leases,
commits what a dead worker left (then frees its leases), and claims as many
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
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="claims", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        next_beat = 0.0
        failing = False
        lease = self.claims.lease.total_seconds()
        connected_since = time.monotonic()
        while not self._stop.is_set():
            wait = self.tick
            try:
                if time.monotonic() >= next_beat:
                    self.claims.heartbeat(self.holding(), self.status())
                    next_beat = time.monotonic() + self.beat_every
                    stale = self.claims.stale() if time.monotonic() - connected_since >= lease else []
                    if stale:
                        self.reap(stale)
                free = self.capacity - len(self.holding())
                got = self.claims.claim(free) if free > 0 else []
                for claim in got:
                    if self._stop.is_set():
                        break  # still leased: released by the clean stop
                    self.hand(claim)
                if failing:
                    log.info("index reachable again: claiming resumes")
                    failing = False
                if connected_since == float("inf"):
                    connected_since = time.monotonic()
                if got and len(got) >= free:
                    wait = BUSY_TICK
            except ArchiverError as exc:
                if not failing:
                    log.warning("cannot claim due sources (retrying every %.0fs): %s", OUTAGE_TICK, exc)
                failing = True
                connected_since = float("inf")
                wait = OUTAGE_TICK
            except Exception:  # noqa: BLE001 - a bug must not stop the clock
                log.exception("claim pass failed")
                wait = OUTAGE_TICK
            self._wake.wait(wait)
            self._wake.clear()

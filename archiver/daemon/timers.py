"""When each source is next due, and one thread that hands due URLs on.

Why not one APScheduler job per source: adding a job inspects the callable's
signature every time, so planning 100,000 sources took seconds at each
start. A source has exactly one next time, so a heap keyed by time (with the
superseded entries skipped) is all the daemon needs; missed times collapse
into one run, and a late run is better than none (there is no misfire limit).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
from datetime import datetime
from typing import Callable, Iterable

log = logging.getLogger(__name__)

MAX_SLEEP = 1.0  # seconds; the clock is re-read at least this often (it may jump)


class DueQueue:
    """One pending time per key; ``fire(key)`` runs on the queue's thread when it is due."""

    def __init__(self, fire: Callable[[str], None], clock: Callable[[], datetime]) -> None:
        self._fire = fire
        self._clock = clock
        self._heap: list[tuple[datetime, int, str]] = []
        self._current: dict[str, int] = {}  # key -> the sequence number of its live entry
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._stopped = False
        self._thread: threading.Thread | None = None

    def __len__(self) -> int:
        with self._cond:
            return len(self._current)

    def __contains__(self, key: str) -> bool:
        with self._cond:
            return key in self._current

    def set(self, key: str, when: datetime) -> None:
        """Plan ``key`` for ``when``, replacing any earlier plan."""
        self.set_many([(key, when)])

    def set_many(self, items: Iterable[tuple[str, datetime]]) -> None:
        with self._cond:
            for key, when in items:
                seq = next(self._seq)
                self._current[key] = seq
                self._heap.append((when, seq, key))
            if len(self._heap) > 2 * len(self._current) + 1024:
                self._heap = [e for e in self._heap if self._current.get(e[2]) == e[1]]
            heapq.heapify(self._heap)
            self._cond.notify()

    def remove(self, key: str) -> None:
        with self._cond:
            self._current.pop(key, None)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="due-queue", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stopped

    def _next_due(self) -> str | None:
        """Wait for the earliest live entry to come due and take it; None when stopped."""
        with self._cond:
            while not self._stopped:
                while self._heap and self._current.get(self._heap[0][2]) != self._heap[0][1]:
                    heapq.heappop(self._heap)  # superseded or removed
                if not self._heap:
                    self._cond.wait()
                    continue
                wait = (self._heap[0][0] - self._clock()).total_seconds()
                if wait <= 0:
                    _, _, key = heapq.heappop(self._heap)
                    del self._current[key]
                    return key
                self._cond.wait(min(wait, MAX_SLEEP))
            return None

    def _run(self) -> None:
        while (key := self._next_due()) is not None:
            try:
                self._fire(key)
            except Exception:  # noqa: BLE001 - one bad hand-off must not stop the clock
                log.exception("handing on %s failed", key)

"""Group commit: threads that each have one item to commit share one run.

Why: a capture's commit costs two fsyncs (the WARC's, then the index's) and
holds the index's write lock meanwhile. When several capture threads finish
at about the same moment, the first one to arrive becomes the *leader* and
commits every item queued by then in one run (one WARC fsync, one index
transaction, one checkpoint); the others wait and are handed their outcome.
Nobody waits for a group to fill: a lone capture is committed at once, and
groups form only from captures that would otherwise queue on the lock.
So that they do, a worker that has fetched a page and written its records
starts the next capture while that one waits for its commit: there are
:data:`THREADS_PER_WORKER` capture threads per worker (``snapshot -i``,
the daemon), and a worker's place (:class:`Slot`, the daemon's
``Dispatcher.free``) is taken while fetching, given back before the commit:
never more than ``workers`` pages fetched and read at once, at most twice
that many captures under way.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Callable, Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

#: capture threads per worker: one fetching, one waiting for its commit
THREADS_PER_WORKER = 2


class Slot:
    """A worker's place, taken at once (when ``slots`` is given) and given back
    once: when its capture's records are written, or when it fails before."""

    def __init__(self, slots: threading.Semaphore | None) -> None:
        self._slots = slots
        if slots is not None:
            slots.acquire()

    def release(self) -> None:
        slots, self._slots = self._slots, None
        if slots is not None:
            slots.release()


@dataclass
class _Ticket(Generic[T]):
    item: T
    done: bool = False
    error: BaseException | None = None


class GroupCommitter(Generic[T]):
    """Batches items from many threads into calls of ``run(batch)``.

    ``run`` commits every item of the batch or raises; an exception it raises
    is the outcome of every item in that batch (the whole group rolled back).
    Per-item outcomes are the items' own business (``run`` sets them).
    """

    def __init__(self, run: Callable[[list[T]], None], max_group: int = 32) -> None:
        self._run = run
        self.max_group = max(1, max_group)
        self._cv = threading.Condition()
        self._queue: list[_Ticket[T]] = []
        self._leading = False
        self.groups = 0  # runs so far, and items they committed (for tests and benchmarks)
        self.items = 0

    def submit(self, item: T) -> None:
        """Return once ``item`` was part of a run; raise what that run raised."""
        ticket = _Ticket(item)
        with self._cv:
            self._queue.append(ticket)
            while not ticket.done:
                if self._leading:
                    self._cv.wait()
                    continue
                self._lead()
        if ticket.error is not None:
            raise ticket.error

    def _lead(self) -> None:
        """Run the queued items (called with the condition held; released meanwhile)."""
        self._leading = True
        batch, self._queue = self._queue[: self.max_group], self._queue[self.max_group:]
        self._cv.release()
        try:
            try:
                self._run([t.item for t in batch])
            except BaseException as exc:  # the group's outcome, re-raised in each thread
                for t in batch:
                    t.error = exc
        finally:
            self._cv.acquire()
            self._leading = False
            self.groups += 1
            self.items += len(batch)
            for t in batch:
                t.done = True
            self._cv.notify_all()
        if len(batch) > 1:
            log.debug("group commit of %d items", len(batch))

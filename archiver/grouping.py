"""Group commit: threads that each have one item to commit share one run.

Why: a capture's commit costs two fsyncs (the WARC's, then the index's) and
holds the index's write lock meanwhile. When several capture threads finish
at about the same moment, the first one to arrive becomes the *leader* and
commits every item queued by then in one run (one WARC fsync, one index
transaction, one checkpoint); the others wait and are handed their outcome.
Nobody waits for a group to fill: a lone capture is committed at once, and
groups form only from captures that would otherwise queue on the lock.
So that they do, a worker whose capture only waits for its commit starts
the next capture meanwhile: there are :data:`THREADS_PER_WORKER` capture
threads per worker (``snapshot -i``, the daemon), and a worker's place
(:class:`Slot`, the daemon's ``Dispatcher.free``) is taken while fetching and
given back through the capture's :class:`Handoff`: never more than
``workers`` pages fetched and read at once, at most twice that many captures
under way.

When the place is given back matters on one interpreter. With pages read
in worker processes (several workers) the next capture mostly waits -- for
its page's reading, for a fetch process -- so it starts as soon as this
capture's records are written (the Archive gives the place back at once).
With pages read in the capture thread (one worker) the next capture needs
the interpreter as much as the commit does: the two threads would only
trade the GIL at every read and write (measured with one worker and a fast
fsync: three times the context switches and more CPU per page, for an
overlap of a few hundred microseconds). Then a capture gives its place back
only when it has nothing left to do but wait: when it queues behind another
capture's commit round, when its own round reaches its fsyncs (the round
calls :meth:`Handoff.give_back`), or when its round has run
:data:`HANDOFF_AFTER` without getting there -- the index's lock held by
another process, a slow shared index -- which a watchdog thread of the
committer notices.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Generic, Iterable, Iterator, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

#: capture threads per worker: one fetching, one waiting for its commit
THREADS_PER_WORKER = 2

#: seconds a commit round may run before the places of its captures are given
#: back anyway: about twice a lone small page's round on two idle cores, so a
#: round that is not waiting on its lock, its fsyncs or a remote index keeps
#: its place and runs without a second capture thread contending for the GIL
HANDOFF_AFTER = 0.002


class Handoff:
    """Gives a capture's worker place back once (``give_back``: the caller's
    callback), from whichever thread sees first that the capture only waits."""

    def __init__(self, give_back: Callable[[], None] | None) -> None:
        self._give_back = give_back
        self._lock = threading.Lock()

    @property
    def pending(self) -> bool:
        """Not given back yet."""
        return self._give_back is not None

    def give_back(self) -> None:
        with self._lock:
            call, self._give_back = self._give_back, None
        if call is not None:
            call()


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


R = TypeVar("R")


def in_workers(items: Iterable[T], workers: int, work: Callable[[T, Callable[[], None]], R],
               ) -> Iterator[tuple[T, R | BaseException]]:
    """``work(item, give_back)`` for each item, ``workers`` at a time, and
    :data:`THREADS_PER_WORKER` threads per worker: an item holds a worker's
    place (:class:`Slot`) until ``give_back`` is called or its work ends.
    Yields (item, result or exception) as each finishes; every item gets its
    outcome even if the caller stops reading (the threads are joined).

    Plain threads taking items in turn and a queue of outcomes, not a thread
    pool with a future per item: its bookkeeping (a condition per future,
    the waiter of ``as_completed``, the idle semaphore per task) woke threads
    several times per page, a tenth of the capture process's interpreter
    time with two workers."""
    items = list(items)
    slots = threading.Semaphore(workers)
    todo, take = iter(items), threading.Lock()
    done: queue.SimpleQueue[tuple[T, R | BaseException] | None] = queue.SimpleQueue()

    def run() -> None:
        try:
            while True:
                with take:
                    try:
                        item = next(todo)
                    except StopIteration:
                        return
                slot = Slot(slots)
                try:
                    done.put((item, work(item, slot.release)))
                except BaseException as exc:  # the caller's to judge, in its thread
                    done.put((item, exc))
                finally:
                    slot.release()
        finally:
            done.put(None)

    threads = [threading.Thread(target=run, name=f"capture_{i}")
               for i in range(min(workers * THREADS_PER_WORKER, len(items) or 1))]
    for t in threads:
        t.start()
    try:
        running = len(threads)
        while running:
            got = done.get()
            if got is None:
                running -= 1
            else:
                yield got
    finally:
        for t in threads:
            t.join()


@dataclass
class _Ticket(Generic[T]):
    item: T
    handoff: Handoff | None = None
    done: bool = False
    error: BaseException | None = None


@dataclass
class _Round:
    """The run under way, for the watchdog: its handoffs and when to give them back."""

    handoffs: list[Handoff] = field(default_factory=list)
    due: float = 0.0


class _Watchdog:
    """One thread that gives back the places of a round still running after
    :data:`HANDOFF_AFTER` (blocked on a lock, a slow index): woken once when a
    round with handoffs starts, and at its due time."""

    def __init__(self, after: float) -> None:
        self.after = after
        self._cv = threading.Condition()
        self._round: _Round | None = None
        self._closed = False
        self._thread: threading.Thread | None = None

    def watch(self, handoffs: list[Handoff]) -> None:
        with self._cv:
            if self._closed:
                return
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="commit-handoff", daemon=True)
                self._thread.start()
            self._round = _Round(handoffs, time.monotonic() + self.after)
            self._cv.notify()

    def done(self) -> None:
        with self._cv:
            self._round = None  # not woken: it finds nothing at the due time

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._round = None
            self._cv.notify()
            thread = self._thread
        if thread is not None:
            thread.join(5)

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._closed and (self._round is None or self._round.due > time.monotonic()):
                    self._cv.wait(None if self._round is None else self._round.due - time.monotonic())
                if self._closed:
                    return
                assert self._round is not None
                late, self._round = self._round.handoffs, None
            for handoff in late:
                handoff.give_back()


class GroupCommitter(Generic[T]):
    """Batches items from many threads into calls of ``run(batch)``.

    ``run`` commits every item of the batch or raises; an exception it raises
    is the outcome of every item in that batch (the whole group rolled back).
    Per-item outcomes are the items' own business (``run`` sets them).
    """

    def __init__(self, run: Callable[[list[T]], None], max_group: int = 32,
                 handoff_after: float | None = None) -> None:
        self._run = run
        self.max_group = max(1, max_group)
        self._cv = threading.Condition()
        self._queue: list[_Ticket[T]] = []
        self._leading = False
        self._watchdog = _Watchdog(HANDOFF_AFTER if handoff_after is None else handoff_after)
        self.groups = 0  # runs so far, and items they committed (for tests and benchmarks)
        self.items = 0

    def submit(self, item: T, handoff: Handoff | None = None) -> None:
        """Return once ``item`` was part of a run; raise what that run raised.
        ``handoff`` is given back when the item only waits (module docstring)
        and at the latest when its run ends; ``run`` gives it back at its waits."""
        ticket = _Ticket(item, handoff)
        with self._cv:
            self._queue.append(ticket)
            while not ticket.done:
                if self._leading:
                    if handoff is not None:  # queued behind another run: nothing to do but wait
                        self._cv.release()
                        try:
                            handoff.give_back()
                        finally:
                            self._cv.acquire()
                        handoff = None
                    if self._leading and not ticket.done:
                        self._cv.wait()
                    continue
                self._lead()
        if ticket.error is not None:
            raise ticket.error

    def close(self) -> None:
        """Stop the watchdog thread (if one was started)."""
        self._watchdog.close()

    def _lead(self) -> None:
        """Run the queued items (called with the condition held; released meanwhile)."""
        self._leading = True
        batch, self._queue = self._queue[: self.max_group], self._queue[self.max_group:]
        self._cv.release()
        handoffs = [t.handoff for t in batch if t.handoff is not None and t.handoff.pending]  # none: no watchdog
        try:
            if handoffs:
                self._watchdog.watch(handoffs)
            try:
                self._run([t.item for t in batch])
            except BaseException as exc:  # the group's outcome, re-raised in each thread
                for t in batch:
                    t.error = exc
        finally:
            if handoffs:
                self._watchdog.done()
                for h in handoffs:
                    h.give_back()
            self._cv.acquire()
            self._leading = False
            self.groups += 1
            self.items += len(batch)
            for t in batch:
                t.done = True
            self._cv.notify_all()
        if len(batch) > 1:
            log.debug("group commit of %d items", len(batch))

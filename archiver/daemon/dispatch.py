"""Hands due work to a bounded thread pool, politely per host.

A job waiting for its host (too many requests in flight there, or too soon
after the last one) waits in a queue here, not in a pool thread, so one slow
or strict host never starves the others of workers.

A job whose requests are done and that only waits for its commit gives its
worker back (:meth:`Dispatcher.free`): the pool has ``threads_per_worker``
threads per worker, so the next job starts meanwhile, and jobs that wait
for their commit together are committed in one round. At most ``workers``
jobs fetch at once (and ``per_host`` per host); a job still counts as
running (its URL is neither queued again nor its lease let go) until it ends.

The delay between two starts on one host counts from when a pool thread
actually begins the job, not from when it was handed over: on a busy machine
a thread may start a moment late, and counting from the hand-over would let
the next request follow the late one by less than the delay. Until a handed
job has begun, no other job of its host is handed out.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable
from urllib.parse import urlsplit

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Work:
    url: str
    host: str

    @classmethod
    def for_url(cls, url: str) -> "Work":
        parts = urlsplit(url)
        return cls(url, (parts.hostname or "").lower())


@dataclass(frozen=True)
class Politeness:
    workers: int = 8
    per_host: int = 2
    delay: float = 1.0  # seconds between the starts of two requests to one host


class Dispatcher:
    """One thread picks runnable work (round-robin over hosts) for the pool."""

    def __init__(
        self,
        run: Callable[[Work], None],
        politeness: Politeness,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        pool: Executor | None = None,
        threads_per_worker: int = 1,
    ) -> None:
        """``pool``: where jobs run (default: a thread pool of ``workers`` x
        ``threads_per_worker`` threads)."""
        self.run = run
        self.p = Politeness(max(1, politeness.workers), max(1, politeness.per_host), max(0.0, politeness.delay))
        self.monotonic = monotonic
        self._cond = threading.Condition()
        self._hosts: OrderedDict[str, deque[Work]] = OrderedDict()
        self._host_active: dict[str, int] = {}
        self._host_next: dict[str, float] = {}
        self._host_starting: dict[str, str] = {}  # host -> the URL handed to the pool, not yet begun
        self._active = 0
        self._known: set[str] = set()  # queued or running URLs
        self._running: set[str] = set()
        self._freed: set[str] = set()  # running, but their worker given back (waiting for a commit)
        self._stopping = False
        self._pool = pool or ThreadPoolExecutor(max_workers=self.p.workers * max(1, threads_per_worker),
                                                thread_name_prefix="capture")
        self._thread = threading.Thread(target=self._loop, name="dispatch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    # -- state, for the status file and the scheduler -------------------------
    def busy(self, url: str) -> bool:
        with self._cond:
            return url in self._known

    def urls(self) -> list[str]:
        """The URLs queued or running (the shared mode renews their leases)."""
        with self._cond:
            return list(self._known)

    def counts(self) -> tuple[int, int]:
        """(queued, running)"""
        with self._cond:
            return len(self._known) - len(self._running), len(self._running)

    # -- work in ------------------------------------------------------------
    def submit(self, work: Work) -> bool:
        """Queue ``work`` unless the same URL is queued or running already."""
        with self._cond:
            if self._stopping or work.url in self._known:
                return False
            self._known.add(work.url)
            self._hosts.setdefault(work.host, deque()).append(work)
            self._cond.notify()
            return True

    def _pick(self, now: float) -> tuple[Work | None, float | None]:
        """The next runnable work, or how long until some host may go again."""
        if self._active >= self.p.workers:
            return None, None
        wait: float | None = None
        for host in list(self._hosts):
            queue = self._hosts[host]
            if not queue:
                del self._hosts[host]
                continue
            if self._host_active.get(host, 0) >= self.p.per_host or host in self._host_starting:
                continue
            ready_at = self._host_next.get(host, 0.0)
            if ready_at > now:
                wait = ready_at - now if wait is None else min(wait, ready_at - now)
                continue
            work = queue.popleft()
            if queue:
                self._hosts.move_to_end(host)  # round-robin between hosts
            else:
                del self._hosts[host]
            return work, None
        return None, wait

    def _loop(self) -> None:
        with self._cond:
            while not self._stopping:
                now = self.monotonic()
                work, wait = self._pick(now)
                if work is None:
                    self._cond.wait(wait)
                    continue
                self._active += 1
                self._host_active[work.host] = self._host_active.get(work.host, 0) + 1
                self._host_next[work.host] = now + self.p.delay
                self._host_starting[work.host] = work.url
                self._running.add(work.url)
                try:
                    self._pool.submit(self._run_one, work)
                except RuntimeError:  # pool shut down under us: we are stopping
                    self._done(work)

    def _run_one(self, work: Work) -> None:
        with self._cond:  # the host's delay runs from now, when the job begins
            self._begun(work)
        try:
            self.run(work)
        except Exception:  # a bug in one capture must not kill the worker
            log.exception("capture of %s crashed", work.url)
        finally:
            with self._cond:
                self._done(work)

    def free(self, work: Work) -> None:
        """``work`` no longer needs its worker or its host's place (its requests
        are done): the next job may start while it finishes. Once per job."""
        with self._cond:
            if work.url not in self._running or work.url in self._freed:
                return
            self._freed.add(work.url)
            self._release(work)

    def _release(self, work: Work) -> None:
        self._active -= 1
        self._host_active[work.host] -= 1
        if not self._host_active[work.host]:
            del self._host_active[work.host]
        self._cond.notify_all()

    def _begun(self, work: Work) -> None:
        host = work.host
        if self._host_starting.get(host) == work.url:  # only this job's own start: not a later one's
            del self._host_starting[host]
            self._host_next[host] = max(self._host_next.get(host, 0.0), self.monotonic() + self.p.delay)
            self._cond.notify_all()

    def _done(self, work: Work) -> None:
        self._begun(work)  # never begun (the pool shut down): the host is free again
        if work.url in self._freed:
            self._freed.discard(work.url)
        else:
            self._release(work)
        self._running.discard(work.url)
        self._known.discard(work.url)
        self._cond.notify_all()

    # -- stopping -----------------------------------------------------------
    def stop(self, grace: float) -> int:
        """Take no more work, drop the queue, wait up to ``grace`` seconds for
        running work; returns how many are still running (to be abandoned)."""
        deadline = self.monotonic() + grace
        with self._cond:
            self._stopping = True
            dropped = sum(len(q) for q in self._hosts.values())
            self._hosts.clear()
            self._known = set(self._running)
            self._cond.notify_all()
            if dropped:
                log.info("stopping: %d queued capture(s) left for the next start", dropped)
            while self._running and self.monotonic() < deadline:
                self._cond.wait(max(0.01, deadline - self.monotonic()))
            left = len(self._running)
        self._pool.shutdown(wait=False, cancel_futures=True)
        return left

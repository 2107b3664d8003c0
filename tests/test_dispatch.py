"""The dispatcher: bounded workers, per-host limits and delays, fairness, stop."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from archiver.daemon.dispatch import Dispatcher, Politeness, Work


class Recorder:
    def __init__(self, hold: float = 0.05) -> None:
        self.hold = hold
        self.lock = threading.Lock()
        self.starts: list[tuple[str, str, float]] = []
        self.active: dict[str, int] = {}
        self.peak: dict[str, int] = {}
        self.peak_total = 0
        self.done = threading.Event()
        self.expected = 0

    def __call__(self, work: Work) -> None:
        with self.lock:
            self.starts.append((work.host, work.url, time.monotonic()))
            self.active[work.host] = self.active.get(work.host, 0) + 1
            self.peak[work.host] = max(self.peak.get(work.host, 0), self.active[work.host])
            self.peak_total = max(self.peak_total, sum(self.active.values()))
        time.sleep(self.hold)
        with self.lock:
            self.active[work.host] -= 1
            if len(self.starts) == self.expected and not any(self.active.values()):
                self.done.set()


def test_per_host_limits_delay_and_fairness():
    rec = Recorder()
    d = Dispatcher(rec, Politeness(workers=3, per_host=1, delay=0.2))
    urls = [f"http://a.example/{i}" for i in range(4)] + [f"http://b.example/{i}" for i in range(2)]
    rec.expected = len(urls)
    d.start()
    for u in urls:
        assert d.submit(Work.for_url(u))
    assert not d.submit(Work.for_url(urls[0]))  # already queued: not twice
    assert rec.done.wait(30)
    assert d.stop(1.0) == 0
    assert rec.peak == {"a.example": 1, "b.example": 1} and rec.peak_total <= 3
    a_starts = [t for h, _, t in rec.starts if h == "a.example"]
    assert all(b - a >= 0.19 for a, b in zip(a_starts, a_starts[1:]))
    # b.example is not starved behind a.example's queue.
    order = [h for h, _, _ in rec.starts]
    assert order.index("b.example") < 2


def test_workers_bound_total_concurrency():
    rec = Recorder(hold=0.1)
    d = Dispatcher(rec, Politeness(workers=2, per_host=10, delay=0.0))
    rec.expected = 8
    d.start()
    for i in range(8):
        d.submit(Work.for_url(f"http://h{i % 4}.example/{i}"))
    assert rec.done.wait(30)
    d.stop(1.0)
    assert rec.peak_total == 2


def test_stop_drops_the_queue_and_reports_what_still_runs():
    release = threading.Event()
    ran: list[str] = []

    def run(work: Work) -> None:
        ran.append(work.url)
        release.wait(10)

    d = Dispatcher(run, Politeness(workers=1, per_host=1, delay=0.0))
    d.start()
    d.submit(Work.for_url("http://x.example/1"))
    d.submit(Work.for_url("http://x.example/2"))
    deadline = time.monotonic() + 10
    while not ran and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    assert d.stop(0.3) == 1  # one still running after the grace: abandoned
    assert time.monotonic() - started < 5
    assert not d.submit(Work.for_url("http://x.example/3"))
    release.set()
    assert ran == ["http://x.example/1"]


class LateStartingPool(ThreadPoolExecutor):
    """A real thread pool whose n-th job handed over begins ``lags[n]`` seconds
    late (n from 1), as on a busy machine where a thread is scheduled late."""

    def __init__(self, lags: dict[int, float]) -> None:
        super().__init__(max_workers=4)
        self.lags, self.handed = lags, 0

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[override]
        self.handed += 1
        lag = self.lags.get(self.handed, 0.0)

        def late() -> None:
            time.sleep(lag)
            fn(*args, **kwargs)

        return super().submit(late)


def _starts_of_one_host(hold: float, lags: dict[int, float]) -> list[float]:
    """When each of three jobs of one host began (per_host 2, delay 0.2 s),
    each held ``hold`` seconds, the n-th handed over beginning ``lags[n]`` late."""
    rec = Recorder(hold=hold)
    d = Dispatcher(rec, Politeness(workers=4, per_host=2, delay=0.2), pool=LateStartingPool(lags))
    urls = [f"http://a.example/{i}" for i in range(3)]
    rec.expected = len(urls)
    d.start()
    for u in urls:
        assert d.submit(Work.for_url(u))
    assert rec.done.wait(30)
    d.stop(1.0)
    return sorted(t for _, _, t in rec.starts)


def test_host_delay_counts_from_when_a_job_begins_not_when_it_was_handed_over():
    starts = _starts_of_one_host(hold=0.5, lags={1: 0.3})
    # the first job began 0.3 s late: the second must still follow it by the delay
    assert all(b - a >= 0.19 for a, b in zip(starts, starts[1:])), starts


def test_a_job_ending_does_not_count_as_the_start_of_the_next_one_of_its_host():
    """The first job (0.3 s) ends while the second, handed over at 0.2 s, has
    not begun yet (it begins 0.35 s late): that end must not free the host
    for a third job before the second has begun."""
    starts = _starts_of_one_host(hold=0.3, lags={2: 0.35})
    assert all(b - a >= 0.19 for a, b in zip(starts, starts[1:])), starts


def test_a_job_waiting_for_its_commit_frees_its_worker_but_still_runs():
    """A job that calls ``free`` (its requests done, its commit to come) lets
    the next job start -- of the same host too -- while it still counts as
    running: not queued again, and waited for by ``stop``."""
    commit = threading.Event()
    lock = threading.Lock()
    started: list[str] = []
    fetching = [0]
    most = [0]
    d: Dispatcher

    def run(work: Work) -> None:
        with lock:
            started.append(work.url)
            fetching[0] += 1
            most[0] = max(most[0], fetching[0])
        time.sleep(0.02)
        with lock:
            fetching[0] -= 1
        d.free(work)
        d.free(work)  # once per job: a second call changes nothing
        commit.wait(10)

    d = Dispatcher(run, Politeness(workers=1, per_host=1, delay=0.0), threads_per_worker=2)
    d.start()
    urls = [f"http://x.example/{i}" for i in range(3)]
    for u in urls:
        assert d.submit(Work.for_url(u))
    deadline = time.monotonic() + 10
    while len(started) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    assert started == urls[:2]  # two threads for one worker: the third waits for a thread
    assert most[0] == 1  # never two fetching at once
    assert d.counts() == (0, 3)  # both still running; the third handed to the pool, not begun
    assert not d.submit(Work.for_url(urls[0]))  # running: not queued again
    assert d.stop(0.3) == 3  # freed jobs are waited for and reported like any other
    commit.set()

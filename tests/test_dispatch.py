"""The dispatcher: bounded workers, per-host limits and delays, fairness, stop."""

from __future__ import annotations

import threading
import time

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

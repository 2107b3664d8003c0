"""The daemon's due queue: one next time per source, handed on in time order."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

from archiver.daemon.timers import DueQueue


class Collector:
    def __init__(self, expect: int) -> None:
        self.fired: list[str] = []
        self.done = threading.Event()
        self.expect = expect

    def __call__(self, key: str) -> None:
        self.fired.append(key)
        if len(self.fired) >= self.expect:
            self.done.set()


def now() -> datetime:
    return datetime.now(timezone.utc)


def test_keys_fire_in_time_order_and_a_new_time_replaces_the_old() -> None:
    got = Collector(3)
    q = DueQueue(got, now)
    t = now()
    q.set_many([("c", t + timedelta(milliseconds=60)), ("a", t + timedelta(milliseconds=20)),
                ("b", t + timedelta(seconds=30))])
    q.set("b", t + timedelta(milliseconds=40))  # moved earlier: fires once, at the new time
    q.set("gone", t)
    q.remove("gone")
    q.start()
    assert got.done.wait(5)
    q.stop()
    assert got.fired == ["a", "b", "c"]
    assert len(q) == 0


def test_overdue_keys_fire_once_and_stop_ends_the_thread() -> None:
    got = Collector(2)
    q = DueQueue(got, now)
    past = now() - timedelta(hours=5)
    q.set_many([("x", past), ("y", past - timedelta(hours=1))])
    q.set("later", now() + timedelta(hours=1))
    q.start()
    assert got.done.wait(5)
    assert got.fired == ["y", "x"]
    assert "later" in q and q.running
    q.stop()
    q._thread.join(5)
    assert not q._thread.is_alive() and got.fired == ["y", "x"]


def test_a_failing_hand_off_does_not_stop_the_clock() -> None:
    fired: list[str] = []
    done = threading.Event()

    def fire(key: str) -> None:
        if key == "bad":
            raise RuntimeError("boom")
        fired.append(key)
        done.set()

    q = DueQueue(fire, now)
    t = now()
    q.set_many([("bad", t), ("good", t + timedelta(milliseconds=20))])
    q.start()
    assert done.wait(5)
    q.stop()
    assert fired == ["good"]


def test_superseded_entries_are_compacted() -> None:
    q = DueQueue(lambda key: None, now)
    far = now() + timedelta(days=1)
    for i in range(5000):
        q.set("same", far + timedelta(seconds=i))
    assert len(q) == 1 and len(q._heap) < 2000

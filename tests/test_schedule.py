"""The schedule policy without a clock: adaptive tiers, backoff, jitter, restarts."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest

from archiver.daemon.schedule import (
    DAY,
    HOUR,
    MINUTE,
    Every,
    SchedulePolicy,
    stamp,
    utc,
)
from archiver.errors import ConfigError

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def policy(jitter: float = 0.0, max_backoff: float = DAY, seed: int = 1) -> SchedulePolicy:
    return SchedulePolicy(max_backoff=max_backoff, jitter=jitter, rng=random.Random(seed))


def test_every_parses_adaptive_and_durations():
    assert Every.parse("adaptive").adaptive and str(Every.parse("Adaptive")) == "adaptive"
    assert Every.parse("90s").seconds == 90 and str(Every.parse("90s")) == "1m30s"
    with pytest.raises(ConfigError):
        Every.parse("often")


@pytest.mark.parametrize(
    "changed_ago,expected",
    [
        (None, 15 * MINUTE),  # never captured: a new article
        (timedelta(minutes=5), 15 * MINUTE),
        (timedelta(hours=2, minutes=59), 15 * MINUTE),
        (timedelta(hours=3), HOUR),
        (timedelta(hours=23), HOUR),
        (timedelta(days=2), 3 * HOUR),
        (timedelta(days=10), DAY),
        (timedelta(days=45), 7 * DAY),
    ],
)
def test_adaptive_interval_slows_down_with_age(changed_ago, expected):
    last_change = None if changed_ago is None else NOW - changed_ago
    assert policy().interval(Every(None), last_change, NOW) == expected


def test_adaptive_speeds_up_again_after_a_change():
    p = policy()
    old = NOW - timedelta(days=40)
    assert p.after_capture(Every(None), old, 0, NOW) == NOW + timedelta(days=7)
    # The capture at NOW found a change: the clock restarts from it.
    assert p.after_capture(Every(None), NOW, 0, NOW) == NOW + timedelta(minutes=15)


def test_fixed_interval_ignores_age():
    assert policy().after_capture(Every(30), NOW - timedelta(days=99), 0, NOW) == NOW + timedelta(seconds=30)


def test_backoff_doubles_and_is_capped_but_never_faster_than_the_interval():
    p = policy(max_backoff=HOUR)
    delays = [p.backoff(60, n) for n in range(0, 10)]
    assert delays[:5] == [60, 120, 240, 480, 960]
    assert delays[-1] == HOUR and all(a <= b for a, b in zip(delays, delays[1:]))
    # A weekly source that fails is not retried more often than weekly.
    assert p.backoff(7 * DAY, 3) == 7 * DAY
    assert p.backoff(60, 10_000) == HOUR  # no overflow


def test_jitter_only_delays_and_stays_within_the_fraction():
    p = policy(jitter=0.1, seed=7)
    runs = [p.after_capture(Every(100), None, 0, NOW) for _ in range(200)]
    offsets = [(r - NOW).total_seconds() for r in runs]
    assert min(offsets) >= 100 and max(offsets) <= 110
    assert len(set(offsets)) > 100  # actually spread


def test_jitter_must_be_a_fraction():
    with pytest.raises(ConfigError, match="jitter"):
        SchedulePolicy(jitter=2)


def test_restart_keeps_future_schedule():
    due = NOW + timedelta(minutes=40)
    assert policy(jitter=0.1).on_start(Every(HOUR), None, due, NOW) == due


def test_restart_runs_overdue_sources_once_soon_and_spread():
    p = policy(jitter=0.1, seed=3)
    long_ago = NOW - timedelta(days=3)
    starts = [p.on_start(Every(HOUR), None, long_ago, NOW) for _ in range(100)]
    offsets = sorted((s - NOW).total_seconds() for s in starts)
    assert offsets[0] >= 0 and offsets[-1] <= 300  # within the start spread, never in the past
    assert offsets[-1] - offsets[0] > 60  # not a burst at one instant


def test_a_new_source_runs_at_once():
    p = policy(jitter=0.1, seed=5)
    starts = [(p.on_start(Every(DAY), None, None, NOW) - NOW).total_seconds() for _ in range(50)]
    assert 0 <= min(starts) and max(starts) <= 1.0


def test_replanning_from_the_last_attempt():
    p = policy()
    last = NOW - timedelta(minutes=10)
    assert p.on_start(Every(HOUR), None, None, NOW, last) == last + timedelta(hours=1)
    assert p.on_start(Every(5 * MINUTE), None, None, NOW, last) == NOW  # overdue: now


def test_timestamps_round_trip():
    assert utc(stamp(NOW)) == NOW
    assert stamp(NOW) == "2026-03-01T12:00:00.000000Z"
    assert utc("2026-03-01T12:00:00") == NOW and utc(None) is None

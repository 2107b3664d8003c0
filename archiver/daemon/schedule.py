"""When to capture a source next: fixed or adaptive intervals, backoff, jitter.

Pure functions of (settings, source history, now, random source) so the
policy can be tested without a clock or a daemon; the scheduler only asks.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from archiver.daemon.durations import format_duration, parse_duration
from archiver.errors import ConfigError

ADAPTIVE = "adaptive"
MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0

# (changed within, capture every): a fresh or just-edited article often, an old one rarely.
DEFAULT_TIERS: tuple[tuple[float, float], ...] = (
    (3 * HOUR, 15 * MINUTE),
    (DAY, HOUR),
    (7 * DAY, 3 * HOUR),
    (30 * DAY, DAY),
)
DEFAULT_FINAL = 7 * DAY
# Overdue sources at start-up are spread over at most this long (no burst).
MAX_START_SPREAD = 300.0
NEW_SPREAD = 1.0


@dataclass(frozen=True)
class Every:
    """A source's interval: ``seconds`` fixed, or None for adaptive."""

    seconds: float | None

    @classmethod
    def parse(cls, text: str) -> "Every":
        return _parse_every(str(text))

    @property
    def adaptive(self) -> bool:
        return self.seconds is None

    def __str__(self) -> str:
        return ADAPTIVE if self.seconds is None else format_duration(self.seconds)


@functools.lru_cache(maxsize=1024)  # a few distinct intervals, parsed for 100,000 sources
def _parse_every(text: str) -> Every:
    if text.strip().lower() == ADAPTIVE:
        return Every(None)
    return Every(parse_duration(text, minimum=1.0))


@dataclass(frozen=True)
class AdaptivePolicy:
    """Interval from the time since the article text last changed."""

    tiers: tuple[tuple[float, float], ...] = DEFAULT_TIERS
    final: float = DEFAULT_FINAL

    def interval(self, since_change: float | None) -> float:
        if since_change is None:  # never captured: treat as brand new
            return self.tiers[0][1] if self.tiers else self.final
        for within, every in self.tiers:
            if since_change < within:
                return every
        return self.final


@dataclass
class SchedulePolicy:
    """Next-run decisions for one daemon; ``rng`` is injectable for tests."""

    adaptive: AdaptivePolicy = field(default_factory=AdaptivePolicy)
    max_backoff: float = DAY
    jitter: float = 0.1
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        if not 0 <= self.jitter <= 1:
            raise ConfigError(f"daemon.jitter must be between 0 and 1, got {self.jitter}")

    def interval(self, every: Every, last_change: datetime | None, now: datetime) -> float:
        if every.seconds is not None:
            return every.seconds
        since = None if last_change is None else max(0.0, (now - last_change).total_seconds())
        return self.adaptive.interval(since)

    def backoff(self, interval: float, failures: int) -> float:
        """Exponential in the failure count, capped, never faster than the interval."""
        if failures <= 0:
            return interval
        grown = interval * (2.0 ** min(failures, 40))
        return max(interval, min(self.max_backoff, grown))

    def _spread(self, seconds: float) -> float:
        return self.rng.uniform(0.0, self.jitter * seconds) if self.jitter and seconds > 0 else 0.0

    def after_capture(
        self, every: Every, last_change: datetime | None, failures: int, now: datetime
    ) -> datetime:
        """Next run after an attempt at ``now`` (``failures`` consecutive failures so far)."""
        delay = self.backoff(self.interval(every, last_change, now), failures)
        return now + timedelta(seconds=delay + self._spread(delay))

    def on_start(
        self,
        every: Every,
        last_change: datetime | None,
        next_due: datetime | None,
        now: datetime,
        last_attempt: datetime | None = None,
    ) -> datetime:
        """First run when the daemon (re)starts or a source is (re)planned: keep
        the stored schedule (or plan from the last attempt); an overdue or new
        source runs once soon, spread so a restart is no burst."""
        interval = self.interval(every, last_change, now)
        if next_due is None and last_attempt is None:
            # Never tried: the user just asked for it, so now (spread by a second at most).
            return now + timedelta(seconds=min(self._spread(interval), NEW_SPREAD))
        if next_due is None and last_attempt is not None:
            next_due = last_attempt + timedelta(seconds=interval)
        if next_due is not None and next_due > now:
            return next_due
        return now + timedelta(seconds=min(self._spread(interval), MAX_START_SPREAD))


def utc(value: str | None) -> datetime | None:
    """Parse a stored timestamp (ISO 8601, 'Z' allowed) as an aware UTC datetime."""
    if not value:
        return None
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def stamp(when: datetime) -> str:
    """The stored form: UTC with microseconds and 'Z', like WARC-Date."""
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

"""Human durations ("90s", "30m", "6h", "1d", "1h30m") to seconds and back.

Schedules and settings are written by people; one parser keeps the accepted
forms identical in the command line, the sources file and the config.
"""

from __future__ import annotations

import re

from archiver.errors import ConfigError

UNITS: dict[str, int] = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
# Nothing in a schedule needs more than a year; "100000000w" is a typo, and
# past ~2.7 million years it would not even fit a datetime.
MAX_DURATION = 366 * 86400

_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_NUMBER = re.compile(r"^\d+(?:\.\d+)?$")
_WHOLE = re.compile(r"^(?:\s*\d+(?:\.\d+)?\s*[smhdw])+\s*$")


def parse_duration(text: str, *, minimum: float = 1.0, maximum: float = MAX_DURATION) -> float:
    """Seconds in ``text``; a bare number means seconds. Raises ConfigError."""
    raw = str(text).strip().lower()
    if not raw:
        raise ConfigError("empty duration (use e.g. 90s, 30m, 6h, 1d)")
    if _NUMBER.match(raw):
        seconds = float(raw)
    elif _WHOLE.match(raw):
        seconds = sum(float(n) * UNITS[u] for n, u in _PART.findall(raw))
    else:
        raise ConfigError(f"not a duration: {text!r} (use e.g. 90s, 30m, 6h, 1d, 1h30m)")
    if seconds < minimum:
        raise ConfigError(f"duration {text!r} is shorter than the minimum of {format_duration(minimum)}")
    if not seconds <= maximum:  # also catches inf and nan
        raise ConfigError(f"duration {text!r} is longer than the maximum of {format_duration(maximum)}")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest exact spelling, e.g. 5400 -> "1h30m", 1.5 -> "1.5s"."""
    if seconds < 0:
        return "-" + format_duration(-seconds)
    if seconds != int(seconds) and seconds < 60:
        return f"{seconds:.3g}s"
    whole = int(round(seconds))
    if whole == 0:
        return "0s"
    parts = []
    for unit in ("w", "d", "h", "m", "s"):
        size = UNITS[unit]
        if whole >= size:
            count, whole = divmod(whole, size)
            parts.append(f"{count}{unit}")
    return "".join(parts)

"""Durations as people write them, in the CLI, the sources file and config."""

from __future__ import annotations

import pytest

from archiver.daemon.durations import format_duration, parse_duration
from archiver.errors import ConfigError


@pytest.mark.parametrize(
    "text,seconds",
    [("90s", 90), ("30m", 1800), ("6h", 21600), ("1d", 86400), ("1w", 604800), ("1h30m", 5400),
     ("1h 30m", 5400), ("1.5h", 5400), ("45", 45), (" 2M ", 120), ("1s", 1)],
)
def test_parse(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "5 minutes", "m5", "1x", "-5s", "5m-", "1e3", "nan", "inf"])
def test_rejects_nonsense_with_a_message(text):
    with pytest.raises(ConfigError, match="duration"):
        parse_duration(text)


def test_minimum():
    with pytest.raises(ConfigError, match="shorter than the minimum of 1s"):
        parse_duration("0.5s")
    assert parse_duration("0.5s", minimum=0) == 0.5


@pytest.mark.parametrize("seconds,text", [(90, "1m30s"), (5400, "1h30m"), (86400, "1d"), (1, "1s"), (0, "0s"),
                                          (604800 + 3600, "1w1h"), (1.5, "1.5s")])
def test_format_round_trips(seconds, text):
    assert format_duration(seconds) == text
    if seconds:
        assert parse_duration(text, minimum=0) == seconds


@pytest.mark.parametrize("every", ["100000000w", "367d", "99999999999999999999999999"])
def test_watch_refuses_an_interval_beyond_a_year(cli, tmp_path, every):
    r = cli("watch", "http://127.0.0.1/a", "--every", every)
    assert r.code == 2 and r.err.count("\n") == 1 and "longer than the maximum of 52w2d" in r.err, r.err
    f = tmp_path / "sources.toml"
    f.write_text(f'[[source]]\nurl = "http://127.0.0.1/b"\nevery = "{every}"\n')
    r = cli("watch", "--file", str(f))
    assert r.code == 2 and "longer than the maximum" in r.err, r.err
    assert cli("sources", "--json").json() == []


def test_a_year_is_still_accepted():
    assert parse_duration("52w") == 52 * 7 * 86400


def test_an_out_of_range_interval_stored_by_an_older_version_is_read_as_a_year():
    from archiver.daemon.durations import MAX_DURATION
    from archiver.daemon.sources import Source

    fields = {f: None for f in Source.__dataclass_fields__}
    fields.update(url="http://127.0.0.1/a", kind="page", every="100000000w", added_at="2026-01-01T00:00:00Z",
                  failures=0, active=True)
    assert Source(**fields).schedule.seconds == MAX_DURATION

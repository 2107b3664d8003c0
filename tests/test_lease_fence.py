"""Lease fencing on a shared archive (real PostgreSQL and S3-compatible
servers): a worker cut off for longer than a lease, whose source another
worker took over, must not sign the capture it still had running -- else the
URL gets a second snapshot for one due time, captured before the one already
committed, and its diff reports the page's edit backwards."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterator

import pytest

from archiver.archive import Archive
from archiver.daemon.attempts import capture_source
from archiver.daemon.claims import Claims, LeaseFence, Worker
from archiver.errors import LeaseLost
from conftest import CLI, _base_env, article_html, shared_env

LEASE = 10.0


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(timezone.utc)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def scli(tmp_path, pg_server, s3_server):
    env = _base_env(tmp_path)
    env.update(shared_env(pg_server, s3_server))
    return CLI(tmp_path / "archive", env, "shared")


def workers(archive: Archive, clock: Clock) -> tuple[Claims, Claims]:
    a = Claims(archive.index, Worker("alpha", "host-a", 101), lease=LEASE, per_host_delay=0, clock=clock)
    b = Claims(archive.index, Worker("beta", "host-b", 102), lease=LEASE, per_host_delay=0, clock=clock)
    a.register()
    b.register()
    return a, b


def take_over(cut_off: Claims, live: Claims, clock: Clock, url: str) -> None:
    """What the live worker does once the cut-off one has missed a lease of heartbeats."""
    clock.now += timedelta(seconds=LEASE + 1)
    live.heartbeat([], {})
    assert live.stale() == [cut_off.worker.name]
    assert live.begin_reap([cut_off.worker.name]) == [cut_off.worker.name]  # as the scheduler's reap does
    live.mark_dead([cut_off.worker.name])
    assert [c.url for c in live.claim(10)] == [url]


@contextlib.contextmanager
def claimed(site: Any, scli: CLI, path: str) -> Iterator[tuple[Archive, Claims, Claims, Clock, str]]:
    """A watched page that worker alpha has claimed, in an open shared archive
    with a second worker, beta, and the clock both share."""
    url = site.page(path, article_html("Lage", ["Es kamen 50.000 Soldaten."]))
    assert scli("watch", url).code == 0
    clock = Clock()
    with scli.environ(), Archive(scli.settings()) as archive:
        alpha, beta = workers(archive, clock)
        assert [c.url for c in alpha.claim(1)] == [url]
        yield archive, alpha, beta, clock, url


def lease_owner(archive: Archive, url: str) -> str | None:
    return archive.index.query("SELECT lease_owner FROM sources WHERE url=?", (url,))[0][0]


def test_a_capture_whose_lease_was_taken_over_is_dropped_before_anything_is_written(site, scli):
    with claimed(site, scli, "/fenced") as (archive, alpha, beta, clock, url):
        source = scli_source(archive, url)
        take_over(alpha, beta, clock, url)  # alpha was cut off while it fetched
        outcome = capture_source(archive, source, alpha.fence(url))
        assert outcome.lease_lost and outcome.snapshot_id is None
        assert "taken over (held by beta)" in (outcome.error or "")
        assert archive.index.last_snapshot(url) is None  # nothing signed
        assert lease_owner(archive, url) == "beta"
        # beta captures the due time as usual
        done = capture_source(archive, source, beta.fence(url))
        assert done.error is None and done.snapshot_id is not None and not done.lease_lost
    # Nothing of alpha's capture was written: no capture for repair to adopt later.
    report = scli("verify", "--json").json()
    assert report["ok"], report["problems"]
    assert len(scli("history", "--json", url).json()) == 1


@dataclass
class TakenOverAfterWrite:
    """The real lease check, with the takeover landing between the check before
    the records are written and the one inside the commit."""

    real: LeaseFence
    takeover: Callable[[], None]
    calls: int = 0

    def confirm(self, conn: Any = None) -> None:
        self.calls += 1
        self.real.confirm(conn)
        if self.calls == 1:
            self.takeover()


def test_a_lease_lost_before_the_commit_fails_the_commit_and_signs_nothing(site, scli):
    other = site.page("/other", article_html("Lage", ["Es kamen 70.000 Soldaten."]))
    with claimed(site, scli, "/late") as (archive, alpha, beta, clock, url):
        fence = TakenOverAfterWrite(alpha.fence(url), lambda: take_over(alpha, beta, clock, url))
        with pytest.raises(LeaseLost) as lost:
            archive.snapshot(url, fence=fence)
        assert fence.calls == 2  # confirmed before the write, refused inside the commit
        assert "\n" not in str(lost.value)
        assert archive.index.last_snapshot(url) is None
        assert archive.index.query("SELECT COUNT(*) FROM log_leaves")[0][0] == 0  # no leaf, no checkpoint for it
        # The same process goes on capturing (the writer and the group committer are intact).
        assert archive.snapshot(other).row.seq == 1
    # Its records were written before the lease was lost: verify reports the unsigned capture.
    kinds = {p["kind"] for p in scli("verify", "--json").json()["problems"]}
    assert kinds == {"unindexed-capture"}, kinds


def test_a_worker_taken_for_stale_commits_nothing_while_it_is_reaped(site, scli):
    """A database restart cuts every worker's heartbeats off: the first one
    back takes a live one for stale and commits what its files hold -- a
    capture whose own commit was only waiting. Committed by both, the URL got
    two snapshots of one capture (the same captured_at, two ids: seen in
    test_three_daemons_300_sources_kill_one_and_restart_the_database). Once
    the reap has fenced the worker off, its commit is refused; its heartbeats
    do not lift the fence; only the end of the reap does."""
    other = site.page("/after", article_html("Lage", ["Es kamen 90.000 Soldaten."]))
    with claimed(site, scli, "/reaped") as (archive, alpha, beta, clock, url):
        clock.now += timedelta(seconds=LEASE + 1)  # alpha's heartbeats were cut off
        beta.heartbeat([], {})
        assert beta.stale() == ["alpha"] and beta.begin_reap(["alpha"]) == ["alpha"]
        alpha.heartbeat([url], {})  # back: it renews its lease, but the reap stands
        assert beta.stale() == ["alpha"]  # an unfinished reap is finished by whoever comes next
        assert beta.claim(10) == []  # and its lease is not free meanwhile
        with pytest.raises(LeaseLost) as lost:
            archive.snapshot(url, fence=alpha.fence(url))
        assert "took this one for stale" in str(lost.value) and "\n" not in str(lost.value)
        assert archive.index.last_snapshot(url) is None  # not signed here: the reaper's repair commits it
        beta.mark_dead(["alpha"])
        alpha.heartbeat([url], {})  # reaped and alive: it runs again
        assert beta.stale() == [] and lease_owner(archive, url) == "alpha"
        assert archive.snapshot(url, fence=alpha.fence(url)).row.seq == 1
        assert archive.snapshot(other).row.seq == 1


def test_without_a_fence_nothing_changes_for_the_embedded_archive(site, cli):
    url = site.page("/plain", article_html("Lage", ["Es kamen 80.000 Soldaten."]))
    assert cli("watch", url).code == 0
    with cli.environ(), Archive(cli.settings()) as archive:
        outcome = capture_source(archive, scli_source(archive, url), None)
        assert outcome.error is None and not outcome.lease_lost


def scli_source(archive: Archive, url: str) -> Any:
    from archiver.daemon.sources import Sources

    source = Sources(archive.index, archive.c.clock).get(url)
    assert source is not None
    return source


def test_an_outcome_is_not_written_over_the_row_of_the_worker_that_took_the_source_over(site, scli):
    from archiver.daemon.attempts import Outcome, record_outcome

    with claimed(site, scli, "/row") as (archive, alpha, beta, clock, url):
        take_over(alpha, beta, clock, url)
        before = archive.index.query("SELECT next_due, failures, last_error, lease_owner FROM sources WHERE url=?",
                                     (url,))[0]

        def plan(*_: Any) -> datetime:
            return clock.now + timedelta(hours=1)

        for owner, expect_written in (("alpha", False), ("beta", True)):
            with archive.index.write() as conn:
                _, next_due, _, _ = record_outcome(conn, url, Outcome(None, "timed out"), now=clock.now, plan=plan,
                                                   lease_owner=owner, threshold="substantive")
            after = archive.index.query("SELECT next_due, failures, last_error, lease_owner FROM sources WHERE url=?",
                                        (url,))[0]
            if expect_written:  # the holder's own outcome: written, and its lease released
                assert next_due is not None and after[2] == "timed out" and after[3] is None
            else:  # alpha's late outcome leaves beta's row as it was
                assert next_due is None and tuple(after) == tuple(before)


# -- an unsigned capture that a later snapshot of its URL overtook ---------------
def lose_a_commit(site: Any, cli: CLI, path: str) -> str:
    """A page snapshotted once, then captured again with the index gone at the
    commit: the second capture's records and intent are stored, nothing signed."""
    from store.errors import StoreError

    url = site.page(path, article_html("Lage", ["Es kamen 50.000 Soldaten."]))
    assert cli("snapshot", url).code == 0
    with cli.environ(), Archive(cli.settings()) as archive:
        def index_gone(*args: Any, **kwargs: Any) -> Any:
            raise StoreError("index unreachable")

        archive.provenance.sign_snapshot = index_gone  # type: ignore[method-assign]
        with pytest.raises(StoreError):
            archive.snapshot(url)
    return url


def test_an_unsigned_capture_a_later_snapshot_overtook_is_set_aside_not_signed_out_of_order(site, cli):
    """The index went away mid-commit: the capture's records and intent are
    stored, unsigned. The page is then captured again, edited, and committed.
    Repair must not append the older capture after the newer one (its diff
    would report the edit backwards, 60.000 -> 50.000): it sets it aside."""
    path = "/overtaken"
    url = lose_a_commit(site, cli, path)
    assert {p["kind"] for p in cli("verify", "--json").json()["problems"]} == {"unindexed-capture"}
    site.page(path, article_html("Lage", ["Es kamen 60.000 Soldaten."]))
    r = cli("snapshot", "--json", url)
    assert r.code == 0 and r.json()["significance"] == "substantive", r.out
    report = cli("verify", "--json").json()
    assert report["ok"] and report["overtaken"] == 1, report
    r = cli("repair", "--json")
    assert r.code == 0
    result = r.json()
    assert result["recommitted"] == [] and len(result["overtaken"]) == 1
    assert result["overtaken"][0]["url"] == url
    history = cli("history", "--json", url).json()
    assert [h["significance"] for h in history] == ["first", "substantive"]  # nothing signed out of order
    assert cli("repair").code == 0  # settled: the next repair finds nothing to do
    report = cli("verify", "--json").json()
    assert report["ok"] and report["overtaken"] == 1


def test_an_unsigned_capture_nothing_overtook_is_still_committed_by_repair(site, cli):
    url = lose_a_commit(site, cli, "/kept")
    report = cli("verify", "--json").json()
    assert not report["ok"] and report["overtaken"] == 0
    result = cli("repair", "--json").json()
    assert len(result["recommitted"]) == 1 and result["overtaken"] == []
    assert len(cli("history", "--json", url).json()) == 2
    assert cli("verify", "--json").json()["ok"]


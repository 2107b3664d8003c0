"""The shared schedule: several daemons on one PostgreSQL index claim due
sources with leases (SKIP LOCKED), take a dead worker's sources over after
committing what it left, keep per-host politeness across all workers, and
deliver each webhook once. Claims are tested on a real PostgreSQL with an
injected clock; the daemons as real processes on real PostgreSQL + S3."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from archiver.daemon.claims import Claims, Worker, list_workers
from archiver.daemon.schedule import stamp
from conftest import CLI, _base_env, article_html, send, shared_env
from test_daemon import daemons, wait_for, write_config  # noqa: F401 - the fixture
from test_shared_crash import own_pg  # noqa: F401 - a PostgreSQL of its own: this test restarts it

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def pg_index(pg_server):
    from store.pg import PgIndex

    index = PgIndex(pg_server.create_database())
    yield index
    index.close()


def add_sources(index, urls: list[str], due: datetime | None) -> None:
    with index.write() as conn:
        conn.executemany("INSERT INTO sources(url, added_at, every, next_due) VALUES(?,?,?,?)",
                         [(u, stamp(T0), "1m", stamp(due) if due else None) for u in urls])


def claims_for(index, name: str, clock: Clock, *, lease: float = 10.0, delay: float = 0.0) -> Claims:
    c = Claims(index, Worker(name, "host-" + name, 1000 + len(name)), lease=lease, per_host_delay=delay, clock=clock)
    c.register()
    return c


# -- claims on a real PostgreSQL, with an injected clock -------------------------
def test_concurrent_claims_take_disjoint_sources_and_only_due_ones(pg_index):
    clock = Clock()
    add_sources(pg_index, [f"http://a{i}.test/" for i in range(60)], T0 - timedelta(seconds=1))
    add_sources(pg_index, [f"http://later{i}.test/" for i in range(10)], T0 + timedelta(minutes=5))
    workers = [claims_for(pg_index, f"w{i}", clock) for i in range(3)]
    got: list[list[str]] = [[] for _ in workers]
    gate = threading.Barrier(len(workers))

    def run(i: int) -> None:
        gate.wait()
        for _ in range(10):
            got[i] += [c.url for c in workers[i].claim(5)]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(workers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [u for g in got for u in g]
    assert len(every) == len(set(every)) == 60  # each due source once, none twice
    assert not [u for u in every if "later" in u]
    owners = {r[0]: r[1] for r in pg_index.query("SELECT url, lease_owner FROM sources WHERE next_due <= ?",
                                                 (stamp(T0),))}
    for i, g in enumerate(got):
        assert all(owners[u] == f"w{i}" for u in g)


def test_dead_workers_sources_wait_for_the_reaper_then_move_without_recapturing(pg_index):
    clock = Clock()
    add_sources(pg_index, ["http://x.test/a", "http://x.test/b"], T0)
    dead, live = claims_for(pg_index, "dead", clock, lease=10), claims_for(pg_index, "live", clock, lease=10)
    assert {c.url for c in dead.claim(10)} == {"http://x.test/a", "http://x.test/b"}
    # The dead worker committed a capture of /a for this due time, then died.
    with pg_index.write() as conn:
        conn.execute(
            "INSERT INTO snapshots(id, url, seq, final_url, captured_at, ended_at, status, payload_sha256, warc_file, "
            "warc_offset, warc_length, response_record_id, significance) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)",
            ("snap-a", "http://x.test/a", 1, "http://x.test/a", stamp(T0 + timedelta(seconds=1)),
             stamp(T0 + timedelta(seconds=2)), 200, "0" * 64, "f.warc.gz", 0, 1, "<urn:uuid:r>", "first"),
        )
    clock.now = T0 + timedelta(seconds=5)
    live.heartbeat([], {})
    assert live.claim(10) == []  # leases still running
    clock.now = T0 + timedelta(seconds=12)
    live.heartbeat([], {})
    assert live.stale() == ["dead"]
    assert live.claim(10) == []  # stale, not yet reaped: its leftovers may still hold a capture
    assert live.begin_reap(["dead"]) == ["dead"]
    assert live.claim(10) == []  # being reaped: the same
    live.mark_dead(["dead"])
    taken = {c.url: c for c in live.claim(10)}
    assert set(taken) == {"http://x.test/a", "http://x.test/b"}
    assert taken["http://x.test/a"].done_by == "snap-a"  # committed: recorded, not captured again
    assert taken["http://x.test/b"].done_by is None  # never committed: captured again
    states = {w.name: w.state for w in list_workers(pg_index, clock.now, 10)}
    assert states == {"live": "running", "dead": "dead"}


def test_a_live_workers_heartbeat_keeps_its_leases(pg_index):
    clock = Clock()
    add_sources(pg_index, ["http://x.test/slow"], T0)
    a, b = claims_for(pg_index, "a", clock, lease=10), claims_for(pg_index, "b", clock, lease=10)
    assert [c.url for c in a.claim(1)] == ["http://x.test/slow"]
    for step in range(1, 8):  # a capture running for 35 s, heartbeats every 5 s
        clock.now = T0 + timedelta(seconds=5 * step)
        a.heartbeat(["http://x.test/slow"], {})
        b.heartbeat([], {})
        assert b.claim(5) == []
    a.stopped()  # a clean stop frees it at once
    assert [c.url for c in b.claim(5)] == ["http://x.test/slow"]


def test_politeness_one_claim_per_host_per_delay_across_workers(pg_index):
    clock = Clock()
    add_sources(pg_index, [f"http://one.test/{i}" for i in range(6)] + ["http://two.test/x"], T0)
    a, b = claims_for(pg_index, "a", clock, delay=2.0), claims_for(pg_index, "b", clock, delay=2.0)
    first = [c.url for c in a.claim(10)]
    assert sorted(first) == ["http://one.test/0", "http://two.test/x"]
    assert b.claim(10) == []  # one.test's next request is 2 s away, for every worker
    clock.now = T0 + timedelta(seconds=1.9)
    assert b.claim(10) == []
    clock.now = T0 + timedelta(seconds=2.0)
    assert [c.url for c in b.claim(10)] == ["http://one.test/1"]


def test_a_late_send_cannot_crowd_the_next_across_workers(pg_index):
    """Politeness is kept at the moment of sending, not only at claim time."""
    clock = Clock()
    add_sources(pg_index, [f"http://one.test/{i}" for i in range(3)], T0)
    a, b = claims_for(pg_index, "a", clock, delay=2.0), claims_for(pg_index, "b", clock, delay=2.0)
    assert [c.url for c in a.claim(10)] == ["http://one.test/0"]
    clock.now = T0 + timedelta(seconds=2.0)
    assert [c.url for c in b.claim(10)] == ["http://one.test/1"]
    assert b.take_turn("http://one.test/1") == 0.0  # b sends on time
    b.end_turn("http://one.test/1")  # and its fetch is over at once
    clock.now = T0 + timedelta(seconds=2.5)  # a's capture started late, on a busy machine
    assert a.take_turn("http://one.test/0") == pytest.approx(1.5)  # it waits out b's delay
    clock.now = T0 + timedelta(seconds=4.0)
    assert a.take_turn("http://one.test/0") == 0.0
    a.end_turn("http://one.test/0")
    assert b.take_turn("http://one.test/1") == pytest.approx(2.0)  # and b's next request waits for a's
    clock.now = T0 + timedelta(seconds=5.0)  # the late send pushed the host's next claim on
    assert b.claim(10) == []
    clock.now = T0 + timedelta(seconds=6.0)
    assert [c.url for c in b.claim(10)] == ["http://one.test/2"]


def test_a_hosts_turn_is_held_until_the_fetch_is_over(pg_index):
    """A worker descheduled between taking its turn and sending must not let
    the next worker's request follow its own by less than the delay: the
    next turn counts from the end of the fetch, not from the taking."""
    from archiver.daemon.claims import IN_FLIGHT_POLL

    clock = Clock()
    add_sources(pg_index, [f"http://one.test/{i}" for i in range(3)], T0)
    a = Claims(pg_index, Worker("a", "host-a", 1), lease=60, per_host_delay=2.0, clock=clock, in_flight=30.0)
    b = Claims(pg_index, Worker("b", "host-b", 2), lease=60, per_host_delay=2.0, clock=clock, in_flight=30.0)
    c = Claims(pg_index, Worker("c", "host-c", 3), lease=60, per_host_delay=2.0, clock=clock, in_flight=30.0)
    assert a.take_turn("http://one.test/0") == 0.0
    clock.now = T0 + timedelta(seconds=5)  # the delay is long past, but a's request is still going out
    assert b.take_turn("http://one.test/1") == pytest.approx(IN_FLIGHT_POLL)  # b asks again soon
    a.end_turn("http://one.test/0")  # a's fetch is over now
    clock.now = T0 + timedelta(seconds=6)
    assert b.take_turn("http://one.test/1") == pytest.approx(1.0)  # the delay runs from the fetch's end
    clock.now = T0 + timedelta(seconds=7)
    assert b.take_turn("http://one.test/1") == 0.0
    a.end_turn("http://one.test/0")  # a second end is nothing: it does not end b's turn
    clock.now = T0 + timedelta(seconds=20)
    assert c.take_turn("http://one.test/2") > 0  # b's fetch is still in flight
    # b dies mid-fetch: its mark lapses after in_flight seconds, plus the delay
    clock.now = T0 + timedelta(seconds=7 + 30 + 2)
    assert c.take_turn("http://one.test/2") == 0.0


def test_a_webhook_delivery_is_claimed_by_one_worker(pg_index):
    clock = Clock()
    with pg_index.write() as conn:
        for i in range(5):
            conn.execute("INSERT INTO notifications(snapshot_id, webhook, url, significance, payload_json, created_at) "
                         "VALUES(?,?,?,?,?,?)", (f"s{i}", "http://hook.test/", "http://x.test/", "substantive", "{}",
                                                  stamp(T0)))
    ids = [int(r[0]) for r in pg_index.query("SELECT id FROM notifications")]
    a, b = claims_for(pg_index, "a", clock), claims_for(pg_index, "b", clock)
    got_a = a.claim_notifications(ids[:3])
    got_b = b.claim_notifications(ids)
    assert got_a == set(ids[:3]) and got_b == set(ids[3:])
    clock.now = T0 + timedelta(seconds=11)  # a's lease lapsed without a heartbeat: b may retry them
    assert b.claim_notifications(ids[:3]) == set(ids[:3])


# -- daemons as processes on PostgreSQL + S3 ----------------------------------
class StampedSite:
    """Loopback pages that log when each request arrived (politeness is measured here)."""

    def __init__(self) -> None:
        self.pages: dict[str, bytes] = {}
        self.arrivals: list[tuple[float, str]] = []
        outer = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802
                outer.arrivals.append((time.time(), self.path))
                body = outer.pages.get(self.path)
                send(self, 200 if body else 404, body or b"<html><body><p>no</p></body></html>")

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a worker killed mid-request hangs up: not a failure here

        self.server = Server(("127.0.0.1", 0), H)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def page(self, path: str, html: str) -> str:
        self.pages[path] = html.encode("utf-8")
        return f"http://127.0.0.1:{self.server.server_port}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stamped():
    s = StampedSite()
    yield s
    s.close()


def worker_clis(tmp_path: Path, env: dict[str, str], n: int) -> list[CLI]:
    """``n`` machines' data directories on one shared archive: the first holds
    the root key, the others make their own keys, which it enrols (as the
    README's deployment says)."""
    clis = [CLI(tmp_path / "machine0", env, "shared")]
    clis += [CLI(tmp_path / f"machine{i}", {**env, "ARCHIVER_SIGNING_ROLE": "worker"}, "shared") for i in range(1, n)]
    assert clis[0]("keys", "show").code == 0
    for c in clis[1:]:
        pending = c("keys", "show").err
        assert clis[0]("keys", "enroll", pending.split("archiver keys enroll ")[1].split("`")[0]).code == 0
    return clis


def worker_config(tmp_path: Path, name: str, **daemon: Any) -> Path:
    (tmp_path / name).mkdir()
    path = write_config(tmp_path / name, worker_name=name, **daemon)
    path.write_text(path.read_text() + "[capture]\nrequisites = false\n")
    return path


def rows(cli: CLI, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
    db = cli.db()
    try:
        return list(db.execute(sql, args).fetchall())
    finally:
        db.close()


def captures_by_url(cli: CLI) -> dict[str, list[datetime]]:
    out: dict[str, list[datetime]] = {}
    for url, at in rows(cli, "SELECT url, captured_at FROM snapshots ORDER BY url, seq"):
        out.setdefault(url, []).append(datetime.fromisoformat(at.replace("Z", "+00:00")))
    return out


def test_two_daemons_share_sources_and_status_lists_both(stamped, tmp_path, pg_server, s3_server, daemons):
    env = {**_base_env(tmp_path), **shared_env(pg_server, s3_server)}
    clis = worker_clis(tmp_path, env, 2)
    urls = [stamped.page(f"/p{i}", article_html(f"Meldung {i}", [f"Es gab {i} Vorfälle."])) for i in range(16)]
    for u in urls:
        assert clis[0]("watch", u, "--every", "3s").code == 0
    procs = [daemons(c, worker_config(tmp_path, f"w{i}", lease=4.0)) for i, c in enumerate(clis)]
    for p in procs:
        wait_for("start", lambda p=p: "daemon started as worker" in p.log(), p)

    def twice() -> bool:
        got = captures_by_url(clis[0])
        return len(got) == len(urls) and all(len(v) >= 2 for v in got.values())

    wait_for("every source captured twice", twice, procs[0], timeout=90)
    status = clis[1]("status", "--json")
    assert status.code == 0, status.err
    report = status.json()
    assert {w["name"]: w["state"] for w in report["workers"]} == {"w0": "running", "w1": "running"}
    assert report["live_workers"] == 2
    text = clis[1]("status").out
    assert "workers: 2 running of 2 known" in text and "  w0 (" in text and "  w1 (" in text
    for p in procs:
        assert p.stop()[0] == 0
    by_worker = [p.log().count("capture http") for p in procs]
    assert all(n > 0 for n in by_worker), by_worker  # both did work
    for url, times in captures_by_url(clis[0]).items():
        gaps = [(b - a).total_seconds() for a, b in zip(times, times[1:])]
        assert all(g >= 3.0 for g in gaps), (url, gaps)  # never twice for one due time
    states = {w["name"]: w["state"] for w in clis[0]("status", "--json").json()["workers"]}
    assert states == {"w0": "stopped", "w1": "stopped"}
    assert not rows(clis[0], "SELECT url FROM sources WHERE lease_owner IS NOT NULL")  # a clean stop releases
    assert clis[0]("verify", "--json").json()["ok"]


def test_politeness_holds_across_workers(stamped, tmp_path, pg_server, s3_server, daemons):
    env = {**_base_env(tmp_path), **shared_env(pg_server, s3_server)}
    clis = worker_clis(tmp_path, env, 2)
    urls = [stamped.page(f"/h{i}", article_html(f"Text {i}", [f"Es sind {i} Fälle."])) for i in range(6)]
    for u in urls:
        assert clis[0]("watch", u, "--every", "1h").code == 0
    procs = [daemons(c, worker_config(tmp_path, f"p{i}", lease=4.0, per_host_delay=0.7)) for i, c in enumerate(clis)]
    wait_for("each page fetched", lambda: len({p for _, p in stamped.arrivals}) == len(urls), procs[0], timeout=60)
    for p in procs:
        p.stop()
    times = sorted(t for t, _ in stamped.arrivals)
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert min(gaps) >= 0.6, gaps  # one host, two workers: one request per delay between them
    assert sum(p.log().count("capture http") for p in procs) == len(urls)


def test_a_change_is_posted_once_across_workers(stamped, tmp_path, pg_server, s3_server, daemons):
    from test_notify import Receiver

    receiver = Receiver()
    try:
        env = {**_base_env(tmp_path), **shared_env(pg_server, s3_server)}
        clis = worker_clis(tmp_path, env, 3)
        paths = [f"/n{i}" for i in range(6)]
        urls = [stamped.page(p, article_html("Lage", [f"Es kamen {1000 + i} Menschen."])) for i, p in enumerate(paths)]
        for u in urls:
            assert clis[0]("watch", u, "--every", "2s", "--notify", receiver.url).code == 0
        procs = [daemons(c, worker_config(tmp_path, f"n{i}", lease=4.0)) for i, c in enumerate(clis)]
        wait_for("first captures", lambda: len(captures_by_url(clis[0])) == len(urls), procs[0], timeout=60)
        for i, p in enumerate(paths):  # a figure changes on every page
            stamped.page(p, article_html("Lage", [f"Es kamen {9000 + i} Menschen."]))
        wait_for("six webhooks", lambda: len(receiver.bodies) >= len(urls), procs[0], timeout=60)
        time.sleep(3)  # room for a duplicate to arrive, were one to be sent
        for p in procs:
            p.stop()
        ids = [b["to_id"] for b in receiver.bodies]
        assert len(ids) == len(set(ids)) == len(urls), ids  # each change once, by one of three workers
        assert {b["url"] for b in receiver.bodies} == set(urls)
        assert rows(clis[0], "SELECT COUNT(*) FROM notifications WHERE state='sent'")[0][0] == len(urls)
    finally:
        receiver.close()


# -- three daemons, 300 sources, a worker killed, the database restarted ---------
def lease_holders(cli: CLI) -> dict[str, int]:
    return {r[0]: int(r[1]) for r in rows(cli, "SELECT lease_owner, COUNT(*) FROM sources "
                                               "WHERE lease_owner IS NOT NULL GROUP BY lease_owner")}


@pytest.mark.slow
def test_three_daemons_300_sources_kill_one_and_restart_the_database(stamped, tmp_path, own_pg, s3_server, daemons):
    n, every, lease = 300, 30.0, 6.0
    t_start = time.monotonic()
    phases: dict[str, float] = {}

    def phase(name: str) -> None:
        phases[name] = round(time.monotonic() - t_start, 1)

    env = {**_base_env(tmp_path), **shared_env(own_pg, s3_server)}
    clis = worker_clis(tmp_path, env, 3)
    urls = [stamped.page(f"/s{i}", article_html(f"Meldung {i}", [f"Es wurden {i} Häuser zerstört."]))
            for i in range(n)]
    listing = tmp_path / "sources.toml"
    listing.write_text("".join(f'[[source]]\nurl = "{u}"\nevery = "{every:.0f}s"\n\n' for u in urls))
    assert clis[0]("watch", "--file", str(listing)).code == 0
    names = ["alpha", "beta", "gamma"]
    procs = [daemons(c, worker_config(tmp_path, name, lease=lease, workers=6, per_host_concurrency=6, jitter=0.0))
             for name, c in zip(names, clis)]
    phase("setup")
    first = time.monotonic()

    # kill -9 a worker mid-run, while it holds leases (captures queued or running)
    victim = procs[2]
    wait_for("gamma capturing", lambda: lease_holders(clis[0]).get("gamma", 0) > 0 and
             rows(clis[0], "SELECT COUNT(*) FROM snapshots")[0][0] >= 30, victim, timeout=60)
    held = {r[0] for r in rows(clis[0], "SELECT url FROM sources WHERE lease_owner='gamma'")}
    victim.proc.kill()
    victim.proc.wait(10)
    killed_at = time.monotonic()
    before_kill = {r[0] for r in rows(clis[0], "SELECT id FROM snapshots")}
    wait_for("gamma's leases taken over", lambda: "gamma" not in lease_holders(clis[0]), procs[0], timeout=60)
    takeover = time.monotonic() - killed_at
    assert takeover <= 2 * lease + 10, takeover  # stale after a lease, then reaped and freed
    status = clis[0]("status", "--json").json()
    assert {w["name"]: w["state"] for w in status["workers"]} == {"alpha": "running", "beta": "running",
                                                                   "gamma": "dead"}
    wait_for("every source captured", lambda: len(captures_by_url(clis[0])) == n, procs[0], timeout=120)
    first_round = time.monotonic() - first
    phase("takeover")
    # stop and restart the database mid-run, while the second round is capturing
    wait_for("second round", lambda: rows(clis[0], "SELECT COUNT(*) FROM snapshots")[0][0] >= n + 10, procs[0],
             timeout=90)
    count_before = len(rows(clis[0], "SELECT id FROM snapshots"))
    own_pg.stop()
    time.sleep(3)
    own_pg.start()
    wait_for("captures resume", lambda: len(rows(clis[0], "SELECT id FROM snapshots")) > count_before + 20,
             procs[0], timeout=90)
    for p in procs[:2]:  # each worker resumes on its own (its pool reconnects): wait for each
        wait_for("this worker resumes", lambda p=p: "index reachable again" in p.log() or "cannot claim" not in p.log(),
                 p, timeout=60)
        assert "Traceback" not in p.log(), p.log()[-3000:]  # failures are one-line errors

    phase("db restart")
    # every source again, after its due time
    wait_for("every source captured twice", lambda: all(len(v) >= 2 for v in captures_by_url(clis[0]).values()),
             procs[0], timeout=150)
    for p in procs[:2]:
        code, _ = p.stop()
        assert code == 0, p.log()[-3000:]

    phase("stopped")
    snaps = captures_by_url(clis[0])
    assert len(snaps) == n
    after = {r[0] for r in rows(clis[0], "SELECT id FROM snapshots")}
    assert before_kill <= after  # nothing committed is lost
    for url, times in snaps.items():
        gaps = [(b - a).total_seconds() for a, b in zip(times, times[1:])]
        assert all(g >= every - 0.5 for g in gaps), (url, gaps)  # never twice for one due time
    assert all(len(snaps[u]) >= 2 for u in held)  # the victim's sources went on at the others
    indices = sorted(r[0] for r in rows(clis[0], "SELECT log_index FROM snapshots"))
    assert indices == list(range(len(indices)))  # one log, no gap
    assert clis[0]("checkpoint", "--json").json()["size"] == len(indices)
    # Only captures that never committed (stored while the database went down) may be left.
    kinds = {p["kind"] for p in clis[0]("verify", "--json").json()["problems"]}
    assert kinds <= {"unindexed-capture"}, kinds
    phase("verify")
    repaired = clis[0]("repair", "--json")
    assert repaired.code == 0, repaired.err
    phase("repair")
    again = clis[0]("verify", "--json").json()
    assert again["ok"], (again["problems"][:5], repaired.out[-4000:])
    phase("verify again")
    by_worker = {name: p.log().count("capture http") for name, p in zip(names, procs)}
    print(f"\nfirst round of {n}: {first_round:.1f}s; takeover after kill -9: {takeover:.1f}s (lease {lease:.0f}s); "
          f"captures by worker: {by_worker}; snapshots: {len(after)}; phases (s): {phases}")

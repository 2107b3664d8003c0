"""Fetch processes (archiver/capture/fetchpool.py, fetchproc.py, fetchwire.py):
hops fetched in processes of their own, the raw bytes re-read and hashed by
the capture process. A process that dies, hangs or lies fails that hop with
a one-line error and is replaced; none is left behind when archiver exits.

The attacks on the outbound path itself (rebinding, drips, caps, redirects)
run through both paths in tests/test_outbound.py and tests/test_snapshot.py
(the ``fetch_path`` fixture)."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest

from archiver.capture.addresses import AddressPolicy
from archiver.capture.fetchpool import FetchPool
from archiver.capture.fetchwire import _replay, read_plain, replay_response
from archiver.capture.http import CaptureLimits, Capturer
from archiver.capture.outbound import Outbound
from archiver.errors import AddressRefused, CaptureError, FetchTimeout
from conftest import REPO, article_html, send
from nethelpers import wait_until

POLICY = AddressPolicy(allow_private=True)
PAGE = article_html("Meldung", ["Der Stadtrat beschloss 48 neue Stellen."]).encode()


def capturer(limits: CaptureLimits = CaptureLimits()) -> Capturer:
    return Capturer(outbound=Outbound(POLICY), limits=limits, user_agent="archiver-test",
                    clock=lambda: datetime.now(timezone.utc))


@pytest.fixture
def pool():
    made: list[FetchPool] = []

    def make(module: str = "archiver.capture.fetchproc", processes: int = 1) -> FetchPool:
        p = FetchPool(processes, policy=POLICY, ca_bundle=True, isolate=True, module=module)
        assert p.wait_ready(60)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


def through(pool: FetchPool, limits: CaptureLimits = CaptureLimits()) -> Capturer:
    c = capturer(limits)
    c.processes = pool
    return c


# -- the same hop either way ----------------------------------------------------------
def _routes(site) -> dict[str, str]:
    def chunked(h):
        h.send_response(200)
        h.send_header("Content-Type", "text/html")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        for part in (PAGE[:40], PAGE[40:]):
            h.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
        h.wfile.write(b"0\r\n\r\n")

    def unframed(h):
        h.send_response(200)
        h.send_header("Content-Type", "text/html")
        h.end_headers()
        h.close_connection = True
        h.wfile.write(PAGE)

    def odd(h):  # repeated fields, trailing blanks, a folded line: the full replay reads these
        h.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html \r\nX-A: 1\r\nx-a: 2\r\nX-Fold: a\r\n b\r\n"
                      b"Content-Length: %d\r\n\r\n%s" % (len(PAGE), PAGE))
        h.close_connection = True

    site.routes["/chunked"] = chunked
    site.routes["/unframed"] = unframed
    site.routes["/odd"] = odd
    site.page("/gzip", gzip.compress(PAGE), headers={"Content-Encoding": "gzip"})
    site.page("/plain", PAGE)
    site.page("/empty", b"", status=204)
    site.page("/moved", b"", status=301, headers={"Location": "/plain"})
    return {name: site.url(f"/{name}") for name in ("chunked", "unframed", "odd", "gzip", "plain", "empty", "moved")}


def test_recorded_bytes_read_back_as_the_live_connection_read_them(site):
    """What the capture process derives from the raw bytes equals what the live path read off the socket."""
    c = capturer()
    for name, url in _routes(site).items():
        for hop in c.capture(url).hops:
            assert replay_response(hop.response_bytes, hop.url, c.limits) == (
                hop.status, hop.response_headers, hop.payload, hop.body), name
            plain = read_plain(hop.response_bytes)
            if plain is not None:  # the fast reading agrees with the full replay
                assert plain == _replay(hop.response_bytes, hop.url, c.limits)[:3], name
            assert (plain is None) == (name in ("chunked", "odd")), name


def test_a_capture_through_a_fetch_process_is_the_capture_made_here(site, pool):
    local, remote = capturer(), through(pool())
    for name, url in _routes(site).items():
        a, b = local.capture(url), remote.capture(url)
        assert [h.url for h in a.hops] == [h.url for h in b.hops], name
        for x, y in zip(a.hops, b.hops):
            assert (x.status, x.payload, x.body, x.ip, x.request_headers) == (y.status, y.payload, y.body, y.ip,
                                                                              y.request_headers), name
            assert {k: v for k, v in x.response_headers.items() if k != "date"} == {
                k: v for k, v in y.response_headers.items() if k != "date"}, name
            assert x.request_bytes == y.request_bytes, name
            assert y.started_at <= y.ended_at <= datetime.now(timezone.utc)


@pytest.mark.parametrize("head", [
    b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
    b"HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\nabc",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
    b"HTTP/1.1 200 OK\nContent-Length: 3\n\nabc",
    b"HTTP/1.1 200 OK\r\nBad Name: x\r\nContent-Length: 3\r\n\r\nabc",
    b"HTTP/1.1 200 OK\r\nX: caf\xc3\xa9\r\nContent-Length: 3\r\n\r\nabc",
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc",
], ids=["repeated-length", "signed-length", "continue", "bare-lf", "bad-name", "non-ascii", "short"])
def test_odd_responses_are_left_to_the_full_replay(head):
    assert read_plain(head) is None


def test_a_short_body_fails_as_it_did_on_the_wire():
    with pytest.raises(CaptureError, match="does not read back"):
        replay_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc", "http://x/", CaptureLimits())


# -- a fetch process that dies, hangs or lies ---------------------------------------------
def _slow(site, seconds: float) -> str:
    site.routes["/slow"] = lambda h: (time.sleep(seconds), send(h, 200, PAGE))
    return site.url("/slow")


def _capture_in_thread(c: Capturer, url: str) -> dict:
    out: dict = {}

    def run() -> None:
        try:
            out["capture"] = c.capture(url)
        except CaptureError as exc:
            out["error"] = exc
        out["at"] = time.monotonic()

    out["thread"] = threading.Thread(target=run)
    out["thread"].start()
    return out


def test_a_killed_fetch_process_fails_its_capture_and_is_replaced(site, pool):
    p = pool()
    c = through(p)
    (pid,) = p.pids()
    run = _capture_in_thread(c, _slow(site, 2.0))
    time.sleep(0.5)  # the request is in flight
    os.kill(pid, signal.SIGKILL)
    run["thread"].join(10)
    err = run["error"]
    assert "fetch process" in str(err) and "failed" in str(err) and "\n" not in str(err), err
    assert p.failures == 1
    assert c.capture(site.page("/after", PAGE)).final.status == 200  # a new process
    assert p.pids() and p.pids() != [pid]


def test_a_hung_fetch_process_is_stopped_at_the_deadline(site, pool):
    p = pool()
    c = through(p, CaptureLimits(total_timeout=1.5))
    (pid,) = p.pids()
    started = time.monotonic()
    run = _capture_in_thread(c, _slow(site, 0.5))
    time.sleep(0.2)
    os.kill(pid, signal.SIGSTOP)  # it never answers, whatever the server does
    run["thread"].join(15)
    took = run["at"] - started
    assert isinstance(run["error"], FetchTimeout) and "total timeout of 1.5s" in str(run["error"])
    assert took < 1.5 + 2.0 + 1.0, took  # the deadline plus the grace, not forever
    assert p.failures == 1 and not Path(f"/proc/{pid}").exists()  # killed and reaped
    assert c.capture(site.page("/after", PAGE)).final.status == 200


def test_a_fetch_process_that_sends_half_a_frame_is_stopped_at_the_deadline(site, pool, monkeypatch):
    """The frame's length arrives, then a piece of it, then nothing: the wait
    for the rest is bounded by the hop's deadline too (it was not: the
    receive blocked for as long as the fetch process did)."""
    monkeypatch.setenv("EVIL_MODE", "half-frame")
    p = pool("tests.evil_fetchproc")
    c = through(p, CaptureLimits(total_timeout=1.5))
    started = time.monotonic()
    run = _capture_in_thread(c, site.page("/page", PAGE))
    run["thread"].join(15)
    assert not run["thread"].is_alive(), "the capture waited past its deadline"
    assert isinstance(run["error"], FetchTimeout) and "total timeout of 1.5s" in str(run["error"])
    assert run["at"] - started < 1.5 + 2.0 + 1.0
    assert p.failures == 1


@pytest.mark.parametrize("mode,error", [
    ("forbidden-ip", AddressRefused),
    ("other-url", CaptureError),
    ("garbage", CaptureError),
    ("oversized", CaptureError),
    ("unasked-request", CaptureError),
    ("early-start", CaptureError),
    ("tls-on-http", CaptureError),
    ("bad-response", CaptureError),
    ("die", CaptureError),
])
def test_a_lying_fetch_process_is_never_believed(site, pool, monkeypatch, mode, error):
    monkeypatch.setenv("EVIL_MODE", mode)
    p = pool("tests.evil_fetchproc")
    c = through(p, CaptureLimits(max_body_bytes=100_000))
    with pytest.raises(error) as caught:
        c.capture(site.page("/page", PAGE))
    assert "\n" not in str(caught.value)
    if mode not in ("forbidden-ip", "bad-response"):  # a protocol breach: that process is gone
        assert p.failures == 1


# -- no fetch process outlives archiver -------------------------------------------------
def _tagged(tag: str) -> list[int]:
    """Processes whose environment carries ``tag`` (this test's children and theirs)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if f"FETCH_TEST_TAG={tag}".encode() in (entry / "environ").read_bytes():
                if b"archiver.capture.fetchproc" in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.mark.parametrize("end", ["exit", "kill"])
def test_no_fetch_process_outlives_snapshot(site, tmp_path, end):
    urls = [site.page(f"/p{i}", PAGE) for i in range(4)]
    slow = _slow(site, 1.5)
    listing = tmp_path / "urls.txt"
    listing.write_text("\n".join([*urls, slow]) + "\n")
    tag = uuid.uuid4().hex
    env = {**os.environ, "ARCHIVER_ALLOW_PRIVATE": "1", "ARCHIVER_CONFIG": "", "PYTHONPATH": str(REPO),
           "FETCH_TEST_TAG": tag, "ARCHIVER_FETCH_PROCESSES": "-1"}
    proc = subprocess.Popen([sys.executable, "-m", "archiver", "--data-dir", str(tmp_path / "a"), "snapshot", "-i",
                             str(listing), "--workers", "2"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert wait_until(lambda: len(_tagged(tag)) == 2, 30), "the fetch processes never started"
        if end == "kill":
            proc.kill()  # no clean-up at all: they see their pipe close
        proc.communicate(timeout=60)
        if end == "exit":
            assert proc.returncode == 0
            assert _tagged(tag) == []  # stopped and waited for before exit
        assert wait_until(lambda: _tagged(tag) == [], 10), _tagged(tag)
    finally:
        proc.kill()
        proc.wait()


def test_one_fetch_process_per_worker_only_for_parallel_captures(cli, site):
    from archiver.archive import Archive

    url = site.page("/one", PAGE)
    settings = cli.settings()
    assert settings.capture.fetch_processes == 0  # off by default
    settings.capture.fetch_processes = -1
    with Archive(settings) as archive:
        archive.snapshot(url)
        assert archive.helpers.fetchers is None
        archive.parallel(1)
        assert archive.helpers.fetchers is None
        archive.parallel(2)  # parallel captures: one fetch process per capture worker
        assert archive.helpers.fetchers is not None and archive.helpers.fetchers.processes == 2
        assert archive.capturer.processes is archive.helpers.fetchers


def test_fetch_processes_zero_keeps_every_hop_here(cli, site):
    from archiver.archive import Archive

    settings = cli.settings()
    settings.capture.fetch_processes = 0
    with Archive(settings) as archive:
        results = list(archive.snapshot_many([site.page(f"/z{i}", PAGE) for i in range(3)], workers=3))
        assert all(hasattr(r, "row") for r in results) and archive.helpers.fetchers is None


def test_no_fetch_process_outlives_the_daemon(site, cli, tmp_path):
    from test_daemon import DaemonProcess, write_config

    tag = uuid.uuid4().hex
    cli.env["FETCH_TEST_TAG"] = tag
    cli.env["ARCHIVER_FETCH_PROCESSES"] = "-1"  # one per capture worker
    slow = _slow(site, 0.3)
    for url in (slow, site.page("/d1", PAGE), site.page("/d2", PAGE)):
        assert cli("watch", url, "--every", "1s").code == 0
    d = DaemonProcess(cli, write_config(tmp_path, workers=2))
    try:
        assert wait_until(lambda: len(_tagged(tag)) == 2, 30), d.log()[-2000:]
        assert wait_until(lambda: cli("history", slow).code == 0, 30), d.log()[-2000:]
        code, took = d.stop()
        assert code == 0 and took < 10, d.log()[-2000:]
        assert _tagged(tag) == []
    finally:
        d.kill()


def test_a_body_with_nothing_to_decode_is_the_payload_within_the_decoded_cap():
    from archiver.capture.http import decoded_body
    from archiver.errors import LimitExceeded

    payload = b"x" * 11
    assert decoded_body(payload, {"content-encoding": "br"}, 11) is payload  # kept as received, no copy
    with pytest.raises(LimitExceeded, match="decoded body exceeds the 10-byte cap"):
        decoded_body(payload, {}, 10)
    assert decoded_body(gzip.compress(payload), {"content-encoding": "gzip"}, 11) == payload

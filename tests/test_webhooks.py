"""Webhook delivery against hostile receivers (all on loopback): a rebinding
name, a receiver whose reply never ends, one that drips its reply -- memory
stays bounded and a good receiver is still served within its deadline."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from archiver.capture.addresses import AddressPolicy, parse_networks
from archiver.capture.outbound import Outbound
from archiver.config import NotifySettings
from archiver.daemon.notify import Notifier, http_poster, receiver_of
from nethelpers import Dripper, EndlessReceiver, PeakRSS, Rebinder, twin_servers, wait_until
from test_daemon import daemons  # noqa: F401 - the fixture
from test_notify import Clock, Receiver, make_archive, queue, two_versions


def states(archive) -> dict[str, tuple[str, int, str | None]]:
    return {r[0]: (r[1], r[2], r[3]) for r in archive.index.query(
        "SELECT webhook, state, attempts, last_error FROM notifications")}


def test_rebinding_webhook_name_never_gets_the_post_to_the_forbidden_address(site, tmp_path, monkeypatch):
    public, internal = twin_servers(b"ok", b"internal")
    clock = Clock()
    archive = make_archive(tmp_path, clock)
    try:
        url, _ = two_versions(site, archive, "20-figure-troops-de")
        hook = f"http://hooks.test:{public.port}/hook"
        queue(archive, url, hook, clock)
        monkeypatch.setattr(socket, "getaddrinfo", Rebinder("hooks.test", ["127.0.0.1"], ["127.0.0.2"]))
        policy = AddressPolicy(allow_networks=parse_networks(["127.0.0.1/32"], "test"))
        n = Notifier(archive.index, NotifySettings(retries=1, timeout=5), post=http_poster(Outbound(policy)),
                     clock=clock)
        assert n.deliver_due() == 1
        assert public.hits == 1 and internal.hits == 0
        assert public.seen[0]["Host"] == f"hooks.test:{public.port}"
    finally:
        archive.close()
        public.close()
        internal.close()


def test_endless_and_dripping_receivers_neither_grow_memory_nor_delay_a_good_one(site, tmp_path):
    endless = EndlessReceiver()
    dripper = Dripper(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", b"." * 100, drip_head=True, pause=0.2)
    good = Receiver()
    clock = Clock()
    archive = make_archive(tmp_path, clock)
    try:
        url, _ = two_versions(site, archive, "20-figure-troops-de")
        # Bad receivers first in the queue: a serial notifier would reach the good one last.
        bad_hooks = [endless.url(f"/e{i}") for i in range(6)] + [dripper.url(f"/d{i}") for i in range(6)]
        for hook in bad_hooks + [good.url]:
            queue(archive, url, hook, clock)
        settings = NotifySettings(timeout=2.0, retries=1, workers=8, per_receiver=2, max_reply_bytes=65536)
        n = Notifier(archive.index, settings, post=http_poster(Outbound(AddressPolicy(allow_private=True))),
                     clock=clock, idle_wait=0.2)
        memory = PeakRSS()
        started = time.monotonic()
        n.start()
        try:
            # Behind the bad ones it would wait for three rounds of 2 s drips (6 s and more);
            # 4 s leaves room for a loaded CI machine.
            assert wait_until(lambda: len(good.bodies) == 1, 4.0), "the good receiver waited behind the bad ones"
            served_after = time.monotonic() - started
            assert wait_until(lambda: all(s != "pending" for s, _, _ in states(archive).values()), 20)
        finally:
            n.stop(5)
            growth = memory.close()
        got = states(archive)
        assert got[good.url][0] == "sent" and served_after < 4.0
        for hook in bad_hooks:
            if "/e" in hook:  # a 200 whose body never ends: sent, after reading 64 KiB of it
                assert got[hook][0] == "sent", got[hook]
            else:  # cut at the 2 s deadline
                assert got[hook][0] == "failed" and "total timeout" in (got[hook][2] or ""), got[hook]
        assert growth < 64 * 1024 * 1024, f"notifier grew by {growth / 1e6:.0f} MB"
        assert endless.posts == 6 and dripper.connections == 6
    finally:
        archive.close()
        endless.close()
        dripper.close()
        good.close()


def test_at_most_per_receiver_deliveries_run_at_once(site, tmp_path):
    """Hold every POST until released and count how many arrive together."""
    gate = threading.Event()
    arrived: list[float] = []
    lock = threading.Lock()

    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class H(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with lock:
                arrived.append(time.monotonic())
            gate.wait(10)
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), H)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    clock = Clock()
    archive = make_archive(tmp_path, clock)
    try:
        url, _ = two_versions(site, archive, "20-figure-troops-de")
        for i in range(5):
            queue(archive, url, f"http://127.0.0.1:{server.server_port}/h{i}", clock)
        n = Notifier(archive.index, NotifySettings(timeout=10, retries=1, workers=8, per_receiver=2),
                     post=http_poster(Outbound(AddressPolicy(allow_private=True))), clock=clock, idle_wait=0.1)
        n.start()
        try:
            assert wait_until(lambda: len(arrived) >= 2, 5)
            time.sleep(0.5)
            assert len(arrived) == 2  # the other three wait for room at this receiver
            gate.set()
            assert wait_until(lambda: len(arrived) == 5, 5)
        finally:
            gate.set()
            n.stop(5)
    finally:
        archive.close()
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    "a,b,same",
    [("http://h/x", "http://h:80/y", True), ("https://h/x", "http://h/x", False), ("http://h:81/", "http://h/", False)],
)
def test_receiver_is_the_origin(a, b, same):
    assert (receiver_of(a) == receiver_of(b)) is same


def test_endless_reply_peak_memory_in_a_fresh_process(tmp_path):
    """The bench, small: a notifier process's peak RSS under an endless receiver."""
    import subprocess
    import sys

    bench = Path(__file__).resolve().parent.parent / "bench" / "webhooks.py"
    p = subprocess.run([sys.executable, str(bench), "--deliveries", "20", "--json"], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    import json

    result = json.loads(p.stdout)
    assert result["sent"] == 20 and result["peak_growth_mb"] < 64, result


def vm_hwm(pid: int) -> int:
    """Peak resident memory of process ``pid`` so far (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def test_daemon_under_an_endless_webhook_stays_small_and_serves_other_receivers(site, cli, tmp_path, daemons):
    """The real daemon: one source's receiver answers without end, every
    capture of that source is a change; another source's receiver must still
    get its change promptly, and the daemon's peak memory stays bounded."""
    from conftest import article_html
    from test_daemon import snapshots, wait_for, write_config

    endless = EndlessReceiver()
    good = Receiver()
    count = {"n": 0}

    def changing(h) -> None:
        count["n"] += 1
        body = article_html("Lage", [f"Die Behörden zählten {1000 + count['n']} Fälle.",
                                     "Weitere Angaben folgen."]).encode()
        h.send_response(200)
        h.send_header("Content-Type", "text/html; charset=utf-8")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    try:
        site.routes["/busy"] = changing
        calm = site.page("/calm", article_html("Ruhe", ["Es gibt 5000 Plätze.", "Sonst nichts."]))
        assert cli("watch", site.url("/busy"), "--every", "1s", "--notify", endless.url()).code == 0
        assert cli("watch", calm, "--every", "1s", "--notify", good.url).code == 0
        d = daemons(cli, write_config(tmp_path))
        wait_for("three deliveries to the endless receiver", lambda: endless.posts >= 3, d)
        site.page("/calm", article_html("Ruhe", ["Es gibt 6500 Plätze.", "Sonst nichts."]))
        edited = time.monotonic()
        wait_for("the good receiver's change", lambda: good.bodies, d, timeout=15)
        latency = time.monotonic() - edited
        wait_for("more deliveries to the endless receiver", lambda: endless.posts >= 6, d)
        peak = vm_hwm(d.proc.pid)
        code, _ = d.stop()
        assert code == 0
        assert latency < 6, latency  # a capture interval, a capture and a delivery; never the endless reply
        assert peak < 400 * 1024 * 1024, f"daemon peak RSS {peak / 1e6:.0f} MB"
        assert len(snapshots(cli, site.url("/busy"))) >= 6
        print(f"daemon peak RSS under an endless webhook: {peak / 1e6:.1f} MB, "
              f"{endless.posts} endless deliveries, other receiver served {latency:.2f} s after the edit")
    finally:
        endless.close()
        good.close()


@pytest.mark.parametrize("server", ["refused", "dripping"])
def test_a_webhook_password_never_reaches_the_delivery_error(server):
    """The delivery error (kept as the notification's last_error and logged)
    quoted the URL with its user:password@ -- "cannot fetch http://user:s3cret@..."."""
    from archiver.errors import ArchiverError

    dripper = Dripper(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", b"0123456789", drip_head=True, pause=0.2)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = dripper.port if server == "dripping" else closed.getsockname()[1]  # bound, never listening
    post = http_poster(Outbound(AddressPolicy(allow_private=True)))
    try:
        with pytest.raises(ArchiverError) as caught:
            post(f"http://hooks:s3cret@127.0.0.1:{port}/hook", b"{}", {}, 1.0)
        assert "s3cret" not in str(caught.value) and f"127.0.0.1:{port}" in str(caught.value), caught.value
    finally:
        dripper.close()
        closed.close()



def test_a_webhook_secret_in_the_path_never_reaches_the_error_or_the_log(site, tmp_path, caplog):
    """Slack-style webhooks keep their secret in the path (/services/T0/B0/XXXX):
    the delivery error (kept as last_error) and the log lines name the
    receiver (scheme://host:port) only."""
    import logging

    from test_notify import notifier

    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, never listening
    port = closed.getsockname()[1]
    url = f"http://127.0.0.1:{port}/services/T0/B0/pathsecret?token=querysecret"
    clock = Clock()
    archive = make_archive(tmp_path, clock)
    try:
        page, _row = two_versions(site, archive, "20-figure-troops-de")
        assert queue(archive, page, url, clock) == 1
        with caplog.at_level(logging.DEBUG, logger="archiver"):
            assert notifier(archive, clock).deliver_due() == 0
        errors = [r[0] for r in archive.index.query("SELECT last_error FROM notifications")]
        assert errors and f"127.0.0.1:{port}" in errors[0], errors
        assert "secret" not in " ".join(errors) and f"127.0.0.1:{port}" in caplog.text
        assert "secret" not in caplog.text, caplog.text
    finally:
        archive.close()
        closed.close()

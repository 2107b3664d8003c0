"""Webhook notifications: what is sent, when, and that a change is delivered
exactly once across retries and restarts (a real loopback receiver)."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from archiver.archive import Archive, Components
from archiver.capture.addresses import AddressPolicy
from archiver.capture.outbound import Outbound
from archiver.config import NotifySettings, Settings
from archiver.daemon.notify import (
    Notifier,
    build_payload,
    enqueue_changes,
    http_poster,
    queue_counts,
    should_notify,
    summarize,
)
from archiver.errors import ConfigError

CORPUS = Path(__file__).parent / "corpus"


class Receiver:
    """A loopback webhook endpoint; answers ``fail_first`` requests with 500."""

    def __init__(self, fail_first: int = 0) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.fail_first = fail_first
        self.calls = 0
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.calls += 1
                if outer.calls <= outer.fail_first:
                    self.send_response(500)
                else:
                    outer.bodies.append(json.loads(body))
                    outer.headers.append(dict(self.headers.items()))
                    self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def make_archive(tmp_path: Path, clock: Clock) -> Archive:
    s = Settings()
    s.archive.data_dir = str(tmp_path / "archive")
    s.capture.allow_private = True
    return Archive(s, Components(clock=clock))


def two_versions(site, archive: Archive, case: str) -> tuple[str, Any]:
    """Capture a corpus case's before and after pages; return the URL and the second row."""
    before = (CORPUS / case / "before.html").read_bytes()
    after = (CORPUS / case / "after.html").read_bytes()
    url = site.page(f"/{case}", before)
    archive.snapshot(url)
    site.page(f"/{case}", after)
    return url, archive.snapshot(url).row


def queue(archive: Archive, url: str, hook: str, clock: Clock, threshold: str = "substantive") -> int:
    with archive.index.write() as conn:
        return enqueue_changes(conn, url, hook, None, "", threshold, clock())


def notifier(archive: Archive, clock: Clock, **settings: Any) -> Notifier:
    ns = NotifySettings(**{"timeout": 5.0, "retries": 3, "backoff": 2.0, **settings})
    return Notifier(archive.index, ns, post=http_poster(Outbound(AddressPolicy(allow_private=True))), clock=clock)


def test_threshold():
    assert should_notify("substantive", "substantive")
    assert not should_notify("cosmetic", "substantive") and not should_notify("none", "substantive")
    assert should_notify("cosmetic", "cosmetic") and not should_notify("none", "cosmetic")
    assert not should_notify("first", "cosmetic")
    with pytest.raises(ConfigError, match="threshold"):
        should_notify("substantive", "none")


def test_summary_names_figures_and_changes():
    diff = {"figures": [{"before": "5000", "after": "6000"}, {"before": None, "after": "12"}],
            "changes": [{"op": "replace"}, {"op": "replace"}, {"op": "insert"}]}
    assert summarize(diff) == ("figure changed: 5000 -> 6000; figure added: 12; "
                               "3 text change(s) (1 insert, 2 replace)")


def test_substantive_change_is_delivered_once(site, tmp_path, receiver):
    clock = Clock()
    archive = make_archive(tmp_path, clock)
    url, row = two_versions(site, archive, "20-figure-troops-de")
    assert row.significance == "substantive"
    assert queue(archive, url, receiver.url, clock) == 1
    assert queue(archive, url, receiver.url, clock) == 0  # idempotent: one row per change and webhook
    n = notifier(archive, clock)
    assert n.deliver_due() == 1
    assert n.deliver_due() == 0
    (body,) = receiver.bodies
    assert body["url"] == url and body["significance"] == "substantive"
    assert body["to_id"] == row.id and body["from_id"] == row.prev_id
    assert body["to_captured_at"] == row.captured_at and body["from_captured_at"]
    assert body["figures"] and body["figures"] == row.diff["figures"]
    assert "figure changed" in body["summary"] and body["changes_total"] == len(row.diff["changes"])
    assert receiver.headers[0]["X-Archiver-Delivery"] == row.id
    # A restart (a new notifier on the same index) does not send it again.
    assert notifier(archive, clock).deliver_due() == 0
    assert queue_counts(archive.index).sent == 1 and len(receiver.bodies) == 1
    archive.close()


def test_cosmetic_change_only_above_a_cosmetic_threshold(site, tmp_path, receiver):
    clock = Clock()
    archive = make_archive(tmp_path, clock)
    url, row = two_versions(site, archive, "09-typo-de")
    assert row.significance == "cosmetic"
    assert queue(archive, url, receiver.url, clock) == 0
    assert queue(archive, url, receiver.url, clock, threshold="cosmetic") == 1
    archive.close()


def test_unchanged_and_first_captures_queue_nothing(site, tmp_path, receiver):
    clock = Clock()
    archive = make_archive(tmp_path, clock)
    url = site.page("/same", (CORPUS / "20-figure-troops-de" / "before.html").read_bytes())
    archive.snapshot(url)
    archive.snapshot(url)
    assert queue(archive, url, receiver.url, clock, threshold="cosmetic") == 0
    archive.close()


def test_failed_delivery_is_retried_with_backoff_then_delivered(site, tmp_path):
    receiver = Receiver(fail_first=2)
    try:
        clock = Clock()
        archive = make_archive(tmp_path, clock)
        url, _ = two_versions(site, archive, "20-figure-troops-de")
        queue(archive, url, receiver.url, clock)
        n = notifier(archive, clock, retries=5, backoff=2.0)
        assert n.deliver_due() == 0 and receiver.calls == 1
        assert n.deliver_due() == 0 and receiver.calls == 1  # not due yet: waits 2 s
        clock.advance(2.1)
        assert n.deliver_due() == 0 and receiver.calls == 2
        clock.advance(2.1)
        assert n.deliver_due() == 0 and receiver.calls == 2  # second wait is 4 s
        clock.advance(2.0)
        assert n.deliver_due() == 1 and receiver.calls == 3
        (row,) = archive.index.query("SELECT state, attempts, last_error FROM notifications")
        assert tuple(row) == ("sent", 3, None)
        archive.close()
    finally:
        receiver.close()


def test_gives_up_after_the_configured_attempts(site, tmp_path):
    receiver = Receiver(fail_first=100)
    try:
        clock = Clock()
        archive = make_archive(tmp_path, clock)
        url, _ = two_versions(site, archive, "20-figure-troops-de")
        queue(archive, url, receiver.url, clock)
        n = notifier(archive, clock, retries=3, backoff=1.0)
        for _ in range(5):
            n.deliver_due()
            clock.advance(10)
        assert receiver.calls == 3
        assert queue_counts(archive.index).failed == 1
        (row,) = archive.index.query("SELECT last_error FROM notifications")
        assert row[0] == "HTTP 500"
        archive.close()
    finally:
        receiver.close()


def test_webhook_to_loopback_refused_by_default_policy(site, tmp_path, receiver):
    clock = Clock()
    archive = make_archive(tmp_path, clock)
    url, _ = two_versions(site, archive, "20-figure-troops-de")
    queue(archive, url, receiver.url, clock)
    ns = NotifySettings(retries=1)
    n = Notifier(archive.index, ns, post=http_poster(Outbound(AddressPolicy(allow_private=False))), clock=clock)
    assert n.deliver_due() == 0 and receiver.calls == 0
    (row,) = archive.index.query("SELECT state, last_error FROM notifications")
    assert row[0] == "failed" and "loopback" in row[1]
    archive.close()


def test_payload_without_a_previous_capture_time():
    from store.index import SnapshotRow

    row = SnapshotRow(**{f: None for f in SnapshotRow.__dataclass_fields__} | {
        "id": "b", "url": "https://e.x/a", "captured_at": "t2", "status": 200, "significance": "substantive",
        "prev_id": "a", "diff_json": json.dumps({"figures": [], "changes": [{"op": "delete", "before": "x", "after": None}]}),
    })
    body = build_payload(row, None, datetime(2026, 1, 1, tzinfo=timezone.utc))
    assert body["from_id"] == "a" and body["from_captured_at"] is None and body["summary"] == "1 text change(s) (1 delete)"


def test_change_recorded_but_not_queued_is_queued_at_daemon_start(site, tmp_path, receiver):
    """A crash between the snapshot commit and queueing its webhook loses nothing."""
    from archiver.daemon.scheduler import Daemon
    from archiver.daemon.sources import Sources, SourceSpec

    clock = Clock()
    archive = make_archive(tmp_path, clock)
    sources = Sources(archive.index, clock)
    before = (CORPUS / "20-figure-troops-de" / "before.html").read_bytes()
    url = site.page("/crash", before)
    sources.watch(SourceSpec(url, every="1h", notify=receiver.url))
    first = archive.snapshot(url).row
    archive.index.execute("UPDATE sources SET last_snapshot_id=? WHERE url=?", (first.id, url))
    site.page("/crash", (CORPUS / "20-figure-troops-de" / "after.html").read_bytes())
    changed = archive.snapshot(url).row  # ...and the daemon died before recording it
    assert changed.significance == "substantive"
    daemon = Daemon(archive, archive.settings, clock=clock)
    daemon._requeue_notifications()
    daemon._requeue_notifications()  # a second start queues nothing new
    rows = archive.index.query("SELECT snapshot_id, state FROM notifications")
    assert [tuple(r) for r in rows] == [(changed.id, "pending")]
    archive.close()

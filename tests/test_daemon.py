"""`archiver daemon` as a real process against loopback servers: schedules,
webhooks, signals, restarts, the lock, conditional requests, backoff, feeds.

Every wait polls a condition with a generous deadline; nothing asserts on a
fixed sleep, so a slow 2-core CI machine only makes the tests slower.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import pytest
from warcio.archiveiterator import ArchiveIterator

from conftest import REPO, article_html, send, warc_files
from test_notify import Receiver

DEADLINE = 40.0


# -- helpers -------------------------------------------------------------------
def write_config(tmp_path: Path, **daemon: Any) -> Path:
    settings = {"workers": 4, "per_host_concurrency": 4, "per_host_delay": 0.0, "jitter": 0.1,
                "shutdown_grace": 5.0, **daemon}
    lines = ["[daemon]"] + [f"{k} = {json.dumps(v)}" for k, v in settings.items()]
    lines += ["[notify]", "backoff = 0.5", "retries = 4", "timeout = 5.0"]
    path = tmp_path / "archiver-test.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


class DaemonProcess:
    """``archiver daemon`` in its own process, its log in a file (never a full pipe)."""

    def __init__(self, cli: Any, config: Path, *args: str) -> None:
        self.cli = cli
        self.log_path = cli.data_dir.parent / f"daemon-{time.monotonic_ns()}.log"
        cli.data_dir.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "archiver", "--data-dir", str(cli.data_dir), "--config", str(config), "daemon", *args],
            stdout=subprocess.DEVNULL, stderr=self._log, env={**os.environ, **cli.env},
        )

    def log(self) -> str:
        return self.log_path.read_text()

    def send(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> tuple[int, float]:
        """Send ``sig``; return (exit code, seconds until exit)."""
        started = time.monotonic()
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=timeout + 20)
        finally:
            self._log.close()
        return code, time.monotonic() - started

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if not self._log.closed:
            self._log.close()


@pytest.fixture
def daemons():
    started: list[DaemonProcess] = []

    def start(cli: Any, config: Path, *args: str) -> DaemonProcess:
        d = DaemonProcess(cli, config, *args)
        started.append(d)
        return d

    yield start
    for d in started:
        d.kill()


def wait_for(what: str, check: Callable[[], Any], daemon: DaemonProcess | None = None, timeout: float = DEADLINE) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        if daemon is not None and daemon.proc.poll() is not None:
            raise AssertionError(f"daemon exited ({daemon.proc.returncode}) waiting for {what}:\n{daemon.log()[-3000:]}")
        time.sleep(0.1)
    tail = daemon.log()[-3000:] if daemon else ""
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{tail}")


def db(cli: Any) -> sqlite3.Connection:
    conn = sqlite3.connect(f"file:{cli.data_dir / 'index.sqlite3'}?mode=ro", uri=True, timeout=30)
    conn.row_factory = sqlite3.Row
    return conn


def snapshots(cli: Any, url: str) -> list[dict[str, Any]]:
    if not (cli.data_dir / "index.sqlite3").exists():
        return []
    try:
        with db(cli) as conn:
            return [dict(r) for r in conn.execute("SELECT * FROM snapshots WHERE url=? ORDER BY seq", (url,))]
    except sqlite3.OperationalError as exc:  # the daemon has created the file but not yet its tables
        if "no such table" in str(exc):
            return []
        raise


def source(cli: Any, url: str) -> dict[str, Any] | None:
    with db(cli) as conn:
        row = conn.execute("SELECT * FROM sources WHERE url=?", (url,)).fetchone()
        return dict(row) if row else None


def started(d: DaemonProcess) -> bool:
    return "daemon started" in d.log()


def assert_archive_sound(cli: Any) -> None:
    files = warc_files(cli.data_dir)
    assert files and not [f for f in files if f.name.endswith(".open")], files
    check = subprocess.run([sys.executable, "-m", "warcio.cli", "check", "-v", *map(str, files)],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    if (REPO / "archiver" / "verify.py").exists():
        r = cli.process("verify")
        assert r.code == 0, r.out + r.err


def capture_lines(log: str, url: str) -> list[str]:
    return [line for line in log.splitlines() if f"capture {url} " in line]


ARTICLE = ["Die Armee hat nach Angaben des Ministeriums 5000 Soldaten an die Grenze verlegt.",
           "Die Verlegung soll bis Ende der Woche abgeschlossen sein."]


# -- the schedule ----------------------------------------------------------------
def test_every_second_captures_repeatedly_and_logs_each(site, cli, tmp_path, daemons):
    config = write_config(tmp_path)
    url = site.page("/live", article_html("Grenze", ARTICLE))
    d = daemons(cli, config)
    wait_for("daemon start", lambda: started(d), d)
    # Watched while the daemon runs: it notices without a signal.
    r = cli("watch", url, "--every", "1s")
    assert r.code == 0 and "below daemon.politeness_minimum" in r.err
    rows = wait_for("3 captures", lambda: len(snapshots(cli, url)) >= 3 and snapshots(cli, url), d)
    assert [r["significance"] for r in rows[:3]] == ["first", "none", "none"]
    times = [datetime.fromisoformat(r["captured_at"]) for r in rows[:3]]
    assert all((b - a).total_seconds() >= 0.9 for a, b in zip(times, times[1:]))
    code, took = d.stop()
    assert code == 0 and took < 10, d.log()
    lines = capture_lines(d.log(), url)
    assert len(lines) >= 3
    assert "status=200" in lines[0] and "significance=first" in lines[0] and "duration=" in lines[0]
    assert "significance=none" in lines[1]
    src = cli("sources", "--json").json()[0]
    assert src["url"] == url and src["every"] == "1s" and src["failures"] == 0
    assert src["last_capture_at"] and src["next_due"] and src["last_status"] == 200
    assert_archive_sound(cli)


def test_one_worker_fetches_the_next_source_while_a_capture_waits_for_its_commit(site, cli, tmp_path, daemons):
    """With one worker the daemon still sends one request at a time, but a
    capture waiting for its commit (the index held by another process) no
    longer holds up the worker: the next due source is fetched meanwhile."""
    arrived: list[str] = []

    def slow(body: bytes):
        def serve(h) -> None:
            arrived.append(h.path)
            time.sleep(0.8)
            send(h, 200, body)
        return serve

    urls = []
    for i in range(3):
        site.routes[f"/due{i}"] = slow(article_html(f"Lage {i}", ARTICLE).encode())
        urls.append(site.url(f"/due{i}"))
    d = daemons(cli, write_config(tmp_path, workers=1, per_host_concurrency=1))
    wait_for("daemon start", lambda: started(d), d)
    listing = tmp_path / "due.toml"
    listing.write_text('[defaults]\nevery = "1h"\n' + "".join(f'\n[[source]]\nurl = "{u}"\n' for u in urls))
    assert cli("watch", "--file", str(listing)).code == 0
    wait_for("the first fetch", lambda: arrived, d, 20)
    holder = sqlite3.connect(cli.data_dir / "index.sqlite3", timeout=30, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # before the first page (0.8 s) is in: its commit waits
    try:
        wait_for("a second fetch", lambda: len(arrived) >= 2, d, 20)
        time.sleep(1.0)
        assert len(arrived) == 2, arrived  # one fetching, one waiting: no third
        assert all(not snapshots(cli, u) for u in urls)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    wait_for("three captures", lambda: all(snapshots(cli, u) for u in urls), d, 30)
    code, _ = d.stop()
    assert code == 0, d.log()
    assert_archive_sound(cli)


def test_edit_fires_exactly_one_webhook_with_the_figure_change(site, cli, tmp_path, daemons):
    receiver = Receiver()
    try:
        url = site.page("/grenze", article_html("Truppen an der Grenze", ARTICLE))
        assert cli("watch", url, "--every", "1s", "--notify", receiver.url).code == 0
        d = daemons(cli, write_config(tmp_path))
        wait_for("3 unchanged captures", lambda: len(snapshots(cli, url)) >= 3, d)
        assert receiver.calls == 0  # first + unchanged captures notify nobody
        edited = [ARTICLE[0].replace("5000", "6500"), ARTICLE[1]]
        site.page("/grenze", article_html("Truppen an der Grenze", edited))
        wait_for("the webhook", lambda: receiver.bodies, d)
        n = len(snapshots(cli, url))
        wait_for("2 more captures after the edit", lambda: len(snapshots(cli, url)) >= n + 2, d)
        code, took = d.stop()
        assert code == 0 and took < 10
        assert receiver.calls == 1, receiver.bodies
        (body,) = receiver.bodies
        rows = snapshots(cli, url)
        changed = [r for r in rows if r["significance"] == "substantive"]
        assert len(changed) == 1 and all(r["significance"] in ("first", "none") for r in rows if r not in changed)
        assert body["url"] == url and body["significance"] == "substantive"
        assert body["to_id"] == changed[0]["id"] and body["from_id"] == changed[0]["prev_id"]
        assert body["to_captured_at"] == changed[0]["captured_at"] and body["from_captured_at"]
        (fig,) = body["figures"]
        assert (fig["before"], fig["after"], fig["before_value"], fig["after_value"]) == ("5000", "6500", 5000, 6500)
        assert "5000 -> 6500" in body["summary"]
        status = cli.process("status", "--json")
        assert status.code == 1 and status.json()["notifications"] == {"pending": 0, "sent": 1, "failed": 0}
    finally:
        receiver.close()


# -- signals ---------------------------------------------------------------------
def test_sigterm_mid_run_exits_zero_with_whole_warcs(site, cli, tmp_path, daemons):
    def slow(h: Any) -> None:
        time.sleep(0.3)
        send(h, 200, article_html("Langsam", ARTICLE).encode())

    urls = []
    for i in range(12):
        site.routes[f"/slow/{i}"] = slow
        urls.append(site.url(f"/slow/{i}"))
        assert cli("watch", urls[-1], "--every", "1s").code == 0
    d = daemons(cli, write_config(tmp_path))

    def total() -> int:
        return sum(len(snapshots(cli, u)) for u in urls)

    wait_for("captures under way", lambda: total() >= 8, d)
    code, took = d.stop()
    assert code == 0, d.log()
    assert took < 10
    assert_archive_sound(cli)


def test_sigterm_abandons_a_hung_capture_within_the_grace(site, cli, tmp_path, daemons):
    release = threading.Event()

    def hang(h: Any) -> None:
        release.wait(25)
        send(h, 200, b"<html><body><p>late</p></body></html>")

    site.routes["/hang"] = hang
    ok = site.page("/ok", article_html("Schnell", ARTICLE))
    assert cli("watch", site.url("/hang"), "--every", "1s").code == 0
    assert cli("watch", ok, "--every", "1s").code == 0
    d = daemons(cli, write_config(tmp_path, shutdown_grace=1.0))
    wait_for("the hung request and a capture", lambda: site.hits.get("/hang") and len(snapshots(cli, ok)) >= 2, d)
    try:
        code, took = d.stop(signal.SIGINT)
    finally:
        release.set()
    assert code == 0 and took < 10, d.log()
    assert "abandoning 1 capture" in d.log()
    assert_archive_sound(cli)


def test_sighup_reloads_the_sources_file(site, cli, tmp_path, daemons):
    a = site.page("/a", article_html("A", ARTICLE))
    b = site.page("/b", article_html("B", ARTICLE))
    sources = tmp_path / "sources.toml"
    sources.write_text(f'[defaults]\nevery = "1s"\n\n[[source]]\nurl = "{a}"\n')
    d = daemons(cli, write_config(tmp_path), "--sources", str(sources))
    wait_for("a captured", lambda: snapshots(cli, a), d)
    sources.write_text(f'[defaults]\nevery = "1s"\n\n[[source]]\nurl = "{a}"\n\n[[source]]\nurl = "{b}"\n')
    d.send(signal.SIGHUP)
    wait_for("b captured after SIGHUP", lambda: snapshots(cli, b), d)
    assert "reloading sources" in d.log()
    code, _ = d.stop()
    assert code == 0


# -- restart and the lock -----------------------------------------------------------
def test_restart_continues_the_schedule_without_a_burst(site, cli, tmp_path, daemons):
    hourly = site.page("/hourly", article_html("Stündlich", ARTICLE))
    often = site.page("/often", article_html("Oft", ARTICLE))
    assert cli("watch", hourly, "--every", "1h").code == 0
    assert cli("watch", often, "--every", "2s").code == 0
    config = write_config(tmp_path)
    d = daemons(cli, config)
    wait_for("both captured", lambda: snapshots(cli, hourly) and snapshots(cli, often), d)
    assert d.stop()[0] == 0
    due_before = source(cli, hourly)["next_due"]
    before = len(snapshots(cli, often))
    time.sleep(5)  # the 2 s source misses two runs while no daemon runs (setup, not an assertion)
    d2 = daemons(cli, config)
    rows = wait_for("3 captures after the restart",
                    lambda: len(snapshots(cli, often)) >= before + 3 and snapshots(cli, often), d2)
    after = rows[before:]
    times = [datetime.fromisoformat(r["captured_at"]) for r in after]
    gaps = [(b - a).total_seconds() for a, b in zip(times, times[1:])]
    assert all(g >= 1.9 for g in gaps), gaps  # missed runs coalesced: one capture, then the interval
    # The hourly source keeps its next run from the last capture: no recapture on restart.
    assert len(snapshots(cli, hourly)) == 1
    assert source(cli, hourly)["next_due"] == due_before
    assert d2.stop()[0] == 0


def test_second_daemon_on_the_same_data_dir_is_refused(site, cli, tmp_path, daemons):
    config = write_config(tmp_path)
    d = daemons(cli, config)
    wait_for("daemon start", lambda: started(d), d)
    r = cli.process("--config", str(config), "daemon", timeout=60)
    assert r.code == 1
    assert r.err.count("\n") == 1 and "already running" in r.err and f"pid {d.proc.pid}" in r.err
    status = cli.process("status")
    assert status.code == 0 and f"running (pid {d.proc.pid})" in status.out
    assert d.stop()[0] == 0
    after = cli.process("status")
    assert after.code == 1 and "not running" in after.out


# -- conditional requests, failures, feeds --------------------------------------------
def test_not_modified_answer_becomes_a_revisit(site, cli, tmp_path, daemons):
    body = article_html("Unverändert", ARTICLE).encode()
    conditional: list[str] = []

    def etagged(h: Any) -> None:
        if h.headers.get("If-None-Match") == '"v1"':
            conditional.append(h.headers["If-None-Match"])
            h.send_response(304)
            h.send_header("ETag", '"v1"')
            h.end_headers()
            return
        send(h, 200, body, headers={"ETag": '"v1"'})

    site.routes["/etag"] = etagged
    url = site.url("/etag")
    assert cli("watch", url, "--every", "1s").code == 0
    d = daemons(cli, write_config(tmp_path))
    rows = wait_for("3 captures", lambda: len(snapshots(cli, url)) >= 3 and snapshots(cli, url), d)
    assert d.stop()[0] == 0
    assert rows[0]["status"] == 200 and {r["status"] for r in rows[1:]} == {304}
    assert all(r["significance"] == "none" and r["revisit"] for r in rows[1:])
    assert len(conditional) >= 2
    revisits = []
    for path in warc_files(cli.data_dir):
        with open(path, "rb") as fh:
            revisits += [dict(r.rec_headers.headers) for r in ArchiveIterator(fh) if r.rec_type == "revisit"]
    assert revisits and {r["WARC-Profile"] for r in revisits} == {
        "http://netpreserve.org/warc/1.1/revisit/server-not-modified"}
    assert "Verlegung" in cli("show", url, "--text").out  # the text is the original's
    assert_archive_sound(cli)


def test_failing_source_backs_off(site, cli, tmp_path, daemons):
    url = site.page("/down", b"<html><body><p>Wartung</p></body></html>", status=503)
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        refused = f"http://127.0.0.1:{s.getsockname()[1]}/"
    assert cli("watch", url, "--every", "1s").code == 0
    assert cli("watch", refused, "--every", "1s").code == 0
    d = daemons(cli, write_config(tmp_path))
    gaps: dict[int, float] = {}

    def observe() -> bool:
        src = source(cli, url)
        if src and src["failures"] and src["next_due"] and src["last_attempt_at"]:
            gap = (datetime.fromisoformat(src["next_due"]) - datetime.fromisoformat(src["last_attempt_at"]))
            gaps[src["failures"]] = gap.total_seconds()
        return len(gaps) >= 3 and max(gaps) >= 3

    wait_for("three failures", observe, d, timeout=45)
    assert d.stop()[0] == 0
    counts = sorted(gaps)
    delays = [gaps[n] for n in counts]
    assert delays == sorted(delays) and delays[-1] > delays[0], gaps
    for n, delay in gaps.items():
        assert 2 ** n <= delay <= 2 ** n * 1.11, gaps  # doubling from the 1 s interval, plus jitter
    src = {s["url"]: s for s in cli("sources", "--json").json()}
    assert src[url]["last_error"] == "HTTP 503" and src[url]["failures"] >= 3
    assert src[refused]["failures"] >= 1 and "cannot fetch" in src[refused]["last_error"]
    assert "failed (1 in a row)" in d.log()


RSS = """<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Nachrichten</title>
<link>{base}</link>{items}</channel></rss>"""


def test_feed_enrols_new_articles(site, cli, tmp_path, daemons):
    articles = [site.page(f"/artikel/{i}", article_html(f"Artikel {i}", ARTICLE)) for i in range(3)]
    listed = articles[:2]

    def feed(h: Any) -> None:
        items = "".join(f"<item><title>x</title><link>{u}</link></item>" for u in listed)
        send(h, 200, RSS.format(base=site.url("/"), items=items).encode(), content_type="application/rss+xml")

    site.routes["/rss.xml"] = feed
    feed_url = site.url("/rss.xml")
    r = cli("watch-feed", feed_url, "--every", "1s")
    assert r.code == 0 and "2 newly enrolled" in r.out, r.err
    d = daemons(cli, write_config(tmp_path))
    wait_for("both articles captured", lambda: all(snapshots(cli, u) for u in listed), d)
    listed.append(articles[2])
    wait_for("the new article captured", lambda: snapshots(cli, articles[2]), d)
    assert d.stop()[0] == 0
    srcs = {s["url"]: s for s in cli("sources", "--json").json()}
    assert srcs[feed_url]["kind"] == "feed"
    assert srcs[articles[2]]["origin"] == feed_url and srcs[articles[2]]["every"] == "adaptive"
    # Adaptive: a new article is next due in about 15 minutes.
    art = srcs[articles[0]]
    wait_s = (datetime.fromisoformat(art["next_due"]) - datetime.fromisoformat(art["last_attempt_at"])).total_seconds()
    assert 15 * 60 <= wait_s <= 15 * 60 * 1.11
    assert "new article(s) enrolled" in d.log() and f"poll {feed_url} status=200 new_articles=" in d.log()


# -- the commands without a daemon ----------------------------------------------------
def test_watch_unwatch_sources(site, bcli, tmp_path):
    url = site.page("/x", article_html("X", ARTICLE))
    assert bcli("sources").out.startswith("no sources watched")
    r = bcli("watch", url, "--every", "30m")
    assert r.code == 0 and r.err == "" and f"watching {url} every 30m" in r.out
    r = bcli("watch", url, "--every", "1h", "--notify", "https://hooks.example/x")
    assert r.code == 0 and "updated" in r.out
    (s,) = bcli("sources", "--json").json()
    assert (s["every"], s["notify"], s["failures"], s["kind"]) == ("1h", "https://hooks.example/x", 0, "page")
    assert "every 1h; last capture never; next due when the daemon starts" in bcli("sources").out
    assert bcli("watch", url).code == 0  # re-watching without options keeps them
    assert bcli("sources", "--json").json()[0]["every"] == "1h"
    assert bcli("unwatch", url).code == 0
    assert bcli("sources", "--json").json() == []
    r = bcli("unwatch", url)
    assert r.code == 1 and r.err.count("\n") == 1 and "not watched" in r.err


@pytest.mark.parametrize(
    "args,message",
    [
        (["watch", "http://127.0.0.1/", "--every", "soon"], "not a duration"),
        (["watch", "http://127.0.0.1/", "--every", "0.5s"], "shorter than the minimum"),
        (["watch", "ftp://127.0.0.1/"], "unsupported URL scheme"),
        (["watch", "http://127.0.0.1/", "--notify", "nope"], "--notify"),
        (["watch"], "needs a URL"),
    ],
)
def test_watch_usage_errors_exit_2(cli, args, message):
    r = cli(*args)
    assert r.code == 2 and r.err.count("\n") == 1 and message in r.err, r.err


def test_watch_file(site, cli, tmp_path):
    a, b = site.url("/a"), site.url("/b")
    f = tmp_path / "sources.toml"
    f.write_text(f'[defaults]\nevery = "6h"\n\n[[source]]\nurl = "{a}"\n\n[[source]]\nurl = "{b}"\nevery = "adaptive"\n'
                 f'language = "de"\n\n[[feed]]\nurl = "{site.url("/rss.xml")}"\nevery = "15m"\n')
    r = cli("watch", "--file", str(f))
    assert r.code == 0 and "3 source(s)" in r.out and "3 new" in r.out
    got = {s["url"]: (s["kind"], s["every"], s["language"]) for s in cli("sources", "--json").json()}
    assert got == {a: ("page", "6h", None), b: ("page", "adaptive", "de"), site.url("/rss.xml"): ("feed", "15m", None)}
    f.write_text(f'[[source]]\nurl = "{a}"\nevry = "1h"\n')
    r = cli("watch", "--file", str(f))
    assert r.code == 2 and "unknown key 'evry'" in r.err


def test_watch_file_enrols_thousands_in_one_transaction_all_or_nothing(cli, tmp_path):
    f = tmp_path / "sources.toml"
    urls = [f"http://127.0.0.1:9/article/{i}" for i in range(3000)]
    f.write_text('[defaults]\nevery = "1d"\n' + "".join(f'[[source]]\nurl = "{u}"\n' for u in urls))
    r = cli("watch", "--file", str(f))
    assert r.code == 0 and "3000 source(s)" in r.out and "3000 new" in r.out, r.err
    with db(cli) as conn:
        assert conn.execute("SELECT COUNT(*) FROM sources WHERE every='1d'").fetchone()[0] == 3000
        # one edit, one generation: a running daemon replans once, not 3000 times
        assert conn.execute("SELECT value FROM meta WHERE key='sources_generation'").fetchone()[0] == "1"
    r = cli("watch", "--file", str(f))
    assert r.code == 0 and "(0 new)" in r.out
    f.write_text(f.read_text() + '[[source]]\nurl = "ftp://127.0.0.1/x"\n')
    r = cli("watch", "--file", str(f))
    assert r.code == 2 and "ftp" in r.err
    with db(cli) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key='sources_generation'").fetchone()[0] == "2"


def test_example_sources_file_is_valid():
    from archiver.daemon.sources import load_sources_file

    specs = load_sources_file(REPO / "config" / "sources.example.toml", "adaptive")
    assert specs and {s.kind for s in specs} == {"page", "feed"}


def test_status_without_a_daemon(bcli):
    r = bcli("status")
    assert r.code == 1 and "daemon: not running" in r.out


def test_status_sums_up_the_sources(bcli, site):
    """Counts and the next due source, on either backend (aggregates in SQL)."""
    for i in range(3):
        assert bcli("watch", f"http://127.0.0.1:9/s{i}", "--every", "1h").code == 0
    site.routes["/empty.xml"] = lambda h: send(h, 200, RSS.format(base=site.url("/"), items="").encode(),
                                                content_type="application/rss+xml")
    assert bcli("watch-feed", site.url("/empty.xml"), "--every", "1h").code == 0
    assert bcli("watch", "http://127.0.0.1:9/gone", "--every", "1h").code == 0
    assert bcli("unwatch", "http://127.0.0.1:9/gone").code == 0
    conn = bcli.db()
    try:
        conn.execute("UPDATE sources SET failures=2 WHERE url='http://127.0.0.1:9/s1'")
        conn.execute("UPDATE sources SET next_due='2030-01-01T00:00:00Z' WHERE active=1")
        conn.execute("UPDATE sources SET next_due='2029-01-01T00:00:00Z' WHERE url='http://127.0.0.1:9/s2'")
        conn.commit()
    finally:
        conn.close()
    report = bcli("status", "--json").json()
    assert report["sources"] == {"watched": 4, "feeds": 1, "failing": 1,
                                 "next_due": "2029-01-01T00:00:00Z", "next_url": "http://127.0.0.1:9/s2"}
    assert "sources: 4 watched (1 feed(s)), 1 failing; next due 2029-01-01T00:00:00Z" in bcli("status").out


def test_start_repairs_what_a_killed_process_left(site, cli, tmp_path, daemons):
    """A stale `.open` WARC of a dead process with a torn tail: the daemon's start
    closes it, sets the torn bytes aside, and the archive verifies."""
    url = site.page("/stale", article_html("Alt", ARTICLE))
    assert cli("snapshot", url).code == 0
    (warc,) = warc_files(cli.data_dir)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale_name = warc.name.rsplit("-", 1)[0] + f"-{dead.pid}.warc.gz"
    stale = warc.with_name(stale_name + ".open")
    stale.write_bytes(warc.read_bytes() + b"\x1f\x8b\x08\x00torn")
    warc.unlink()
    with db(cli) as conn:
        assert conn.execute("SELECT COUNT(*) FROM snapshots").fetchone()[0] == 1
    conn = sqlite3.connect(cli.data_dir / "index.sqlite3")
    conn.execute("UPDATE warc_files SET warc_name=?", (stale_name,))  # the rows name their one file by id
    conn.commit()
    conn.close()
    d = daemons(cli, write_config(tmp_path))
    wait_for("the daemon to start", lambda: started(d), d)
    assert "start-up repair: closed 1 stale WARC file(s), set aside 1 torn tail(s)" in d.log()
    code, _ = d.stop()
    assert code == 0
    assert (cli.data_dir / "warcs" / stale_name).exists()
    assert list((cli.data_dir / "warcs").glob(f"{stale_name}.torn-*"))
    assert_archive_sound(cli)

"""Group commit: captures finishing together are signed, logged and indexed in
one transaction with one WARC fsync and one checkpoint; crash windows stay
safe (kill -9 at random points, then repair and verify clean)."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import sqlite3
import threading
import time

import pytest

from archiver import config
from archiver.archive import Archive, SnapshotResult
from archiver.grouping import GroupCommitter
from conftest import article_html, send, warc_files


def _settings(path):
    s = config.load(None, {"ARCHIVER_ALLOW_PRIVATE": "1"})
    s.archive.data_dir = str(path)
    s.capture.requisites = False
    return s


def _held_index(archive: Archive):
    """Hold the index's write lock from another thread until the event is set:
    captures finishing meanwhile queue up for the next group."""
    taken, release = threading.Event(), threading.Event()

    def hold() -> None:
        with archive.index.write():
            taken.set()
            release.wait(30)

    t = threading.Thread(target=hold)
    t.start()
    taken.wait(10)
    return t, release


def _queued(archive: Archive, n: int, timeout: float = 20) -> None:
    """Wait until ``n`` captures wait on the committer (one leading, n-1 queued)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        c = archive._committer
        if c is not None and len(c._queue) >= n - 1 and c._leading:
            return
        time.sleep(0.01)
    raise AssertionError("captures never queued up")


def _snapshot_together(archive: Archive, urls: list[str]) -> list[SnapshotResult]:
    """Snapshot ``urls`` in threads that all finish while another thread holds
    the index: the first to arrive leads (and waits), the rest queue behind it."""
    holder, release = _held_index(archive)
    out: list[SnapshotResult] = []
    threads = [threading.Thread(target=lambda u=u: out.append(archive.snapshot(u))) for u in urls]
    for t in threads:
        t.start()
    _queued(archive, len(urls))
    release.set()
    holder.join()
    for t in threads:
        t.join()
    return out


def test_captures_that_finish_together_share_one_transaction_and_checkpoint(site, cli, tmp_path):
    urls = [site.page(f"/g{i}", article_html(f"Meldung {i}", [f"Es kamen {i}.000 Menschen."])) for i in range(8)]
    root = cli.data_dir
    with Archive(_settings(root)) as archive:
        archive.snapshot(urls[0])  # keys, writer and log exist
        out = _snapshot_together(archive, urls[1:])
        committer = archive._committer
        assert committer is not None and committer.items == 8
        assert committer.groups <= 3  # the first capture, the leader that waited, the six queued behind it
    assert len(out) == 7
    assert sorted(r.row.log_index for r in out) == list(range(1, 8))
    db = sqlite3.connect(root / "index.sqlite3")
    sizes = [r[0] for r in db.execute("SELECT size FROM checkpoints ORDER BY size")]
    assert sizes[-1] == 8 and len(sizes) <= 3  # one checkpoint per group, the last covers every leaf
    r = cli("verify", "--json")
    assert r.code == 0 and r.json()["ok"], r.out
    r = cli("proof", urls[3])
    assert r.code == 0, r.err


def test_two_captures_of_one_url_in_a_group_chain_one_after_the_other(site, tmp_path):
    url = site.page("/same", article_html("Lage", ["Es kamen 10.000 Menschen."]))
    root = tmp_path / "b"
    with Archive(_settings(root)) as archive:
        archive.snapshot(url)
        site.page("/same", article_html("Lage", ["Es kamen 12.000 Menschen."]))
        _snapshot_together(archive, [url] * 3)
        history = archive.index.history(url)
        manifests = [archive.manifest(h) for h in history]
    assert [h.seq for h in history] == [1, 2, 3, 4]
    assert [h.prev_id for h in history[1:]] == [h.id for h in history[:-1]]
    assert history[1].significance == "substantive" and {h.significance for h in history[2:]} == {"none"}
    assert [m.get("previous_manifest_sha256") for m in manifests[1:]] == [h.manifest_sha256 for h in history[:-1]]


def test_an_article_is_packed_before_the_commit_and_stored_once(site, tmp_path):
    """The article is packed before the write lock (what the index stores is
    unchanged); a re-capture whose article is the previous snapshot's adds
    no second row, even in a group behind a capture that changed it."""
    from store.index import packed_article

    url = site.page("/once", article_html("Lage", ["Es kamen 10.000 Menschen."]))
    other = site.page("/other", article_html("Lage", ["Es kamen 7.000 Menschen."]))
    with Archive(_settings(tmp_path / "a")) as archive:
        first = archive.snapshot(url).row
        again = archive.snapshot(url).row  # the same article: its text row is the first's
        site.page("/once", article_html("Lage", ["Es kamen 12.000 Menschen."]))
        _snapshot_together(archive, [url, other])
        history = archive.index.history(url)
        articles = [archive.article(h) for h in history]
        rows = dict(archive.index.conn.execute("SELECT sha256, article_z FROM texts").fetchall())
    assert again.text_sha256 == first.text_sha256 and history[2].text_sha256 != first.text_sha256
    assert len(rows) == 3  # two versions of /once, one of /other
    assert [a.text() for a in articles[:2]] == [articles[0].text()] * 2 and "12.000" in articles[2].text()
    for h, a in zip(history, articles):
        assert rows[h.text_sha256] == packed_article(a.to_json())


def test_a_round_that_rolls_back_or_another_writer_never_leaves_a_wrong_checkpoint(site, cli, tmp_path, monkeypatch):
    """Each round starts from the edge of the tree the last committed round
    left (archiver/provenance/log.py: Frontier). A round that rolls back after
    its leaf was appended, and a log append by another Archive on the same
    index, both leave that edge behind: the next round's checkpoint is still
    the root of the log as stored, and verify and proofs pass."""
    import archiver.committing as committing
    from archiver.errors import StoreError
    from archiver.provenance.log import MerkleLog

    urls = [site.page(f"/r{i}", article_html(f"Meldung {i}", [f"Es kamen {i}.000 Menschen."])) for i in range(6)]
    root = cli.data_dir
    with Archive(_settings(root)) as archive:
        archive.snapshot(urls[0])
        archive.snapshot(urls[1])
        edge = archive.provenance.frontier
        assert edge is not None and edge.size == 2
        real_insert = committing._insert

        def failing_insert(*args, **kwargs):
            raise StoreError("disk full")

        monkeypatch.setattr(committing, "_insert", failing_insert)
        with pytest.raises(StoreError):
            archive.snapshot(urls[2])  # its leaf 2 was appended, then the round rolled back
        monkeypatch.setattr(committing, "_insert", real_insert)
        assert archive.provenance.frontier == edge
        archive.snapshot(urls[3])
        with Archive(_settings(root)) as other:  # another writer appends leaf 3 meanwhile
            other.snapshot(urls[4])
        archive.snapshot(urls[5])
        with archive.index.read() as conn:
            log = MerkleLog(conn)
            size, root_hash = log.size(), log.root()
            latest = log.latest_checkpoint()
    assert size == 5 and latest is not None and (latest.size, latest.root) == (size, root_hash)
    r = cli("verify", "--json")  # the rolled-back capture's records are in the WARC, not the index
    assert [p["kind"] for p in r.json()["problems"]] == ["unindexed-capture"], r.out
    assert cli("repair").code == 0
    r = cli("verify", "--json")
    assert r.code == 0 and r.json()["ok"], r.out
    for url in urls[2:]:
        r = cli("proof", url)
        assert r.code == 0, r.err


@pytest.mark.parametrize("requisites", [False, True])
def test_an_unchanged_pages_reused_text_is_not_read_again_for_its_diff(site, tmp_path, monkeypatch, requisites):
    """A re-capture that takes the previous snapshot's stored text (the same
    payload, read the same way) stores the diff a comparison would give --
    "none" -- without reading that text a second time for it, nor for the
    extraction method of a page that is only parsed for its requisites."""
    url = site.page("/still", article_html("Lage", ["Es kamen 10.000 Menschen."]))
    settings = _settings(tmp_path / "a")
    settings.capture.requisites = requisites
    with Archive(settings) as archive:
        first = archive.snapshot(url).row
        reads: list[str] = []
        real_text = archive.index.text
        monkeypatch.setattr(archive.index, "text", lambda sha: reads.append(sha) or real_text(sha))
        again = archive.snapshot(url).row
        monkeypatch.setattr(archive.index, "text", real_text)
        expected = archive._diff(first, archive.article(again))
    assert again.text_sha256 == first.text_sha256 and again.significance == "none"
    assert again.diff == expected == {"significance": "none", "figures": [], "changes": []}
    assert reads == [first.text_sha256]  # once, to take it over; not again to compare it with itself


def test_the_commit_reads_the_previous_snapshot_again_only_when_it_changed(site, tmp_path):
    """Inside the commit the URL's newest snapshot is checked with one light
    lookup (id and signed digest) against the row read before the lock, and
    read in full only when another capture of the URL committed meanwhile
    (test_two_captures_of_one_url_in_a_group_chain_one_after_the_other)."""
    url = site.page("/prev", article_html("Lage", ["Es kamen 10.000 Menschen."]))
    with Archive(_settings(tmp_path / "a")) as archive:
        first = archive.snapshot(url).row
        seen: list[str] = []
        archive.index.conn.set_trace_callback(seen.append)  # the writing connection: the commit's statements
        site.page("/prev", article_html("Lage", ["Es kamen 12.000 Menschen."]))
        second = archive.snapshot(url).row
        archive.index.conn.set_trace_callback(None)
    assert (second.prev_id, second.seq, second.significance) == (first.id, 2, "substantive")
    assert not [s for s in seen if s.startswith("SELECT s.*")], seen
    assert sum(s.startswith("SELECT id, manifest_sha256 FROM snapshots") for s in seen) == 1


def test_a_failed_group_fails_each_of_its_captures_and_the_next_group_commits():
    calls: list[list[int]] = []
    gate = threading.Event()

    def run(batch: list[int]) -> None:
        calls.append(list(batch))
        if len(calls) == 1:
            gate.wait(10)  # the others queue behind the first group
            return
        if 13 in batch:
            raise RuntimeError("disk full")

    committer: GroupCommitter[int] = GroupCommitter(run, max_group=3)
    errors: dict[int, BaseException | None] = {}

    def submit(i: int) -> None:
        try:
            committer.submit(i)
            errors[i] = None
        except RuntimeError as exc:
            errors[i] = exc

    first = threading.Thread(target=submit, args=(10,))
    first.start()
    while not calls:
        time.sleep(0.005)
    rest = [threading.Thread(target=submit, args=(i,)) for i in (11, 12, 13, 14)]
    for t in rest:
        t.start()
    while len(committer._queue) < 4:
        time.sleep(0.005)
    gate.set()
    for t in [first, *rest]:
        t.join(10)
    assert calls[0] == [10] and len(calls[1]) == 3 and sorted(sum(calls[1:], [])) == [11, 12, 13, 14]
    failed = {i for i, e in errors.items() if e is not None}
    assert failed == set(next(b for b in calls if 13 in b))  # the whole group of 13, nobody else
    assert committer.groups == 3 and committer.items == 5


def _counted_pages(site, n: int, prefix: str) -> tuple[list[str], dict]:
    """``n`` pages whose server counts the requests it serves at once
    (``most``) and the pages it has served (``done``); each takes 20 ms."""
    state: dict = {"now": 0, "most": 0, "done": []}
    lock = threading.Lock()

    def handler(path: str, body: bytes):
        def serve(req) -> None:
            with lock:
                state["now"] += 1
                state["most"] = max(state["most"], state["now"])
            time.sleep(0.02)
            send(req, 200, body)
            with lock:
                state["now"] -= 1
                state["done"].append(path)
        return serve

    urls = []
    for i in range(n):
        path = f"/{prefix}{i}"
        site.routes[path] = handler(path, article_html(f"Meldung {i}", [f"Es kamen {i}.000 Menschen."]).encode())
        urls.append(site.url(path))
    return urls, state


def _until(check, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.01)
    return False


def _many_while_held(archive: Archive, urls: list[str], workers: int, served: dict, fetched: int) -> list:
    """snapshot_many(urls) while another thread holds the index: ``fetched``
    pages must be fetched meanwhile (and no more), then the index is let go."""
    holder, release = _held_index(archive)
    out: list = []
    runner = threading.Thread(target=lambda: out.extend(archive.snapshot_many(urls, workers=workers)))
    runner.start()
    try:
        assert _until(lambda: len(served["done"]) >= fetched), served["done"]
        time.sleep(0.3)
        assert len(served["done"]) == fetched, served["done"]  # every capture thread busy: no more fetches
    finally:
        release.set()
        holder.join()
        runner.join(60)
    assert not runner.is_alive()
    return out


def test_one_worker_fetches_the_next_page_while_the_last_waits_for_its_commit(site, cli, tmp_path):
    """With one worker the pages are still fetched one at a time, but the next
    page is fetched, read and written while the last one waits to be signed
    and indexed (before, a capture's commit held up its worker)."""
    urls, served = _counted_pages(site, 4, "one")
    with Archive(_settings(cli.data_dir)) as archive:
        archive.snapshot(site.page("/first", article_html("Erst", ["Es kamen 9 Menschen."])))
        out = _many_while_held(archive, urls, 1, served, fetched=2)
    assert all(isinstance(r, SnapshotResult) for r in out) and len(out) == 4, out
    assert served["most"] == 1
    r = cli("verify", "--json")
    assert r.code == 0 and r.json()["ok"], r.out


def test_captures_waiting_for_their_commit_free_their_slots_and_commit_together(site, cli, tmp_path):
    """Two workers: four captures are fetched while the index is held (two
    slots, two captures waiting per slot), never more than two at once, and
    the three that queued behind the first commit in one round."""
    urls, served = _counted_pages(site, 8, "two")
    with Archive(_settings(cli.data_dir)) as archive:
        archive.snapshot(site.page("/first", article_html("Erst", ["Es kamen 9 Menschen."])))
        out = _many_while_held(archive, urls, 2, served, fetched=4)
        committer = archive._committer
        assert committer is not None and committer.items == 9
        assert committer.groups <= committer.items - 2, (committer.groups, committer.items)
    assert len(out) == 8 and all(isinstance(r, SnapshotResult) for r in out), out
    assert served["most"] <= 2
    assert sorted(r.row.log_index for r in out) == list(range(1, 9))
    r = cli("verify", "--json")
    assert r.code == 0 and r.json()["ok"], r.out
    r = cli("proof", urls[5])
    assert r.code == 0, r.err


def test_a_capture_that_fails_gives_its_slot_back(site, tmp_path):
    """A capture that fails before its records are written (a closed port)
    frees its slot: with one worker, every URL still gets an outcome."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/gone"
    urls, _ = _counted_pages(site, 3, "ok")
    mixed = [dead + "1", urls[0], dead + "2", urls[1], dead + "3", urls[2]]
    with Archive(_settings(tmp_path / "f")) as archive:
        out: list = []
        runner = threading.Thread(target=lambda: out.extend(archive.snapshot_many(mixed, workers=1)))
        runner.start()
        runner.join(60)
        assert not runner.is_alive(), "a slot was not given back"
    assert sorted(type(r).__name__ for r in out) == ["SnapshotFailure"] * 3 + ["SnapshotResult"] * 3


def test_one_warc_fsync_per_capture_and_one_per_group(site, tmp_path, monkeypatch):
    """A lone capture costs one WARC fsync (exchange, intent and manifest
    together; the index's own is SQLite's); a group of eight costs one."""
    urls = [site.page(f"/f{i}", article_html(f"Meldung {i}", [f"Es gab {i} Fälle."])) for i in range(9)]
    real = os.fsync
    count = [0]

    def counting(fd: int) -> None:
        count[0] += 1
        real(fd)

    root = tmp_path / "c"
    with Archive(_settings(root)) as archive:
        archive.snapshot(urls[0])  # opens the file (its warcinfo and the directory synced once)
        monkeypatch.setattr(os, "fsync", counting)
        for u in urls[1:5]:
            archive.snapshot(u)
        assert count[0] == 4
        count[0] = 0
        _snapshot_together(archive, urls[5:])
        assert count[0] <= 2  # the leader's own group, then the three queued behind it
        monkeypatch.setattr(os, "fsync", real)


def test_rotation_syncs_a_file_before_closing_it(tmp_path, monkeypatch):
    """Records appended without a sync are synced when their file rotates, so a
    closed (renamed) file never holds bytes a power cut could take back."""
    from archiver.capture.records import metadata_record
    from store.warc import WarcFileWriter, WarcInfo

    w = WarcFileWriter(tmp_path, WarcInfo(software="t", hostname="h"), max_size=1)
    rec = metadata_record("urn:x", "2024-01-01T00:00:00.000000Z", "<urn:uuid:0>", {"a": 1}, lambda: "u1")
    synced: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd))[1])
    w.append([rec], sync=False)
    assert len(synced) == 1  # the directory, for the new file's name
    w.append([rec], sync=False)  # rotates: the first file is synced, then closed
    assert len(synced) == 1 + 2 + 1  # first file's fsync, directory after the rename, new file's directory
    w.close()
    assert [p.name.endswith(".open") for p in tmp_path.iterdir()] == [False, False]


def _snapshot_count(db_path) -> int:
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)) as db:
            return db.execute("SELECT COUNT(*) FROM snapshots").fetchone()[0]
    except sqlite3.Error:  # not created yet
        return 0


@pytest.mark.slow
def test_kill_nine_at_random_points_of_grouped_captures_loses_nothing(site, cli, tmp_path):
    """Eight workers commit in groups; SIGKILL at a random moment, five times:
    every snapshot committed is intact, repair adopts what was signed or
    intended, verify is clean, and every log leaf is an indexed snapshot."""
    rng = random.Random(12)
    urls = [site.page(f"/k{i}", article_html(f"Bericht {i}", [f"Es kamen {i}.000 Menschen. " * 40]))
            for i in range(120)]
    listing = tmp_path / "urls.txt"
    listing.write_text("\n".join(urls))
    db_path = cli.data_dir / "index.sqlite3"
    for round_ in range(5):
        before = _snapshot_count(db_path)
        proc = cli.popen("snapshot", "-i", str(listing), "--workers", "8", "--no-requisites")
        if round_ % 2:  # anywhere from start-up on
            time.sleep(rng.uniform(0.3, 2.5))
        else:  # amid the commits, however slow the start on a loaded machine
            deadline = time.monotonic() + 60
            while _snapshot_count(db_path) <= before and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 0.5))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        proc.stdout.close()
        proc.stderr.close()
        r = cli("repair")
        assert r.code == 0, r.err
        r = cli("verify", "--json")
        assert r.code == 0 and r.json()["ok"], r.json()["problems"][:3]
    assert not any(p.name.endswith(".open") for p in warc_files(cli.data_dir))
    with sqlite3.connect(db_path) as db:
        leaves = db.execute("SELECT COUNT(*) FROM log_leaves").fetchone()[0]
        snaps = db.execute("SELECT COUNT(*) FROM snapshots").fetchone()[0]
    assert leaves == snaps and snaps >= 1


def test_one_worker_starts_the_next_page_only_once_the_commit_only_waits(site, cli, tmp_path, monkeypatch):
    """A commit round that is busy (not waiting on a lock or an fsync) keeps its
    worker's place: with one worker no second page is fetched while the round
    inserts its rows -- two capture threads trading the GIL cost more CPU than
    the overlap saves. The place is given back at the round's fsyncs, so the
    next page is still fetched while the commit waits."""
    import archiver.committing as committing
    import archiver.grouping as grouping

    monkeypatch.setattr(grouping, "HANDOFF_AFTER", 30.0)  # only the round's own waits give the place back
    urls, served = _counted_pages(site, 4, "busy")
    seen: list[int] = []
    real_insert = committing._insert

    def slow_insert(*args, **kwargs):
        time.sleep(0.25)  # a long busy stretch of the round, before its waits
        seen.append(len(served["done"]))
        return real_insert(*args, **kwargs)

    gave_back_at: list[int] = []
    real_give_back = grouping.Handoff.give_back

    def give_back(self):
        if self._give_back is not None:
            gave_back_at.append(len(seen))
        real_give_back(self)

    with Archive(_settings(cli.data_dir)) as archive:
        archive.snapshot(site.page("/first", article_html("Erst", ["Es kamen 9 Menschen."])))
        monkeypatch.setattr(committing, "_insert", slow_insert)
        monkeypatch.setattr(grouping.Handoff, "give_back", give_back)
        out = list(archive.snapshot_many(urls, workers=1))
    assert len(out) == 4 and all(isinstance(r, SnapshotResult) for r in out), out
    assert seen == [1, 2, 3, 4], seen  # each round's rows went in before the next page was fetched
    assert gave_back_at == [1, 2, 3, 4], gave_back_at  # each place given back in its own round, at its waits
    assert served["most"] == 1


def test_a_round_blocked_past_the_handoff_time_gives_its_place_back():
    """The committer's watchdog gives back the places of a round that runs
    past ``handoff_after`` (a lock held elsewhere), and never twice."""
    from archiver.grouping import Handoff

    gate, given = threading.Event(), []
    committer = GroupCommitter(lambda batch: gate.wait(10), handoff_after=0.05)
    t = threading.Thread(target=committer.submit, args=(1, Handoff(lambda: given.append(time.monotonic()))))
    t0 = time.monotonic()
    t.start()
    assert _until(lambda: bool(given), 5)
    assert 0.04 <= given[0] - t0 < 2 and t.is_alive()  # given back while the round still runs
    gate.set()
    t.join(5)
    assert len(given) == 1
    committer.close()


def test_a_lone_capture_starts_no_handoff_watchdog(site, tmp_path):
    """``archiver snapshot URL`` has no worker place to give back: its commit
    arms no watchdog, and no thread is started for one."""
    url = site.page("/lone", article_html("Allein", ["Es kamen 3 Menschen."]))
    with Archive(_settings(tmp_path / "lone")) as archive:
        archive.snapshot(url)
        assert not [t for t in threading.enumerate() if t.name == "commit-handoff"]
        list(archive.snapshot_many([site.page("/two", article_html("Zwei", ["Es kamen 4 Menschen."]))], workers=1))
        assert [t for t in threading.enumerate() if t.name == "commit-handoff"]  # parallel captures do arm it
    assert not [t for t in threading.enumerate() if t.name == "commit-handoff"]  # stopped with the archive


def test_with_pages_read_in_worker_processes_the_place_is_given_back_before_the_commit(site, tmp_path, monkeypatch):
    """When pages are read in worker processes the next capture mostly waits for
    one, so overlapping it with this commit pays: the place is given back as
    soon as the records are written. Read in the capture thread (one worker),
    it is given back only at the round's waits."""
    import archiver.committing as committing

    events: list[str] = []
    real_round = committing._commit_round

    def round_(archive, batch):
        events.append("round")
        return real_round(archive, batch)

    monkeypatch.setattr(committing, "_commit_round", round_)
    with Archive(_settings(tmp_path / "early")) as archive:
        archive.snapshot(site.page("/inline", article_html("Eins", ["Es kamen 5 Menschen."])),
                         written=lambda: events.append("written"))
        assert events == ["round", "written"]  # read here: given back inside the round
        archive.read_pages_in_parallel(2)
        events.clear()
        archive.snapshot(site.page("/pool", article_html("Zwei", ["Es kamen 6 Menschen."])),
                         written=lambda: events.append("written"))
        assert events == ["written", "round"]


def test_places_given_back_before_the_commit_arm_no_watchdog():
    """A round whose captures all gave their places back already (pages read in
    worker processes) does not wake the watchdog thread."""
    from archiver.grouping import Handoff

    given: list[int] = []
    committer = GroupCommitter(lambda batch: None, handoff_after=0.05)
    early = Handoff(lambda: given.append(1))
    early.give_back()
    committer.submit(1, early)
    assert committer._watchdog._thread is None and given == [1]
    committer.submit(2, Handoff(lambda: given.append(2)))
    assert committer._watchdog._thread is not None and given == [1, 2]
    committer.close()


def test_snapshot_many_captures_every_url_even_when_the_caller_stops_reading(site, tmp_path):
    """Results come as captures finish; a caller that stops after the first
    still gets every URL captured and committed, and no capture thread is
    left running when the generator is closed."""
    urls = [site.page(f"/stop{i}", article_html(f"Meldung {i}", [f"Es kamen {i} Menschen."])) for i in range(6)]
    with Archive(_settings(tmp_path / "stop")) as archive:
        results = archive.snapshot_many(urls, workers=2)
        first = next(results)
        assert isinstance(first, SnapshotResult)
        results.close()
        assert not [t for t in threading.enumerate() if t.name.startswith("capture_")]
        assert {u for u in urls if archive.index.last_snapshot(u) is not None} == set(urls)

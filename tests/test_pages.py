"""Pages parsed once and read in worker processes (archiver/pages.py).

The pool must give exactly what reading in the capture thread gives, on the
test corpus's real-looking pages; a worker killed mid-page or overrunning its
time costs that page its article text only (the capture is still recorded),
and the next page is read by a fresh worker.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from archiver.archive import Archive
from archiver.capture.requisites import page_references
from archiver.changes.extract import ExtractLimits, extract_article
from archiver.pages import InlinePages, PageJob, PagePool, read_page
from tests.conftest import article_html

CORPUS = Path(__file__).parent / "corpus"
STYLED = ('<html><head><base href="http://cdn.test/s/"><link rel="stylesheet" href="a.css">'
          '<style>@import "b.css"; body { background: url(bg.png) }</style></head><body>'
          '<picture><source srcset="p1.webp 1x, p2.webp 2x"><img src="p.jpg"></picture>'
          '<!-- <img src="commented.png"> --><script src="app.js"></script>'
          '<article><h1>Titel</h1><p>Der Etat steigt auf 4,5 Milliarden Euro, sagte die Ministerin.</p></article>'
          '</body></html>')


def corpus_pages() -> list[bytes]:
    return [p.read_bytes() for p in sorted(CORPUS.glob("*/*.html"))]


def big_page(paragraphs: int) -> bytes:
    para = "Die Landesregierung hat am Dienstag 120 neue Stellen angekündigt, sagte die Ministerin in Kiel. " * 3
    return article_html("Lang", [para] * paragraphs).encode("utf-8")


def job(body: bytes, **kw: object) -> PageJob:
    return PageJob(body, "text/html; charset=utf-8", "http://h.test/a/page", ExtractLimits(), **kw)  # type: ignore[arg-type]


@pytest.fixture
def pool() -> PagePool:
    p = PagePool(2, kill_after=20.0, max_bytes=10_000_000)
    assert p.wait_ready(60)
    yield p
    p.close()


def test_one_parse_finds_the_requisites_the_old_scan_found_and_the_same_article():
    reading = read_page(job(STYLED.encode()))
    assert reading.refs == page_references(STYLED.encode(), "http://h.test/a/page") == [
        ("http://cdn.test/s/a.css", "stylesheet"), ("http://cdn.test/s/b.css", "stylesheet"),
        ("http://cdn.test/s/bg.png", "image"), ("http://cdn.test/s/p1.webp", "image"),
        ("http://cdn.test/s/p2.webp", "image"), ("http://cdn.test/s/p.jpg", "image")]
    assert reading.article == extract_article(STYLED.encode(), content_type="text/html; charset=utf-8")
    for method in ("trafilatura", "blocks"):
        assert read_page(job(STYLED.encode(), method=method)).article == extract_article(
            STYLED.encode(), content_type="text/html", method=method)


def test_the_pool_reads_every_corpus_page_as_the_capture_thread_does(pool):
    pages = corpus_pages()
    assert len(pages) >= 20
    for body in pages:
        for method in (None, "trafilatura", "blocks"):
            want = InlinePages().read(job(body, method=method))
            got = pool.read(job(body, method=method))
            assert got == want
            assert got.article is not None and got.article.text()
    assert pool.failures == 0 and pool.inline == 0
    assert len(pool.pids()) == 2


def test_not_text_is_an_error_in_the_pool_as_in_process(pool):
    png = b"\x89PNG\r\n\x1a\n" + bytes(200)
    assert pool.read(job(png)).error == read_page(job(png)).error
    assert "not an HTML/text document" in (pool.read(job(png)).error or "")
    too_big = PagePool(1, kill_after=5, max_bytes=100)
    try:
        assert "over the 100-byte cap" in (too_big.read(job(b"<p>" + b"x" * 200)).error or "")
        assert too_big.pids() == []  # refused before any worker started
        assert too_big.read(job(b"<p>kurz</p>")).article is not None  # read here while its worker starts
        assert too_big.inline == 1 and len(too_big.pids()) == 1
    finally:
        too_big.close()


def test_a_worker_killed_mid_page_fails_that_page_only_and_the_next_page_is_read(pool):
    small = article_html("Kurz", ["Der Etat steigt auf 4,5 Milliarden Euro, sagte die Ministerin."]).encode()
    assert pool.read(job(small)).article is not None  # a worker is up
    slow = big_page(6000)
    # Stopped, the workers hold the page for as long as the test wants, however
    # fast the machine reads it (a page that merely takes long can be done
    # before the kill lands).
    stopped = pool.pids()
    for pid in stopped:
        os.kill(pid, signal.SIGSTOP)
    got: list[object] = []
    t = threading.Thread(target=lambda: got.append(pool.read(job(slow))))
    t.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not _busy(pool):
        time.sleep(0.05)
    assert _busy(pool), "the slow page never reached a worker"
    victim = _busy(pool)[0]
    os.kill(victim, signal.SIGKILL)
    for pid in stopped:
        if pid != victim:
            os.kill(pid, signal.SIGCONT)
    t.join(60)
    assert not t.is_alive()
    reading = got[0]
    assert reading.article is None and "failed" in reading.error  # type: ignore[attr-defined]
    assert pool.failures == 1 and victim not in pool.pids()
    assert pool.wait_ready(60)
    after = pool.read(job(small))
    assert after.error is None and after.article is not None and "4,5 Milliarden" in after.article.text()


def _busy(pool: PagePool) -> list[int]:
    """Workers reading a page now: live ones not waiting in the idle queue."""
    idle = {w.process.pid for w in list(pool._idle.queue)}
    return [pid for pid in pool.pids() if pid not in idle]


def test_workers_run_this_archiver_whatever_the_working_directory_holds(tmp_path, monkeypatch):
    # A directory with a package of the same name: `python -m` would import it first.
    decoy = tmp_path / "archiver"
    decoy.mkdir()
    marker = tmp_path / "decoy-ran"
    (decoy / "__init__.py").write_text("")
    (decoy / "pages.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    monkeypatch.chdir(tmp_path)
    p = PagePool(1, kill_after=20.0, max_bytes=10_000_000)
    try:
        assert p.wait_ready(60)
        got = p.read(job(STYLED.encode("utf-8")))
        assert got.article is not None and got.article.title == "Titel" and p.inline == 0
    finally:
        p.close()
    assert not marker.exists()


def test_a_worker_over_its_time_is_killed_and_replaced():
    pool = PagePool(1, kill_after=0.3, max_bytes=10_000_000)
    assert pool.wait_ready(60)
    try:
        small = article_html("Kurz", ["Ein Satz mit 12 Wörtern, damit etwas zu lesen ist."]).encode()
        assert pool.read(job(small)).article is not None  # started (start-up is not counted)
        first = pool.pids()[0]
        # Stopped, it takes for ever on the page, however fast the machine (a page
        # that merely takes long was read within 0.3 s on a fast CI machine). Its
        # socket's buffer fills long before the page is handed over: the hand-over
        # is within the deadline too.
        os.kill(first, signal.SIGSTOP)
        t0 = time.monotonic()
        slow = pool.read(job(big_page(6000)))
        assert time.monotonic() - t0 < 10
        assert slow.article is None and "took over 0.3s; its worker was killed" in (slow.error or "")
        assert pool.failures == 1 and first not in pool.pids()
        assert pool.wait_ready(60)
        assert pool.read(job(small)).article is not None
        assert len(pool.pids()) == 1 and first not in pool.pids() and pool.inline == 0
    finally:
        pool.close()


def test_parallel_snapshots_store_what_one_worker_stores_and_record_a_page_whose_worker_died(site, cli, tmp_path):
    bodies = corpus_pages()[:12]
    urls = [site.page(f"/p/{i}", body) for i, body in enumerate(bodies)]
    texts: dict[int, list[str]] = {}
    for workers, processes in ((1, 0), (3, 2)):
        settings = cli.settings()
        settings.archive.data_dir = str(tmp_path / f"a{workers}")
        settings.diff.extract_processes = processes
        with Archive(settings) as archive:
            results = list(archive.snapshot_many(urls, workers=workers))
            assert all(hasattr(r, "row") for r in results), results
            assert isinstance(archive.pages, PagePool) == (workers > 1)
            texts[workers] = [archive.article(archive.index.last_snapshot(u)).text() for u in urls]  # type: ignore[union-attr, arg-type]
    assert texts[1] == texts[3]

    # A worker that dies while reading: the capture is recorded without text, the next one with it.
    settings = cli.settings()
    settings.diff.extract_processes = 1
    settings.diff.extract_kill_after = 0.3
    slow = site.page("/slow", big_page(6000))
    with Archive(settings) as archive:
        archive.read_pages_in_parallel(2)
        assert isinstance(archive.pages, PagePool) and archive.pages.wait_ready(60)
        (worker,) = archive.pages.pids()
        os.kill(worker, signal.SIGSTOP)  # it never answers (see the test above)
        first = archive.snapshot(slow)
        assert first.row.text_sha256 is None and first.row.significance == "first"
        second = archive.snapshot(urls[0])
        assert second.row.text_sha256 is not None
    assert cli("verify").code == 0


def test_a_workers_answer_naming_an_unknown_requisite_kind_is_refused():
    """A worker parses untrusted pages; its answer is checked before the fetch
    plan (keyed on the four kinds) sees it -- a malformed answer, not a traceback."""
    import json

    from archiver.pages import PageReading, decode_reading, encode_reading

    good = PageReading([("http://example.test/a.css", "stylesheet"), ("http://example.test/i.png", "image")])
    assert decode_reading(encode_reading(good)).refs == good.refs
    bad = json.loads(encode_reading(good))
    bad["refs"][1][1] = "script"
    with pytest.raises(ValueError):
        decode_reading(json.dumps(bad).encode())


def test_a_pool_whose_pipes_are_past_descriptor_1024_still_reads():
    """A daemon holds many descriptors (sockets, WARC and index files); waiting
    on a worker's pipe must not depend on select(2)'s limit of 1024."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2048:
        pytest.skip(f"the descriptor limit ({hard}) cannot reach past 1024 with room to spare")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 2048), hard))
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        p = PagePool(1, kill_after=20.0, max_bytes=10_000_000)
        try:
            assert p.wait_ready(60)
            (worker,) = p._idle.queue
            assert worker.pipe.sock.fileno() > 1024
            small = article_html("Kurz", ["Der Etat steigt auf 4,5 Milliarden Euro, sagte die Ministerin."]).encode()
            reading = p.read(job(small))
            assert reading.error is None and "4,5 Milliarden" in reading.article.text()  # type: ignore[union-attr]
        finally:
            p.close()
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

"""Capture workers in one process: eight threads capturing at once share one
WARC writer, one signing key and one log (the lazily built components once
raced: two threads each opened a WARC file and one stayed ``.open``)."""

from __future__ import annotations

import sys

import pytest

from archiver import config
from archiver.archive import Archive, SnapshotResult
from conftest import article_html, warc_files


@pytest.fixture
def fast_switching():
    """Switch threads as often as the interpreter allows, so a check-then-set
    race on a lazily built component shows up in a handful of runs."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def _settings(path):
    s = config.load(None, {"ARCHIVER_ALLOW_PRIVATE": "1"})
    s.archive.data_dir = str(path)
    return s


def test_eight_threads_capturing_at_once_leave_one_closed_warc(site, tmp_path, fast_switching):
    urls = [site.page(f"/w{i}", article_html(f"Meldung {i}", [f"Es gab {i} Vorfälle."])) for i in range(8)]
    for run in range(8):
        root = tmp_path / f"a{run}"
        with Archive(_settings(root)) as archive:
            results = list(archive.snapshot_many(urls, workers=8))
        assert all(isinstance(r, SnapshotResult) for r in results), results
        names = [p.name for p in warc_files(root)]
        assert len(names) == 1 and not names[0].endswith(".open"), (run, names)
        assert sorted(r.row.log_index for r in results) == list(range(8))


def test_lazily_built_components_are_built_once_under_contention(tmp_path, fast_switching):
    import threading

    for run in range(30):
        with Archive(_settings(tmp_path / f"b{run}")) as archive:
            gate = threading.Barrier(8)
            seen: list[tuple[int, int, int]] = []

            def grab() -> None:
                gate.wait()
                seen.append((id(archive.writer), id(archive.provenance), id(archive.capturer)))

            threads = [threading.Thread(target=grab) for _ in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert len(set(seen)) == 1, (run, len(set(seen)))

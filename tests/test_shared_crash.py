"""Crash windows of the shared mode, against servers of its own (they are
stopped and restarted here): a snapshot is committed only when its records
are durable in the object store, and an outage of either server fails
captures cleanly, half-commits nothing, and lets them resume."""

from __future__ import annotations

import pytest

from archiver.archive import Archive
from archiver.errors import ArchiverError
from conftest import CLI, _base_env, _server, article_html, shared_env


@pytest.fixture(scope="module")
def own_pg():
    server = _server("pg")
    yield server
    server.close()


@pytest.fixture(scope="module")
def own_s3():
    server = _server("s3")
    yield server
    server.close()


@pytest.fixture
def scli(tmp_path, own_pg, own_s3):
    env = _base_env(tmp_path)
    env.update(shared_env(own_pg, own_s3))
    return CLI(tmp_path / "archive", env, "shared")


def log_size(scli) -> int:
    r = scli("checkpoint", "--json")
    return r.json()["size"] if r.code == 0 else 0


def kinds(scli) -> set[str]:
    return {p["kind"] for p in scli("verify", "--json").json()["problems"]}


def test_object_store_down_fails_cleanly_and_captures_resume(site, scli, own_s3):
    url = site.page("/a", article_html("Lage", ["Es kamen 50.000 Menschen."]))
    assert scli("snapshot", url).code == 0
    own_s3.stop()
    try:
        r = scli("snapshot", url)
        assert r.code == 1 and "Traceback" not in r.err and len(r.err.strip().splitlines()) == 1
        assert "WARC object" in r.err and "archive-test-secret" not in r.err
        assert len(scli("history", "--json", url).json()) == 1 and log_size(scli) == 1
    finally:
        own_s3.start()
    assert scli("snapshot", url).code == 0
    assert len(scli("history", "--json", url).json()) == 2 and log_size(scli) == 2
    assert scli("verify", "--json").json()["ok"]


def test_index_down_fails_cleanly_and_the_same_process_resumes(site, scli, own_pg):
    url = site.page("/b", article_html("Lage", ["Es kamen 50.000 Menschen."]))
    with scli.environ(), Archive(scli.settings()) as archive:
        archive.snapshot(url)
        own_pg.stop()
        try:
            with pytest.raises(ArchiverError) as failed:
                archive.snapshot(url)
            assert "index" in str(failed.value) and "\n" not in str(failed.value)
        finally:
            own_pg.start()
        archive.snapshot(url)  # the pool reconnects
    assert len(scli("history", "--json", url).json()) == 2
    assert scli("verify", "--json").json()["ok"]


def test_store_lost_between_exchange_and_manifest_rolls_back_then_repairs(site, scli, own_s3):
    """The signed metadata record cannot be stored: nothing is committed, the
    log does not grow; the exchange already stored is repaired later."""
    url = site.page("/c", article_html("Lage", ["Es kamen 60.000 Menschen."]))
    assert scli("snapshot", url).code == 0
    with scli.environ(), Archive(scli.settings()) as archive:
        writer = archive.writer
        real = writer.append
        calls = []

        def append(records, seal=None, **kw):
            calls.append(records[0].header("WARC-Type"))
            if len(calls) == 2:  # the metadata record, inside the index transaction
                own_s3.stop()
            return real(records, seal, **kw)

        writer.append = append  # type: ignore[method-assign]
        try:
            with pytest.raises(ArchiverError):
                archive.snapshot(url)
        finally:
            own_s3.start()
    assert len(calls) == 2 and calls[1] == "metadata"
    assert len(scli("history", "--json", url).json()) == 1 and log_size(scli) == 1
    assert "unindexed-capture" in kinds(scli)
    assert scli("repair").code == 0
    assert scli("verify", "--json").json()["ok"] and len(scli("history", "--json", url).json()) == 2


def test_death_after_the_manifest_is_stored_before_commit_is_repaired(site, scli):
    url = site.page("/d", article_html("Lage", ["Es kamen 70.000 Menschen."]))
    with scli.environ(), Archive(scli.settings()) as archive:
        def die(*args, **kwargs):
            raise KeyboardInterrupt  # the process is gone before COMMIT

        archive.index.insert_snapshot = die  # type: ignore[method-assign]
        with pytest.raises(KeyboardInterrupt):
            archive.snapshot(url)
    assert log_size(scli) == 0
    assert scli("history", url).code == 1
    assert "unindexed-capture" in kinds(scli)
    r = scli("repair")
    assert r.code == 0 and "re-indexed 1 signed snapshot(s)" in r.out
    assert scli("verify", "--json").json()["ok"] and log_size(scli) == 1

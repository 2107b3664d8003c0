"""Compaction on a real SeaweedFS + PostgreSQL archive: small per-append WARC
objects merge into large WARC 1.1 files, records byte for byte; a crash at
every step leaves an archive that verifies, and the next run finishes the job;
captures running meanwhile are never lost."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Any

import pytest

from conftest import CLI, _base_env, article_html, shared_env


@pytest.fixture
def shared(tmp_path: Path, pg_server: Any, s3_server: Any) -> CLI:
    return CLI(tmp_path / "archive", {**_base_env(tmp_path), **shared_env(pg_server, s3_server)}, "shared")


def _objects(cli: CLI) -> dict[str, bytes]:
    """Every WARC object's bytes, by name."""
    from store.objects import S3WarcStore, make_client

    with cli.environ():
        store = S3WarcStore(cli.env["ARCHIVER_WARCS"], make_client(cli.env["ARCHIVER_S3_ENDPOINT_URL"]))
        return {n: store.client.get_object(Bucket=store.bucket, Key=store.key(n))["Body"].read() for n in store.names()}


def _members(data: bytes) -> list[bytes]:
    """The decompressed records of a WARC file, one gzip member each."""
    import zlib

    out = []
    while data:
        z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        out.append(z.decompress(data))
        data = z.unused_data
    return out


def _capture_some(site: Any, cli: CLI) -> list[str]:
    urls = [site.page(f"/p{i}", article_html("Lage", [f"Es kamen {i + 1}0.000 Menschen."])) for i in range(3)]
    assert cli("snapshot", *urls).code == 0
    assert cli("snapshot", urls[0]).code == 0  # unchanged: a revisit
    site.page("/p1", article_html("Lage", ["Es kamen 99.000 Menschen."]))
    assert cli("snapshot", urls[1]).code == 0  # an edit
    return urls


def _verify_ok(cli: CLI) -> dict[str, Any]:
    v = cli("verify", "--json")
    assert v.code == 0, v.out
    return v.json()


def test_compact_merges_small_objects_into_one_valid_warc(site, shared, tmp_path):
    from warcio.archiveiterator import ArchiveIterator

    urls = _capture_some(site, shared)
    before = _objects(shared)
    records_before = {hashlib.sha256(m).hexdigest() for data in before.values() for m in _members(data)}
    assert len(before) >= 5  # captures committed together may share an object (group commit)
    r = shared("compact-warcs", "--keep-sources", "0", "--json")
    assert r.code == 0, r.err
    doc = r.json()
    assert doc["objects"] == len(before) and len(doc["files"]) == 1 and doc["skipped"] == []
    after = _objects(shared)
    (name,) = after  # every small object merged and deleted
    assert "-compact-" in name and name == doc["files"][0]["target"]
    members = _members(after[name])
    assert members[0].startswith(b"WARC/1.1\r\nWARC-Type: warcinfo")
    assert b"compacted from" in members[0]
    # Every record of every small object, byte for byte (their warcinfo records too).
    assert records_before <= {hashlib.sha256(m).hexdigest() for m in members}
    with open(tmp_path / "c.warc.gz", "wb") as fh:
        fh.write(after[name])
    with open(tmp_path / "c.warc.gz", "rb") as fh:
        kinds = [rec.rec_type for rec in ArchiveIterator(fh, check_digests=True)]
    assert kinds[0] == "warcinfo" and kinds.count("response") >= 4

    report = _verify_ok(shared)
    assert report["checked"] == 5 and report["files"] == 1
    assert [h["significance"] for h in shared("history", "--json", urls[1]).json()] == ["first", "substantive"]
    assert shared("show", urls[1]).out.count("99.000") == 1  # read by a ranged GET at the new place
    assert shared("diff", "--json", urls[1]).json()["figures"][0]["after_value"] == 99000
    wacz = tmp_path / "a.wacz"
    assert shared("export", urls[0], "--wacz", str(wacz)).code == 0
    assert shared("verify", "--wacz", str(wacz)).code == 0
    assert shared("repair", "--json").json()["scanned"] == []  # the large file is marked settled
    again = shared("compact-warcs", "--keep-sources", "0", "--json").json()
    assert again["objects"] == 0  # a compacted file is never compacted again
    # New captures keep going into small objects beside it.
    site.page("/p2", article_html("Lage", ["Es kamen 31.000 Menschen."]))
    assert shared("snapshot", urls[2]).code == 0
    _verify_ok(shared)


def test_target_size_splits_into_several_files(site, shared):
    _capture_some(site, shared)
    n = len(_objects(shared))
    doc = shared("compact-warcs", "--keep-sources", "0", "--json", "--target-size", "8000").json()
    assert len(doc["files"]) >= 2 and doc["objects"] >= n - 1
    assert all(f["bytes"] >= 8000 for f in doc["files"][:-1])
    _verify_ok(shared)


class _Crash(BaseException):
    """The compacting process dies here (nothing after this line runs)."""


@pytest.mark.parametrize("stage", ["journal", "uploaded", "committed", "deleted-one"])
def test_a_crash_at_every_step_leaves_an_archive_that_verifies(site, shared, stage):
    from archiver.archive import Archive
    from archiver.cli.operations import make_compactor

    urls = _capture_some(site, shared)
    before = set(_objects(shared))

    def die(at: str) -> None:
        if at == stage:
            raise _Crash(at)

    with shared.environ(), Archive(shared.settings()) as archive:
        with pytest.raises(_Crash):
            make_compactor(archive, 10**9, die).run()
    objects = set(_objects(shared))
    if stage in ("uploaded", "committed", "deleted-one"):
        assert len(objects - before) == 1  # the large object is stored
    if stage in ("journal", "uploaded"):
        assert before <= objects  # nothing deleted before the commit
    report = _verify_ok(shared)
    assert report["checked"] == 5
    assert shared("history", "--json", urls[1]).code == 0
    # The next run finishes (or redoes) the job and leaves one large file.
    doc = shared("compact-warcs", "--keep-sources", "0", "--json").json()
    assert len(doc["recovered"]) == 1, doc
    (name,) = _objects(shared)
    assert "-compact-" in name
    _verify_ok(shared)


def test_captures_during_compaction_are_never_lost_and_uncommitted_objects_wait(site, shared):
    """Snapshots commit while compactions run; an object whose capture never
    committed (a crash's leftover) is left for repair, not merged."""
    from archiver.archive import Archive

    urls = [site.page(f"/c{i}", article_html("Lage", [f"Es kamen {i + 1}.000 Menschen."])) for i in range(6)]
    assert shared("snapshot", *urls[:2]).code == 0
    # A capture whose records are stored but whose commit never happened.
    with shared.environ(), Archive(shared.settings()) as archive:
        capture = archive.capturer.capture(urls[5])
        from archiver.capture.records import exchange_records

        records = [r for hop in capture.hops for r in exchange_records(hop, archive.c.new_uuid, None)]
        (leftover,) = {loc.warc_file for loc in archive.append_sealed(records)}

    errors: list[str] = []

    def capture_loop() -> None:
        for round_ in range(3):
            for url in urls[:5]:
                site.page("/" + url.rsplit("/", 1)[1], article_html("Lage", [f"Runde {round_}: es kamen {round_ + 7}.000 Menschen."]))
                r = shared("snapshot", url)
                if r.code != 0:
                    errors.append(r.err)

    runs = []
    # The environment is set once around both threads: each call's own
    # save-and-restore of os.environ would otherwise interleave and leak.
    with shared.environ():
        worker = threading.Thread(target=capture_loop)
        worker.start()
        while worker.is_alive():
            r = shared("compact-warcs", "--keep-sources", "0", "--json")
            assert r.code == 0, r.err
            runs.append(r.json())
        worker.join()
    assert errors == []
    assert sum(d["objects"] for d in runs) > 0
    assert all(leftover in d["skipped"] for d in runs)
    final = shared("compact-warcs", "--keep-sources", "0", "--json").json()
    assert leftover in final["skipped"]
    total = sum(len(shared("history", "--json", u).json()) for u in urls[:5])
    assert total == 2 + 15  # every capture committed during compaction is there
    v = shared("verify", "--json")
    kinds = {p["kind"] for p in v.json()["problems"]}
    assert kinds == {"unindexed-capture"}, v.out  # only the leftover, for `repair`
    assert shared("repair").code == 0
    _verify_ok(shared)
    assert leftover not in shared("compact-warcs", "--keep-sources", "0", "--json").json()["skipped"]
    _verify_ok(shared)


def test_merged_objects_stay_for_running_audits_until_a_later_run(site, shared):
    """By default the merged objects stay an hour (an audit already reading
    them is not disturbed); meanwhile verify passes over them, and a later
    run deletes them once the time is up."""
    _capture_some(site, shared)
    before = set(_objects(shared))
    doc = shared("compact-warcs", "--json").json()
    assert doc["objects"] == len(before)
    assert before < set(_objects(shared))  # sources still there, beside the large file
    assert _verify_ok(shared)["files"] == 1
    assert shared("compact-warcs", "--json").json()["recovered"] == []  # not yet
    assert len(_objects(shared)) == len(before) + 1
    assert shared("compact-warcs", "--keep-sources", "0", "--json").json()["recovered"] == [doc["files"][0]["target"]]
    assert len(_objects(shared)) == 1
    _verify_ok(shared)

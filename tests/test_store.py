"""The archive on disk is readable without the service: `store` never imports
`archiver`, and its reader finds every indexed record."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import REPO, article_html


def test_store_does_not_import_the_service():
    code = ("import sys, store.warc, store.index, store.scan, store.logdb, store.errors;"
            "bad = [m for m in sys.modules if m == 'archiver' or m.startswith('archiver.')];"
            "print(bad); sys.exit(1 if bad else 0)")
    p = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr


def test_store_reads_what_the_service_wrote(site, cli):
    from store.index import Index
    from store.warc import read_member, read_record

    url = site.page("/s", article_html("Lesbar", ["Auch ohne Dienst: 99 Luftballons."]))
    assert cli("snapshot", url).code == 0
    index = Index(cli.data_dir / "index.sqlite3")
    (row,) = index.history(url)
    rec = read_record(cli.data_dir / "warcs", row.warc_file, row.warc_offset)
    assert rec.type == "response" and b"99 Luftballons" in rec.content
    for r in index.records_for(row.id):
        member = read_member(cli.data_dir / "warcs", r.warc_file, r.warc_offset, r.warc_length)
        assert member[:2] == b"\x1f\x8b"  # one gzip member per record
    index.close()


def test_warc_rotation_at_configured_size(site, cli, tmp_path):
    cfg = tmp_path / "small.toml"
    cfg.write_text("[archive]\nwarc_max_size = 2000\n")
    urls = [site.page(f"/r{i}", article_html(f"Teil {i}", [f"Abschnitt {i} " * 50])) for i in range(4)]
    assert cli("--config", str(cfg), "snapshot", *urls, "--workers", "1").code == 0
    files = sorted((cli.data_dir / "warcs").glob("*.warc.gz"))
    assert len(files) >= 3
    import gzip

    for f in files:  # every file starts with its own warcinfo record
        assert gzip.decompress(f.read_bytes()).split(b"\r\n", 2)[1] == b"WARC-Type: warcinfo"
    assert cli("verify").code == 0


def test_closed_writer_refuses_appends_and_leaves_no_open_file(tmp_path):
    import pytest

    from store.errors import StoreError
    from store.warc import WarcFileWriter, WarcInfo

    w = WarcFileWriter(tmp_path, WarcInfo(software="test/1"))
    w.close()
    with pytest.raises(StoreError, match="closed"):
        w.append([])
    assert not list(tmp_path.glob("*.open"))


def _open_index_at_once(path, barrier, results):
    from store.index import Index

    barrier.wait()
    try:
        Index(path).close()
        results.put("ok")
    except Exception as exc:  # the test reports what each process met
        results.put(f"{type(exc).__name__}: {exc}")


def test_processes_opening_a_new_index_together_all_succeed(tmp_path):
    """Switching a new file to WAL needs an exclusive lock that SQLite refuses
    at once, without waiting, to the second of two processes racing for it:
    before the retry, about one round in four failed a process with
    'database is locked' (CI saw it as a failed concurrent `snapshot`)."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    failures = []
    for round_ in range(20):
        path = tmp_path / f"r{round_}" / "index.sqlite3"
        barrier, results = ctx.Barrier(8), ctx.Queue()
        procs = [ctx.Process(target=_open_index_at_once, args=(path, barrier, results)) for _ in range(8)]
        for p in procs:
            p.start()
        outcomes = [results.get(timeout=60) for _ in procs]
        for p in procs:
            p.join(timeout=60)
        failures += [o for o in outcomes if o != "ok"]
    assert failures == []


def test_a_warc_file_id_registered_by_a_rolled_back_transaction_is_not_kept(tmp_path):
    """The writing connection keeps the ids of WARC files it registered (one
    lookup per file, not one per snapshot), but only once the transaction
    that registered them has committed: an id from a rolled-back one would
    name no row, or another file's."""
    import dataclasses

    from store.index import Index, SnapshotRow

    def row(i: int, warc: str) -> SnapshotRow:
        return SnapshotRow(
            id=f"s{i}", url=f"http://127.0.0.1:9/{i}", seq=1, final_url="http://127.0.0.1:9/",
            captured_at="2026-11-29T12:00:00Z", ended_at="2026-11-29T12:00:00Z", status=200, content_type=None,
            payload_sha256="0" * 64, revisit=False, original_id=None, warc_file=warc, warc_offset=i, warc_length=1,
            response_record_id=f"<urn:uuid:{i}>", text_sha256=None, prev_id=None, significance="first",
            diff_json=None, manifest_json=None, manifest_sha256=None, signature=None, key_id=None, log_index=None)

    index = Index(tmp_path / "index.sqlite3")
    with pytest.raises(RuntimeError):
        with index.write() as conn:
            index.insert_snapshot(conn, row(1, "a.warc.gz"), [])
            raise RuntimeError("the round failed")
    with index.write() as conn:  # another file takes the id "a" had in the rolled-back transaction
        index.insert_snapshot(conn, row(2, "b.warc.gz"), [])
    statements: list[str] = []
    index.conn.set_trace_callback(statements.append)
    for i in (3, 4):
        with index.write() as conn:
            index.insert_snapshot(conn, dataclasses.replace(row(i, "a.warc.gz")), [])
    index.conn.set_trace_callback(None)
    assert sum("FROM warc_files" in s for s in statements) == 2  # looked up and registered once, then kept
    names = dict(index.conn.execute(
        "SELECT s.id, w.warc_name FROM snapshots s JOIN warc_files w ON w.file_id = s.file_id").fetchall())
    assert names == {"s2": "b.warc.gz", "s3": "a.warc.gz", "s4": "a.warc.gz"}
    index.close()

"""Start-up repair of a file a crash left ``.open`` reads only the bytes past
its watermark -- the start of the earliest capture that was not committed --
not the whole file; ``repair --full`` still reads it whole."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import textwrap

from conftest import article_html, warc_files

# A capture process that commits some captures, then writes one more capture's
# records (and its signed intent) without committing it, then dies (kill -9).
CHILD = textwrap.dedent("""
    import json, os, signal, sys
    from archiver import config
    from archiver.archive import Archive
    from archiver.capture.records import exchange_records
    urls = sys.argv[1:]
    with_open = Archive(config.load())
    for u in urls[:-1]:
        with_open.snapshot(u)
    capture = with_open.capturer.capture(urls[-1])
    located = with_open.append_sealed(exchange_records(capture.final, with_open.c.new_uuid))
    print(json.dumps({"file": located[0].warc_file, "offset": located[0].offset}), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
""")


def crashed_capture(site, cli, n: int = 6) -> tuple[list[str], dict]:
    urls = [site.page(f"/m{i}", article_html(f"Meldung {i}", [f"Es kamen {100 + i}.000 Menschen."] * 20))
            for i in range(n)]
    p = subprocess.run([sys.executable, "-c", CHILD, *urls], capture_output=True, text=True, timeout=120,
                       env={**os.environ, **cli.env, "ARCHIVER_DATA_DIR": str(cli.data_dir)})
    assert p.returncode == -9, p.stderr
    return urls, json.loads(p.stdout)


def test_repair_reads_a_crashed_file_only_from_its_watermark(site, cli):
    urls, orphan = crashed_capture(site, cli)
    (path,) = warc_files(cli.data_dir)
    assert path.name.endswith(".open")
    r = cli("repair", "--json")
    assert r.code == 0, r.err
    got = r.json()
    assert got["closed"] == [orphan["file"]]
    # the earliest uncommitted capture: everything before it is accounted for
    assert got["scanned_from"] == {orphan["file"]: orphan["offset"]}
    assert len(got["recommitted"]) == 1 and got["foreign"] == []
    assert len(cli("history", "--json", urls[-1]).json()) == 1
    assert cli("verify").code == 0
    full = cli("repair", "--full", "--json").json()
    assert full["scanned_from"] == {} and full["recommitted"] == [] and full["reindexed"] == []


def test_bytes_before_the_watermark_are_not_read_at_start_up_but_are_by_full_and_verify(site, cli):
    """What the bound means: a committed record damaged before the watermark
    is no business of start-up repair (verify reports it; --full reads it)."""
    urls, orphan = crashed_capture(site, cli)
    (path,) = warc_files(cli.data_dir)
    data = bytearray(path.read_bytes())
    with open(path, "r+b") as fh:  # one byte of the first committed capture's compressed response
        pos = 600
        fh.seek(pos)
        fh.write(bytes([data[pos] ^ 0xFF]))
    r = cli("repair", "--json")
    assert r.code == 0 and r.json()["scanned_from"] == {orphan["file"]: orphan["offset"]}
    assert cli("verify").code == 1


def test_a_torn_tail_past_the_watermark_is_set_aside(site, cli):
    urls, orphan = crashed_capture(site, cli)
    (path,) = warc_files(cli.data_dir)
    with open(path, "ab") as fh:
        member = gzip.compress(b"WARC/1.1\r\nWARC-Type: resource\r\n\r\n" + os.urandom(4000))
        fh.write(member[: len(member) // 2])  # a record cut short
    r = cli("repair", "--json")
    assert r.code == 0, r.err
    got = r.json()
    assert len(got["torn"]) == 1 and got["scanned_from"] == {orphan["file"]: orphan["offset"]}
    assert len(got["recommitted"]) == 1
    assert cli("verify").code == 0
    assert not any(p.name.endswith(".open") for p in warc_files(cli.data_dir))


def test_a_watermark_past_the_end_of_a_cut_file_reads_it_whole(site, cli):
    urls, orphan = crashed_capture(site, cli)
    (path,) = warc_files(cli.data_dir)
    with open(path, "r+b") as fh:
        fh.truncate(orphan["offset"] - 1)  # the file lost bytes the index says were there
    r = cli("repair", "--json")
    assert "Traceback" not in r.err
    got = r.json()
    assert got["scanned_from"] == {} and orphan["file"] in got["scanned"]


def test_a_watermark_is_not_trusted_once_the_index_lost_rows_of_its_file(site, cli):
    """An index restored from an older backup: the rows the watermark counted
    are not all there, so the whole file is read and the lost rows restored."""
    import sqlite3

    urls, orphan = crashed_capture(site, cli)
    with sqlite3.connect(cli.data_dir / "index.sqlite3") as db:
        (sid,) = db.execute("SELECT id FROM snapshots WHERE url=?", (urls[1],)).fetchone()
        db.execute("DELETE FROM records WHERE snapshot_id=?", (sid,))
        db.execute("DELETE FROM snapshots WHERE id=?", (sid,))
    got = cli("repair", "--json").json()
    assert got["scanned_from"] == {} and sid in got["reindexed"] and len(got["recommitted"]) == 1
    assert cli("verify").code == 0

"""Start-up repair bounded by what a crash can have left: closed WARC files
whose every capture was committed are marked settled and skipped, until a
byte is added to them or the index loses rows that point into them;
``repair --full`` reads everything."""

from __future__ import annotations

import gzip
import sqlite3

from conftest import article_html, warc_files


def capture_some(site, cli, n: int = 3) -> list[str]:
    urls = [site.page(f"/s{i}", article_html(f"Meldung {i}", [f"Es kamen {100 + i} Menschen."])) for i in range(n)]
    r = cli("snapshot", *urls, "--json")
    assert r.code == 0, r.err
    return urls


def repair(cli, *args: str) -> dict:
    r = cli("repair", "--json", *args)
    assert "Traceback" not in r.err
    return {"code": r.code, **r.json()}


def test_a_clean_close_settles_its_file_and_repair_skips_it(site, cli):
    capture_some(site, cli)
    capture_some(site, cli)  # a second process: a second file
    files = warc_files(cli.data_dir)
    assert len(files) == 2
    got = repair(cli)
    assert got["code"] == 0 and got["scanned"] == [] and got["settled"] == 2
    full = repair(cli, "--full")
    assert sorted(full["scanned"]) == sorted(p.name for p in files) and full["reindexed"] == []
    assert cli("verify").code == 0


def test_bytes_appended_to_a_settled_file_are_read_and_reported_every_time(site, cli):
    capture_some(site, cli)
    (path,) = warc_files(cli.data_dir)
    junk = b"WARC/1.1\r\nWARC-Type: resource\r\nWARC-Record-ID: <urn:uuid:00000000-0000-0000-0000-000000000001>\r\n" \
           b"WARC-Date: 2026-01-01T00:00:00.000000Z\r\nWARC-Target-URI: http://evil.invalid/\r\n" \
           b"Content-Type: text/plain\r\nContent-Length: 4\r\n\r\nevil\r\n\r\n"
    with open(path, "ab") as fh:
        fh.write(gzip.compress(junk))
    for _ in range(2):  # a file with a foreign record never becomes settled
        got = repair(cli)
        assert got["code"] == 1 and got["scanned"] == [path.name]
        assert [f["record_id"] for f in got["foreign"]] == ["<urn:uuid:00000000-0000-0000-0000-000000000001>"]


def test_lost_index_rows_unsettle_the_file_and_repair_restores_them(site, cli):
    urls = capture_some(site, cli)
    (path,) = warc_files(cli.data_dir)
    with sqlite3.connect(cli.data_dir / "index.sqlite3") as db:  # an index restored from an older backup
        (sid,) = db.execute("SELECT id FROM snapshots WHERE url=?", (urls[1],)).fetchone()
        db.execute("DELETE FROM records WHERE snapshot_id=?", (sid,))
        db.execute("DELETE FROM snapshots WHERE id=?", (sid,))
    got = repair(cli)
    assert got["scanned"] == [path.name] and got["reindexed"] == [sid]
    assert repair(cli)["scanned"] == []  # accounted for: settled again
    assert cli("verify").code == 0

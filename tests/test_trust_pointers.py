"""What verify and the readers do with the index's record pointers.

An attacker who can write the index (not ``keys/``) can point a snapshot at
a record that is not its content: a revisit signed before originals were
checked (archives made before d5c6025) names another response as its
original; a row's ``response_record_id`` or location names another record.
verify must report each (kinds ``revisit-original`` and ``response-record``)
and no reader (``show --html``, the article, the web desk, the WACZ export)
may serve another record as the snapshot's content."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from typing import Any

import pytest
import requests

from conftest import article_html
from test_snapshot import capture_with_a_moved_digest
from test_verify import verify


def _old_capture_trusting_the_index(monkeypatch: pytest.MonkeyPatch) -> None:
    """The capture as it was before d5c6025: a revisit's original as the index proposes it, unread."""
    from archiver.capture import originals

    monkeypatch.setattr(originals.CheckedOriginals, "_checked", lambda self, rec, payload: rec)


def _signed_revisit_of_other_content(site: Any, cli: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[str, dict, dict]:
    """trust5's attack on the old capture: an old row given the current page's
    digest; the next capture signs a revisit of the old response; the row is
    put back. Returns the URL and the two first snapshots' history items."""

    def old_capture(url: str) -> Any:
        with monkeypatch.context() as m:
            _old_capture_trusting_the_index(m)
            return cli("snapshot", url)

    return capture_with_a_moved_digest(site, cli, old_capture)


@pytest.mark.parametrize("tasks", ["as planned", "one file a task"])
def test_verify_reports_a_signed_revisit_whose_original_holds_other_content(site, bcli, monkeypatch, tasks):
    """(One file a task: on the shared configuration a capture's records and
    its manifest are separate objects, so they meet only in the main process.)"""
    from archiver.audit import verify as audit_verify

    cli = bcli
    if tasks == "one file a task":
        monkeypatch.setattr(audit_verify, "TASK_FILES", 1)
    url, _first, second = _signed_revisit_of_other_content(site, cli, monkeypatch)
    third = cli("history", url, "--json").json()[-1]
    assert third["revisit"]
    code, report = verify(cli)
    assert code == 1
    kinds = {(p["snapshot"], p["kind"]) for p in report["problems"]}
    assert (third["id"], "revisit-original") in kinds, report["problems"]
    assert all(p["snapshot"] == third["id"] for p in report["problems"]), report["problems"]
    # The same report with the native parts left out (the real CLI as a process).
    pure = subprocess.run([sys.executable, "-c", "import sys; from archiver.cli.main import main; sys.exit(main(sys.argv[1:]))", "--data-dir", str(cli.data_dir), "verify", "--json"],
                          capture_output=True, text=True, env={**os.environ, **cli.env, "ARCHIVER_PURE_PYTHON": "1"})
    assert pure.returncode == 1 and json.loads(pure.stdout)["problems"] == report["problems"], pure.stderr
    # Readers refuse to serve the old response as this snapshot's page, in one line.
    r = cli("show", url, "--html")
    assert r.code == 1 and "50.000" not in r.out and r.err.count("\n") == 1, (r.out, r.err)
    assert "Traceback" not in r.err
    # The snapshots before it are served as ever.
    assert "80.000" in cli("show", url, "--html", "--at", second["id"]).out
    # Nor the web desk (the real server process).
    from archiver.web.replay import archived_url
    from web_support import Server

    server = Server(cli)
    try:
        page = requests.get(server.url(archived_url(third["id"], url)), timeout=30)
        assert page.status_code >= 400 and "50.000" not in page.text, page.text[:300]
        assert "80.000" in requests.get(server.url(archived_url(second["id"], url)), timeout=30).text
    finally:
        server.stop()
    # No WACZ replays it either: the export refuses, in one line.
    r = cli("export", url, "--wacz", str(cli.data_dir.parent / "out.wacz"))
    assert r.code == 1 and "does not hold the payload" in r.err and r.err.count("\n") == 1, r.err


@pytest.mark.parametrize("first_file_alone", [False, True])
def test_an_honest_revisit_verifies_and_is_served(site, bcli, monkeypatch, first_file_alone):
    """Also when the original's records and its manifest are scanned in two
    tasks (shared mode: separate objects; here the first file a task of its
    own) while the revisit is matched inside its task: the original's payload
    and the revisit's claim then meet in the main process."""
    from archiver.audit import verify as audit_verify

    if first_file_alone:
        real = audit_verify.Auditor._plan

        def plan(self: Any, conn: Any, paths: Any, sizes: Any) -> Any:
            pieces = [p for task in real(self, conn, paths, sizes) for p in task.pieces]
            return [audit_verify._Task(pieces[:1], False), audit_verify._Task(pieces[1:], False)]

        monkeypatch.setattr(audit_verify.Auditor, "_plan", plan)
    url = site.page("/ruhig", article_html("Ruhig", ["Es kamen 70.000 Menschen."]))
    for _ in range(3):
        assert bcli("snapshot", url).code == 0
    assert [h["revisit"] for h in bcli("history", url, "--json").json()] == [False, True, True]
    code, report = verify(bcli)
    assert code == 0, report["problems"]
    assert "70.000" in bcli("show", url, "--html").out
    wacz = bcli.data_dir.parent / "out.wacz"
    assert bcli("export", url, "--wacz", str(wacz)).code == 0 and bcli("verify", "--wacz", str(wacz)).code == 0


def _forge(cli: Any, sql: str, args: tuple[Any, ...]) -> None:
    with sqlite3.connect(cli.data_dir / "index.sqlite3") as db:
        db.execute(sql, args)


@pytest.mark.parametrize("how", ["record id", "location"])
def test_a_row_pointing_at_another_snapshots_response_is_reported_and_not_served(site, cli, how):
    url = site.page("/a", article_html("A", ["Es kamen 1.000 Menschen."]))
    other = site.page("/b", article_html("B", ["Vertraulich: 120 Stellen fallen weg."]))
    assert cli("snapshot", url).code == 0 and cli("snapshot", other).code == 0
    mine = cli("history", url, "--json").json()[0]["id"]
    theirs = cli("history", other, "--json").json()[0]["id"]
    cols = ("response_record_id",) if how == "record id" else ("file_id", "warc_file", "warc_offset", "warc_length")
    _forge(cli, f"UPDATE snapshots SET ({', '.join(cols)}) = (SELECT {', '.join(cols)} FROM snapshots WHERE id=?) "
                "WHERE id=?", (theirs, mine))
    code, report = verify(cli)
    assert code == 1 and (mine, "response-record") in {(p["snapshot"], p["kind"]) for p in report["problems"]}
    r = cli("show", url, "--html")
    assert "120 Stellen" not in r.out
    if how == "location":  # what the readers follow: refused, one line
        assert r.code == 1 and r.err.count("\n") == 1 and "Traceback" not in r.err, r.err
    # The next capture diffs against the text this key signed, not the other page's, and commits.
    site.page("/a", article_html("A", ["Es kamen 2.000 Menschen."]))
    r = cli("snapshot", url, "--json")
    assert r.code == 0 and r.json()["significance"] == "substantive", r.err


def test_a_requisite_row_pointing_at_another_record_is_not_served_nor_exported(site, cli):
    """The index lists a snapshot's requisites; a row moved onto another
    page's response (its location and digest with it) was served by the web
    desk as this snapshot's stylesheet and put in its WACZ."""
    from archiver.web.replay import archived_url
    from web_support import Server

    site.page("/s.css", "body { color: green }", content_type="text/css")
    url = site.page("/mit-stil", '<html><head><link rel="stylesheet" href="/s.css"></head>'
                                 "<body><article><p>Es kamen 3.000 Menschen.</p></article></body></html>")
    other = site.page("/b", article_html("B", ["Vertraulich: 120 Stellen fallen weg."]))
    assert cli("snapshot", url).code == 0 and cli("snapshot", other).code == 0
    mine = cli("history", url, "--json").json()[0]["id"]
    theirs = cli("history", other, "--json").json()[0]["id"]
    css = site.url("/s.css")
    server = Server(cli)
    try:
        assert "green" in requests.get(server.url(archived_url(mine, css)), timeout=30).text
        moved = ("file_id", "warc_file", "warc_offset", "warc_length", "sha256", "digest")
        _forge(cli, f"UPDATE records SET ({', '.join(moved)}) = (SELECT {', '.join(moved)} FROM records "
                    "WHERE snapshot_id=? AND type='response') WHERE snapshot_id=? AND target_uri=?", (theirs, mine, css))
        page = requests.get(server.url(archived_url(mine, css)), timeout=30)
        assert page.status_code == 404 and "120 Stellen" not in page.text, page.text[:200]
    finally:
        server.stop()
    r = cli("export", url, "--wacz", str(cli.data_dir.parent / "out.wacz"))
    assert r.code == 1 and "not one its signed manifest names" in r.err and r.err.count("\n") == 1, r.err
    code, report = verify(cli)
    assert code == 1 and (mine, "index-mismatch") in {(p["snapshot"], p["kind"]) for p in report["problems"]}


def test_an_original_the_index_points_at_a_gzip_bomb_is_refused_unread(tmp_path):
    """The index's word for where a revisit's original is -- file, offset,
    length -- can name any bytes: a member inflating to a gigabyte was
    inflated whole (zlib.decompress) before its payload was compared. Now it
    is refused past MAX_RECORD_BYTES inflated, and a length larger than any
    record archiver writes is not read at all."""
    import gzip

    from archiver.capture.originals import NotTheOriginal, check_original
    from store.rowforms import RecordRow
    from store.warc import LocalWarcStore
    from store.warcreader import MAX_RECORD_BYTES

    bomb = gzip.compress(b"WARC/1.1\r\n" + b"\0" * (MAX_RECORD_BYTES + 1), compresslevel=9)
    (tmp_path / "planted.warc.gz").write_bytes(bomb)
    row = RecordRow(record_id="<urn:uuid:x>", snapshot_id="s", hop=0, type="response", target_uri="http://ex.org/",
                    date="2026-01-01T00:00:00Z", warc_file="planted.warc.gz", warc_offset=0, warc_length=len(bomb),
                    sha256="0" * 64, payload_digest=None)
    store = LocalWarcStore(tmp_path)
    with pytest.raises(NotTheOriginal, match=f"beyond {MAX_RECORD_BYTES} bytes"):
        check_original(store, row, "0" * 64)
    with pytest.raises(NotTheOriginal, match="more than any record archiver writes"):
        check_original(store, RecordRow(**{**row.__dict__, "warc_length": MAX_RECORD_BYTES + 1}), "0" * 64)


def _show_with_metadata_row_at(bcli: Any, url: str, planted: bytes) -> tuple[int, str, str, float]:
    """Capture ``url``, append the ``planted`` record to a WARC file, point
    the snapshot's metadata record row at it, and run ``show`` in a process
    of its own: exit code, stdout, stderr, peak RSS in MiB."""
    from test_hostile_store import peak_rss_err

    assert bcli("snapshot", url).code == 0
    sid = bcli("history", url, "--json").json()[0]["id"]
    with bcli.warcs() as paths:
        name, offset = paths[0].name, paths[0].stat().st_size
        with paths[0].open("ab") as fh:
            fh.write(planted)
    db = bcli.db()
    db.execute("UPDATE records SET file_id=(SELECT file_id FROM warc_files WHERE warc_name=?), warc_offset=?, "
               "warc_length=? WHERE snapshot_id=? AND type='metadata'", (name, offset, len(planted), sid))
    db.commit()
    db.close()
    return peak_rss_err(["--data-dir", str(bcli.data_dir), "show", url, "--text"], {**os.environ, **bcli.env})


def test_a_manifest_record_the_index_points_at_a_gzip_bomb_costs_one_line(site, bcli):
    """Every reader finds a snapshot's manifest through the records rows of
    type metadata; one pointed at a 1 GiB gzip bomb (1 MB stored) was
    inflated whole by warcio before its manifest was looked for (over 1 GiB
    of memory per read, on the web desk per request). Now a stored record is
    inflated only up to MAX_RECORD_BYTES, and the read fails with one line."""
    from test_trust_wacz import bomb

    url = site.page("/a", article_html("A", ["Es kamen 1.000 Menschen."]))
    planted = bomb("<urn:uuid:0f0f0f0f-0000-4000-8000-00000000b0b0>", url)
    code, out, err, rss = _show_with_metadata_row_at(bcli, url, planted)
    print(f"show of a snapshot whose manifest record row points at a gzip bomb: exit {code}, peak RSS {rss:.0f} MiB")
    assert code == 1 and "1.000 Menschen" not in out
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert rss < 400, f"peak RSS {rss:.0f} MiB"


def test_a_planted_record_whose_body_decodes_to_gigabytes_is_not_decoded_unchecked(site, bcli):
    """A 4 KB response record whose HTTP body is gzip (Content-Encoding) of
    a gigabyte of zeros, named by the snapshot's metadata row: every read
    decoded its body (2 GiB peak) before looking at what it was. Now a
    record's content is decoded only when a reader asks for it, after its
    stored payload hashed to the signed digest."""
    import zlib

    from test_trust_repair import member

    url = site.page("/a", article_html("A", ["Es kamen 1.000 Menschen."]))
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    body = b"".join([*(z.compress(b"\0" * (1 << 20)) for _ in range(1024)), z.flush()])
    http = (b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n"
            % len(body) + body)
    planted, _ = member({"WARC-Type": "response", "WARC-Record-ID": "<urn:uuid:0f0f0f0f-0000-4000-8000-00000000b0b1>",
                         "WARC-Date": "2026-11-29T12:00:00.000000Z", "WARC-Target-URI": url,
                         "Content-Type": "application/http; msgtype=response"}, http)
    code, out, err, rss = _show_with_metadata_row_at(bcli, url, planted)
    print(f"show of a snapshot whose manifest row points at a {len(planted)}-byte record decoding to 1 GiB: "
          f"exit {code}, peak RSS {rss:.0f} MiB")
    assert code == 1 and "1.000 Menschen" not in out
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert rss < 400, f"peak RSS {rss:.0f} MiB"

"""An unchanged page is not read again (issue 12, item 3).

A re-capture whose payload and Content-Type equal the URL's previous
snapshot's, read by the same reader (extraction code, libraries, limits,
language hint), takes that snapshot's stored text: its signed manifest names
exactly the text digest a fresh extraction gives. Anything that could change
the reading -- settings, code, the Content-Type, a text that no longer hashes
to its digest -- makes it extract again. Real loopback server, real CLI."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import archiver.changes.extract as extract
import archiver.changes.readerid as readerid
import archiver.pages as pages
from archiver.changes.extract import ExtractLimits, extract_article
from conftest import article_html

PARAS = ["Die Landesregierung hat am Dienstag 120 neue Stellen angekündigt.",
         "Der Etat steigt damit auf 4,5 Milliarden Euro, wie die Ministerin sagte."]


@pytest.fixture
def readings(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The URL of every page whose article is extracted (in this process: the CLI reads pages inline)."""
    seen: list[str] = []
    real = pages.extract_parsed

    def counting(page: Any, **kw: Any) -> Any:
        seen.append(kw["url"])
        return real(page, **kw)

    monkeypatch.setattr(pages, "extract_parsed", counting)
    return seen


def snapshot(cli: Any, url: str, *extra: str) -> dict[str, Any]:
    r = cli(*extra, "snapshot", url, "--json")
    assert r.code == 0, r.err
    return r.lines()[0]


def rows(cli: Any, url: str) -> list[tuple[Any, ...]]:
    db = cli.db()
    try:
        return [tuple(r) for r in db.execute(
            "SELECT text_sha256, reader, revisit, payload_sha256 FROM snapshots WHERE url=? ORDER BY seq", (url,))]
    finally:
        db.close()


def test_an_unchanged_recapture_signs_the_text_a_fresh_extraction_gives_without_extracting(site, bcli, readings):
    cli = bcli  # embedded and shared (PostgreSQL + S3) alike
    html = article_html("Stellen für Lehrkräfte", PARAS)
    url = site.page("/artikel", html)
    first = snapshot(cli, url)
    assert readings == [url]
    second = snapshot(cli, url)
    assert readings == [url], "the unchanged page was extracted again"
    assert second["significance"] == "none"
    (t1, reader1, revisit1, p1), (t2, reader2, revisit2, p2) = rows(cli, url)
    assert not revisit1 and revisit2 and p1 == p2  # the second capture is a revisit record
    assert reader1 and reader2 == reader1 and t2 == t1

    # What extraction, forced, reads from the same bytes the same way.
    settings = cli.settings()
    fresh = extract_article(html.encode("utf-8"), content_type="text/html; charset=utf-8", url=url,
                            language_hint=settings.diff.default_language or None, method="trafilatura",
                            limits=ExtractLimits(settings.diff.extract_max_elements, settings.diff.extract_max_depth,
                                                 settings.diff.extract_max_text, settings.diff.extract_timeout))
    fresh_sha = hashlib.sha256(fresh.text().encode("utf-8")).hexdigest()
    assert fresh.method == "trafilatura" and t2 == fresh_sha
    for snap in (first, second):  # the signed manifests, as `show --provenance` reads them from the WARC
        shown = cli("show", url, "--provenance", "--at", snap["id"])
        assert shown.code == 0, shown.err
        assert shown.json()["manifest"]["text_sha256"] == fresh_sha
    assert cli("verify", "--json").json()["ok"]


def test_changed_settings_code_or_content_type_read_the_page_again(site, cli, readings, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch):
    url = site.page("/artikel", article_html("Stellen", PARAS))
    snapshot(cli, url)
    snapshot(cli, url)
    assert len(readings) == 1

    cfg = tmp_path / "archiver.toml"
    cfg.write_text("[diff]\nextract_max_text = 1000000\n", encoding="utf-8")
    snapshot(cli, url, "--config", str(cfg))  # other limits: another reading
    assert len(readings) == 2
    snapshot(cli, url, "--config", str(cfg))  # and that reading is then kept
    assert len(readings) == 2
    snapshot(cli, url)  # back to the defaults: the previous snapshot was read the other way
    assert len(readings) == 3

    cfg.write_text('[diff]\ndefault_language = "en"\n', encoding="utf-8")
    snapshot(cli, url, "--config", str(cfg))  # another language hint
    assert len(readings) == 4

    code = readerid._CODE
    monkeypatch.setattr(readerid, "_CODE", "0" * 64)  # the extraction code changed
    extract.reader_id.cache_clear()
    snapshot(cli, url, "--config", str(cfg))
    assert len(readings) == 5
    snapshot(cli, url, "--config", str(cfg))
    assert len(readings) == 5
    monkeypatch.setattr(readerid, "_CODE", code)
    extract.reader_id.cache_clear()

    # The same bytes under another charset are another text.
    site.page("/artikel", article_html("Stellen", PARAS), content_type="text/html; charset=windows-1252")
    snapshot(cli, url)
    assert len(readings) == 6
    shas = [r[0] for r in rows(cli, url)]
    assert shas[-1] != shas[-2]  # the page read as cp1252 is another text: ü came out as two characters
    snapshot(cli, url)
    assert len(readings) == 6


def test_a_stored_text_that_no_longer_matches_its_digest_is_not_reused(site, cli, readings):
    url = site.page("/artikel", article_html("Stellen", PARAS))
    snapshot(cli, url)
    (sha, *_), = rows(cli, url)
    db = cli.db()
    try:  # another article stored under the first one's digest
        from store.compact import pack
        db.execute("UPDATE texts SET article_z=?, article_json='' WHERE sha256=?",
                   (pack('{"title": "Falsch", "blocks": ["Ein anderer Text."], "language": "de", "method": '
                         '"trafilatura"}'), sha))
        db.commit()
    finally:
        db.close()
    snapshot(cli, url)
    assert len(readings) == 2
    assert rows(cli, url)[1][0] == sha  # read again: the true text


def test_a_reading_cut_short_by_the_time_limit_is_never_reused() -> None:
    page = b"<html><body><article><h1>T</h1><p>Ein Satz mit Inhalt.</p><p>Noch einer.</p></article></body></html>"
    ticks = iter(range(1000))
    cut = extract_article(page, limits=ExtractLimits(timeout=2.5), clock=lambda: float(next(ticks)))
    assert not extract.deterministic(cut)
    assert extract.deterministic(extract_article(page))


def test_a_snapshot_without_a_recorded_reader_is_read_again_once(site, cli, readings):
    url = site.page("/artikel", article_html("Stellen", PARAS))
    snapshot(cli, url)
    db = cli.db()
    try:  # as every snapshot stored before readers were recorded (schema 12)
        db.execute("UPDATE snapshots SET reader=NULL")
        db.commit()
    finally:
        db.close()
    snapshot(cli, url)
    snapshot(cli, url)
    assert len(readings) == 2
    assert [r[1] is not None for r in rows(cli, url)] == [False, True, True]


FORGED = '{"title": "Falsch", "blocks": ["Es gab 9 Anfragen."], "language": "de", "method": "trafilatura"}'


def forge_text(cli: Any, url: str, *, row_too: bool) -> str:
    """What someone who can write the index but cannot read keys/ can do: store
    another article, under the first snapshot's digest or (``row_too``) under
    its own, with the snapshot row pointing at it. Returns the forged digest."""
    from archiver.changes.extract import Article
    from store.compact import pack

    forged = hashlib.sha256(Article.from_json(json.loads(FORGED)).text().encode()).hexdigest()
    (sha, *_), = rows(cli, url)
    db = cli.db()
    try:
        if row_too:
            db.execute("INSERT INTO texts (sha256, language, article_z, article_json) VALUES (?, 'de', ?, '')",
                       (forged, pack(FORGED)))
            db.execute("UPDATE snapshots SET text_sha256=? WHERE url=?", (forged, url))
        else:
            db.execute("UPDATE texts SET article_z=?, article_json='' WHERE sha256=?", (pack(FORGED), sha))
        db.commit()
    finally:
        db.close()
    return forged if row_too else sha


def test_a_forged_row_and_text_are_read_again_not_signed(site, cli, readings):
    """The row's digest and the text changed together still hash to each other;
    only the first snapshot's signed manifest tells them apart."""
    url = site.page("/artikel", article_html("Stellen", PARAS))
    first = snapshot(cli, url)
    true_sha = rows(cli, url)[0][0]
    forged = forge_text(cli, url, row_too=True)
    second = snapshot(cli, url)
    assert len(readings) == 2  # read again
    assert rows(cli, url)[1][0] == true_sha != forged
    shown = cli("show", url, "--at", second["id"], "--json")
    assert shown.code == 0, shown.err
    assert shown.lines()[0]["manifest"]["text_sha256"] == true_sha
    assert first["id"] != second["id"]


def conditional_site(site: Any, body: bytes) -> tuple[str, list[str | None]]:
    """A page with an ETag that answers 304 to it; records each request's If-None-Match."""
    asked: list[str | None] = []

    def handler(h: Any) -> None:
        asked.append(h.headers.get("If-None-Match"))
        if h.headers.get("If-None-Match") == '"v1"':
            h.send_response(304)
            h.send_header("ETag", '"v1"')
            h.end_headers()
            return
        h.send_response(200)
        h.send_header("Content-Type", "text/html; charset=utf-8")
        h.send_header("ETag", '"v1"')
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    site.routes["/cond"] = handler
    return site.url("/cond"), asked


@pytest.mark.parametrize("row_too", [False, True], ids=["text", "row-and-text"])
def test_a_304_never_signs_a_forged_previous_text(site, cli, row_too):
    """A 304's content is the previous snapshot's; the archive signs it again
    only as its own key signed it. With the index forged, the capture fails
    with one line and records nothing, and the daemon's next attempt asks
    unconditionally -- a fresh capture of the true page."""
    from archiver.archive import Archive
    from archiver.config import load
    from archiver.daemon.attempts import capture_source
    from archiver.daemon.sources import Sources
    from archiver.errors import CaptureError

    url, asked = conditional_site(site, article_html("Bedingt", ["Es gab 5 Anfragen."]).encode())
    settings = load(environ={"ARCHIVER_DATA_DIR": str(cli.data_dir), "ARCHIVER_ALLOW_PRIVATE": "1"})
    with Archive(settings) as archive:
        first = archive.snapshot(url)
        assert archive.vouched(first.row) is not None
        true_sha = first.row.text_sha256
        forge_text(cli, url, row_too=row_too)
        last = archive.index.last_snapshot(url)
        assert last is not None and archive.vouched(last) is None
        with pytest.raises(CaptureError, match="cannot vouch"):
            archive.snapshot(url, headers={"If-None-Match": '"v1"'})
        assert len(archive.index.history(url)) == 1  # nothing recorded
        sources = Sources(archive.index, archive.c.clock)
        sources.enrol([url], origin="test", notify=None)
        enrolled = sources.get(url)
        assert enrolled is not None
        source = replace(enrolled, etag='"v1"', last_snapshot_id=first.row.id)
        outcome = capture_source(archive, source)
        assert outcome.error is None and outcome.status == 200
        assert asked[-1] is None  # unconditional
        newest = archive.index.last_snapshot(url)
        assert newest is not None and newest.text_sha256 == true_sha
        assert archive.manifest(newest)["text_sha256"] == true_sha  # type: ignore[index]


def test_a_forged_stored_text_is_neither_shown_nor_diffed_against(site, cli, readings):
    """The next capture signs its diff's significance: a stored text that no
    longer hashes to its digest must not make an unchanged page look edited."""
    url = site.page("/artikel", article_html("Stellen", PARAS))
    first = snapshot(cli, url)
    forge_text(cli, url, row_too=False)
    second = snapshot(cli, url)
    assert second["significance"] == "none"
    shown = cli("show", url, "--at", first["id"], "--text")
    assert shown.code == 0, shown.err
    assert "120 neue Stellen" in shown.out and "9 Anfragen" not in shown.out


def test_the_memory_of_what_this_process_signed_is_bounded() -> None:
    from archiver.vouching import SignedHere

    here = SignedHere(cap=2)
    for i in range(3):
        here.note(f"s{i}", "a" * 64, None if i else "b" * 64)
    assert here.get("s0") is None  # the oldest forgotten: read back from its WARC record instead
    assert here.get("s1") == SignedHere.digest("a" * 64, None) != SignedHere.digest("a" * 64, "b" * 64)


def test_a_row_forged_with_its_text_does_not_decide_the_next_signed_significance(site, cli, readings):
    """The row's digest changed with the text: only the signed manifest tells.
    The diff a capture signs compares against what this archive's key signed
    (here read again from the record), so an unchanged page stays 'none' and
    no edit is invented -- or hidden."""
    url = site.page("/artikel", article_html("Stellen", PARAS))
    snapshot(cli, url)
    forge_text(cli, url, row_too=True)
    assert snapshot(cli, url)["significance"] == "none"


def test_a_previous_page_read_again_is_read_as_its_signed_record_says(site, cli, readings):
    """As above, and the row's content_type changed too (nothing signs it): the
    page read again from its record is read as that record's type and charset
    says -- read as latin-1, "angekündigt" became "angekÃ¼ndigt" and the
    unchanged page was signed as edited."""
    url = site.page("/artikel", article_html("Stellen", PARAS))
    snapshot(cli, url)
    forge_text(cli, url, row_too=True)
    db = cli.db()
    db.execute("UPDATE snapshots SET content_type='text/html; charset=latin-1' WHERE url=?", (url,))
    db.commit()
    db.close()
    assert snapshot(cli, url)["significance"] == "none"


def test_a_snapshot_read_back_and_checked_once_is_remembered_and_a_forged_row_still_refused(site, cli):
    """A process that did not sign a snapshot itself (a restarted daemon)
    reads its manifest back once; a 304 asks up to three times (the daemon,
    the reading, the diff), so the checked answer is remembered -- as what
    the key signed, which a row changed afterwards no longer matches."""
    from archiver.archive import Archive
    from archiver.config import load

    url = site.page("/artikel", article_html("Stellen", PARAS))
    first = snapshot(cli, url)
    settings = load(environ={"ARCHIVER_DATA_DIR": str(cli.data_dir), "ARCHIVER_ALLOW_PRIVATE": "1"})
    with Archive(settings) as archive:
        row = archive.index.last_snapshot(url)
        assert row is not None and row.id == first["id"]
        assert archive.signed_here.get(row.id) is None  # another process signed it
        assert archive.vouched(row) is not None  # read back from its record and checked
        assert archive.signed_here.get(row.id) == archive.signed_here.digest(row.payload_sha256, row.text_sha256)
        forge_text(cli, url, row_too=True)
        forged = archive.index.last_snapshot(url)
        assert forged is not None and forged.text_sha256 != row.text_sha256
        assert archive.vouched(forged) is None
    with Archive(settings) as archive:  # a forged row read back cold is refused and not remembered
        forged = archive.index.last_snapshot(url)
        assert forged is not None and archive.vouched(forged) is None
        assert archive.signed_here.get(forged.id) is None

"""An unchanged page is not read again (issue 12, item 3).

A re-capture whose payload and Content-Type equal the URL's previous
snapshot's, read by the same reader (extraction code, libraries, limits,
language hint), takes that snapshot's stored text: its signed manifest names
exactly the text digest a fresh extraction gives. Anything that could change
the reading -- settings, code, the Content-Type, a text that no longer hashes
to its digest -- makes it extract again. Real loopback server, real CLI."""

from __future__ import annotations

import hashlib
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

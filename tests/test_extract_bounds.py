"""Bounded extraction (issue 9, item 6) and decoding with invalid bytes (item 11).

A hostile or broken page must cost bounded time and memory: the document is
cut at a number of elements, a depth and a text size, the cut is recorded in
the article's notes, and a deadline decides between the full reading, the
cheap block reading, or no text at all (then the payload digest decides)."""

from __future__ import annotations

import itertools
import json
import sqlite3
from pathlib import Path

import pytest

from archiver.changes.extract import ExtractLimits, decode_html, extract_article
from archiver.errors import ExtractError
from store.compact import unpack

MANY_P = b"<html><body>" + b"<p>a</p>" * 2_000_000 + b"</body></html>"  # 16 MB, two million elements


def test_two_million_paragraphs_are_cut_at_the_element_cap() -> None:
    art = extract_article(MANY_P, limits=ExtractLimits(max_elements=3000))
    assert art.notes == ("extraction: truncated at 3000 elements",)
    assert 2900 < len(art.blocks) <= 3000 and set(art.blocks) == {"a"}


def test_deep_nesting_is_cut_at_the_depth_cap() -> None:
    body = b"<html><body><p>top</p>" + b"<div>x" * 5000 + b"</body></html>"
    art = extract_article(body, limits=ExtractLimits(max_depth=50))
    assert "extraction: truncated at depth 50" in art.notes
    assert "top" in art.text()


@pytest.mark.parametrize("depth,cut", [(49, False), (50, True)])
def test_the_depth_cap_falls_exactly_where_the_walk_puts_it(depth: int, cut: bool) -> None:
    # html and body are levels 1-2; `depth` divs below them reach level depth + 2
    body = b"<html><body><p>top</p>" + b"<div>x" * (depth - 2) + b"<span>deepest</span>" + b"</body></html>"
    art = extract_article(body, limits=ExtractLimits(max_depth=50))
    assert ("extraction: truncated at depth 50" in art.notes) is cut
    assert ("deepest" in art.text()) is not cut


def test_long_markup_with_short_text_is_not_cut() -> None:
    # 15,000 characters of markup, under 2,000 of text: the text cap is about text
    body = (b"<html><body><article><h1>Titel</h1>" + b'<p class="a-very-long-class-name-here">Satz.</p>' * 300
            + b"</article></body></html>")
    assert 5_000 < len(body) < 20_000
    art = extract_article(body, limits=ExtractLimits(max_text=5_000))
    assert art.notes == () and art.text().count("Satz.") == 300


def test_one_huge_text_node_is_cut_at_the_text_cap() -> None:
    body = b"<html><body><p>" + b"word " * 400_000 + b"</p><p>after</p></body></html>"
    art = extract_article(body, limits=ExtractLimits(max_text=10_000))
    assert art.notes == ("extraction: truncated at 40000 characters of markup",
                         "extraction: truncated at 10000 characters of text")
    assert 0 < len(art.text()) <= 10_000 and "after" not in art.text()


def test_a_page_within_the_limits_has_no_notes() -> None:
    art = extract_article(b"<html><body><article><h1>T</h1><p>Ein Satz.</p></article></body></html>")
    assert art.notes == () and "notes" not in art.to_json()


def ticking(step: float):
    """A clock that advances ``step`` seconds every time it is read."""
    counter = itertools.count()
    return lambda: next(counter) * step


def test_deadline_before_any_text_means_no_text() -> None:
    page = b"<html><body>" + b"<p>a</p>" * 5000 + b"</body></html>"
    with pytest.raises(ExtractError, match="time limit"):
        extract_article(page, limits=ExtractLimits(timeout=0.5), clock=ticking(1.0))


def test_deadline_after_the_cheap_reading_skips_trafilatura() -> None:
    page = b"<html><body><article><h1>T</h1><p>Ein Satz mit Inhalt.</p><p>Noch einer.</p></article></body></html>"
    art = extract_article(page, limits=ExtractLimits(timeout=2.5), clock=ticking(1.0))
    assert art.method == "blocks" and art.blocks == ("Ein Satz mit Inhalt.", "Noch einer.")
    assert art.notes == ("extraction: time limit reached; block reading used",)


def test_snapshot_of_the_element_bomb_is_bounded_and_noted(site, cli, tmp_path: Path) -> None:
    cfg = tmp_path / "archiver.toml"
    cfg.write_text("[diff]\nextract_max_elements = 2000\n", encoding="utf-8")
    url = site.page("/bomb", MANY_P, content_type="text/html")
    for expected in ("first", "none"):
        r = cli("--config", str(cfg), "snapshot", url, "--json")
        assert r.code == 0, r.err
        assert r.lines()[0]["significance"] == expected
    conn = sqlite3.connect(cli.data_dir / "index.sqlite3")
    try:
        (row,) = conn.execute("SELECT DISTINCT t.article_z FROM snapshots s JOIN texts t ON t.sha256=s.text_sha256").fetchall()
    finally:
        conn.close()
    assert json.loads(unpack(row[0]))["notes"] == ["extraction: truncated at 2000 elements"]
    shown = cli("--config", str(cfg), "show", url, "--json")
    assert shown.code == 0, shown.err
    assert shown.json()["extraction"] == {"method": "trafilatura", "notes": ["extraction: truncated at 2000 elements"]}


@pytest.mark.parametrize("where", ["footer", "title", "middle"])
def test_one_invalid_byte_keeps_a_utf8_page_utf8(where: str) -> None:
    page = ("<html><head><title>Größe</title></head><body><p>Müller sagt: „Straße“</p>"
            "<div>Impressum</div></body></html>").encode("utf-8")
    spot = {"footer": b"Impressum", "title": b"Gr", "middle": b"sagt"}[where]
    broken = page.replace(spot, spot + b"\xff", 1)
    for ctype in (None, "text/html; charset=utf-8"):
        text = decode_html(broken, ctype)
        assert "Müller sagt" in text.replace("\ufffd", "") and "„Straße“" in text
        assert text.count("\ufffd") == 1


def test_latin1_page_sent_as_utf8_still_reads_as_cp1252() -> None:
    body = "<html><body><p>Die Pegelstände steigen, Anwohner müssen ihre Häuser räumen.</p></body></html>".encode("latin-1")
    assert "müssen ihre Häuser" in decode_html(body, "text/html; charset=utf-8")

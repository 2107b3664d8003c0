"""Extraction: decoding, article vs. page chrome, language, failure modes."""

from __future__ import annotations

import pytest

from archiver.changes.extract import Article, decode_html, extract_article
from archiver.errors import ExtractError

PAGE = """<!DOCTYPE html><html lang="{lang}"><head><meta charset="utf-8">
<title>Regierung schickt Soldaten | Tagesblatt</title></head><body>
<header><div class="logo">Tagesblatt</div><nav><ul><li><a href="/p">Politik</a></li><li><a href="/w">Wirtschaft 2024</a></li></ul></nav>
<div class="clock">Stand: {clock} Uhr</div></header>
<div id="cookie-banner"><p>Wir verwenden Cookies. Akzeptieren</p></div>
<div class="ad"><p>Jetzt {ad} % sparen! Abo für 9,99 Euro</p></div>
<main><article>
<h1>Regierung schickt 50.000 Soldaten an die Grenze</h1>
<p class="lead">Die Bundesregierung hat am Dienstag beschlossen, weitere Truppen an die Grenze zu entsenden. Das Parlament muss noch zustimmen.</p>
<p>Nach Angaben des Verteidigungsministeriums sollen 50.000 Soldaten bis Ende März verlegt werden. Die Kosten werden auf 1,5 Millionen Euro pro Tag geschätzt, sagte Ministerin Anna Müller.</p>
<h2>Kritik aus der Opposition</h2>
<p>Die Opposition kritisierte den Beschluss scharf. „Das ist ein Fehler“, sagte der Abgeordnete Peter Schmidt. Die Zustimmung liegt bei 8,5 Prozent.</p>
<div class="comment-count">{comments} Kommentare</div>
</article>
<section class="teaser-list"><div class="teaser"><a href="/x"><h3>Hochwasser: {teaser} Menschen evakuiert</h3></a><p>Mehr dazu lesen</p></div></section>
</main>
<aside><h3>Meistgelesen</h3><ol><li>Inflation steigt auf {most} Prozent</li><li>Bahnstreik: 300 Züge fallen aus</li></ol></aside>
<form><input type="hidden" name="csrf" value="{token}"></form>
<footer><p>© 2024 Tagesblatt GmbH · Impressum</p></footer>
</body></html>"""


def page(lang: str = "de", **kw: str) -> bytes:
    values = {"clock": "14:32", "ad": "50", "comments": "128", "teaser": "2.000", "most": "7,1", "token": "abc123"}
    values.update(kw)
    return PAGE.format(lang=lang, **values).encode("utf-8")


def test_article_text_excludes_chrome() -> None:
    art = extract_article(page())
    assert art.title == "Regierung schickt 50.000 Soldaten an die Grenze"
    text = art.text()
    assert "sollen 50.000 Soldaten bis Ende März" in text
    assert "Kritik aus der Opposition" in art.blocks
    for chrome in ("Stand:", "Kommentare", "Cookies", "sparen", "evakuiert", "Meistgelesen", "Inflation", "Impressum", "Politik", "abc123"):
        assert chrome not in text, chrome


def test_blocks_in_reading_order_and_title_not_repeated() -> None:
    art = extract_article(page())
    assert art.blocks[0].startswith("Die Bundesregierung hat am Dienstag")
    assert art.blocks.index("Kritik aus der Opposition") == 2
    assert art.blocks[-1].startswith("Die Opposition kritisierte")
    assert art.title not in art.blocks


def test_chrome_changes_do_not_change_article() -> None:
    a = extract_article(page())
    b = extract_article(page(clock="15:01", ad="30", comments="131", teaser="3.500", most="6,9", token="zzz999"))
    assert a == b


def test_text_and_json_roundtrip() -> None:
    art = extract_article(page())
    assert art.text().startswith(art.title + "\n\n" + art.blocks[0])
    assert Article.from_json(art.to_json()) == art


@pytest.mark.parametrize(
    ("html", "hint", "expected"),
    [
        ('<html lang="en-GB"><body><p>Die Regierung sagte nicht viel.</p></body></html>', None, "en"),
        ('<html><head><meta http-equiv="content-language" content="de-DE"></head><body><p>The text.</p></body></html>', None, "de"),
        ('<html><head><meta property="og:locale" content="en_US"></head><body><p>Der Text.</p></body></html>', None, "en"),
        ("<html><body><p>Zahlen ohne Worte: 12 34 56</p></body></html>", "de", "de"),
        ("<html><body><p>Der Minister sagte, dass die Regierung nicht zustimmen wird und das ist ein Problem.</p></body></html>", None, "de"),
        ("<html><body><p>The minister said that the government will not agree and it is a problem for the city.</p></body></html>", None, "en"),
    ],
)
def test_language(html: str, hint: str | None, expected: str) -> None:
    assert extract_article(html.encode(), language_hint=hint).language == expected


def test_decode_header_charset_wins() -> None:
    body = "<html><body><p>Grüße</p></body></html>".encode("cp1252")
    assert "Grüße" in decode_html(body, "text/html; charset=ISO-8859-1")


def test_decode_meta_charset() -> None:
    body = '<html><head><meta http-equiv="Content-Type" content="text/html; charset=iso-8859-15"></head><body>Größe €</body></html>'.encode("iso-8859-15")
    assert "Größe €" in decode_html(body, "text/html")


def test_decode_utf8_without_declaration() -> None:
    assert "Grüße" in decode_html("<p>Grüße</p>".encode("utf-8"), None)


def test_latin1_page_without_charset_shows_umlauts() -> None:
    body = "<html><body><article><h1>Hochwasser in Köln</h1><p>Die Pegelstände steigen, Anwohner müssen ihre Häuser räumen. Die Feuerwehr ist mit großem Aufgebot im Einsatz.</p></article></body></html>".encode("latin-1")
    art = extract_article(body)
    assert art.title == "Hochwasser in Köln"
    assert "müssen ihre Häuser räumen" in art.text()


def test_decode_bom() -> None:
    assert decode_html(b"\xef\xbb\xbf<p>\xc3\xa4</p>", "text/html; charset=latin-1") == "<p>ä</p>"


def test_fallback_when_main_content_missed() -> None:
    # only list items and headings: the whole-body fallback keeps them, nav/aside/footer excluded
    body = b"""<html><body><nav><ul><li>Home</li><li>News</li></ul></nav>
    <div><h1>Liveblog</h1><ul><li>14:00 Die Polizei meldet 50.000 Teilnehmer auf dem Platz vor dem Rathaus.</li>
    <li>13:30 Die Demonstration beginnt friedlich, sagen Beobachter vor Ort in der Innenstadt.</li></ul></div>
    <aside><ul><li>Meistgelesen: 7 Tipps</li></ul></aside><footer><p>Impressum</p></footer></body></html>"""
    art = extract_article(body)
    assert art.title == "Liveblog"
    assert art.blocks == (
        "14:00 Die Polizei meldet 50.000 Teilnehmer auf dem Platz vor dem Rathaus.",
        "13:30 Die Demonstration beginnt friedlich, sagen Beobachter vor Ort in der Innenstadt.",
    )


def test_title_falls_back_to_html_title_without_site_name() -> None:
    body = b"<html><head><title>Kabinett billigt Haushalt | Tagesblatt</title></head><body><p>Das Kabinett hat den Haushalt gebilligt.</p></body></html>"
    assert extract_article(body).title == "Kabinett billigt Haushalt"


@pytest.mark.parametrize("body", [b"", b"<<<>>>", b"<html><body></body></html>", b"just words, no markup", b"<p>unclosed <b>tags <i>everywhere", b"<?xml version='1.0' encoding='utf-8'?><html><body><p>x</p></body></html>"])
def test_garbage_html_never_raises(body: bytes) -> None:
    art = extract_article(body)
    assert isinstance(art, Article)


def test_bare_text_is_kept() -> None:
    assert "no markup here" in extract_article(b"just words, no markup here").text()


@pytest.mark.parametrize(
    ("body", "ctype"),
    [(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", None), (b"%PDF-1.7 ...", "application/pdf"), (b"<html></html>", "image/jpeg"), (b"\x00\x01\x02\x03" * 100, None)],
)
def test_non_text_raises_extract_error(body: bytes, ctype: str | None) -> None:
    with pytest.raises(ExtractError):
        extract_article(body, content_type=ctype)


def test_deterministic() -> None:
    assert extract_article(page()) == extract_article(page())

"""Edit detection on real-world layouts (issue 11), on pages the team wrote:
inline teaser paragraphs, recommendation boxes, a <body> whose class list says
"navigation", a header line with a clock and a comment count, and a paragraph
with an inline link. Each goes through the real CLI: a loopback server serves
one version, `archiver snapshot`, then the next version, and the stored
significance, `archiver diff --json` and the stored text are checked."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import lxml.html
import pytest

from archiver.changes.diff import diff_articles
from archiver.changes.extract import extract_article
from archiver.changes.furniture import is_furniture
from store.compact import unpack

PARAS_DE = [
    "Die Stadtwerke haben am Montag eine neue Preisliste vorgelegt. Ab dem ersten März steigt der Grundpreis für Fernwärme um 4,5 Prozent.",
    "Betroffen sind nach Angaben des Unternehmens rund 38.000 Haushalte im Stadtgebiet. Die Verbraucherzentrale kündigte an, die Verträge zu prüfen.",
    "Der Aufsichtsrat hatte die Erhöhung bereits im Dezember gebilligt, wie ein Sprecher bestätigte. Die Opposition im Stadtrat verlangt eine Sondersitzung.",
    "Für Haushalte mit geringem Einkommen soll es einen Härtefallfonds über 2 Millionen Euro geben. Anträge können ab April gestellt werden.",
]
PARAS_EN = [
    "The city council approved a new budget on Tuesday after a debate that lasted until after midnight. Spending on schools rises by 6 percent.",
    "About 12,000 residents had signed a petition against the closure of two libraries, which the final budget now keeps open until next year.",
    "The mayor said the compromise was the best the city could afford. Opposition members called the plan a short-term fix for a long-term problem.",
    "A further vote on the transport levy is expected in March, when the council also has to decide on the price of a monthly bus pass.",
]


def article(title: str, paras: list[str], *, lang: str = "de", body_class: str = "", header: str = "",
            between: list[str] | None = None, chrome: str = "") -> str:
    """A news page: nav, header line, article paragraphs with ``between[i]`` after paragraph i, footer."""
    between = between or []
    parts = []
    for i, p in enumerate(paras):
        parts.append(f"<p>{p}</p>")
        if i < len(between) and between[i]:
            parts.append(between[i])
    body = "\n".join(parts)
    return (
        f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8"><title>{title} | Stadtanzeiger</title></head>'
        f'<body class="{body_class}"><a class="skip-link" href="#main">Skip to main content</a>'
        f'<nav class="site-nav"><ul><li><a href="/p">Politik</a></li><li><a href="/w">Wirtschaft</a></li></ul></nav>{chrome}'
        f'<div class="page"><div class="article-wrapper"><h1>{title}</h1><div class="meta">{header}</div>\n{body}\n</div></div>'
        f'<div class="site-footer-links"><a href="/i">Impressum</a> <a href="/d">Datenschutz</a></div></body></html>'
    )


def two_captures(site, cli, first: str, second: str) -> tuple[dict, dict]:
    url = site.page("/artikel", first)
    a = cli("snapshot", url, "--json")
    assert a.code == 0, a.err
    site.page("/artikel", second)
    b = cli("snapshot", url, "--json")
    assert b.code == 0, b.err
    d = cli("diff", url, "--json")
    assert d.code == 0, d.err
    diff = d.json()
    assert b.lines()[0]["significance"] == diff["significance"]
    return b.lines()[0], diff


def stored_articles(cli) -> list[dict]:
    conn = sqlite3.connect(cli.data_dir / "index.sqlite3")
    try:
        rows = conn.execute("SELECT t.article_z FROM snapshots s JOIN texts t ON t.sha256 = s.text_sha256 "
                            "ORDER BY s.seq").fetchall()
    finally:
        conn.close()
    return [json.loads(unpack(r[0])) for r in rows]


@pytest.mark.parametrize(("lang", "paras", "teaser_a", "teaser_b"), [
    ("de", PARAS_DE, 'Lesen Sie auch: <a href="/a/1">Streik: 3.000 Flüge gestrichen</a>',
     'Lesen Sie auch: <a href="/a/2">Tarifstreit: 4.500 Flüge gestrichen</a>'),
    ("de", PARAS_DE, 'Mehr zum Thema: <a href="/a/3">Mieten steigen um 7 Prozent</a>',
     'Weiterlesen: <a href="/a/4">Wohngeld: 120.000 Anträge offen</a>'),
    ("en", PARAS_EN, 'Read more: <a href="/b/1">Strike: 3,000 flights cancelled</a>',
     'Related: <a href="/b/2">Rents up 7 percent in one year</a>'),
    ("en", PARAS_EN, '<a href="/b/3">Also read: 40 schools to close by 2030</a>',
     '<a href="/b/4">Also read: Council loses 2 million in fraud</a>'),
])
def test_rotated_inline_teaser_paragraph_is_none(site, cli, lang, paras, teaser_a, teaser_b) -> None:
    first = article("Fernwärme wird teurer", paras, lang=lang, between=["", f"<p>{teaser_a}</p>"])
    second = article("Fernwärme wird teurer", paras, lang=lang, between=["", f"<p>{teaser_b}</p>"])
    snap, diff = two_captures(site, cli, first, second)
    assert diff["significance"] == "none", diff["changes"]
    assert diff["figures"] == []
    texts = stored_articles(cli)
    assert all("Flüge" not in " ".join(t["blocks"]) and "flights" not in " ".join(t["blocks"]) for t in texts)
    assert texts[0]["blocks"][1].startswith(paras[1][:30])


def box(kicker: str, headline: str, href: str, cls: str = "") -> str:
    return (f'<div{cls}><h3>Mehr zum Thema</h3><a href="{href}"><span>{kicker}</span>'
            f'<h4>{headline}</h4></a><a href="{href}x"><h4>Pendler: Bahn streicht 40 Verbindungen</h4></a></div>')


@pytest.mark.parametrize("cls", ["", ' class="c-box"', ' class="recommendation-box"'])
def test_recommendation_box_with_numeric_headline_changed_is_none(site, cli, cls) -> None:
    first = article("Fernwärme wird teurer", PARAS_DE, between=[box("Streik", "3.000 Flüge gestrichen", "/x/1", cls)])
    second = article("Fernwärme wird teurer", PARAS_DE, between=[box("Energie", "Gaspreis steigt um 12 Prozent", "/x/2", cls)])
    snap, diff = two_captures(site, cli, first, second)
    assert diff["significance"] == "none", diff["changes"]
    assert snap["figures"] == []


def test_short_kicker_headline_block_without_heading_link_is_not_text() -> None:
    teaser = ('<div><span class="kicker">Streik</span><h3>3.000 Flüge gestrichen</h3>'
              '<a href="/s">Zum Artikel</a></div>')
    art = extract_article(article("Fernwärme wird teurer", PARAS_DE, between=[teaser]).encode())
    assert "Flüge" not in art.text()
    assert len(art.blocks) == 4


WIRED_LIKE = ("navigation-border-thin-decoration full-width-block-default-decoration "
              "standard-site-navigation logo-left-with-search-and-headline-nav-variation")


def nav_heavy(paras: list[str], clock: str, comments: int) -> str:
    menu = "".join(f'<li><a href="/s/{i}">Section number {i} with a long name</a></li>' for i in range(60))
    teasers = "".join(f'<div><a href="/t/{i}"><h3>Story {i}: {comments + i} readers</h3></a></div>' for i in range(20))
    return article("AI can do great things, if it does not burn the planet", paras, lang="en", body_class=WIRED_LIKE,
                   header=f"Updated {clock} · {comments} comments",
                   chrome=f'<div class="menu-wrapper"><ul>{menu}</ul></div><div class="stories">{teasers}</div>')


def test_body_class_with_navigation_still_yields_the_article() -> None:
    art = extract_article(nav_heavy(PARAS_EN, "14:05", 85).encode())
    assert art.title == "AI can do great things, if it does not burn the planet"
    assert art.blocks == tuple(PARAS_EN)  # paragraphs kept apart ("adds.Some" never happens)
    for chrome in ("Skip to main content", "Section number", "readers", "comments", "Impressum"):
        assert chrome not in art.text(), chrome


def test_body_class_is_never_furniture_but_element_tokens_are() -> None:
    doc = lxml.html.document_fromstring(
        f'<html><body class="{WIRED_LIKE}"><div class="main-nav">x</div><div class="relatedArticles">y</div>'
        '<div class="canvas advance">z</div><div id="taboola-below">t</div><p>text</p></body></html>')
    tags = {el.get("class") or el.get("id"): is_furniture(el) for el in doc.iter("div")}
    assert tags == {"main-nav": True, "relatedArticles": True, "canvas advance": False, "taboola-below": True}
    text = extract_article(lxml.html.tostring(doc)).text().split()
    assert "text" in text and "z" in text and not {"x", "y", "t"} & set(text)


def test_header_clock_and_comment_count_changing_is_none_with_the_same_method(site, cli) -> None:
    first = nav_heavy(PARAS_EN, "14:05", 85)
    second = nav_heavy(PARAS_EN, "16:41", 112)
    snap, diff = two_captures(site, cli, first, second)
    assert diff["significance"] == "none", diff["changes"]
    texts = stored_articles(cli)
    assert texts[0]["method"] == texts[-1]["method"] and texts[0]["method"] in ("trafilatura", "blocks")


@pytest.mark.parametrize("method", ["trafilatura", "blocks"])
def test_the_method_of_the_previous_capture_is_repeated(method) -> None:
    de = article("Fernwärme wird teurer", PARAS_DE, header="Aktualisiert 14:05 Uhr · 85 Kommentare").encode()
    later = article("Fernwärme wird teurer", PARAS_DE, header="Aktualisiert 16:41 Uhr · 112 Kommentare").encode()
    a = extract_article(de, method=method)
    b = extract_article(later, method=a.method)
    assert a.method == b.method == method
    assert diff_articles(a, b).significance == "none"


def test_paragraph_with_an_inline_link_edited_is_substantive(site, cli) -> None:
    linked = list(PARAS_DE)
    linked[1] = ('Betroffen sind nach Angaben <a href="/swb">des Unternehmens</a> rund 38.000 Haushalte im Stadtgebiet. '
                 'Die Verbraucherzentrale kündigte an, die Verträge zu prüfen.')
    edited = list(linked)
    edited[1] = edited[1].replace("38.000", "41.000")
    snap, diff = two_captures(site, cli, article("Fernwärme wird teurer", linked), article("Fernwärme wird teurer", edited))
    assert diff["significance"] == "substantive"
    assert [(f["before_value"], f["after_value"]) for f in diff["figures"]] == [(38000, 41000)]


def test_lead_in_paragraph_that_is_real_prose_is_kept() -> None:
    long = ("Read more: the council's own report, published on Monday, says that the levy would raise about "
            "40 million over five years, far more than the 25 million the mayor promised in the campaign, and "
            "that most of the money would go to road repairs rather than to buses, trams or cycle lanes in the "
            "outer districts, where residents have waited for years for better connections to the centre.")
    art = extract_article(article("Budget", [*PARAS_EN, long], lang="en").encode())
    assert art.blocks[-1] == long


def test_invalid_byte_in_footer_keeps_utf8_and_is_none(site, cli) -> None:
    page = article("Fernwärme wird teurer", PARAS_DE).encode("utf-8")
    broken = page.replace(b"Datenschutz", b"Daten\xfcschutz")
    snap, diff = two_captures(site, cli, page, broken)
    assert diff["significance"] == "none", diff["changes"]
    assert "Fernwärme" in stored_articles(cli)[-1]["title"]


def test_a_diff_never_compares_two_methods(site, tmp_path: Path) -> None:
    """When the kept method finds nothing and the other is used, the previous version is re-read with it."""
    from archiver.archive import Archive
    from archiver.config import Settings

    settings = Settings()
    settings.archive.data_dir = str(tmp_path / "archive")
    settings.capture.allow_private = True
    page = article("Fernwärme wird teurer", PARAS_DE, between=["", "<ul><li>Erster Punkt der Liste</li></ul>"])
    url = site.page("/m", page)
    with Archive(settings) as archive:
        row = archive.snapshot(url).row
        before = archive.article(row)
        assert before is not None and before.method is not None
        other = "blocks" if before.method == "trafilatura" else "trafilatura"
        after = extract_article(page.encode(), method=other)
        assert after.method == other
        again = archive._same_method(row, before, after)
        assert again.method == other
        assert again == extract_article(page.encode(), url=url, method=other)
        assert archive._same_method(row, before, before) is before


def test_text_without_block_elements_keeps_its_paragraphs_apart() -> None:
    body = (b"<html><body><div>The minister adds.</div><div>Some say otherwise<br>and more.</div>"
            b"<span>Inline</span> tail</body></html>")
    art = extract_article(body, method="blocks")
    assert art.blocks == ("The minister adds.", "Some say otherwise", "and more.", "Inline tail")
    assert "adds.Some" not in art.text()


@pytest.mark.parametrize(("first", "second"), [
    ("14:05 Uhr · 85 Kommentare", "16:41 Uhr · 112 Kommentare"),
    ("3. März 2024, 14:05 Uhr | 12 Kommentare", "3. März 2024, 18:20 Uhr | 40 Kommentare"),
    ("March 3, 2024 at 2:05 p.m. ET · 12 comments", "March 3, 2024 at 6:20 p.m. ET · 40 comments"),
    ("85 Kommentare · 4 Min. Lesezeit", "91 Kommentare · 5 Min. Lesezeit"),
])
def test_dateline_paragraphs_are_not_article_text(first: str, second: str) -> None:
    a = extract_article(article("Fernwärme wird teurer", PARAS_DE, between=[f"<p>{first}</p>"]).encode())
    b = extract_article(article("Fernwärme wird teurer", PARAS_DE, between=[f"<p>{second}</p>"]).encode(), method=a.method)
    assert a.blocks == tuple(PARAS_DE)
    assert diff_articles(a, b).significance == "none"

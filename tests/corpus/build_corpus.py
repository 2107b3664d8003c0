"""Writes the labelled edit-detection corpus (tests/corpus/NN-name/).

All article texts are invented for this corpus. Each case is an article in a
"before" and an "after" version, wrapped in page chrome (navigation, ads,
teasers and "most read" lists with numbers, a clock, comment counts, a CSRF
token, cache-busting asset URLs, class names) that differs between the two
captures, so noise-only pairs really are noisy.

The generated HTML files are committed as static fixtures; rerun this script
only to change the corpus:  python tests/corpus/build_corpus.py
"""

from __future__ import annotations

import hashlib
import html
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent

# ------------------------------------------------------------------ articles
# An article is (headline, [blocks]); a block starting with "## " is a subheading.

DE_TROOPS = (
    "Regierung schickt 50.000 Soldaten an die Ostgrenze",
    [
        "Die Bundesregierung hat am 12. März beschlossen, weitere Truppen an die Ostgrenze zu verlegen. Der Bundestga muss dem Einsatz noch zustimmen.",
        "Nach Angaben des Verteidigungsministeriums sollen 50.000 Soldaten bis Ende April verlegt werden. Die Kosten schätzt das Ministerium auf 1,5 Millionen Euro pro Tag, sagte Ministerin Anna Müller am Dienstag in Berlin.",
        "## Kritik aus der Opposition",
        "Die Opposition hält den Beschluss für überstürzt. „Wir sehen keinen Plan für den Rückzug“, sagte der Abgeordnete Peter Schmidt. Seine Fraktion werde dem Mandat zustimmen, wenn das Parlament regelmäßig unterrichtet werde.",
        "Laut einer aktuellen Umfrage unterstützen 8,5 Prozent der Befragten einen sofortigen Rückzug. Zehntausend Menschen demonstrierten am Wochenende in mehreren Städten gegen den Einsatz.",
        "Die Truppen sollen zunächst drei Stützpunkte nahe der Grenze beziehen. Dort lagern bereits 10.000 Tonnen Material, das seit dem Herbst in Bahnwaggons angeliefert wurde.",
    ],
)

DE_BUDGET = (
    "Stadtrat beschließt Haushalt mit Rekordinvestitionen",
    [
        "Der Stadtrat von Weidenfeld hat am Donnerstagabend den Haushalt für das kommende Jahr verabschiedet. Mit 31 zu 12 Stimmen fiel die Entscheidung deutlicher aus als erwartet.",
        "Insgesamt will die Stadt 240 Millionen Euro ausgeben, davon 1,5 Millionen Euro für neue Radwege. Kämmerer Jonas Weber sprach von einem „Haushalt der Vernunft“ und verwies auf die gestiegenen Zinsen.",
        "Größter Posten bleibt die Sanierung der Schulen. Bis 2027 sollen zwölf Gebäude modernisiert werden, darunter die Gesamtschule am Lindenplatz. Die Arbeiten beginnen im Sommer.",
        "Die Grundsteuer steigt nicht. Dafür erhöht die Stadt die Parkgebühren in der Innenstadt um 50 Cent pro Stunde, was jährlich rund 800.000 Euro einbringen soll.",
        "Kritik kam vom Bund der Steuerzahler. Die Verschuldung pro Kopf liege mit 2.400 Euro über dem Landesdurchschnitt, teilte der Verband mit.",
    ],
)

DE_FLOOD = (
    "Hochwasser: Pegel am Rhein sinkt langsam",
    [
        "Nach tagelangem Regen entspannt sich die Lage an Rhein und Mosel allmählich. Der Pegel in Koblenz lag am Morgen bei 6,80 Metern und damit 20 Zentimeter unter dem Höchststand vom Vortag.",
        "Die Feuerwehr war seit Freitag mit 1.200 Einsatzkräften im Dienst. Verletzt wurde nach Angaben der Behörden niemand, drei Keller mussten jedoch leer gepumpt werden.",
        "Der Deutsche Wetterdienst erwartet für die kommenden Tage trockenes Wetter. Erst ab Mittwoch könnte es in der Eifel wieder stärker regnen, sagte Meteorologin Katrin Hoffmann.",
        "Die Schifffahrt auf dem Rhein bleibt vorerst eingestellt. Reedereien rechnen mit Ausfällen von mehreren Hunderttausend Euro pro Tag.",
    ],
)

DE_TRAIN = (
    "Bahn kündigt neuen Fahrplan für den Südwesten an",
    [
        "Die Bahn will im Südwesten ab Dezember deutlich mehr Züge fahren lassen. Auf der Strecke zwischen Stuttgart und Ulm soll künftig jede halbe Stunde ein Regionalzug verkehren.",
        "Das Land zahlt dafür jährlich 35 Millionen Euro zusätzlich. Verkehrsminister Thomas Krüger sprach am Montag von einem „großen Schritt für Pendler“.",
        "Fahrgastverbände begrüßen die Pläne grundsätzlich. Sie fordern aber mehr Personal, weil im vergangenen Jahr fast 4 Prozent aller Verbindungen wegen fehlender Lokführer ausgefallen seien.",
        "Die neuen Fahrzeuge bieten jeweils 300 Sitzplätze und sollen barrierefrei sein. Die ersten Züge werden im Herbst im Werk in Ulm erwartet.",
    ],
)

EN_STORM = (
    "Storm leaves 50,000 homes without power",
    [
        "A powerful storm swept across the northern coast overnight, leaving about 50,000 homes without electricity, the regional utility said on Tuesday.",
        "Wind gusts reached 120 kilometres per hour in exposed areas. Three people were taken to hospital with minor injuries after a tree fell on their car near Harbour Road.",
        "The utility said crews had restored power to 8.5 percent of affected customers by noon. Its spokesperson, Laura Bennett, warned that some rural areas could remain without power until Friday.",
        "Schools in four districts stayed closed. The regional government said it would release 2 million dollars in emergency funds to help small businesses repair damage.",
        "Forecasters expect calmer weather from Wednesday, although another band of rain is due over the weekend.",
    ],
)

EN_EARNINGS = (
    "Harbourline profits climb as shipping demand recovers",
    [
        "Harbourline, the container shipping group, reported a rise in quarterly profit on Thursday as demand for freight recovered after a weak start to the year.",
        "Net profit rose to $1.2 billion in the three months to June, up from $950 million a year earlier. Revenue grew 12 percent to $6.4 billion.",
        "Chief executive Martin Olsen said the company would not cut prices despite new competition on Asian routes. \u201cWe are confident in our network,\u201d he told analysts.",
        "The company plans to order five new vessels and expects to hire 2,000 staff over the next two years. Its shares rose 4.5 percent in early trading.",
        "Analysts at Northgate Securities said the results beat expectations but warned that fuel costs remained a risk.",
    ],
)

EN_ELECTION = (
    "Mayor wins second term with narrow majority",
    [
        "Mayor Helen Carter has won a second term after a closely fought election, securing 51.2 percent of the vote, officials said early on Monday.",
        "Her challenger, councillor David Johnson, received 46.9 percent. Turnout was 58 percent, slightly higher than four years ago.",
        "Carter thanked volunteers at a rally in the town hall and promised to build 3,000 affordable homes by 2028. She did not comment on the recount demanded by her opponent.",
        "The election commission said the official result would be confirmed on March 3. Around twenty-five polling stations reported delays because of technical problems.",
    ],
)

EN_HOSPITAL = (
    "New children's hospital to open in spring",
    [
        "The long-delayed children's hospital in Westbrook will open its doors in April, health officials confirmed on Wednesday.",
        "The building has 220 beds and cost \u00a3450 million, about \u00a360 million more than originally planned. The goverment blamed rising construction costs for the overrun.",
        "Hospital director Sarah Mills said the first patients would be moved from the old site over a period of three weeks. \u201cWe have recieved excellent support from families,\u201d she said.",
        "Staff numbers will rise to about 1,100. Recruitment of nurses has proved difficult, and the hospital still has 85 vacancies.",
    ],
)

# ------------------------------------------------------------------ chrome

SITES = {
    "de": {"name": "Tagesblatt", "nav": ["Politik", "Wirtschaft", "Kultur", "Sport", "Regional"],
           "most": "Meistgelesen", "cookie": "Wir verwenden Cookies, um unser Angebot zu verbessern.",
           "accept": "Akzeptieren", "comments": "Kommentare", "clock": "Stand: {h}:{m} Uhr",
           "more": "Mehr zum Thema", "ad": "Jetzt {n} % sparen: Digital-Abo für {p} Euro im Monat"},
    "en": {"name": "The Morning Courier", "nav": ["News", "Business", "Culture", "Sport", "Local"],
           "most": "Most read", "cookie": "We use cookies to improve our service.",
           "accept": "Accept", "comments": "comments", "clock": "Updated {h}:{m}",
           "more": "Related stories", "ad": "Save {n}% today: digital subscription for ${p} a month"},
}

TEASERS = {
    "de": ["Inflation steigt auf {a} Prozent", "Bahnstreik: {b} Züge fallen aus", "Hochwasser: {c}.000 Menschen evakuiert",
           "Bundesliga: {d}:1-Sieg im Spitzenspiel", "Mieten in Großstädten um {a} Prozent gestiegen"],
    "en": ["Inflation rises to {a} percent", "Rail strike cancels {b} trains", "Floods force {c},000 people from homes",
           "City wins {d}-1 in derby", "Rents up {a} percent in big cities"],
}


@dataclass
class Chrome:
    variant: int
    layout: str = "classic"  # classic | modern | legacy | realworld
    teaser_shift: int = 0
    sidebar_shift: int = 0


def _teasers(lang: str, seed: int) -> list[str]:
    vals = {"a": f"{2 + seed % 5},{seed % 10}" if lang == "de" else f"{2 + seed % 5}.{seed % 10}",
            "b": 100 + 37 * seed % 400, "c": 1 + seed % 9, "d": 2 + seed % 4}
    items = [t.format(**vals) for t in TEASERS[lang]]
    k = seed % len(items)
    return items[k:] + items[:k]


def _legacy_html(title: str, blocks: list[str], lang: str, related: list[str], v: int) -> str:
    """An old div-soup template: no <article>/<main>, byline clock and comment count inside the text column."""
    stamp = f"Stand: {10 + v}.03.2024, {8 + v}:{(v * 13) % 60:02d} Uhr" if lang == "de" else f"Updated: March {10 + v}, 2024, {8 + v}:{(v * 13) % 60:02d}"
    also = "Lesen Sie auch: " if lang == "de" else "Read more: "
    out = [f'<div id="col-{v}" class="content-col"><div class="headline-wrap"><h1>{html.escape(title)}</h1></div>',
           f'<div class="byline"><span class="date">{stamp}</span> &middot; <a href="#c">{70 + v * 9} {SITES[lang]["comments"]}</a></div>',
           '<div class="text">']
    for i, b in enumerate(blocks):
        if b.startswith("## "):
            out.append(f"<h2>{html.escape(b[3:])}</h2>")
        else:
            out.append(f"<p>{html.escape(b)}</p>")
        if i == 1:
            out.append(f'<p class="inline-teaser"><a href="/t/{v}">{also}{html.escape(related[v % len(related)])}</a></p>')
    out.append('</div><div class="share-bar"><a href="#">Teilen</a> <a href="#">Drucken</a></div></div>')
    return "\n".join(out)


def _article_html(title: str, blocks: list[str], layout: str, lang: str, related: list[str]) -> str:
    out = []
    if layout == "classic":
        out.append(f'<article class="story">\n<h1 class="story__title">{html.escape(title)}</h1>')
    else:
        out.append(f'<article class="c-article js-article" data-id="a{int(hashlib.md5(title.encode()).hexdigest()[:4], 16)}">\n'
                   f'<header class="c-article__header"><span class="kicker">{"Exklusiv" if lang == "de" else "Exclusive"}</span>'
                   f'<h1 class="c-article__headline">{html.escape(title)}</h1></header>\n<div class="c-article__body">')
    for i, b in enumerate(blocks):
        if b.startswith("## "):
            out.append(f"<h2>{html.escape(b[3:])}</h2>")
        elif i == 0:
            cls = "lead" if layout == "classic" else "c-article__intro"
            out.append(f'<p class="{cls}"><strong>{html.escape(b)}</strong></p>')
        else:
            out.append(f"<p>{html.escape(b)}</p>")
        if layout == "modern" and i == 1:
            out.append(f'<div class="ad-slot ad-inline"><span>Anzeige</span><p>{html.escape(related[0])}</p></div>')
    if layout == "modern":
        out.append("</div>")
    out.append(f'<div class="related-box"><h3>{SITES[lang]["more"]}</h3><ul>'
               + "".join(f'<li><a href="/story/{i}">{html.escape(r)}</a></li>' for i, r in enumerate(related))
               + "</ul></div>")
    out.append("</article>")
    return "\n".join(out)


def _realworld_html(title: str, blocks: list[str], lang: str, v: int, teasers: list[str], most: list[str]) -> str:
    """Patterns from real news sites: a <body> whose class list says "navigation", no <article>/<main>,
    a skip link and a long classless menu, a header line with clock and comment count, bare
    "Lesen Sie auch:"/"Read more:" link paragraphs and a classless recommendation box (kicker +
    headline with a number) between the paragraphs, and a paragraph with an inline link."""
    site = SITES[lang]
    de = lang == "de"
    also = ["Lesen Sie auch", "Mehr zum Thema", "Weiterlesen"] if de else ["Read more", "Related", "Also read"]
    stamp = (f"Aktualisiert {8 + v}:{(v * 13) % 60:02d} Uhr · {70 + v * 9} Kommentare" if de
             else f"Updated {8 + v}:{(v * 13) % 60:02d} · {70 + v * 9} comments")
    menu = "".join(f'<li><a href="/s/{i}">{n} {i}</a></li>' for i, n in enumerate(site["nav"] * 6))
    out = [f'<body class="navigation-border-thin full-width-block standard-site-navigation theme-{v % 3}">',
           f'<a href="#main-content">{"Zum Inhalt springen" if de else "Skip to main content"}</a>',
           f'<div><button>{"Menü öffnen" if de else "Open Navigation Menu"}</button><ul>{menu}</ul></div>',
           f'<div class="grid-layout"><div class="grid-layout__content"><h1>{html.escape(title)}</h1>',
           f'<div>{stamp}</div>']
    for i, b in enumerate(blocks):
        if b.startswith("## "):
            out.append(f"<h2>{html.escape(b[3:])}</h2>")
            continue
        text = html.escape(b)
        if i == 1:  # one inline link inside a real paragraph
            words = text.split(" ")
            text = f'<a href="/dossier">{" ".join(words[:3])}</a> ' + " ".join(words[3:])
        out.append(f"<p>{text}</p>")
        if i == 0:
            out.append(f'<p>{also[v % 3]}: <a href="/t/{v}">{html.escape(teasers[0])}</a></p>')
        if i == 2:
            kicker, _, head = teasers[1].partition(":")
            out.append(f'<div><h3>{site["more"]}</h3><a href="/r/{v}"><span>{html.escape(kicker)}</span>'
                       f'<h4>{html.escape(head.strip() or kicker)}</h4></a>'
                       f'<a href="/r/{v + 1}"><h4>{html.escape(teasers[2])}</h4></a></div>')
    out.append("</div></div>")
    out.append("<div><h2>" + site["most"] + "</h2><ol>" + "".join(f'<li><a href="/m/{i}">{html.escape(t)}</a></li>'
                                                                    for i, t in enumerate(most)) + "</ol></div>")
    out.append(f'<div><a href="/impressum">Impressum</a> · <a href="/datenschutz">&copy; 2024 {site["name"]}</a></div>')
    return "\n".join(out)


def render(article: tuple[str, list[str]], lang: str, ch: Chrome, *, charset_meta: bool = True) -> str:
    title, blocks = article
    site = SITES[lang]
    v = ch.variant
    token = hashlib.sha256(f"{title}{v}".encode()).hexdigest()[:32]
    cache = hashlib.md5(f"{v}{ch.layout}".encode()).hexdigest()[:8]
    h, m = 8 + (v * 5) % 14, f"{(v * 17) % 60:02d}"
    teasers = _teasers(lang, v + ch.teaser_shift)
    most = _teasers(lang, 3 * v + 1 + ch.sidebar_shift)
    ad = site["ad"].format(n=10 + v * 5, p=f"{4 + v % 5},99" if lang == "de" else f"{4 + v % 5}.99")
    nav = "".join(f'<li class="nav-{i}"><a href="/{n.lower()}?ref=nav{v}">{n}</a></li>' for i, n in enumerate(site["nav"][: 3 + v % 3]))
    meta = '<meta charset="utf-8">' if charset_meta else ""
    body_cls = "page page--article" if ch.layout == "classic" else f"l-wrapper theme-{v % 3}"
    if ch.layout == "realworld":
        return "\n".join([
            f'<!DOCTYPE html>\n<html lang="{lang}">\n<head>\n{meta}\n<title>{html.escape(title)} | {site["name"]}</title>',
            f'<script src="/static/app.js?cb={cache}{v}"></script>\n<meta name="csrf-token" content="{token}">\n</head>',
            _realworld_html(title, blocks, lang, v, teasers, most), "</body>\n</html>\n"])
    parts = [
        f'<!DOCTYPE html>\n<html lang="{lang}">\n<head>\n{meta}\n<title>{html.escape(title)} | {site["name"]}</title>',
        f'<link rel="stylesheet" href="/static/site.css?v={cache}">',
        f'<script src="/static/app.js?cb={cache}{v}"></script>',
        f'<meta name="csrf-token" content="{token}">\n</head>\n<body class="{body_cls}">',
        f'<div id="cookie-banner" class="cookie-consent"><p>{site["cookie"]}</p><button>{site["accept"]}</button></div>',
        f'<header class="site-header"><div class="logo">{site["name"]}</div><nav class="main-nav"><ul>{nav}</ul></nav>'
        f'<div class="clock">{site["clock"].format(h=h, m=m)}</div></header>',
        f'<div class="ad ad-top"><p>{html.escape(ad)}</p></div>',
        '<main id="content">' if ch.layout != "legacy" else '<div id="wrapper" class="wrap">',
        _legacy_html(title, blocks, lang, teasers, v) if ch.layout == "legacy" else _article_html(title, blocks, ch.layout, lang, teasers[:2]),
        f'<div class="comment-count"><a href="#comments">{90 + v * 13} {site["comments"]}</a></div>',
        f'<section class="teaser-list"><h2>{"Weitere Nachrichten" if lang == "de" else "More news"}</h2>'
        + "".join(f'<div class="teaser"><a href="/t/{i}"><h3>{html.escape(t)}</h3></a><p>{html.escape(t)} &ndash; '
                  f'{"mehr lesen" if lang == "de" else "read more"}</p></div>' for i, t in enumerate(teasers[2:]))
        + "</section>",
        '</main>' if ch.layout != "legacy" else "</div>",
        f'<aside class="sidebar"><h2>{site["most"]}</h2><ol>'
        + "".join(f"<li>{html.escape(t)}</li>" for t in most) + "</ol></aside>",
        f'<form class="newsletter" action="/subscribe"><input type="hidden" name="csrf" value="{token}">'
        f'<input type="email" name="email"><button>OK</button></form>',
        f'<footer class="site-footer"><p>&copy; 2024 {site["name"]} &middot; Impressum &middot; Datenschutz</p></footer>',
        "</body>\n</html>\n",
    ]
    return "\n".join(parts)


# ------------------------------------------------------------------ cases

Edit = Callable[[tuple[str, list[str]]], tuple[str, list[str]]]


def rep(*pairs: tuple[str, str]) -> Edit:
    """Replace text in the headline and blocks (each pair must apply)."""

    def edit(article: tuple[str, list[str]]) -> tuple[str, list[str]]:
        title, blocks = article
        whole = "\x1e".join([title, *blocks])
        for old, new in pairs:
            assert old in whole, old
            whole = whole.replace(old, new, 1)
        parts = whole.split("\x1e")
        return parts[0], parts[1:]

    return edit


def blocks_edit(fn: Callable[[list[str]], list[str]]) -> Edit:
    def edit(article: tuple[str, list[str]]) -> tuple[str, list[str]]:
        return article[0], fn(list(article[1]))

    return edit


def same(article: tuple[str, list[str]]) -> tuple[str, list[str]]:
    return article


@dataclass
class Case:
    name: str
    kind: str
    lang: str
    significance: str
    article: tuple[str, list[str]]
    edit: Edit = same
    figures: list[tuple[float | int | None, float | int | None]] = field(default_factory=list)
    before: Chrome = field(default_factory=lambda: Chrome(1))
    after: Chrome = field(default_factory=lambda: Chrome(2))
    latin1_before: bool = False
    note: str = ""


CASES = [
    # noise only
    Case("noise-clock-comments-de", "noise", "de", "none", DE_TROOPS, before=Chrome(1), after=Chrome(2)),
    Case("noise-redesign-de", "noise", "de", "none", DE_BUDGET, before=Chrome(3, "classic"), after=Chrome(4, "modern"),
         note="full site redesign: layout, classes, inline ad, header kicker"),
    Case("noise-teaser-figure-de", "noise", "de", "none", DE_FLOOD, before=Chrome(5), after=Chrome(5, teaser_shift=3),
         note="only the numbers in teasers differ"),
    Case("noise-sidebar-figure-de", "noise", "de", "none", DE_TRAIN, before=Chrome(6), after=Chrome(6, sidebar_shift=2),
         note="only the most-read sidebar numbers differ"),
    Case("noise-latin1-de", "noise", "de", "none", DE_FLOOD, before=Chrome(7), after=Chrome(8), latin1_before=True,
         note="before is latin-1 without any charset declaration; umlauts must decode"),
    Case("noise-ads-token-en", "noise", "en", "none", EN_STORM, before=Chrome(1), after=Chrome(2)),
    Case("noise-redesign-en", "noise", "en", "none", EN_EARNINGS, before=Chrome(2, "modern"), after=Chrome(3, "classic")),
    Case("noise-sidebar-figure-en", "noise", "en", "none", EN_ELECTION, before=Chrome(4), after=Chrome(4, sidebar_shift=1, teaser_shift=2)),
    # cosmetic
    Case("typo-de", "typo", "de", "cosmetic", DE_TROOPS, rep(("Bundestga", "Bundestag"))),
    Case("typo-en", "typo", "en", "cosmetic", EN_HOSPITAL, rep(("goverment", "government"), ("recieved", "received"))),
    Case("punctuation-de", "punctuation", "de", "cosmetic", DE_BUDGET,
         rep(("Donnerstagabend den Haushalt", "Donnerstagabend, den Haushalt"), ("Zinsen.", "Zinsen!"), ("2027 sollen", "2027 – sollen"))),
    Case("punctuation-en", "punctuation", "en", "cosmetic", EN_STORM,
         rep(("overnight, leaving", "overnight leaving"), ("on Tuesday.", "on Tuesday;"), ("Harbour Road", "Harbour-Road"))),
    Case("quote-style-de", "quote-style", "de", "cosmetic", DE_TROOPS,
         rep(("„Wir sehen keinen Plan für den Rückzug“", "»Wir sehen keinen Plan für den Rückzug«"))),
    Case("quote-style-en", "quote-style", "en", "cosmetic", EN_EARNINGS,
         rep(("\u201cWe are confident in our network,\u201d", '"We are confident in our network,"'))),
    Case("whitespace-de", "whitespace", "de", "cosmetic", DE_TRAIN,
         rep(("im Südwesten ab Dezember", "imSüdwesten ab Dezember"), ("Stuttgart und Ulm", "Stuttgart und  Ulm"),
             ("barrierefrei sein", "barriere frei sein")),
         note="before has the typos in whitespace; after is the original"),
    Case("figure-format-zehntausend-de", "figure-format", "de", "cosmetic", DE_TROOPS,
         rep(("10.000 Tonnen", "zehntausend Tonnen"), ("Zehntausend Menschen", "10.000 Menschen"))),
    Case("figure-format-space-de", "figure-format", "de", "cosmetic", DE_TROOPS,
         rep(("50.000 Soldaten bis", "50\u202f000 Soldaten bis"), ("50.000 Soldaten an", "50 000 Soldaten an"))),
    Case("figure-format-millionen-de", "figure-format", "de", "cosmetic", DE_BUDGET,
         rep(("1,5 Millionen Euro", "1.500.000 Euro"), ("240 Millionen Euro", "240 Mio. Euro"), ("zwölf Gebäude", "12 Gebäude"))),
    Case("figure-format-en", "figure-format", "en", "cosmetic", EN_STORM,
         rep(("2 million dollars", "$2,000,000"), ("8.5 percent", "8.5%"), ("Three people", "3 people"))),
    # substantive: figures
    Case("figure-troops-de", "figure", "de", "substantive", DE_TROOPS, rep(("sollen 50.000 Soldaten", "sollen 60.000 Soldaten")),
         figures=[(50000, 60000)]),
    Case("figure-decimal-de", "figure", "de", "substantive", DE_TROOPS, rep(("8,5 Prozent", "9,5 Prozent")), figures=[(8.5, 9.5)]),
    Case("figure-scale-de", "figure", "de", "substantive", DE_BUDGET, rep(("1,5 Millionen Euro für", "2 Millionen Euro für")),
         figures=[(1500000, 2000000)]),
    Case("figure-spelled-de", "figure", "de", "substantive", DE_TROOPS, rep(("zunächst drei Stützpunkte", "zunächst vier Stützpunkte")),
         figures=[(3, 4)]),
    Case("figure-troops-en", "figure", "en", "substantive", EN_STORM, rep(("about 50,000 homes", "about 65,000 homes")),
         figures=[(50000, 65000)]),
    Case("figure-scale-en", "figure", "en", "substantive", EN_STORM, rep(("2 million dollars", "2.5 million dollars")),
         figures=[(2000000, 2500000)]),
    Case("figure-spelled-en", "figure", "en", "substantive", EN_HOSPITAL, rep(("three weeks", "five weeks")), figures=[(3, 5)]),
    Case("figure-decimal-en", "figure", "en", "substantive", EN_ELECTION, rep(("51.2 percent", "50.8 percent")),
         figures=[(51.2, 50.8)]),
    Case("figure-currency-en", "figure", "en", "substantive", EN_EARNINGS, rep(("$1.2 billion", "$1.25 billion")),
         figures=[(1200000000, 1250000000)]),
    # substantive: names, dates, negation
    Case("name-de", "name", "de", "substantive", DE_TROOPS, rep(("Ministerin Anna Müller", "Ministerin Anna Meier"))),
    Case("name-en", "name", "en", "substantive", EN_ELECTION, rep(("councillor David Johnson", "councillor David Jackson"))),
    Case("date-de", "date", "de", "substantive", DE_TROOPS, rep(("am 12. März", "am 14. März")), figures=[(12, 14)]),
    Case("date-en", "date", "en", "substantive", EN_ELECTION, rep(("on March 3", "on March 5")), figures=[(3, 5)]),
    Case("weekday-de", "date", "de", "substantive", DE_BUDGET, rep(("am Donnerstagabend", "am Mittwochabend"))),
    Case("negation-de", "negation", "de", "substantive", DE_BUDGET, rep(("Die Grundsteuer steigt nicht.", "Die Grundsteuer steigt."))),
    Case("negation-en", "negation", "en", "substantive", EN_EARNINGS, rep(("would not cut prices", "would cut prices"))),
    Case("negation-added-de", "negation", "de", "substantive", DE_TROOPS,
         rep(("werde dem Mandat zustimmen", "werde dem Mandat nicht zustimmen"))),
    # substantive: sentences and paragraphs
    Case("sentence-added-de", "sentence-added", "de", "substantive", DE_FLOOD,
         rep(("drei Keller mussten jedoch leer gepumpt werden.",
              "drei Keller mussten jedoch leer gepumpt werden. In Trier wurde ein Campingplatz geräumt."))),
    Case("sentence-added-en", "sentence-added", "en", "substantive", EN_HOSPITAL,
         rep(("The goverment blamed rising construction costs for the overrun.",
              "The goverment blamed rising construction costs for the overrun. An independent review is due next year."))),
    Case("sentence-removed-de", "sentence-removed", "de", "substantive", DE_TRAIN,
         rep((" Die ersten Züge werden im Herbst im Werk in Ulm erwartet.", ""))),
    Case("sentence-removed-en", "sentence-removed", "en", "substantive", EN_STORM,
         rep((" Three people were taken to hospital with minor injuries after a tree fell on their car near Harbour Road.", ""))),
    Case("paragraph-added-de", "paragraph-added", "de", "substantive", DE_BUDGET,
         blocks_edit(lambda b: b[:3] + ["Auch die Stadtbibliothek soll mehr Geld erhalten. Sie bekommt zwei zusätzliche Stellen und längere Öffnungszeiten am Samstag."] + b[3:])),
    Case("paragraph-removed-en", "paragraph-removed", "en", "substantive", EN_EARNINGS,
         blocks_edit(lambda b: b[:4])),
    Case("sentence-moved-de", "move", "de", "cosmetic", DE_FLOOD,
         blocks_edit(lambda b: [b[0], b[2], b[1], b[3]]),
         note="pure reorder of unchanged paragraphs: cosmetic by design (every fact still stated)"),
    Case("sentence-moved-en", "move", "en", "cosmetic", EN_ELECTION,
         rep(("Her challenger, councillor David Johnson, received 46.9 percent. Turnout was 58 percent, slightly higher than four years ago.",
              "Turnout was 58 percent, slightly higher than four years ago. Her challenger, councillor David Johnson, received 46.9 percent."))),
    Case("headline-de", "headline", "de", "substantive", DE_FLOOD,
         rep(("Hochwasser: Pegel am Rhein sinkt langsam", "Hochwasser: Pegel am Rhein steigt wieder"))),
    Case("headline-figure-en", "headline", "en", "substantive", EN_STORM,
         rep(("Storm leaves 50,000 homes without power", "Storm leaves 80,000 homes without power")), figures=[(50000, 80000)]),
    # a third, div-soup layout (no <article>/<main>; clock and comment count inside the text column)
    Case("noise-legacy-layout-de", "noise", "de", "none", DE_TRAIN, before=Chrome(2, "legacy"), after=Chrome(3, "legacy"),
         note="div-soup page: byline clock, comment count and an inline 'Lesen Sie auch' teaser inside the text column"),
    Case("noise-legacy-to-modern-en", "noise", "en", "none", EN_HOSPITAL, before=Chrome(5, "legacy"), after=Chrome(6, "modern")),
    Case("figure-legacy-de", "figure", "de", "substantive", DE_FLOOD, rep(("1.200 Einsatzkräften", "1.400 Einsatzkräften")),
         before=Chrome(4, "legacy"), after=Chrome(5, "legacy"), figures=[(1200, 1400)]),
    Case("figure-legacy-en", "figure", "en", "substantive", EN_HOSPITAL, rep(("220 beds", "240 beds")),
         before=Chrome(1, "legacy"), after=Chrome(2, "modern"), figures=[(220, 240)]),
    # a fourth layout with the patterns of real news sites (see _realworld_html)
    Case("noise-realworld-de", "noise", "de", "none", DE_TROOPS, before=Chrome(1, "realworld"), after=Chrome(2, "realworld"),
         note="rotated bare 'Lesen Sie auch:' paragraph and recommendation box, header clock and comment count, body class 'navigation'"),
    Case("noise-realworld-en", "noise", "en", "none", EN_STORM, before=Chrome(3, "realworld"), after=Chrome(4, "realworld")),
    Case("noise-classic-to-realworld-de", "noise", "de", "none", DE_BUDGET, before=Chrome(2, "classic"), after=Chrome(5, "realworld"),
         note="redesign into the navigation-heavy layout"),
    Case("figure-realworld-de", "figure", "de", "substantive", DE_TROOPS, rep(("sollen 50.000 Soldaten", "sollen 45.000 Soldaten")),
         before=Chrome(2, "realworld"), after=Chrome(3, "realworld"), figures=[(50000, 45000)],
         note="the edited paragraph holds an inline link"),
    Case("figure-realworld-en", "figure", "en", "substantive", EN_HOSPITAL, rep(("220 beds", "180 beds")),
         before=Chrome(4, "realworld"), after=Chrome(6, "realworld"), figures=[(220, 180)],
         note="the edited paragraph holds an inline link"),
    Case("negation-realworld-en", "negation", "en", "substantive", EN_EARNINGS, rep(("would not cut prices", "would cut prices")),
         before=Chrome(1, "realworld"), after=Chrome(2, "realworld")),
]


def build() -> None:
    for old in HERE.iterdir():
        if old.is_dir() and old.name[:2].isdigit():
            shutil.rmtree(old)
    for n, case in enumerate(CASES, 1):
        d = HERE / f"{n:02d}-{case.name}"
        d.mkdir()
        before_article = case.article
        after_article = case.edit(case.article)
        if case.kind == "whitespace":  # the edit introduced the problem; the fix is the later version
            before_article, after_article = after_article, before_article
        before_html = render(before_article, case.lang, case.before, charset_meta=not case.latin1_before)
        after_html = render(after_article, case.lang, case.after)
        (d / "before.html").write_bytes(before_html.encode("cp1252" if case.latin1_before else "utf-8"))
        (d / "after.html").write_bytes(after_html.encode("utf-8"))
        expected = {
            "kind": case.kind,
            "language": case.lang,
            "significance": case.significance,
            "figures": [{"before_value": b, "after_value": a} for b, a in case.figures],
        }
        if case.note:
            expected["note"] = case.note
        (d / "expected.json").write_text(json.dumps(expected, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {len(CASES)} cases to {HERE}")


if __name__ == "__main__":
    build()

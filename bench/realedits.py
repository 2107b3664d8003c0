"""Change kinds made by program on a real article page (for bench/realworld.py).

Each generator takes the page's text and its article paragraphs and returns a
(before, after) pair of HTML strings plus what a correct archive must say, or
None when the page offers no place for that change (e.g. no quotation marks).
Edits are made on the raw markup, so everything else stays byte-for-byte.

Article paragraphs are found without the product's extractor: the <p>
elements of at least 120 characters that are not mostly link text, under the
one parent that holds most such text (the classic "text density" reading).
"""

from __future__ import annotations

import html as htmllib
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Callable

import lxml.html

NOISE, TEASER, REDESIGN, COSMETIC, SUBSTANTIVE = "noise", "teaser", "redesign", "cosmetic", "substantive"


@dataclass
class Change:
    kind: str
    group: str  # NOISE, TEASER, REDESIGN (expect none), COSMETIC, SUBSTANTIVE
    before: str
    after: str
    expect: str  # none | cosmetic | substantive
    figures: list[tuple[Decimal, Decimal]] = field(default_factory=list)


@dataclass
class Para:
    text: str  # normalised text
    start: int  # raw span of <p ...>...</p> in the page
    end: int


_P = re.compile(r"<p\b[^>]*>.*?</p\s*>", re.S | re.I)
_TAG = re.compile(r"<[^>]+>")
_WS = re.compile(r"\s+")


def _text(raw: str) -> str:
    return _WS.sub(" ", htmllib.unescape(_TAG.sub("", raw))).strip()


def article_paragraphs(page: str) -> list[Para]:
    """The page's article paragraphs with their raw spans, in document order."""
    doc = lxml.html.document_fromstring(page)
    for bad in doc.xpath("//script|//style|//noscript"):
        bad.drop_tree()
    by_parent: dict[object, list[str]] = {}
    for p in doc.iter("p"):
        t = _WS.sub(" ", p.text_content()).strip()
        links = sum(len(a.text_content().strip()) for a in p.iter("a"))
        if len(t) >= 120 and links < 0.3 * len(t):
            by_parent.setdefault(p.getparent(), []).append(t)
    if not by_parent:
        return []
    best = max(by_parent.values(), key=lambda ts: sum(map(len, ts)))
    wanted = set(best)
    out = []
    for m in _P.finditer(page):
        t = _text(m.group(0))
        if t in wanted:
            out.append(Para(t, m.start(), m.end()))
            wanted.discard(t)
    return out


def _in_text(page: str, pos: int) -> bool:
    """True when ``pos`` is in text content, not inside a tag."""
    return page.rfind("<", 0, pos) <= page.rfind(">", 0, pos)


def _replace_in(page: str, para: Para, pattern: re.Pattern[str], repl: Callable[[re.Match[str]], str]) -> str | None:
    """Replace the first text-content match of ``pattern`` inside ``para``'s raw span."""
    for m in pattern.finditer(page, para.start, para.end):
        if _in_text(page, m.start()) and _in_text(page, m.end() - 1):
            new = repl(m)
            if new != m.group(0):
                return page[: m.start()] + new + page[m.end():]
    return None


def _first(paras: list[Para], fn: Callable[[Para], str | None]) -> str | None:
    for para in paras[1:] + paras[:1]:  # the lead last: many leads are bold or linked
        out = fn(para)
        if out is not None:
            return out
    return None


def _insert_after(page: str, pos: int, snippet: str) -> str:
    return page[:pos] + snippet + page[pos:]


def _after_h1(page: str) -> int:
    m = re.search(r"</h1\s*>", page, re.I)
    return m.end() if m else re.search(r"<body[^>]*>", page, re.I).end()  # type: ignore[union-attr]


# -- noise, teasers, redesign: the article text does not change -----------------------------
def _clock(lang: str, page: str, paras: list[Para]) -> Change:
    line = ("<p>Aktualisiert {t} Uhr · {n} Kommentare</p>" if lang == "de" else "<p>Updated {t} · {n} comments</p>")
    pos = _after_h1(page)
    return Change("clock+comments", NOISE, _insert_after(page, pos, line.format(t="14:05", n=85)),
                  _insert_after(page, pos, line.format(t="16:41", n=112)), "none")


def _tokens(lang: str, page: str, paras: list[Para]) -> Change:
    def version(token: str) -> str:
        head = page.lower().find("</head>")
        s = page[:head] + f'<meta name="csrf-token" content="{token}"><script>window.__t="{token}";</script>' + page[head:]
        body_end = s.lower().rfind("</body>")
        return s[:body_end] + f'<script src="/app.js?v={token}"></script>' + s[body_end:]
    return Change("scripts+tokens", NOISE, version("4c5f9cc1dcfc"), version("91a0be77e2d4"), "none")


def _nav(lang: str, page: str, paras: list[Para]) -> Change | None:
    m = re.search(r"<nav\b.*?</nav\s*>", page, re.S | re.I)
    if not m:
        return None
    items = re.findall(r"<li\b.*?</li\s*>", m.group(0), re.S | re.I)
    if len(items) < 3:
        return None
    rotated = m.group(0)
    for old, new in zip(items, items[1:] + items[:1]):
        rotated = rotated.replace(old, "\x00" + new + "\x01", 1)
    rotated = rotated.replace("\x00", "").replace("\x01", "")
    return Change("nav rotated", NOISE, page, page[: m.start()] + rotated + page[m.end():], "none")


_TEASERS = {
    "de": [("Lesen Sie auch", "Streik: 3.000 Flüge gestrichen"), ("Mehr zum Thema", "Mieten steigen um 7,5 Prozent"),
           ("Weiterlesen", "Haushalt: 12 Milliarden Euro fehlen"), ("Lesen Sie auch", "Bahn: 40 Verbindungen fallen aus")],
    "en": [("Read more", "Strike: 3,000 flights cancelled"), ("Related", "Rents rise by 7.5 percent"),
           ("Also read", "Budget: $12bn gap revealed"), ("Read more", "Rail: 40 services axed")],
}


def _teaser_p(lang: str, i: int) -> str:
    lead, head = _TEASERS[lang][i % 4]
    return f'<p>{lead}: <a href="/story/{i}">{head}</a></p>'


def _teaser_inline(lang: str, page: str, paras: list[Para]) -> Change | None:
    if len(paras) < 3:
        return None
    pos = paras[1].end
    return Change("inline teaser rotated", TEASER, _insert_after(page, pos, _teaser_p(lang, 0)),
                  _insert_after(page, pos, _teaser_p(lang, 1)), "none")


def _teaser_inserted(lang: str, page: str, paras: list[Para]) -> Change | None:
    if len(paras) < 3:
        return None
    return Change("inline teaser inserted", TEASER, page, _insert_after(page, paras[-2].end, _teaser_p(lang, 2)), "none")


def _box(lang: str, i: int, cls: str) -> str:
    title = "Mehr zum Thema" if lang == "de" else "More on this story"
    items = "".join(
        f'<a href="/story/{i}-{k}"><span>{h.split(":")[0]}</span><h3>{h.split(":")[-1].strip()}</h3></a>'
        for k, (_, h) in enumerate(_TEASERS[lang][i % 4: i % 4 + 2]))
    return f"<div{cls}><h2>{title}</h2>{items}</div>"


def _teaser_box(lang: str, page: str, paras: list[Para]) -> Change | None:
    if len(paras) < 3:
        return None
    pos = paras[2].start
    return Change("recommendation box rotated", TEASER, _insert_after(page, pos, _box(lang, 0, "")),
                  _insert_after(page, pos, _box(lang, 2, "")), "none")


def _teaser_kicker(lang: str, page: str, paras: list[Para]) -> Change | None:
    """A bare block: kicker + headline inside one link, no class anywhere."""
    if len(paras) < 4:
        return None

    def block(i: int) -> str:
        kicker, head = _TEASERS[lang][i % 4][1].split(":", 1) if ":" in _TEASERS[lang][i % 4][1] else ("", _TEASERS[lang][i % 4][1])
        return f'<div><a href="/k/{i}"><span>{kicker}</span> {head.strip()}</a></div>'
    pos = paras[3].start
    return Change("kicker teaser rotated", TEASER, _insert_after(page, pos, block(0)), _insert_after(page, pos, block(2)), "none")


def _teaser_plain(lang: str, page: str, paras: list[Para]) -> Change | None:
    """A lead-in teaser paragraph without any link (the link sits on a parent or in script)."""
    if len(paras) < 3:
        return None

    def p(i: int) -> str:
        lead, head = _TEASERS[lang][i % 4]
        return f"<p><strong>{lead}:</strong> {head}</p>"
    pos = paras[0].end
    return Change("plain lead-in teaser rotated", TEASER, _insert_after(page, pos, p(1)), _insert_after(page, pos, p(3)), "none")


def _link_list(lang: str, page: str, paras: list[Para]) -> Change | None:
    """A classless list of linked headlines after the article, rotated."""
    if not paras:
        return None

    def ul(i: int) -> str:
        heads = [h for _, h in _TEASERS[lang]]
        heads = heads[i:] + heads[:i]
        return "<ul>" + "".join(f'<li><a href="/l/{k}">{h}</a></li>' for k, h in enumerate(heads)) + "</ul>"
    pos = paras[-1].end
    return Change("headline list rotated", TEASER, _insert_after(page, pos, ul(0)), _insert_after(page, pos, ul(1)), "none")


def _redesign(lang: str, page: str, paras: list[Para]) -> Change:
    m = re.search(r"<body([^>]*)>", page, re.I)
    assert m is not None
    end = page.lower().rfind("</body>")
    inner = re.sub(r"(</(p|div|li|h\d)>)", r"\1\n", page[m.end(): end])
    after = (page[: m.start()] + '<body class="site navigation-v2 has-sidebar theme-2026">'
             '<div class="l-page"><div class="l-container l-container--wide">' + inner + "</div></div>" + page[end:])
    return Change("redesign wrappers", REDESIGN, page, after, "none")


# -- cosmetic: the wording changes, no fact does ------------------------------------------
_LONG_WORD = re.compile(r"(?<![\w&#;])([a-zäöüß]{4})([a-zäöüß])([a-zäöüß])([a-zäöüß]{2,})(?!\w)")


def _typo(lang: str, page: str, paras: list[Para]) -> Change | None:
    before = _first(paras, lambda p: _replace_in(page, p, _LONG_WORD, lambda m: m[1] + m[3] + m[2] + m[4]
                                                  if m[2] != m[3] else m[0]))
    return None if before is None else Change("typo fixed", COSMETIC, before, page, "cosmetic")


def _punctuation(lang: str, page: str, paras: list[Para]) -> Change | None:
    after = _first(paras, lambda p: _replace_in(page, p, re.compile(r"(?<=[a-zäöü]), (?=[a-zäöü])"), lambda m: " "))
    return None if after is None else Change("comma removed", COSMETIC, page, after, "cosmetic")


def _quotes(lang: str, page: str, paras: list[Para]) -> Change | None:
    pat = re.compile(r"(„|“|&bdquo;|&ldquo;|&#8222;|&#8220;)([^<“”„\"]{2,200}?)(“|”|&ldquo;|&rdquo;|&#8220;|&#8221;)")
    after = _first(paras, lambda p: _replace_in(page, p, pat, lambda m: f'"{m[2]}"'))
    return None if after is None else Change("quote style", COSMETIC, page, after, "cosmetic")


def _whitespace(lang: str, page: str, paras: list[Para]) -> Change | None:
    before = _first(paras, lambda p: _replace_in(page, p, re.compile(r"(?<=[a-zäöü]{3}) (?=[a-zäöü]{3})"), lambda m: ""))
    return None if before is None else Change("missing space fixed", COSMETIC, before, page, "cosmetic")


# -- substantive: a fact changes -----------------------------------------------------------
_SCALE = r"(?!\s*(Mio|Mrd|Million|Milliard|Tausend|million|billion|thousand|bn|m\b|k\b|Uhr|a\.m|p\.m|am\b|pm\b))"
_NUMBER = {
    "de": re.compile(r"(?<![\w.,:/\-#&])(\d{1,3}(?:\.\d{3})+|\d+)(?![\d.,:/]?\d)" + _SCALE),
    "en": re.compile(r"(?<![\w.,:/\-#&])(\d{1,3}(?:,\d{3})+|\d+)(?![\d.,:/]?\d)" + _SCALE),
}


_MONTH_AFTER = re.compile(r"\.?\s*(Jan|Feb|März|Mär|Apr|Mai|Jun|Jul|Aug|Sep|Okt|Nov|Dez|January|February|March|April|May|"
                          r"June|July|August|September|October|November|December)", re.I)


def _figure(lang: str, page: str, paras: list[Para]) -> list[Change]:
    """Up to three figure edits, each in another paragraph (one digit changed, so both values are known)."""
    out: list[Change] = []
    for para in paras[1:] + paras[:1]:
        found: list[tuple[Decimal, Decimal]] = []

        def bump(m: re.Match[str]) -> str:
            digits = m[1].replace(".", "").replace(",", "")
            if len(digits) == 4 and digits[:2] in ("19", "20"):
                return m[0]  # a year: a date change, not a figure
            if _MONTH_AFTER.match(page, m.end(1)):
                return m[0]  # "25. Juni", "25 June": a date
            new = str(int(m[1][0]) % 9 + 1) + m[1][1:]
            found.append((Decimal(digits), Decimal(new.replace(".", "").replace(",", ""))))
            return new + m[0][len(m[1]):]

        after = _replace_in(page, para, _NUMBER[lang], bump)
        if after is not None:
            out.append(Change("figure changed", SUBSTANTIVE, page, after, "substantive", found[-1:]))
        if len(out) == 3:
            break
    return out


def _negation(lang: str, page: str, paras: list[Para]) -> Change | None:
    pat = re.compile(r" (ist|sind|war|waren|hat|haben) (?=[a-zäöü])" if lang == "de" else r" (is|are|was|were|has|have) (?=[a-z])")
    word = "nicht" if lang == "de" else "not"
    after = _first(paras, lambda p: _replace_in(page, p, pat, lambda m: f" {m[1]} {word} "))
    return None if after is None else Change("negation added", SUBSTANTIVE, page, after, "substantive")


def _name(lang: str, page: str, paras: list[Para]) -> Change | None:
    pat = re.compile(r"(?<=[a-zäöü,] )([A-ZÄÖÜ][a-zäöüß]{4,})(?=[ ,.])")
    new = "Hoffmann" if lang == "de" else "Whitfield"
    after = _first(paras, lambda p: _replace_in(page, p, pat, lambda m: new))
    return None if after is None else Change("name/word changed", SUBSTANTIVE, page, after, "substantive")


_SENTENCE = {"de": " Ein Sprecher der Behörde wollte sich dazu am Abend nicht äußern.",
             "en": " A spokesperson for the agency declined to comment on the report."}


def _sentence_added(lang: str, page: str, paras: list[Para]) -> Change | None:
    if len(paras) < 2:
        return None
    p = paras[1]
    close = page.rfind("</", p.start, p.end)
    return Change("sentence added", SUBSTANTIVE, page, _insert_after(page, close, _SENTENCE[lang]), "substantive")


def _sentence_removed(lang: str, page: str, paras: list[Para]) -> Change | None:
    pat = re.compile(r"(?<=[a-zäöü\d][.!?]) [A-ZÄÖÜ][^<>]{20,300}?[a-zäöü\d][.!?](?=\s*</p)")
    after = _first(paras, lambda p: _replace_in(page, p, pat, lambda m: ""))
    return None if after is None else Change("sentence removed", SUBSTANTIVE, page, after, "substantive")


_PARAGRAPH = {"de": "<p>Unterdessen kündigte der Verband an, die Entscheidung vor Gericht prüfen zu lassen. "
                    "Ein Termin für die mündliche Verhandlung steht noch nicht fest.</p>",
              "en": "<p>Meanwhile, the association said it would challenge the decision in court. "
                    "No date has been set for a hearing yet.</p>"}


def _paragraph_added(lang: str, page: str, paras: list[Para]) -> Change | None:
    if len(paras) < 3:
        return None
    return Change("paragraph added", SUBSTANTIVE, page, _insert_after(page, paras[2].end, _PARAGRAPH[lang]), "substantive")


def _paragraph_removed(lang: str, page: str, paras: list[Para]) -> Change | None:
    if len(paras) < 3:
        return None
    p = paras[2]
    return Change("paragraph removed", SUBSTANTIVE, page, page[: p.start] + page[p.end:], "substantive")


GENERATORS = [_clock, _tokens, _nav, _teaser_inline, _teaser_inserted, _teaser_box, _teaser_kicker, _teaser_plain,
              _link_list, _redesign,
              _typo, _punctuation, _quotes, _whitespace,
              _figure, _negation, _name, _sentence_added, _sentence_removed, _paragraph_added, _paragraph_removed]


def changes(lang: str, page: str) -> tuple[list[Para], list[Change]]:
    """All change kinds this page allows."""
    paras = article_paragraphs(page)
    out = []
    for gen in GENERATORS:
        ch = gen(lang, page, paras)  # type: ignore[operator]
        if isinstance(ch, list):
            out.extend(ch)
        elif ch is not None:
            out.append(ch)
    return paras, out

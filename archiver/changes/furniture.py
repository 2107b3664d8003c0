"""Page furniture and teasers in a parsed page: everything that is not article text.

Why: a site rotates its navigation, teasers and recommendation boxes on every
request; if any of that is read as article text, each rotation is an "edit",
and a teaser headline with a number is a false "figure changed" alert. So,
before any extractor runs, :func:`strip_furniture` removes from the tree:

- furniture by tag (nav, aside, footer, forms, ...) and by the class/id/role
  *tokens of the element itself* (``nav``, ``navigation``, ``menu``,
  ``teaser``, ``related``, ``recommend...``, ``newsletter``, ``promo``,
  ``outbrain``, ``taboola``, ...). A token is split at ``-``, ``_`` and
  camelCase, so ``main-nav`` and ``relatedArticles`` count but ``canvas`` or
  ``advance`` do not;
- inline teasers: a short block that opens with a lead-in ("Lesen Sie auch:",
  "Mehr zum Thema:", "Weiterlesen:", "Read more:", "Related:", "Also read:"),
  a paragraph or heading that is mostly link text, and link-dominated boxes
  or short headline-like blocks (kicker + headline + link) without prose.

The *spine* (the article root, the element holding most paragraph prose, and
all their ancestors) is never removed for its class names, so a ``<body
class="... navigation ...">`` or a ``<div class="layout--with-sidebar">``
around the article cannot discard the article. A paragraph with an inline
link or two stays article text: only link-dominated blocks are teasers.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any, Callable

__all__ = ["Stats", "is_furniture", "page_stats", "strip_furniture", "LEAD_IN"]

CHROME_TAGS = frozenset({"nav", "aside", "footer", "header", "form", "button", "select", "svg", "iframe", "dialog", "menu"})
_WORDS = frozenset({
    "nav", "navi", "navigation", "navbar", "menu", "menue", "submenu", "teaser", "teasers", "related", "promo",
    "promos", "promoted", "promotion", "ad", "ads", "anzeige", "werbung", "sidebar", "widget", "widgets", "comment",
    "comments", "kommentar", "kommentare", "disqus", "consent", "share", "sharing", "shariff", "social", "mostread",
    "meistgelesen", "trending", "popular", "banner", "footer", "clock", "ticker", "paywall", "subscribe",
    "newsletter", "breadcrumb", "breadcrumbs", "masthead", "toolbar", "skip", "skiplink",
})
_PREFIXES = ("recommend", "advert", "sponsor", "breadcrumb", "cookie", "teaser", "newsletter", "outbrain",
             "taboola", "related", "empfehlung", "plista")
_PAIRS = frozenset({("most", "read"), ("most", "popular"), ("read", "more"), ("mehr", "zum"), ("also", "read"),
                    ("more", "stories"), ("more", "news")})
_ROLES = frozenset({"navigation", "banner", "complementary", "contentinfo", "search", "menu", "menubar", "dialog",
                    "alertdialog", "tablist"})
_SPLIT = re.compile(r"[\s_:\-.]+|(?<=[a-z])(?=[A-Z])")

#: lead-ins of inline teasers, German and English (matched at a block's start)
LEAD_IN = re.compile(
    r"^\s*(lesen sie (auch|mehr|hier)|mehr (zum thema|dazu|lesen|zu diesem thema)|weiterlesen|weitere artikel|"
    r"auch interessant|das könnte sie (auch )?interessieren|zum thema|empfehlungen?( der redaktion)?|"
    r"read more|read also|also read|more on this( story)?|more from|related( stories| articles| coverage)?|"
    r"see also|further reading|recommended( reading)?|you might also like|you may also like)\s*[:：»›>|–—-]",
    re.IGNORECASE,
)
_TEASER_MAX = 300  # characters: a lead-in block longer than this is prose that happens to start so
_BOX_MAX = 250  # characters: a headline-like block (kicker + headline + link) is short
_PROSE_P = 100  # non-link characters that make a paragraph prose
_BLOCKS = frozenset({"p", "li", "h2", "h3", "h4", "h5", "h6", "div", "section", "figure", "ul", "ol", "article",
                     "aside", "table", "dl", "blockquote"})
_CONTAINERS = frozenset({"div", "section", "figure", "ul", "ol", "article", "aside", "table", "dl"})
_HEADINGS = frozenset({"h2", "h3", "h4", "h5", "h6"})


def _n(s: str | None) -> int:
    """Non-whitespace characters: layout whitespace must not move a ratio."""
    if not s or s.isspace():  # most tails: indentation between tags
        return 0
    return len("".join(s.split()))


def _parts(value: str) -> list[str]:
    return [p.lower() for p in _SPLIT.split(value) if p]


def is_furniture(el: Any) -> bool:
    """True when the element's own tag, class/id tokens, role or hidden state mark it as furniture."""
    tag = el.tag if isinstance(el.tag, str) else ""
    if tag in CHROME_TAGS:
        return True
    if (el.get("aria-hidden") or "").lower() == "true" or el.get("hidden") is not None:
        return True
    role = (el.get("role") or "").lower().split()
    if any(r in _ROLES for r in role):
        return True
    for attr in ("class", "id"):
        value = el.get(attr)
        if value and any(_furniture_token(token) for token in value.split()):
            return True
    return False


@functools.lru_cache(maxsize=8192)
def _furniture_token(token: str) -> bool:
    """One class or id token marks furniture (cached: a page repeats its few
    hundred class names over thousands of elements)."""
    parts = _parts(token)
    if any(p in _WORDS or p.startswith(_PREFIXES) for p in parts):
        return True
    return any(pair in _PAIRS for pair in zip(parts, parts[1:]))


@dataclass
class Stats:
    """Text measures of one element and its subtree (non-whitespace characters)."""

    text: int = 0  # all text
    links: int = 0  # text inside <a href> that leaves the page
    prose: int = 0  # non-link text of <p> elements
    direct_prose: int = 0  # prose of <p> children only: where the article's paragraphs sit
    long_p: bool = False  # holds a prose paragraph


def page_stats(doc: Any, tick: Callable[[], None] | None = None) -> dict[Any, Stats]:
    """Stats for every element, children before parents (one linear pass).

    ``tick`` is called every 1,000 elements so a caller can enforce a deadline.
    """
    elements = list(doc.iter())
    stats: dict[Any, Stats] = {}
    empty = Stats()  # comments and processing instructions: no text of their own (never changed)
    for i, el in enumerate(reversed(elements)):
        if tick is not None and i % 1000 == 999:
            tick()
        tag = el.tag
        if not isinstance(tag, str):
            stats[el] = empty
            continue
        text = _n(el.text)
        links = prose = direct_prose = 0
        long_p = False
        for child in el:
            text += _n(child.tail)
            cs = stats.get(child)
            if cs is None:
                continue
            text += cs.text
            links += cs.links
            prose += cs.prose
            long_p = long_p or cs.long_p
            if child.tag == "p":
                direct_prose += cs.prose
        if tag == "a":
            href = el.get("href")
            if href is not None and not href.startswith("#"):
                links = text
        elif tag == "p":
            prose = max(0, text - links)
            long_p = prose >= _PROSE_P
        stats[el] = Stats(text, links, prose, direct_prose, long_p)
    return stats


def _article_root(doc: Any, body: Any, stats: dict[Any, Stats]) -> Any:
    """The <article> holding most prose (not a teaser <article>), else <main>, else <body>.

    <article> comes first: comments below an article often sit in a second
    ``role="main"`` area with more prose than the article itself.
    """
    for xp in ("//article", "//main", "//*[@role='main']"):
        cands = [el for el in doc.xpath(xp) if not is_furniture(el)
                 and not any(is_furniture(a) for a in el.iterancestors() if a.tag not in ("html", "body"))]
        if cands and max(stats[c].prose for c in cands) > 0:
            return max(cands, key=lambda c: stats[c].prose)  # the first of equals
    return body


def _spine(root: Any, stats: dict[Any, Stats]) -> set[Any]:
    """The root, the element whose own <p> children hold most prose, and their ancestors."""
    prose_box = max(root.iter(), key=lambda e: stats[e].direct_prose if isinstance(e.tag, str) else -1)
    spine: set[Any] = set()
    for start in (root, prose_box):
        spine.add(start)
        spine.update(start.iterancestors())
    return spine


def _is_teaser(el: Any, st: Stats, text: Callable[[Any], str]) -> bool:
    tag = el.tag
    if st.text == 0 or tag not in _BLOCKS:
        return False
    if st.text <= _TEASER_MAX and LEAD_IN.match(text(el)):
        return True
    if tag in ("p", "li") or tag in _HEADINGS:
        return st.links > 0 and st.links >= 0.6 * st.text and st.prose - st.links < _PROSE_P
    if st.long_p:
        return False
    if st.links > 0 and st.links >= 0.5 * st.text:
        return True  # a link-dominated box: recommendations, "Mehr zum Thema"
    if st.links > 0 and st.text <= _BOX_MAX and tag in _CONTAINERS:
        return any(c.tag in _HEADINGS for c in el.iter())  # kicker + headline + link
    return False


@dataclass(frozen=True)
class Stripped:
    """What :func:`strip_furniture` found: the article root and how much it removed."""

    root: Any
    removed: int


def strip_furniture(doc: Any, tick: Callable[[], None] | None = None) -> Stripped:
    """Remove furniture and teasers from ``doc`` in place; return the article root."""
    body = doc.find("body")
    if body is None:
        body = doc
    stats = page_stats(doc, tick)
    root = _article_root(doc, body, stats)
    spine = _spine(root, stats)
    in_article = root is not body

    def text(el: Any) -> str:
        return " ".join(el.text_content().split())

    drop: list[Any] = []
    walker = body.iter()
    skip_until: Any = None
    for el in walker:
        if skip_until is not None:
            if skip_until in el.iterancestors():
                continue
            skip_until = None
        if not isinstance(el.tag, str) or el in spine:
            continue
        if el.tag == "header" and in_article and root in el.iterancestors():
            continue  # an article's own header holds its headline and lead
        if is_furniture(el) or _is_teaser(el, stats[el], text):
            drop.append(el)
            skip_until = el
    for el in drop:
        el.drop_tree()
    return Stripped(root, len(drop))

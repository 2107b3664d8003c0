"""HTML bytes -> the article: title, text blocks in reading order, language.

Why: edits are judged on the article alone, so everything around it (nav,
ads, teasers, "most read" sidebars, clocks, comment counts, cookie banners,
tokens) must be left out, the same way on every capture. The page is parsed
once; :mod:`archiver.changes.furniture` strips furniture and teasers from the
tree; then one of two methods reads the article:

- ``trafilatura``: its main-content detection on the stripped tree;
- ``blocks``: headings, paragraphs and list items of the article area.

``method=None`` picks one (trafilatura unless it returned nothing, a teaser,
or one structure-less blob). The caller keeps the method per URL (it is
stored with the text) and passes it back for the next capture, so page
furniture can never flip a page between methods from one capture to the next.

Work is bounded (:class:`ExtractLimits`, :mod:`archiver.changes.bounds`):
the document is cut at a number of elements, a nesting depth and a text
size, and a deadline is checked between steps; what was cut is recorded in
``Article.notes`` ("extraction: truncated ..."). The result is deterministic
for given bytes and limits.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import lxml.etree as etree
import lxml.html

from archiver.changes.bounds import Deadline, ExtractLimits, cap_markup, cap_tree
from archiver.changes.decode import check_text, decode_html
from archiver.changes.figures import guess_language
from archiver.changes.furniture import LEAD_IN, is_furniture, strip_furniture
from archiver.changes.readerid import reader_id  # imported with this module: its code digest is of the code run

log = logging.getLogger(__name__)

__all__ = ["Article", "ExtractLimits", "METHODS", "ParsedPage", "collapse_whitespace", "decode_html", "deterministic",
           "extract_article", "extract_parsed", "parse_page", "reader_id"]

METHODS = ("trafilatura", "blocks")


@dataclass(frozen=True)
class Article:
    """The extracted article. ``blocks`` are headings, lead, paragraphs, list items.

    ``method`` is how the text was read (one of :data:`METHODS`; None for
    texts stored before it was recorded); ``notes`` say what was cut.
    """

    title: str
    blocks: tuple[str, ...]
    language: str | None
    method: str | None = None
    notes: tuple[str, ...] = ()

    def text(self) -> str:
        """Title and blocks separated by blank lines (what ``show --text`` prints)."""
        parts = [self.title] if self.title else []
        parts.extend(self.blocks)
        return "\n\n".join(parts)

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"title": self.title, "blocks": list(self.blocks), "language": self.language}
        if self.method:
            d["method"] = self.method
        if self.notes:
            d["notes"] = list(self.notes)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Article":
        method = d.get("method")
        return cls(str(d.get("title") or ""), tuple(str(b) for b in d.get("blocks") or ()), d.get("language"),
                   method if method in METHODS else None, tuple(str(n) for n in d.get("notes") or ()))


_TIME_LIMIT_NOTE = "extraction: time limit reached; block reading used"


def deterministic(article: Article) -> bool:
    """Whether extracting the same bytes the same way again gives this article
    (not when the time limit picked the reading: that depends on the machine)."""
    return _TIME_LIMIT_NOTE not in article.notes


_BLOCK_TAGS = frozenset({"address", "article", "aside", "blockquote", "dd", "div", "dl", "dt", "figcaption", "figure",
                         "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav", "ol", "p",
                         "pre", "section", "table", "td", "th", "tr", "ul", "br"})
_DROP = "//script|//style|//noscript|//template"
#: whole blocks that are chrome even when an extractor keeps them (only short blocks)
_CHROME_BLOCK = re.compile(
    r"^(\d+\s+(Kommentare?|comments?)|Stand:.*|Updated:?.*|Aktualisiert:?.*|Zuletzt aktualisiert.*|Veröffentlicht.*|"
    r"Published.*|Last (updated|modified).*|Lesezeit:?.*|\d+\s*min(\.|uten)?\s+(Lesezeit|read)|"
    r"Anzeige|Advertisement|Werbung|Mehr zum Thema:?|Read more:?|Weiterlesen|Teilen|Share)$",
    re.IGNORECASE,
)
_CHROME_BLOCK_MAX = 120
#: one part of a dateline such as "14:05 Uhr · 85 Kommentare · 4 Min. Lesezeit"
_META_PART = re.compile(
    r"^((am|on|at|um|vom)\s+)?(\d{1,2}\.\s?(\d{1,2}\.|[A-Za-zä]+\.?)\s?\d{2,4},?\s*|[A-Z][a-z]+\.? \d{1,2},? \d{4},?\s*)?"
    r"((um|at)\s+)?(\d{1,2}[:.]\d{2}\s*(Uhr|a\.m\.|p\.m\.|am|pm)?\s*([A-Z]{2,4})?)?$"
    r"|^\d+\s+(Kommentare?|comments?|Min\.?|Minuten|min)(\s+(Lesezeit|read))?$",
    re.IGNORECASE,
)
_TEASER_BLOCK_MAX = 300


def collapse_whitespace(s: str) -> str:
    """Whitespace runs as one space, trimmed (``str.split`` splits at exactly
    what ``\\s`` matches, and is several times faster than a regex)."""
    return " ".join(s.split())


_PARSERS = threading.local()


def html_parser() -> Any:
    """This thread's HTML parser (lxml parsers are not shared between threads).

    It makes the same trees as ``lxml.html``'s own parser, with the same
    element classes (``HtmlElement``, ``HtmlComment``, ...), but picks each
    element's class in C: ``lxml.html`` asks a Python method for every
    element object it hands out, about a tenth of a page's extraction time
    (trafilatura's copies of the tree inherit the parser, so they gain too).
    ``lxml.html``'s form classes (``FormElement``, ``InputElement``, ...) are
    not used: nothing here reads form values.
    """
    parser = getattr(_PARSERS, "parser", None)
    if parser is None:
        parser = etree.HTMLParser()
        parser.set_element_class_lookup(etree.ElementDefaultClassLookup(
            element=lxml.html.HtmlElement, comment=lxml.html.HtmlComment,
            pi=lxml.html.HtmlProcessingInstruction, entity=lxml.html.HtmlEntity))
        _PARSERS.parser = parser
    return parser


def _parse(html: str) -> Any | None:
    html = re.sub(r"^\s*<\?xml[^>]*>", "", html)
    if not html or html.isspace():
        return None
    try:
        return lxml.html.document_fromstring(html, parser=html_parser())
    except (etree.ParserError, ValueError):
        return None


def _language(doc: Any, hint: str | None, text: str) -> str | None:
    cands: list[str] = []
    if doc is not None:
        cands.append(doc.get("lang") or doc.get("{http://www.w3.org/XML/1998/namespace}lang") or "")
        for meta in doc.iter("meta"):
            key = (meta.get("http-equiv") or meta.get("property") or meta.get("name") or "").lower()
            if key in ("content-language", "og:locale", "language", "dc.language"):
                cands.append(meta.get("content") or "")
    cands.append(hint or "")
    for c in cands:
        c = c.strip().replace("_", "-").split(",")[0]
        if re.fullmatch(r"[A-Za-z]{2,3}(-[A-Za-z0-9]+)*", c):
            return c.split("-")[0].lower()
    return guess_language(text)


def _title(doc: Any, root: Any) -> str:
    for scope in (root, doc):
        for h1 in scope.iter("h1"):
            if scope is doc and any(is_furniture(a) for a in h1.iterancestors() if a.tag not in ("html", "body")):
                continue
            t = collapse_whitespace(h1.text_content())
            if t:
                return t
    for meta in doc.iter("meta"):
        if (meta.get("property") or meta.get("name") or "").lower() in ("og:title", "twitter:title"):
            t = collapse_whitespace(meta.get("content") or "")
            if t:
                return t
    t_el = doc.find(".//title")
    if t_el is not None:
        parts = re.split(r"\s+[|–—-]\s+", collapse_whitespace(t_el.text_content()))
        return max(parts, key=len) if parts else ""
    return ""


def _pieces(el: Any) -> list[str]:
    """Text of ``el`` split at block-level elements and <br>: paragraphs never glue ("adds.Some")."""
    if len(el) == 0:  # most paragraphs: their own text, nothing to split
        t = collapse_whitespace(el.text or "")
        return [t] if t else []
    out: list[str] = []
    cur: list[str] = []

    def flush() -> None:
        t = collapse_whitespace("".join(cur))
        if t:
            out.append(t)
        cur.clear()

    for event, node in etree.iterwalk(el, events=("start", "end")):
        if not isinstance(node.tag, str):
            if event == "end" and node is not el:
                cur.append(" " + (node.tail or ""))
            continue
        block = node.tag in _BLOCK_TAGS
        if event == "start":
            if block:
                flush()
            cur.append(node.text or "")
        else:
            if block:
                flush()
            if node is not el:
                cur.append(node.tail or "")
    flush()
    return out


def _inline_text(el: Any) -> str:
    """One block's text with <br> as a space (``text_content`` would glue the lines)."""
    return " ".join(_pieces(el))


def _block_reading(root: Any) -> list[str]:
    """Headings, paragraphs and list items of the (already stripped) article area."""
    out: list[str] = []
    for el in root.iter("h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "blockquote"):
        if el.tag in ("p", "li") and any(a.tag in ("li", "blockquote") for a in el.iterancestors()):
            continue
        t = _inline_text(el)
        if t:
            out.append(t)
    return out or _pieces(root)  # no block elements at all: the text, split at block boundaries


_TRAFILATURA_OPTIONS: list[Any] = []


def _trafilatura_options() -> Any:
    """The one options object every call shares (trafilatura never changes it;
    built per call it costs a ConfigParser read per page). Output format
    "txt": ``bare_extraction`` then hands back the content tree without also
    rendering it as text ("python" does, and we read the tree)."""
    if not _TRAFILATURA_OPTIONS:
        from trafilatura.settings import Extractor

        _TRAFILATURA_OPTIONS.append(Extractor(
            output_format="txt", comments=False, tables=True, images=False, links=False,
            with_metadata=False, dedup=False,
        ))
    return _TRAFILATURA_OPTIONS[0]


def _trafilatura_blocks(doc: Any) -> list[str]:
    # bare_extraction hands back the content tree itself: no XML round trip,
    # and no content fingerprint (extract() computes one we do not use).
    # Given a tree, it works on a copy.
    import trafilatura  # here, not at the top: a reader of stored articles (history's figures) never loads it

    try:
        res = trafilatura.bare_extraction(doc, options=_trafilatura_options())
    except Exception as exc:  # trafilatura raises many types on odd input
        log.debug("trafilatura failed: %s", exc)
        return []
    main = getattr(res, "body", None) if res else None
    if main is None or len(main) == 0:
        return []
    blocks: list[str] = []
    for el in main:
        if el.tag == "list":
            blocks.extend(collapse_whitespace(" ".join(it.itertext())) for it in el.iter("item"))
        elif el.tag == "table":
            for row in el.iter("row"):
                blocks.append(" | ".join(collapse_whitespace(" ".join(c.itertext())) for c in row.iter("cell")))
        else:
            blocks.append(collapse_whitespace(" ".join(el.itertext())))
    return [b for b in blocks if b]


def _is_dateline(block: str) -> bool:
    """A short block made only of dates, times, comment counts and reading times."""
    if len(block) > _CHROME_BLOCK_MAX:
        return False
    return all(p and _META_PART.match(p) for p in (p.strip() for p in re.split(r"[·|•]", block)))


def _clean(blocks: list[str], title: str) -> list[str]:
    out = [b for b in blocks
           if not (len(b) <= _CHROME_BLOCK_MAX and _CHROME_BLOCK.match(b)) and not _is_dateline(b)
           and not (len(b) <= _TEASER_BLOCK_MAX and LEAD_IN.match(b))]
    if out and title and collapse_whitespace(out[0]) == title:
        out = out[1:]
    return out


def _choose(doc: Any, root: Any, title: str, method: str | None, deadline: Deadline,
            notes: list[str]) -> tuple[str, list[str]]:
    """Run the requested method (or pick one); fall back to the other when it reads nothing.

    The block reading runs only when it is needed: for ``blocks``, to pick a
    method, or when trafilatura read nothing -- a page read with trafilatura
    before (most re-captures) costs one reading, not two. Neither reading
    changes the tree (trafilatura works on a copy), so the order is free."""
    cache: list[list[str]] = []

    def reading() -> list[str]:
        if not cache:
            cache.append(_clean(_block_reading(root), title))
        return cache[0]

    if method == "blocks" and reading():
        return "blocks", reading()
    if deadline.passed():  # trafilatura is the expensive step; the cheap reading stands
        notes.append(_TIME_LIMIT_NOTE)
        return "blocks", reading()
    main = _clean(_trafilatura_blocks(doc), title)
    if method == "trafilatura":
        return ("trafilatura", main) if main else ("blocks", reading())
    got, fb = sum(map(len, main)), sum(map(len, reading()))
    # empty, teaser-only, or trafilatura's structure-less baseline blob
    if got == 0 or got < 0.4 * fb or (len(main) <= 1 and len(reading()) >= 2):
        return "blocks", reading()
    return "trafilatura", main


@dataclass
class ParsedPage:
    """A page decoded and parsed once (bounded by :class:`ExtractLimits`), before
    extraction changes the tree: a caller may read the untouched tree first (the
    requisite scan does), then hand it to :func:`extract_parsed`, which consumes it."""

    doc: Any | None  # the lxml document; None when the markup does not parse
    html: str  # the decoded markup, cut to the limits
    notes: list[str]
    started: float  # the clock when parsing began: the time limit counts from here


def parse_page(
    body: bytes, content_type: str | None, limits: ExtractLimits, clock: Callable[[], float] = time.monotonic,
) -> ParsedPage:
    """Decode and parse a response body, within the element and size limits.

    Raises :class:`ExtractError` for content that is not text at all.
    """
    started = clock()
    check_text(body, content_type)
    notes: list[str] = []
    html = cap_markup(decode_html(body, content_type), limits, notes)
    return ParsedPage(_parse(html), html, notes, started)


def extract_parsed(
    page: ParsedPage,
    *,
    url: str | None = None,
    language_hint: str | None = None,
    method: str | None = None,
    limits: ExtractLimits | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Article:
    """The article of a parsed page (see :func:`extract_article`); ``page.doc`` is changed."""
    limits = limits or ExtractLimits()
    deadline = Deadline(page.started + limits.timeout, clock)
    notes = page.notes
    doc = page.doc
    if doc is None:
        text = collapse_whitespace(page.html)[: limits.max_text]
        return Article("", (text,) if text else (), _language(None, language_hint, text), "blocks", tuple(notes))
    for bad in doc.xpath(_DROP):
        bad.drop_tree()
    cap_tree(doc, limits, notes, len(page.html))
    deadline.check()
    stripped = strip_furniture(doc, deadline.check)
    title = _title(doc, stripped.root)
    deadline.check()
    used, blocks = _choose(doc, stripped.root, title, method if method in METHODS else None, deadline, notes)
    text = " ".join([title, *blocks])
    if notes:
        log.warning("%s: %s", url or "page", "; ".join(notes))
    return Article(title, tuple(blocks), _language(doc, language_hint, text), used, tuple(notes))


def extract_article(
    body: bytes,
    *,
    content_type: str | None = None,
    url: str | None = None,
    language_hint: str | None = None,
    method: str | None = None,
    limits: ExtractLimits | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Article:
    """Extract the article from an HTML response body.

    ``method`` (one of :data:`METHODS`) repeats the method of an earlier
    capture of the same page. Raises :class:`ExtractError` for content that
    is not text at all, and when the time limit passes before any text was
    read (then only the payload digest can tell versions apart).
    """
    limits = limits or ExtractLimits()
    page = parse_page(body, content_type, limits, clock)
    return extract_parsed(page, url=url, language_hint=language_hint, method=method, limits=limits, clock=clock)

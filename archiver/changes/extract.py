"""HTML bytes -> the article: title, text blocks in reading order, language.

Why: edits are judged on the article alone, so everything around it (nav,
ads, teasers, "most read" sidebars, clocks, comment counts, cookie banners,
tokens) must be left out, the same way on every capture. trafilatura does the
main-content detection; when it returns nothing or only a teaser, a
conservative whole-body reading of headings, paragraphs and list items (minus
page chrome) is used instead. The result is deterministic for given bytes.
"""

from __future__ import annotations

import codecs
import logging
import re
from dataclasses import dataclass
from typing import Any

import lxml.etree as etree
import lxml.html
import trafilatura

from archiver.changes.figures import guess_language
from archiver.errors import ExtractError

log = logging.getLogger(__name__)

__all__ = ["Article", "decode_html", "extract_article"]


@dataclass(frozen=True)
class Article:
    """The extracted article. ``blocks`` are headings, lead, paragraphs, list items."""

    title: str
    blocks: tuple[str, ...]
    language: str | None

    def text(self) -> str:
        """Title and blocks separated by blank lines (what ``show --text`` prints)."""
        parts = [self.title] if self.title else []
        parts.extend(self.blocks)
        return "\n\n".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {"title": self.title, "blocks": list(self.blocks), "language": self.language}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Article":
        return cls(str(d.get("title") or ""), tuple(str(b) for b in d.get("blocks") or ()), d.get("language"))


_WS = re.compile(r"\s+")
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_\-:.]+)""", re.IGNORECASE)
_BINARY_MAGIC = (b"\x89PNG", b"GIF8", b"\xff\xd8\xff", b"%PDF", b"PK\x03\x04", b"\x1f\x8b", b"RIFF", b"OggS", b"ID3")
_NON_TEXT_TYPES = ("image/", "audio/", "video/", "font/", "application/pdf", "application/zip", "application/octet-stream", "application/gzip")

#: class/id fragments that mark page chrome in the fallback reading
_CHROME_RE = re.compile(
    r"(^|[\s_-])(nav|navigation|menu|teaser|teasers|related|recommend\w*|promo|ad|ads|advert\w*|anzeige|sponsor\w*|"
    r"sidebar|widget|comment\w*|kommentar\w*|cookie\w*|consent|newsletter|share|sharing|social|"
    r"most-?read|meistgelesen|trending|popular|breadcrumb\w*|banner|footer|clock|ticker|paywall|subscribe)($|[\s_-])",
    re.IGNORECASE,
)
_CHROME_TAGS = {"nav", "aside", "footer", "header", "script", "style", "form", "noscript", "template", "button", "select", "svg", "iframe"}
#: whole blocks that are chrome even when an extractor keeps them
_CHROME_BLOCK = re.compile(
    r"^(\d+\s+(Kommentare?|comments?)|Stand:.*|Updated:?.*|Aktualisiert:?.*|Lesezeit:?.*|\d+\s*min(\.|uten)?\s+(Lesezeit|read)|"
    r"Anzeige|Advertisement|Werbung|Mehr zum Thema:?|Read more:?|Weiterlesen|Teilen|Share)$",
    re.IGNORECASE,
)


def _norm(s: str) -> str:
    return _WS.sub(" ", s).strip()


def _lookup(name: str | None) -> str | None:
    if not name:
        return None
    name = name.strip().strip("\"'").lower()
    if name in ("iso-8859-1", "latin-1", "latin1", "us-ascii", "ascii", "iso8859-1"):
        return "cp1252"  # what browsers do (WHATWG encoding standard)
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def decode_html(body: bytes, content_type: str | None) -> str:
    """Bytes -> str: BOM, header charset, <meta> charset, UTF-8 if valid, else cp1252."""
    if body.startswith(codecs.BOM_UTF8):
        return body[3:].decode("utf-8", errors="replace")
    for bom, enc in ((codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be")):
        if body.startswith(bom):
            return body[2:].decode(enc, errors="replace")
    candidates: list[str | None] = []
    if content_type:
        m = re.search(r"charset\s*=\s*([^;\s]+)", content_type, re.IGNORECASE)
        if m:
            candidates.append(_lookup(m.group(1)))
    m2 = _META_CHARSET.search(body[:4096])
    if m2:
        candidates.append(_lookup(m2.group(1).decode("ascii", "ignore")))
    for cand in candidates:
        if cand:
            if cand.startswith("utf-16"):
                continue  # a utf-16 declaration inside an 8-bit readable page is a lie
            try:
                return body.decode(cand)
            except UnicodeDecodeError:
                if cand == "utf-8":
                    break
                return body.decode(cand, errors="replace")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return body.decode("cp1252", errors="replace")


def _check_text(body: bytes, content_type: str | None) -> None:
    ctype = (content_type or "").split(";")[0].strip().lower()
    if any(ctype.startswith(t) for t in _NON_TEXT_TYPES) or body.startswith(_BINARY_MAGIC):
        raise ExtractError(f"not an HTML/text document ({ctype or 'binary content'})")
    head = body[:4096]
    if head and head.count(b"\x00") > len(head) // 10 and not body.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise ExtractError("not an HTML/text document (binary content)")


def _parse(html: str) -> Any | None:
    html = re.sub(r"^\s*<\?xml[^>]*>", "", html)
    if not html.strip():
        return None
    try:
        return lxml.html.document_fromstring(html)
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


def _in_chrome(el: Any, stop: Any = None) -> bool:
    """True when ``el`` or an ancestor (below ``stop``) is page chrome.

    A <header> inside the article root (``stop`` is its parent) holds the
    headline and lead, so it only counts as chrome outside an article.
    """
    article_scope = stop is not None and len(stop) and any(
        isinstance(c.tag, str) and c.tag in ("article", "main") for c in stop.iter("article", "main"))
    while el is not None and el is not stop:
        tag = el.tag if isinstance(el.tag, str) else ""
        if tag == "header" and article_scope:
            el = el.getparent()
            continue
        if tag in _CHROME_TAGS:
            return True
        marker = f"{el.get('class') or ''} {el.get('id') or ''} {el.get('role') or ''}"
        if marker.strip() and _CHROME_RE.search(marker):
            return True
        if (el.get("aria-hidden") or "").lower() == "true" or el.get("hidden") is not None:
            return True
        el = el.getparent()
    return False


def _article_root(doc: Any) -> Any:
    for xp in ("//article", "//main", "//*[@role='main']"):
        for el in doc.xpath(xp):
            if not _in_chrome(el.getparent()):
                return el
    body = doc.find("body")
    return body if body is not None else doc


def _title(doc: Any, root: Any) -> str:
    for scope in (root, doc):
        for h1 in scope.iter("h1"):
            if scope is doc and _in_chrome(h1):
                continue
            t = _norm(h1.text_content())
            if t:
                return t
    for meta in doc.iter("meta"):
        if (meta.get("property") or meta.get("name") or "").lower() in ("og:title", "twitter:title"):
            t = _norm(meta.get("content") or "")
            if t:
                return t
    t_el = doc.find(".//title")
    if t_el is not None:
        parts = re.split(r"\s+[|–—-]\s+", _norm(t_el.text_content()))
        return max(parts, key=len) if parts else ""
    return ""


def _fallback_blocks(doc: Any) -> list[str]:
    """Headings, paragraphs and list items of the article area, minus chrome."""
    root = _article_root(doc)
    out: list[str] = []
    for el in root.iter("h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "blockquote"):
        if _in_chrome(el, stop=root.getparent()):
            continue
        if el.tag in ("p", "li") and any(a.tag in ("li", "blockquote") for a in el.iterancestors()):
            continue
        t = _norm(el.text_content())
        if t:
            out.append(t)
    if not out:  # no block elements at all: bare text
        t = _norm(root.text_content())
        out = [t] if t else []
    return out


def _trafilatura_blocks(html: str) -> list[str]:
    # bare_extraction hands back the content tree itself: no XML round trip,
    # and no content fingerprint (extract() computes one we do not use).
    try:
        doc = trafilatura.bare_extraction(
            html, include_comments=False, include_tables=True, include_images=False,
            include_links=False, with_metadata=False, deduplicate=False, as_dict=False,
        )
    except Exception as exc:  # trafilatura raises many types on odd input
        log.debug("trafilatura failed: %s", exc)
        return []
    main = getattr(doc, "body", None) if doc else None
    if main is None or len(main) == 0:
        return []
    blocks: list[str] = []
    for el in main:
        if el.tag == "list":
            blocks.extend(_norm(" ".join(it.itertext())) for it in el.iter("item"))
        elif el.tag == "table":
            for row in el.iter("row"):
                blocks.append(" | ".join(_norm(" ".join(c.itertext())) for c in row.iter("cell")))
        else:
            blocks.append(_norm(" ".join(el.itertext())))
    return [b for b in blocks if b]


def _clean(blocks: list[str], title: str) -> list[str]:
    out = [b for b in blocks if not _CHROME_BLOCK.match(b)]
    if out and title and _norm(out[0]) == title:
        out = out[1:]
    return out


def extract_article(
    body: bytes, *, content_type: str | None = None, url: str | None = None, language_hint: str | None = None
) -> Article:
    """Extract the article from an HTML response body.

    Raises :class:`ExtractError` only for content that is not text at all.
    """
    _check_text(body, content_type)
    html = decode_html(body, content_type)
    doc = _parse(html)
    if doc is None:
        text = _norm(html)
        return Article("", (text,) if text else (), _language(None, language_hint, text))
    for bad in doc.xpath("//script|//style|//noscript|//template"):
        bad.drop_tree()
    title = _title(doc, _article_root(doc))
    blocks = _trafilatura_blocks(html)
    fallback = _fallback_blocks(doc)
    got = sum(len(b) for b in blocks)
    fb_clean = _clean(fallback, title)
    fb = sum(len(b) for b in fb_clean)
    # empty, teaser-only, or trafilatura's structure-less baseline blob (which also keeps nav text)
    if got == 0 or got < 0.4 * fb or (len(blocks) <= 1 and len(fb_clean) >= 2):
        log.debug("trafilatura result too short (%d vs %d chars) for %s; using fallback", got, fb, url)
        blocks = fallback
    blocks = _clean(blocks, title)
    text = " ".join([title, *blocks])
    return Article(title, tuple(blocks), _language(doc, language_hint, text))

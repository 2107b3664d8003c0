"""Rewrite an archived page's links to this archive, for the Archived view.

The page and the requisites captured with it (stylesheets, images, fonts,
icons) are served under ``/archived/<id>/<scheme>/<host>/<path>``; every
link in the HTML (``src``, ``href``, ``srcset``, inline ``style`` and
``<style>`` ``url()``) and in stylesheets (``url()``, ``@import``) is
rewritten to that form, so the browser asks this app, never the live site,
and finds the requisites of the same snapshot. What was not captured is
simply absent (404). The rewriting is for viewing only: the downloads (the
WARC records, the signed manifest, the WACZ) stay byte for byte as captured.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Callable
from urllib.parse import urljoin, urlsplit

log = logging.getLogger(__name__)

MAX_REWRITE_BYTES = 8 * 1024 * 1024  # larger documents are served unrewritten (links then blocked by the CSP)
_SRCSET = ("srcset", "data-srcset", "data-lazy-srcset", "imagesrcset")
_LAZY = ("data-src", "data-lazy-src", "data-original", "data-lazy", "data-hi-res-src", "poster")
# An unquoted url stops at "(": scanning on from every "url(" of
# "url(url(url(..." to the end cost n**2 (archiver/capture/requisites.py).
_CSS_URL = re.compile(r"""url\(\s*(['"]?)([^'"()]*)\1\s*\)|@import\s+(['"])([^'"]+)\3""", re.I)


def archived_url(snapshot_id: str, url: str) -> str:
    """``/archived/<id>/<scheme>/<host>/<path>?<query>`` for an http(s) URL."""
    p = urlsplit(url)
    path = f"/archived/{snapshot_id}/{p.scheme}/{p.netloc}{p.path or '/'}"
    return path + (f"?{p.query}" if p.query else "") + (f"#{p.fragment}" if p.fragment else "")


def _mapper(snapshot_id: str, base: str) -> Callable[[str], str]:
    def rewrite(link: str) -> str:
        link = link.strip()
        if not link or link.startswith(("#", "data:")):
            return link
        absolute = urljoin(base, link)
        if urlsplit(absolute).scheme.lower() not in ("http", "https"):
            return "#"  # javascript:, mailto:, file: ... go nowhere
        return archived_url(snapshot_id, absolute)

    return rewrite


def rewrite_css(css: str, snapshot_id: str, base: str) -> str:
    rewrite = _mapper(snapshot_id, base)

    def repl(m: re.Match[str]) -> str:
        if m.group(2) is not None:
            return f'url("{rewrite(m.group(2))}")'
        return f'@import "{rewrite(m.group(4))}"'

    return _CSS_URL.sub(repl, css)


def _srcset(value: str, rewrite: Callable[[str], str]) -> str:
    out = []
    for candidate in value.split(","):
        parts = candidate.strip().split(None, 1)
        if parts:
            out.append(" ".join([rewrite(parts[0]), *parts[1:]]))
    return ", ".join(out)


def rewrite_html(body: bytes, content_type: str | None, snapshot_id: str, base: str) -> bytes | None:
    """The page with its links pointing into the archive; None if it cannot be parsed."""
    import lxml.html
    from lxml import etree

    from archiver.changes.extract import decode_html

    if len(body) > MAX_REWRITE_BYTES:
        return None
    try:
        doc = lxml.html.document_fromstring(decode_html(body, content_type))
    except (etree.ParserError, ValueError) as exc:
        log.info("archived page %s not rewritten: %s", snapshot_id, exc)
        return None
    rewrite = _mapper(snapshot_id, base)
    for base_el in doc.xpath("//base[@href]"):  # resolve against the page's own <base>, then drop it
        base = urljoin(base, base_el.get("href", ""))
        base_el.drop_tag()
        rewrite = _mapper(snapshot_id, base)
    # CSS (<style>, style="") is rewritten here and kept out of lxml's way: its
    # url() pattern scans on to the end from every "url(", n**2 in a hostile
    # <style> block -- hours of the desk's CPU per view of the page.
    aside: list[tuple[Any, str, str]] = []
    for el in doc.iter("style"):
        if el.text:
            aside.append((el, "", rewrite_css(el.text, snapshot_id, base)))
            el.text = ""
    for el in doc.xpath("//*[@style]"):
        aside.append((el, "style", rewrite_css(el.get("style", ""), snapshot_id, base)))
        del el.attrib["style"]
    doc.rewrite_links(rewrite, resolve_base_href=False)
    for el, attribute, css in aside:
        if attribute:
            el.set(attribute, css)
        else:
            el.text = css
    for el in doc.iter():
        if not isinstance(el.tag, str):
            continue
        for name in _SRCSET:
            if el.get(name):
                el.set(name, _srcset(el.get(name, ""), rewrite))
        for name in _LAZY:
            if el.get(name):
                el.set(name, rewrite(el.get(name, "")))
    out: bytes = lxml.html.tostring(doc, encoding="utf-8", method="html", doctype="<!DOCTYPE html>")
    return out

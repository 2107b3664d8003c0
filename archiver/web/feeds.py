"""Atom feeds (RFC 4287) of substantive changes: all sources, and one per URL.

Each entry links to its Compare page; its title carries the figure changes
("50.000 → 60.000 Soldaten") so a feed reader shows what changed.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from archiver.web.app import state_of
from archiver.web.filters import figure_line, q
from archiver.web.http import check_url

ATOM = "http://www.w3.org/2005/Atom"
FEED_SIZE = 50


def _text(parent: ET.Element, tag: str, text: str, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, f"{{{ATOM}}}{tag}", attrs)
    el.text = text
    return el


def _feed(base: str, self_url: str, title: str, rows: list[Any], now: str) -> bytes:
    ET.register_namespace("", ATOM)
    feed = ET.Element(f"{{{ATOM}}}feed")
    _text(feed, "id", self_url)
    _text(feed, "title", title)
    _text(feed, "updated", rows[0].captured_at if rows else now)
    author = ET.SubElement(feed, f"{{{ATOM}}}author")
    _text(author, "name", "archiver")
    ET.SubElement(feed, f"{{{ATOM}}}link", {"rel": "self", "href": self_url, "type": "application/atom+xml"})
    ET.SubElement(feed, f"{{{ATOM}}}link", {"rel": "alternate", "href": base + "/", "type": "text/html"})
    _text(feed, "generator", "archiver")
    for r in rows:
        figures = [figure_line(f) for f in (r.diff or {}).get("figures", [])]
        compare = f"{base}/compare?{q(url=r.url, to=r.id, **{'from': r.prev_id})}"
        entry = ET.SubElement(feed, f"{{{ATOM}}}entry")
        _text(entry, "id", f"{base}/snapshot/{r.id}")
        _text(entry, "title", f"{r.url}: " + ("; ".join(figures) if figures else f"{r.significance} change"))
        _text(entry, "updated", r.captured_at)
        ET.SubElement(entry, f"{{{ATOM}}}link", {"rel": "alternate", "href": compare, "type": "text/html"})
        summary = f"{r.significance} change of {r.url} captured {r.captured_at}."
        if figures:
            summary += " Figures: " + "; ".join(figures) + "."
        _text(entry, "summary", summary)
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(feed, encoding="utf-8", xml_declaration=False)


def all_changes(request: Request) -> Response:
    web = state_of(request)
    base = web.base_url(request)
    rows = web.archive.verified(web.archive.recent_changes(("substantive",), limit=FEED_SIZE))
    body = _feed(base, f"{base}/feeds/changes.atom", "archiver: substantive changes", rows, web.clock().isoformat())
    return Response(body, media_type="application/atom+xml; charset=utf-8", headers={"Cache-Control": "public, max-age=60"})


def url_changes(request: Request) -> Response:
    web = state_of(request)
    url = check_url(request.query_params.get("url"))
    base = web.base_url(request)
    history = web.archive.history(url)  # 404 for an unknown URL
    rows = web.archive.verified([r for r in reversed(history) if r.significance == "substantive"][:FEED_SIZE])
    body = _feed(base, f"{base}/feeds/url.atom?{q(url=url)}", f"archiver: changes of {url}", rows, web.clock().isoformat())
    return Response(body, media_type="application/atom+xml; charset=utf-8", headers={"Cache-Control": "public, max-age=60"})


ROUTES = [
    Route("/feeds/changes.atom", all_changes, name="feed_all"),
    Route("/feeds/url.atom", url_changes, name="feed_url"),
]

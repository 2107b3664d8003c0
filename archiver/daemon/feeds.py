"""Article URLs from an RSS/Atom feed (feedparser) or an XML sitemap.

The feed document is fetched through the same Capturer as any page (address
policy, limits) but is not archived: only the articles it lists are, each
enrolled as an adaptive source.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Callable
from urllib.parse import urldefrag, urljoin

import feedparser

from archiver.errors import ArchiverError, CaptureError

log = logging.getLogger(__name__)

SITEMAP_NS = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
MAX_CHILD_SITEMAPS = 20


class FeedError(ArchiverError):
    """A feed URL did not return a readable RSS/Atom feed or sitemap."""


@dataclass(frozen=True)
class FeedItems:
    kind: str  # rss | atom | sitemap
    urls: list[str]
    child_sitemaps: list[str]


def _clean(link: str, base: str) -> str | None:
    link = (link or "").strip()
    if not link:
        return None
    absolute, _ = urldefrag(urljoin(base, link))
    return absolute if absolute.startswith(("http://", "https://")) else None


def _dedupe(urls: list[str | None]) -> list[str]:
    seen: dict[str, None] = {}
    for u in urls:
        if u and u not in seen:
            seen[u] = None
    return list(seen)


def _parse_sitemap(body: bytes, base: str) -> FeedItems | None:
    head = body[:2048].lstrip()
    if b"<urlset" not in body[:4096] and b"<sitemapindex" not in body[:4096]:
        return None
    if b"<!DOCTYPE" in head.upper() or b"<!ENTITY" in body.upper():
        raise FeedError(f"{base}: sitemap declares a DTD or entities; refused")
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise FeedError(f"{base}: sitemap is not well-formed XML: {exc}") from exc
    locs = [_clean(el.text or "", base) for el in root.iter(f"{SITEMAP_NS}loc")]
    if not locs:  # sitemaps without the namespace exist in the wild
        locs = [_clean(el.text or "", base) for el in root.iter("loc")]
    tag = root.tag.split("}", 1)[-1]
    if tag == "sitemapindex":
        return FeedItems("sitemap", [], _dedupe(locs))
    return FeedItems("sitemap", _dedupe(locs), [])


def parse_feed(body: bytes, base_url: str, content_type: str = "") -> FeedItems:
    """The article links of a feed document, in document order, without duplicates."""
    sitemap = _parse_sitemap(body, base_url)
    if sitemap is not None:
        return sitemap
    parsed = feedparser.parse(body, response_headers={"content-location": base_url, "content-type": content_type or "application/xml"})
    version = parsed.get("version") or ""
    if not version and not parsed.entries:
        reason = parsed.get("bozo_exception")
        raise FeedError(f"{base_url} is not an RSS/Atom feed or sitemap" + (f": {reason}" if reason else ""))
    urls = []
    for entry in parsed.entries:
        link = entry.get("link")
        if not link:
            links = [lk.get("href") for lk in entry.get("links", []) if lk.get("rel", "alternate") == "alternate"]
            link = links[0] if links else None
        urls.append(_clean(link or "", base_url))
    kind = "atom" if version.startswith("atom") else "rss"
    return FeedItems(kind, _dedupe(urls), [])


Fetch = Callable[[str], tuple[bytes, str, int]]  # url -> (body, content type, status)


def read_feed(feed_url: str, fetch: Fetch) -> FeedItems:
    """Fetch and parse a feed; a sitemap index is followed one level down."""
    body, content_type, status = fetch(feed_url)
    if status >= 400:
        raise FeedError(f"{feed_url} answered HTTP {status}")
    items = parse_feed(body, feed_url, content_type)
    if not items.child_sitemaps:
        return items
    urls = list(items.urls)
    for child in items.child_sitemaps[:MAX_CHILD_SITEMAPS]:
        try:
            child_body, child_type, child_status = fetch(child)
            if child_status >= 400:
                raise FeedError(f"{child} answered HTTP {child_status}")
            urls.extend(parse_feed(child_body, child, child_type).urls)
        except (CaptureError, FeedError) as exc:
            log.warning("sitemap %s: skipping child %s: %s", feed_url, child, exc)
    return FeedItems("sitemap", _dedupe(list(urls)), [])


def capturer_fetch(capturer: object) -> Fetch:
    """Fetch with an archiver Capturer (address policy and limits), without archiving."""

    def fetch(url: str) -> tuple[bytes, str, int]:
        capture = capturer.capture(url)  # type: ignore[attr-defined]
        final = capture.final
        return final.body, final.response_headers.get("content-type", ""), final.status

    return fetch

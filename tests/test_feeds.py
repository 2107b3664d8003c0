"""Article links from RSS, Atom and sitemaps; anything else is refused by name."""

from __future__ import annotations

import pytest

from archiver.daemon.feeds import FeedError, parse_feed, read_feed

RSS = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Nachrichten</title><link>https://news.example/</link>
<item><title>Eins</title><link>https://news.example/a/1#top</link></item>
<item><title>Zwei</title><link>/a/2</link></item>
<item><title>Eins nochmal</title><link>https://news.example/a/1</link></item>
<item><title>Mail</title><link>mailto:desk@news.example</link></item>
</channel></rss>"""

ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>News</title><id>urn:x</id><updated>2026-01-01T00:00:00Z</updated>
<entry><title>One</title><id>urn:1</id><updated>2026-01-01T00:00:00Z</updated>
<link rel="alternate" href="https://news.example/en/1"/></entry>
</feed>"""

SITEMAP = b"""<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
<url><loc>https://news.example/s/1</loc></url><url><loc> https://news.example/s/2 </loc></url>
</urlset>"""

INDEX = b"""<?xml version="1.0" encoding="UTF-8"?>
<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
<sitemap><loc>https://news.example/sitemap-1.xml</loc></sitemap>
<sitemap><loc>https://news.example/sitemap-gone.xml</loc></sitemap>
</sitemapindex>"""


def test_rss_links_resolved_deduplicated_http_only():
    items = parse_feed(RSS, "https://news.example/rss.xml")
    assert items.kind == "rss"
    assert items.urls == ["https://news.example/a/1", "https://news.example/a/2"]


def test_atom_alternate_links():
    items = parse_feed(ATOM, "https://news.example/atom.xml")
    assert items.kind == "atom" and items.urls == ["https://news.example/en/1"]


def test_sitemap_and_sitemap_index():
    assert parse_feed(SITEMAP, "https://news.example/sitemap.xml").urls == [
        "https://news.example/s/1", "https://news.example/s/2"]
    pages = {
        "https://news.example/sitemap.xml": (INDEX, "application/xml", 200),
        "https://news.example/sitemap-1.xml": (SITEMAP, "application/xml", 200),
        "https://news.example/sitemap-gone.xml": (b"", "text/html", 404),
    }
    items = read_feed("https://news.example/sitemap.xml", lambda u: pages[u])
    assert items.kind == "sitemap" and items.urls == ["https://news.example/s/1", "https://news.example/s/2"]


def test_html_page_is_not_a_feed():
    with pytest.raises(FeedError, match="not an RSS/Atom feed or sitemap"):
        parse_feed(b"<!doctype html><html><body><p>Hallo</p></body></html>", "https://news.example/")


def test_sitemap_with_entities_refused():
    evil = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><urlset><url><loc>&a;</loc></url></urlset>'
    with pytest.raises(FeedError, match="DTD"):
        parse_feed(evil, "https://news.example/sitemap.xml")


def test_feed_http_error_named():
    with pytest.raises(FeedError, match="HTTP 500"):
        read_feed("https://news.example/rss.xml", lambda u: (b"", "text/html", 500))

"""Page requisites: what an article page needs to look right in replay.

A snapshot of the HTML alone replays unstyled. This module finds what the
page itself declares -- stylesheets (and what they ``@import`` or ``url()``),
images (``src``, ``srcset``, common lazy-load attributes), fonts, favicons --
and fetches each through the same :class:`Capturer` as the page, so the
address policy, the per-request limits and the exact wire recording apply to
every requisite. Scripts are not fetched: they are not needed for the look
of an article and would make replay depend on code the archive cannot vet.

Everything is bounded: the HTML scanned (bytes and tags), the CSS scanned,
the ``@import`` depth, the number of requisites, their total bytes and the
total time. A requisite that fails is reported, never raised: it must not
cost the page its snapshot.
"""

from __future__ import annotations

import bisect
import copy
import logging
import re
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable
from urllib.parse import urljoin, urlsplit

from archiver.capture.http import Capture, Capturer
from archiver.errors import AddressRefused, ArchiverError, FetchTimeout, LimitExceeded

log = logging.getLogger(__name__)

# What a requisite is, in fetch order: the look first (CSS, its fonts), then icons, then images.
STYLESHEET, FONT, ICON, IMAGE = "stylesheet", "font", "icon", "image"
_PRIORITY = {STYLESHEET: 0, FONT: 1, ICON: 2, IMAGE: 3}
_ACCEPT = {
    STYLESHEET: "text/css,*/*;q=0.1",
    FONT: "font/woff2,font/woff;q=0.9,*/*;q=0.8",
    ICON: "image/avif,image/webp,image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5",
    IMAGE: "image/avif,image/webp,image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5",
}

MAX_HTML_SCAN = 8 * 1024 * 1024  # bytes of the page searched for requisites
MAX_TAGS = 200_000  # start tags looked at
MAX_CSS_SCAN = 2 * 1024 * 1024  # bytes of one stylesheet searched
MAX_CSS_REFS = 10_000  # references read from one stylesheet (a capture fetches at most max_count of them)
MAX_IMPORT_DEPTH = 4  # page -> a.css -> @import b.css -> ...
_FONT_EXT = (".woff2", ".woff", ".ttf", ".otf", ".eot")
_ICON_RELS = {"icon", "apple-touch-icon", "apple-touch-icon-precomposed", "mask-icon"}
_LAZY_SRC = ("data-src", "data-lazy-src", "data-original", "data-lazy", "data-hi-res-src")
_LAZY_SRCSET = ("data-srcset", "data-lazy-srcset")

# Outcomes recorded in the manifest.
CAPTURED, FAILED, REFUSED, SKIPPED = "captured", "failed", "refused", "skipped"


@dataclass(frozen=True)
class RequisiteLimits:
    """Bounds of one page's requisites; see config/archiver.toml ([capture] requisites_*)."""

    max_count: int = 100
    max_bytes: int = 25 * 1024 * 1024
    timeout: float = 60.0
    workers: int = 4


@dataclass(frozen=True)
class Wanted:
    url: str
    kind: str
    referrer: str
    depth: int = 0  # @import nesting


@dataclass
class Requisite:
    """One requisite's outcome; ``capture`` holds its exchanges when any were recorded."""

    url: str
    kind: str
    outcome: str
    capture: Capture | None = None
    error: str | None = None
    limit: str | None = None  # the requisite limit ("bytes", "time") that left it out

    @property
    def status(self) -> int | None:
        return self.capture.final.status if self.capture else None


@dataclass
class Requisites:
    """All requisites of one page, in the order they were found."""

    items: list[Requisite] = field(default_factory=list)
    found: int = 0  # distinct URLs the page and its stylesheets named
    not_fetched: int = 0  # left out by the count, byte or time limit
    limit: str | None = None  # which limit stopped the fetching, if one did

    def summary(self, outcomes: list[str] | None = None) -> dict[str, object]:
        """Counts per outcome (``outcomes`` as finally recorded, else each item's own)."""
        counts: dict[str, int] = {}
        for outcome in outcomes if outcomes is not None else [i.outcome for i in self.items]:
            counts[outcome] = counts.get(outcome, 0) + 1
        return {"found": self.found, "not_fetched": self.not_fetched, "limit": self.limit, **counts}


# -- finding -----------------------------------------------------------------
def _fetchable(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and "@" not in parts.netloc


def _resolve(base: str, ref: str) -> str | None:
    ref = ref.strip()
    if not ref or ref.startswith(("data:", "#", "javascript:", "blob:", "about:")):
        return None
    try:
        url = urljoin(base, ref).split("#", 1)[0]
    except ValueError:
        return None
    return url if _fetchable(url) else None


def parse_srcset(value: str) -> list[str]:
    """The URLs of a ``srcset`` (HTML's image candidate strings), descriptors dropped."""
    urls: list[str] = []
    pos, n = 0, len(value)
    while pos < n:
        while pos < n and (value[pos].isspace() or value[pos] == ","):
            pos += 1
        start = pos
        while pos < n and not value[pos].isspace():
            pos += 1
        url = value[start:pos]
        if url.endswith(","):
            url = url.rstrip(",")
        else:
            depth = 0  # skip descriptors up to the next comma outside parentheses
            while pos < n and not (value[pos] == "," and depth == 0):
                depth += {"(": 1, ")": -1}.get(value[pos], 0)
                pos += 1
        if url:
            urls.append(url)
    return urls


# Each pattern stops at the next place another match could start ("(" in an
# unquoted url, "{" in a block, an unclosed comment runs to the end, as CSS
# reads it): one scan of the stylesheet. Scanning on to the end from every
# "url(" of "url(url(url(..." cost n**2 -- hours for a hostile 2 MiB sheet.
_COMMENT = re.compile(r"/\*.*?(?:\*/|\Z)", re.S)
_IMPORT = re.compile(r"""@import\s+(?:url\(\s*(['"]?)([^'"()]*)\1\s*\)|(['"])([^'"]*)\3)""", re.I)
_URL = re.compile(r"""url\(\s*(?:"([^"]*)"|'([^']*)'|([^'"()\s]*))\s*\)""", re.I)
_FONT_FACE = re.compile(r"@font-face\s*\{[^{}]*\}", re.I)


def _within(spans: list[tuple[int, int]], pos: int) -> bool:
    """Whether ``pos`` lies in one of ``spans`` (sorted, not overlapping: a finditer's)."""
    k = bisect.bisect_right(spans, (pos, sys.maxsize)) - 1
    return k >= 0 and pos < spans[k][1]


def css_references(css: str, base: str) -> list[tuple[str, str]]:
    """(url, kind) of what a stylesheet imports (stylesheet) and uses (font or
    image): the first :data:`MAX_CSS_REFS` (each is resolved against ``base``:
    a 2 MiB sheet of ``@import ""`` named 100,000 of them, seconds of CPU)."""
    css = _COMMENT.sub(" ", css[:MAX_CSS_SCAN])
    out: list[tuple[str, str]] = []
    imports: list[tuple[int, int]] = []
    for m in _IMPORT.finditer(css):
        if len(out) >= MAX_CSS_REFS:
            return out
        imports.append(m.span())
        url = _resolve(base, m.group(2) if m.group(2) is not None else m.group(4))
        if url:
            out.append((url, STYLESHEET))
    fonts = [m.span() for m in _FONT_FACE.finditer(css)]
    for m in _URL.finditer(css):
        if len(out) >= MAX_CSS_REFS:
            break
        if _within(imports, m.start()):
            continue
        ref = next(g for g in m.groups() if g is not None)
        url = _resolve(base, ref)
        if not url:
            continue
        in_font_face = _within(fonts, m.start())
        is_font = in_font_face or urlsplit(url).path.lower().endswith(_FONT_EXT)
        out.append((url, FONT if is_font else IMAGE))
    return out


def tree_references(doc: Any, base: str) -> list[tuple[str, str]]:
    """(url, kind) of every requisite a parsed page (an lxml HTML tree) names, in
    page order (not deduplicated): from tags, ``<style>`` blocks and style
    attributes. The tree is read, never changed, so the caller parses a page
    once for this scan and its article (archiver/pages.py). A ``<base href>``
    applies from where it stands, as the page is read in order."""
    found: list[tuple[str, str]] = []
    base_seen = False

    def add(ref: str | None, kind: str) -> None:
        url = _resolve(base, ref) if ref else None
        if url:
            found.append((url, kind))

    def add_srcset(value: str | None) -> None:
        for ref in parse_srcset(value or ""):
            add(ref, IMAGE)

    for tags, el in enumerate(_candidates(doc)):
        if tags >= MAX_TAGS:
            log.info("%s: stopped looking for requisites after %d tags", base, MAX_TAGS)
            break
        tag = el.tag
        if not isinstance(tag, str):
            continue  # comments, processing instructions
        a = el.attrib
        style = a.get("style")
        if style:
            found.extend(css_references(style, base))
        if tag == "base" and a.get("href") and not base_seen:
            base_seen = True
            base = _resolve(base, a["href"]) or base
        elif tag == "link":
            _link(a, add, add_srcset)
        elif tag == "img":
            add(a.get("src"), IMAGE)
            add_srcset(a.get("srcset"))
            for name in _LAZY_SRC:
                add(a.get(name), IMAGE)
            for name in _LAZY_SRCSET:
                add_srcset(a.get(name))
        elif tag == "source" and any(p.tag == "picture" for p in el.iterancestors()):
            add_srcset(a.get("srcset"))
            for name in _LAZY_SRCSET:
                add_srcset(a.get(name))
        elif tag == "video":
            add(a.get("poster"), IMAGE)
        elif tag == "style":
            found.extend(css_references(el.text or "", base))
    return found


_XPATHS: list[Any] = []


def _candidates(doc: Any) -> Iterable[Any]:
    """The nodes of ``doc`` that can name a requisite, in page order (comments
    included when they count against :data:`MAX_TAGS`).

    Why: a news page has thousands of elements and a few dozen that matter;
    libxml2 finds those (tags that load something, a ``style`` attribute)
    without an object per element. When the page has more nodes than
    ``MAX_TAGS``, every node is walked, so that the cut falls where it did.
    """
    if not _XPATHS:
        from lxml.etree import XPath

        _XPATHS.extend([
            XPath("count(descendant-or-self::*) + count(descendant::comment()) "
                  "+ count(descendant::processing-instruction())"),
            XPath("descendant-or-self::*[@style or self::base or self::link or self::img or self::source "
                  "or self::video or self::style]"),
        ])
    count, wanted = _XPATHS
    if count(doc) > MAX_TAGS:
        return doc.iter()
    return wanted(doc)


def _link(a: Any, add: Callable[[str | None, str], None], add_srcset: Callable[[str | None], None]) -> None:
    rels = set((a.get("rel") or "").lower().split())
    href = a.get("href")
    if "stylesheet" in rels and "alternate" not in rels:
        add(href, STYLESHEET)
    elif rels & _ICON_RELS:
        add(href, ICON)
    elif "preload" in rels or "prefetch" in rels:
        kind = {"style": STYLESHEET, "font": FONT, "image": IMAGE}.get((a.get("as") or "").lower())
        if kind:
            add(href, kind)
            if kind == IMAGE:
                add_srcset(a.get("imagesrcset"))


def page_references(html: bytes, base: str, charset: str | None = None) -> list[tuple[str, str]]:
    """(url, kind) of every requisite an HTML page names (parsed here; a caller
    holding the parsed page calls :func:`tree_references`)."""
    import lxml.etree
    import lxml.html

    text = html[:MAX_HTML_SCAN].decode(_codec(charset), errors="replace")
    text = re.sub(r"^\s*<\?xml[^>]*>", "", text)
    if not text.strip():
        return []
    try:
        doc = lxml.html.document_fromstring(text)
    except (lxml.etree.ParserError, ValueError):
        return []
    return tree_references(doc, base)


def _codec(charset: str | None) -> str:
    import codecs

    try:
        return codecs.lookup(charset or "utf-8").name
    except LookupError:
        return "utf-8"


def charset_of(content_type: str) -> str | None:
    m = re.search(r"charset=\"?([\w.:-]+)", content_type or "", re.I)
    return m.group(1) if m else None


# -- fetching ------------------------------------------------------------------
class _Fetcher:
    """Fetches wanted URLs with a small pool; stylesheets add what they name."""

    def __init__(self, capturer: Capturer, limits: RequisiteLimits, page_url: str) -> None:
        self.capturer = capturer
        self.limits = limits
        self.deadline = time.monotonic() + limits.timeout
        self.result = Requisites()
        self.queue: list[Wanted] = []
        self.seen: set[str] = {page_url}
        self.bytes = 0
        self.started = 0

    def want(self, refs: Iterable[tuple[str, str]], referrer: str, depth: int) -> None:
        new = []
        for url, kind in refs:
            if url in self.seen or (kind == STYLESHEET and depth > MAX_IMPORT_DEPTH):
                continue
            self.seen.add(url)
            self.result.found += 1
            new.append(Wanted(url, kind, referrer, depth))
        self.queue.extend(new)
        self.queue.sort(key=lambda w: _PRIORITY[w.kind])  # stable: page order within a kind

    def run(self) -> Requisites:
        workers = max(1, self.limits.workers)
        pending: dict[Future[Requisite], Wanted] = {}
        order: dict[str, int] = {}
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="requisite") as pool:
            while self.queue or pending:
                while self.queue and len(pending) < workers and self._may_start():
                    if self._wait_for_stylesheets(pending.values()):
                        break
                    wanted = self.queue.pop(0)
                    order[wanted.url] = len(order)
                    self.started += 1
                    pending[pool.submit(self._fetch, wanted, self._bytes_left())] = wanted
                if not pending:
                    break
                done, _ = wait(pending, timeout=max(0.0, self.deadline - time.monotonic()) + 1, return_when=FIRST_COMPLETED)
                for fut in done:
                    wanted = pending.pop(fut)
                    self._finish(wanted, fut.result())
        self.result.not_fetched += len(self.queue)
        self.result.items.sort(key=lambda r: order[r.url])
        return self.result

    def _wait_for_stylesheets(self, in_flight: Iterable[Wanted]) -> bool:
        """Hold the images back while a stylesheet is in flight if the count
        limit may bite: what it names (fonts first) may outrank them."""
        crowded = self.started + len(self.queue) >= self.limits.max_count
        return crowded and self.queue[0].kind != STYLESHEET and any(w.kind == STYLESHEET for w in in_flight)

    def _may_start(self) -> bool:
        reason = None
        if self.started >= self.limits.max_count:
            reason = "count"
        elif self._bytes_left() <= 0:
            reason = "bytes"
        elif time.monotonic() >= self.deadline:
            reason = "time"
        if reason and self.result.limit is None:
            self.result.limit = reason
            log.info("requisites stopped by the %s limit; %d not fetched", reason, len(self.queue))
        return reason is None

    def _bytes_left(self) -> int:
        return self.limits.max_bytes - self.bytes

    def _fetch(self, wanted: Wanted, byte_cap: int) -> Requisite:
        left = self.deadline - time.monotonic()
        if left <= 0:
            return Requisite(wanted.url, wanted.kind, SKIPPED, error="requisite time limit reached", limit="time")
        capturer = copy.copy(self.capturer)
        capturer.limits = replace(
            capturer.limits,
            total_timeout=min(capturer.limits.total_timeout, left),
            max_body_bytes=max(0, min(capturer.limits.max_body_bytes, byte_cap)),
        )
        headers = {"Accept": _ACCEPT[wanted.kind], "Referer": wanted.referrer}
        try:
            capture = capturer.capture(wanted.url, headers=headers)
        except AddressRefused as exc:
            return Requisite(wanted.url, wanted.kind, REFUSED, error=str(exc))
        except FetchTimeout as exc:
            cut = left < self.capturer.limits.total_timeout  # the requisites' deadline, not the per-request one
            return Requisite(wanted.url, wanted.kind, FAILED, error=str(exc), limit="time" if cut else None)
        except LimitExceeded as exc:
            if byte_cap < self.capturer.limits.max_body_bytes:  # the page's remaining budget, not the per-body cap
                return Requisite(wanted.url, wanted.kind, SKIPPED, error=f"requisite byte limit reached: {exc}",
                                 limit="bytes")
            return Requisite(wanted.url, wanted.kind, FAILED, error=str(exc))
        except ArchiverError as exc:
            return Requisite(wanted.url, wanted.kind, FAILED, error=str(exc))
        status = capture.final.status
        if status >= 400:
            return Requisite(wanted.url, wanted.kind, FAILED, capture, error=f"HTTP {status}")
        return Requisite(wanted.url, wanted.kind, CAPTURED, capture)

    def _finish(self, wanted: Wanted, item: Requisite) -> None:
        if item.capture is not None:
            size = sum(len(h.payload) for h in item.capture.hops)
            if self.bytes + size > self.limits.max_bytes:
                # Fetched alongside others that used the budget up: not kept.
                item = Requisite(item.url, item.kind, SKIPPED, error="requisite byte limit reached", limit="bytes")
            else:
                self.bytes += size
        self.result.limit = self.result.limit or item.limit
        self.result.items.append(item)
        if item.outcome == CAPTURED and item.kind == STYLESHEET and item.capture is not None:
            final = item.capture.final
            css = final.body.decode(_codec(charset_of(final.response_headers.get("content-type", ""))), errors="replace")
            self.want(css_references(css, final.url), final.url, wanted.depth + 1)


def fetch_requisites(
    capturer: Capturer, page: Capture, limits: RequisiteLimits, refs: list[tuple[str, str]]
) -> Requisites:
    """Fetch the requisites a captured page names (``refs``: :func:`tree_references` of its tree)."""
    if not refs:
        return Requisites()
    final = page.final
    fetcher = _Fetcher(capturer, limits, final.url)
    fetcher.want(refs, final.url, 0)
    return fetcher.run()

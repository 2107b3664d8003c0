"""The reading pages: Changes (home), Sources, URL timeline, Compare."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from archiver.errors import NotFoundError
from archiver.web.app import state_of
from archiver.web.http import check_url, int_param, optional_id
from archiver.web.textdiff import diff_rows

SIGNIFICANCE_FILTERS = {
    "substantive": ("substantive",),
    "cosmetic": ("cosmetic",),
    "all": ("substantive", "cosmetic"),
}


def changes_query(request: Request) -> tuple[str, str, int, int]:
    """(significance filter, source substring, page, page size) of a Changes request."""
    from archiver.errors import UsageError

    significance = request.query_params.get("significance") or "substantive"
    if significance not in SIGNIFICANCE_FILTERS:
        raise UsageError(f"significance must be one of {', '.join(SIGNIFICANCE_FILTERS)}")
    source = request.query_params.get("source", "")[:500]
    page = int_param(request, "page", 1, 1, 100_000)
    return significance, source, page, state_of(request).settings.web.page_size


def changes(request: Request) -> Response:
    web = state_of(request)
    significance, source, page, size = changes_query(request)
    rows = web.archive.recent_changes(
        SIGNIFICANCE_FILTERS[significance], url_contains=source, limit=size + 1, offset=(page - 1) * size
    )
    return web.render(
        request, "changes.html", title="Changes", rows=web.archive.shown(rows[:size]), more=len(rows) > size, page=page,
        significance=significance, source=source,
    )


def sources(request: Request) -> Response:
    from archiver.daemon.sources import Sources

    web = state_of(request)
    needle = request.query_params.get("q", "")[:500]
    page = int_param(request, "page", 1, 1, 100_000)
    size = web.settings.web.page_size
    start = (page - 1) * size
    found, total = Sources(web.archive.index, web.clock).search(needle, limit=size, offset=start)
    return web.render(
        request, "sources.html", title="Sources", sources=found, total=total,
        more=total > start + size, page=page, needle=needle,
    )


def _positions(rows: list[Any]) -> list[float]:
    """Each snapshot's place on the timeline strip, 0..100 by capture time."""
    times = [datetime.fromisoformat(r.captured_at.replace("Z", "+00:00")).timestamp() for r in rows]
    lo, hi = min(times), max(times)
    span = hi - lo
    return [50.0 if span <= 0 else round(100 * (t - lo) / span, 3) for t in times]


def timeline(request: Request) -> Response:
    from archiver.daemon.sources import Sources

    web = state_of(request)
    url = check_url(request.query_params.get("url"))
    rows = web.archive.shown(web.archive.history(url))
    figures = [(r.diff or {}).get("figures", []) for r in rows]  # each row's diff JSON parsed once
    return web.render(
        request, "timeline.html", title=f"Timeline of {url}", url=url, rows=rows,
        marks=list(zip(rows, _positions(rows))), table=list(zip(rows, figures)),
        source=Sources(web.archive.index, web.clock).get(url),
    )


def compare(request: Request) -> Response:
    web = state_of(request)
    url = check_url(request.query_params.get("url"))
    from_id = optional_id(request.query_params.get("from"), "from id")
    to_id = optional_id(request.query_params.get("to"), "to id")
    view = "side" if request.query_params.get("view") == "side" else "inline"
    indexed = web.archive.history(url)
    history = web.archive.shown(indexed)
    a, b = web.archive.diff_pair(url, from_id, to_id, indexed)  # the index's rows, not the listing's views: checked again
    result, rows = web.compare_cache.get((a.id, b.id), lambda: _compare(web.archive, url, a, b))
    pos = {r.id: i for i, r in enumerate(history)}
    ia, ib = pos[a.id], pos[b.id]
    prev_pair = (history[ia - 1].id, a.id) if ia > 0 else None
    next_pair = (b.id, history[ib + 1].id) if ib + 1 < len(history) else None
    return web.render(
        request, "compare.html", title=f"Compare {url}", url=url, a=a, b=b, result=result,
        figures=[f.to_json() for f in result.figures], rows=rows, history=history, view=view,
        prev_pair=prev_pair, next_pair=next_pair,
        cosmetic_changes=[c for c in result.changes if not c.substantive],
    )


def _compare(archive: Any, url: str, a: Any, b: Any) -> tuple[Any, list[Any]]:
    from archiver.changes.diff import diff_articles

    art_a, art_b = archive.article(a), archive.article(b)
    if art_a is None or art_b is None:
        raise NotFoundError(f"snapshots of {url} have no article text to compare")
    result = diff_articles(art_a, art_b)
    figures = {str(f.before) for f in result.figures if f.before} | {str(f.after) for f in result.figures if f.after}
    return result, diff_rows(art_a.text(), art_b.text(), figures)


ROUTES = [
    Route("/", changes, name="changes"),
    Route("/sources", sources, name="sources"),
    Route("/timeline", timeline, name="timeline"),
    Route("/compare", compare, name="compare"),
]

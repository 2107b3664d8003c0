"""``/api/v1/``: the CLI's JSON shapes over HTTP (snapshot, history, diff,
sources, verify, changes), writes behind ``--allow-writes`` and a token, and
the OpenAPI document that describes them."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from archiver.archive import SnapshotResult
from archiver.errors import NotFoundError, UsageError
from archiver.web.app import state_of
from archiver.web.http import HttpError, check_url, optional_id, read_json
from archiver.web.pages import SIGNIFICANCE_FILTERS, changes_query
from archiver.web.security import require_write


def snapshot(request: Request) -> Response:
    web = state_of(request)
    url = check_url(request.query_params.get("url"))
    row = web.archive.resolve(url, optional_id(request.query_params.get("at"), "id"))
    return JSONResponse(web.archive.snapshot_json(row))


def history(request: Request) -> Response:
    url = check_url(request.query_params.get("url"))
    return JSONResponse(state_of(request).archive.history_json(url))


def diff(request: Request) -> Response:
    url = check_url(request.query_params.get("url"))
    from_id = optional_id(request.query_params.get("from"), "from id")
    to_id = optional_id(request.query_params.get("to"), "to id")
    return JSONResponse(state_of(request).archive.diff(url, from_id, to_id))


def sources_json(web: Any) -> list[dict[str, Any]]:
    from archiver.daemon.sources import Sources

    return [s.to_json() for s in Sources(web.archive.index, web.clock).list(active_only=False)]


def sources(request: Request) -> Response:
    return JSONResponse(sources_json(state_of(request)))


def verify(request: Request) -> Response:
    return JSONResponse(state_of(request).audits.run_now())


def changes(request: Request) -> Response:
    web = state_of(request)
    significance, source, page, size = changes_query(request)
    rows = web.archive.recent_changes(
        SIGNIFICANCE_FILTERS[significance], url_contains=source, limit=size, offset=(page - 1) * size
    )
    return JSONResponse([{**SnapshotResult(r).to_json(), "verified": problem is None}
                         for r, problem in web.archive.listing(rows)])


def openapi(request: Request) -> Response:
    from archiver.web.openapi import document

    return JSONResponse(document(state_of(request).base_url(request)))


# -- writes --------------------------------------------------------------------
def _string(data: dict[str, Any], key: str, *, required: bool = False) -> str | None:
    value = data.get(key)
    if value is None:
        if required:
            raise HttpError(422, "invalid", f"{key} is required")
        return None
    if not isinstance(value, str):
        raise HttpError(422, "invalid", f"{key} must be a string")
    return value


async def _authorized_json(request: Request) -> dict[str, Any]:
    web = state_of(request)
    require_write(request, web.tokens, web.allow_writes)
    return await read_json(request, web.settings.web.max_request_bytes)


def take_snapshot(web: Any, url: str) -> dict[str, Any]:
    check_url(url)
    return web.archive.snapshot(url).to_json()  # type: ignore[no-any-return]


def watch(web: Any, url: str, every: str | None, notify: str | None, language: str | None) -> tuple[dict[str, Any], bool]:
    from archiver.daemon.sources import PAGE, Sources, SourceSpec, validate_every, validate_url

    check_url(url)
    try:
        validate_url(url)
        parsed = str(validate_every(every)) if every else None
        if notify:
            validate_url(notify, "notify")
    except UsageError as exc:
        raise HttpError(422, "invalid", str(exc)) from exc
    source, created = Sources(web.archive.index, web.clock).watch(
        SourceSpec(url, PAGE, parsed, notify, language), web.settings.daemon.default_every
    )
    return source.to_json(), created


def unwatch(web: Any, url: str) -> None:
    from archiver.daemon.sources import Sources

    check_url(url)
    if not Sources(web.archive.index, web.clock).unwatch(url):
        raise NotFoundError(f"{url} is not watched")


async def post_snapshot(request: Request) -> Response:
    data = await _authorized_json(request)
    url = _string(data, "url", required=True)
    assert url is not None
    result = await run_in_threadpool(take_snapshot, state_of(request), url)
    return JSONResponse(result, status_code=201)


async def post_watch(request: Request) -> Response:
    data = await _authorized_json(request)
    url = _string(data, "url", required=True)
    assert url is not None
    source, created = await run_in_threadpool(
        watch, state_of(request), url, _string(data, "every"), _string(data, "notify"), _string(data, "language")
    )
    return JSONResponse(source, status_code=201 if created else 200)


async def post_unwatch(request: Request) -> Response:
    data = await _authorized_json(request)
    url = _string(data, "url", required=True)
    assert url is not None
    await run_in_threadpool(unwatch, state_of(request), url)
    return JSONResponse({"url": url, "unwatched": True})


ROUTES = [
    Route("/api/v1/openapi.json", openapi),
    Route("/api/v1/snapshot", snapshot, methods=["GET"]),
    Route("/api/v1/snapshot", post_snapshot, methods=["POST"]),
    Route("/api/v1/history", history),
    Route("/api/v1/diff", diff),
    Route("/api/v1/sources", sources),
    Route("/api/v1/verify", verify),
    Route("/api/v1/changes", changes),
    Route("/api/v1/watch", post_watch, methods=["POST"]),
    Route("/api/v1/unwatch", post_unwatch, methods=["POST"]),
]

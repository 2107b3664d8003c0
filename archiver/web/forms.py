"""HTML forms that write (snapshot now, watch, unwatch): a CSRF token that
matches the cookie, and a write token typed into the form, on every one."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from archiver.web.api import take_snapshot, unwatch, watch
from archiver.web.app import state_of
from archiver.web.filters import q
from archiver.web.http import read_form
from archiver.web.security import check_form, require_write


async def _form(request: Request) -> dict[str, str]:
    web = state_of(request)
    form = await read_form(request, web.settings.web.max_request_bytes)
    check_form(request, form)
    require_write(request, web.tokens, web.allow_writes, presented=form.get("token", ""))
    return form


async def snapshot_now(request: Request) -> Response:
    form = await _form(request)
    url = form.get("url", "")
    await run_in_threadpool(take_snapshot, state_of(request), url)
    return RedirectResponse(f"/timeline?{q(url=url)}", status_code=303)


async def watch_form(request: Request) -> Response:
    form = await _form(request)
    await run_in_threadpool(watch, state_of(request), form.get("url", ""), form.get("every") or None, None, None)
    return RedirectResponse(f"/sources?{q(q=form.get('url', ''))}", status_code=303)


async def unwatch_form(request: Request) -> Response:
    form = await _form(request)
    await run_in_threadpool(unwatch, state_of(request), form.get("url", ""))
    return RedirectResponse("/sources", status_code=303)


ROUTES = [
    Route("/actions/snapshot", snapshot_now, methods=["POST"]),
    Route("/actions/watch", watch_form, methods=["POST"]),
    Route("/actions/unwatch", unwatch_form, methods=["POST"]),
]

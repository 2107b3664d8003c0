"""The app factory: one Archive (read through its facade), the token store,
templates with autoescaping, the routes of each concern, error handling and
request limits."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from archiver.archive import Archive
from archiver.config import Settings
from archiver.errors import ArchiverError
from archiver.lru import LRU
from archiver.web.audits import AuditRunner
from archiver.web.http import json_error, status_of, wants_json
from archiver.web.security import csrf_token, security_headers, set_csrf_cookie
from archiver.web.tokens import TokenStore

log = logging.getLogger(__name__)

STATIC = Path(__file__).with_name("static")


@dataclass
class WebState:
    archive: Archive
    settings: Settings
    allow_writes: bool
    tokens: TokenStore
    audits: AuditRunner
    env: Environment
    clock: Callable[[], datetime]
    compare_cache: LRU[Any] = field(default_factory=lambda: LRU(128))

    def render(self, request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        context.setdefault("title", "")
        template = self.env.get_template(name)
        html = template.render(
            request=request, allow_writes=self.allow_writes, csrf=csrf_token(request), **context
        )
        response = HTMLResponse(html, status_code=status)
        set_csrf_cookie(request, response)
        return response

    def base_url(self, request: Request) -> str:
        """The public base URL (for feeds and Memento links), without a trailing slash."""
        if self.settings.web.public_url:
            return self.settings.web.public_url.rstrip("/")
        return str(request.base_url).rstrip("/")


def state_of(request: Request) -> WebState:
    return request.app.state.web  # type: ignore[no-any-return]


class Limits:
    """Pure ASGI middleware: refuse long query strings and oversized declared
    bodies before any handler runs, and add the security headers."""

    def __init__(self, app: ASGIApp, max_query: int, max_body: int) -> None:
        self.app, self.max_query, self.max_body = app, max_query, max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        problem = None
        if len(scope.get("query_string", b"")) > self.max_query:
            problem = (414, "uri_too_long", f"query string longer than {self.max_query} bytes")
        else:
            try:
                scope.get("raw_path", b"").decode("ascii")
                bytes(path, "utf-8")
            except (UnicodeError, ValueError):
                problem = (400, "bad_request", "the path is not valid UTF-8")
            for name, value in scope.get("headers", []):
                if name == b"content-length" and (not value.isdigit() or int(value) > self.max_body):
                    problem = (413, "too_large", f"request body larger than {self.max_body} bytes")
        if problem is not None:
            await json_error(*problem)(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                from starlette.datastructures import MutableHeaders

                security_headers(path, MutableHeaders(scope=message))
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _error_response(request: Request, status: int, code: str, detail: str) -> Response:
    if wants_json(request):
        return json_error(status, code, detail)
    try:
        return state_of(request).render(request, "error.html", status=status, code=code, detail=detail, title="Error")
    except Exception:  # the error page itself failed: plain text, never a traceback
        return Response(f"{status} {detail}\n", status_code=status, media_type="text/plain; charset=utf-8")


async def _archiver_error(request: Request, exc: Exception) -> Response:
    status, code = status_of(exc)
    if status >= 500:
        log.error("%s %s: %s", request.method, request.url.path, exc)
    return _error_response(request, status, code, str(exc).splitlines()[0] if str(exc) else code)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "error")
    return _error_response(request, exc.status_code, code, str(exc.detail))


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.exception("internal error on %s %s", request.method, request.url.path)
    return _error_response(request, 500, "internal_error", f"internal error ({type(exc).__name__})")


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("archiver.web", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    from archiver.web import filters

    env.filters.update(filters.FILTERS)
    env.globals.update(filters.GLOBALS)
    return env


def create_app(
    settings: Settings,
    *,
    allow_writes: bool = False,
    archive: Archive | None = None,
    clock: Callable[[], datetime] | None = None,
) -> Starlette:
    from archiver.web import api, evidence, feeds, forms, log_routes, memento, pages

    archive = archive or Archive(settings)
    clock = clock or archive.c.clock
    state = WebState(
        archive=archive,
        settings=settings,
        allow_writes=allow_writes,
        tokens=TokenStore(settings.key_path, clock, legacy_dir=archive.root),
        audits=AuditRunner(archive, clock),
        env=_environment(),
        clock=clock,
    )
    routes = [
        *pages.ROUTES,
        *forms.ROUTES,
        *evidence.ROUTES,
        *api.ROUTES,
        *feeds.ROUTES,
        *memento.ROUTES,
        *log_routes.ROUTES,
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={
            ArchiverError: _archiver_error,
            HTTPException: _http_error,
            Exception: _internal_error,
        },
    )
    app.state.web = state
    app.add_middleware(Limits, max_query=settings.web.max_query_bytes, max_body=settings.web.max_request_bytes)
    return app


def json_response(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(data, status_code=status)

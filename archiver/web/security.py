"""Who may write: bearer tokens for the API, CSRF tokens plus an API token
for HTML forms, and the headers every response carries.

Reads are open (the archive is evidence meant to be checked); every write
needs ``--allow-writes`` and a token of scope ``write``. A browser form
cannot send an Authorization header, so a form carries the token in a
password field and a CSRF token that must equal the ``archiver_csrf``
cookie (double submit, SameSite=Strict), and a cross-origin Origin header
is refused outright.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

from archiver.errors import AuthError, ForbiddenError
from archiver.web.tokens import TokenRecord, TokenStore

CSRF_COOKIE = "archiver_csrf"
CSRF_FIELD = "csrf"

APP_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'self'"
)
# Archived pages: nothing from outside the app, no scripts, an opaque origin.
ARCHIVED_CSP = (
    "default-src 'none'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; font-src 'self'; "
    "media-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'self'; sandbox"
)


def require_write(request: Request, tokens: TokenStore, allow_writes: bool, presented: str | None = None) -> TokenRecord:
    """The write token of a request, or AuthError (none/unknown) / ForbiddenError."""
    if presented is None:
        auth = request.headers.get("authorization", "")
        scheme, _, presented = auth.partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            raise AuthError("this needs a token: Authorization: Bearer <token> (archiver tokens create NAME --scope write)")
    record = tokens.check(presented.strip())
    if record is None:
        raise AuthError("unknown or revoked token")
    if not allow_writes:
        raise ForbiddenError("writes are disabled; start the server with --allow-writes")
    if record.scope != "write":
        raise ForbiddenError(f"token {record.name!r} has scope {record.scope!r}; writes need scope 'write'")
    return record


def csrf_token(request: Request) -> str:
    """The browser's CSRF token (set as a cookie by :func:`set_csrf_cookie`)."""
    existing = request.cookies.get(CSRF_COOKIE, "")
    if len(existing) == 43 and existing.replace("-", "").replace("_", "").isalnum():
        return existing
    token = getattr(request.state, "csrf", None)
    if token is None:
        token = secrets.token_urlsafe(32)
        request.state.csrf = token
    return str(token)


def set_csrf_cookie(request: Request, response: Response) -> None:
    token = getattr(request.state, "csrf", None)
    if token:
        response.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="strict", path="/",
                            secure=request.url.scheme == "https")


def check_form(request: Request, form: dict[str, Any]) -> None:
    """Refuse a form POST without a matching CSRF token or from another origin."""
    origin = request.headers.get("origin")
    if origin and origin != "null":
        host = request.headers.get("host", "")
        if urlsplit(origin).netloc != host:
            raise ForbiddenError("cross-origin form refused")
    cookie = request.cookies.get(CSRF_COOKIE, "")
    sent = str(form.get(CSRF_FIELD, ""))
    if not cookie or not sent or not hmac.compare_digest(cookie, sent):
        raise ForbiddenError("missing or wrong CSRF token: reload the page and try again")


def security_headers(path: str, headers: Any) -> None:
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "no-referrer")
    if "content-security-policy" not in headers:
        headers["Content-Security-Policy"] = APP_CSP
        headers.setdefault("X-Frame-Options", "SAMEORIGIN")

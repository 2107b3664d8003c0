"""HTTP plumbing shared by every route module: errors as ``{error, detail}``
JSON (API) or an escaped page (HTML), input validation, bounded bodies."""

from __future__ import annotations

import json
import logging
import re
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from archiver.errors import (
    AddressRefused,
    ArchiverError,
    AuthError,
    CaptureError,
    ConfigError,
    ForbiddenError,
    NotFoundError,
    NotVerified,
    UsageError,
)

log = logging.getLogger(__name__)

MAX_URL_CHARS = 4096
_ID = re.compile(r"[0-9a-hjkmnp-tv-z]{26}")
_PREFIX = re.compile(r"[0-9a-hjkmnp-tv-z]{1,26}")


class HttpError(ArchiverError):
    """An error with its own HTTP status and short code."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code = status, code


def status_of(exc: Exception) -> tuple[int, str]:
    if isinstance(exc, HttpError):
        return exc.status, exc.code
    for cls, status, code in (
        (AuthError, 401, "unauthorized"),
        (ForbiddenError, 403, "forbidden"),
        (NotFoundError, 404, "not_found"),
        (NotVerified, 409, "does_not_verify"),  # a snapshot whose signed evidence does not hold: nothing of it shown
        (AddressRefused, 422, "address_refused"),
        (CaptureError, 422, "capture_failed"),
        (ConfigError, 422, "invalid"),
        (UsageError, 400, "bad_request"),
    ):
        if isinstance(exc, cls):
            return status, code
    return 500, "internal_error"


def json_error(status: int, code: str, detail: str) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Bearer realm="archiver"'} if status == 401 else None
    return JSONResponse({"error": code, "detail": detail}, status_code=status, headers=headers)


def wants_json(request: Request) -> bool:
    path = request.url.path
    return path.startswith(("/api/", "/log/", "/timemap/", "/timegate/"))


def check_url(value: str | None, what: str = "url") -> str:
    """A URL parameter: present, bounded, http(s), printable, valid UTF-8."""
    if not value:
        raise UsageError(f"the {what} parameter is required")
    if len(value) > MAX_URL_CHARS:
        raise HttpError(414, "uri_too_long", f"the {what} parameter is longer than {MAX_URL_CHARS} characters")
    if "\ufffd" in value or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise UsageError(f"the {what} parameter has invalid characters")
    parts = urlsplit(value)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise UsageError(f"the {what} parameter must be an http(s) URL")
    return value


def check_id(value: str | None, *, prefix: bool = False, what: str = "id") -> str:
    if not value or not (_PREFIX if prefix else _ID).fullmatch(value):
        raise UsageError(f"invalid snapshot {what}")
    return value


def optional_id(value: str | None, what: str) -> str | None:
    return check_id(value, prefix=True, what=what) if value else None


def int_param(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or len(raw) > 9:
        raise UsageError(f"{name} must be a whole number")
    return max(lo, min(hi, int(raw)))


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise HttpError(413, "too_large", f"request body larger than {limit} bytes")
    out = bytearray()
    async for chunk in request.stream():
        out += chunk
        if len(out) > limit:
            raise HttpError(413, "too_large", f"request body larger than {limit} bytes")
    return bytes(out)


async def read_json(request: Request, limit: int) -> dict[str, Any]:
    body = await read_body(request, limit)
    if "json" not in request.headers.get("content-type", ""):
        raise HttpError(415 if body else 400, "bad_request", "send a JSON object (Content-Type: application/json)")
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise UsageError(f"the body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise HttpError(422, "invalid", "the body must be a JSON object")
    return data


async def read_form(request: Request, limit: int) -> dict[str, str]:
    body = await read_body(request, limit)
    try:
        pairs = parse_qsl(body.decode("ascii"), keep_blank_values=True, max_num_fields=50, errors="strict")
    except (UnicodeError, ValueError) as exc:
        raise UsageError("the form is not valid") from exc
    return dict(pairs)


def cache(response: Response, seconds: int, *, immutable: bool = False) -> Response:
    value = f"public, max-age={seconds}" + (", immutable" if immutable else "")
    response.headers["Cache-Control"] = value
    return response

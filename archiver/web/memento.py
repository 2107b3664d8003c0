"""Memento (RFC 7089): a TimeGate and TimeMaps (link-format and JSON) over
the archive, so Memento clients and aggregators can find every capture.

URI-R is the page's URL as captured; each URI-M is the archived page served
under ``/archived/<id>/...`` (with ``Memento-Datetime`` and ``Link``
headers); the TimeGate is ``/timegate/<URI-R>`` and the TimeMaps are
``/timemap/link/<URI-R>`` and ``/timemap/json/<URI-R>``.
"""

from __future__ import annotations

import email.utils
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from archiver.errors import NotFoundError, UsageError
from archiver.web.app import state_of
from archiver.web.evidence import archived_path
from archiver.web.filters import path_url
from archiver.web.http import check_url
from store.index import SnapshotRow

LINK_FORMAT = "application/link-format"


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def http_date(captured_at: str) -> str:
    """RFC 1123 date, as Memento-Datetime and Accept-Datetime use."""
    return email.utils.format_datetime(_parse(captured_at).astimezone(timezone.utc), usegmt=True)


def memento_links(base: str, url: str) -> str:
    u = path_url(url)
    return (f'<{url}>; rel="original", <{base}/timegate/{u}>; rel="timegate", '
            f'<{base}/timemap/link/{u}>; rel="timemap"; type="{LINK_FORMAT}"')


def target_url(request: Request, prefix: str) -> str:
    """The URI-R after a route prefix, taken from the raw path (and query)."""
    raw = request.scope.get("raw_path", b"").decode("ascii", "strict")
    rest = raw[len(prefix):] if raw.startswith(prefix) else ""
    if re.match(r"(?i)https?%3a", rest):
        rest = unquote(rest)
    rest = re.sub(r"^(https?:)/(?!/)", r"\1//", rest)  # a proxy may have merged the slashes
    query = request.url.query
    return check_url(rest + (f"?{query}" if query else ""), "URL")


def _accept_datetime(request: Request) -> datetime | None:
    value = request.headers.get("accept-datetime")
    if value is None:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError) as exc:
        raise UsageError("Accept-Datetime must be an RFC 1123 date (e.g. Thu, 01 Jan 2026 00:00:00 GMT)") from exc
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class _Asked:
    """What every Memento handler starts from: the URI-R asked about, its
    snapshots a client may replay and the public base URL."""

    url: str
    rows: list[SnapshotRow]
    base: str

    @property
    def path(self) -> str:
        """The URI-R as it stands in this archive's Memento paths."""
        return path_url(self.url)


def _asked(request: Request, prefix: str) -> _Asked:
    """The URI-R after ``prefix`` and its snapshots that verify (archive.verified,
    the only ones a Memento client may replay as this archive's); 404 when none does."""
    web = state_of(request)
    url = target_url(request, prefix)
    rows = web.archive.verified(web.archive.history(url))
    if not rows:
        raise NotFoundError(f"no snapshot of {url} verifies")
    return _Asked(url, rows, web.base_url(request))


def timegate(request: Request) -> Response:
    asked = _asked(request, "/timegate/")
    rows = asked.rows
    wanted = _accept_datetime(request)
    chosen = rows[-1] if wanted is None else min(rows, key=lambda r: abs((_parse(r.captured_at) - wanted).total_seconds()))
    return Response(status_code=302, headers={
        "Location": asked.base + archived_path(chosen),
        "Vary": "accept-datetime",
        "Link": memento_links(asked.base, asked.url),
    })


def _mementos(base: str, rows: list[SnapshotRow]) -> list[dict[str, Any]]:
    return [{"datetime": r.captured_at, "uri": base + archived_path(r), "id": r.id} for r in rows]


def timemap_link(request: Request) -> Response:
    asked = _asked(request, "/timemap/link/")
    url, rows, base, u = asked.url, asked.rows, asked.base, asked.path
    lines = [
        f'<{url}>; rel="original"',
        f'<{base}/timegate/{u}>; rel="timegate"',
        f'<{base}/timemap/link/{u}>; rel="self"; type="{LINK_FORMAT}"; '
        f'from="{http_date(rows[0].captured_at)}"; until="{http_date(rows[-1].captured_at)}"',
    ]
    for i, m in enumerate(_mementos(base, rows)):
        rel = "memento"
        if i == 0:
            rel = "first " + rel
        if i == len(rows) - 1:
            rel = ("first last memento" if i == 0 else "last memento")
        lines.append(f'<{m["uri"]}>; rel="{rel}"; datetime="{http_date(m["datetime"])}"')
    return Response(",\n".join(lines) + "\n", media_type=LINK_FORMAT)


def timemap_json(request: Request) -> Response:
    asked = _asked(request, "/timemap/json/")
    url, base, u = asked.url, asked.base, asked.path
    mementos = _mementos(base, asked.rows)
    return JSONResponse({
        "original_uri": url,
        "timegate_uri": f"{base}/timegate/{u}",
        "timemap_uri": {"link_format": f"{base}/timemap/link/{u}", "json_format": f"{base}/timemap/json/{u}"},
        "mementos": {"first": mementos[0], "last": mementos[-1], "list": mementos},
    })


ROUTES = [
    Route("/timegate/{target:path}", timegate, name="timegate"),
    Route("/timemap/link/{target:path}", timemap_link, name="timemap_link"),
    Route("/timemap/json/{target:path}", timemap_json, name="timemap_json"),
]

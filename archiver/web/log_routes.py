"""``/log/checkpoint`` and ``/log/tile/...``: the Merkle log over HTTP as
C2SP tlog-tiles lays it out, for witnesses and third-party auditors."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from archiver.errors import NotFoundError
from archiver.web.app import state_of
from archiver.web.http import cache
from archiver.web.tiles import parse_tile_path, read_entries, read_tile

IMMUTABLE = 365 * 24 * 3600


def checkpoint(request: Request) -> Response:
    """The latest checkpoint, kept as ``published`` (a witness may hold it)."""
    row = state_of(request).archive.provenance.hand_out("published")
    if row is None:
        raise NotFoundError("the log is empty: no checkpoint yet")
    return cache(Response(row.note, media_type="text/plain; charset=utf-8"), 5)


def tile(request: Request) -> Response:
    path = parse_tile_path(request.path_params["rest"])
    with state_of(request).archive.index.read() as conn:
        data = read_entries(conn, path) if path.level is None else read_tile(conn, path)
    return cache(Response(data, media_type="application/octet-stream"), IMMUTABLE, immutable=True)


ROUTES = [
    Route("/log/checkpoint", checkpoint, name="log_checkpoint"),
    Route("/log/tile/{rest:path}", tile, name="log_tile"),
]

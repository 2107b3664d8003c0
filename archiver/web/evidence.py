"""The evidence pages: one snapshot with its provenance panel and live
verification, its downloads (signed manifest, inclusion proof, WACZ), the
archived page itself in a sandbox, and the archive audit."""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from archiver.archive import Archive
from archiver.errors import ArchiverError, NotFoundError
from archiver.web.app import state_of
from archiver.web.http import check_id, check_url, read_form
from archiver.web.replay import archived_url, rewrite_css, rewrite_html
from archiver.web.security import ARCHIVED_CSP, check_form
from archiver.web.verification import (
    SnapshotVerification,
    inclusion_check,
    load_keyring,
    verify_snapshot,
)
from store.index import SnapshotRow

log = logging.getLogger(__name__)

MAX_REDIRECTS = 5


def _row(request: Request) -> SnapshotRow:
    return state_of(request).archive.snapshot_by_id(check_id(request.path_params["id"]))


def archived_path(row: SnapshotRow) -> str:
    """Where the archived page is served: its URL mirrored under /archived/<id>/
    (the requisites of the same snapshot live beside it, see ``replay``)."""
    return archived_url(row.id, row.final_url)


def snapshot(request: Request) -> Response:
    web = state_of(request)
    row = _row(request)
    manifest = web.archive.checked_fields(row)["manifest"]  # 409 when it does not verify
    article = web.archive.article(row)
    verification = verify_snapshot(web.archive, row)
    history = web.archive.shown(web.archive.history(row.url))
    return web.render(
        request, "snapshot.html", title=f"Snapshot {row.id}", row=web.archive.shown([row])[0], manifest=manifest,
        text=article.text() if article is not None else None, v=verification, history=history,
        archived=archived_path(row),
    )


def manifest_download(request: Request) -> Response:
    web = state_of(request)
    row = _row(request)
    return JSONResponse(
        web.archive.signed_manifest(row),
        headers={"Content-Disposition": f'attachment; filename="manifest-{row.id}.json"'},
    )


def proof_download(request: Request) -> Response:
    web = state_of(request)
    row = _row(request)
    holder = SnapshotVerification()
    check = inclusion_check(web.archive, row, load_keyring(web.archive), holder)
    if holder.proof is None:
        raise NotFoundError(f"no inclusion proof for {row.id}: {check.detail}")
    return JSONResponse(
        {**holder.proof, "verified": check.ok},
        headers={"Content-Disposition": f'attachment; filename="proof-{row.id}.json"'},
    )


def wacz_download(request: Request) -> Response:
    from archiver.audit.wacz_export import export_wacz

    web = state_of(request)
    url = check_url(request.query_params.get("url"))
    web.archive.history(url)
    tmp = Path(tempfile.mkdtemp(prefix="archiver-web-wacz-"))
    try:
        path = export_wacz(web.archive, [url], tmp / "export.wacz", clock=web.clock)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    host = (urlsplit(url).hostname or "archive").replace(".", "-")
    return FileResponse(
        path, media_type="application/wacz", filename=f"{host}.wacz",
        background=BackgroundTask(shutil.rmtree, tmp, ignore_errors=True),
    )


def archived_view(request: Request) -> Response:
    web = state_of(request)
    row = _row(request)
    web.archive.signed(row)  # 409 when it does not verify
    return web.render(request, "archived.html", title=f"Archived {row.url}", row=row, archived=archived_path(row))


def _memento_headers(request: Request, row: SnapshotRow) -> dict[str, str]:
    from archiver.web.memento import http_date, memento_links

    base = state_of(request).base_url(request)
    return {"Memento-Datetime": http_date(row.captured_at), "Link": memento_links(base, row.url)}


def archived_content(request: Request) -> Response:
    """The captured page or one of its requisites, links pointing into the
    archive, never able to run or reach anything outside the app."""
    web = state_of(request)
    row = _row(request)
    scheme, _, target = request.path_params["rest"].partition("/")
    query = request.url.query
    wanted = f"{scheme}://{target}" + (f"?{query}" if query else "")
    headers = {"Content-Security-Policy": ARCHIVED_CSP, "Cache-Control": "private, max-age=3600",
               "X-Content-Type-Options": "nosniff"}
    if wanted in (row.final_url, row.url):
        # The payload its verified manifest signs, as the type its signed response record states -- not the
        # row's content_type (nothing signs that column: an index writer could have a text/plain page rendered as HTML).
        body, content_type = web.archive.page(row)
        content_type = content_type or "application/octet-stream"
        headers.update(_memento_headers(request, row))
        base, status = row.final_url, row.status
    else:
        found = _requisite(web.archive, row, wanted)
        if found is None:
            return Response(b"", status_code=404, headers=headers)
        body, content_type, base, status = found
    kind = content_type.split(";")[0].strip().lower()
    if kind in ("text/html", "application/xhtml+xml"):
        rewritten = rewrite_html(body, content_type, row.id, base)
        if rewritten is not None:
            body, content_type = rewritten, "text/html; charset=utf-8"
    elif kind == "text/css":
        from archiver.changes.extract import decode_html

        body = rewrite_css(decode_html(body, content_type), row.id, base).encode("utf-8")
        content_type = "text/css; charset=utf-8"
    # The captured status (a requisite that was a 404 stays one); what cannot be sent is a 200.
    return Response(body, status_code=status if 200 <= status < 600 and status not in (204, 304) else 200,
                    media_type=content_type, headers=headers)


def _requisite(archive: Archive, row: SnapshotRow, url: str) -> tuple[bytes, str, str, int] | None:
    """A resource captured with this snapshot (a requisite) by its URL: its
    body, content type, final URL and status, following revisits and redirects."""
    records = {rec.target_uri: rec for rec in archive.index.records_for(row.id) if rec.type in ("response", "revisit")}
    claims = archive.signed_claims(row)  # the index lists the records; only those the manifest signs are served
    for _ in range(MAX_REDIRECTS + 1):
        rec = records.get(url)
        if rec is None:
            return None
        stored = archive.signed_record(rec, claims.get(rec.record_id))
        if stored is None:
            log.warning("snapshot %s: record %s is not one its signed manifest names; not served (run archiver verify)",
                        row.id, rec.record_id)
            return None
        http = stored.http_headers
        if stored.type == "revisit":
            try:
                stored = archive.original_of(stored)  # only one holding the payload the revisit names
            except ArchiverError as exc:
                log.warning("snapshot %s: %s", row.id, exc)
                return None
        status = int(http.get_statuscode() or 0) if http is not None else 0
        location = http.get_header("Location") if http is not None else None
        if 300 <= status < 400 and location:
            url = urljoin(url, location)
            continue
        ctype = (http.get_header("Content-Type") if http is not None else None) or "application/octet-stream"
        return stored.content, ctype, url, status
    return None


def verify_page(request: Request) -> Response:
    web = state_of(request)
    return web.render(request, "verify.html", title="Verify", audit=web.audits.state)


async def verify_start(request: Request) -> Response:
    web = state_of(request)
    form = await read_form(request, web.settings.web.max_request_bytes)
    check_form(request, form)
    web.audits.start()
    return RedirectResponse("/verify", status_code=303)


ROUTES = [
    Route("/snapshot/{id}", snapshot, name="snapshot"),
    Route("/snapshot/{id}/manifest.json", manifest_download, name="manifest"),
    Route("/snapshot/{id}/proof.json", proof_download, name="proof"),
    Route("/snapshot/{id}/view", archived_view, name="archived_view"),
    Route("/archived/{id}/{rest:path}", archived_content, name="archived"),
    Route("/wacz", wacz_download, name="wacz"),
    Route("/verify", verify_page, methods=["GET"], name="verify"),
    Route("/verify", verify_start, methods=["POST"]),
]

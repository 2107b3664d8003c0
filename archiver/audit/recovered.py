"""Captures rebuilt from the records a crash left: what ``repair`` commits
for records without a manifest (their signed intent vouches for them).

The intent lists (response, request) pairs; the page's redirect chain comes
first, then each requisite's chain. Split out of ``repair`` to keep that
module to the repair decisions.
"""

from __future__ import annotations

import io
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

from warcio.statusandheaders import StatusAndHeadersParser

from archiver.capture.http import REDIRECT_STATUSES, Capture, Hop
from archiver.capture.requisite_records import RequisitePlan, recovered_plan
from store.scan import ParsedRecord
from store.warc import RecordLocation

if TYPE_CHECKING:
    from archiver.audit.repairscan import Scanned


def http_headers(rec: ParsedRecord) -> Any:
    head, _ = rec.http_split()
    try:
        return StatusAndHeadersParser(["HTTP/1.0", "HTTP/1.1"], verify=False).parse(io.BytesIO(head))
    except Exception:  # noqa: BLE001 - a broken head only loses the content type
        return None


def recovered_capture(
    pairs: list[Scanned],
) -> tuple[Capture, list[RecordLocation], Scanned, tuple[RequisitePlan, list[RecordLocation]] | None]:
    """The capture an intent lists: its records are response, request, response, request, ...

    The page's redirect chain comes first; any pairs after it are the page's
    requisites (each its own redirect chain), written in the same intent.
    """
    chains = _chains(list(zip(pairs[::2], pairs[1::2])))
    page = chains[0]
    capture = Capture(url=page[0][0].rec.headers.get("WARC-Target-URI", ""), hops=[_hop(s, req) for s, req in page])
    locations = [loc for s, req in page for loc in (s.location(), req.location())]
    if len(chains) == 1:
        return capture, locations, page[-1][0], None
    recovered = [(Capture(url=c[0][0].rec.headers.get("WARC-Target-URI", ""), hops=[_hop(s, req) for s, req in c]),
                  c[-1][0].rec.type == "revisit") for c in chains[1:]]
    req_locations = [loc for c in chains[1:] for s, req in c for loc in (s.location(), req.location())]
    return capture, locations, page[-1][0], (recovered_plan(recovered), req_locations)


def _chains(pairs: list[tuple[Scanned, Scanned]]) -> list[list[tuple[Scanned, Scanned]]]:
    """Split (response, request) pairs into redirect chains: a pair continues the
    chain when the previous response redirects to its URL."""
    chains: list[list[tuple[Scanned, Scanned]]] = []
    for pair in pairs:
        if chains and _redirects_to(chains[-1][-1][0], pair[0]):
            chains[-1].append(pair)
        else:
            chains.append([pair])
    return chains


def _redirects_to(prev: Scanned, nxt: Scanned) -> bool:
    http = http_headers(prev.rec)
    if http is None:
        return False
    status = int((http.get_statuscode() or "0")[:3] or 0)
    location = http.get_header("Location")
    if status not in REDIRECT_STATUSES or not location:
        return False
    return urljoin(prev.rec.headers.get("WARC-Target-URI", ""), location.strip()) == nxt.rec.headers.get("WARC-Target-URI")


def _hop(s: Scanned, req: Scanned) -> Hop:
    http = http_headers(s.rec)
    when = datetime.fromisoformat(s.rec.headers.get("WARC-Date", "").replace("Z", "+00:00"))
    return Hop(
        url=s.rec.headers.get("WARC-Target-URI", ""), started_at=when, ended_at=when,
        request_bytes=req.rec.block, response_bytes=s.rec.block,
        status=int((http.get_statuscode() or "0")[:3]) if http else 0, ip=s.rec.headers.get("WARC-IP-Address"),
        tls=None, request_headers=_header_dict(req.rec), response_headers={k.lower(): v for k, v in (http.headers if http else [])},
        body=b"", payload=s.rec.payload(),
    )


def _header_dict(rec: ParsedRecord) -> dict[str, str]:
    http = http_headers(rec)
    return dict(http.headers) if http else {}

"""Fetched requisites -> WARC records and the signed manifest's ``requisites``.

Each requisite's exchanges become request+response records exactly like the
page's. A requisite whose final payload this archive already holds for the
same URL (an unchanged stylesheet, a logo) becomes an identical-payload-digest
``revisit`` of that earlier response, so watching an article for months stores
its CSS and fonts once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from archiver.capture.http import Capture
from archiver.capture.records import RevisitTarget, exchange_records, record_ref
from archiver.capture.requisites import CAPTURED, FAILED, Requisite, Requisites
from store.index import RecordRow
from store.warc import RecordLocation, WarcRecord

REQUISITE_HOP = -1  # the records table's hop of a requisite record (page hops are 0..n)


class _Originals(Protocol):
    def response_with_payload(self, target_uri: str, payload_sha256: str) -> RecordRow | None: ...


@dataclass
class _Span:
    item: Requisite
    start: int
    end: int
    revisit: bool


@dataclass
class RequisitePlan:
    """The records to append for a page's requisites, and how to describe them once written."""

    requisites: Requisites
    records: list[WarcRecord] = field(default_factory=list)
    spans: list[_Span] = field(default_factory=list)

    def manifest(self, locations: list[RecordLocation]) -> dict[str, Any]:
        """The manifest's ``requisites`` object, given where ``records`` landed."""
        if len(locations) != (self.spans[-1].end if self.spans else 0):
            raise ValueError("one location per requisite record is needed")
        by_item = {id(s.item): s for s in self.spans}
        items = []
        for item in self.requisites.items:
            span = by_item.get(id(item))
            entry: dict[str, Any] = {
                "url": item.url,
                "kind": item.kind,
                "outcome": "revisit" if span and span.revisit and item.outcome == "captured" else item.outcome,
                "status": item.status,
                "error": item.error,
                "final_url": item.capture.final.url if item.capture else None,
                "payload_sha256": item.capture.final.payload_sha256 if item.capture else None,
                "content_type": item.capture.final.response_headers.get("content-type") if item.capture else None,
                "records": [record_ref(loc) for loc in locations[span.start:span.end]] if span else [],
            }
            items.append(entry)
        return {**self.requisites.summary([i["outcome"] for i in items]), "items": items}


def plan_records(
    requisites: Requisites, originals: _Originals, new_uuid: Callable[[], str]
) -> RequisitePlan:
    """Build the WARC records of every requisite that recorded exchanges."""
    plan = RequisitePlan(requisites)
    for item in requisites.items:
        if item.capture is None:
            continue
        start = len(plan.records)
        hops = item.capture.hops
        revisit = False
        for i, hop in enumerate(hops):
            target = None
            if i == len(hops) - 1 and hop.payload:
                original = originals.response_with_payload(hop.url, hop.payload_sha256)
                if original is not None:
                    target = RevisitTarget(original.target_uri, original.date, original.record_id, original.payload_digest)
                    revisit = True
            plan.records.extend(exchange_records(hop, new_uuid, target))
        plan.spans.append(_Span(item, start, len(plan.records), revisit))
    return plan


RECOVERED = "recovered"  # the kind of a requisite ``repair`` found after a crash (the page is not re-read)


def recovered_plan(chains: list[tuple[Capture, bool]]) -> RequisitePlan:
    """The plan of requisite records already in a WARC (``repair``): each chain a
    requisite capture and whether its final record is a revisit."""
    plan = RequisitePlan(Requisites(found=len(chains)))
    end = 0
    for capture, revisit in chains:
        status = capture.final.status
        failed = status >= 400
        item = Requisite(capture.url, RECOVERED, FAILED if failed else CAPTURED, capture,
                         error=f"HTTP {status}" if failed else None)
        plan.requisites.items.append(item)
        plan.spans.append(_Span(item, end, end + 2 * len(capture.hops), revisit))
        end += 2 * len(capture.hops)
    return plan

"""Captured hops -> WARC records (request, response or revisit, metadata).

Digests are SHA-256 as ``sha256:HEX`` (a WARC 1.1 ``token``; see
``store.warc.sha256_label``), on every record that has a block. The payload
digest is taken over the entity body with transfer-encoding removed, as WARC
1.1 (6.3.2) defines it, so a chunked and a plain response of the same body
get the same digest -- which is what revisit deduplication relies on.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Protocol

from store.warc import RecordLocation, WarcRecord, new_record, parse_warc_date, sha256_label, warc_date

if TYPE_CHECKING:  # the audit reads manifests and intents here without the capture stack
    from archiver.capture.http import Hop

HTTP_RESPONSE = "application/http; msgtype=response"
HTTP_REQUEST = "application/http; msgtype=request"


INTENT_CONTENT_TYPE = "application/vnd.archiver.intent+json"  # a capture intent (provenance/intent.py)
IDENTICAL_PAYLOAD = "http://netpreserve.org/warc/1.1/revisit/identical-payload-digest"
NOT_MODIFIED = "http://netpreserve.org/warc/1.1/revisit/server-not-modified"


@dataclass(frozen=True)
class RevisitTarget:
    """The earlier response whose payload this one repeats.

    ``payload_digest`` is that response's WARC-Payload-Digest; it is only
    needed for a 304 (server-not-modified), whose own body is empty.
    """

    target_uri: str
    date: str  # its WARC-Date
    record_id: str
    payload_digest: str | None = None


def refers_to_date(original_date: str) -> str:
    """The original's WARC-Date to the second, for WARC-Refers-To-Date.

    ReplayWeb.page resolves a revisit by looking for the first capture of
    the URL at or after this instant in its index, and a WACZ index (CDXJ)
    keeps whole seconds: with the original's microseconds the original sorts
    *before* the instant and the player showed the next, edited version for
    an unchanged page. The same second names the same original for every
    reader (WARC 1.1 dates may be of any precision; pywb matches by digest).
    """
    when = parse_warc_date(original_date)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ") if when is not None else original_date


def record_id(new_uuid: Callable[[], str]) -> str:
    return f"<urn:uuid:{new_uuid()}>"


def exchange_records(
    hop: Hop, new_uuid: Callable[[], str], revisit_of: RevisitTarget | None = None
) -> list[WarcRecord]:
    """The response (or revisit) record of a hop, then its request record.

    Each block is the exact bytes of the exchange (a revisit's: the
    response's head as received), and each digest is taken over that block.
    """
    date = warc_date(hop.started_at)
    resp_id = record_id(new_uuid)
    ip = [("WARC-IP-Address", hop.ip)] if hop.ip else []
    not_modified = hop.status == 304 and revisit_of is not None
    if not_modified and revisit_of is not None and revisit_of.payload_digest:
        payload_label = revisit_of.payload_digest
    else:
        payload_label = sha256_label(hashlib.sha256(hop.payload).digest())
    if revisit_of is None:
        response = new_record("response", hop.url, resp_id, date, hop.response_bytes, HTTP_RESPONSE, [
            *ip,
            ("WARC-Payload-Digest", payload_label),
            ("WARC-Block-Digest", sha256_label(hashlib.sha256(hop.response_bytes).digest())),
        ])
    else:
        end = hop.response_bytes.find(b"\r\n\r\n")
        head = hop.response_bytes[: end + 4] if end >= 0 else hop.response_bytes
        response = new_record("revisit", hop.url, resp_id, date, head, HTTP_RESPONSE, [
            *ip,
            ("WARC-Refers-To", revisit_of.record_id),
            ("WARC-Truncated", "length"),
            ("WARC-Block-Digest", sha256_label(hashlib.sha256(head).digest())),
            ("WARC-Profile", NOT_MODIFIED if not_modified else IDENTICAL_PAYLOAD),
            ("WARC-Refers-To-Target-URI", revisit_of.target_uri),
            ("WARC-Refers-To-Date", refers_to_date(revisit_of.date)),
            ("WARC-Payload-Digest", payload_label),
        ])
    # The payload of a request is its body (none for a GET), named in SHA-256.
    _, sep, request_body = hop.request_bytes.partition(b"\r\n\r\n")
    request = new_record("request", hop.url, record_id(new_uuid), date, hop.request_bytes, HTTP_REQUEST, [
        ("WARC-Concurrent-To", resp_id),
        ("WARC-Block-Digest", sha256_label(hashlib.sha256(hop.request_bytes).digest())),
        ("WARC-Payload-Digest", sha256_label(hashlib.sha256(request_body if sep else b"").digest())),
        *ip,
    ])
    return [response, request]


def record_ref(loc: RecordLocation) -> dict[str, Any]:
    """How a signed manifest names one WARC record."""
    return {
        "record_id": loc.record_id,
        "type": loc.record_type,
        "target_uri": loc.target_uri,
        "warc_file": loc.warc_file,
        "offset": loc.offset,
        "length": loc.length,
        "sha256": loc.sha256,
    }


MANIFEST_URN = "urn:archiver:manifest:"
INTENT_URN = "urn:archiver:intent:"


def manifest_uri(snapshot_id: str) -> str:
    """The manifest record's own target URI.

    Replay tools (pywb's indexer, cdxj-indexer with ``--records all``,
    ReplayWeb.page) index records by WARC-Target-URI; with the page's URL
    there, the manifest shadowed the page. A URN of its own keeps it out of
    the page's lookups while staying indexable for who asks for it by name.
    """
    return MANIFEST_URN + snapshot_id


def intent_uri(response_record_id: str) -> str:
    """A capture intent's target URI: a URN naming the response it seals (for the same reason)."""
    return INTENT_URN + response_record_id.strip("<>").removeprefix("urn:uuid:")


class _Record(Protocol):
    """A parsed WARC record: the archive's scan and the WACZ reader both give one."""

    @property
    def type(self) -> str: ...

    @property
    def block(self) -> bytes: ...

    def header(self, name: str) -> str | None: ...


def manifest_fields(rec: _Record) -> dict[str, Any] | None:
    """The signed-manifest document a manifest record carries; None for any
    other record, and for one that only looks like a manifest (anyone can
    append records: every field the audit and repair read is checked here).

    The one reader of manifest records. Both forms are read: the current
    one (target ``urn:archiver:manifest:<id>``) and the earlier one, which
    had the page's URL as its target. A URN naming another snapshot than the
    manifest inside is not that snapshot's manifest record.
    """
    if not is_manifest_record(rec):
        return None
    try:
        fields = json.loads(rec.block)
    except ValueError:
        return None
    return _as_manifest(fields, rec)


def _as_manifest(fields: Any, rec: _Record) -> dict[str, Any] | None:
    if not _well_formed(fields):
        return None
    target = rec.header("WARC-Target-URI") or ""
    if target.startswith(MANIFEST_URN) and target != manifest_uri(fields["manifest"]["snapshot_id"]):
        return None
    return dict(fields)


_HEX = b"0123456789abcdef"  # deleted by translate: what is left is not of the set
_B64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="


def signed_manifest(rec: _Record) -> tuple[dict[str, Any], bytes] | None:
    """:func:`manifest_fields` and the manifest's own bytes inside the record --
    for a document exactly as archiver writes it (sorted keys, no spaces: key
    id, manifest, its SHA-256, signature) whose manifest bytes hash to the
    stated digest; None for any other shape (read those with manifest_fields).

    The audit then checks the signature over these bytes instead of encoding
    the parsed manifest again: bytes with the stated digest are the bytes
    that were signed, which the signer made canonical (a manifest with
    characters beyond ASCII is escaped in the record, so it takes the general
    path). Every piece is split off by position and checked by character set,
    so no other document can be read this way.
    """
    block = rec.block
    if not is_manifest_record(rec) or not block.startswith(b'{"key_id":"') or not block.endswith(b'"}'):
        return None
    key_end = block.find(b'"', 11)
    sig_at = block.rfind(b'","signature":"')
    sha_at = sig_at - 84  # ',"manifest_sha256":"' and 64 hex digits before it
    key_id, digest, signature = block[11:key_end], block[sha_at + 20 : sig_at], block[sig_at + 15 : -2]
    if (key_end < 0 or sig_at < 0 or block[key_end : key_end + 13] != b'","manifest":' or sha_at < key_end + 13
            or block[sha_at : sha_at + 20] != b',"manifest_sha256":"' or key_id.translate(None, _HEX)
            or len(digest) != 64 or digest.translate(None, _HEX) or signature.translate(None, _B64)):
        return None
    data = block[key_end + 13 : sha_at]
    if hashlib.sha256(data).hexdigest().encode("ascii") != digest:
        return None
    try:
        manifest = json.loads(data)
    except ValueError:
        return None
    fields = {"key_id": key_id.decode("ascii"), "manifest": manifest, "manifest_sha256": digest.decode("ascii"),
              "signature": signature.decode("ascii")}
    checked = _as_manifest(fields, rec)
    return (checked, data) if checked is not None else None


def is_manifest_record(rec: _Record) -> bool:
    """Does this record claim to be a signed manifest (well formed or not)?"""
    return rec.type == "metadata" and rec.header("Content-Type") == "application/json"


def _well_formed(fields: Any) -> bool:
    if not isinstance(fields, dict) or not all(isinstance(fields.get(k), str) for k in ("signature", "key_id")):
        return False
    m = fields.get("manifest")
    if not isinstance(m, dict) or not all(isinstance(m.get(k), str) for k in ("snapshot_id", "url", "final_url")):
        return False
    log_entry = m.get("log")
    if not isinstance(log_entry, dict) or type(log_entry.get("index")) is not int:
        return False
    records = m.get("records")
    return isinstance(records, list) and all(
        isinstance(r, dict) and all(isinstance(r.get(k), str) for k in ("record_id", "sha256", "type"))
        for r in records
    )


def intent_document(rec: _Record) -> Any:
    """The JSON of an intent record (see provenance/intent.py); None for any other record."""
    if rec.type != "metadata" or rec.header("Content-Type") != INTENT_CONTENT_TYPE:
        return None
    try:
        return json.loads(rec.block)
    except ValueError:
        return {}


def manifest_record(
    snapshot_id: str, date: str, refers_to: str, fields: dict, new_uuid: Callable[[], str], canonical: bytes = b"",
) -> WarcRecord:
    """The ``metadata`` record carrying a snapshot's signed manifest.

    ``metadata`` (WARC 1.1 6.6: content describing another record), not
    ``resource``: replay tools never serve it as a capture, and the rule
    "every replayable record is named by a signed manifest" needs no
    exception for the manifest itself. ``date`` is when it was signed.
    ``canonical``: the signed bytes of ``fields["manifest"]``, when the
    signer kept them: the document embeds them as they are instead of
    encoding the manifest again (the same bytes for an ASCII manifest; with
    other characters, UTF-8 instead of escapes -- the same JSON value).
    """
    body = None
    if canonical:
        text = {k: json.dumps(fields[k]) for k in ("key_id", "manifest_sha256", "signature")}
        body = (f'{{"key_id":{text["key_id"]},"manifest":'.encode("ascii") + canonical
                + f',"manifest_sha256":{text["manifest_sha256"]},"signature":{text["signature"]}}}'.encode("ascii"))
    return metadata_record(manifest_uri(snapshot_id), date, refers_to, fields, new_uuid, body=body)


def metadata_record(
    target_uri: str, date: str, refers_to: str, fields: dict, new_uuid: Callable[[], str],
    content_type: str = "application/json", body: bytes | None = None,
) -> WarcRecord:
    """A ``metadata`` record carrying a JSON document about a response, which
    it names with WARC-Refers-To and WARC-Concurrent-To (``body``: that
    document already encoded, else ``fields`` encoded here)."""
    if body is None:
        body = json.dumps(fields, sort_keys=True, separators=(",", ":")).encode("utf-8")
    digest = sha256_label(hashlib.sha256(body).digest())
    return new_record("metadata", target_uri, record_id(new_uuid), date, body, content_type, [
        ("WARC-Refers-To", refers_to),
        ("WARC-Concurrent-To", refers_to),
        ("WARC-Block-Digest", digest),
        ("WARC-Payload-Digest", digest),  # the block is the payload
    ])

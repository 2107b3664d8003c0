"""The snapshot manifest: what was fetched, when, from where, by which software.

The manifest is canonical JSON, signed, written into the WARC as a
``metadata`` record next to the response and kept in the index. Its digest is
the snapshot's leaf in the Merkle log, and each manifest names the digest of
the previous manifest of the same URL, so a URL's history is a hash chain.
"""

from __future__ import annotations

import functools
import platform
import socket
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from archiver import __version__
from archiver.canonical import canonical_json, sha256_hex
from archiver.capture.records import record_ref
from store.warc import RecordLocation, warc_date

if TYPE_CHECKING:  # the audit checks manifests without loading the capture stack
    from archiver.capture.http import Capture

MANIFEST_VERSION = 1
SOFTWARE = "archiver"


@dataclass(frozen=True)
class SignedManifest:
    manifest: dict[str, Any]
    digest: str  # hex SHA-256 of the canonical manifest
    signature: str  # base64
    key_id: str
    canonical: bytes = b""  # the signed bytes (canonical JSON of ``manifest``), when the signer kept them

    def record_fields(self) -> dict[str, Any]:
        """What the WARC metadata record carries."""
        return {
            "manifest": self.manifest,
            "manifest_sha256": self.digest,
            "signature": self.signature,
            "key_id": self.key_id,
        }


@functools.lru_cache(maxsize=1)
def software_info() -> dict[str, str]:
    from importlib.metadata import version

    import requests

    return {
        "name": SOFTWARE,
        "version": __version__,
        "python": platform.python_version(),
        "requests": requests.__version__,
        "urllib3": version("urllib3"),  # the HTTP client of the outbound path
        "warcio": version("warcio"),
    }


def build_manifest(
    *,
    snapshot_id: str,
    capture: Capture,
    locations: list[RecordLocation],
    text_sha256: str | None,
    payload_sha256: str,
    significance: str,
    prev_manifest_sha256: str | None,
    log_index: int,
    log_origin: str,
    hostname: str | None = None,
    requisites: dict[str, Any] | None = None,
    diff_sha256: str | None = None,
) -> dict[str, Any]:
    """Everything an auditor needs to know about one snapshot, signed as one.
    ``diff_sha256``: the SHA-256 of the diff with the previous snapshot
    exactly as the index stores it (:func:`diff_bytes`), when it stores one."""
    final = capture.final
    hops = []
    for hop in capture.hops:
        hops.append(
            {
                "url": hop.url,
                "status": hop.status,
                "ip": hop.ip,
                "started_at": warc_date(hop.started_at),
                "ended_at": warc_date(hop.ended_at),
                "request_headers": hop.request_headers,
                "payload_sha256": hop.payload_sha256,
                "tls": None
                if hop.tls is None
                else {
                    "version": hop.tls.version,
                    "cipher": hop.tls.cipher,
                    "cert_sha256": hop.tls.cert_sha256,
                    "cert_pem": hop.tls.cert_pem,
                    "chain": [{"sha256": digest, "pem": pem} for digest, pem in hop.tls.chain],
                },
            }
        )
    return {
        "manifest_version": MANIFEST_VERSION,
        "snapshot_id": snapshot_id,
        "url": capture.url,
        "final_url": final.url,
        "redirect_chain": [h.url for h in capture.hops],
        "fetch_started_at": warc_date(capture.started_at),
        "fetch_ended_at": warc_date(capture.ended_at),
        "status": final.status,
        "remote_ip": final.ip,
        "tls": hops[-1]["tls"],
        "credentials": capture.credentials,
        "hops": hops,
        "payload_sha256": payload_sha256,
        "text_sha256": text_sha256,
        "significance": significance,
        "records": [record_ref(loc) for loc in locations],
        "previous_manifest_sha256": prev_manifest_sha256,
        "log": {"origin": log_origin, "index": log_index},
        "software": dict(software_info()),
        "host": hostname or socket.gethostname(),
        **({"requisites": requisites} if requisites is not None else {}),
        **({"diff_sha256": diff_sha256} if diff_sha256 is not None else {}),
    }


def diff_bytes(diff: dict[str, Any]) -> bytes:
    """The stored form of a snapshot's diff (the index's ``diff_json``, as
    UTF-8): canonical JSON, so that the manifest's ``diff_sha256`` names
    these very bytes and anyone can check a stored diff against it."""
    return canonical_json(diff)


def signed_diff_digest(manifest: dict[str, Any]) -> str | None:
    """The diff digest a manifest signs (None: it signs none -- older
    manifests, first snapshots, pages without text to diff)."""
    value = manifest.get("diff_sha256")
    return value if isinstance(value, str) else None


def stored_diff_sha256(text: str) -> str:
    """The digest of a diff as the index stores it (its text's UTF-8: the
    bytes the capture signed, ``committing._sign``), which a signed
    ``diff_sha256`` must be."""
    return sha256_hex(text.encode("utf-8", "surrogatepass"))


def signed_records(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """Every record a manifest signs for: the page's exchanges, then its requisites'.

    Tolerates a malformed manifest (a WACZ is untrusted input): entries that
    are not objects are left out, and the checks that use this report them.
    """
    out = [r for r in manifest.get("records") or [] if isinstance(r, dict)]
    requisites = manifest.get("requisites")
    items = requisites.get("items") if isinstance(requisites, dict) else None
    for item in items if isinstance(items, list) else []:
        refs = item.get("records") if isinstance(item, dict) else None
        if isinstance(refs, list):
            out.extend(r for r in refs if isinstance(r, dict))
    return out


def manifest_digest(manifest: dict[str, Any]) -> str:
    return sha256_hex(canonical_json(manifest))


def check_signed_manifest(fields: dict[str, Any], keyring: Any) -> None:
    """Raise VerificationError unless ``fields`` (a metadata record's document,
    as ``manifest_fields`` returns it) is a manifest an Ed25519 key of
    ``keyring`` signed while it was valid, hashing to its stated digest."""
    import base64
    import binascii

    from archiver.errors import VerificationError
    from archiver.provenance.keyring import ED25519

    manifest = fields["manifest"]
    data = canonical_json(manifest)
    if fields.get("manifest_sha256") != sha256_hex(data):
        raise VerificationError("manifest does not hash to its stated digest")
    if keyring.key(fields["key_id"]).algorithm != ED25519:
        raise VerificationError("manifest signed by a key that does not sign manifests")
    try:
        signature = base64.b64decode(fields["signature"], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise VerificationError(f"malformed signature: {exc}") from exc
    keyring.verify(fields["key_id"], data, signature, signing_time(manifest))


def signing_time(manifest: dict[str, Any]) -> datetime:
    """When a manifest was signed, as it states it (``signed_at``; manifests
    from before it was written give ``fetch_ended_at``): the time its key's
    validity window is checked at. VerificationError for a missing or
    malformed time, or one without a zone (no window can be checked)."""
    return parse_signing_time(str(manifest.get("signed_at") or manifest.get("fetch_ended_at")))


def parse_signing_time(value: str) -> datetime:
    """``signing_time`` of the string itself (the native claims reader's)."""
    from archiver.errors import VerificationError

    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise VerificationError("manifest has no valid signing time") from exc
    if at.tzinfo is None:
        raise VerificationError("manifest signing time has no timezone")
    return at

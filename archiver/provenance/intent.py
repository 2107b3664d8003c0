"""Capture intents: the archive's signed word that it wrote these records.

A capture's request/response records reach the WARC before their manifest is
signed (DESIGN, "one snapshot"); a crash in between leaves records that
``repair`` must commit -- but a stranger who can write the data directory can
append records too. So each capture's records are followed, in the same
write, by an intent: the record ids and SHA-256 digests, signed with the
archive's Ed25519 key. Repair adopts only records an intent covers, byte for
byte; without ``keys/`` nobody can make one.

The signed bytes start with a NUL-framed domain label, so an intent
signature can never pass as a manifest (canonical JSON) or a checkpoint
note (text) signature.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Sequence

from archiver.canonical import canonical_json
from archiver.capture.records import INTENT_CONTENT_TYPE
from archiver.errors import VerificationError
from archiver.provenance.keyring import ED25519, Keyring, verify_signature
from store.warc import warc_date

if TYPE_CHECKING:
    from archiver.provenance.signatures import Signer  # signing loads cryptography; checking need not

DOMAIN = b"\x00archiver-intent-v1\x00"
VERSION = 1

__all__ = ["INTENT_CONTENT_TYPE", "Intent", "sign_intent", "parse_intent", "check_intent"]


@dataclass(frozen=True)
class Intent:
    """What an intent record says: these records, written at ``created_at``."""

    records: tuple[tuple[str, str], ...]  # (WARC-Record-ID, SHA-256 hex of the uncompressed record)
    created_at: str
    key_id: str
    signature: str  # base64 Ed25519

    def body(self) -> dict[str, Any]:
        return {
            "v": VERSION,
            "created_at": self.created_at,
            "records": [{"record_id": rid, "sha256": sha} for rid, sha in self.records],
        }

    def to_json(self) -> dict[str, Any]:
        return {"intent": self.body(), "key_id": self.key_id, "signature": self.signature}


def _message(body: dict[str, Any]) -> bytes:
    return DOMAIN + canonical_json(body)


def sign_intent(records: Sequence[tuple[str, str]], signer: Signer, when: datetime) -> Intent:
    unsigned = Intent(tuple((r, s) for r, s in records), warc_date(when), signer.key_id, "")
    signature = base64.b64encode(signer.sign(_message(unsigned.body()))).decode("ascii")
    return Intent(unsigned.records, unsigned.created_at, signer.key_id, signature)


def parse_intent(doc: Any) -> Intent | None:
    """An intent from its JSON document; None when it is not one (wrong shape)."""
    try:
        body = doc["intent"]
        if body["v"] != VERSION or not isinstance(body["created_at"], str):
            return None
        records = tuple((str(r["record_id"]), str(r["sha256"])) for r in body["records"])
        key_id, signature = doc["key_id"], doc["signature"]
        if not (isinstance(key_id, str) and isinstance(signature, str)):
            return None
    except (KeyError, TypeError, AttributeError):
        return None
    return Intent(records, body["created_at"], key_id, signature)


def check_intent(intent: Intent, keyring: Keyring) -> None:
    """Raise VerificationError unless an Ed25519 key of ``keyring`` signed ``intent``."""
    record = keyring.key(intent.key_id)
    if record.algorithm != ED25519:
        raise VerificationError(f"intent signed by a {record.algorithm} key")
    try:
        signature = base64.b64decode(intent.signature, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise VerificationError("intent signature is not base64") from exc
    verify_signature(record.load_public_key(), _message(intent.body()), signature, intent.key_id)

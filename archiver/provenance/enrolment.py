"""Worker keys on a shared archive: enrolment by the archive's root key.

On a shared archive every machine signs with its own Ed25519 key, made on
that machine and never copied. Its public key goes into the keyring kept in
the shared index; it may sign only once the archive's *root* key (held by
the operator, on one machine) has endorsed it: a signature over the key, its
name, role and validity window. An auditor trusts the root key (the first
self-endorsed root entry, or the key pinned with ``--public-key``) and from
it every key it endorsed; a row written into the index without a valid
endorsement -- by someone with database access but not the root key --
vouches for nothing.

Only Ed25519 keys (manifests, intents, checkpoints) need an endorsement;
a WACZ package key is bound to the archive by the package's own keyring
endorsement (provenance/endorsement.py) made with an endorsed key.
"""

from __future__ import annotations

import base64
import binascii
import logging
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Sequence

from archiver.canonical import canonical_json
from archiver.errors import SigningError, VerificationError
from archiver.provenance.keyring import (
    ED25519,
    KeyRecord,
    Keyring,
    _format_time,
    _parse_time,
    verify_signature,
)

if TYPE_CHECKING:
    from archiver.provenance.keys import KeyStore
    from archiver.provenance.signatures import Signer  # signing loads cryptography; checking need not

log = logging.getLogger(__name__)

ROOT = "root"
WORKER = "worker"
ROLES = (ROOT, WORKER)
DOMAIN = b"\x00archiver-key-enrolment-v1\x00"


def _statement(record: KeyRecord, signed_at: str, until: str | None) -> bytes:
    """What the root key signs: the key and everything that bounds its use."""
    return DOMAIN + canonical_json({
        "key_id": record.key_id,
        "algorithm": record.algorithm,
        "public_key": base64.b64encode(record.public_key).decode("ascii"),
        "name": record.name,
        "role": record.role,
        "valid_from": _format_time(record.valid_from),
        "valid_until": until,
        "signed_at": signed_at,
    })


def endorse_key(record: KeyRecord, root: Signer, when: datetime, until: datetime | None = None) -> KeyRecord:
    """``record`` carrying the root key's endorsement; ``until`` bounds its window
    (no later retirement can extend it)."""
    signed_at = _format_time(when)
    bound = None if until is None else _format_time(until)
    signature = root.sign(_statement(record, signed_at, bound))
    return replace(record, endorsement={
        "by": root.key_id, "signed_at": signed_at, "valid_until": bound,
        "signature": base64.b64encode(signature).decode("ascii"),
    })


def enrolled(record: KeyRecord) -> bool:
    """True when the record carries an endorsement (checked or not)."""
    return record.endorsement is not None


def _check(record: KeyRecord, trusted: dict[str, KeyRecord]) -> KeyRecord:
    """The record with its endorsed window, if a trusted root key endorsed it."""
    doc = record.endorsement
    if doc is None:
        raise VerificationError("it is not enrolled (no endorsement)")
    by, signed_at, bound, sig = doc.get("by"), doc.get("signed_at"), doc.get("valid_until"), doc.get("signature")
    if not isinstance(by, str) or not isinstance(signed_at, str) or not isinstance(sig, str) or not (
        bound is None or isinstance(bound, str)
    ):
        raise VerificationError("its endorsement is malformed")
    root = trusted.get(by)
    if root is None or root.role != ROOT:
        raise VerificationError(f"its endorsement is by key {by[:16]}, not a trusted root key")
    try:
        at = _parse_time(signed_at)
        limit = None if bound is None else _parse_time(bound)
        signature = base64.b64decode(sig, validate=True)
    except (ValueError, binascii.Error) as exc:
        raise VerificationError("its endorsement is malformed") from exc
    if not root.valid_at(at):
        raise VerificationError(f"root key {by[:16]} was not valid when it endorsed it")
    verify_signature(root.load_public_key(), _statement(record, signed_at, bound), signature, by)
    if limit is not None and (record.valid_until is None or record.valid_until > limit):
        record = replace(record, valid_until=limit)  # a retirement may shorten the window, never extend it
    return record


def is_shared_ring(records: Sequence[KeyRecord]) -> bool:
    """A keyring with roles (the shared index's); a keyring.json has none."""
    return any(r.role for r in records)


def trusted_ring(records: Sequence[KeyRecord], anchors: Sequence[bytes] | None = None) -> tuple[Keyring, list[str]]:
    """The keys an auditor may trust, and what is wrong with the others.

    ``anchors`` are pinned public keys (SPKI DER); without them the anchor is
    the first root entry, which endorses itself. Every other Ed25519 key needs
    an endorsement by a trusted root key, made inside that root's window. A
    keyring without roles (keyring.json) is returned as it is.
    """
    if not is_shared_ring(records):
        return Keyring.of(records), []
    problems: list[str] = []
    trusted: dict[str, KeyRecord] = {}
    signing = [r for r in records if r.algorithm == ED25519]
    if anchors is None:
        genesis = next((r for r in signing if r.role == ROOT), None)
        anchor_ids = {genesis.key_id} if genesis is not None else set()
        for r in signing:
            if r.key_id in anchor_ids:
                try:  # the genesis root proves it holds its key
                    trusted[r.key_id] = _check(r, {r.key_id: r})
                except VerificationError as exc:
                    problems.append(f"root key {r.key_id[:16]} ({r.name}): {exc}")
    else:
        pinned = set(anchors)
        trusted.update({r.key_id: r for r in signing if r.public_key in pinned})
    pending = [r for r in signing if r.key_id not in trusted]
    reasons: dict[str, str] = {}
    progress = True
    while progress:  # a later root endorsed by an earlier one may endorse further keys
        progress = False
        for r in list(pending):
            try:
                trusted[r.key_id] = _check(r, trusted)
            except VerificationError as exc:
                reasons[r.key_id] = str(exc)
                continue
            pending.remove(r)
            progress = True
    for r in pending:
        if enrolled(r) and anchors is None:  # a pending key signed nothing; a bad endorsement is a forgery attempt
            problems.append(f"key {r.key_id[:16]} ({r.name}) is not trusted: {reasons[r.key_id]}")
    kept = [trusted.get(r.key_id, r) for r in records if r.algorithm != ED25519 or r.key_id in trusted]
    return Keyring.of(kept), problems


def describe(record: KeyRecord) -> dict[str, Any]:
    """One keyring entry for ``archiver keys --json`` and the text listing."""
    return {**record.to_json(), "enrolled": record.role != WORKER or enrolled(record)}


def _one_worker_key(records: list[KeyRecord], key_id: str, *, closed: bool = False) -> KeyRecord:
    """The worker key named by ``key_id`` (16+ hex digits; ``closed``: its
    window may have ended); SigningError otherwise."""
    if len(key_id) < 16:
        raise SigningError("give at least 16 hex digits of the key id")
    found = [r for r in records if r.key_id.startswith(key_id.lower()) and r.algorithm == ED25519]
    if len(found) != 1:
        raise SigningError(f"{'no' if not found else 'more than one'} Ed25519 key {key_id} in the shared keyring")
    if found[0].role != WORKER:
        raise SigningError(f"key {found[0].key_id[:16]} is the root key, not a worker's")
    if found[0].valid_until is not None and not closed:
        raise SigningError(f"key {found[0].key_id[:16]} was retired; the worker must make a new one (keys rotate)")
    return found[0]


def _root_only(keys: KeyStore, what: str) -> None:
    if keys.role != ROOT:
        raise SigningError(f"worker keys are {what} on a shared archive, on the machine that holds its root key")


def enroll(keys: KeyStore, key_id: str, until: datetime | None = None) -> KeyRecord:
    """Endorse a pending worker key with this machine's root key (the
    operator checks ``key_id`` against what the worker printed)."""
    _root_only(keys, "enrolled")
    root = keys.signer()
    now = keys.now()
    if until is not None and until <= now:
        raise SigningError("the enrolment must end in the future")
    done: list[KeyRecord] = []

    def change(records: list[KeyRecord]) -> list[KeyRecord]:
        record = _one_worker_key(records, key_id)
        if enrolled(record):
            raise SigningError(f"key {record.key_id[:16]} ({record.name}) is already enrolled")
        done.append(endorse_key(record, root, now, until))
        return [done[0] if r is record else r for r in records]

    keys.update_keyring(change)
    log.info("enrolled worker key %s (%s)", done[0].key_id[:16], done[0].name)
    return done[0]


def retire(keys: KeyStore, key_id: str) -> KeyRecord:
    """End a worker key's window now (a machine lost or taken out of service).
    Unsigned on purpose: a shorter window can only make signatures fail."""
    _root_only(keys, "retired")
    now = keys.now()
    done: list[KeyRecord] = []

    def change(records: list[KeyRecord]) -> list[KeyRecord]:
        record = _one_worker_key(records, key_id, closed=True)
        if record.valid_until is not None and record.valid_until <= now:  # rotated or retired before: it stays so
            done.append(record)
            return records
        done.append(replace(record, valid_until=now))
        return [done[0] if r is record else r for r in records]

    keys.update_keyring(change)
    log.info("retired worker key %s (%s)", done[0].key_id[:16], done[0].name)
    return done[0]

"""The WACZ check's keys: the bundled keyring (a shared archive's reduced to
the keys its root key -- the pinned one, if given -- enrolled), the package
key's endorsement and validity, and the checkpoint opened under those keys.

A mixin of ``wacz_check``'s checker, split out so each module keeps one
concern: this one decides which keys a package may be trusted under.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from archiver.audit.wacz_format import (
    CHECKPOINT_PATH,
    ENDORSEMENT_PATH,
    KEY_CLOCK_SKEW,
    KEYRING_PATH,
    MAX_SMALL_DOCUMENT_BYTES,
)
from archiver.audit.wacz_reader import WaczReport, WaczZip
from archiver.errors import VerificationError
from archiver.given import MAX_OWN_BYTES
from archiver.provenance.endorsement import check_endorsement
from archiver.provenance.enrolment import is_shared_ring, trusted_ring
from archiver.provenance.keyring import ECDSA_P384, ED25519, KeyRecord, Keyring, key_id_for
from archiver.provenance.notes import NoteVerifier, open_checkpoint


class KeyChecks:
    """Which keys the package may be trusted under, and reporting (the base of
    ``wacz_check``'s checker)."""

    z: WaczZip
    report: WaczReport
    public_key: bytes | None
    package: dict[str, Any]
    keyring: Keyring | None
    _anchored: bool
    _wacz_key: Any

    def add(self, snapshot: str | None, kind: str, detail: str) -> None:
        self.report.add(snapshot, kind, detail)

    def json_entry(self, name: str, *, required: bool = True) -> Any:
        """A small JSON document (datapackage.json, its digest, the keyring's
        endorsement), parsed whole: so at most MAX_SMALL_DOCUMENT_BYTES of it."""
        if name not in self.z.infos:
            if required:
                self.add(None, "missing-file", f"{name} is missing")
            return None
        size = self.z.infos[name].file_size
        if size > MAX_SMALL_DOCUMENT_BYTES:
            self.add(None, "malformed", f"{name} is {size} bytes, more than the {MAX_SMALL_DOCUMENT_BYTES} it can need")
            return None
        try:
            return json.loads(self.z.read(name))
        except ValueError as exc:
            self.add(None, "malformed", f"{name} is not valid JSON: {exc}")
            return None

    def load_keyring(self, tmp: Path) -> None:
        if KEYRING_PATH not in self.z.infos:
            self.add(None, "missing-file", f"{KEYRING_PATH} is missing")
            return
        size = self.z.infos[KEYRING_PATH].file_size
        if size > MAX_OWN_BYTES:  # what a keyring file may hold (archiver.given)
            self.add(None, "keyring", f"{KEYRING_PATH} is {size} bytes, more than a keyring may be ({MAX_OWN_BYTES})")
            return
        path = tmp / "keyring.json"
        raw = self.z.read(KEYRING_PATH)
        path.write_bytes(raw)
        try:
            self.keyring = Keyring(path).load()
            self.keyring.keys  # noqa: B018 - parse now, while the file exists
        except VerificationError as exc:
            self.add(None, "keyring", str(exc))
            self.keyring = None
            return
        if is_shared_ring(self.keyring.keys):
            self._use_shared_ring()
        self.check_endorsement(raw, self.keyring)
        wacz_key = self._wacz_key
        if isinstance(wacz_key, str):
            try:
                kid = key_id_for(base64.b64decode(wacz_key, validate=True))
            except (binascii.Error, ValueError):
                return  # already reported as a bad signature
            record = self.keyring.find(kid)
            if record is None or record.algorithm != ECDSA_P384:
                self.add(None, "wacz-key", "the package was signed by a key that is not in its keyring")
                return
            try:
                created = datetime.fromisoformat(str(self.package.get("created")))
            except ValueError:
                self.add(None, "datapackage", "created is not an RFC 3339 time")
                return
            if created.tzinfo is None:
                created = created.replace(tzinfo=timezone.utc)
            # `created` is taken just before the key may be created (first export),
            # and is truncated to seconds: allow the same skew as for manifests.
            if created < record.valid_from - KEY_CLOCK_SKEW or (
                record.valid_until is not None and created >= record.valid_until
            ):
                self.add(None, "wacz-key", f"package key {kid[:16]} was not valid at created {self.package.get('created')}")

    def _use_shared_ring(self) -> None:
        """A shared archive's keyring: keep the root key (the pinned one, if
        given) and the worker keys it enrolled; the pin is then satisfied by
        the chain of endorsements rather than by the one key."""
        assert self.keyring is not None
        anchors = None
        if self.public_key is not None:
            try:
                anchors = [_spki_from(self.public_key)]
            except VerificationError:
                return  # reported with the checkpoint
        self.keyring, problems = trusted_ring(self.keyring.keys, anchors)
        for problem in problems:
            self.add(None, "keyring", problem)
        if not any(k.algorithm == ED25519 for k in self.keyring.keys):
            self.add(None, "public-key", "no key of the package's keyring is the given key or enrolled by it")
        self._anchored = True

    def check_endorsement(self, raw: bytes, ring: Keyring) -> None:
        """The bundled keyring -- the package key in it -- must be vouched for by
        the archive's Ed25519 key (the pinned one, with ``--public-key``)."""
        pinned = None
        if self.public_key is not None and not self._anchored:
            try:
                pinned = _spki_from(self.public_key)
            except VerificationError:
                return  # reported with the checkpoint
        if ENDORSEMENT_PATH not in self.z.infos:
            if self._anchored:
                self.add(None, "wacz-key", f"no {ENDORSEMENT_PATH}: the package key is not bound to the archive")
                return
            if pinned is not None:
                self.add(None, "wacz-key", f"no {ENDORSEMENT_PATH}: the package key is not bound to the given public key")
            return  # exports before endorsements: the manifests and checkpoint still bind the records
        try:
            check_endorsement(self.json_entry(ENDORSEMENT_PATH), raw, ring, pinned)
        except VerificationError as exc:
            self.add(None, "wacz-key", f"{ENDORSEMENT_PATH}: {exc}")

    def _note_verifiers(self) -> list[NoteVerifier]:
        if self.keyring is None:
            return []
        records = [r for r in self.keyring.keys if r.algorithm == ED25519]
        if self.public_key is not None and not self._anchored:
            try:
                pinned = _spki_from(self.public_key)
            except VerificationError as exc:
                self.add(None, "public-key", str(exc))
                return []
            records = [r for r in records if r.public_key == pinned]
            if not records:
                self.add(None, "public-key", "the given public key is not in the package's keyring: re-signed archive?")
                return []
        out = []
        for r in records:
            try:
                out.append(NoteVerifier.from_spki(r.name, r.public_key))
            except VerificationError as exc:
                self.add(None, "keyring", f"key {r.key_id[:16]}: {exc}")
        return out

    def load_checkpoint(self) -> Any:
        if CHECKPOINT_PATH not in self.z.infos:
            self.add(None, "missing-file", f"{CHECKPOINT_PATH} is missing")
            return None
        verifiers = self._note_verifiers()
        if not verifiers:
            self.add(None, "checkpoint", "no key to check the checkpoint with")
            return None
        try:
            note = self.z.read(CHECKPOINT_PATH).decode("utf-8")
            return open_checkpoint(note, verifiers)
        except (UnicodeDecodeError, VerificationError) as exc:
            self.add(None, "checkpoint", f"checkpoint does not verify: {exc}")
            return None


def _signature_time(manifest: dict[str, Any], record: KeyRecord) -> datetime | None:
    """When the manifest was signed, as far as it tells: right after its fetch.

    Returns the time to check the key's window at, or None when the capture
    is older than the key by more than :data:`KEY_CLOCK_SKEW` (backdating).
    """
    raw = manifest.get("fetch_ended_at") or manifest.get("fetch_started_at")
    try:
        at = datetime.fromisoformat(str(raw))
    except ValueError:
        return record.valid_from
    if at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    if at < record.valid_from:
        if record.valid_from - at > KEY_CLOCK_SKEW:
            return None
        return record.valid_from
    return at


def _spki_from(public_key: bytes) -> bytes:
    """SPKI DER from a PEM or DER public key."""
    try:
        if public_key.lstrip().startswith(b"-----"):
            key = serialization.load_pem_public_key(public_key)
        else:
            key = serialization.load_der_public_key(public_key)
    except (ValueError, TypeError) as exc:
        raise VerificationError("the given public key is not a PEM or DER public key") from exc
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

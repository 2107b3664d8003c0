"""Verify an exported WACZ with nothing but the file (the keys it may be
trusted under: ``wacz_keys``).

The package signature proves the package is unchanged since export; the
Ed25519 manifests, checkpoint and proofs prove the records are what the
archive signed at capture time, whoever exported them.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archiver.audit.problems import Findings, Problem
from archiver.audit.wacz_format import (
    DATAPACKAGE,
    DIGEST,
    LOCATIONS_PATH,
    MANIFESTS_PATH,
    MAX_DOCUMENT_BYTES,
    MAX_MANIFEST_LINE_BYTES,
    MAX_SNAPSHOTS,
    PROOFS_PATH,
    WACZ_VERSION,
    WARC_PATH,
    WarcMember,
    label_bytes,
    record_digest_problems,
)
from archiver.audit.wacz_json import JsonStreamError, array_entries
from archiver.audit.wacz_keys import KeyChecks, _signature_time
from archiver.audit.wacz_reader import WaczReport, WaczZip, WarcRecords
from archiver.audit.wacz_replay import ReplayCheck, Verified, url_key
from archiver.canonical import canonical_json, sha256_hex
from archiver.capture.records import manifest_fields
from archiver.errors import (
    VerificationError,
)
from archiver.provenance.keyring import (
    Keyring,
)
from archiver.provenance.leaves import leaf_data
from archiver.provenance.manifest import signed_records
from archiver.provenance.merkle import hash_leaf, verify_inclusion
from archiver.provenance.signatures import verify_wacz_signature

log = logging.getLogger(__name__)

__all__ = ["WaczReport", "check_wacz", "verify_wacz"]


# Entries of locations.json or proofs.json beyond what the manifests account
# for that are still read (a package of few snapshots is never cut short).
_ENTRY_SLACK = 1_000
# What the check uses of an entry; the rest of it is not kept. A longer
# string than this is no id, digest or proof hash (and so is dropped).
_LOCATION_FIELDS = ("record_id", "snapshot_id", "type", "offset", "length", "sha256")
_PROOF_FIELDS = ("snapshot_id", "leaf_index", "tree_size", "hashes")
_MAX_FIELD_CHARS = 256
_MAX_PROOF_HASHES = 64  # a tree of fewer than 2**63 leaves has proofs of at most 63


@dataclass
class _Chain:
    """One URL's manifests in the package: (log index, digest, snapshot id,
    the previous manifest's digest it names), all short strings."""

    url: str  # for messages
    links: list[tuple[int, str, str, str | None]] = field(default_factory=list)


def _short(text: str, most: int = 2048) -> str:
    """A stranger's string as kept and shown: at most ``most`` characters."""
    return text if len(text) <= most else text[:most] + "…"


def _kept(entry: Any, fields: tuple[str, ...]) -> dict[str, Any] | None:
    """The checked fields of one entry, each a short string, an int or (for
    ``hashes``) a short list of short strings; None for an entry that is no object."""
    if not isinstance(entry, dict):
        return None
    out: dict[str, Any] = {}
    for name in fields:
        value = entry.get(name)
        if isinstance(value, list) and name == "hashes":
            if len(value) <= _MAX_PROOF_HASHES + 1:
                out[name] = [h if isinstance(h, str) and len(h) <= _MAX_FIELD_CHARS else None for h in value]
        elif isinstance(value, int) or (isinstance(value, str) and len(value) <= _MAX_FIELD_CHARS):
            out[name] = value
    return out


def verify_wacz(path: Path, *, public_key: bytes | None = None) -> list[Problem]:
    """Every problem found in the WACZ at ``path`` (empty: it verifies).

    ``public_key`` (Ed25519 SPKI, PEM or DER, e.g. from ``archiver keys
    export-public``) pins the key that must have signed the checkpoint, so a
    package re-signed wholesale under another key is refused.
    """
    return check_wacz(path, public_key=public_key).problems


def check_wacz(path: Path, *, public_key: bytes | None = None) -> WaczReport:
    """Like :func:`verify_wacz`, with the count of snapshots checked."""
    report = WaczReport()
    try:
        z = WaczZip(Path(path), report)
    except FileNotFoundError:
        report.add(None, "zip", f"{path} does not exist")
        return report
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        report.add(None, "zip", f"{path} is not a readable zip file: {exc}")
        return report
    try:
        _Checker(z, report, public_key).run()
    except (zipfile.BadZipFile, OSError, zlib.error, EOFError) as exc:
        report.add(None, "zip", f"{path}: {exc}")
    finally:
        z.close()
    report.finish()
    return report


class _Checker(KeyChecks):
    """The checks, in order; each adds problems rather than stopping early."""

    def __init__(self, z: WaczZip, report: WaczReport, public_key: bytes | None) -> None:
        self.z = z
        self.report = report
        self.public_key = public_key
        self.package: dict[str, Any] = {}
        self.keyring: Keyring | None = None
        self._anchored = False  # a shared keyring, reduced to the keys its (pinned) root key vouches for
        self._wacz_key: Any = None

    def run(self) -> None:
        self.check_package()
        self.check_digest()
        with tempfile.TemporaryDirectory(prefix="archiver-wacz-") as tmp:
            self.load_keyring(Path(tmp))
        checkpoint = self.load_checkpoint()
        self.check_snapshots(checkpoint)

    # -- datapackage.json and its signed digest ------------------------------

    def check_package(self) -> None:
        package = self.json_entry(DATAPACKAGE)
        if not isinstance(package, dict):
            return
        self.package = package
        if package.get("profile") != "data-package":
            self.add(None, "datapackage", "profile is not 'data-package'")
        if package.get("wacz_version") != WACZ_VERSION:
            self.add(None, "datapackage", f"wacz_version is {package.get('wacz_version')!r}, want {WACZ_VERSION}")
        resources = package.get("resources")
        if not isinstance(resources, list):
            self.add(None, "datapackage", "resources is not a list")
            return
        listed: set[str] = set()
        for res in resources:
            rpath = res.get("path") if isinstance(res, dict) else None
            if not isinstance(rpath, str):
                self.add(None, "datapackage", f"resource without a path: {res!r}"[:200])
                continue
            listed.add(rpath)
            if rpath not in self.z.infos:
                self.add(None, "missing-file", f"{rpath} is listed in datapackage.json but not in the zip")
                continue
            actual, size = self.z.digest(rpath)
            if res.get("hash") != actual:
                self.add(None, "resource-hash", f"{rpath}: {actual} does not match datapackage.json {res.get('hash')}")
            if res.get("bytes") != size:
                self.add(None, "resource-hash", f"{rpath}: {size} bytes, datapackage.json says {res.get('bytes')}")
        for name in self.z.infos:
            if name not in listed and name not in (DATAPACKAGE, DIGEST) and not name.endswith("/"):
                self.add(None, "unlisted-file", f"{name} is not listed in datapackage.json")

    def check_digest(self) -> None:
        doc = self.json_entry(DIGEST)
        if not isinstance(doc, dict) or DATAPACKAGE not in self.z.infos:
            return
        actual, _ = self.z.digest(DATAPACKAGE)
        if doc.get("path") != DATAPACKAGE:
            self.add(None, "datapackage-digest", "datapackage-digest.json does not name datapackage.json")
        if doc.get("hash") != actual:
            self.add(None, "datapackage-digest", f"datapackage.json is {actual}, its digest file says {doc.get('hash')}")
        signed = doc.get("signedData")
        if not isinstance(signed, dict):
            self.add(None, "wacz-signature", "datapackage-digest.json is not signed")
            return
        if signed.get("hash") != doc.get("hash"):
            self.add(None, "wacz-signature", "signedData.hash differs from the digest's hash")
        if signed.get("created") != self.package.get("created"):
            self.add(None, "wacz-signature", "signedData.created differs from datapackage.json created")
        try:
            verify_wacz_signature(str(signed.get("hash", "")), str(signed.get("signature", "")), str(signed.get("publicKey", "")))
        except VerificationError as exc:
            self.add(None, "wacz-signature", str(exc))
        self._wacz_key = signed.get("publicKey")

    # -- per snapshot --------------------------------------------------------

    def check_snapshots(self, checkpoint: Any) -> None:
        if MANIFESTS_PATH not in self.z.infos:
            self.add(None, "missing-file", f"{MANIFESTS_PATH} is missing")
            return
        # Manifest entries are read twice rather than kept: first what the
        # locations and proofs are bounded by, then each entry checked in turn.
        count = named = 0
        sids: set[str] = set()
        for entry in self.manifest_entries(report=True):
            count += 1
            sids.add(entry["snapshot_id"])
            if isinstance(entry.get("manifest"), dict):
                named += len(signed_records(entry["manifest"]))
        self.report.checked = count

        # An export locates each record its manifests sign once, plus at most one
        # original per revisit and the metadata records: more is not an export.
        where: dict[str, dict[str, Any]] = {}
        for loc in self.list_entries(LOCATIONS_PATH, "records", 2 * named + 2 * count + _ENTRY_SLACK):
            kept = _kept(loc, _LOCATION_FIELDS)
            if kept is not None and isinstance(kept.get("record_id"), str):
                where[kept["record_id"]] = kept
        read_warc = self.z.range_reader(WARC_PATH) if WARC_PATH in self.z.infos else None
        if read_warc is None:
            self.add(None, "missing-file", f"{WARC_PATH} is missing")
        proofs: dict[str, dict[str, Any]] = {}
        for proof in self.list_entries(PROOFS_PATH, "proofs", count + _ENTRY_SLACK):
            kept = _kept(proof, _PROOF_FIELDS)
            if kept is not None and kept.get("snapshot_id") in sids:
                proofs[kept["snapshot_id"]] = kept
        del sids
        records = WarcRecords(read_warc, where, lambda n: self.z._spend(WARC_PATH, n))
        chains: dict[bytes, _Chain] = {}
        verified = Verified()  # of the manifests without a problem
        for entry in self.manifest_entries(report=False):
            sid = entry["snapshot_id"]
            manifest = entry.get("manifest")
            if not isinstance(manifest, dict):
                self.add(sid, "unsigned", "snapshot has no signed manifest")
                continue
            digest = sha256_hex(canonical_json(manifest))
            before = len(self.report.problems) + self.report.omitted
            self.check_manifest(sid, entry, manifest, digest)
            self.check_records(sid, manifest, digest, entry, records)
            self.check_inclusion(sid, manifest, digest, proofs.get(sid), checkpoint, entry)
            if len(self.report.problems) + self.report.omitted == before and checkpoint is not None:
                verified.add(sid, manifest)
            url = manifest.get("url")
            chain = chains.setdefault(url_key(url), _Chain(_short(str(url))))
            log_index = (manifest.get("log") or {}).get("index")
            claimed = manifest.get("previous_manifest_sha256")
            chain.links.append((log_index if isinstance(log_index, int) else -1, digest,
                                _short(str(manifest.get("snapshot_id"))), None if claimed is None else _short(str(claimed))))
        self.check_chains(chains)
        if WARC_PATH in self.z.infos:
            replay = ReplayCheck(self.z, self.report, verified)
            replay.check_records()
            replay.check_index()
            replay.check_pages()

    def manifest_entries(self, *, report: bool) -> Iterator[dict[str, Any]]:
        """The snapshot entries of manifests.jsonl, one at a time; what is
        wrong with its lines is reported when ``report`` (on one reading only)."""
        add = self.add if report else lambda *args: None
        lines = self.z.lines(MANIFESTS_PATH, MAX_SNAPSHOTS, MAX_MANIFEST_LINE_BYTES, report=None if report else Findings())
        for n, line in enumerate(lines, start=1):
            if line is None:
                add(None, "manifest", f"{MANIFESTS_PATH} line {n} is longer than {MAX_MANIFEST_LINE_BYTES} bytes")
                continue
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                entry = None
            sid = entry.get("snapshot_id") if isinstance(entry, dict) else None
            if not isinstance(sid, str) or len(sid) > _MAX_FIELD_CHARS:
                add(None, "manifest", f"{MANIFESTS_PATH} line {n} is not a snapshot entry")
                continue
            yield entry

    def list_entries(self, name: str, key: str, most: int) -> Iterator[Any]:
        """The entries of the list ``key`` in the JSON document ``name``, read
        one at a time (see wacz_json), at most ``most`` of them; a problem
        says where the document stopped being readable or was cut short."""
        if name not in self.z.infos:
            self.add(None, "missing-file", f"{name} is missing")
            return
        size = self.z.infos[name].file_size
        if size > MAX_DOCUMENT_BYTES:
            raise zipfile.BadZipFile(f"{name} is {size} bytes, more than the {MAX_DOCUMENT_BYTES} allowed")
        try:
            for n, entry in enumerate(array_entries(self.z.chunks(name), key), start=1):
                if n > most:
                    self.add(None, "malformed", f"{name} has more than the {most} entries the manifests can use; "
                                                "the rest is not read")
                    return
                yield entry
        except JsonStreamError as exc:
            self.add(None, "malformed", f"{name} is not valid JSON: {exc}")

    def check_manifest(self, sid: str, entry: dict[str, Any], manifest: dict[str, Any], digest: str) -> None:
        if manifest.get("snapshot_id") != sid:
            self.add(sid, "manifest", f"manifest names snapshot {manifest.get('snapshot_id')!r}")
        if entry.get("manifest_sha256") != digest:
            self.add(sid, "manifest-digest", f"manifest hashes to {digest}, entry says {entry.get('manifest_sha256')}")
        if self.keyring is None:
            self.add(sid, "signature", "no keyring to check the manifest signature with")
            return
        key_id = str(entry.get("key_id") or "")
        record = self.keyring.find(key_id)
        if record is None:
            self.add(sid, "signature", f"signing key {key_id[:16]} is not in the keyring")
            return
        try:
            signature = base64.b64decode(str(entry.get("signature") or ""), validate=True)
        except (binascii.Error, ValueError):
            self.add(sid, "signature", "signature is not valid base64")
            return
        at = _signature_time(manifest, record)
        if at is None:
            self.add(sid, "key-validity", f"capture time precedes key {key_id[:16]}'s validity window")
            at = record.valid_from
        try:
            self.keyring.verify(key_id, canonical_json(manifest), signature, at)
        except VerificationError as exc:
            kind = "key-validity" if "was not valid" in str(exc) else "signature"
            self.add(sid, kind, str(exc))

    def check_records(
        self, sid: str, manifest: dict[str, Any], digest: str, entry: dict[str, Any], records: WarcRecords
    ) -> None:
        listed = manifest.get("records")
        if not isinstance(listed, list) or not listed:
            self.add(sid, "manifest", "manifest lists no records")
            return
        final: WarcMember | None = None
        for rec in listed:
            parsed = self.check_record(sid, rec, records)
            if parsed is not None and parsed.type in ("response", "revisit"):
                final = parsed
        page_ids = {r.get("record_id") for r in listed if isinstance(r, dict)}
        for rec in signed_records(manifest):  # the requisites' records, signed by the same manifest
            if rec.get("record_id") not in page_ids:
                self.check_record(sid, rec, records)
        payload = manifest.get("payload_sha256")
        if final is not None and isinstance(payload, str):
            try:
                expected = ("sha256", bytes.fromhex(payload))
            except ValueError:
                expected = None
            if label_bytes(final.header("WARC-Payload-Digest")) != expected:
                self.add(sid, "payload-digest", "final response's payload digest differs from the manifest's payload_sha256")
        self.check_metadata(sid, digest, entry, records)

    def check_record(self, sid: str, rec: Any, records: WarcRecords) -> WarcMember | None:
        """One record a manifest names: present, byte-exact, its digests right; the parsed record."""
        rid = rec.get("record_id") if isinstance(rec, dict) else None
        if not isinstance(rid, str):
            self.add(sid, "manifest", "manifest record without an id")
            return None
        member = records.member(rid)
        if member is None:
            self.add(sid, "record-missing", f"record {rid} is not in {WARC_PATH}")
            return None
        if not records.digest_ok(rid, rec.get("sha256")):
            self.add(sid, "record-digest", f"{rec.get('type')} record {rid} does not match the signed manifest")
            return None
        parsed = records.parsed(rid)
        if parsed is None:
            self.add(sid, "record-unreadable", f"record {rid} is not a readable WARC record")
            return None
        for kind, detail in record_digest_problems(parsed):
            self.add(sid, kind, f"{rid}: {detail}")
        if parsed.type == "revisit":
            self.check_revisit(sid, rid, parsed, records)
        return parsed

    def check_revisit(self, sid: str, rid: str, revisit: WarcMember, records: WarcRecords) -> None:
        target = revisit.header("WARC-Refers-To")
        original = records.parsed(target) if target else None
        if original is None:
            self.add(sid, "revisit-target", f"revisit {rid} refers to {target}, which is not in the package")
            return
        if target is not None and records.member(target) is not None and records.sha256_ok(target) is False:
            self.add(sid, "revisit-target", f"original {target} of revisit {rid} does not match its recorded digest")
        if label_bytes(original.header("WARC-Payload-Digest")) != label_bytes(revisit.header("WARC-Payload-Digest")):
            self.add(sid, "revisit-target", f"revisit {rid} and its original {target} name different payloads")
        for kind, detail in record_digest_problems(original):
            self.add(sid, "revisit-target", f"original {target}: {detail}")

    def check_metadata(self, sid: str, digest: str, entry: dict[str, Any], records: WarcRecords) -> None:
        """The metadata record in the WARC must carry this very manifest and signature."""
        for rid in records.of_snapshot(sid, "metadata"):
            parsed = records.parsed(rid)
            fields = manifest_fields(parsed) if parsed is not None else None
            if fields is not None and fields.get("manifest_sha256") == digest:
                if fields.get("signature") != entry.get("signature"):
                    self.add(sid, "metadata-record", "the WARC metadata record carries a different signature")
                return
        self.add(sid, "metadata-record", "no metadata record in the WARC carries this manifest")

    def check_inclusion(
        self, sid: str, manifest: dict[str, Any], digest: str, proof: dict[str, Any] | None, checkpoint: Any,
        entry: dict[str, Any],
    ) -> None:
        if checkpoint is None:
            return  # reported once, at package level
        log_info = manifest.get("log") or {}
        if log_info.get("origin") != checkpoint.origin:
            self.add(sid, "log-origin", f"manifest is for log {log_info.get('origin')!r}, checkpoint for {checkpoint.origin!r}")
        if proof is None:
            self.add(sid, "inclusion", "no inclusion proof for this snapshot")
            return
        index = log_info.get("index")
        if proof.get("leaf_index") != index:
            self.add(sid, "inclusion", f"proof is for leaf {proof.get('leaf_index')}, manifest says {index}")
            return
        if proof.get("tree_size") != checkpoint.size:
            self.add(sid, "inclusion", f"proof is for tree size {proof.get('tree_size')}, checkpoint is {checkpoint.size}")
            return
        try:
            hashes = [base64.b64decode(h, validate=True) for h in proof.get("hashes") or []]
            # the leaf as the manifest states it: its digest, with its signature and key when it signs its leaf
            data = leaf_data(manifest, digest, str(entry.get("signature") or ""), str(entry.get("key_id") or ""))
            verify_inclusion(hash_leaf(data), int(index), checkpoint.size, hashes, checkpoint.root)  # type: ignore[arg-type]
        except (binascii.Error, ValueError, TypeError) as exc:
            self.add(sid, "inclusion", f"malformed inclusion proof: {exc}")
        except VerificationError as exc:
            self.add(sid, "inclusion", str(exc))

    def check_chains(self, chains: dict[bytes, _Chain]) -> None:
        for chain in chains.values():
            url = chain.url
            chain.links.sort(key=lambda link: link[0])
            previous: str | None = None
            for n, (_, digest, sid, claimed) in enumerate(chain.links):
                if n == 0:
                    if claimed is not None:
                        self.add(sid, "chain", f"first snapshot of {url} in the package names a previous manifest {claimed[:16]}… that is missing")
                elif claimed != previous:
                    self.add(sid, "chain", f"previous manifest of {url} should be {str(previous)[:16]}…, manifest says {str(claimed)[:16]}…")
                previous = digest

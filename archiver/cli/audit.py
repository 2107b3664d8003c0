"""Audit commands: verify, repair, export, keys, checkpoint."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from archiver.cli.common import EXIT_FAIL, EXIT_OK, pin_reader_keys, reader_trust_option, verify_summary
from archiver.errors import ArchiverError, NotFoundError, UsageError, VerificationError

if TYPE_CHECKING:
    from archiver.archive import Archive


def register(sub: Any) -> None:
    s = sub.add_parser("verify", help="audit the archive offline; exit 1 when anything is wrong")
    s.add_argument("urls", nargs="*", metavar="URL", help="only these URLs' snapshots (all WARCs are still read)")
    s.add_argument("--json", action="store_true", help="ok, checked, problems as JSON")
    s.add_argument("--public-key", action="append", type=Path, default=None, metavar="FILE",
                   help="trust only this Ed25519 public key (PEM); repeat for rotated keys")
    s.add_argument("--since", type=Path, metavar="CHECKPOINT_FILE",
                   help="prove the log extends this earlier published checkpoint")
    s.add_argument("--wacz", type=Path, metavar="FILE",
                   help="verify an exported WACZ file alone: no archive needed, nothing written")

    s = sub.add_parser("repair", help="re-index captures whose index commit was lost; close stale WARCs")
    s.add_argument("--json", action="store_true", help="what was repaired, as JSON")
    s.add_argument("--full", action="store_true",
                   help="read every WARC file, including those marked settled (e.g. after restoring the index)")

    s = sub.add_parser("export", help="export URLs' history as a signed WACZ")
    s.add_argument("urls", nargs="+", metavar="URL", help="every snapshot of these URLs goes into the file")
    s.add_argument("--wacz", type=Path, required=True, metavar="FILE", help="the WACZ file to write")
    reader_trust_option(s)

    s = sub.add_parser("checkpoint", help="print the latest signed log checkpoint (publish it elsewhere)")
    s.add_argument("--json", action="store_true", help="with size, root and the archive's verifier key")

    s = sub.add_parser("proof", help="Merkle inclusion proof of a snapshot, or consistency proof between sizes")
    s.add_argument("url", nargs="?", help="the snapshot's URL (with --at; default its newest snapshot)")
    s.add_argument("--at", metavar="ID", help="snapshot id or unique prefix (default: the URL's newest)")
    s.add_argument("--size", type=int, help="tree size to prove against (default: the latest)")
    s.add_argument("--consistency", type=int, metavar="OLD_SIZE",
                   help="prove the log of --size (default latest) extends the log of OLD_SIZE")

    s = sub.add_parser("keys", help="show, export or rotate the signing keys")
    ks = s.add_subparsers(dest="keys_command", metavar="ACTION")
    ks.required = True
    ks.add_parser("show", help="key ids, algorithms and validity")
    e = ks.add_parser("export-public", help="write the current Ed25519 public key (PEM)")
    e.add_argument("file", type=Path, metavar="FILE", help="where to write the PEM file")
    ks.add_parser("rotate", help="new keys from now on; old signatures stay valid")
    e = ks.add_parser("enroll", help="shared archive, on the root key's machine: let a worker's key sign")
    e.add_argument("key_id", metavar="KEY_ID", help="the worker's key id (as `archiver keys show` printed it there)")
    e.add_argument("--until", metavar="TIME", help="end of the key's validity (ISO 8601 with a zone; default: open)")
    e = ks.add_parser("pin-root", help="shared archive, on a worker: trust the root key in FILE (its export-public)")
    e.add_argument("file", type=Path, metavar="FILE", help="the root machine's `archiver keys export-public` PEM")
    e = ks.add_parser("keep-rotated", help="trust the keys in FILE (earlier export-public files) as this machine's "
                                           "rotated-out keys: readers show what they signed")
    e.add_argument("file", type=Path, metavar="FILE", help="an `archiver keys export-public` PEM from before a rotation")
    e = ks.add_parser("retire", help="shared archive, on the root key's machine: end a worker key's validity now")
    e.add_argument("key_id", metavar="KEY_ID", help="the worker's key id")


def _progress(err: TextIO):  # type: ignore[no-untyped-def]
    if not err.isatty():
        return None

    def show(name: str) -> None:
        err.write(f"\rverifying {name[:70]:<70}")
        err.flush()

    return show


def cmd_verify_wacz(args: argparse.Namespace, out: TextIO) -> int:
    """``verify --wacz FILE``: the file alone, no archive, no data dir touched."""
    from archiver.audit.wacz_check import check_wacz

    if args.urls or args.since:
        raise UsageError("verify --wacz checks the whole file; it takes no URL and no --since")
    if not args.wacz.is_file():
        raise UsageError(f"no WACZ file at {args.wacz}")
    from archiver.given import read_given_keys

    pinned = read_given_keys(args.public_key[0]) if args.public_key else None
    return _report_verify(check_wacz(args.wacz, public_key=pinned).to_json(), args.json, out)


def _report_verify(report: dict[str, Any], as_json: bool, out: TextIO) -> int:
    if as_json:
        out.write(json.dumps(report, ensure_ascii=False) + "\n")
    else:
        out.write(verify_summary(report) + "\n")
        for p in report["problems"]:
            out.write(f"  {p['kind']:<18} {p['snapshot'] or '-':<28} {p['detail']}\n")
    return EXIT_OK if report["ok"] else EXIT_FAIL


def cmd_verify(archive: Archive, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from archiver.audit.verify import audit, load_public_keys

    since = None
    if args.since:
        from archiver.given import MAX_NOTE_BYTES, read_given_text

        since = read_given_text(args.since, "checkpoint file", MAX_NOTE_BYTES)
    trusted = load_public_keys(args.public_key) if args.public_key else None
    progress = _progress(err)
    audited = audit(archive, urls=args.urls or None, trusted_keys=trusted, since_note=since, progress=progress)
    if progress:
        err.write("\n")
    return _report_verify(audited.to_json(), args.json, out)


def cmd_repair(archive: Archive, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from archiver.audit.repair import repair

    result = repair(archive, full=args.full)
    if args.json:
        out.write(json.dumps(result.to_json()) + "\n")
    else:
        out.write(result.summary() + "\n")
        for f in result.foreign:
            out.write(f"  foreign-record {f['warc_file']}@{f['offset']} {f['type'] or '-'}: {f['reason']}\n")
    return EXIT_FAIL if result.foreign else EXIT_OK


def cmd_export(archive: Archive, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from archiver.audit.wacz_export import export_wacz

    pin_reader_keys(archive, args)
    for url in args.urls:
        archive.history(url)  # a clear error for a URL with no snapshots
    path = export_wacz(archive, list(args.urls), args.wacz, clock=archive.c.clock)
    out.write(f"wrote {path}\n")
    return EXIT_OK


def cmd_checkpoint(archive: Archive, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from archiver.provenance.keyring import ED25519
    from archiver.provenance.notes import NoteVerifier, parse_checkpoint
    from archiver.provenance.ringstore import trusted_keyring

    note = archive.provenance.latest_checkpoint(keep="published")
    if note is None:
        raise NotFoundError(f"the log at {archive.root} is empty: no snapshot has been signed yet, so there is no "
                            "checkpoint to publish (take one with `archiver snapshot URL`)")
    if not args.json:
        out.write(note)
        return EXIT_OK
    body = note.split("\n\n", 1)[0] + "\n"
    cp = parse_checkpoint(body)
    ring = trusted_keyring(archive)
    # The key that signed this checkpoint (on a shared archive, the appending machine's).
    key = next((k for k in (ring.keys if ring else ()) if k.algorithm == ED25519 and _signed_by(note, k)), None)
    if key is None:
        raise ArchiverError("the latest checkpoint is not signed by a key of the archive's keyring")
    import base64

    out.write(json.dumps({
        "origin": cp.origin, "size": cp.size, "root": base64.b64encode(cp.root).decode(),
        "note": note, "vkey": NoteVerifier.from_spki(key.name, key.public_key).vkey(),
    }) + "\n")
    return EXIT_OK


def _signed_by(note: str, key: Any) -> bool:
    from archiver.provenance.notes import NoteVerifier, open_checkpoint

    try:
        open_checkpoint(note, [NoteVerifier.from_spki(key.name, key.public_key)])
    except ArchiverError:
        return False
    return True


def cmd_proof(archive: Archive, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """RFC 9162-style proofs, base64 hashes, for checking against a published checkpoint."""
    import base64

    from archiver.provenance.leaves import row_leaf
    from archiver.provenance.log import MerkleLog
    from archiver.provenance.merkle import (
        hash_leaf,
        verify_consistency,
        verify_inclusion,
    )

    b64 = lambda h: base64.b64encode(h).decode()  # noqa: E731
    with archive.index.read() as conn:
        ledger = MerkleLog(conn)
        size = args.size if args.size is not None else ledger.size()
        if args.consistency is not None:
            proof = ledger.consistency_proof(args.consistency, size)
            old_root, new_root = ledger.root(args.consistency), ledger.root(size)
            verify_consistency(args.consistency, size, proof, old_root, new_root)
            doc = {"size1": args.consistency, "size2": size, "root1": b64(old_root), "root2": b64(new_root),
                   "proof": [b64(h) for h in proof]}
        else:
            if not args.url:
                raise UsageError("proof needs a URL (inclusion) or --consistency OLD_SIZE")
            row = archive.resolve(args.url, args.at)
            if row.log_index is None or row.manifest_sha256 is None:
                raise UsageError(f"snapshot {row.id} has no log entry")
            # the leaf's data: the manifest digest, and its signature and key when the manifest signs its leaf
            data = row_leaf(row.manifest_sha256, row.signature, row.key_id, ledger.leaf_hash(row.log_index))
            if data is None:
                raise VerificationError(f"log leaf {row.log_index} is not snapshot {row.id}'s (run archiver verify)")
            leaf = hash_leaf(data)
            proof = ledger.inclusion_proof(row.log_index, size)
            root = ledger.root(size)
            verify_inclusion(leaf, row.log_index, size, proof, root)
            doc = {"snapshot": row.id, "manifest_sha256": row.manifest_sha256, "leaf_index": row.log_index,
                   "tree_size": size, "leaf_data": b64(data), "leaf_hash": b64(leaf), "root": b64(root),
                   "proof": [b64(h) for h in proof]}
    for asked in {size, args.consistency} - {None}:  # the notes this proof is checked against, where signed
        archive.provenance.keep_checkpoint(asked, "proof")
    out.write(json.dumps(doc) + "\n")
    return EXIT_OK


def cmd_keys(archive: Archive, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    keys = archive.provenance.keys
    if args.keys_command == "rotate":
        from archiver.audit.repair import rotate_keys

        rotation = rotate_keys(archive)
        if rotation.repair_failed is not None:
            err.write(f"warning: repair before the rotation failed, so captures a crash left are not committed "
                      f"(after it, they are foreign records): {rotation.repair_failed}\n")
        elif rotation.repaired is not None:
            out.write(rotation.repaired.summary() + "\n")
        for alg, kid in sorted(rotation.new_keys.items()):
            out.write(f"rotated {alg}: new key {kid}\n")
        return EXIT_OK
    if args.keys_command in ("enroll", "retire"):
        from archiver.provenance.enrolment import enroll, retire

        if args.keys_command == "retire":
            record = retire(keys, args.key_id)
            out.write(f"retired {record.key_id} ({record.name}): its window closed at {record.to_json()['valid_until']}\n")
            return EXIT_OK
        record = enroll(keys, args.key_id, _parse_until(args.until))
        out.write(f"enrolled {record.key_id} ({record.name}) until {args.until or 'retired'}\n")
        return EXIT_OK
    if args.keys_command == "pin-root":
        from archiver.provenance.pinning import pin_root

        if keys.role != "worker":
            raise UsageError("pin-root is for a shared archive's worker machines: the root machine trusts its own key")
        out.write(f"pinned root key {pin_root(keys, args.file)}\n")
        return EXIT_OK
    if args.keys_command == "keep-rotated":
        from archiver.provenance.pinning import keep_rotated

        if keys.role == "worker":
            raise UsageError("keep-rotated is for the machine that signed with those keys; a worker pins the root key")
        added = keep_rotated(keys, args.file)
        out.write(f"kept {len(added)} rotated key(s){': ' if added else ''}{', '.join(k[:16] for k in added)}\n")
        return EXIT_OK
    keys.ensure()
    if args.keys_command == "export-public":
        from archiver.provenance.pinning import export_public

        # The key auditors pin, as keys/ knows it (never the keyring's say-so).
        kid = export_public(keys, args.file)
        out.write(f"wrote {args.file} (key {kid})\n")
        return EXIT_OK
    ring = keys.keyring()
    signer = None
    if keys.role:
        try:
            signer = keys.signer().key_id
        except ArchiverError as exc:
            err.write(f"{exc}\n")
    for k in ring.keys:
        until = k.valid_until.isoformat() if k.valid_until else "current"
        role = ""
        if k.role:
            status = "pending enrolment" if k.role == "worker" and k.endorsement is None and k.algorithm == "ed25519" else k.role
            role = f"  {k.name} ({status}){'  <- this machine' if k.key_id == signer else ''}"
        out.write(f"{k.key_id}  {k.algorithm:<10}  from {k.valid_from.isoformat()}  until {until}{role}\n")
    if keys.role == "worker":
        from archiver.provenance.pinning import pinned_root_id

        out.write(f"pinned root key: {pinned_root_id(keys) or 'none (archiver keys pin-root FILE)'}\n")
    return EXIT_OK


def _parse_until(value: str | None) -> Any:
    from datetime import datetime

    if value is None:
        return None
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise UsageError(f"--until {value!r} is not an ISO 8601 time") from exc
    if at.tzinfo is None:
        raise UsageError("--until needs a time zone (e.g. 2027-01-01T00:00:00Z)")
    return at


COMMANDS = {
    "verify": cmd_verify,
    "repair": cmd_repair,
    "export": cmd_export,
    "checkpoint": cmd_checkpoint,
    "keys": cmd_keys,
    "proof": cmd_proof,
}
NO_ARCHIVE: dict[str, Any] = {}


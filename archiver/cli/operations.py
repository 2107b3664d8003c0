"""Operations commands: ``migrate`` (embedded -> PostgreSQL + object storage),
``compact`` (an index upgraded from an older schema, shrunk in place) and
``compact-warcs`` (small WARC objects on S3 -> large WARC files)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from typing import Any, TextIO

from archiver.cli.common import EXIT_FAIL, EXIT_OK, verify_summary
from archiver.config import Settings
from archiver.errors import ArchiverError, NotFoundError, UsageError

log = logging.getLogger(__name__)


def register(sub: Any) -> None:
    s = sub.add_parser(
        "migrate",
        help="copy this embedded archive into PostgreSQL (+ S3-compatible storage) and verify the copy",
    )
    s.add_argument("--index", required=True, metavar="URL",
                   help="the target postgresql:// database (new and empty; a password belongs in ~/.pgpass)")
    s.add_argument("--warcs", default="", metavar="S3_URL",
                   help="the target s3://bucket/prefix for the WARC files (default: they stay in the data dir)")
    s.add_argument("--s3-endpoint-url", default=None, metavar="URL",
                   help="S3-compatible endpoint (default: the s3.endpoint_url setting; empty: AWS)")
    s.add_argument("--json", action="store_true", help="what was copied and the comparison, as JSON")
    s = sub.add_parser("compact", help="rewrite index rows stored in an older form (manifest copies the WARC holds dropped, JSON packed); reclaim space")
    s.add_argument("--json", action="store_true", help="rows rewritten and index bytes before/after, as JSON")

    s = sub.add_parser(
        "compact-warcs",
        help="merge small per-append WARC objects on S3 into large WARC files (records copied byte for byte)",
    )
    s.add_argument("--target-size", type=int, default=None, metavar="BYTES",
                   help="size of each large file (default: archive.warc_max_size)")
    s.add_argument("--keep-sources", type=float, default=3600.0, metavar="SECONDS",
                   help="leave merged objects this long, for audits already reading them; a later run deletes them "
                        "(default: 3600)")
    s.add_argument("--json", action="store_true", help="what was merged, as JSON")


def cmd_migrate(settings: Settings, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Upload the WARCs, copy the index in one transaction, then prove the copy:
    same checkpoints, same log root recomputed from the copied leaves, and a
    full ``verify`` of the target. The source is opened read-only."""
    from archiver.archive import Archive
    from archiver.audit.verify import audit
    from store.backends import index_exists, open_index, open_warcs
    from store.index import Index
    from store.migrate import Copied, copy_index, copy_warcs

    if settings.archive.index or settings.archive.warcs:
        raise UsageError("migrate copies an embedded archive: run it with archive.index and archive.warcs unset")
    if not args.index.startswith(("postgresql://", "postgres://")):
        raise UsageError("--index must be a postgresql:// URL")
    if args.warcs and not args.warcs.startswith("s3://"):
        raise UsageError("--warcs must be an s3://bucket/prefix URL")
    source_storage = settings.storage
    if not index_exists(source_storage):
        raise NotFoundError(f"no archive at {settings.data_path}")
    target = dataclasses.replace(settings, archive=dataclasses.replace(settings.archive, index=args.index, warcs=args.warcs))
    if args.s3_endpoint_url is not None:
        target.s3 = dataclasses.replace(settings.s3, endpoint_url=args.s3_endpoint_url)
    copied = Copied()
    if args.warcs:
        copy_warcs(settings.data_path / "warcs", open_warcs(target.storage), copied)
    source = Index(settings.data_path / "index.sqlite3", read_only=True)
    try:
        dest = open_index(target.storage)
        try:
            copy_index(source, dest, copied)
            same = _compare_logs(source, dest)
        finally:
            dest.close()
    finally:
        source.close()
    with Archive(target) as archive:
        report = audit(archive).to_json()
    ok = same["same_checkpoints"] and same["same_root"] and report["ok"]
    result = {"ok": ok, "rows": copied.rows, "warcs": copied.warcs, "warc_bytes": copied.warc_bytes, **same,
              "verify": report}
    if args.json:
        out.write(json.dumps(result) + "\n")
    else:
        out.write(f"copied {sum(copied.rows.values())} index row(s), {copied.warcs} WARC file(s) "
                  f"({copied.warc_bytes} bytes)\n")
        out.write(f"log: {same['log_size']} leaves, root {same['root']}; "
                  f"checkpoints {'identical' if same['same_checkpoints'] else 'DIFFER'} "
                  f"({same['checkpoints']}); root {'identical' if same['same_root'] else 'DIFFERS'}\n")
        out.write("target " + verify_summary(report) + "\n")
        for p in report["problems"]:
            out.write(f"  {p['kind']:<18} {p['snapshot'] or '-':<28} {p['detail']}\n")
        if ok:
            out.write(f"set archive.index{' and archive.warcs' if args.warcs else ''} to use the copy; "
                      "the source is unchanged\n")
    return EXIT_OK if ok else EXIT_FAIL


def _compare_logs(source: Any, dest: Any) -> dict[str, Any]:
    """The checkpoints of both, and the log root recomputed from each side's leaves."""
    from archiver.provenance.log import MerkleLog

    with source.read() as sconn, dest.read() as dconn:
        src_notes = [(int(r[0]), bytes(r[1]), r[2]) for r in sconn.execute("SELECT size, root, note FROM checkpoints ORDER BY size")]
        dst_notes = [(int(r[0]), bytes(r[1]), r[2]) for r in dconn.execute("SELECT size, root, note FROM checkpoints ORDER BY size")]
        src_log, dst_log = MerkleLog(sconn), MerkleLog(dconn)
        size = src_log.size()
        src_root = src_log.root() if size else b""
        dst_root = dst_log.root() if dst_log.size() else b""
        same_size = dst_log.size() == size
    return {
        "log_size": size,
        "root": src_root.hex(),
        "same_root": same_size and dst_root == src_root,
        "checkpoints": len(src_notes),
        "same_checkpoints": src_notes == dst_notes,
    }


def cmd_compact(archive: Any, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Pack old rows in resumable batches, then reclaim the space (see store.compaction)."""
    from store.compaction import compact

    def size() -> int | None:  # the SQLite file with its WAL; None for a database server
        path = archive.index.path
        if not path.name:
            return None
        return sum(p.stat().st_size for p in path.parent.glob(path.name + "*") if p.is_file())

    def in_warc(snapshot_id: str, digest: str) -> bool:
        try:
            archive.manifest_named(snapshot_id, digest)
        except ArchiverError as exc:
            log.warning("snapshot %s keeps its manifest copy in the index: %s", snapshot_id, exc)
            return False
        return True

    before = size()
    done = compact(archive.index, in_warc)
    doc = {**done.to_json(), "bytes_before": before, "bytes_after": size()}
    if args.json:
        out.write(json.dumps(doc) + "\n")
    else:
        sizes = f"; index {before:,} -> {doc['bytes_after']:,} bytes" if before is not None else ""
        out.write(f"rewrote {done.snapshots} snapshot row(s) ({done.manifests_dropped} manifest copies the WARC holds "
                  f"dropped, {done.manifests_kept} kept) and {done.texts} text(s){sizes}\n")
    return EXIT_OK


def make_compactor(archive: Any, target_size: int, stage: Any = None) -> Any:
    """The archive's compactor (its clock, ids and warcinfo fields); ``stage`` for crash tests."""
    from archiver import __version__
    from archiver.capture.records import record_id
    from store.warc import WarcInfo
    from store.warcmerge import Compactor

    settings = archive.settings
    info = WarcInfo(software=f"archiver/{__version__}", operator=settings.archive.operator,
                    hostname=archive.c.hostname, description="")
    compactor = Compactor(archive.index, archive.warcs, info.fields(), archive.c.clock,
                          lambda: record_id(archive.c.new_uuid), target_size, prefix=settings.archive.warc_prefix)
    if stage is not None:
        compactor.stage = stage
    return compactor


def cmd_compact_warcs(archive: Any, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Merge the committed small objects; interrupted runs are finished first."""
    from archiver.audit.settled import mark_settled
    from store.warcmerge import Compacted

    settings = archive.settings
    if not settings.storage.shared_warcs:
        done = Compacted()
        out.write(json.dumps(done.to_json()) + "\n" if args.json else
                  "nothing to compact: local WARC files already grow to archive.warc_max_size\n")
        return EXIT_OK
    target_size = args.target_size if args.target_size is not None else settings.archive.warc_max_size
    if target_size <= 0:
        raise UsageError("--target-size must be positive")
    compactor = make_compactor(archive, target_size)
    compactor.keep_sources = max(0.0, args.keep_sources)
    done = compactor.run()
    mark_settled(archive.index, archive.warcs, [f["target"] for f in done.files])  # no repair re-reads them
    if args.json:
        out.write(json.dumps(done.to_json()) + "\n")
        return EXIT_OK
    for f in done.files:
        out.write(f"{f['target']}: {len(f['sources'])} objects, {f['bytes']} bytes\n")
    if done.recovered:
        out.write(f"finished {len(done.recovered)} interrupted compaction(s)\n")
    out.write(f"compacted {sum(len(f['sources']) for f in done.files)} object(s) into {len(done.files)} file(s); "
              f"{len(done.skipped)} left for later (records not committed yet)\n")
    return EXIT_OK


COMMANDS: dict[str, Any] = {"compact": cmd_compact, "compact-warcs": cmd_compact_warcs}
NO_ARCHIVE = {"migrate": cmd_migrate}

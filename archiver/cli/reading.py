"""Capture and reading commands: snapshot, show, history, diff."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, TextIO

from archiver.cli.common import EXIT_FAIL, EXIT_OK, emit_json, figure_line, pin_reader_keys, reader_trust_option
from archiver.errors import NotFoundError, UsageError, one_line
from archiver.given import MAX_LIST_BYTES, read_given_text

if TYPE_CHECKING:
    from archiver.archive import Archive


def register(sub: Any) -> None:
    s = sub.add_parser(
        "snapshot", help="capture URLs now",
        description="Fetch each URL now, store the exchange as WARC, sign it into the log and compare it "
                    "with the URL's previous snapshot.",
        epilog="Addresses on loopback, private and link-local networks are refused, so a URL cannot make "
               "the archive reach into its own network; set ARCHIVER_ALLOW_PRIVATE=1 (or "
               "capture.allow_private = true) to allow them, e.g. for an intranet or a test server.",
    )
    s.add_argument("urls", nargs="*", metavar="URL",
                   help="absolute http:// or https:// address of the page, as a reader would open it")
    s.add_argument("-i", "--input-file", type=Path, help="file with one URL per line ('-' for stdin)")
    s.add_argument("--json", action="store_true", help="one JSON object per line")
    s.add_argument("--workers", type=int, help="concurrent captures (default from config)")
    s.add_argument("--no-requisites", dest="requisites", action="store_false",
                   help="capture only the page, not its stylesheets, images, fonts and icons")

    s = sub.add_parser("show", help="show one snapshot of a URL")
    s.add_argument("url", metavar="URL", help="the page's URL as it was captured")
    s.add_argument("--at", metavar="ID", help="snapshot id or unique prefix (default: newest)")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--text", action="store_true", help="the article text (default)")
    g.add_argument("--html", action="store_true", help="the captured HTML body")
    g.add_argument("--json", action="store_true", help="the snapshot as JSON")
    g.add_argument("--provenance", action="store_true", help="the signed manifest")
    g.add_argument("--prov", action="store_true", help="W3C PROV-JSON view of the manifest")
    reader_trust_option(s)

    s = sub.add_parser("history", help="all snapshots of a URL, oldest first")
    s.add_argument("url", metavar="URL", help="the page's URL as it was captured")
    s.add_argument("--json", action="store_true", help="a JSON array (id, captured_at, status, ...)")
    reader_trust_option(s)

    s = sub.add_parser("diff", help="what changed between two snapshots")
    s.add_argument("url", metavar="URL", help="the page's URL as it was captured")
    s.add_argument("--from", dest="from_id", metavar="ID",
                   help="older snapshot id or unique prefix (default: the one before --to)")
    s.add_argument("--to", dest="to_id", metavar="ID", help="newer snapshot id or unique prefix (default: newest)")
    s.add_argument("--json", action="store_true", help="from, to, significance, figures, changes as JSON")
    s.add_argument("--color", choices=["auto", "always", "never"], default="auto",
                   help="colour the changes (auto: only on a terminal)")
    reader_trust_option(s)



def _read_urls(args: argparse.Namespace) -> list[str]:
    urls = list(args.urls)
    if args.input_file:
        text = read_given_text(args.input_file, "URL list", MAX_LIST_BYTES)
        urls += [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not urls:
        raise UsageError("snapshot needs at least one URL (or -i FILE)")
    return urls


class Progress:
    """A one-line progress counter on a terminal; silent otherwise."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total, self.done, self.stream = total, 0, stream
        self.enabled = total > 1 and stream.isatty()

    def step(self, label: str) -> None:
        self.done += 1
        if self.enabled:
            self.stream.write(f"\r[{self.done}/{self.total}] {label[:60]:<60}")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")


# -- commands ------------------------------------------------------------------
def cmd_snapshot(archive: Archive, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from archiver.archive import SnapshotFailure

    urls = _read_urls(args)
    if not args.requisites:
        archive.settings.capture.requisites = False
    progress = Progress(len(urls), err)
    failed = 0
    for result in archive.snapshot_many(urls, workers=args.workers):
        progress.step(result.url if isinstance(result, SnapshotFailure) else result.row.url)
        if isinstance(result, SnapshotFailure):
            failed += 1
            if args.json:
                emit_json(result.to_json(), out)
            progress.close()  # end the progress line before the error line
            err.write(f"archiver: {one_line(result.url)}: {one_line(result.error)}\n")
            continue
        row = result.row
        if args.json:
            emit_json(result.to_json(), out)
        else:
            out.write(
                f"{row.id}  {row.status}  {row.significance:<11}  {row.url}"
                f"{'  (unchanged payload, revisit)' if row.revisit else ''}\n"
            )
            for f in (row.diff or {}).get("figures", []):
                out.write(f"    {figure_line(f)}\n")
            if result.requisites and result.requisites.get("found"):
                out.write(f"    {requisites_line(result.requisites)}\n")
    progress.close()
    return EXIT_FAIL if failed else EXIT_OK


def requisites_line(counts: dict[str, Any]) -> str:
    """``requisites: 14 found — 11 captured, 2 revisit, 1 failed`` (and the limit that stopped them)."""
    parts = [f"{counts[k]} {k}" for k in ("captured", "revisit", "failed", "refused", "skipped") if counts.get(k)]
    line = f"requisites: {counts['found']} found — {', '.join(parts) or 'none fetched'}"
    if counts.get("limit"):
        line += f"; {counts.get('not_fetched', 0)} not fetched ({counts['limit']} limit)"
    return line


def cmd_show(archive: Archive, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    pin_reader_keys(archive, args)
    row = archive.resolve(args.url, args.at)
    if args.html:
        body, content_type = archive.page(row)  # the charset its signed record states
        from archiver.changes.extract import decode_html

        out.write(decode_html(body, content_type))
        return EXIT_OK
    if args.json:
        emit_json(archive.snapshot_json(row), out)
        return EXIT_OK
    if args.provenance or args.prov:
        doc = archive.signed_manifest(row)
        if args.prov:
            from archiver.provenance import prov as provjson

            doc = provjson.to_prov(doc["manifest"])
        out.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
        return EXIT_OK
    article = archive.article(row)
    if article is None:
        raise NotFoundError(f"snapshot {row.id} ({row.content_type or 'no content type'}) has no article text; try --html")
    out.write(article.text() + "\n")
    return EXIT_OK


def cmd_history(archive: Archive, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    pin_reader_keys(archive, args)
    items = archive.history_json(args.url)
    status = EXIT_OK if all(it["verified"] for it in items) else EXIT_FAIL  # a snapshot that does not verify is a problem
    if args.json:
        out.write(json.dumps(items, ensure_ascii=False) + "\n")
        return status
    out.write(f"{args.url}: {len(items)} snapshot(s)\n")
    for it in items:
        if not it["verified"]:  # its significance and figures are the index's claims: not shown
            out.write(f"  {it['captured_at']}  {it['id']}  does not verify: {one_line(it['problem'])}\n")
            continue
        out.write(f"  {it['captured_at']}  {it['id']}  {it['status']}  {it['significance']}\n")
        for f in it["figures"]:
            out.write(f"      {figure_line(f)}\n")
    return status


def cmd_diff(archive: Archive, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    pin_reader_keys(archive, args)
    a, b, result = archive.diff_result(args.url, args.from_id, args.to_id)
    if args.json:
        emit_json({"from": a.id, "to": b.id, "url": args.url, **result.to_json()}, out)
        return EXIT_OK
    from archiver.changes.diff import render_terminal

    color = args.color == "always" or (args.color == "auto" and out.isatty() and not os.environ.get("NO_COLOR"))
    out.write(f"{args.url}: {a.id} ({a.captured_at}) → {b.id} ({b.captured_at}): {result.significance}\n")
    out.write(render_terminal(result, color=color).rstrip("\n") + "\n")
    return EXIT_OK



COMMANDS: dict[str, Callable[..., int]] = {
    "snapshot": cmd_snapshot,
    "show": cmd_show,
    "history": cmd_history,
    "diff": cmd_diff,
}

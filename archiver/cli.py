"""The command line: parse, build the Archive once from config, call the
library, turn errors into exit codes (0 ok, 1 failure/problems, 2 usage).

Errors are one line on stderr; a traceback only with ARCHIVER_DEBUG=1.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable, Sequence, TextIO

from archiver import __version__
from archiver.errors import ArchiverError, NotFoundError, UsageError

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="archiver", description="Archive web pages as signed WARC and detect edits.")
    p.add_argument("--version", action="version", version=f"archiver {__version__}")
    p.add_argument("--data-dir", help="archive directory (env ARCHIVER_DATA_DIR)")
    p.add_argument("--config", type=Path, help="settings file (TOML), see config/archiver.toml")
    p.add_argument("-v", "--verbose", action="count", default=0, help="log more (repeat for debug)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    s = sub.add_parser("snapshot", help="capture URLs now")
    s.add_argument("urls", nargs="*", metavar="URL")
    s.add_argument("-i", "--input-file", type=Path, help="file with one URL per line ('-' for stdin)")
    s.add_argument("--json", action="store_true", help="one JSON object per line")
    s.add_argument("--workers", type=int, help="concurrent captures (default from config)")

    s = sub.add_parser("show", help="show one snapshot of a URL")
    s.add_argument("url")
    s.add_argument("--at", metavar="ID", help="snapshot id or unique prefix (default: newest)")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--text", action="store_true", help="the article text (default)")
    g.add_argument("--html", action="store_true", help="the captured HTML body")
    g.add_argument("--json", action="store_true", help="the snapshot as JSON")
    g.add_argument("--provenance", action="store_true", help="the signed manifest")
    g.add_argument("--prov", action="store_true", help="W3C PROV-JSON view of the manifest")

    s = sub.add_parser("history", help="all snapshots of a URL, oldest first")
    s.add_argument("url")
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("diff", help="what changed between two snapshots")
    s.add_argument("url")
    s.add_argument("--from", dest="from_id", metavar="ID")
    s.add_argument("--to", dest="to_id", metavar="ID")
    s.add_argument("--json", action="store_true")
    s.add_argument("--color", choices=["auto", "always", "never"], default="auto")

    s = sub.add_parser("demo", help="the whole story offline, on 127.0.0.1")
    s.add_argument("--keep", action="store_true", help="keep the demo archive directory")

    from archiver import cli_extra

    cli_extra.register(sub)
    return p


# -- output helpers ------------------------------------------------------------
def emit_json(obj: Any, out: TextIO) -> None:
    out.write(json.dumps(obj, ensure_ascii=False) + "\n")


def _read_urls(args: argparse.Namespace) -> list[str]:
    urls = list(args.urls)
    if args.input_file:
        try:
            text = sys.stdin.read() if str(args.input_file) == "-" else args.input_file.read_text("utf-8")
        except OSError as exc:
            raise UsageError(f"cannot read URL list {args.input_file}: {exc.strerror}") from exc
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
def cmd_snapshot(archive: Any, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from archiver.archive import SnapshotFailure

    urls = _read_urls(args)
    progress = Progress(len(urls), err)
    failed = 0
    for result in archive.snapshot_many(urls, workers=args.workers):
        progress.step(result.url if isinstance(result, SnapshotFailure) else result.row.url)
        if isinstance(result, SnapshotFailure):
            failed += 1
            if args.json:
                emit_json(result.to_json(), out)
            progress.close()  # end the progress line before the error line
            err.write(f"archiver: {result.url}: {result.error}\n")
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
                out.write(f"    {_figure_line(f)}\n")
    progress.close()
    return EXIT_FAIL if failed else EXIT_OK


def cmd_show(archive: Any, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    row = archive.resolve(args.url, args.at)
    if args.html:
        body = archive.body(row)
        from archiver.extract import decode_html

        out.write(decode_html(body, row.content_type))
        return EXIT_OK
    if args.json:
        from archiver.archive import SnapshotResult

        data = SnapshotResult(row).to_json()
        data["manifest"] = json.loads(row.manifest_json) if row.manifest_json else None
        emit_json(data, out)
        return EXIT_OK
    if args.provenance or args.prov:
        manifest = json.loads(row.manifest_json or "null")
        doc = {"manifest": manifest, "manifest_sha256": row.manifest_sha256, "signature": row.signature, "key_id": row.key_id}
        if args.prov:
            from archiver import provjson

            doc = provjson.to_prov(manifest)
        out.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
        return EXIT_OK
    article = archive.article(row)
    if article is None:
        raise NotFoundError(f"snapshot {row.id} ({row.content_type or 'no content type'}) has no article text; try --html")
    out.write(article.text() + "\n")
    return EXIT_OK


def cmd_history(archive: Any, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    rows = archive.history(args.url)
    items = []
    for r in rows:
        d = r.diff or {}
        items.append(
            {
                "id": r.id,
                "captured_at": r.captured_at,
                "status": r.status,
                "payload_sha256": r.payload_sha256,
                "significance": r.significance,
                "revisit": r.revisit,
                "figures": d.get("figures", []),
            }
        )
    if args.json:
        out.write(json.dumps(items, ensure_ascii=False) + "\n")
        return EXIT_OK
    out.write(f"{args.url}: {len(items)} snapshot(s)\n")
    for it in items:
        out.write(f"  {it['captured_at']}  {it['id']}  {it['status']}  {it['significance']}\n")
        for f in it["figures"]:
            out.write(f"      {_figure_line(f)}\n")
    return EXIT_OK


def _figure_line(f: dict[str, Any]) -> str:
    noun = f" ({f['noun']})" if f.get("noun") else ""
    if f.get("before") is None:
        return f"Figure added: {f.get('after')}{noun}"
    if f.get("after") is None:
        return f"Figure removed: {f.get('before')}{noun}"
    return f"Figure changed: {f['before']} → {f['after']}{noun}"


def cmd_diff(archive: Any, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    a, b, result = archive.diff_result(args.url, args.from_id, args.to_id)
    if args.json:
        emit_json({"from": a.id, "to": b.id, "url": args.url, **result.to_json()}, out)
        return EXIT_OK
    from archiver.diff import render_terminal

    color = args.color == "always" or (args.color == "auto" and out.isatty() and not os.environ.get("NO_COLOR"))
    out.write(f"{args.url}: {a.id} ({a.captured_at}) → {b.id} ({b.captured_at}): {result.significance}\n")
    out.write(render_terminal(result, color=color).rstrip("\n") + "\n")
    return EXIT_OK


# Commands that may start a new archive; the others only read or repair one,
# and a mistyped --data-dir must not leave an empty archive behind.
CREATES_ARCHIVE = frozenset({"snapshot", "watch", "watch-feed", "daemon", "keys", "sources"})

COMMANDS: dict[str, Callable[..., int]] = {
    "snapshot": cmd_snapshot,
    "show": cmd_show,
    "history": cmd_history,
    "diff": cmd_diff,
}


def _setup_logging(verbose: int, err: TextIO) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, stream=err, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # trafilatura logs ERROR for pages it merely finds empty; archiver falls back itself.
    logging.getLogger("trafilatura").setLevel(logging.DEBUG if verbose >= 2 else logging.CRITICAL)


def load_settings(args: argparse.Namespace) -> Any:
    from archiver import config

    settings = config.load(args.config)
    if args.data_dir:
        settings.archive.data_dir = args.data_dir
    return settings


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        args = build_parser().parse_args(argv)
        _setup_logging(args.verbose, err)
        if args.command == "demo":
            from archiver import demo

            return demo.run(args, out, err)
        from archiver import cli_extra

        if args.command in cli_extra.NO_ARCHIVE:
            return cli_extra.NO_ARCHIVE[args.command](load_settings(args), args, out, err)
        from archiver.archive import Archive

        settings = load_settings(args)
        if args.command not in CREATES_ARCHIVE and not (settings.data_path / "index.sqlite3").exists():
            raise NotFoundError(f"no archive at {settings.data_path} (wrong --data-dir, or nothing captured yet)")
        with Archive(settings) as archive:
            handler = COMMANDS.get(args.command) or cli_extra.COMMANDS[args.command]
            return handler(archive, args, out, err)
    except UsageError as exc:
        err.write(f"archiver: error: {exc}\n")
        return EXIT_USAGE
    except ArchiverError as exc:
        err.write(f"archiver: {exc}\n")
        return EXIT_FAIL
    except KeyboardInterrupt:
        err.write("archiver: interrupted\n")
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:  # the edge: never a traceback for the user
        if os.environ.get("ARCHIVER_DEBUG"):
            raise
        err.write(f"archiver: internal error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}\n")
        return EXIT_FAIL


def entry() -> None:
    sys.exit(main())

"""The command line: parse, build the Archive once from config, call the
library, turn errors into exit codes (0 ok, 1 failure/problems, 2 usage).

Errors are one line on stderr; a traceback only with ARCHIVER_DEBUG=1.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, TextIO

from archiver import __version__
from archiver.cli.common import EXIT_FAIL, EXIT_OK, EXIT_USAGE, load_settings
from archiver.errors import ArchiverError, NotFoundError, UsageError, one_line
from store.backends import index_exists

log = logging.getLogger(__name__)



_DATA_DIR_NOW = "\x00data-dir\x00"  # in --data-dir's help: the directory a command would use now


class _Formatter(argparse.HelpFormatter):
    """Wraps help text but never inside a word: paths and URLs stay whole."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        import textwrap

        return textwrap.wrap(" ".join(text.split()), width, break_long_words=False, break_on_hyphens=False)

    def _get_help_string(self, action: argparse.Action) -> str | None:
        # Filled in only when help is printed: finding it reads the config, which no other run needs.
        text = action.help
        return text.replace(_DATA_DIR_NOW, _effective_data_dir()) if text and _DATA_DIR_NOW in text else text

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        import textwrap

        return textwrap.fill(" ".join(text.split()), width, initial_indent=indent, subsequent_indent=indent,
                             break_long_words=False, break_on_hyphens=False)


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole command line, or with ``command`` only the module that has it
    (a command's own run need not import every other command's code)."""
    p = _Parser(
        prog="archiver",
        description="Archive web pages as signed WARC and detect edits.",
        epilog="`archiver COMMAND --help` explains a command. Start with `archiver demo`.",
    )
    p.add_argument("--version", action="version", version=f"archiver {__version__}")
    p.add_argument("--data-dir", metavar="DIR",
                   help=f"archive directory (env ARCHIVER_DATA_DIR; now: {_DATA_DIR_NOW})")
    p.add_argument("--config", type=Path, help="settings file (TOML), see config/archiver.toml")
    p.add_argument("-v", "--verbose", action="count", default=0, help="log more (repeat for debug)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser, title="commands")
    sub.required = True

    s = sub.add_parser("demo", help="the whole story offline, on 127.0.0.1")
    s.add_argument("--keep", action="store_true", help="keep the demo archive directory")

    for module in _command_modules(command):
        module.register(sub)
    return p


def _effective_data_dir() -> str:
    """The data dir a command would use now (config file and environment applied)."""
    from archiver import config
    from archiver.errors import ConfigError

    try:
        return str(config.load().data_path)
    except ConfigError:
        return str(config.Settings().data_path)


# Which module registers each command (tests/test_cli_edges.py checks it
# against the modules): `archiver verify` then loads the audit commands alone,
# not the daemon's, which bring the whole capture stack.
MODULE_OF = {
    **dict.fromkeys(("snapshot", "show", "history", "diff"), "reading"),
    **dict.fromkeys(("verify", "repair", "export", "checkpoint", "proof", "keys"), "audit"),
    **dict.fromkeys(("watch", "unwatch", "sources", "watch-feed", "daemon", "status"), "daemon"),
    **dict.fromkeys(("serve", "tokens"), "web"),
    **dict.fromkeys(("migrate", "compact", "compact-warcs"), "operations"),
}
_GLOBAL_VALUED = ("--data-dir", "--config")  # global options that take a value


def _command_modules(command: str | None = None) -> list[Any]:
    import importlib

    names = [MODULE_OF[command]] if command in MODULE_OF else ["reading", "audit", "daemon", "web", "operations"]
    return [importlib.import_module(f"archiver.cli.{name}") for name in names]


def command_word(argv: Sequence[str]) -> str | None:
    """The command an argument list names (None: none, or only after an option argparse must judge)."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in _GLOBAL_VALUED:
            skip = True
        elif arg == "--" or not arg.startswith("-"):
            return None if arg == "--" else arg
    return None


def _handlers(command: str | None = None) -> tuple[dict[str, Callable[..., int]], dict[str, Callable[..., int]]]:
    """(commands that get the Archive, commands that build what they need)."""
    commands: dict[str, Callable[..., int]] = {}
    no_archive: dict[str, Callable[..., int]] = {}
    for module in _command_modules(command):
        commands.update(getattr(module, "COMMANDS", {}))
        no_archive.update(getattr(module, "NO_ARCHIVE", {}))
    return commands, no_archive


# Commands that may start a new archive; the others only read or repair one,
# and a mistyped --data-dir must not leave an empty archive behind.
CREATES_ARCHIVE = frozenset({"snapshot", "watch", "watch-feed", "daemon", "keys"})



@contextlib.contextmanager
def first_capture(root: Path) -> Iterator[None]:
    """Run a first ``snapshot`` into ``root``; remove the archive after if nothing got in.

    Every open Archive holds the data dir with a shared ``flock``
    (``store.warc.hold_dir``); the empty archive is removed only under an
    exclusive one, so a snapshot or daemon that opened it meanwhile (its
    capture under way, its index still empty) keeps it.
    """
    import fcntl

    created_root = not root.exists()
    try:
        yield
    finally:
        try:
            fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            fd = -1
        if fd >= 0:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                pass  # another process has the archive open: it stays
            else:
                discard_if_empty(root, remove_root=created_root)
            finally:
                os.close(fd)


def discard_if_empty(root: Path, *, remove_root: bool) -> None:
    """Remove an archive this command started when nothing got into it.

    A first ``snapshot`` that fails (refused address, typo, server down)
    must not leave an empty archive for ``verify`` to call OK. Only the
    files an empty archive consists of are removed, and only when the index
    holds no snapshot and no source; anything else keeps the directory.
    """
    import sqlite3

    index = root / "index.sqlite3"
    try:
        with sqlite3.connect(f"file:{index}?mode=ro", uri=True) as conn:
            used = any(
                conn.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone()
                for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
                if table in ("snapshots", "sources", "log_leaves")
            )
        conn.close()
    except sqlite3.Error:
        return
    if used:
        return
    for name in ("index.sqlite3", "index.sqlite3-wal", "index.sqlite3-shm"):
        (root / name).unlink(missing_ok=True)
    for directory in (root / "warcs", *([root] if remove_root else [])):
        try:
            directory.rmdir()  # only when empty
        except OSError:
            pass
    log.info("removed the empty archive at %s that this failed snapshot had started", root)


class OneLineFormatter(logging.Formatter):
    """Log lines whose message cannot forge another line: control characters
    (a CRLF in a URL, an escape sequence in a server's reason) are escaped."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        record.message = one_line(record.message)
        return super().formatMessage(record)


def _setup_logging(verbose: int, err: TextIO) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    handler = logging.StreamHandler(err)
    handler.setFormatter(OneLineFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])
    # trafilatura logs ERROR for pages it merely finds empty; archiver falls back itself.
    logging.getLogger("trafilatura").setLevel(logging.DEBUG if verbose >= 2 else logging.CRITICAL)


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        words = list(sys.argv[1:] if argv is None else argv)
        command = command_word(words)
        parser = build_parser(command)
        if not words:
            out.write(parser.format_help())
            raise UsageError("no command given; pick one of the commands above")
        args = parser.parse_args(argv)
        _setup_logging(args.verbose, err)
        if args.command == "demo":
            from archiver.cli import demo

            return demo.run(args, out, err)
        commands, no_archive = _handlers(args.command)
        if args.command in no_archive:
            return no_archive[args.command](load_settings(args), args, out, err)
        if args.command == "verify" and args.wacz is not None:
            from archiver.cli.audit import cmd_verify_wacz

            return cmd_verify_wacz(args, out)  # the auditor holding a WACZ has no archive
        from archiver.archive import Archive

        settings = load_settings(args)
        existed = index_exists(settings.storage)
        if args.command not in CREATES_ARCHIVE and not existed:
            raise NotFoundError(f"no archive at {settings.data_path} (wrong --data-dir, or nothing captured yet)")
        first = args.command == "snapshot" and not existed
        with first_capture(settings.data_path) if first else contextlib.nullcontext():
            with Archive(settings) as archive:
                handler = commands[args.command]
                return handler(archive, args, out, err)
    except UsageError as exc:
        err.write(f"archiver: error: {one_line(exc)}\n")
        return EXIT_USAGE
    except ArchiverError as exc:
        err.write(f"archiver: {one_line(exc)}\n")
        return EXIT_FAIL
    except KeyboardInterrupt:
        err.write("archiver: interrupted\n")
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:  # the edge: never a traceback for the user
        if os.environ.get("ARCHIVER_DEBUG"):
            raise
        err.write(f"archiver: internal error: {type(exc).__name__}: {one_line(str(exc).splitlines()[0] if str(exc) else '')}\n")
        return EXIT_FAIL


def entry() -> None:
    sys.exit(main())

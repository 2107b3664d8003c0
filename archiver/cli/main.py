"""The command line: parse, build the Archive once from config, call the
library, turn errors into exit codes (0 ok, 1 failure/problems, 2 usage).

Errors are one line on stderr; a traceback only with ARCHIVER_DEBUG=1.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable, Sequence, TextIO

from archiver import __version__
from archiver.cli.common import EXIT_FAIL, EXIT_OK, EXIT_USAGE, load_settings
from archiver.errors import ArchiverError, NotFoundError, UsageError

log = logging.getLogger(__name__)



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

    s = sub.add_parser("demo", help="the whole story offline, on 127.0.0.1")
    s.add_argument("--keep", action="store_true", help="keep the demo archive directory")

    for module in _command_modules():
        module.register(sub)
    return p


def _command_modules() -> list[Any]:
    from archiver.cli import audit, daemon, reading, web

    return [reading, audit, daemon, web]


def _handlers() -> tuple[dict[str, Callable[..., int]], dict[str, Callable[..., int]]]:
    """(commands that get the Archive, commands that build what they need)."""
    commands: dict[str, Callable[..., int]] = {}
    no_archive: dict[str, Callable[..., int]] = {}
    for module in _command_modules():
        commands.update(getattr(module, "COMMANDS", {}))
        no_archive.update(getattr(module, "NO_ARCHIVE", {}))
    return commands, no_archive


# Commands that may start a new archive; the others only read or repair one,
# and a mistyped --data-dir must not leave an empty archive behind.
CREATES_ARCHIVE = frozenset({"snapshot", "watch", "watch-feed", "daemon", "keys", "sources"})



def _setup_logging(verbose: int, err: TextIO) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, stream=err, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # trafilatura logs ERROR for pages it merely finds empty; archiver falls back itself.
    logging.getLogger("trafilatura").setLevel(logging.DEBUG if verbose >= 2 else logging.CRITICAL)


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        args = build_parser().parse_args(argv)
        _setup_logging(args.verbose, err)
        if args.command == "demo":
            from archiver.cli import demo

            return demo.run(args, out, err)
        commands, no_archive = _handlers()
        if args.command in no_archive:
            return no_archive[args.command](load_settings(args), args, out, err)
        from archiver.archive import Archive

        settings = load_settings(args)
        if args.command not in CREATES_ARCHIVE and not (settings.data_path / "index.sqlite3").exists():
            raise NotFoundError(f"no archive at {settings.data_path} (wrong --data-dir, or nothing captured yet)")
        with Archive(settings) as archive:
            handler = commands[args.command]
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

"""What every command module shares: exit codes, JSON output, settings from
the global options, and the one-line rendering of a figure change."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, TextIO

from archiver.config import Settings

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def emit_json(obj: Any, out: TextIO) -> None:
    out.write(json.dumps(obj, ensure_ascii=False) + "\n")



def figure_line(f: dict[str, Any]) -> str:
    from archiver.changes.render import figure_line as line

    return line(f)



def reader_trust_option(s: Any) -> None:
    """``--public-key`` on a command that shows snapshots (readers anchor on it instead of ``keys/``)."""
    s.add_argument("--public-key", type=Path, action="append", metavar="PEM",
                   help="show only what this key (or a key it enrolled) signed, as verify --public-key; "
                        "default: the keys this machine's key directory holds (repeatable)")


def pin_reader_keys(archive: Any, args: argparse.Namespace) -> None:
    """An auditor's ``--public-key``: readers trust only those keys (signedreads.py)."""
    if getattr(args, "public_key", None):
        from archiver.audit.judge import load_public_keys

        archive.reader_keys = load_public_keys(args.public_key)


def verify_summary(report: dict[str, Any]) -> str:
    """The one summary line of a verification, the same in the CLI and the demo."""
    status = "OK" if report["ok"] else f"{len(report['problems'])} PROBLEM(S)"
    return f"{status}: {report['checked']} snapshot(s) checked"


def load_settings(args: argparse.Namespace) -> Settings:
    from archiver import config

    settings = config.load(args.config)
    if args.data_dir:
        settings.archive.data_dir = args.data_dir
    return settings



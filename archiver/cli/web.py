"""`archiver serve` (the web audit desk) and `archiver tokens` (API tokens)."""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone
from typing import Any, TextIO

from archiver.cli.common import EXIT_OK, pin_reader_keys, reader_trust_option
from archiver.config import Settings
from archiver.errors import NotFoundError


def register(sub: Any) -> None:
    s = sub.add_parser("serve", help="the web audit desk, JSON API, feeds, Memento and log tiles")
    s.add_argument("--bind", metavar="HOST:PORT", help="where to listen (default web.bind, 127.0.0.1:8080)")
    s.add_argument("--allow-writes", action="store_true",
                   help="allow snapshot/watch/unwatch over HTTP (each needs a write token)")
    reader_trust_option(s)

    s = sub.add_parser("tokens", help="API tokens for `archiver serve` (shown once, stored as hashes)")
    ts = s.add_subparsers(dest="tokens_command", metavar="ACTION")
    ts.required = True
    c = ts.add_parser("create", help="create a token and print it (the only time it is shown)")
    c.add_argument("name", metavar="NAME", help="a label for who holds the token (e.g. desk-laptop)")
    c.add_argument("--scope", choices=["read", "write"], default="read",
                   help="write: may snapshot/watch/unwatch (default: read)")
    ts.add_parser("list", help="token names, scopes and creation times (never the tokens)")
    r = ts.add_parser("revoke", help="delete a token")
    r.add_argument("name", metavar="NAME", help="the token's label, as `tokens list` shows it")


def cmd_serve(archive: Any, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from archiver.web.server import serve

    pin_reader_keys(archive, args)
    serve(archive, args.bind or archive.settings.web.bind, allow_writes=args.allow_writes, out=out, err=err)
    return EXIT_OK


def cmd_tokens(settings: Settings, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from archiver.web.tokens import TokenStore

    root = settings.data_path
    root.mkdir(parents=True, exist_ok=True)
    store = TokenStore(settings.key_path, lambda: datetime.now(timezone.utc), legacy_dir=root)
    if args.tokens_command == "create":
        token = store.create(args.name, args.scope)
        out.write(token + "\n")
        err.write(f"token {args.name!r} ({args.scope}) created; it is shown only now, keep it safe\n")
    elif args.tokens_command == "list":
        out.write(json.dumps(store.to_json()) + "\n")
    elif not store.revoke(args.name):
        raise NotFoundError(f"no token named {args.name!r}")
    else:
        out.write(f"revoked {args.name}\n")
    return EXIT_OK


COMMANDS = {"serve": cmd_serve}
NO_ARCHIVE = {"tokens": cmd_tokens}

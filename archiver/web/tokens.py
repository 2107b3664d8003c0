"""API tokens for ``archiver serve``: created once, shown once, stored as hashes.

A token is 32 random bytes (base64url) with an ``arc_`` prefix. Only its
SHA-256 is stored: the token has full entropy, so a slow password hash would
add nothing, and a leaked ``tokens.json`` reveals no usable token. The file
is written 0600 in ``keys/`` (the 0700 directory of the archive's private
key), atomically, and never through a symlink: whoever can write the data
directory but not ``keys/`` cannot add a token of their own. A
``tokens.json`` in the data directory (where versions before kept it) is
moved into ``keys/`` once, when ``keys/`` has none; after that it is never
read.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import secrets
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from archiver.errors import ConfigError, UsageError

log = logging.getLogger(__name__)

TOKENS_NAME = "tokens.json"
SCOPES = ("read", "write")
PREFIX = "arc_"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MAX_FILE_BYTES = 1_048_576


@dataclass(frozen=True)
class TokenRecord:
    name: str
    scope: str
    sha256: str
    created_at: str


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class TokenStore:
    """The tokens file of one archive."""

    def __init__(self, key_dir: Path, clock: Callable[[], datetime], *, legacy_dir: Path | None = None) -> None:
        """``key_dir``: the archive's ``keys/``; ``legacy_dir``: the data
        directory, where an older version kept the file (moved once)."""
        self.directory = Path(key_dir)
        self.path = self.directory / TOKENS_NAME
        self.legacy = Path(legacy_dir) / TOKENS_NAME if legacy_dir is not None else None
        self.clock = clock

    def load(self) -> list[TokenRecord]:
        if self.legacy is not None and os.path.lexists(self.legacy):
            self._move_legacy()
        return self._read(self.path)

    def _read(self, path: Path) -> list[TokenRecord]:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise ConfigError(f"cannot read {path} (a symlink is refused): {exc.strerror}") from exc
        with os.fdopen(fd, "rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            raise ConfigError(f"{path} is larger than {MAX_FILE_BYTES} bytes")
        try:
            doc = json.loads(data)
            return [TokenRecord(**{k: str(t[k]) for k in TokenRecord.__dataclass_fields__}) for t in doc["tokens"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{path} is not a valid tokens file: {exc}") from exc

    def _move_legacy(self) -> None:
        """The data directory's tokens file, from before tokens lived in keys/:
        moved once (when keys/ has none), then only ever reported."""
        assert self.legacy is not None
        if os.path.lexists(self.path):
            log.warning("%s is not read (tokens live in %s); remove it", self.legacy, self.path)
            return
        self._save(self._read(self.legacy))
        self.legacy.unlink()
        log.warning("tokens moved from %s to %s", self.legacy, self.path)

    def create(self, name: str, scope: str) -> str:
        """Add a token; returns it (the only time it exists in clear)."""
        if not _NAME.fullmatch(name):
            raise UsageError("token name: letters, digits, '.', '_' and '-' (at most 64)")
        if scope not in SCOPES:
            raise UsageError(f"token scope must be one of {', '.join(SCOPES)}")
        records = self.load()
        if any(r.name == name for r in records):
            raise UsageError(f"a token named {name!r} exists; revoke it first")
        token = PREFIX + secrets.token_urlsafe(32)
        records.append(TokenRecord(name, scope, _hash(token), self.clock().isoformat()))
        self._save(records)
        log.info("token %s (%s) created", name, scope)
        return token

    def revoke(self, name: str) -> bool:
        records = self.load()
        kept = [r for r in records if r.name != name]
        if len(kept) == len(records):
            return False
        self._save(kept)
        return True

    def check(self, token: str) -> TokenRecord | None:
        """The record of a presented token, compared in constant time."""
        digest = _hash(token)
        found = None
        for r in self.load():
            if hmac.compare_digest(r.sha256, digest):
                found = r
        return found

    def _save(self, records: list[TokenRecord]) -> None:
        from archiver.provenance.keyfiles import KeyDir

        KeyDir(self.directory, None).ensure()  # 0700, ours, not a symlink (SigningError otherwise)
        data = json.dumps({"tokens": [asdict(r) for r in records]}, indent=2).encode("utf-8")
        tmp = self.path.with_name(f".{TOKENS_NAME}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            if self.path.is_symlink():
                raise ConfigError(f"{self.path} is a symlink; refusing to write tokens through it")
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        dfd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def to_json(self) -> list[dict[str, Any]]:
        return [{"name": r.name, "scope": r.scope, "created_at": r.created_at} for r in self.load()]

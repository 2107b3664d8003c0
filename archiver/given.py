"""Files the operator names -- public keys, URL lists, sources and settings
files, checkpoint notes, TSA roots -- and the small files of the archive's own
directory (keyring, quarantine list, timestamp tokens, status), read whole,
but bounded.

Why one reader: each of these was read its own way, some without a bound
(a URL list or a checkpoint note of any size was read whole), some by a
plain ``open`` that waits for ever on a FIFO, and a file that is not UTF-8
surfaced as an internal error. Here every such file must be a regular file
(opened non-blocking, so a FIFO is refused at once), of at most ``limit``
bytes, and text files must be UTF-8; anything else is one line naming the
file. A symlink is followed: the operator names the path, unlike a file of
``keys/``, which someone who cannot read ``keys/`` could plant
(provenance/files.py refuses those). The archive's own files are read the
same way because whoever can write its directory could put a FIFO or a
gigabyte in their place: verify must neither wait for ever nor fill memory.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from archiver.errors import ArchiverError, StoreError, UsageError
from store.warcfiles import open_regular

MAX_KEY_BYTES = 64 * 1024  # a PEM file of public keys (export-public writes rotated ones too)
MAX_NOTE_BYTES = 64 * 1024  # a signed checkpoint note
MAX_LIST_BYTES = 64 * 1024 * 1024  # a URL list, sources or settings file: 100,000 sources are about 10 MB
MAX_CERT_BYTES = 4 * 1024 * 1024  # a bundle of trusted certificates (certifi's is about 300 KB)
MAX_OWN_BYTES = 4 * 1024 * 1024  # a keyring, a timestamp token or its metadata, the status file


def read_given(source: Path | str, what: str, limit: int, error: type[ArchiverError] = UsageError) -> bytes:
    """The bytes of the file ``source`` names (``what`` it is, for messages);
    ``error`` (one line) when it cannot be read, is not a regular file or
    holds over ``limit`` bytes. ``-`` reads standard input, within the same bound."""
    if str(source) == "-":
        stdin = getattr(sys.stdin, "buffer", None)
        data = stdin.read(limit + 1) if stdin is not None else sys.stdin.read(limit + 1).encode("utf-8")
    else:
        try:
            with open_regular(source) as f:  # non-blocking open: a FIFO is refused at once
                data = f.read(limit + 1)
        except StoreError as exc:
            raise error(f"cannot read {what} {source}: not a regular file") from exc
        except OSError as exc:
            raise error(f"cannot read {what} {source}: {exc.strerror or exc}") from exc
    if len(data) > limit:
        raise error(f"{source} is not a {what} (over {limit} bytes)")
    return data


def read_given_text(source: Path | str, what: str, limit: int, error: type[ArchiverError] = UsageError) -> str:
    """:func:`read_given`, decoded as UTF-8 (a byte order mark is passed over)."""
    data = read_given(source, what, limit, error)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(f"{what} {source} is not UTF-8 text (byte {exc.start})") from exc


def read_given_keys(source: Path | str) -> bytes:
    """A PEM file of public keys the operator names (``--public-key``, ``keys
    pin-root``, ``keys keep-rotated``)."""
    return read_given(source, "public key file", MAX_KEY_BYTES)


def read_own(path: Path | str, what: str, limit: int = MAX_OWN_BYTES,
             error: type[ArchiverError] = UsageError) -> bytes | None:
    """A file of the archive's own directory, as :func:`read_given` reads it;
    None when there is none."""
    if not os.path.lexists(path):
        return None
    return read_given(path, what, limit, error)


def read_certificates(paths: list[str]) -> list[bytes] | None:
    """The PEM bundles ``signing.tsa_roots`` names (None: none configured)."""
    from archiver.errors import ConfigError

    return [read_given(p, "certificate file", MAX_CERT_BYTES, ConfigError) for p in paths] or None

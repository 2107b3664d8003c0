"""Exceptions raised by the service. One root: :class:`ArchiverError`."""

from __future__ import annotations

import re
from typing import Any

from store.errors import ArchiverError, CorruptRecordError, StoreError

__all__ = [
    "ArchiverError",
    "StoreError",
    "CorruptRecordError",
    "ConfigError",
    "UsageError",
    "CaptureError",
    "AddressRefused",
    "LimitExceeded",
    "FetchTimeout",
    "ExtractError",
    "SigningError",
    "LedgerError",
    "VerificationError",
    "NotVerified",
    "NotFoundError",
    "DaemonError",
    "AuthError",
    "ForbiddenError",
    "one_line",
]

# C0 and C1 controls, DEL, and the Unicode line/paragraph separators: anything
# that could break a one-line message or forge a line in a log.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\r": "\\r", "\n": "\\n", "\t": "\\t"}


def one_line(text: object) -> str:
    """``text`` with every control character escaped (CR as ``\\r``, others as ``\\xNN``)."""
    return _CONTROLS.sub(lambda m: _NAMED.get(m.group(), f"\\x{ord(m.group()):02x}" if ord(m.group()) < 256
                                              else f"\\u{ord(m.group()):04x}"), str(text))


class ConfigError(ArchiverError):
    """A setting or a sources file is invalid."""


class UsageError(ArchiverError):
    """The command line asks for something impossible (exit code 2)."""


class NotFoundError(ArchiverError):
    """A URL or snapshot id the user named is not in the archive."""


class CaptureError(ArchiverError):
    """Fetching a URL failed: network error, bad URL, refused by policy."""


class AddressRefused(CaptureError):
    """The URL resolves to an address the policy forbids (loopback, private...)."""


class LimitExceeded(CaptureError):
    """A size, redirect or time limit was reached."""


class FetchTimeout(LimitExceeded):
    """Connect, read or total timeout."""


class ExtractError(ArchiverError):
    """Article text could not be extracted."""


class SigningError(ArchiverError):
    """Keys could not be created, loaded or used."""


class LedgerError(ArchiverError):
    """The Merkle log is inconsistent or a proof cannot be built."""


class VerificationError(ArchiverError):
    """An audit check failed; carries the problems found."""

    def __init__(self, message: str, problems: list[Any] | None = None) -> None:
        super().__init__(message)
        self.problems = list(problems or [])


class NotVerified(VerificationError):
    """A snapshot a reader was asked for does not verify under the keys this
    machine trusts (unsigned, signed by another key, or its row differs from
    its signed manifest): nothing of it is shown (CLI exit 1, web 409)."""


class DaemonError(ArchiverError):
    """The daemon cannot start (another one runs) or stopped badly."""


class LeaseLost(DaemonError):
    """A shared worker no longer holds the lease on the source it captured
    (it was cut off and another worker took over): its capture is not signed."""


class AuthError(ArchiverError):
    """A request needs a valid token (HTTP 401)."""


class ForbiddenError(ArchiverError):
    """The token or the server's mode does not allow this (HTTP 403)."""

"""Credentials in a URL (``https://user:password@host/``) are used, never recorded.

The URL an archive records -- WARC-Target-URI, the signed manifest, the
index, WACZ pages, logs, error messages -- is the URL without its userinfo.
The credentials go out as HTTP Basic auth to the URL's own origin only; the
recorded request shows that header redacted, and the manifest says that
credentials were used and for which user name, never the password.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

REDACTED = "[redacted]"
_AUTH_LINE = re.compile(rb"(?im)^(authorization:[ \t]*basic)[ \t]+[^\r\n]*")


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str

    def __repr__(self) -> str:  # never the password, not even in a debug log
        return f"Credentials(username={self.username!r}, password={REDACTED!r})"

    def header(self) -> str:
        token = f"{self.username}:{self.password}".encode("utf-8")
        return "Basic " + base64.b64encode(token).decode("ascii")

    def public(self) -> dict[str, Any]:
        """What the manifest records: the scheme and the user name."""
        return {"scheme": "basic", "username": self.username}

    @staticmethod
    def redact(request_bytes: bytes) -> bytes:
        """The request as sent, with the Basic credentials replaced."""
        return _AUTH_LINE.sub(rb"\1 " + REDACTED.encode("ascii"), request_bytes, count=1)


def split_userinfo(url: str) -> tuple[str, Credentials | None]:
    """``url`` without ``user:password@``, and the credentials it carried."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return _strip_textually(url), None
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    clean = urlunsplit((parts.scheme, hostport, parts.path, parts.query, parts.fragment))
    if not user and not password:
        return clean, None
    return clean, Credentials(unquote(user), unquote(password))


def strip_userinfo(url: str) -> str:
    return split_userinfo(url)[0]


def _strip_textually(url: str) -> str:
    """For a URL urlsplit refuses: drop anything between ``//`` and the last ``@`` of the authority."""
    return re.sub(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)[^/?#]*@", r"\1", url)


def same_origin(a: str, b: str) -> bool:
    """Scheme, host and port equal (the origin credentials are sent to)."""
    def origin(url: str) -> tuple[str, str | None, int | None]:
        p = urlsplit(url)
        return p.scheme, p.hostname, p.port or {"http": 80, "https": 443}.get(p.scheme)

    return origin(a) == origin(b)

"""The one vetted outbound HTTP path: captures, requisites, feeds, webhooks, TSAs.

Every request here

1. resolves the name once, with a deadline, and vets *every* answer with the
   :class:`AddressPolicy` (one forbidden answer refuses the name: a rebinding
   resolver mixes them);
2. connects to a vetted address -- never resolves again -- while the name
   stays in the Host header, the TLS SNI and the certificate check;
3. reads the peer address and the TLS session (version, cipher, the
   certificate chain) from the socket the moment it is connected, so they are
   known whatever the server does with the connection afterwards
   (``Connection: close``, HTTP/1.0);
4. runs under one total deadline that a shared watchdog enforces on the
   socket itself, however slowly the bytes come.

It is built on urllib3's connection class, which warcio has patched to
record the exact bytes of the exchange when a capture asks it to.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import socket
import ssl
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping
from urllib.parse import urlsplit

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.util.ssl_match_hostname import CertificateError
from warcio import capture_http as _warcio_capture  # noqa: F401 - patch http.client before urllib3 is used

from archiver.capture.addresses import AddressPolicy, parse_ip
from archiver.capture.deadline import WATCHDOG, Deadline, Resolver, Watchdog, resolve, system_resolver
from archiver.capture.userinfo import strip_userinfo
from archiver.errors import AddressRefused, CaptureError, FetchTimeout, LimitExceeded

log = logging.getLogger(__name__)

CHUNK = 16 * 1024


@dataclass(frozen=True)
class TLSInfo:
    """The TLS session of a connection, as negotiated (``chain``: leaf first)."""

    version: str | None
    cipher: str | None
    cert_sha256: str | None
    cert_pem: str | None
    chain: tuple[tuple[str, str], ...] = ()  # (sha256 hex, PEM) per certificate


@dataclass(frozen=True)
class Peer:
    """Where a connection went: the vetted address it connected to, and its TLS."""

    ip: str
    port: int
    tls: TLSInfo | None


@dataclass
class _Pin:
    """What a pinned connection may connect to, and where it reports back."""

    addresses: list[str]
    policy: AddressPolicy
    deadline: Deadline
    watchdog: Watchdog
    what: str
    url: str
    peer: Peer | None = None
    token: int | None = None


class _PinnedMixin:
    """Connects to the vetted addresses of its pin, never to a fresh DNS answer."""

    _pin: _Pin
    host: str
    port: int
    timeout: Any
    sock: Any

    def _new_conn(self) -> socket.socket:
        pin = self._pin
        last: OSError | None = None
        for ip in pin.addresses:
            family = socket.AF_INET6 if ":" in ip else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            pin.token = pin.watchdog.arm(sock, pin.deadline)
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.settimeout(min(float(self.timeout), pin.deadline.remaining(pin.what)))
                sock.connect((ip, self.port))
                peer_ip = str(sock.getpeername()[0])
                if not _same_address(peer_ip, ip):  # cannot happen for an IP literal; refuse rather than trust
                    raise AddressRefused(f"{pin.what}: connected to {peer_ip}, not the vetted {ip}")
                pin.policy.check_ip(peer_ip, pin.what)
                pin.peer = Peer(ip, self.port, None)
                return sock
            except (OSError, CaptureError) as exc:
                pin.watchdog.disarm(pin.token)
                sock.close()
                if isinstance(exc, CaptureError):
                    raise
                if pin.deadline.expired:
                    raise FetchTimeout(f"{pin.url}: total timeout of {pin.deadline.budget:g}s reached") from exc
                last = exc  # refused, unreachable or timed out: try the next vetted address
                log.debug("connect to %s at %s failed: %s", pin.what, ip, exc)
        if isinstance(last, socket.timeout):
            raise FetchTimeout(f"connect timeout after {float(self.timeout):g}s: {pin.url}") from last
        raise CaptureError(f"cannot fetch {pin.url}: {_short(last) if last else 'no address'}") from last


def _same_address(a: str, b: str) -> bool:
    try:
        return parse_ip(a) == parse_ip(b)
    except ValueError:
        return False


class PinnedHTTPConnection(_PinnedMixin, HTTPConnection):
    def __init__(self, *args: Any, pin: _Pin, **kwargs: Any) -> None:
        self._pin = pin
        super().__init__(*args, **kwargs)


class PinnedHTTPSConnection(_PinnedMixin, HTTPSConnection):
    def __init__(self, *args: Any, pin: _Pin, **kwargs: Any) -> None:
        self._pin = pin
        super().__init__(*args, **kwargs)

    def connect(self) -> None:
        super().connect()  # TLS to self.host: SNI and certificate check use the name
        if isinstance(self.sock, ssl.SSLSocket) and self._pin.peer is not None:
            peer = self._pin.peer
            self._pin.peer = Peer(peer.ip, peer.port, tls_info(self.sock))


def tls_info(sock: ssl.SSLSocket) -> TLSInfo:
    """Version, cipher and certificate chain of a connected TLS socket."""
    der = sock.getpeercert(binary_form=True)
    cipher = sock.cipher()
    chain = tuple((hashlib.sha256(c).hexdigest(), ssl.DER_cert_to_PEM_cert(c)) for c in _chain_der(sock))
    return TLSInfo(
        version=sock.version(),
        cipher=cipher[0] if cipher else None,
        cert_sha256=hashlib.sha256(der).hexdigest() if der else None,
        cert_pem=ssl.DER_cert_to_PEM_cert(der) if der else None,
        chain=chain,
    )


def _chain_der(sock: ssl.SSLSocket) -> list[bytes]:
    """The verified chain, leaf first (public API from Python 3.13, private before)."""
    getter = getattr(sock, "get_verified_chain", None)
    if getter is not None:
        return [bytes(c) for c in getter()]
    sslobj = getattr(sock, "_sslobj", None)
    if sslobj is None or not hasattr(sslobj, "get_verified_chain"):
        return []
    try:
        return [c.public_bytes(2) for c in (sslobj.get_verified_chain() or [])]  # 2: _ssl.ENCODING_DER
    except (ValueError, ssl.SSLError):
        return []


@dataclass
class Exchange:
    """An open response: status and headers read, body still on the wire."""

    url: str
    response: Any  # urllib3.response.HTTPResponse
    peer: Peer
    request_headers: dict[str, str]
    _conn: HTTPConnection
    _pin: _Pin
    closed: bool = field(default=False)

    @property
    def status(self) -> int:
        return int(self.response.status)

    @property
    def headers(self) -> dict[str, str]:
        """Response headers, lower-case names (repeated ones joined by commas)."""
        h = self.response.headers
        return {k.lower(): h[k] for k in h}  # h[k] joins a repeated header's values

    def chunks(self) -> Iterator[bytes]:
        """The body as sent (transfer-encoding removed, content-encoding kept)."""
        got = 0
        try:
            for chunk in self.response.stream(CHUNK, decode_content=False):
                got += len(chunk)
                self._check_deadline()
                yield chunk
        except (urllib3.exceptions.ReadTimeoutError, socket.timeout) as exc:
            self._check_deadline(exc)
            raise FetchTimeout(f"{self.url}: body stalled (no data within the read timeout)") from exc
        except (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError) as exc:
            self._check_deadline(exc)
            raise CaptureError(f"{self.url}: connection broken after {got} body bytes: {_short(exc)}") from exc
        self._check_deadline()  # a shut-down socket ends an unframed body "cleanly"

    def read(self, limit: int, *, truncate: bool = False) -> bytes:
        """At most ``limit`` body bytes; beyond it LimitExceeded, or (``truncate``) stop reading."""
        out = bytearray()
        for chunk in self.chunks():
            out += chunk
            if len(out) > limit:
                if truncate:
                    return bytes(out[:limit])
                raise LimitExceeded(f"{self.url}: body exceeds the {limit}-byte cap")
        return bytes(out)

    def _check_deadline(self, cause: BaseException | None = None) -> None:
        pin = self._pin
        if (pin.token is not None and pin.watchdog.fired(pin.token)) or pin.deadline.expired:
            raise FetchTimeout(f"{self.url}: total timeout of {pin.deadline.budget:g}s reached") from cause

    def close(self) -> None:
        """Release the connection (never reused) and the watchdog."""
        if self.closed:
            return
        self.closed = True
        try:
            self.response.close()
        finally:
            self._conn.close()
            if self._pin.token is not None:
                self._pin.watchdog.disarm(self._pin.token)

    def __enter__(self) -> "Exchange":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class Timeouts:
    """Per-connect and per-read bounds inside the total deadline."""

    connect: float = 10.0
    read: float = 30.0


class Outbound:
    """Opens vetted, deadline-bound HTTP(S) exchanges; one instance is shared."""

    def __init__(
        self,
        policy: AddressPolicy,
        *,
        ca_bundle: str | bool = True,
        resolver: Resolver = system_resolver,
        watchdog: Watchdog = WATCHDOG,
    ) -> None:
        self.policy = policy
        self.ca_bundle = ca_bundle
        self.resolver = resolver
        self.watchdog = watchdog

    def vet(self, host: str, port: int, deadline: Deadline, timeout: float, what: str) -> list[str]:
        """Every DNS answer for ``host``, each allowed by the policy."""
        addresses = resolve(host, port, min(timeout, deadline.remaining(host)), self.resolver)
        for ip in addresses:
            self.policy.check_ip(ip, what if what == host else f"{what} ({host})")
        return addresses

    def open(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        deadline: Deadline,
        timeouts: Timeouts = Timeouts(),
        body: bytes | None = None,
    ) -> Exchange:
        """Send the request and read the response head; the body is left to the caller.

        Raises CaptureError (AddressRefused, FetchTimeout, LimitExceeded) on failure.
        """
        if "@" in url:  # a webhook's user:password@ is never sent from here, nor put in an error or a log line
            url = strip_userinfo(url)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise CaptureError(f"not an http(s) URL with a host: {url!r}")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as exc:
            raise CaptureError(f"malformed URL {url!r}: {exc}") from exc
        host = parts.hostname
        addresses = self.vet(host, port, deadline, timeouts.connect, host)
        pin = _Pin(addresses, self.policy, deadline, self.watchdog, host, url)
        conn = self._connection(parts.scheme, host, port, pin, timeouts.connect)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        sent = {k: v for k, v in headers.items()}
        try:
            conn.connect()
            assert pin.peer is not None  # set by _new_conn
            conn.timeout = min(timeouts.read, deadline.remaining(url))  # per-read bound; the watchdog does the total
            conn.request(method, target, body=body, headers=sent, preload_content=False, decode_content=False)
            response = conn.getresponse()
        except CaptureError:
            self._abandon(conn, pin)
            raise
        except (ssl.SSLError, urllib3.exceptions.SSLError, CertificateError) as exc:
            raise self._fail(conn, pin, url, CaptureError(f"TLS error for {url}: {_short(exc)}")) from exc
        except (socket.timeout, urllib3.exceptions.TimeoutError) as exc:
            raise self._fail(conn, pin, url, FetchTimeout(f"no response within {timeouts.read:g}s: {url}")) from exc
        except (OSError, http.client.HTTPException, urllib3.exceptions.HTTPError) as exc:
            raise self._fail(conn, pin, url, CaptureError(f"cannot fetch {url}: {_short(exc)}")) from exc
        return Exchange(url, response, pin.peer, sent, conn, pin)

    def _connection(self, scheme: str, host: str, port: int, pin: _Pin, connect_timeout: float) -> HTTPConnection:
        if scheme == "http":
            return PinnedHTTPConnection(host, port, timeout=connect_timeout, pin=pin)
        ca = self.ca_bundle
        if ca is False:
            return PinnedHTTPSConnection(host, port, timeout=connect_timeout, pin=pin, cert_reqs="CERT_NONE")
        if ca is True:
            import certifi

            ca = certifi.where()
        return PinnedHTTPSConnection(host, port, timeout=connect_timeout, pin=pin, cert_reqs="CERT_REQUIRED", ca_certs=ca)

    @classmethod
    def _fail(cls, conn: HTTPConnection, pin: _Pin, url: str, other: CaptureError) -> CaptureError:
        """The error to raise: a timeout when the deadline was the cause, else ``other``."""
        fired = pin.token is not None and pin.watchdog.fired(pin.token)
        cls._abandon(conn, pin)
        if fired or pin.deadline.expired:
            return FetchTimeout(f"{url}: total timeout of {pin.deadline.budget:g}s reached")
        return other

    @staticmethod
    def _abandon(conn: HTTPConnection, pin: _Pin) -> None:
        conn.close()
        if pin.token is not None:
            pin.watchdog.disarm(pin.token)


def _short(exc: BaseException | None) -> str:
    text = str(exc).splitlines()[0] if exc is not None and str(exc) else type(exc).__name__
    return text[:300]


__all__ = ["Exchange", "Outbound", "Peer", "TLSInfo", "Timeouts"]

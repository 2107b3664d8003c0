"""One URL -> the raw HTTP exchange(s) of every hop, within limits.

requests runs under warcio's recorder, which sees the exact bytes on the wire
(request as sent, response with transfer-encoding intact). The recorder is
thread-local and binds to a connection when it is created, so every capture
uses a fresh ``requests.Session`` (a reused pooled connection would record
nothing, or into another capture). Redirects are followed by hand so the
address policy and the limits apply to every hop.
"""

from __future__ import annotations

import hashlib
import logging
import socket
import ssl
import threading
import time
import zlib
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Mapping
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
from warcio import (
    capture_http as _warcio_capture,  # must patch http.client before urllib3 subclasses it
)
from warcio.capture_http import (
    RecordingHTTPConnection,
    RecordingStream,
    RequestRecorder,
)

from archiver.capture.addresses import AddressPolicy
from archiver.errors import CaptureError, FetchTimeout, LimitExceeded

log = logging.getLogger(__name__)

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


def _in_daemon_thread(fn: Callable[[], Any], timeout: float) -> Any:
    """Run ``fn`` with a deadline, in a daemon thread so a hung call never
    blocks the caller or the process's exit (getaddrinfo has no timeout)."""
    future: Future[Any] = Future()

    def run() -> None:
        try:
            future.set_result(fn())
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller
            future.set_exception(exc)

    threading.Thread(target=run, name="resolve", daemon=True).start()
    return future.result(timeout=timeout)
_CHUNK = 16 * 1024


def _readinto_exact(self: RecordingStream, buff) -> int:  # type: ignore[no-untyped-def]
    """warcio records the whole buffer on ``readinto``; record only what was read."""
    res = self.fp.readinto(buff)
    if res:
        self.recorder.write_response(memoryview(buff)[:res])
    return res


RecordingStream.readinto = _readinto_exact  # type: ignore[method-assign]


@dataclass(frozen=True)
class CaptureLimits:
    """Every bound a capture obeys; see config/archiver.toml for the meaning."""

    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    total_timeout: float = 120.0
    max_body_bytes: int = 50 * 1024 * 1024  # raw, as received
    max_decoded_bytes: int = 100 * 1024 * 1024  # after content-encoding
    max_redirects: int = 10


@dataclass(frozen=True)
class TLSInfo:
    version: str | None
    cipher: str | None
    cert_sha256: str | None
    cert_pem: str | None


@dataclass
class Hop:
    """One request/response exchange with its exact bytes."""

    url: str
    started_at: datetime
    ended_at: datetime
    request_bytes: bytes
    response_bytes: bytes
    status: int
    ip: str | None
    tls: TLSInfo | None
    request_headers: dict[str, str]
    response_headers: dict[str, str]
    body: bytes  # entity body with transfer- and content-encoding removed
    payload: bytes  # entity body with transfer-encoding removed (what WARC digests)

    @property
    def payload_sha256(self) -> str:
        return hashlib.sha256(self.payload).hexdigest()


@dataclass
class Capture:
    """What one ``capture(url)`` saw: every hop, the final one last."""

    url: str
    hops: list[Hop] = field(default_factory=list)

    @property
    def final(self) -> Hop:
        return self.hops[-1]

    @property
    def started_at(self) -> datetime:
        return self.hops[0].started_at

    @property
    def ended_at(self) -> datetime:
        return self.hops[-1].ended_at


class _HopRecorder(RequestRecorder):
    """Collects raw hops instead of writing them, so the store decides what to write."""

    def __init__(self) -> None:
        super().__init__(writer=None)
        self.raw: list[tuple[str, bytes, bytes, str | None]] = []

    def start(self) -> None:
        super().start()
        self.warc_headers: dict[str, str] = {}

    def done(self) -> None:
        if not self.started_req:  # type: ignore[has-type]
            return
        try:
            self.request_out.seek(0)
            self.response_out.seek(0)
            self.raw.append(
                (self.url, self.request_out.read(), self.response_out.read(), self.warc_headers.get("WARC-IP-Address"))
            )
        finally:
            self.request_out.close()
            self.response_out.close()
            self.started_req = False


class _Decoder:
    """Incremental content-decoding with a hard cap on output (stops gzip bombs)."""

    def __init__(self, encoding: str, cap: int) -> None:
        enc = encoding.lower().strip()
        self.cap = cap
        self.out = bytearray()
        if enc in ("gzip", "x-gzip"):
            self.z: zlib._Decompress | None = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif enc == "deflate":
            self.z = zlib.decompressobj()
            self._deflate_raw_fallback = True
        else:
            self.z = None
        self.failed = False

    def feed(self, data: bytes) -> None:
        if self.z is None or self.failed:
            self.out += data
        else:
            try:
                room = self.cap - len(self.out) + 1
                self.out += self.z.decompress(data, room)
                if self.z.unconsumed_tail:
                    raise LimitExceeded(f"decoded body exceeds the {self.cap}-byte cap (compressed too well)")
            except zlib.error:
                log.warning("body does not decode as declared; keeping it as received")
                self.failed = True
        if len(self.out) > self.cap:
            raise LimitExceeded(f"decoded body exceeds the {self.cap}-byte cap")


class Capturer:
    """Fetches URLs hop by hop under the address policy and the limits."""

    def __init__(
        self,
        *,
        policy: AddressPolicy,
        limits: CaptureLimits,
        user_agent: str,
        clock: Callable[[], datetime],
        session_factory: Callable[[], requests.Session] = requests.Session,
        ca_bundle: str | bool = True,
        extra_headers: Mapping[str, str] | None = None,
    ) -> None:
        self.policy = policy
        self.limits = limits
        self.user_agent = user_agent
        self.clock = clock
        self.session_factory = session_factory
        self.ca_bundle = ca_bundle
        self.extra_headers = dict(extra_headers or {})
        if not issubclass(urllib3.connection.HTTPConnection, RecordingHTTPConnection):
            raise CaptureError("warcio's recorder is not installed: import archiver before requests/urllib3")

    def capture(self, url: str, headers: Mapping[str, str] | None = None) -> Capture:
        """Fetch ``url`` and every redirect after it; raise CaptureError on any failure."""
        check_url(url)
        deadline = time.monotonic() + self.limits.total_timeout
        capture = Capture(url=url)
        seen: set[str] = set()
        current = url
        while True:
            if current in seen:
                raise LimitExceeded(f"redirect loop: {current} was already visited")
            seen.add(current)
            hop = self._fetch_one(current, deadline, headers or {})
            capture.hops.append(hop)
            location = hop.response_headers.get("location")
            if hop.status not in REDIRECT_STATUSES or not location:
                return capture
            if len(capture.hops) > self.limits.max_redirects:
                raise LimitExceeded(f"more than {self.limits.max_redirects} redirects starting at {url}")
            current = urljoin(current, location.strip())
            check_url(current)

    # -- one hop ----------------------------------------------------------
    def _fetch_one(self, url: str, deadline: float, extra: Mapping[str, str]) -> Hop:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        self._resolve_and_check(parts.hostname or "", port, deadline)
        request_headers = {
            "User-Agent": self.user_agent,
            "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
            "Accept-Encoding": "gzip, deflate",
            **self.extra_headers,
            **dict(extra),
        }
        recorder = _HopRecorder()
        started = self.clock()
        session = self.session_factory()
        session.trust_env = False
        RecordingHTTPConnection.local.recorder = recorder
        try:
            timeout = (self.limits.connect_timeout, min(self.limits.read_timeout, _remaining(deadline, url)))
            try:
                response = session.get(
                    url, headers=request_headers, stream=True, allow_redirects=False, timeout=timeout, verify=self.ca_bundle
                )
            except requests.exceptions.ConnectTimeout as exc:
                raise FetchTimeout(f"connect timeout after {self.limits.connect_timeout}s: {url}") from exc
            except requests.exceptions.ReadTimeout as exc:
                raise FetchTimeout(f"no response within {timeout[1]:.0f}s: {url}") from exc
            except requests.exceptions.SSLError as exc:
                raise CaptureError(f"TLS error for {url}: {_short(exc)}") from exc
            except requests.exceptions.RequestException as exc:
                raise CaptureError(f"cannot fetch {url}: {_short(exc)}") from exc
            try:
                ip, tls = self._peer(response)
                if ip:
                    self.policy.check_ip(ip, url)
                payload, body = self._read_body(response, deadline, url)
            finally:
                response.close()
        finally:
            RecordingHTTPConnection.local.recorder = None
            session.close()
        ended = self.clock()
        if not recorder.raw:
            raise CaptureError(f"nothing was recorded for {url}")
        _, req_bytes, resp_bytes, rec_ip = recorder.raw[-1]
        sent = {k: v for k, v in response.request.headers.items()}
        return Hop(
            url=url,
            started_at=started,
            ended_at=ended,
            request_bytes=req_bytes,
            response_bytes=resp_bytes,
            status=response.status_code,
            ip=ip or rec_ip,
            tls=tls,
            request_headers={k: v if isinstance(v, str) else v.decode("latin-1") for k, v in sent.items()},
            response_headers={k.lower(): v for k, v in response.headers.items()},
            body=body,
            payload=payload,
        )

    def _resolve_and_check(self, host: str, port: int, deadline: float) -> None:
        timeout = min(self.limits.connect_timeout, _remaining(deadline, host))
        # getaddrinfo has no timeout of its own: run it on a shared pool and stop
        # waiting at the deadline (never block on the pool's shutdown).
        try:
            infos = _in_daemon_thread(lambda: socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM), timeout)
        except FutureTimeout as exc:
            raise FetchTimeout(f"DNS lookup of {host} timed out") from exc
        except (socket.gaierror, UnicodeError) as exc:
            raise CaptureError(f"cannot resolve host {host}: {exc}") from exc
        for info in infos:
            self.policy.check_ip(str(info[4][0]), host)

    @staticmethod
    def _peer(response: requests.Response) -> tuple[str | None, TLSInfo | None]:
        conn = getattr(response.raw, "_connection", None) or getattr(response.raw, "connection", None)
        sock = getattr(conn, "sock", None)
        if sock is None:
            return None, None
        try:
            ip = sock.getpeername()[0]
        except OSError:
            ip = None
        tls = None
        if isinstance(sock, ssl.SSLSocket):
            der = sock.getpeercert(binary_form=True)
            cipher = sock.cipher()
            tls = TLSInfo(
                version=sock.version(),
                cipher=cipher[0] if cipher else None,
                cert_sha256=hashlib.sha256(der).hexdigest() if der else None,
                cert_pem=ssl.DER_cert_to_PEM_cert(der) if der else None,
            )
        return ip, tls

    def _read_body(self, response: requests.Response, deadline: float, url: str) -> tuple[bytes, bytes]:
        """Read the entity body under the raw and decoded caps and the total deadline."""
        length = response.headers.get("content-length")
        if length and length.isdigit() and int(length) > self.limits.max_body_bytes:
            raise LimitExceeded(
                f"{url}: body of {int(length)} bytes exceeds the {self.limits.max_body_bytes}-byte cap"
            )
        payload = bytearray()
        decoder = _Decoder(response.headers.get("content-encoding", ""), self.limits.max_decoded_bytes)
        try:
            for chunk in response.raw.stream(_CHUNK, decode_content=False):
                payload += chunk
                if len(payload) > self.limits.max_body_bytes:
                    raise LimitExceeded(f"{url}: body exceeds the {self.limits.max_body_bytes}-byte cap")
                decoder.feed(chunk)
                if time.monotonic() > deadline:
                    raise FetchTimeout(f"{url}: capture exceeded the {self.limits.total_timeout}s total timeout")
        except (urllib3.exceptions.ReadTimeoutError, socket.timeout) as exc:
            raise FetchTimeout(f"{url}: body stalled for {self.limits.read_timeout}s") from exc
        except (urllib3.exceptions.ProtocolError, urllib3.exceptions.HTTPError, OSError) as exc:
            raise CaptureError(f"{url}: connection broken after {len(payload)} body bytes: {_short(exc)}") from exc
        return bytes(payload), bytes(decoder.out)


def check_url(url: str) -> None:
    """Only absolute http(s) URLs with a host are captured."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise CaptureError(f"malformed URL {url!r}: {exc}") from exc
    if parts.scheme not in ("http", "https"):
        raise CaptureError(f"unsupported URL scheme {parts.scheme or '(none)'!r} in {url!r}: only http and https")
    if not parts.hostname:
        raise CaptureError(f"malformed URL {url!r}: no host")
    if any(c.isspace() for c in url):
        raise CaptureError(f"malformed URL {url!r}: contains whitespace")


def _remaining(deadline: float, what: str) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise FetchTimeout(f"total timeout reached while fetching {what}")
    return left


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:300]


__all__ = ["Capture", "CaptureLimits", "Capturer", "Hop", "TLSInfo", "check_url", "_warcio_capture"]

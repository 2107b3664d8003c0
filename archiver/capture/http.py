"""One URL -> the raw HTTP exchange(s) of every hop, within limits.

Each hop goes through the one vetted outbound path (``outbound.py``: resolve
once, vet every answer, connect to the vetted address, one total deadline on
the socket) under warcio's recorder, which sees the exact bytes on the wire
(request as sent, response with transfer-encoding intact). The recorder is
thread-local and binds to a connection when it is created; every hop opens a
fresh connection, so nothing is recorded into another capture. Redirects are
followed by hand so the address policy and the limits apply to every hop.
"""

from __future__ import annotations

import hashlib
import logging
import re
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol
from urllib.parse import urljoin, urlsplit

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
from archiver.capture.deadline import Deadline
from archiver.capture.outbound import Exchange, Outbound, Timeouts, TLSInfo
from archiver.capture.userinfo import REDACTED, Credentials, same_origin, split_userinfo
from archiver.errors import CaptureError, LimitExceeded

if TYPE_CHECKING:
    from archiver.capture.fetchwire import RawHop

log = logging.getLogger(__name__)

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})




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

    url: str  # without userinfo
    hops: list[Hop] = field(default_factory=list)
    credentials: dict[str, Any] | None = None  # {"scheme", "username"} when the URL carried some

    @property
    def final(self) -> Hop:
        return self.hops[-1]

    @property
    def started_at(self) -> datetime:
        return self.hops[0].started_at

    @property
    def ended_at(self) -> datetime:
        return self.hops[-1].ended_at


#: what the response may take on the wire beyond twice the body cap: its head
#: (http.client allows 100 header lines of 64 KiB each, far more than any page needs)
WIRE_ALLOWANCE = 1024 * 1024


def wire_cap(limits: CaptureLimits) -> int:
    """Bytes a response may take as received (head, chunk framing, trailers, body).

    Why: the body caps count the payload, but the recorder keeps every byte
    read. One-byte chunks with 64 KiB chunk extensions, or endless trailer
    lines, would otherwise fill memory and the WARC until the deadline."""
    return 2 * limits.max_body_bytes + WIRE_ALLOWANCE


class _HopRecorder(RequestRecorder):
    """Collects raw hops instead of writing them, so the store decides what to
    write; refuses a response past ``cap`` bytes on the wire."""

    def __init__(self, url: str, cap: int) -> None:
        super().__init__(writer=None)
        self.raw: list[tuple[str, bytes, bytes, str | None]] = []
        self.target = url
        self.cap = cap
        self.received = 0

    def start(self) -> None:
        super().start()
        self.warc_headers: dict[str, str] = {}
        self.received = 0

    def write_response(self, buff: Any) -> None:
        self.received += len(buff)
        if self.received > self.cap:
            raise LimitExceeded(f"{self.target}: response exceeds {self.cap} bytes as received "
                                "(head, chunk framing and trailers count)")
        super().write_response(buff)

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


def decoded_body(payload: bytes, headers: Mapping[str, str], cap: int) -> bytes:
    """``payload`` with its Content-Encoding undone, within ``cap`` bytes
    (nothing to undo: the payload itself, not a copy)."""
    decoder = _Decoder(headers.get("content-encoding", ""), cap)
    if decoder.z is None:
        if len(payload) > cap:
            raise LimitExceeded(f"decoded body exceeds the {cap}-byte cap")
        return payload
    decoder.feed(payload)
    return bytes(decoder.out)


class FetchProcesses(Protocol):
    """Fetch processes (``fetchpool.FetchPool``) a hop may be run in."""

    def fetch(self, url: str, headers: Mapping[str, str], deadline: Deadline, limits: CaptureLimits,
              read: Callable[[RawHop], Hop]) -> Hop | None:
        """``read`` of the raw exchange of one GET, or None when no fetch process is idle."""


class Capturer:
    """Fetches URLs hop by hop through the vetted outbound path, within the limits."""

    def __init__(
        self,
        *,
        outbound: Outbound,
        limits: CaptureLimits,
        user_agent: str,
        clock: Callable[[], datetime],
        extra_headers: Mapping[str, str] | None = None,
    ) -> None:
        self.outbound = outbound
        self.limits = limits
        self.user_agent = user_agent
        self.clock = clock
        self.extra_headers = dict(extra_headers or {})
        self.processes: FetchProcesses | None = None  # set when captures run in parallel (Archive.parallel)
        if not issubclass(urllib3.connection.HTTPConnection, RecordingHTTPConnection):
            raise CaptureError("warcio's recorder is not installed: import archiver before requests/urllib3")

    @property
    def policy(self) -> AddressPolicy:
        return self.outbound.policy

    def capture(self, url: str, headers: Mapping[str, str] | None = None) -> Capture:
        """Fetch ``url`` and every redirect after it; raise CaptureError on any failure.

        Credentials in the URL (``user:password@``) are sent as HTTP Basic
        auth to that origin only; the URL recorded anywhere is without them,
        the recorded request shows the Authorization header redacted, and the
        capture notes that credentials were used (never the password).
        """
        url, credentials = split_userinfo(url)
        check_url(url)
        deadline = Deadline.after(self.limits.total_timeout)
        capture = Capture(url=url, credentials=credentials.public() if credentials else None)
        seen: set[str] = set()
        current = url
        while True:
            if current in seen:
                raise LimitExceeded(f"redirect loop: {current} was already visited")
            seen.add(current)
            auth = credentials if credentials is not None and same_origin(current, url) else None
            hop = self._fetch_one(current, deadline, headers or {}, auth)
            capture.hops.append(hop)
            location = hop.response_headers.get("location")
            if hop.status not in REDIRECT_STATUSES or not location:
                return capture
            if len(capture.hops) > self.limits.max_redirects:
                raise LimitExceeded(f"more than {self.limits.max_redirects} redirects starting at {url}")
            current, _ = split_userinfo(urljoin(current, location.strip()))  # never adopt a server's credentials
            check_url(current)

    # -- one hop ----------------------------------------------------------
    def request_headers(self, extra: Mapping[str, str], auth: "Credentials | None") -> dict[str, str]:
        """The headers one hop sends (``auth``: Basic credentials for this origin)."""
        headers = {
            "User-Agent": self.user_agent,
            "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
            "Accept-Encoding": "gzip, deflate",
            **self.extra_headers,
            **dict(extra),
        }
        if auth is not None:
            headers["Authorization"] = auth.header()
        return headers

    def _fetch_one(
        self, url: str, deadline: Deadline, extra: Mapping[str, str], auth: "Credentials | None"
    ) -> Hop:
        request_headers = self.request_headers(extra, auth)
        if self.processes is not None:  # a fetch process when one is idle (fetchpool.py); else here
            from archiver.capture.fetchwire import hop_from_raw

            hop = self.processes.fetch(url, request_headers, deadline, self.limits,
                                       lambda raw: hop_from_raw(raw, request_headers, auth, self.limits, self.policy,
                                                                self.clock))
            if hop is not None:
                return hop
        started = self.clock()
        exchange, headers, payload, body, req_bytes, resp_bytes = self.exchange(url, deadline, request_headers,
                                                                               decode=True)
        ended = self.clock()
        sent = dict(exchange.request_headers)
        if auth is not None:
            req_bytes = auth.redact(req_bytes)
            sent["Authorization"] = REDACTED
        return Hop(
            url=url,
            started_at=started,
            ended_at=ended,
            request_bytes=req_bytes,
            response_bytes=resp_bytes,
            status=exchange.status,
            ip=exchange.peer.ip,
            tls=exchange.peer.tls,
            request_headers=sent,
            response_headers=headers,
            body=body,
            payload=payload,
        )

    def exchange(
        self, url: str, deadline: Deadline, request_headers: Mapping[str, str], *, decode: bool
    ) -> tuple[Exchange, dict[str, str], bytes, bytes, bytes, bytes]:
        """One GET through the vetted path under the recorder, its body read
        within the caps: (exchange, response headers, payload, decoded body --
        empty unless ``decode`` --, request bytes, response bytes as on the wire)."""
        recorder = _HopRecorder(url, wire_cap(self.limits))
        timeouts = Timeouts(connect=self.limits.connect_timeout, read=self.limits.read_timeout)
        RecordingHTTPConnection.local.recorder = recorder  # picked up by the connection opened below
        try:
            exchange = self.outbound.open("GET", url, headers=request_headers, deadline=deadline, timeouts=timeouts)
        finally:
            RecordingHTTPConnection.local.recorder = None
        with exchange:
            headers = exchange.headers
            payload, body = self._read_body(exchange, headers, decode)
        if not recorder.raw:
            raise CaptureError(f"nothing was recorded for {url}")
        _, req_bytes, resp_bytes, _ = recorder.raw[-1]
        return exchange, headers, payload, body, req_bytes, resp_bytes

    def _read_body(self, exchange: Exchange, headers: Mapping[str, str], decode: bool) -> tuple[bytes, bytes]:
        """Read the entity body under the raw and decoded caps (the deadline is the exchange's)."""
        url = exchange.url
        length = headers.get("content-length")
        if length and length.isdigit() and int(length) > self.limits.max_body_bytes:
            raise LimitExceeded(
                f"{url}: body of {int(length)} bytes exceeds the {self.limits.max_body_bytes}-byte cap"
            )
        payload = bytearray()
        decoder = _Decoder(headers.get("content-encoding", ""), self.limits.max_decoded_bytes)
        streaming = decode and decoder.z is not None  # gzip/deflate undone as the bytes come (bombs stop early)
        for chunk in exchange.chunks():
            payload += chunk
            if len(payload) > self.limits.max_body_bytes:
                raise LimitExceeded(f"{url}: body exceeds the {self.limits.max_body_bytes}-byte cap")
            if streaming:
                decoder.feed(chunk)
        if not decode:
            return bytes(payload), b""
        if streaming:
            return bytes(payload), bytes(decoder.out)
        body = bytes(payload)
        return body, decoded_body(body, headers, self.limits.max_decoded_bytes)


_SPACE = re.compile(r"\s")  # what str.isspace() calls whitespace, in one C scan


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
    if _SPACE.search(url):
        raise CaptureError(f"malformed URL {url!r}: contains whitespace")


__all__ = ["Capture", "CaptureLimits", "Capturer", "Hop", "TLSInfo", "check_url", "_warcio_capture"]

"""What a fetch process sends back, and what the capture process makes of it.

A fetch process (``fetchproc.py``) runs one hop through the vetted outbound
path and returns the raw exchange: the request and response bytes as they
were on the wire, the connected peer (address, TLS session) and when the hop
began and ended. Nothing else: the capture process derives everything it
writes and signs from those bytes itself (:func:`hop_from_raw`) -- status,
headers, the payload (transfer-encoding removed, by the same urllib3 and
http.client code the in-process path reads the socket with, so both paths
give the same hop) and the decoded body, under the same caps; it checks the
request bytes say what it asked for, vets the peer address with its own
policy, hashes the certificates itself and takes the times only within the
span it waited. A fetch process that lies can therefore only claim what a
hostile server could have sent anyway, and never make the archive sign a
digest of bytes it did not itself hash.

Frames (each one ``multiprocessing.connection`` message, size-capped by the
reader): ``J`` + JSON job (capture -> fetch); ``R`` + JSON name lookup and
``A`` + JSON answer (the capture process resolves names: its resolver is the
injectable one, and every answer is vetted again where it is used); ``H`` +
a hop; ``E`` + JSON error.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import re
import ssl
import struct
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Callable, Mapping
from urllib.parse import urlsplit

import urllib3
from urllib3._collections import HTTPHeaderDict

from archiver.capture.outbound import CHUNK, TLSInfo
from archiver.errors import AddressRefused, CaptureError, FetchTimeout, LimitExceeded

if TYPE_CHECKING:
    from archiver.capture.addresses import AddressPolicy
    from archiver.capture.http import CaptureLimits, Hop
    from archiver.capture.userinfo import Credentials

#: what an ``E`` frame may name, and nothing else
ERRORS: dict[str, type[CaptureError]] = {
    cls.__name__: cls for cls in (CaptureError, AddressRefused, LimitExceeded, FetchTimeout)
}
#: request bytes, TLS chain and JSON of one hop beyond its response as received (http.wire_cap)
FRAME_SLACK = 4 * 1024 * 1024
_LEN = struct.Struct(">I")


class Malformed(CaptureError):
    """A fetch process's answer that is not what the protocol allows."""


@dataclass(frozen=True)
class RawHop:
    """One hop as a fetch process saw it."""

    url: str
    request_bytes: bytes
    response_bytes: bytes
    ip: str
    tls: TLSInfo | None
    started: float  # time.monotonic() (one clock for every process of the machine)
    ended: float


# -- encoding (fetch process) ------------------------------------------------
def encode_hop(raw: RawHop) -> bytes:
    tls = None
    if raw.tls is not None:
        tls = {"version": raw.tls.version, "cipher": raw.tls.cipher, "cert_pem": raw.tls.cert_pem,
               "chain": [pem for _, pem in raw.tls.chain]}
    head = json.dumps({"url": raw.url, "ip": raw.ip, "tls": tls, "started": raw.started, "ended": raw.ended,
                       "request": len(raw.request_bytes)}).encode("utf-8")
    return b"H" + _LEN.pack(len(head)) + head + raw.request_bytes + raw.response_bytes


def encode_error(exc: BaseException) -> bytes:
    kind = type(exc).__name__ if type(exc).__name__ in ERRORS else "CaptureError"
    return b"E" + json.dumps({"kind": kind, "message": str(exc)[:2000]}).encode("utf-8")


# -- decoding (capture process) -----------------------------------------------
def decode_error(frame: bytes) -> CaptureError:
    try:
        d = json.loads(frame[1:])
        cls, message = ERRORS[d["kind"]], d["message"]
        if not isinstance(message, str):
            raise TypeError("message")
    except (ValueError, TypeError, KeyError) as exc:
        raise Malformed("malformed error") from exc
    return cls(" ".join(message.split())[:1000])  # one line, bounded


def decode_hop(frame: bytes, url: str, since: float, until: float) -> RawHop:
    """A ``H`` frame for a hop of ``url`` asked at ``since`` and answered by ``until``; Malformed otherwise."""
    try:
        (n,) = _LEN.unpack_from(frame, 1)
        d = json.loads(frame[5:5 + n])
        req_len = d["request"]
        if not (isinstance(req_len, int) and 0 < req_len <= len(frame) - 5 - n):
            raise ValueError("request length")
        if d["url"] != url or not isinstance(d["ip"], str):
            raise ValueError("not the hop asked for")
        started, ended = float(d["started"]), float(d["ended"])
        if not since - 0.001 <= started <= ended <= until + 0.001:  # only within the wait it answered
            raise ValueError("times outside the wait")
        tls = _tls(d["tls"])
    except (ValueError, TypeError, KeyError, struct.error, ssl.SSLError) as exc:
        raise Malformed(f"malformed hop: {exc}"[:200]) from exc
    body = 5 + n
    return RawHop(url, frame[body:body + req_len], frame[body + req_len:], d["ip"], tls, started, ended)


def _tls(d: Any) -> TLSInfo | None:
    """The TLS session as reported, every digest taken here from the certificates themselves."""
    if d is None:
        return None
    chain = tuple((hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest(), pem) for pem in d["chain"])
    pem = d["cert_pem"]
    digest = hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest() if pem is not None else None
    for value in (d["version"], d["cipher"], pem):
        if value is not None and not isinstance(value, str):
            raise TypeError("TLS field")
    return TLSInfo(d["version"], d["cipher"], digest, pem, chain)


class _Replay:
    """A socket stand-in whose file is the recorded response (for http.client)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def makefile(self, *args: Any, **kwargs: Any) -> io.BytesIO:
        return io.BytesIO(self.data)


_STATUS = re.compile(rb"HTTP/1\.[01] ([2-9][0-9][0-9])(?: [\x20-\x7e\t]*)?\r\n")
_FIELD = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*([\x20-\x7e\t]*)\r\n")


def read_plain(data: bytes) -> tuple[int, dict[str, str], bytes] | None:
    """(status, headers, payload) of a response in the plain shape almost every
    server sends -- an HTTP/1.x status line, no 1xx, printable ASCII header
    fields of token names, no folding, Transfer-Encoding absent, at most one
    all-digit Content-Length the bytes satisfy -- read exactly as http.client
    and urllib3 read it (values keep trailing blanks, as the email parser
    does; repeated fields joined by ", "). None for anything else: that goes
    to :func:`replay_response`'s full replay, never to a guess."""
    status_line = _STATUS.match(data)
    if status_line is None:
        return None
    end = data.find(b"\r\n\r\n", status_line.end() - 2)
    if end < 0:
        return None
    pos, stop = status_line.end(), end + 2
    headers: dict[str, str] = {}
    count = 0
    while pos < stop:
        field = _FIELD.match(data, pos, stop)
        if field is None:
            return None
        name, value = field.group(1).decode("ascii").lower(), field.group(2).decode("ascii")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
        pos, count = field.end(), count + 1
    if count > 100 or "transfer-encoding" in headers:  # http.client refuses over 100 fields
        return None
    status, body = int(status_line.group(1)), end + 4
    if status in (204, 304):
        return status, headers, b""
    length = headers.get("content-length")
    if length is None:
        return status, headers, data[body:]  # read until the connection closed
    if not length.isdigit() or len(data) - body < int(length):  # repeated, odd or short: the full replay decides
        return None
    return status, headers, data[body:body + int(length)]


def replay_response(data: bytes, url: str, limits: CaptureLimits) -> tuple[int, dict[str, str], bytes, bytes]:
    """(status, headers, payload, decoded body) of recorded response bytes,
    read as the same http.client and urllib3 code read them off the socket
    (:func:`read_plain` for the plain shape, else that code itself), within
    the same caps."""
    from archiver.capture.http import decoded_body

    plain = read_plain(data)
    if plain is not None:
        status, flat, payload = plain
        if len(payload) > limits.max_body_bytes:
            raise LimitExceeded(f"{url}: body exceeds the {limits.max_body_bytes}-byte cap")
        return status, flat, payload, decoded_body(payload, flat, limits.max_decoded_bytes)
    return _replay(data, url, limits)


def _replay(data: bytes, url: str, limits: CaptureLimits) -> tuple[int, dict[str, str], bytes, bytes]:
    from urllib3.connection import _normalize_header_values  # the normalisation the live path applies

    from archiver.capture.http import decoded_body

    raw = http.client.HTTPResponse(_Replay(data), method="GET")  # type: ignore[arg-type]
    try:
        raw.begin()
        headers = HTTPHeaderDict(_normalize_header_values(raw.msg))
        response = urllib3.response.HTTPResponse(
            body=raw, headers=headers, status=raw.status, version=raw.version, reason=raw.reason,
            preload_content=False, decode_content=False, original_response=raw, enforce_content_length=True,
            request_method="GET", request_url=url)
        payload = bytearray()
        for chunk in response.stream(CHUNK, decode_content=False):
            payload += chunk
            if len(payload) > limits.max_body_bytes:
                raise LimitExceeded(f"{url}: body exceeds the {limits.max_body_bytes}-byte cap")
    except (http.client.HTTPException, urllib3.exceptions.HTTPError, ValueError) as exc:
        raise CaptureError(f"{url}: the recorded response does not read back: {type(exc).__name__}") from exc
    flat = {k.lower(): headers[k] for k in headers}
    return int(raw.status), flat, bytes(payload), decoded_body(bytes(payload), flat, limits.max_decoded_bytes)


def check_request(request_bytes: bytes, url: str, headers: Mapping[str, str]) -> None:
    """The recorded request must be the GET of ``url`` with every header asked for."""
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    head, sep, _ = request_bytes.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    try:
        wanted = [f"GET {target} HTTP/1.1".encode("latin-1")] + [f"{k}: {v}".encode("latin-1") for k, v in headers.items()]
    except UnicodeEncodeError as exc:
        raise CaptureError(f"{url}: a request header is not Latin-1") from exc
    present = set(lines[1:])
    if not sep or lines[0] != wanted[0] or any(line not in present for line in wanted[1:]):
        raise Malformed(f"{url}: the recorded request is not the one asked for")


def hop_from_raw(raw: RawHop, request_headers: Mapping[str, str], auth: Credentials | None,
                 limits: CaptureLimits, policy: AddressPolicy, clock: Callable[[], datetime]) -> Hop:
    """The hop the capture process records, derived by it from the raw exchange."""
    from archiver.capture.http import Hop
    from archiver.capture.userinfo import REDACTED

    scheme = urlsplit(raw.url).scheme
    if (raw.tls is None) != (scheme == "http"):
        raise Malformed(f"{raw.url}: TLS session {'missing' if raw.tls is None else 'on a plain connection'}")
    policy.check_ip(raw.ip, urlsplit(raw.url).hostname or raw.url)
    check_request(raw.request_bytes, raw.url, request_headers)
    from archiver.capture.http import wire_cap

    if len(raw.response_bytes) > wire_cap(limits):
        raise LimitExceeded(f"{raw.url}: response exceeds {wire_cap(limits)} bytes as received")
    status, headers, payload, body = replay_response(raw.response_bytes, raw.url, limits)
    req_bytes, sent = raw.request_bytes, dict(request_headers)
    if auth is not None:
        req_bytes = auth.redact(req_bytes)
        sent["Authorization"] = REDACTED
        if auth.header().encode("latin-1") in req_bytes:
            raise Malformed(f"{raw.url}: the credentials would be recorded")
    now, mono = clock(), time.monotonic()
    return Hop(
        url=raw.url,
        started_at=now - timedelta(seconds=max(0.0, mono - raw.started)),
        ended_at=now - timedelta(seconds=max(0.0, mono - raw.ended)),
        request_bytes=req_bytes,
        response_bytes=raw.response_bytes,
        status=status,
        ip=raw.ip,
        tls=raw.tls,
        request_headers=sent,
        response_headers=headers,
        body=body,
        payload=payload,
    )

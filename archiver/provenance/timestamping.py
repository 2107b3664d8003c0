"""Optional RFC 3161 trusted time for checkpoints (or any signed bytes).

Why: a signed checkpoint proves *what* the log held, but its time comes from
the operator's clock. A token from an independent Time-Stamping Authority
proves the bytes existed no later than the TSA's genTime, so an operator
cannot backdate the log.

Tokens are kept as plain files under ``<data_dir>/timestamps/``:
``<tree_size>-<n>.tsr`` (the DER TimeStampResp, as ``openssl ts -reply``
writes it), ``<tree_size>-<n>.chain.pem`` (the certificates the TSA sent) and
``<tree_size>-<n>.json`` (TSA URL, genTime), so anyone can check them without
the service, e.g. ``openssl ts -verify -in 12-0.tsr -data checkpoint.txt
-CAfile tsa-root.pem -untrusted 12-0.chain.pem``.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import logging
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.utils import CryptographyDeprecationWarning

from archiver.capture.addresses import AddressPolicy
from archiver.capture.deadline import Deadline
from archiver.capture.outbound import Outbound, Timeouts
from archiver.errors import CaptureError, FetchTimeout, LimitExceeded, SigningError, StoreError, VerificationError
from archiver.given import read_own
from archiver.provenance.files import atomic_write, fsync_dir

__all__ = [
    "MAX_RESPONSE_BYTES",
    "TimestampToken",
    "StoredToken",
    "Timestamper",
    "verify_token",
    "store_tokens",
    "load_tokens",
]

log = logging.getLogger(__name__)

MAX_RESPONSE_BYTES = 256 * 1024  # a TimeStampResp with a full chain is a few KiB
TIMESTAMPS_DIR = "timestamps"
_NAME = re.compile(r"(\d+)-(\d+)\.tsr")


@dataclass(frozen=True)
class TimestampToken:
    """One TSA's answer: ``token`` is the DER TimeStampResp (it holds the token)."""

    tsa_url: str
    token: bytes
    gen_time: datetime

    def certificates_pem(self) -> bytes:
        """The certificates the TSA embedded (leaf and chain), as PEM."""
        return _certificates_pem(self.token)


@dataclass(frozen=True)
class StoredToken:
    """A token read back from ``<data_dir>/timestamps`` (not yet verified)."""

    tree_size: int
    n: int
    tsa_url: str | None
    token: bytes
    gen_time: datetime
    path: Path  # the .tsr file
    chain_path: Path | None  # the .chain.pem next to it, if present


def _rfc3161() -> Any:
    try:
        import rfc3161_client
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise SigningError("RFC 3161 timestamping needs the rfc3161-client package") from exc
    return rfc3161_client


def _utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def _certificates_pem(token: bytes) -> bytes:
    rfc = _rfc3161()
    try:
        response = rfc.decode_timestamp_response(_canonical_response(token))
        ders = sorted(response.signed_data.certificates)
        return b"".join(x509.load_der_x509_certificate(d).public_bytes(Encoding.PEM) for d in ders)
    except (ValueError, TypeError) as exc:
        raise VerificationError(f"timestamp token is not a valid TimeStampResp: {exc}") from exc


class Timestamper:
    """Asks each configured TSA for a token over some bytes.

    Requests go through the vetted outbound path (``outbound``) with one total
    deadline per request (``timeout``, however slowly the TSA answers) and a
    cap on the response size: a TSA is a remote party and is not trusted to be
    small or quick. TSA URLs come from the operator's settings, so by default
    private addresses are allowed (a TSA on the intranet); link-local and
    metadata addresses never are. ``roots`` (PEM/DER certificates), when given, makes every
    token be verified right away; otherwise only its nonce and message
    imprint are checked here and the chain is checked by :func:`verify_token`.
    """

    def __init__(
        self,
        tsa_urls: Sequence[str],
        *,
        outbound: Outbound | None = None,
        timeout: float = 10.0,
        hash_algorithm: str = "sha512",
        roots: Sequence[bytes] | None = None,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
    ) -> None:
        if hash_algorithm not in ("sha256", "sha512"):
            raise SigningError(f"unsupported timestamp hash {hash_algorithm!r}: use sha256 or sha512")
        self.tsa_urls = list(tsa_urls)
        self.outbound = outbound or Outbound(AddressPolicy(allow_private=True))
        self.timeout = timeout
        self.hash_algorithm = hash_algorithm
        self.roots = list(roots) if roots is not None else None
        self.max_response_bytes = max_response_bytes

    def timestamp(self, data: bytes) -> list[TimestampToken]:
        """Tokens from every TSA that answered properly, in configuration order.

        A TSA that fails is logged and skipped; SigningError when none answered.
        """
        tokens: list[TimestampToken] = []
        errors: list[str] = []
        for url in self.tsa_urls:
            try:
                tokens.append(self.request(url, data))
            except SigningError as exc:
                log.warning("timestamp from %s failed: %s", url, exc)
                errors.append(str(exc))
        if self.tsa_urls and not tokens:
            raise SigningError("no TSA returned a timestamp: " + "; ".join(errors))
        return tokens

    def request(self, url: str, data: bytes) -> TimestampToken:
        """One token from ``url``; SigningError with a one-line reason otherwise."""
        rfc = _rfc3161()
        algorithm = rfc.HashAlgorithm.SHA512 if self.hash_algorithm == "sha512" else rfc.HashAlgorithm.SHA256
        try:
            req = rfc.TimestampRequestBuilder().data(data).hash_algorithm(algorithm).nonce(nonce=True).cert_request(cert_request=True).build()
        except ValueError as exc:
            raise SigningError(f"cannot build a timestamp request: {exc}") from exc
        body = _canonical_response(self._post(url, req.as_bytes()))
        try:
            response = rfc.decode_timestamp_response(body)
        except ValueError as exc:
            raise SigningError(f"{url}: answer is not a TimeStampResp: {exc}") from exc
        if rfc.PKIStatus(response.status) != rfc.PKIStatus.GRANTED:  # what the verifier accepts
            detail = " ".join(response.status_string) if response.status_string else ""
            raise SigningError(f"{url}: TSA refused the request (status {response.status}) {detail}".strip())
        info = response.tst_info
        if info.nonce != req.nonce:
            raise SigningError(f"{url}: TSA answered with another nonce")
        digest = hashlib.new(self.hash_algorithm, data).digest()
        if info.message_imprint.message != digest:
            raise SigningError(f"{url}: TSA timestamped other data")
        if self.roots is not None:
            try:
                verify_token(body, data, roots=self.roots)
            except VerificationError as exc:
                raise SigningError(f"{url}: {exc}") from exc
        gen_time = _utc(info.gen_time)
        log.info("timestamp from %s at %s", url, gen_time.isoformat())
        return TimestampToken(url, body, gen_time)

    def _post(self, url: str, query: bytes) -> bytes:
        headers = {"Content-Type": "application/timestamp-query", "Accept": "application/timestamp-reply"}
        try:
            with self.outbound.open(
                "POST", url, headers=headers, body=query, deadline=Deadline.after(self.timeout),
                timeouts=Timeouts(self.timeout, self.timeout),
            ) as exchange:
                if exchange.status != 200:
                    raise SigningError(f"{url}: TSA answered HTTP {exchange.status}")
                declared = exchange.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > self.max_response_bytes:
                    raise SigningError(f"{url}: answer of {declared} bytes exceeds the {self.max_response_bytes}-byte cap")
                body = exchange.read(self.max_response_bytes)
                ctype = exchange.headers.get("content-type", "")
                if ctype and "timestamp-reply" not in ctype:
                    log.warning("%s answered with Content-Type %s", url, ctype)
                return body
        except FetchTimeout as exc:
            raise SigningError(f"{url}: TSA did not answer within {self.timeout}s ({exc})") from exc
        except LimitExceeded as exc:
            raise SigningError(f"{url}: answer exceeds the {self.max_response_bytes}-byte cap") from exc
        except CaptureError as exc:
            raise SigningError(f"{url}: {exc}") from exc


def _load_certs(blobs: Sequence[bytes]) -> list[x509.Certificate]:
    certs: list[x509.Certificate] = []
    for blob in blobs:
        try:
            if b"-----BEGIN" in blob:
                with warnings.catch_warnings():  # public bundles hold a few odd legacy roots
                    warnings.simplefilter("ignore", CryptographyDeprecationWarning)
                    certs.extend(x509.load_pem_x509_certificates(blob))
            else:
                certs.append(x509.load_der_x509_certificate(blob))
        except ValueError as exc:
            raise VerificationError(f"a trusted root is not a PEM or DER certificate: {exc}") from exc
    return certs


def _default_roots() -> list[bytes]:
    import certifi

    return [Path(certifi.where()).read_bytes()]


def verify_token(token_der: bytes, data: bytes, *, roots: Sequence[bytes] | None) -> datetime:
    """Check that a TSA whose chain ends in ``roots`` timestamped ``data``; returns genTime (UTC).

    The chain is validated at genTime (not now, so tokens outlive their
    certificates) and the TSA certificate must carry a critical
    id-kp-timeStamping extended key usage. ``roots`` None means the certifi
    bundle; pass the TSA's own root for private TSAs. Raises
    VerificationError with a one-line message on any failure.
    """
    rfc = _rfc3161()
    try:
        response = rfc.decode_timestamp_response(_canonical_response(token_der))
    except (ValueError, TypeError) as exc:
        raise VerificationError(f"timestamp token is not a valid TimeStampResp: {exc}") from exc
    certs = _load_certs(roots if roots is not None else _default_roots())
    if not certs:
        raise VerificationError("no trusted root to verify the timestamp with")
    builder = rfc.VerifierBuilder()
    for cert in certs:
        with contextlib.suppress(ValueError):  # duplicates in a bundle
            builder = builder.add_root_certificate(cert)
    try:
        builder.build().verify_message(response, data)
    except rfc.VerificationError as exc:
        raise VerificationError(f"timestamp does not verify: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc
    except ValueError as exc:
        raise VerificationError(f"timestamp does not verify: {exc}") from exc
    return _utc(response.tst_info.gen_time)


# --------------------------------------------------------------------------
# DER: put SignedData's certificate SET in DER order
# --------------------------------------------------------------------------
#
# rfc3161-client parses strictly and refuses a SET OF whose members are not
# sorted as DER demands; OpenSSL (`openssl ts -reply -chain`) and other TSAs
# emit the certificates leaf first. The certificate set is not covered by
# the token's signature, so sorting it changes no signed byte.


def _der_read(buf: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the TLV at ``pos`` (low tag numbers only)."""
    if pos + 2 > len(buf):
        raise ValueError("truncated DER")
    tag = buf[pos]
    if tag & 0x1F == 0x1F:
        raise ValueError("high tag numbers are not used here")
    first = buf[pos + 1]
    if first < 0x80:
        start, length = pos + 2, first
    else:
        n = first & 0x7F
        if n == 0 or n > 4:
            raise ValueError("indefinite or oversized DER length")
        start = pos + 2 + n
        length = int.from_bytes(buf[pos + 2 : start], "big")
    end = start + length
    if end > len(buf):
        raise ValueError("truncated DER")
    return tag, start, end


def _der_children(buf: bytes) -> list[tuple[int, bytes, bytes]]:
    """(tag, whole TLV, content) of each element in a constructed value's content."""
    out = []
    pos = 0
    while pos < len(buf):
        tag, start, end = _der_read(buf, pos)
        out.append((tag, buf[pos:end], buf[start:end]))
        pos = end
    return out


def _der(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + content


def _canonical_response(resp: bytes) -> bytes:
    """The TimeStampResp with SignedData.certificates sorted; unchanged if already so or unparsable."""
    try:
        tag, start, end = _der_read(resp, 0)
        if tag != 0x30 or end != len(resp):
            return resp
        top = _der_children(resp[start:end])
        if len(top) < 2 or top[1][0] != 0x30:
            return resp
        info = _der_children(top[1][2])  # ContentInfo: contentType, [0] EXPLICIT content
        if len(info) != 2 or info[1][0] != 0xA0:
            return resp
        (sd,) = _der_children(info[1][2])
        if sd[0] != 0x30:
            return resp
        fields = _der_children(sd[2])
        changed = False
        rebuilt = []
        for ftag, whole, content in fields:
            if ftag in (0xA0, 0xA1):  # certificates, crls: IMPLICIT SET OF
                members = [m for _, m, _ in _der_children(content)]
                ordered = sorted(members)
                if ordered != members:
                    changed = True
                    whole = _der(ftag, b"".join(ordered))
            rebuilt.append(whole)
        if not changed:
            return resp
        signed_data = _der(0x30, b"".join(rebuilt))
        token = _der(0x30, info[0][1] + _der(0xA0, signed_data))
        return _der(0x30, top[0][1] + token + b"".join(t[1] for t in top[2:]))
    except ValueError:
        return resp


# --------------------------------------------------------------------------
# Storage next to the archive
# --------------------------------------------------------------------------


def store_tokens(data_dir: Path, size: int, tokens: Sequence[TimestampToken]) -> list[Path]:
    """Save tokens for the checkpoint of tree ``size``; returns the .tsr paths.

    Numbers ``n`` continue after any tokens already stored for that size, so
    re-stamping never overwrites earlier evidence.
    """
    directory = Path(data_dir) / TIMESTAMPS_DIR
    paths: list[Path] = []
    try:
        directory.mkdir(parents=True, exist_ok=True)
        counter = itertools.count()
        for token in tokens:
            while True:
                n = next(counter)
                tsr = directory / f"{size}-{n}.tsr"
                try:
                    atomic_write(tsr, token.token, 0o644, replace=False)
                except FileExistsError:
                    continue
                break
            try:
                chain = token.certificates_pem()
            except VerificationError:
                chain = b""
            if chain:
                atomic_write(directory / f"{size}-{n}.chain.pem", chain, 0o644, replace=False)
            meta = {"tsa_url": token.tsa_url, "gen_time": token.gen_time.isoformat(), "tree_size": size}
            atomic_write(directory / f"{size}-{n}.json", (json.dumps(meta, sort_keys=True) + "\n").encode(), 0o644, replace=False)
            paths.append(tsr)
        fsync_dir(directory)
    except OSError as exc:
        raise StoreError(f"cannot store timestamps in {directory}: {exc.strerror or exc}") from exc
    return paths


def load_tokens(data_dir: Path) -> list[StoredToken]:
    """Every stored token, by tree size then number. Parsed, not verified."""
    directory = Path(data_dir) / TIMESTAMPS_DIR
    if not directory.is_dir():
        return []
    rfc = _rfc3161()
    out: list[StoredToken] = []
    for path in directory.iterdir():
        m = _NAME.fullmatch(path.name)
        if not m:
            continue
        size, n = int(m.group(1)), int(m.group(2))
        token = read_own(path, "timestamp token", error=StoreError)
        if token is None:
            continue  # removed meanwhile
        try:
            gen_time = _utc(rfc.decode_timestamp_response(_canonical_response(token)).tst_info.gen_time)
        except (ValueError, TypeError) as exc:
            raise VerificationError(f"{path.name} is not a valid TimeStampResp") from exc
        tsa_url = None
        meta_path = directory / f"{size}-{n}.json"
        with contextlib.suppress(StoreError, ValueError, AttributeError):
            tsa_url = json.loads(read_own(meta_path, "timestamp metadata", error=StoreError) or b"{}").get("tsa_url")
        chain = directory / f"{size}-{n}.chain.pem"
        out.append(StoredToken(size, n, tsa_url, token, gen_time, path, chain if chain.exists() else None))
    out.sort(key=lambda t: (t.tree_size, t.n))
    return out

"""Hostile loopback peers and a rebinding resolver for the outbound-path tests.

Everything listens on 127.0.0.x; the rebinding resolver patches
``socket.getaddrinfo`` in-process and only ever answers loopback addresses.
"""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

REAL_GETADDRINFO = socket.getaddrinfo


class Rebinder:
    """Answers ``name`` with ``answers[0]`` first, then ``answers[1]``, ... (the last repeats)."""

    def __init__(self, name: str, *answers: list[str]) -> None:
        self.name = name
        self.answers = list(answers)
        self.calls = 0

    def __call__(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != self.name:
            return REAL_GETADDRINFO(host, port, *args, **kwargs)
        ips = self.answers[min(self.calls, len(self.answers) - 1)]
        self.calls += 1
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, int(port or 0))) for ip in ips]


class Page(BaseHTTPRequestHandler):
    """Answers every GET/POST with ``server.body`` and ``Connection: close``, HTTP/1.0 style."""

    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:  # noqa: N802
        self.server.hits += 1  # type: ignore[attr-defined]
        self.server.seen.append(dict(self.headers.items()))  # type: ignore[attr-defined]
        body = self.server.body  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, *args: Any) -> None:
        pass


class PageServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], body: bytes, context: ssl.SSLContext | None = None) -> None:
        super().__init__(address, Page)
        self.body = body
        self.hits = 0
        self.seen: list[dict[str, str]] = []
        if context is not None:
            self.socket = context.wrap_socket(self.socket, server_side=True)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass

    def close(self) -> None:
        self.shutdown()
        self.server_close()


def twin_servers(public_body: bytes, internal_body: bytes) -> tuple[PageServer, PageServer]:
    """One server on 127.0.0.1 and one on 127.0.0.2, on the same port."""
    for _ in range(20):
        a = PageServer(("127.0.0.1", 0), public_body)
        try:
            return a, PageServer(("127.0.0.2", a.port), internal_body)
        except OSError:
            a.close()
    raise RuntimeError("no port free on both 127.0.0.1 and 127.0.0.2")


class RawPeer:
    """A raw TCP peer on 127.0.0.1: each connection is handed to :meth:`answer`
    in a thread of its own; ``connections`` counts them."""

    default_path = "/"

    def __init__(self, backlog: int = 8) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(backlog)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.stop = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._answer_and_close, args=(conn,), daemon=True).start()

    def _answer_and_close(self, conn: socket.socket) -> None:
        try:
            conn.recv(65536)
            self.answer(conn)
        except OSError:
            pass
        finally:
            conn.close()

    def answer(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def url(self, path: str | None = None) -> str:
        return f"http://127.0.0.1:{self.port}{path or self.default_path}"

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


class Dripper(RawPeer):
    """Sends ``head`` then ``body`` one byte every ``pause`` seconds."""

    def __init__(self, head: bytes, body: bytes, *, drip_head: bool, pause: float = 0.2, limit: float = 60) -> None:
        super().__init__()
        self.head, self.body, self.drip_head, self.pause, self.limit = head, body, drip_head, pause, limit
        self.start()

    def answer(self, conn: socket.socket) -> None:
        started = time.monotonic()
        if not self.drip_head:
            conn.sendall(self.head)
        data = (self.head if self.drip_head else b"") + self.body
        for i in range(len(data)):
            if self.stop.is_set() or time.monotonic() - started > self.limit:
                break
            conn.sendall(data[i:i + 1])
            time.sleep(self.pause)


class Flooder(RawPeer):
    """Answers ``head``, then ``block`` ``count`` times, then ``tail``;
    ``sent`` counts the bytes it got out before the client hung up."""

    def __init__(self, head: bytes, block: bytes, count: int, tail: bytes = b"") -> None:
        super().__init__()
        self.head, self.block, self.count, self.tail = head, block, count, tail
        self.sent = 0
        self.start()

    def answer(self, conn: socket.socket) -> None:
        for data in (self.head, *[self.block] * self.count, self.tail):
            conn.sendall(data)
            self.sent += len(data)


class EndlessReceiver(RawPeer):
    """A webhook receiver that answers 200 and then sends a reply body without end
    (up to ``limit`` bytes per connection, so a client that reads it all still ends)."""

    default_path = "/hook"

    def __init__(self, limit: int = 400 * 1024 * 1024) -> None:
        super().__init__(backlog=16)
        self.limit = limit
        self.posts = 0
        self.sent = 0
        self.start()

    def answer(self, conn: socket.socket) -> None:
        block = b"x" * 65536
        self.posts += 1
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n")
        sent = 0
        while sent < self.limit and not self.stop.is_set():
            conn.sendall(block)
            sent += len(block)
            self.sent += len(block)


def rss_bytes() -> int:
    """This process's resident memory now (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


class PeakRSS:
    """Samples ``rss_bytes`` in a thread; ``peak`` is the highest seen."""

    def __init__(self, every: float = 0.02) -> None:
        self.baseline = self.peak = rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every,), daemon=True)
        self._thread.start()

    def _run(self, every: float) -> None:
        while not self._stop.wait(every):
            self.peak = max(self.peak, rss_bytes())

    def close(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak - self.baseline


def make_ca(directory: Path, names: list[str]) -> tuple[Path, Path, Path, bytes, bytes]:
    """A throwaway CA and a leaf for ``names``: (ca.pem, leaf.pem, leaf.key, leaf DER, CA DER)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "archiver test CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    ca_pem, leaf_pem, leaf_key = directory / "ca.pem", directory / "leaf.pem", directory / "leaf.key"
    ca_pem.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    leaf_pem.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    leaf_key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return (ca_pem, leaf_pem, leaf_key, leaf.public_bytes(serialization.Encoding.DER),
            ca.public_bytes(serialization.Encoding.DER))


def server_context(leaf_pem: Path, leaf_key: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(leaf_pem, leaf_key)
    return ctx


def wait_until(check: Callable[[], bool], timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(0.02)
    return check()

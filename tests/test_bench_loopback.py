"""bench/loopback.py's server process (the page server of the capture, scale
and verify benches): HTTP/1.1 with keep-alive, Connection: close honoured,
the per-response delay kept, the same pages as before."""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

import loopback  # noqa: E402


def _read_response(sock: socket.socket, pending: bytes = b"") -> tuple[bytes, bytes, bytes]:
    """(head, body, bytes after it) of one response with a Content-Length."""
    data = pending
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, rest = data.split(b"\r\n\r\n", 1)
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed mid-body"
        rest += chunk
    return head, rest[:length], rest[length:]


def test_the_page_server_keeps_connections_alive_and_closes_when_asked() -> None:
    proc, port = loopback.start("styled")
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"GET /artikel/3 HTTP/1.1\r\nHost: x\r\n\r\nGET /static/site.css HTTP/1.1\r\nHost: x\r\n\r\n")
            head, body, rest = _read_response(sock)  # two requests on one connection, answered in order
            assert head.startswith(b"HTTP/1.1 200") and b"text/html" in head
            assert body == loopback.styled("/artikel/3")[0]
            head, body, rest = _read_response(sock, rest)
            assert b"text/css" in head and body == loopback.styled("/static/site.css")[0] and rest == b""
            sock.sendall(b"GET /img/hero-3.jpg HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            head, body, rest = _read_response(sock)
            assert body == loopback.styled("/img/hero-3.jpg")[0]
            assert sock.recv(1) == b""  # closed after the answer
    finally:
        proc.kill()
        proc.wait()


def test_the_page_server_waits_its_delay_and_answers_404_for_nothing() -> None:
    proc, port = loopback.start("article", 0.2)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            t0 = time.monotonic()
            sock.sendall(b"GET /meldung/1 HTTP/1.1\r\nHost: x\r\n\r\n")
            head, body, _ = _read_response(sock)
            assert time.monotonic() - t0 >= 0.2 and body == loopback.article("/meldung/1")[0]
    finally:
        proc.kill()
        proc.wait()
    lean = loopback._Lean(lambda path: (b"", "text/plain"), 0.0)
    assert lean.response("/missing").startswith(b"HTTP/1.1 404 Not Found\r\n")

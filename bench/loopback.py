"""The benchmarks' page server, run as its own process so it never competes
with the code being measured for the GIL (and lean: one asyncio thread, so
it takes as little as it can of the cores the measured code runs on).

    python bench/loopback.py article [--delay SECONDS]   German news pages, /anything/N
    python bench/loopback.py blob                          1 MiB of random text per URL
    python bench/loopback.py styled [--delay SECONDS]    articles with stylesheets, a font, images
    python bench/loopback.py edited                        an article per URL whose figure changes every 4th fetch

Prints its port on the first line of stdout, then serves until killed.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import random
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

PARA = ("Die Landesregierung hat am Dienstag {n} neue Stellen für Lehrkräfte angekündigt. "
        "Der Etat steigt damit auf 4,{n} Milliarden Euro, wie die Ministerin in Kiel sagte. ") * 6


def article(path: str) -> tuple[bytes, str]:
    n = path.rsplit("/", 1)[-1]
    body = ("<!doctype html><html lang='de'><head><meta charset='utf-8'><title>Meldung " + n + "</title></head>"
            "<body><nav>Start | Politik | Sport</nav><article><h1>Meldung " + n + "</h1>"
            + "".join("<p>" + PARA.format(n=n) + "</p>" for _ in range(8))
            + "</article><aside>Meistgelesen: 12 Artikel</aside></body></html>")
    return body.encode(), "text/html; charset=utf-8"


_FETCHES: dict[str, int] = {}


def edited(path: str) -> tuple[bytes, str]:
    """An article that is edited (a new figure) on every 4th fetch of its URL."""
    count = _FETCHES[path] = _FETCHES.get(path, 0) + 1
    figure = f"{1000 + 250 * ((count - 1) // 4)}"
    body, ctype = article(path)
    return body.replace(b"neue Stellen", f"neue Stellen (insgesamt {figure} Kräfte)".encode()), ctype


_STYLED_HEAD = ('<link rel="stylesheet" href="/static/site.css"><link rel="icon" href="/img/icon.png">')
_ASSETS = {
    "/static/site.css": (b'@import url("base.css");\n@font-face { font-family: S; src: url(/fonts/serif.woff2) }\n'
                         b"header { background: url(/img/logo.png) }\n" + b"p { margin: 0 0 1em }\n" * 400, "text/css"),
    "/static/base.css": (b"body { font: 18px/1.5 S, Georgia, serif }\n" * 200, "text/css"),
    "/fonts/serif.woff2": (random.Random("font").randbytes(60_000), "font/woff2"),
    "/img/logo.png": (random.Random("logo").randbytes(8_000), "image/png"),
    "/img/icon.png": (random.Random("icon").randbytes(2_000), "image/png"),
}


def styled(path: str) -> tuple[bytes, str]:
    """An article styled like a news page: a shared stylesheet (with an @import, a
    web font and a logo), an icon, and its own hero image in two sizes (srcset)."""
    if path in _ASSETS:
        return _ASSETS[path]
    if path.startswith("/img/hero-"):
        return random.Random(path).randbytes(40_000), "image/jpeg"
    body, ctype = article(path)
    n = path.rsplit("/", 1)[-1]
    hero = f'<img src="/img/hero-{n}.jpg" srcset="/img/hero-{n}.jpg 1x, /img/hero-{n}-2x.jpg 2x">'
    return body.replace(b"</head>", _STYLED_HEAD.encode() + b"</head>").replace(b"<article>", b"<article>" + hero.encode()), ctype


def blob(path: str) -> tuple[bytes, str]:
    return base64.b64encode(random.Random(path).randbytes(786432)), "application/octet-stream"


def start(kind: str, delay: float = 0.0) -> tuple[subprocess.Popen, int]:
    """Start the server process; returns it and its port."""
    proc = subprocess.Popen([sys.executable, str(Path(__file__)), kind, "--delay", str(delay)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


def server(make: Callable[[str], tuple[bytes, str]], delay: float = 0.0) -> ThreadingHTTPServer:
    """A loopback server (not yet serving) answering every GET with ``make(path)`` after ``delay``."""

    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802
            body, ctype = make(self.path)
            time.sleep(delay)
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a: object) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    srv.daemon_threads = True
    return srv


class _Lean:
    """The server process's own HTTP/1.1 server: one thread, an asyncio
    protocol per connection (keep-alive as the client asks), the same
    responses as :func:`server`. Why not :func:`server` itself: a thread per
    connection and the e-mail parser for each request head cost about
    0.8 ms of CPU per page, on the same two cores as the code being
    measured; this costs a fraction of that. ``bench/capture.py`` reports
    what it still costs."""

    def __init__(self, make: Callable[[str], tuple[bytes, str]], delay: float) -> None:
        self.make, self.delay = make, delay

    def response(self, path: str) -> bytes:
        body, ctype = self.make(path)
        head = (f"HTTP/1.1 {'200 OK' if body else '404 Not Found'}\r\nServer: loopback\r\n"
                f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n\r\n")
        return head.encode("latin-1") + body

    def protocol(self) -> asyncio.Protocol:
        lean = self

        class Connection(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport = transport  # type: ignore[assignment]
                self.buffer = b""

            def data_received(self, data: bytes) -> None:
                self.buffer += data
                while b"\r\n\r\n" in self.buffer:  # one request head (GET: no body)
                    head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
                    line = head.split(b"\r\n", 1)[0].split(b" ")
                    path = line[1].decode("latin-1") if len(line) > 1 else "/"
                    close = b"connection: close" in head.lower()
                    if lean.delay:
                        asyncio.get_running_loop().call_later(lean.delay, self.answer, path, close)
                    else:
                        self.answer(path, close)

            def answer(self, path: str, close: bool) -> None:
                if self.transport.is_closing():
                    return
                self.transport.write(lean.response(path))  # type: ignore[attr-defined]
                if close:
                    self.transport.close()

        return Connection()


async def _serve_lean(lean: _Lean) -> None:
    srv = await asyncio.get_running_loop().create_server(lean.protocol, "127.0.0.1", 0, backlog=512)
    print(srv.sockets[0].getsockname()[1], flush=True)
    await srv.serve_forever()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("kind", choices=["article", "blob", "edited", "styled"])
    ap.add_argument("--delay", type=float, default=0.0, help="seconds to wait before each response")
    args = ap.parse_args()
    make = {"article": article, "blob": blob, "edited": edited, "styled": styled}[args.kind]
    asyncio.run(_serve_lean(_Lean(make, args.delay)))


if __name__ == "__main__":
    main()

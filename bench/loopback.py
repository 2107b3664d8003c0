"""The benchmarks' page server, run as its own process so it never competes
with the code being measured for the GIL.

    python bench/loopback.py article [--delay SECONDS]   German news pages, /anything/N
    python bench/loopback.py blob                          1 MiB of random text per URL
    python bench/loopback.py styled [--delay SECONDS]    articles with stylesheets, a font, images
    python bench/loopback.py edited                        an article per URL whose figure changes every 4th fetch

Prints its port on the first line of stdout, then serves until killed.
"""

from __future__ import annotations

import argparse
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("kind", choices=["article", "blob", "edited", "styled"])
    ap.add_argument("--delay", type=float, default=0.0, help="seconds to wait before each response")
    args = ap.parse_args()
    srv = server({"article": article, "blob": blob, "edited": edited, "styled": styled}[args.kind], args.delay)
    print(srv.server_port, flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()

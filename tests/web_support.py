"""Shared by the web tests: a loopback news site whose article is edited
(50.000 -> 60.000) and carries a hostile <script> and live-site resources,
an archive built from it by the real CLI, and `archiver serve` as a process."""

from __future__ import annotations

import os
import queue
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path
from typing import Any

from conftest import CLI, REPO, Site, send

ARTICLE = """<!doctype html>
<html lang="de"><head><meta charset="utf-8">
<title>Nordallianz verlegt {troops} Soldaten an die Ostgrenze – Tagesblick</title>
<link rel="stylesheet" href="{live}/static/site.css">
<script>document.documentElement.setAttribute("data-pwned", "1"); document.title = "PWNED";
try {{ fetch("{live}/beacon"); }} catch (e) {{}}
try {{ window.top.document.body.setAttribute("data-pwned", "1"); }} catch (e) {{}}</script>
</head>
<body>
<header><nav><a href="/">Tagesblick</a> | <a href="/politik">Politik</a></nav><div class="clock">Stand: {clock} Uhr</div></header>
<main><article>
<h1>Nordallianz verlegt {troops} Soldaten an die Ostgrenze</h1>
<p class="lead">Das Bündnis reagiert auf die Manöver der vergangenen Wochen und stockt seine Präsenz deutlich auf.</p>
<p>Wie das Verteidigungsministerium am Dienstag in Brüssel mitteilte, sollen bis Ende März insgesamt {troops} Soldatinnen
und Soldaten in die drei Grenzstaaten verlegt werden. Bislang waren dort rund 12.000 Kräfte stationiert.</p>
<img src="{live}/pixel.png" alt="Karte"><img src="pixel-relative.png" alt="">
<p>Die Kosten des Einsatzes beziffert das Ministerium auf 1,8 Milliarden Euro im ersten Jahr.</p>
<p>Kritik kam von der Opposition: Die Abgeordnete Hanna Weber sprach von einer „gefährlichen Eskalation“.</p>
</article></main>
<footer><p>{comments} Kommentare · © Tagesblick</p></footer>
</body></html>
"""

VERSIONS = [
    {"troops": "50.000", "clock": "09:14", "comments": "12"},
    {"troops": "50.000", "clock": "09:47", "comments": "57"},
    {"troops": "60.000", "clock": "11:02", "comments": "131"},
]
PATH = "/politik/nordallianz-verlegung"
def _png() -> bytes:
    """A valid 1x1 PNG."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 6, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00\xc0\x00\x00\xff")) + chunk(b"IEND", b""))


PIXEL = _png()


class NewsSite:
    def __init__(self) -> None:
        self.site = Site()
        self.version = 0
        live = self.site.url("").rstrip("/")

        def article(h: Any) -> None:
            send(h, 200, ARTICLE.format(live=live, **VERSIONS[self.version]).encode("utf-8"))

        self.site.routes[PATH] = article
        self.site.page("/static/site.css", b"h1 { color: rgb(200, 0, 0); }", content_type="text/css")
        self.site.page("/pixel.png", PIXEL, content_type="image/png")
        self.site.page("/beacon", b"x", content_type="text/plain")

    @property
    def url(self) -> str:
        return self.site.url(PATH)

    def live_hits(self) -> int:
        return sum(n for path, n in self.site.hits.items() if path != PATH)

    def close(self) -> None:
        self.site.close()


def build_archive(cli: CLI, news: NewsSite) -> list[dict[str, Any]]:
    """Three captures through the real CLI: first, noise only, the silent edit."""
    rows = []
    for version in range(len(VERSIONS)):
        news.version = version
        result = cli("snapshot", news.url, "--json")
        assert result.code == 0, result.err
        rows.append(result.lines()[0])
    return rows


class Server:
    """`archiver serve` as a separate process on a free loopback port."""

    def __init__(self, cli: CLI, *args: str) -> None:
        # stderr to a file: a pipe nobody reads could fill up and stall the server.
        self.log = tempfile.NamedTemporaryFile("w+", prefix="archiver-serve-", suffix=".log")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "archiver", "--data-dir", str(cli.data_dir), "serve", "--bind", "127.0.0.1:0", *args],
            stdout=subprocess.PIPE, stderr=self.log, text=True,
            env={**os.environ, **cli.env, "PYTHONPATH": str(REPO)},
        )
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in self.proc.stdout], daemon=True).start()  # type: ignore[union-attr]
        try:
            first = lines.get(timeout=60)
        except queue.Empty:
            self.stop()
            self.log.seek(0)
            raise RuntimeError(f"archiver serve did not start: {self.log.read()[-2000:]}")
        self.base = first.split(" on ", 1)[1].split("/ ", 1)[0]
        self._wait_ready()

    def _wait_ready(self) -> None:
        import requests

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                requests.get(self.base + "/log/checkpoint", timeout=2)
                return
            except requests.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("archiver serve does not answer")

    def url(self, path: str) -> str:
        return self.base + path

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def make_cli(path: Path) -> CLI:
    return CLI(path, {"ARCHIVER_ALLOW_PRIVATE": "1", "ARCHIVER_CONFIG": "", "PYTHONPATH": str(REPO)})

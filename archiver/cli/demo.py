"""``archiver demo``: the whole story offline on 127.0.0.1.

A small news site (written for this demo) publishes an article about a
troop deployment, changes only its page chrome, then silently edits a figure.
archiver captures each version, tells noise from the edit, and verifies the
archive it wrote.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from archiver.archive import Archive

ARTICLE = """<!doctype html>
<html lang="de"><head><meta charset="utf-8">
<title>Nordallianz verlegt {troops} Soldaten an die Ostgrenze – Tagesblick</title></head>
<body>
<header><nav><a href="/">Tagesblick</a> | <a href="/politik">Politik</a> | <a href="/wirtschaft">Wirtschaft</a></nav>
<div class="clock">Stand: {clock} Uhr</div></header>
<main><article>
<h1>Nordallianz verlegt {troops} Soldaten an die Ostgrenze</h1>
<p class="lead">Das Bündnis reagiert auf die Manöver der vergangenen Wochen und stockt seine Präsenz deutlich auf.</p>
<p>Wie das Verteidigungsministerium am Dienstag in Brüssel mitteilte, sollen bis Ende März insgesamt {troops} Soldatinnen
und Soldaten in die drei Grenzstaaten verlegt werden. Bislang waren dort rund 12.000 Kräfte stationiert.</p>
<p>Die Kosten des Einsatzes beziffert das Ministerium auf 1,8 Milliarden Euro im ersten Jahr. Ein Sprecher betonte,
die Verlegung sei defensiv und mit den Partnern eng abgestimmt.</p>
<p>Kritik kam von der Opposition: Die Abgeordnete Hanna Weber sprach von einer „gefährlichen Eskalation“ und verlangte
eine Debatte im Parlament noch in dieser Woche.</p>
</article></main>
<aside><h2>Meistgelesen</h2><ol><li>Bahnstreik: {strike} Züge fallen aus</li><li>Wetter: bis zu 31 Grad</li></ol></aside>
<footer><p>{comments} Kommentare · © Tagesblick</p></footer>
</body></html>
"""

VERSIONS = [
    {"troops": "50.000", "clock": "09:14", "strike": "800", "comments": "12"},
    {"troops": "50.000", "clock": "09:47", "strike": "950", "comments": "57"},  # only the page around it
    {"troops": "60.000", "clock": "11:02", "strike": "950", "comments": "131"},  # the silent edit
]


_CHECKPOINT_MEANS = """
  What it proves: the archive's key signed that its log then held {size} snapshot(s),
  summed up in the root hash above. Every snapshot is a leaf of that log, so
  the archive cannot later drop, reorder or alter one without contradicting
  this note. Publish it where the operator cannot edit it (your site, an email
  to a lawyer); `archiver verify --since FILE` proves a later log extends it.
"""

_VERIFY_MEANS = """  What it checked: all {records} WARC records hash to what their signed manifests
  say, every signature is the archive's key, each version links to the one
  before (hash chain), and every snapshot is in the log under the checkpoint.
  So the stored pages are byte for byte what the server sent at capture time.
"""


class _Site:
    """A loopback web server whose article can be switched between versions."""

    def __init__(self) -> None:
        self.version = 0
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802
                body = ARTICLE.format(**VERSIONS[site.version]).encode("utf-8")
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/politik/nordallianz-verlegung"

    def __enter__(self) -> "_Site":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from archiver.archive import Archive
    from archiver.cli.common import figure_line, load_settings

    settings = load_settings(args)
    temp = None
    if not args.data_dir:
        temp = tempfile.mkdtemp(prefix="archiver-demo-")
        settings.archive.data_dir = temp
    settings.capture.allow_private = True  # the demo site lives on 127.0.0.1
    settings.signing.key_dir = str(Path(settings.archive.data_dir) / "keys")
    out.write(f"archiver demo — archive in {settings.data_path}\n\n")
    try:
        with _Site() as site, Archive(settings) as archive:
            steps = [
                "1. The article is published: 50.000 Soldaten.",
                "2. Only the page around it changes (clock, comments, a teaser figure).",
                "3. The figure is edited silently: 50.000 → 60.000.",
            ]
            for version, label in enumerate(steps):
                site.version = version
                row = archive.snapshot(site.url).row
                out.write(f"{label}\n   snapshot {row.id}  status {row.status}  significance: {row.significance}\n")
                for f in (row.diff or {}).get("figures", []):
                    out.write(f"   {figure_line(f)}\n")
            from archiver.changes.diff import render_terminal

            _, _, result = archive.diff_result(site.url, None, None)
            out.write("\nWhat changed in the article (archiver diff):\n")
            out.write(render_terminal(result, color=out.isatty()).rstrip("\n") + "\n")
            out.write(f"\nHistory of {site.url}:\n")
            for r in archive.history(site.url):
                out.write(f"  {r.captured_at}  {r.id}  {r.status}  {r.significance}\n")
            archive.writer.close()
            warcs = sorted(p.name for p in archive.warc_dir.iterdir())
            out.write(f"\nWARC files ({len(warcs)}): " + ", ".join(warcs) + "\n")
            note = archive.provenance.latest_checkpoint()
            if note:
                out.write("\nLatest signed log checkpoint (archiver checkpoint):\n" + "".join(f"  {line}\n" for line in note.splitlines()))
                out.write(_CHECKPOINT_MEANS.format(size=note.splitlines()[1]))
            _verify(archive, out)
            _export(archive, site.url, out)
    finally:
        if temp and not getattr(args, "keep", False):
            shutil.rmtree(temp, ignore_errors=True)
            out.write("\nThe demo archive was temporary; run `archiver demo --keep` to look around in it.\n")
        elif temp:
            out.write(f"\nKept the demo archive in {temp}\n"
                      f"Open it in a browser: archiver --data-dir {temp} serve  (then http://127.0.0.1:8080/)\n")
    return 0


def _verify(archive: Archive, out: TextIO) -> None:
    from archiver.audit.verify import verify_archive
    from archiver.cli.common import verify_summary

    report = verify_archive(archive)  # raises if anything is wrong
    out.write(f"\nVerification (archiver verify):\n  {verify_summary(report.to_json())}\n")
    out.write(_VERIFY_MEANS.format(records=report.records))


def _export(archive: Archive, url: str, out: TextIO) -> None:
    try:
        from archiver.audit.wacz_check import verify_wacz
        from archiver.audit.wacz_export import export_wacz
    except ImportError:
        return
    path = export_wacz(archive, [url], archive.root / "demo.wacz", clock=archive.c.clock)
    verify_wacz(path)
    out.write(f"Signed WACZ export (archiver export --wacz): {path} — verified\n")

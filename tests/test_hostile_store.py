"""The object store as adversary (README, threat model B): an S3-compatible
server that answers a ranged GET with a body far longer than the range must
cost a reader a one-line error, not the memory for the whole body. A real
shared archive (PostgreSQL + SeaweedFS), read through a loopback proxy that
forwards everything to SeaweedFS except ranged GETs."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlparse

from conftest import CLI, _base_env, article_html, shared_env
from test_trust_wacz import _MEASURED

FLOOD = 256 << 20  # bytes the hostile store sends at most per ranged GET


def peak_rss_err(args: list[str], env: dict[str, str]) -> tuple[int, str, str, float]:
    """The real CLI in its own process: exit code, stdout, stderr, peak RSS in MiB."""
    p = subprocess.run([sys.executable, "-c", _MEASURED, *args], capture_output=True, text=True, env=env, timeout=120)
    *err, peak = p.stderr.strip().splitlines()
    return p.returncode, p.stdout, "\n".join(err), int(peak) / 1024


class HostileStore:
    """Forwards requests to a real S3 server (the signature covers the Host
    header, which is passed on unchanged); a GET with a Range is answered
    with a ``206`` whose body goes on for ``FLOOD`` bytes."""

    def __init__(self, upstream: str) -> None:
        target = urlparse(upstream)
        self.floods = 0
        store = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _any(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.command == "GET" and "Range" in self.headers:
                    store.floods += 1
                    self.send_response(206)
                    self.send_header("Content-Length", str(FLOOD))
                    self.send_header("Content-Range", f"bytes 0-{FLOOD - 1}/{FLOOD}")
                    self.end_headers()
                    block = b"\0" * (1 << 20)
                    for _ in range(FLOOD >> 20):
                        self.wfile.write(block)
                    return
                up = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
                up.request(self.command, self.path, body=body or None, headers=dict(self.headers.items()))
                resp = up.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                up.close()

            do_GET = do_PUT = do_HEAD = do_POST = do_DELETE = _any

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that hangs up mid-flood is the point

        self.server = Server(("127.0.0.1", 0), H)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_store_that_floods_a_ranged_read_costs_one_line_not_the_flood(site, tmp_path, pg_server, s3_server):
    env = {**_base_env(tmp_path), **shared_env(pg_server, s3_server)}
    cli = CLI(tmp_path / "archive", env, "shared")
    url = site.page("/a", article_html("Haushalt", ["Der Rat beschloss 40 Millionen Euro."]))
    assert cli("snapshot", url).code == 0
    hostile = HostileStore(env["ARCHIVER_S3_ENDPOINT_URL"])
    try:
        code, out, err, rss = peak_rss_err(["--data-dir", str(cli.data_dir), "show", url, "--text"],
                                      {**os.environ, **env, "ARCHIVER_S3_ENDPOINT_URL": hostile.url})
    finally:
        hostile.close()
    print(f"show through a store that floods ranged GETs: exit {code}, peak RSS {rss:.0f} MiB")
    assert hostile.floods >= 1
    assert code == 1 and "Der Rat" not in out
    assert len(err.splitlines()) == 1 and "more than the" in err and "Traceback" not in err, err
    assert rss < 200, f"peak RSS {rss:.0f} MiB"

"""The object store as adversary (README, threat model B): an S3-compatible
server that answers a ranged GET with a body far longer than the range, or
lists objects page after page without end, must cost a reader a one-line
error, not the memory for the whole body or a hang. A real shared archive
(PostgreSQL + SeaweedFS), read through a loopback proxy that forwards
everything to SeaweedFS except what it is told to answer itself."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from conftest import CLI, _base_env, article_html, shared_env
from test_trust_wacz import _MEASURED

FLOOD = 256 << 20  # bytes the hostile store sends at most per ranged GET
TRICKLE = 0.5  # seconds between the bytes of a trickled answer


def peak_rss_err(args: list[str], env: dict[str, str]) -> tuple[int, str, str, float]:
    """The real CLI in its own process: exit code, stdout, stderr, peak RSS in MiB."""
    p = subprocess.run([sys.executable, "-c", _MEASURED, *args], capture_output=True, text=True, env=env, timeout=120)
    *err, peak = p.stderr.strip().splitlines()
    return p.returncode, p.stdout, "\n".join(err), int(peak) / 1024


class HostileStore:
    """Forwards requests to a real S3 server (the signature covers the Host
    header, which is passed on unchanged); a GET with a Range (with
    ``flood_objects``: any GET of a WARC object) is answered with a ``206``
    whose body goes on for ``FLOOD`` bytes."""

    def __init__(self, upstream: str, *, flood: bool = True, loop_listing: str = "", flood_objects: bool = False,
                 trickle: str = "", fat_listing: bool = False) -> None:
        target = urlparse(upstream)
        self.floods = self.listings = self.trickles = 0
        store = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _any(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                query = parse_qs(urlparse(self.path).query)
                listing = self.command == "GET" and query.get("list-type") == ["2"]
                if (trickle == "body" and self.command == "GET" and "Range" in self.headers) or (
                        trickle == "listing" and listing):
                    store.trickles += 1
                    self._trickle(head=trickle == "listing")
                    return
                if fat_listing and listing:
                    store.listings += 1
                    self._fat_listing()
                    return
                if loop_listing and self.command == "GET" and query.get("list-type") == ["2"]:
                    store.listings += 1
                    self._listing(query)
                    return
                whole = flood_objects and self.command == "GET" and urlparse(self.path).path.endswith(".warc.gz")
                if (flood and self.command == "GET" and "Range" in self.headers) or whole:
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

            def _trickle(self, *, head: bool) -> None:
                """A byte every TRICKLE seconds -- each read well within any read
                timeout -- of the status line (``head``) or of a body, for minutes."""
                out = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" if head else b"\0" * 1000
                if not head:
                    self.send_response(206)
                    self.send_header("Content-Length", str(len(out)))
                    self.send_header("Content-Range", f"bytes 0-{len(out) - 1}/{len(out)}")
                    self.end_headers()
                    self.wfile.flush()
                for byte in out:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(TRICKLE)

            def _fat_listing(self) -> None:
                """One listing page of FLOOD bytes (blank space inside valid XML)."""
                head = (b'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult '
                        b'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name>')
                tail = b"<IsTruncated>false</IsTruncated></ListBucketResult>"
                self.send_response(200)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(head) + FLOOD + len(tail)))
                self.end_headers()
                self.wfile.write(head)
                block = b" " * (1 << 20)
                for _ in range(FLOOD >> 20):
                    self.wfile.write(block)
                self.wfile.write(tail)

            def _listing(self, query: dict[str, list[str]]) -> None:
                """One page more, always: tokens A, B, A, B, ... ("alternate") or
                1, 2, 3, ... ("endless"), each page naming one new object."""
                token = (query.get("continuation-token") or ["0"])[0]
                n = int(token) if token.isdigit() else 0
                following = ("B" if token == "A" else "A") if loop_listing == "alternate" else str(n + 1)
                prefix = (query.get("prefix") or [""])[0]
                body = (f'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult '
                        f'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix>{prefix}</Prefix>'
                        f'<KeyCount>1</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>true</IsTruncated>'
                        f'<NextContinuationToken>{following}</NextContinuationToken><Contents>'
                        f'<Key>{prefix}x{n}.warc.gz</Key><Size>100</Size></Contents></ListBucketResult>').encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

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


def test_a_listing_that_never_ends_is_refused_not_followed(site, tmp_path, pg_server, s3_server):
    """Continuation tokens A, B, A, B, ...: botocore stops only on the same
    token twice in a row, so `verify` listed forever. Now a token seen before
    ends the listing with a one-line error."""
    env = {**_base_env(tmp_path), **shared_env(pg_server, s3_server)}
    cli = CLI(tmp_path / "archive", env, "shared")
    url = site.page("/a", article_html("Haushalt", ["Der Rat beschloss 40 Millionen Euro."]))
    assert cli("snapshot", url).code == 0
    hostile = HostileStore(env["ARCHIVER_S3_ENDPOINT_URL"], flood=False, loop_listing="alternate")
    try:
        code, out, err, rss = peak_rss_err(["--data-dir", str(cli.data_dir), "verify", "--json"],
                                           {**os.environ, **env, "ARCHIVER_S3_ENDPOINT_URL": hostile.url})
    finally:
        hostile.close()
    assert hostile.listings >= 3
    assert code == 1 and len(err.splitlines()) == 1 and "listing" in err and "Traceback" not in err, err


def test_a_listing_of_fresh_pages_without_end_stops_at_the_bound(tmp_path, s3_server, monkeypatch):
    """Fresh tokens and a new object on every page: the listing stops at the
    bound on pages (lowered here; see store.objects.MAX_LISTED_PAGES)."""
    from store import objects
    from store.errors import StoreError

    hostile = HostileStore(s3_server.endpoint_url, flood=False, loop_listing="endless")
    monkeypatch.setattr(objects, "MAX_LISTED_PAGES", 50)
    try:
        with CLI(tmp_path, {**_base_env(tmp_path), **s3_server.env()}).environ():
            store = objects.S3WarcStore(f"s3://{s3_server.bucket}/p", objects.make_client(hostile.url))
            try:
                store.names()
            except StoreError as exc:
                message = str(exc)
            else:
                message = ""
    finally:
        hostile.close()
    assert "more than 50 pages" in message
    assert 50 <= hostile.listings <= 52


def test_a_store_that_floods_a_download_costs_one_line_not_the_disk(site, tmp_path, pg_server, s3_server):
    """verify (and repair, and compaction) download each WARC object to scan
    it: boto3's download_file wrote whatever the store sent (here 256 MiB for
    an object listed at a few KiB). Now at most the listed size is written."""
    env = {**_base_env(tmp_path), **shared_env(pg_server, s3_server)}
    cli = CLI(tmp_path / "archive", env, "shared")
    url = site.page("/a", article_html("Haushalt", ["Der Rat beschloss 40 Millionen Euro."]))
    assert cli("snapshot", url).code == 0
    assert cli("verify").code == 0
    hostile = HostileStore(env["ARCHIVER_S3_ENDPOINT_URL"], flood=False, flood_objects=True)
    try:
        code, out, err, rss = peak_rss_err(["--data-dir", str(cli.data_dir), "verify", "--json"],
                                           {**os.environ, **env, "ARCHIVER_S3_ENDPOINT_URL": hostile.url})
    finally:
        hostile.close()
    assert hostile.floods >= 1
    assert code == 1 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert "more than the" in err and "bytes it lists" in err, err


def trickled(cli: CLI, env: dict[str, str], hostile: HostileStore, *args: str) -> tuple[int, str, float]:
    """Run the CLI through ``hostile`` with a 3 s deadline on object-store
    requests: exit code, stderr and seconds taken (a hang fails the test)."""
    started = time.monotonic()
    try:
        p = subprocess.run([sys.executable, "-m", "archiver", "--data-dir", str(cli.data_dir), *args],
                           capture_output=True, text=True, timeout=60,
                           env={**os.environ, **env, "ARCHIVER_S3_ENDPOINT_URL": hostile.url, "ARCHIVER_S3_DEADLINE": "3"})
    except subprocess.TimeoutExpired:
        raise AssertionError("a trickling store held the reader for over 60 s") from None
    finally:
        hostile.close()
    return p.returncode, p.stderr, time.monotonic() - started


@pytest.mark.parametrize("trickle", ["body", "listing"])
def test_a_store_that_trickles_is_cut_off_at_the_deadline(site, tmp_path, pg_server, s3_server, trickle):
    """A byte every half second (every 50 s would do as well) of a ranged
    GET's body, or of a listing's status line (botocore retries that request:
    the deadline covers the retries too): botocore's read timeout is per
    socket read, so nothing ever timed out and `show` / `verify` waited for
    ever. Now every object-store request has a total deadline
    (``s3.deadline``, here 3 s) and passing it is a one-line error naming the
    object, or the listing."""
    env = {**_base_env(tmp_path), **shared_env(pg_server, s3_server)}
    cli = CLI(tmp_path / "archive", env, "shared")
    url = site.page("/a", article_html("Haushalt", ["Der Rat beschloss 40 Millionen Euro."]))
    assert cli("snapshot", url).code == 0
    hostile = HostileStore(env["ARCHIVER_S3_ENDPOINT_URL"], flood=False, trickle=trickle)
    command, named = (("show", url, "--text"), ".warc.gz") if trickle == "body" else (("verify",), "list")
    code, err, took = trickled(cli, env, hostile, *command)
    print(f"{command[0]} through a store that trickles ({trickle}): exit {code} after {took:.1f} s: {err.strip()}")
    assert hostile.trickles >= 1
    assert code == 1 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert "deadline" in err and named in err, err
    assert took < 30


def test_a_listing_page_of_256_mib_is_refused_not_buffered(site, tmp_path, pg_server, s3_server):
    """botocore reads a listing page whole before parsing it: a store that
    answers ListObjectsV2 with 256 MiB (or 1 GB) had `verify` hold all of it.
    Now an answer botocore would buffer is read to at most 16 MiB
    (store.s3bounded.MAX_ANSWER_BYTES, a hundred times a real page of 1,000
    keys), then refused with one line."""
    env = {**_base_env(tmp_path), **shared_env(pg_server, s3_server)}
    cli = CLI(tmp_path / "archive", env, "shared")
    url = site.page("/a", article_html("Haushalt", ["Der Rat beschloss 40 Millionen Euro."]))
    assert cli("snapshot", url).code == 0
    hostile = HostileStore(env["ARCHIVER_S3_ENDPOINT_URL"], flood=False, fat_listing=True)
    try:
        code, out, err, rss = peak_rss_err(["--data-dir", str(cli.data_dir), "verify", "--json"],
                                           {**os.environ, **env, "ARCHIVER_S3_ENDPOINT_URL": hostile.url})
    finally:
        hostile.close()
    print(f"verify through a store listing 256 MiB pages: exit {code}, peak RSS {rss:.0f} MiB: {err}")
    assert hostile.listings >= 1
    assert code == 1 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert "cannot list" in err and "more than" in err, err
    assert rss < 150, f"peak RSS {rss:.0f} MiB"

"""The one vetted outbound path, attacked on loopback: DNS rebinding, TLS
details of a `Connection: close` server, header and body drips against the
total deadline, credentials in the URL, control characters in errors."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import socket
import time
from pathlib import Path

import pytest

from conftest import signed_manifests, warc_files
from nethelpers import Dripper, Flooder, PageServer, Rebinder, make_ca, server_context, twin_servers

# Every test here runs twice: hops fetched in the capture process, and in a fetch process.
pytestmark = pytest.mark.usefixtures("fetch_path")

PUBLIC = b"<html><body><article><h1>News</h1><p>The public article says 50.000.</p></article></body></html>"
INTERNAL = b"<html><body><article><h1>Internal</h1><p>INTERNAL SECRET admin page.</p></article></body></html>"


def config(tmp_path: Path, **capture: object) -> str:
    lines = ["[capture]"] + [f"{k} = {json.dumps(v)}" for k, v in capture.items()]
    path = tmp_path / "archiver.toml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def manifests(data_dir: Path) -> list[dict]:
    return sorted(signed_manifests(data_dir), key=lambda m: m["log"]["index"])


def warc_bytes(data_dir: Path) -> bytes:
    out = b""
    for f in warc_files(data_dir):
        raw = f.read_bytes()
        out += gzip.decompress(raw) if f.name.endswith(".gz") else raw
    return out


# -- DNS rebinding -------------------------------------------------------------
def test_rebinding_name_never_reaches_the_forbidden_address(strict_cli, tmp_path, monkeypatch):
    """The check sees 127.0.0.1 (allowed); any later lookup answers 127.0.0.2
    (forbidden). Both answer `Connection: close`, so the old after-the-fact
    peer check never ran: the internal page was captured and signed."""
    public, internal = twin_servers(PUBLIC, INTERNAL)
    try:
        monkeypatch.setattr(socket, "getaddrinfo", Rebinder("news.test", ["127.0.0.1"], ["127.0.0.2"]))
        cfg = config(tmp_path, allow_networks=["127.0.0.1/32"])
        r = strict_cli("--config", cfg, "snapshot", "--json", f"http://news.test:{public.port}/a")
        assert r.code == 0, r.err
        assert internal.hits == 0 and public.hits == 1
        (m,) = manifests(strict_cli.data_dir)
        assert m["remote_ip"] == "127.0.0.1" and m["hops"][0]["ip"] == "127.0.0.1"
        assert b"INTERNAL SECRET" not in warc_bytes(strict_cli.data_dir)
    finally:
        public.close()
        internal.close()


def test_a_forbidden_answer_among_allowed_ones_refuses_the_name(strict_cli, tmp_path, monkeypatch):
    public, internal = twin_servers(PUBLIC, INTERNAL)
    try:
        monkeypatch.setattr(socket, "getaddrinfo", Rebinder("news.test", ["127.0.0.1", "127.0.0.2"]))
        cfg = config(tmp_path, allow_networks=["127.0.0.1/32"])
        r = strict_cli("--config", cfg, "snapshot", f"http://news.test:{public.port}/a")
        assert r.code == 1 and "127.0.0.2" in r.err and r.err.count("\n") == 1, r.err
        assert internal.hits == 0 and public.hits == 0 and manifests(strict_cli.data_dir) == []
    finally:
        public.close()
        internal.close()


def test_deny_networks_wins_over_allow_private(cli, tmp_path, monkeypatch):
    public, internal = twin_servers(PUBLIC, INTERNAL)
    try:
        monkeypatch.setattr(socket, "getaddrinfo", Rebinder("news.test", ["127.0.0.2"]))
        cfg = config(tmp_path, deny_networks=["127.0.0.2"])
        r = cli("--config", cfg, "snapshot", f"http://news.test:{public.port}/a")
        assert r.code == 1 and "127.0.0.2, which capture.deny_networks refuses" in r.err and internal.hits == 0
    finally:
        public.close()
        internal.close()


# -- TLS details from the connection itself -------------------------------------
def test_https_connection_close_server_has_ip_and_tls_in_the_signed_manifest(cli, tmp_path, monkeypatch):
    ca_pem, leaf_pem, leaf_key, leaf_der, ca_der = make_ca(tmp_path / "pki", ["news.test"])
    server = PageServer(("127.0.0.1", 0), PUBLIC, server_context(leaf_pem, leaf_key))
    try:
        monkeypatch.setattr(socket, "getaddrinfo", Rebinder("news.test", ["127.0.0.1"]))
        cfg = config(tmp_path, ca_bundle=str(ca_pem))
        r = cli("--config", cfg, "snapshot", "--json", f"https://news.test:{server.port}/a")
        assert r.code == 0, r.err
        (m,) = manifests(cli.data_dir)
        tls = m["tls"]
        assert m["remote_ip"] == "127.0.0.1"
        assert tls["version"] in ("TLSv1.2", "TLSv1.3") and tls["cipher"]
        assert tls["cert_sha256"] == hashlib.sha256(leaf_der).hexdigest()
        assert [c["sha256"] for c in tls["chain"]] == [hashlib.sha256(d).hexdigest() for d in (leaf_der, ca_der)]
        assert "BEGIN CERTIFICATE" in tls["cert_pem"]
        assert server.seen[0]["Host"] == f"news.test:{server.port}"  # the name, not the pinned IP
        assert cli("verify").code == 0
    finally:
        server.close()


def test_certificate_is_checked_against_the_name_not_the_pinned_address(cli, tmp_path, monkeypatch):
    ca_pem, leaf_pem, leaf_key, _, _ = make_ca(tmp_path / "pki", ["news.test"])
    server = PageServer(("127.0.0.1", 0), PUBLIC, server_context(leaf_pem, leaf_key))
    try:
        monkeypatch.setattr(socket, "getaddrinfo", Rebinder("other.test", ["127.0.0.1"]))
        cfg = config(tmp_path, ca_bundle=str(ca_pem))
        r = cli("--config", cfg, "snapshot", f"https://other.test:{server.port}/a")
        assert r.code == 1 and "TLS error" in r.err and manifests(cli.data_dir) == []
    finally:
        server.close()


# -- total deadline against drips ------------------------------------------------
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"


@pytest.mark.parametrize(
    "head,body,drip_head",
    [
        (HEAD + b"X-Pad: " + b"a" * 400 + b"\r\nContent-Length: 10\r\n\r\n", b"0123456789", True),
        (HEAD + b"Content-Length: 400\r\n\r\n", PUBLIC * 4, False),
        (HEAD + b"Connection: close\r\n\r\n", PUBLIC * 4, False),  # unframed: a cut would look complete
    ],
    ids=["header-drip", "body-drip", "unframed-body-drip"],
)
def test_drip_is_cut_at_the_total_timeout_and_nothing_is_archived(cli, tmp_path, head, body, drip_head):
    dripper = Dripper(head, body, drip_head=drip_head, pause=0.1)
    try:
        cfg = config(tmp_path, total_timeout=2.0, read_timeout=30.0)
        started = time.monotonic()
        r = cli("--config", cfg, "snapshot", dripper.url("/slow"))
        took = time.monotonic() - started
        assert r.code == 1 and "total timeout" in r.err and r.err.count("\n") == 1, r.err
        assert 1.8 < took < 4.5, took
        assert manifests(cli.data_dir) == []
        assert b"WARC-Type: response" not in warc_bytes(cli.data_dir)
    finally:
        dripper.close()


CHUNKED = HEAD + b"Transfer-Encoding: chunked\r\n\r\n"


@pytest.mark.parametrize(
    "block,tail",
    [
        (b"1;x=" + b"a" * 60_000 + b"\r\nX\r\n", b"0\r\n\r\n"),  # a payload byte per 60 KB of chunk extension
        (b"X-Trailer: " + b"a" * 60_000 + b"\r\n", b"\r\n"),  # endless trailer lines after the last chunk
    ],
    ids=["chunk-extensions", "trailers"],
)
def test_chunk_framing_counts_against_the_body_cap(cli, tmp_path, block, tail):
    """The body caps count the payload; the recorder keeps every byte read. A
    server padding 100 payload bytes with 6 MB of chunk framing (or trailers)
    was recorded whole -- without a bound, until the deadline, in memory and
    in the WARC."""
    head = CHUNKED + (b"64\r\n" + b"p" * 100 + b"\r\n0\r\n" if block.startswith(b"X-") else b"")
    flooder = Flooder(head, block, 100, tail)
    try:
        cfg = config(tmp_path, max_body_bytes=1000)
        r = cli("--config", cfg, "snapshot", flooder.url("/padded"))
        assert r.code == 1 and "as received" in r.err and r.err.count("\n") == 1, r.err
        assert manifests(cli.data_dir) == []
        assert len(warc_bytes(cli.data_dir)) < 1_000_000
    finally:
        flooder.close()


def test_dripping_tsa_is_cut_at_its_timeout():
    from archiver.errors import SigningError
    from archiver.provenance.timestamping import Timestamper

    dripper = Dripper(b"HTTP/1.1 200 OK\r\nContent-Type: application/timestamp-reply\r\nContent-Length: 900\r\n\r\n",
                      b"0" * 900, drip_head=False, pause=0.1)
    try:
        started = time.monotonic()
        with pytest.raises(SigningError, match="did not answer within 1.5s"):
            Timestamper([dripper.url("/tsr")], timeout=1.5).request(dripper.url("/tsr"), b"checkpoint")
        assert time.monotonic() - started < 3.5
    finally:
        dripper.close()


def test_dripping_feed_is_cut_at_the_total_timeout(cli, tmp_path):
    dripper = Dripper(HEAD + b"Content-Length: 900\r\n\r\n", b"<rss>" + b" " * 895, drip_head=False, pause=0.1)
    try:
        cfg = config(tmp_path, total_timeout=1.5, read_timeout=30.0)
        started = time.monotonic()
        r = cli("--config", cfg, "watch-feed", dripper.url("/rss.xml"))
        assert r.code == 1 and "total timeout" in r.err, r.err
        assert time.monotonic() - started < 3.5
    finally:
        dripper.close()


# -- credentials in the URL --------------------------------------------------------
def test_userinfo_is_used_but_never_recorded(cli, site):
    site.page("/members", "<html><body><p>Members only: 120 seats.</p></body></html>")
    clean = site.url("/members")
    url = clean.replace("http://", "http://alice:s3cr%40t@")
    r = cli("snapshot", "--json", url)
    assert r.code == 0, r.err
    sent = site.request_headers[-1]["Authorization"]
    assert base64.b64decode(sent.split()[1]) == b"alice:s3cr@t"
    assert r.json()["url"] == clean
    everything = warc_bytes(cli.data_dir) + (cli.data_dir / "index.sqlite3").read_bytes()
    for secret in (b"s3cr", sent.split()[1].encode(), b"alice:"):
        assert secret not in everything
    (m,) = manifests(cli.data_dir)
    assert m["url"] == clean and m["credentials"] == {"scheme": "basic", "username": "alice"}
    assert m["hops"][0]["request_headers"]["Authorization"] == "[redacted]"
    assert b"Authorization: Basic [redacted]" in warc_bytes(cli.data_dir)
    assert cli("history", url).code == 0  # looked up without the credentials
    assert cli("verify").code == 0
    wacz = cli.data_dir.parent / "members.wacz"
    assert cli("export", clean, "--wacz", str(wacz)).code == 0
    import zipfile

    with zipfile.ZipFile(wacz) as z:
        for name in z.namelist():
            data = z.read(name)
            if data[:2] == b"\x1f\x8b":
                data = gzip.decompress(data)
            assert b"s3cr" not in data and sent.split()[1].encode() not in data, name


def test_credentials_are_not_sent_across_a_redirect_to_another_origin(cli, site):
    from conftest import Site

    other = Site()
    try:
        other.page("/landing", "<html><body><p>Elsewhere.</p></body></html>")
        site.routes["/go"] = lambda h: (h.send_response(302), h.send_header("Location", other.url("/landing")),
                                        h.send_header("Content-Length", "0"), h.end_headers())
        r = cli("snapshot", site.url("/go").replace("http://", "http://bob:pw@"))
        assert r.code == 0, r.err
        assert "Authorization" in site.request_headers[-1] and "Authorization" not in other.request_headers[-1]
    finally:
        other.close()


def test_a_failing_url_with_credentials_is_reported_without_them(strict_cli, site):
    r = strict_cli("snapshot", site.url("/x").replace("http://", "http://carol:hunter2@"))
    assert r.code == 1 and "hunter2" not in r.err and "carol" not in r.err, r.err


def test_watch_refuses_a_url_with_credentials(cli):
    r = cli("watch", "http://dave:pw@127.0.0.1/a")
    assert r.code == 2 and "credentials" in r.err and "pw@" not in r.err


# -- control characters in one-line errors ---------------------------------------------
def test_crlf_in_a_refused_url_is_escaped_in_the_error(cli):
    r = cli("snapshot", "http://127.0.0.1/a\r\nX-Injected: yes")
    assert r.code == 1 and r.err.count("\n") == 1 and "\r" not in r.err, repr(r.err)
    assert "\\r\\nX-Injected" in r.err


def test_log_lines_escape_control_characters(cli, tmp_path):
    import io
    import logging

    from archiver.cli.main import OneLineFormatter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(OneLineFormatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("archiver.test.oneline")
    logger.addHandler(handler)
    try:
        logger.warning("fetch of %s failed", "http://x/\r\n2026-01-01 INFO forged line\x1b[2J")
    finally:
        logger.removeHandler(handler)
    assert stream.getvalue() == "WARNING fetch of http://x/\\r\\n2026-01-01 INFO forged line\\x1b[2J failed\n"


def test_a_repeated_response_header_keeps_every_value(site, tmp_path, fetch_path):
    from archiver.archive import Archive
    from archiver.config import Settings

    def twice(h) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "text/html")
        h.send_header("Cache-Control", "no-cache")
        h.send_header("Cache-Control", "max-age=0")
        h.send_header("Content-Length", "2")
        h.end_headers()
        h.wfile.write(b"hi")

    site.routes["/twice"] = twice
    s = Settings()
    s.archive.data_dir = str(tmp_path / "a")
    s.capture.allow_private = True
    s.capture.fetch_processes = 1 if fetch_path == "fetch-process" else -1
    with Archive(s) as archive:
        result = archive.snapshot(site.url("/twice"))
    assert result.response_headers["cache-control"] == "no-cache, max-age=0"


def test_a_refusing_vetted_address_falls_through_to_the_next_vetted_one(cli, monkeypatch):
    server = PageServer(("127.0.0.1", 0), PUBLIC)
    try:
        monkeypatch.setattr(socket, "getaddrinfo", Rebinder("news.test", ["127.0.0.3", "127.0.0.1"]))
        r = cli("snapshot", f"http://news.test:{server.port}/a")
        assert r.code == 0, r.err
        (m,) = manifests(cli.data_dir)
        assert m["remote_ip"] == "127.0.0.1" and server.hits == 1
    finally:
        server.close()


# -- IPv6 forms that carry an IPv4 address -----------------------------------------
@pytest.mark.parametrize(
    "answer,kind",
    [
        ("2002:7f00:1::1", "loopback"),  # 6to4 of 127.0.0.1
        ("2002:a9fe:a9fe::1", "link-local"),  # 6to4 of the metadata address
        ("2002:a00:1::1", "private"),  # 6to4 of 10.0.0.1
        ("fec0::1", "site-local"),  # deprecated site-local, still routed inside sites
    ],
)
def test_ipv6_forms_of_internal_addresses_are_refused(strict_cli, monkeypatch, answer, kind):
    """Python calls 2002::/16 and fec0::/10 global; a 6to4 relay routes
    2002:V4ADDR:: to V4ADDR. Such an answer was let through to connect."""
    monkeypatch.setattr(socket, "getaddrinfo", Rebinder("news.test", [answer]))
    r = strict_cli("snapshot", "http://news.test:9/a")
    assert r.code == 1 and f"{kind} address" in r.err and r.err.count("\n") == 1, r.err
    assert manifests(strict_cli.data_dir) == []


def test_embedded_ipv4_addresses_follow_the_policy():
    from archiver.capture.addresses import AddressPolicy
    from archiver.errors import AddressRefused

    opened = AddressPolicy(allow_private=True)
    opened.check_ip("2002:a00:1::1", "x")  # private ranges opened: 6to4 of 10.0.0.1 too
    with pytest.raises(AddressRefused, match="link-local"):
        opened.check_ip("2002:a9fe:a9fe::1", "x")  # never opened
    AddressPolicy().check_ip("2002:808:808::1", "x")  # 6to4 of a public address
    deny = AddressPolicy.from_settings(False, deny=["8.8.0.0/16"])
    with pytest.raises(AddressRefused, match="deny_networks"):
        deny.check_ip("2002:808:808::1", "x")
    with pytest.raises(AddressRefused, match="link-local"):  # Teredo client 169.254.169.254 (obfuscated)
        opened.check_ip("2001:0:4136:e378:8000:63bf:5601:5601", "x")


@pytest.mark.parametrize("address", ["0.1.2.3", "0.0.0.1", "192.0.0.8", "192.0.0.170", "192.0.0.9"])
def test_this_network_and_ietf_protocol_addresses_are_refused_either_way(address):
    """0/8 ("this network": Linux connects 0.0.0.0 to the machine itself)
    was opened with allow_private, Python counting it private; 192.0.0.8 (of
    the IETF protocol assignments, 192.0.0.0/24) passed without it, Python
    3.11 calling it global. Neither holds a page to archive."""
    from archiver.capture.addresses import AddressPolicy
    from archiver.errors import AddressRefused

    for policy in (AddressPolicy(), AddressPolicy(allow_private=True)):
        with pytest.raises(AddressRefused, match="reserved address"):
            policy.check_ip(address, "x")
    AddressPolicy().check_ip("8.8.8.8", "x")  # a public address still passes

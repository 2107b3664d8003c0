"""Provenance: what the signed manifest records about a capture (TLS, IP,
headers, chain), key rotation through the CLI, and conditional requests."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import ssl
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import Site, article_html


def _cert(tmp: Path) -> tuple[Path, Path, Path, bytes]:
    """A throwaway CA and a server certificate for 127.0.0.1."""
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "archiver test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(1).not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    import ipaddress

    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(2)
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    ca_path, cert_path, key_path = tmp / "ca.pem", tmp / "server.pem", tmp / "server.key"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return ca_path, cert_path, key_path, cert.public_bytes(serialization.Encoding.DER)


@pytest.fixture
def tls_site(tmp_path):
    ca, cert, key, der = _cert(tmp_path)
    site = Site()
    site.server.shutdown()
    site.server.server_close()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    handler = site.server.RequestHandlerClass
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    site.server = server
    site.thread = threading.Thread(target=server.serve_forever, daemon=True)
    site.thread.start()
    site.url = lambda path: f"https://127.0.0.1:{server.server_port}{path}"  # type: ignore[method-assign]
    yield site, ca, der
    server.shutdown()
    server.server_close()


def test_https_capture_records_tls_certificate_in_signed_manifest(tls_site, cli, tmp_path):
    site, ca, der = tls_site
    url = site.page("/sicher", article_html("Verschlüsselt", ["Ein Bericht über 7 Server."]))
    cfg = tmp_path / "tls.toml"
    cfg.write_text(f'[capture]\nca_bundle = "{ca}"\n')
    r = cli("--config", str(cfg), "snapshot", url, "--json")
    assert r.code == 0, r.err
    doc = json.loads(cli("show", url, "--provenance").out)
    m = doc["manifest"]
    assert m["tls"]["cert_sha256"] == hashlib.sha256(der).hexdigest()
    assert m["tls"]["version"].startswith("TLSv1") and m["tls"]["cipher"]
    assert "BEGIN CERTIFICATE" in m["tls"]["cert_pem"]
    assert m["remote_ip"] == "127.0.0.1" and m["status"] == 200
    assert m["hops"][0]["request_headers"]["User-Agent"].startswith("archiver/")
    assert m["software"]["name"] == "archiver" and m["log"]["index"] == 0
    assert m["previous_manifest_sha256"] is None and doc["signature"] and doc["key_id"]
    assert cli("verify").code == 0


def test_https_with_untrusted_certificate_is_a_clear_error(tls_site, cli):
    site, _, _ = tls_site
    url = site.page("/x", "<p>x</p>")
    r = cli("snapshot", url)
    assert r.code == 1 and "TLS error" in r.err and r.err.count("\n") == 1


def test_manifests_chain_per_url(site, bcli):
    url = site.page("/c", article_html("Eins", ["Es sind 3 Fälle."]))
    bcli("snapshot", url)
    site.page("/c", article_html("Eins", ["Es sind 4 Fälle."]))
    bcli("snapshot", url)
    history = bcli("history", url, "--json").json()
    first = json.loads(bcli("show", url, "--at", history[0]["id"], "--provenance").out)
    second = json.loads(bcli("show", url, "--at", history[1]["id"], "--provenance").out)
    assert second["manifest"]["previous_manifest_sha256"] == first["manifest_sha256"]
    assert second["manifest"]["significance"] == "substantive"


def test_key_rotation_keeps_old_signatures_valid(site, cli, tmp_path):
    url = site.page("/k", article_html("Schlüssel", ["Vorher: 10 Teilnehmer."]))
    assert cli("snapshot", url).code == 0
    old_pem = tmp_path / "old.pem"
    assert cli("keys", "export-public", str(old_pem)).code == 0
    shown = cli("keys", "show").out
    assert "ed25519" in shown and "current" in shown
    r = cli("keys", "rotate")
    assert r.code == 0 and "rotated ed25519" in r.out
    site.page("/k", article_html("Schlüssel", ["Nachher: 12 Teilnehmer."]))
    assert cli("snapshot", url).code == 0
    new_pem = tmp_path / "new.pem"
    cli("keys", "export-public", str(new_pem))
    assert old_pem.read_bytes() != new_pem.read_bytes()
    assert cli("verify").code == 0
    # Pinning both keys accepts the whole history; pinning only the old one does not.
    assert cli("verify", "--public-key", str(old_pem), "--public-key", str(new_pem)).code == 0
    r = cli("verify", "--json", "--public-key", str(old_pem))
    assert r.code == 1 and "untrusted-key" in {p["kind"] for p in r.json()["problems"]}


def test_private_keys_are_private(site, cli):
    url = site.page("/p", "<p>x</p>")
    cli("snapshot", url)
    keys = cli.data_dir / "keys"
    assert keys.stat().st_mode & 0o777 == 0o700
    files = [p for p in keys.iterdir() if p.is_file()]
    assert files and all(p.stat().st_mode & 0o777 == 0o600 for p in files)
    # Nothing private sits next to the archive's public keyring or in the WARCs.
    secrets = [p.read_bytes() for p in files if p.stat().st_size]
    assert secrets
    for warc in (cli.data_dir / "warcs").iterdir():
        import gzip

        data = gzip.decompress(warc.read_bytes())
        assert b"PRIVATE KEY" not in data and not any(s in data for s in secrets)


def test_not_modified_answer_becomes_a_revisit(site, cli):
    from test_unchanged_pages import conditional_site

    conditional_site(site, article_html("Bedingt", ["Es gab 5 Anfragen."]).encode())
    from archiver.archive import Archive
    from archiver.config import load

    settings = load(environ={"ARCHIVER_DATA_DIR": str(cli.data_dir), "ARCHIVER_ALLOW_PRIVATE": "1"})
    with Archive(settings) as archive:
        first = archive.snapshot(site.url("/cond"))
        assert first.response_headers["etag"] == '"v1"'
        second = archive.snapshot(site.url("/cond"), headers={"If-None-Match": '"v1"'})
        assert second.row.status == 304 and second.row.revisit and second.row.significance == "none"
        assert second.row.payload_sha256 == first.row.payload_sha256
        assert "5 Anfragen" in archive.article(second.row).text()
    from warcio.archiveiterator import ArchiveIterator

    revisits = []
    for path in (cli.data_dir / "warcs").iterdir():
        with open(path, "rb") as fh:
            revisits += [r.rec_headers for r in ArchiveIterator(fh) if r.rec_type == "revisit"]
    assert revisits[0].get_header("WARC-Profile") == "http://netpreserve.org/warc/1.1/revisit/server-not-modified"
    assert cli("verify").code == 0


def test_injected_clock_and_ids_make_captures_reproducible(site, tmp_path):
    """Clock, UUIDs and snapshot ids are passed in: two archives capturing the
    same page produce the same manifest, byte for byte, without patching."""
    from datetime import datetime, timedelta, timezone

    from archiver.archive import Archive, Components
    from archiver.canonical import canonical_json
    from archiver.config import load
    from archiver.ids import counter_uuids

    body = article_html("Gleich", ["Genau 21 Zeilen."]).encode()

    def fixed(h):  # no Date header: the server's own clock is not ours to fix
        h.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
                      b"Content-Length: %d\r\n\r\n%s" % (len(body), body))

    site.routes["/r"] = fixed
    url = site.url("/r")

    def run(name: str) -> tuple[dict, str]:
        ticks = iter(datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(milliseconds=i) for i in range(10_000))
        ids = iter(f"snap{i:04d}" for i in range(100))
        comps = Components(clock=lambda: next(ticks), new_uuid=counter_uuids(), snapshot_ids=lambda: next(ids),
                           hostname="desk-1")
        settings = load(environ={"ARCHIVER_DATA_DIR": str(tmp_path / name), "ARCHIVER_ALLOW_PRIVATE": "1"})
        with Archive(settings, comps) as archive:
            row = archive.snapshot(url).row
        return json.loads(row.manifest_json), row.id

    (m1, id1), (m2, id2) = run("a"), run("b")
    assert id1 == id2 == "snap0000"
    assert m1["fetch_started_at"].startswith("2026-01-01T00:00:00.0") and len(m1["fetch_started_at"]) == 27
    assert m1["records"][0]["record_id"] == "<urn:uuid:00000000-0000-0000-0000-000000000001>"
    assert canonical_json(m1) == canonical_json(m2)


@pytest.mark.parametrize("manifest, problem", [
    ({"signed_at": "2026-03-01T10:00:00Z"}, None),
    ({"fetch_ended_at": "2026-03-01T10:00:00+01:00"}, None),  # manifests from before signed_at
    ({"signed_at": "2026-03-01T10:00:00"}, "no timezone"),
    ({"signed_at": "gestern"}, "no valid signing time"),
    ({}, "no valid signing time"),
])
def test_one_reading_of_a_manifests_signing_time(manifest, problem):
    """The audit, its native fast path and the manifest check read the signing
    time one way: a time without a zone has no validity window to check."""
    from archiver.errors import VerificationError
    from archiver.provenance.manifest import signing_time

    if problem is None:
        assert signing_time(manifest).utcoffset() is not None
    else:
        with pytest.raises(VerificationError, match=problem):
            signing_time(manifest)

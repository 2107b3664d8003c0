"""RFC 3161 timestamps against a real TSA on 127.0.0.1: `openssl ts -reply`
behind a small HTTP handler, with a CA and a TSA certificate made here."""

from __future__ import annotations

import datetime as dt
import subprocess
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from archiver.errors import SigningError, VerificationError
from archiver.provenance.timestamping import (
    Timestamper,
    load_tokens,
    store_tokens,
    verify_token,
)

OPENSSL = Path("/usr/bin/openssl")
pytestmark = pytest.mark.skipif(not OPENSSL.exists(), reason="needs /usr/bin/openssl to run a real TSA (openssl ts -reply)")

DATA = "archiver/test\n42\nroot-hash-base64\n\n\u2014 archiver sig\n".encode()


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(cn: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def make_tsa_cert(ca_key, ca_cert, *, eku_critical: bool = True) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("archiver test TSA"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, True, False, False, False, False, False, False, False), critical=True
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=eku_critical)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


class TSA:
    """`openssl ts -reply` behind an HTTP handler on 127.0.0.1 (port 0)."""

    def __init__(self, directory: Path, *, eku_critical: bool = True) -> None:
        self.dir = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.ca_key, self.ca_cert = make_ca("archiver test root")
        self.key, self.cert = make_tsa_cert(self.ca_key, self.ca_cert, eku_critical=eku_critical)
        (directory / "ca.pem").write_bytes(pem(self.ca_cert))
        (directory / "tsa.pem").write_bytes(pem(self.cert))
        (directory / "tsa.key").write_bytes(
            self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )
        (directory / "serial").write_text("01\n")
        (directory / "ts.cnf").write_text(
            f"""
[ tsa ]
default_tsa = tsa_config1

[ tsa_config1 ]
dir = {directory}
serial = $dir/serial
crypto_device = builtin
signer_cert = $dir/tsa.pem
certs = $dir/ca.pem
signer_key = $dir/tsa.key
signer_digest = sha256
default_policy = 1.2.3.4.1
other_policies = 1.2.3.4.5
digests = sha256, sha384, sha512
accuracy = secs:1
clock_precision_digits = 0
ordering = yes
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""
        )
        self.requests = 0
        self.lock = threading.Lock()
        tsa = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                query = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                assert self.headers.get("Content-Type") == "application/timestamp-query"
                with tsa.lock, tempfile.TemporaryDirectory() as tmp:
                    tsa.requests += 1
                    q, r = Path(tmp) / "q.tsq", Path(tmp) / "r.tsr"
                    q.write_bytes(query)
                    p = subprocess.run(
                        [str(OPENSSL), "ts", "-reply", "-config", str(tsa.dir / "ts.cnf"), "-queryfile", str(q),
                         "-signer", str(tsa.dir / "tsa.pem"), "-inkey", str(tsa.dir / "tsa.key"),
                         "-chain", str(tsa.dir / "ca.pem"), "-out", str(r)],
                        capture_output=True, timeout=30,
                    )
                    body = r.read_bytes() if p.returncode == 0 else p.stderr
                self.send_response(200 if p.returncode == 0 else 500)
                self.send_header("Content-Type", "application/timestamp-reply")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/tsr"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def tsa(tmp_path):
    t = TSA(tmp_path / "tsa")
    yield t
    t.close()


def stamped_twice(site: Any, cli: Any, tsa: TSA, tmp_path: Path) -> tuple[Path, str]:
    """A config under which ``tsa`` stamps every checkpoint (its root
    trusted), and a page captured twice with it: two checkpoints, two tokens."""
    from conftest import article_html

    cfg = tmp_path / "tsa.toml"
    cfg.write_text(f'[signing]\ntsa_urls = ["{tsa.url}"]\ntsa_roots = ["{tsa.dir / "ca.pem"}"]\n')
    url = site.page("/t", article_html("Zeit", ["Um 12 Uhr begann die Sitzung."]))
    assert cli("--config", str(cfg), "snapshot", url).code == 0
    assert cli("--config", str(cfg), "snapshot", url).code == 0
    return cfg, url


def test_timestamp_and_verify_with_the_tsa_root(tsa):
    before = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(seconds=2)
    (token,) = Timestamper([tsa.url]).timestamp(DATA)
    assert token.tsa_url == tsa.url and token.token
    assert before <= token.gen_time <= dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=2)
    assert verify_token(token.token, DATA, roots=[pem(tsa.ca_cert)]) == token.gen_time
    der_root = tsa.ca_cert.public_bytes(serialization.Encoding.DER)
    assert verify_token(token.token, DATA, roots=[der_root]) == token.gen_time
    # openssl agrees, with nothing but the files.
    tsr = tsa.dir / "out.tsr"
    tsr.write_bytes(token.token)
    data = tsa.dir / "data"
    data.write_bytes(DATA)
    p = subprocess.run([str(OPENSSL), "ts", "-verify", "-in", str(tsr), "-data", str(data), "-CAfile", str(tsa.dir / "ca.pem")],
                       capture_output=True, text=True)
    assert p.returncode == 0 and "OK" in p.stdout, p.stdout + p.stderr


def test_sha256_imprint_and_several_tsas(tsa, tmp_path):
    other = TSA(tmp_path / "tsa2")
    try:
        tokens = Timestamper([tsa.url, other.url], hash_algorithm="sha256").timestamp(DATA)
        assert [t.tsa_url for t in tokens] == [tsa.url, other.url]
        verify_token(tokens[0].token, DATA, roots=[pem(tsa.ca_cert)])
        verify_token(tokens[1].token, DATA, roots=[pem(other.ca_cert)])
    finally:
        other.close()


def test_other_data_or_other_root_fails(tsa):
    (token,) = Timestamper([tsa.url]).timestamp(DATA)
    with pytest.raises(VerificationError) as exc:
        verify_token(token.token, DATA + b"x", roots=[pem(tsa.ca_cert)])
    assert "\n" not in str(exc.value)
    _, stranger = make_ca("someone else's root")
    with pytest.raises(VerificationError):
        verify_token(token.token, DATA, roots=[pem(stranger)])
    with pytest.raises(VerificationError):
        verify_token(token.token, DATA, roots=None)  # a private TSA is not in the public bundle
    broken = bytearray(token.token)
    broken[len(broken) // 2] ^= 0xFF
    with pytest.raises(VerificationError):
        verify_token(bytes(broken), DATA, roots=[pem(tsa.ca_cert)])
    with pytest.raises(VerificationError):
        verify_token(b"not a token", DATA, roots=[pem(tsa.ca_cert)])


def test_certificate_order_from_the_tsa_does_not_matter(tsa):
    """OpenSSL sends the signer first; rfc3161-client wants the SET in DER
    order. Either order must verify (the set is outside the signature)."""
    from archiver.provenance import timestamping as ts

    (token,) = Timestamper([tsa.url]).timestamp(DATA)
    _, s, e = ts._der_read(token.token, 0)
    status, tok = ts._der_children(token.token[s:e])[:2]
    oid, wrapped = ts._der_children(tok[2])
    (sd,) = ts._der_children(wrapped[2])
    fields = ts._der_children(sd[2])
    certs = next(f for f in fields if f[0] == 0xA0)
    members = [m for _, m, _ in ts._der_children(certs[2])]
    assert len(members) == 2 and members == sorted(members)  # stored canonical
    swapped_fields = [ts._der(0xA0, b"".join(reversed(members))) if f[0] == 0xA0 else f[1] for f in fields]
    swapped = ts._der(0x30, status[1] + ts._der(0x30, oid[1] + ts._der(0xA0, ts._der(0x30, b"".join(swapped_fields)))))
    assert swapped != token.token and ts._canonical_response(swapped) == token.token
    assert verify_token(swapped, DATA, roots=[pem(tsa.ca_cert)]) == token.gen_time


def test_tsa_certificate_without_critical_eku_gets_no_token(tmp_path):
    """RFC 3161 2.3: the EKU must be critical. openssl refuses to sign with such
    a certificate (HTTP 500 here), and rfc3161-client refuses to verify one."""
    lax = TSA(tmp_path / "lax", eku_critical=False)
    try:
        with pytest.raises(SigningError, match="HTTP 500"):
            Timestamper([lax.url]).timestamp(DATA)
    finally:
        lax.close()


def test_roots_given_to_the_timestamper_verify_at_once(tsa):
    _, stranger = make_ca("not the TSA's root")
    with pytest.raises(SigningError):
        Timestamper([tsa.url], roots=[pem(stranger)]).request(tsa.url, DATA)
    assert Timestamper([tsa.url], roots=[pem(tsa.ca_cert)]).request(tsa.url, DATA).token


def test_failing_tsas(tsa, tmp_path):
    class Big(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self.send_response(200)
            self.send_header("Content-Type", "application/timestamp-reply")
            self.end_headers()  # no length: streamed until close
            try:
                for _ in range(64):
                    self.wfile.write(b"\0" * 65536)
            except OSError:
                pass

        def log_message(self, *args: Any) -> None:
            pass

    big = ThreadingHTTPServer(("127.0.0.1", 0), Big)
    threading.Thread(target=big.serve_forever, daemon=True).start()
    try:
        big_url = f"http://127.0.0.1:{big.server_port}/"
        with pytest.raises(SigningError, match="cap"):
            Timestamper([big_url]).request(big_url, DATA)
        dead = "http://127.0.0.1:9/"
        with pytest.raises(SigningError) as exc:
            Timestamper([dead, big_url], timeout=2).timestamp(DATA)
        assert "\n" not in str(exc.value)
        # One good TSA is enough; the others are logged and skipped.
        tokens = Timestamper([dead, tsa.url], timeout=2).timestamp(DATA)
        assert [t.tsa_url for t in tokens] == [tsa.url]
    finally:
        big.shutdown()
        big.server_close()


def test_store_and_load_next_to_the_archive(tsa, tmp_path):
    data_dir = tmp_path / "archive"
    tokens = Timestamper([tsa.url, tsa.url]).timestamp(DATA)
    paths = store_tokens(data_dir, 12, tokens)
    assert [p.name for p in paths] == ["12-0.tsr", "12-1.tsr"]
    again = store_tokens(data_dir, 12, tokens[:1])  # never overwrites earlier evidence
    assert [p.name for p in again] == ["12-2.tsr"]
    assert (data_dir / "timestamps" / "12-0.chain.pem").read_bytes().count(b"BEGIN CERTIFICATE") == 2
    loaded = load_tokens(data_dir)
    assert [(t.tree_size, t.n) for t in loaded] == [(12, 0), (12, 1), (12, 2)]
    assert loaded[0].token == tokens[0].token and loaded[0].tsa_url == tsa.url
    assert loaded[0].gen_time == tokens[0].gen_time
    for t in loaded:
        assert verify_token(t.token, DATA, roots=[pem(tsa.ca_cert)]) == t.gen_time
    assert not [p for p in (data_dir / "timestamps").iterdir() if p.name.startswith(".")]
    # Readable without the service: openssl with the stored chain.
    data = tmp_path / "data"
    data.write_bytes(DATA)
    p = subprocess.run([str(OPENSSL), "ts", "-verify", "-in", str(paths[0]), "-data", str(data),
                        "-CAfile", str(tsa.dir / "ca.pem"), "-untrusted", str(data_dir / "timestamps" / "12-0.chain.pem")],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    assert load_tokens(tmp_path / "empty") == []

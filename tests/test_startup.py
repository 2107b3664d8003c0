"""What a command that never fetches loads on start-up: `archiver verify`
(and the facade it builds) never imports the capture stack, the HTTP client
or warcio -- start-up is most of verify's time on a small archive -- while a
process that does fetch still gets warcio's recorder under urllib3, however
urllib3 comes to be imported first."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import REPO, article_html

# Loaded only when something is fetched, a record is built, or a page is read.
NOT_ON_VERIFY = ("cryptography", "platformdirs", "tomllib", "urllib3", "requests", "warcio", "http.client", "ssl", "email.parser", "lxml", "trafilatura",
                 "starlette", "archiver.capture.http", "archiver.capture.outbound", "archiver.capture.requisites",
                 "archiver.changes", "archiver.pages")


def _run(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120, env=env)


def test_verify_loads_no_capture_stack(site, cli):
    url = site.page("/a", article_html("Start", ["Der Etat steigt auf 4,2 Milliarden Euro."]))
    assert cli("snapshot", url).code == 0
    code = ("import io, json, sys\n"
            "from archiver.cli.main import main\n"
            "out = io.StringIO()\n"
            f"rc = main(['--data-dir', {str(cli.data_dir)!r}, 'verify', '--json'], out, sys.stderr)\n"
            "print(json.dumps({'rc': rc, 'report': json.loads(out.getvalue()), 'modules': sorted(sys.modules)}))\n")
    p = _run(code, {**os.environ, **cli.env})
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout)
    assert got["rc"] == 0 and got["report"]["ok"] and got["report"]["checked"] == 1
    loaded = [m for m in got["modules"] if any(m == bad or m.startswith(bad + ".") for bad in NOT_ON_VERIFY)]
    assert loaded == [], loaded


def test_the_recorder_patches_http_client_before_urllib3_however_it_is_imported():
    for first in ("import requests", "import urllib3.connection", "import botocore.httpsession", "import store.objects"):
        code = ("import sys, archiver\n"
                "assert 'warcio' not in sys.modules and 'http.client' not in sys.modules\n"
                f"{first}\n"
                "import urllib3\n"
                "from warcio.capture_http import RecordingHTTPConnection\n"
                "assert issubclass(urllib3.connection.HTTPConnection, RecordingHTTPConnection)\n")
        p = _run(code)
        assert p.returncode == 0, first + ": " + p.stderr[-2000:]


def test_urllib3_imported_before_archiver_is_refused_at_capture():
    """Too late to patch: the capturer says so (one line), never records nothing silently."""
    code = ("import urllib3\n"
            "from archiver import config\n"
            "from archiver.archive import Archive\n"
            "from archiver.errors import CaptureError\n"
            "import tempfile\n"
            "s = config.load(None, {'ARCHIVER_ALLOW_PRIVATE': '1'})\n"
            "s.archive.data_dir = tempfile.mkdtemp()\n"
            "with Archive(s) as a:\n"
            "    try:\n"
            "        a.capturer\n"
            "    except CaptureError as exc:\n"
            "        print('refused:', exc)\n")
    p = _run(code)
    assert p.returncode == 0 and "refused: warcio's recorder is not installed" in p.stdout, p.stdout + p.stderr


def test_keys_and_notes_read_without_openssl_give_its_verdicts():
    """Verify reads Ed25519 keys by their one DER form and checks signed notes
    with libsodium first; both must agree with OpenSSL (cryptography)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

    from archiver.errors import VerificationError
    from archiver.provenance.keyring import is_ed25519_spki
    from archiver.provenance.notes import NoteVerifier, _ed25519_raw_from_spki

    prefix = bytes.fromhex("302a300506032b6570032100")
    for der in (prefix + bytes(32), prefix + b"\xff" * 32, prefix + os.urandom(32), prefix + os.urandom(31),
                prefix + os.urandom(33), prefix[:-1] + b"\x22" + os.urandom(33), b"", os.urandom(44)):
        try:
            openssl = serialization.load_der_public_key(der)
            accepted = isinstance(openssl, Ed25519PublicKey)
        except ValueError:
            accepted = False
        assert is_ed25519_spki(der) == accepted, der.hex()
        if accepted:
            assert _ed25519_raw_from_spki(der) == der[12:]
        else:
            try:
                _ed25519_raw_from_spki(der)
            except VerificationError:
                pass
            else:
                raise AssertionError(f"{der.hex()} read as a note key")
    key = Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    note = NoteVerifier.from_public_key("archiver-test", raw)
    sig = key.sign(b"checkpoint\n")
    assert note.verify(b"checkpoint\n", sig)
    assert not note.verify(b"checkpoint!\n", sig)
    assert not note.verify(b"checkpoint\n", sig[:-1] + bytes([sig[-1] ^ 1]))
    assert not note.verify(b"checkpoint\n", sig[:63])

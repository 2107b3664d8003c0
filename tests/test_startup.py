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
NOT_ON_VERIFY = ("urllib3", "requests", "warcio", "http.client", "ssl", "email.parser", "lxml", "trafilatura",
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
